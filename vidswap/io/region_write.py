"""A rendered frame for the encoder from its decoded picture: only the box the render changed goes through RGB.

The render pass reads every frame as RGB (the decoder's YUV converted) and pastes faces into a box of it.
Converting the whole RGB frame back to YUV for the encoder costs a 4K frame 18-21 ms (swscale, bicubic chroma) and
alters pixels the render never touched: FFmpeg's 8-bit YUV -> RGB -> YUV round trip changed 95 % of the luma
samples of the 1080p bench plate, 15 % of them by more than 1 code value and up to 12.
Here the encoder's picture is a copy of the decoded picture with only the changed box converted from the rendered
RGB: outside the box the encoder gets the decoded plate bit for bit; inside it the values of a whole-frame
conversion, bit for bit too, because the box is converted together with :data:`MARGIN` pixels of real neighbours
on every side, more than swscale's 2:1 bicubic chroma filter reaches (a margin of 4 already gave a whole-frame
conversion's values; 2 did not).

Pure functions over PyAV frames and NumPy arrays; the writer (:class:`vidswap.io.writers.VideoSink`) decides when
the picture can be used (4:2:0 8-bit in and out, the same size, no rotation).
"""

from __future__ import annotations

from collections.abc import Callable

import av
import numpy as np

__all__ = ["MARGIN", "GRID", "changed_box", "conversion_box", "picture_planes", "merge_region", "mergeable",
           "union_box"]

#: Real neighbouring pixels converted around the changed box (even; 4 was found enough, see above).
MARGIN = 16
#: The converted box's corners snap outward to this grid, so a moving face's box keeps its size for a while (each
#: new size costs swscale a new context, ~2 ms at 1000 px).
GRID = 32

Box = tuple[int, int, int, int]


def union_box(a: Box | None, b: Box | None) -> Box | None:
    """The smallest ``(x0, y0, x1, y1)`` holding both boxes (an empty box, ``x0 >= x1`` or ``y0 >= y1``, holds
    nothing); None when either is None (unknown)."""
    if a is None or b is None:
        return None
    if a[0] >= a[2] or a[1] >= a[3]:
        return tuple(b)
    if b[0] >= b[2] or b[1] >= b[3]:
        return tuple(a)
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def changed_box(before: np.ndarray, after: np.ndarray, origin: tuple[int, int] = (0, 0)) -> Box:
    """The bounding box ``(x0, y0, x1, y1)`` of the pixels where two (H, W, C) images differ in any channel, moved
    by ``origin`` (x, y) (the images' place in a larger one); ``(0, 0, 0, 0)`` when they are equal. The render
    pass records each paste's box so (:class:`vidswap.render.RenderStage`), and ``vidswap assemble`` the rendered
    chunk's against the plate's, so a farm job's output equals a single pass's."""
    differs = (before != after).any(-1)
    rows, cols = np.flatnonzero(differs.any(1)), np.flatnonzero(differs.any(0))
    if rows.size == 0:
        return 0, 0, 0, 0
    x, y = origin
    return x + int(cols[0]), y + int(rows[0]), x + int(cols[-1]) + 1, y + int(rows[-1]) + 1


def conversion_box(box: Box, width: int, height: int) -> tuple[Box, Box] | None:
    """For a changed ``box`` of a (width, height) 4:2:0 picture (both even): ``(inner, outer)``, the box grown to
    even coordinates (what is written) and that box grown by :data:`MARGIN` and snapped outward to :data:`GRID`
    (what is converted), both clipped to the picture and even; None when the box is empty."""
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, y0 = max(0, x0 - x0 % 2), max(0, y0 - y0 % 2)
    x1, y1 = min(width, x1 + x1 % 2), min(height, y1 + y1 % 2)
    if x0 >= x1 or y0 >= y1:
        return None
    ox0, oy0 = max(0, (x0 - MARGIN) // GRID * GRID), max(0, (y0 - MARGIN) // GRID * GRID)
    ox1, oy1 = min(width, -(-(x1 + MARGIN) // GRID) * GRID), min(height, -(-(y1 + MARGIN) // GRID) * GRID)
    return (x0, y0, x1, y1), (ox0, oy0, ox1, oy1)


def picture_planes(picture: av.VideoFrame) -> list[np.ndarray]:
    """The Y, U, V planes of a yuv420p picture as (rows, width) uint8 views (writable where the picture is)."""
    out = []
    for plane in picture.planes:
        rows = np.frombuffer(plane, np.uint8, count=plane.line_size * plane.height).reshape(plane.height, -1)
        out.append(rows[:, :plane.width])
    return out


def mergeable(frame, size: tuple[int, int], pix_fmt: str) -> bool:
    """Whether a :class:`~vidswap.io.frames.Frame` can be encoded by :func:`merge_region` into an encoder of
    ``pix_fmt`` at ``size`` (width, height): it carries its decoded picture and a ``changed`` box, both are 8-bit
    4:2:0 (``yuv420p``) of that even size with no display rotation, and its image is that picture's uint8 RGB."""
    pic, image = frame.picture, frame.image
    return (pic is not None and frame.changed is not None and image is not None and pix_fmt == "yuv420p"
            and pic.format.name == "yuv420p" and image.dtype == np.uint8
            and image.shape == (pic.height, pic.width, 3) and tuple(size) == (pic.width, pic.height)
            and pic.width % 2 == 0 and pic.height % 2 == 0 and not int(pic.rotation or 0) % 360)


def merge_region(picture: av.VideoFrame, image: np.ndarray, box: Box,
                 convert: Callable[[np.ndarray], av.VideoFrame]) -> av.VideoFrame:
    """A new yuv420p picture: ``picture``'s planes, with ``box`` taken from ``image`` converted by ``convert``.

    Args:
        picture: the decoded (W x H) yuv420p picture, W and H even. Not modified (the decoder may still read it
            as a reference frame).
        image: (H, W, 3) uint8 RGB that equals ``picture``'s RGB conversion outside ``box``.
        box: ``(x0, y0, x1, y1)`` pixels of ``image`` the render may have changed (empty: none).
        convert: (h, w, 3) uint8 RGB -> the (w x h) yuv420p picture the writer would make of it.

    Returns:
        the picture to encode (no timing or colour tags set).
    """
    out = av.VideoFrame(picture.width, picture.height, "yuv420p")
    planes = picture_planes(out)
    for dst, src in zip(planes, picture_planes(picture)):
        dst[...] = src
    boxes = conversion_box(box, picture.width, picture.height)
    if boxes is None:
        return out
    (x0, y0, x1, y1), (ox0, oy0, ox1, oy1) = boxes
    part = picture_planes(convert(np.ascontiguousarray(image[oy0:oy1, ox0:ox1])))
    for k, (dst, src) in enumerate(zip(planes, part)):
        s = 1 if k == 0 else 2
        dst[y0 // s:y1 // s, x0 // s:x1 // s] = src[(y0 - oy0) // s:(y1 - oy0) // s, (x0 - ox0) // s:(x1 - ox0) // s]
    return out
