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

    def swept(self, number: int, reach: float) -> np.ndarray:
        """(K, S, 21, 3) per hand in frame ``number`` the shapes it sweeps over ``number - reach`` ..
        ``number + reach`` (frames; :func:`swept_shapes`): S = 3 (before, at, after) when ``reach > 0``, else 1."""
        here = np.flatnonzero(self.frames == number)
        if reach <= 0:
            return self.points[here][:, None]
        out = []
        for i in here:
            mine = np.flatnonzero(self.ids == self.ids[i])
            out.append(swept_shapes(self.frames[mine], self.points[mine], number, reach))
        return np.stack(out) if out else np.zeros((0, 3, 21, 3), np.float32)

    def to_arrays(self, prefix: str = "hands_") -> dict[str, np.ndarray]:
        return {prefix + n: getattr(self, n) for n in self.ARRAYS}

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "hands_") -> "HandTracks":
        """From a mapping (an open npz); empty when the arrays are absent."""
        if prefix + "frames" not in arrays:
            return cls.empty()
        return cls(**{n: np.asarray(arrays[prefix + n]) for n in cls.ARRAYS})


def swept_shapes(frames: np.ndarray, points: np.ndarray, number: int, reach: float) -> np.ndarray:
    """(3, 21, 3) one hand's landmarks at ``number``, then linearly interpolated to ``number - reach`` and
    ``number + reach`` (frames) from its nearest rows on either side: the stretch a moving hand covers during the
    exposure (its motion blur) and the landmarker's lag on a fast move. A side without a row (the hand's first or
    last frame) repeats the frame's own landmarks; a neighbour ``gap`` frames away is moved towards by
    ``min(1, reach / gap)`` of the way.

    Args:
        frames: (N,) int64 the hand's frame numbers (sorted), one of them ``number``; points: (N, 21, 3).
    """
    k = int(np.flatnonzero(frames == number)[0])
    here = points[k]
    out = [here]
    for j in (k - 1, k + 1):
        if 0 <= j < len(frames):
            gap = abs(int(frames[j]) - int(number))
            t = min(1.0, float(reach) / gap)
            out.append(here + t * (points[j] - here))
        else:
            out.append(here)
    return np.stack([out[1], out[0], out[2]]).astype(points.dtype)
