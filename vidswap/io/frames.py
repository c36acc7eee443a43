"""The frame record that flows from readers to writers, resizing pictures to an output size, and frame-number <->
timecode arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np
from timecode import Timecode


@dataclass
class Frame:
    """One picture of a clip or image sequence.

    number:   frame number in the source: 0-based for video, the file's number for sequences (e.g. 1001).
    pts:      presentation timestamp in the video stream's time_base (MediaInfo.time_base); None for images.
    timecode: SMPTE timecode of this frame ("HH:MM:SS:FF", ";" before FF for drop-frame) or None.
    image:    HxWx3 RGB, uint8 (8-bit sources), uint16 (>8-bit sources, full 0..65535 range) or
              float32 (EXR, scene-linear values as stored).
    duration: how long the frame is shown, in time_base units (video only; None when unknown).
    """

    number: int
    pts: int | None
    timecode: str | None
    image: np.ndarray
    duration: int | None = None


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxWxC ``image`` at ``size`` = (width, height), keeping its dtype (uint8 / uint16 / float): area filter when
    shrinking, bicubic when enlarging; the same array when it already has that size."""
    h, w = image.shape[:2]
    if (w, h) == tuple(size):
        return image
    interp = cv2.INTER_AREA if size[0] < w else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(image, tuple(size), interpolation=interp))


def _timecode_rate(fps: Fraction) -> Fraction:
    """The timecode counting rate for a clip rate: integer rates stay, NTSC rates stay as x000/1001."""
    if fps.denominator in (1, 1001):
        return fps
    return Fraction(max(1, round(fps)))


def timecode_at(start: str | None, fps: Fraction, offset: int) -> str | None:
    """Timecode ``offset`` frames after ``start`` at rate ``fps`` (frame counting, as tape and tmcd do).

    Drop-frame is used only when ``start`` says so (a ";" separator), whatever the rate.
    """
    if not start:
        return None
    drop = ";" in start
    tc = Timecode(_timecode_rate(fps), start.replace(";", ":") if not drop else start,
                  force_non_drop_frame=not drop)
    if offset:
        tc = tc + offset if offset > 0 else tc - (-offset)
    return str(tc)
