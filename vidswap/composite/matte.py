"""User occlusion mattes: an artist's roto as an image sequence (``composite.matte: path/matte.####.png``).

White (1) marks what is in front of the face: the plate is kept there (the paste alpha is multiplied by
``1 - matte``). Frame numbers follow the plate's. A matte is a single-channel (grey) image, or an image with an
alpha channel (grey + alpha, RGBA), whose alpha is used; 8- or 16-bit PNG or TIFF, the plate's size.

Every problem is an :class:`~vidswap.errors.InputError` (exit 2) naming the file, found before any frame is
rendered: missing frames (all are checked up front), the wrong size, the wrong channel count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vidswap.errors import InputError
from vidswap.io.sequences import SequencePattern, is_pattern

MATTE_EXTS = (".png", ".tif", ".tiff")


def matte_from_image(image: np.ndarray, path: Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 in [0, 1] from a decoded matte file (``cv2.IMREAD_UNCHANGED`` layout).

    Args:
        image: HxW, HxWx2 (grey + alpha) or HxWx4 (BGRA) uint8 / uint16 / float.
        path: the file (for messages).
        size: the plate's (width, height).
    """
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 2, 4):
        raise InputError(f"occlusion matte {path} has {channels} channels: give a single-channel (grey) matte or "
                         "one with an alpha channel (grey + alpha, RGBA)")
    h, w = image.shape[:2]
    if (w, h) != tuple(size):
        raise InputError(f"occlusion matte {path} is {w}x{h}, the plate is {size[0]}x{size[1]}: render the matte "
                         "at the plate's resolution")
    plane = image if channels == 1 else image[..., channels - 1]
    if plane.dtype == np.uint8:
        return plane.astype(np.float32) / 255.0
    if plane.dtype == np.uint16:
        return plane.astype(np.float32) / 65535.0
    return np.clip(plane.astype(np.float32), 0.0, 1.0)


@dataclass(frozen=True)
class UserMatte:
    """An occlusion-matte sequence checked against the frames to render.

    Attributes:
        pattern: the sequence; size: the plate's (width, height).
    """

    pattern: SequencePattern
    size: tuple[int, int]

    @classmethod
    def open(cls, text: str | Path, numbers: Sequence[int], size: tuple[int, int]) -> "UserMatte":
        """Check the sequence: a numbered PNG/TIFF pattern with every frame of ``numbers`` on disk; the first file
        is read to check its size and channels (the others are checked as they are read)."""
        if not is_pattern(text) or Path(str(text)).suffix.lower() not in MATTE_EXTS:
            raise InputError(f"composite.matte must be a numbered PNG or TIFF sequence such as matte.####.png, "
                             f"not {text}")
        pattern = SequencePattern.parse(text)
        on_disk = set(pattern.scan())
        missing = [n for n in numbers if n not in on_disk]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise InputError(f"occlusion matte {pattern.path(missing[0])} is missing{more}: the matte needs a file "
                             f"for every rendered frame ({pattern.hashes()}, frame numbers as the plate's)")
        matte = cls(pattern, (int(size[0]), int(size[1])))
        if numbers:
            matte.read(numbers[0])
        return matte

    def read(self, number: int) -> np.ndarray:
        """(H, W) float32 matte of frame ``number`` (1 = occluder)."""
        path = self.pattern.path(number)
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise InputError(f"occlusion matte {path} is missing or not a readable image")
        return matte_from_image(image, path, self.size)


@dataclass
class MatteWriter:
    """Writes the occlusion matte of every rendered frame as a 16-bit grey PNG sequence (``composite.matte_output``),
    plate-sized, 1 = in front of the face; the same convention ``composite.matte`` reads."""

    pattern: SequencePattern

    @classmethod
    def create(cls, text: str | Path) -> "MatteWriter":
        if not is_pattern(text) or Path(str(text)).suffix.lower() != ".png":
            raise InputError(f"composite.matte_output must be a numbered PNG sequence such as "
                             f"occlusion.####.png, not {text}")
        pattern = SequencePattern.parse(text)
        pattern.directory.mkdir(parents=True, exist_ok=True)
        return cls(pattern)

    def __call__(self, number: int, matte: np.ndarray) -> None:
        data = np.round(np.clip(matte, 0.0, 1.0) * 65535.0).astype(np.uint16)
        path = self.pattern.path(number)
        if not cv2.imwrite(str(path), data):
            from vidswap.errors import MediaError

            raise MediaError(f"writing {path} failed; check disk space and permissions, then retry")
