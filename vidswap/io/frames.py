"""The frame record that flows from readers to writers, resizing pictures to an output size, frame-range text
(fileseq syntax, parsed and formatted only here) and frame-number <-> timecode arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from typing import Iterable

import fileseq
import numpy as np
from timecode import Timecode

from vidswap.errors import InputError


@dataclass
class Frame:
    """One picture of a clip or image sequence.

    number:   frame number in the source: 0-based for video, the file's number for sequences (e.g. 1001).
    pts:      presentation timestamp in the video stream's time_base (MediaInfo.time_base); None for images.
    timecode: SMPTE timecode of this frame ("HH:MM:SS:FF", ";" before FF for drop-frame) or None.
    image:    HxWx3 RGB, uint8 (8-bit sources), uint16 (>8-bit sources, full 0..65535 range) or
              float32 (EXR, scene-linear values as stored).
    duration: how long the frame is shown, in time_base units (video only; None when unknown).
    picture:  the decoded picture (``av.VideoFrame``, in the stream's own pixel format) when read with
              ``rgb=False``; ``image`` is then None (pass-through copies it to the encoder, no RGB round trip).
              Read with ``keep_picture`` (the render pass), both: ``image`` is ``picture``'s RGB.
    changed:  with both: the box ``(x0, y0, x1, y1)`` outside which ``image`` is still ``picture``'s RGB
              (empty, ``(0, 0, 0, 0)``, as read; the render stage grows it by the pixels each paste changes), so
              the writer converts only that box back (:mod:`vidswap.io.region_write`). None: unknown (anything
              else that replaces or draws on ``image`` must set it None).
    """

    number: int
    pts: int | None
    timecode: str | None
    image: np.ndarray | None
    duration: int | None = None
    picture: object | None = None
    changed: tuple[int, int, int, int] | None = None


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxWxC ``image`` at ``size`` = (width, height), keeping its dtype (uint8 / uint16 / float): area filter when
    shrinking, bicubic when enlarging; the same array when it already has that size."""
    if image is None:  # a picture kept in its decoded form (Frame.picture): nothing to resize here
        return image
    h, w = image.shape[:2]
    if (w, h) == tuple(size):
        return image
    import cv2  # here, not at import: a job at the plate's size resizes nothing (a pass-through imports no OpenCV)

    interp = cv2.INTER_AREA if size[0] < w else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(image, tuple(size), interpolation=interp))


def parse_frames(text: str) -> list[int]:
    """Frame-range text in fileseq syntax (``1001-1100``, ``0-99x2``, ``1-3,7``) -> the frame numbers in order.
    Bad syntax is an InputError (exit 2)."""
    shown = _shown(text)
    if not str(text).strip():
        raise InputError(f"empty frame range {shown}: use e.g. 1001-1100 or 0-99x2, or leave --frames out for "
                         "every frame")
    if len(str(text)) > MAX_RANGE_TEXT:
        raise InputError(f"frame range {shown} is too long; use e.g. 1001-1100 or 0-99x2")
    try:
        numbers = list(fileseq.FrameSet(str(text)))
    except fileseq.MaxSizeException:
        raise InputError(f"frame range {shown} has too many frames; give the frames of the clip, "
                         "e.g. 1001-1100") from None
    except (fileseq.ParseException, ValueError, TypeError, OverflowError):
        raise InputError(f"bad frame range {shown}: use e.g. 1001-1100 or 0-99x2") from None
    if not numbers:
        raise InputError(f"frame range {shown} has no frames: use e.g. 1001-1100 or 0-99x2")
    if any(b <= a for a, b in zip(numbers, numbers[1:])):
        raise InputError(f"frame range {shown} does not count upwards; give it in ascending order, e.g. 0-23")
    return numbers


#: Frame-range text longer than this is refused before parsing (a range is a few numbers, not a list of frames).
MAX_RANGE_TEXT = 4096


def _shown(text: str) -> str:
    """The user's range text for a message, quoted and cut to 60 characters."""
    text = str(text)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def format_frames(numbers: Iterable[int]) -> str:
    """Frame numbers as fileseq frame-range text: [1001..1050] -> '1001-1050', [0, 2, 4] -> '0-4x2',
    [1, 2, 3, 7] -> '1-3,7'; '' for none. Duplicates are dropped and the numbers sorted."""
    unique = sorted(set(int(n) for n in numbers))
    return str(fileseq.FrameSet(unique)) if unique else ""


def frames_as_range(numbers: list[int]) -> range:
    """Evenly spaced frame numbers as a ``range``; gaps are an InputError (render each part separately)."""
    if len(numbers) == 1:
        return range(numbers[0], numbers[0] + 1)
    step = numbers[1] - numbers[0]
    if step <= 0:
        raise InputError(f"frame range {numbers[0]}-{numbers[-1]} runs backwards; give it in ascending order")
    if any(b - a != step for a, b in zip(numbers, numbers[1:])):
        raise InputError(f"frame range {format_frames(numbers)} has gaps; render each evenly spaced part "
                         "separately (e.g. 0-47)")
    return range(numbers[0], numbers[-1] + 1, step)


def frame_runs(numbers: list[int]) -> list[range]:
    """Ascending frame numbers as their evenly spaced runs, in order: [0, 1, 2, 3, 10, 11, 12] ->
    [range(0, 4), range(10, 13)]; [0, 2, 4] -> [range(0, 5, 2)]. Numbers that do not ascend are an InputError."""
    runs: list[range] = []
    i = 0
    while i < len(numbers):
        if i + 1 == len(numbers):
            runs.append(range(numbers[i], numbers[i] + 1))
            break
        step = numbers[i + 1] - numbers[i]
        if step <= 0:
            raise InputError(f"frame {numbers[i + 1]} comes after {numbers[i]}; give frame ranges in ascending "
                             "order")
        j = i + 1
        while j + 1 < len(numbers) and numbers[j + 1] - numbers[j] == step:
            j += 1
        runs.append(range(numbers[i], numbers[j] + 1, step))
        i = j + 1
    return runs


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
