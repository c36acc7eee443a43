"""The hands of a shot as stored in the tracks file (numpy only, so light passes can read it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class HandTracks:
    """The hands of a shot, one row per hand per frame (rows sorted by frame, then hand id).

    Attributes:
        frames: (N,) int64 frame numbers.
        ids: (N,) int32 hand ids (a hand keeps its id while tracked).
        points: (N, 21, 3) float32 landmarks, frame pixels, smoothed over time per hand.
        presence: (N,) float32 landmarker presence.
    """

    frames: np.ndarray
    ids: np.ndarray
    points: np.ndarray
    presence: np.ndarray

    ARRAYS = ("frames", "ids", "points", "presence")

    @classmethod
    def empty(cls) -> "HandTracks":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros((0, 21, 3), np.float32),
                   np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.frames)

    def at(self, number: int) -> np.ndarray:
        """(K, 21, 3) the landmarks of the hands in frame ``number``."""
        return self.points[self.frames == number]

    def around(self, number: int, reach: int) -> np.ndarray:
        """(K, 21, 3) the landmarks of the hands in frames ``number - reach`` .. ``number + reach``."""
        return self.points[np.abs(self.frames - number) <= reach]

    def to_arrays(self, prefix: str = "hands_") -> dict[str, np.ndarray]:
        return {prefix + n: getattr(self, n) for n in self.ARRAYS}

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "hands_") -> "HandTracks":
        """From a mapping (an open npz); empty when the arrays are absent."""
        if prefix + "frames" not in arrays:
            return cls.empty()
        return cls(**{n: np.asarray(arrays[prefix + n]) for n in cls.ARRAYS})
