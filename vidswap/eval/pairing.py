"""Which result frames an evaluation compares with which plate frames, and the results it refuses: another
picture shape than the plate (a side-by-side ``--compare`` video), or a frame count that does not fit the range,
each with the fix in the message (the ``--frames`` to pass)."""

from __future__ import annotations

from vidswap.errors import InputError
from vidswap.io.frames import frames_as_range, parse_frames
from vidswap.io.media import MediaInfo

#: Relative difference of width/height ratios that counts as another picture shape.
ASPECT_TOLERANCE = 0.01


def frame_range(frames: str | None, every: int = 1) -> range | None:
    """A frame-range string (fileseq syntax: ``'0-47'``, ``'1001-1100x2'``), thinned by ``every`` -> a range
    (None stays None). For the CLI: ``evaluate(..., frames=frame_range(opts.frames))``."""
    if frames is None:
        return None
    return frames_as_range(parse_frames(frames)[::max(1, every)])


def suggest_frames(result_numbers: range, target_numbers: range) -> str:
    """The ``--frames`` advice for a result that does not pair with the plate: the result's own numbers when the
    plate has them (an image sequence keeps the plate's numbers), else as many frames from the plate's first
    (a rendered video numbers its frames from 0)."""
    n = len(result_numbers)
    first, last = result_numbers[0], result_numbers[-1]
    if first in target_numbers and last in target_numbers and result_numbers.start != 0:
        return f"pass --frames {first}-{last} (the result's own frame numbers)"
    if n <= len(target_numbers):
        start = target_numbers[0]
        return (f"pass the plate frames it was rendered from, e.g. --frames {start}-{start + n - 1} when it starts "
                "at the plate's first frame")
    return f"the result is longer than the plate ({len(target_numbers)} frames): is it the right plate?"


def pair_frames(result_numbers: range, target_numbers: range, frames: range | None) -> tuple[range, range]:
    """The (result, target) frame numbers to compare, in order.

    ``frames`` names the target frames the result covers (default: all of them). A result with as many frames
    pairs by position; otherwise it must contain those frame numbers. InputError (with the ``--frames`` to pass)
    when neither fits."""
    wanted = target_numbers if frames is None else frames
    if len(wanted) == 0:
        raise InputError("no frames to evaluate: the frame range is empty")
    if frames is not None and (frames[0] not in target_numbers or frames[-1] not in target_numbers):
        raise InputError(f"frames {frames[0]}-{frames[-1]} are outside the target's frames "
                         f"{target_numbers.start}-{target_numbers.stop - 1}")
    if len(result_numbers) == len(wanted):
        return result_numbers, wanted
    if all(n in result_numbers for n in wanted):
        return wanted, wanted
    raise InputError(f"the result has {len(result_numbers)} frames ({result_numbers.start}-"
                     f"{result_numbers.stop - 1}) but the target range has {len(wanted)}; "
                     + suggest_frames(result_numbers, target_numbers))


def check_result_shape(result: MediaInfo, target: MediaInfo) -> str | None:
    """Refuse (InputError, exit 2) a result of another picture shape than the plate: a side-by-side ``--compare``
    video, a crop. A result of the plate's shape at another size (a preview) is evaluated at the plate's size:
    returns the note that says so, or None when the sizes match."""
    rw, rh, tw, th = result.width, result.height, target.width, target.height
    if (rw, rh) == (tw, th):
        return None
    ratio, plate = rw / rh, tw / th
    if abs(ratio - plate) > ASPECT_TOLERANCE * plate:
        hint = " (a side-by-side --compare video?)" if abs(ratio - 2 * plate) <= ASPECT_TOLERANCE * 2 * plate else ""
        raise InputError(f"the result {result.path.name} is {rw}x{rh} but the plate is {tw}x{th}, another picture "
                         f"shape{hint}; evaluate the swapped output itself (rendered without --compare)")
    return (f"the result ({rw}x{rh}) was scaled to the plate's {tw}x{th} for the pixel measures; sharpness and "
            "seams of a scaled result are not the final render's")
