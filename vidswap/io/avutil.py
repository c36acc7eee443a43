"""Small PyAV helpers shared by probing, reading and writing: colour tag names, stream choice, RGB conversion.

Colour tags are FFmpeg's numeric AVColor* codes inside PyAV; we expose FFmpeg's (ffprobe's) names.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

# FFmpeg names for AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace / AVColorRange codes.
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
             10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
TRC = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 9: "log100",
       10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
       16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
MATRIX = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
          9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc", 13: "chroma-derived-c",
          14: "ictcp"}
RANGE = {1: "tv", 2: "pc"}

# swscale's YUV<->RGB coefficient sets, keyed by FFmpeg matrix name (swscale has no others; unknown -> its
# default, BT.601, which is also what FFmpeg itself assumes for untagged video).
_SWS_MATRIX = {"bt709": "itu709", "fcc": "fcc", "bt470bg": "itu601", "smpte170m": "itu601",
               "smpte240m": "smpte240m", "bt2020nc": "bt2020", "bt2020c": "bt2020"}

# Accurate rounding keeps >8-bit data exact to the last code value through swscale.
SWS_FLAGS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND


def local_url(path: str | Path) -> str:
    """The URL FFmpeg must open for the local file ``path``: ``file:`` and the absolute path.

    FFmpeg reads a leading ``name:`` as a protocol (``file:``, ``concat:``, ``http:``...), so a file called
    ``concat:a.mp4|b.mp4`` or ``file:plate.mp4`` given as it is would open other files. An absolute path behind an
    explicit ``file:`` is always the file itself. Every path vidswap hands to FFmpeg (PyAV, decord) goes
    through here.
    """
    return "file:" + os.path.abspath(os.fspath(path))


def tag_name(table: dict[int, str], code: int | None) -> str | None:
    """FFmpeg name of a colour code, None for unspecified/unknown."""
    return table.get(int(code)) if code is not None else None


def tag_code(table: dict[int, str], name: str | None) -> int | None:
    """Inverse of :func:`tag_name`."""
    if name is None:
        return None
    for code, value in table.items():
        if value == name:
            return code
    return None


def sws_matrix(matrix: str | None) -> str | None:
    """The swscale coefficient set for an FFmpeg matrix name (None: swscale's default)."""
    return _SWS_MATRIX.get(matrix) if matrix else None


def pix_fmt_depth(pix_fmt: str | None) -> int:
    """Bits per component of a pixel format (8 when unknown)."""
    if not pix_fmt:
        return 8
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.FFmpegError):
        return 8


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The clip's picture stream: the first video stream that is not cover art."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


class RgbConverter:
    """Decoded frames -> HxWx3 full-range RGB arrays, upright (display rotation applied).

    uint8 (rgb24) for 8-bit sources, uint16 (rgb48, 0..65535) when ``deep``.  One swscale context is kept
    and reused (creating one per frame costs more than the conversion itself).
    """

    def __init__(self, deep: bool, matrix: str | None):
        self.format = "rgb48le" if deep else "rgb24"
        self.matrix = sws_matrix(matrix)
        # Accurate rounding is free for >8-bit paths and keeps the last code value; 8-bit keeps FFmpeg's
        # default path (bit-identical to ffmpeg/decord output, 10x faster).
        self.flags = SWS_FLAGS if deep else None
        self._sws = VideoReformatter()

    def __call__(self, frame: av.VideoFrame, shrink_to: tuple[int, int] | None = None) -> np.ndarray:
        """``shrink_to``: (width, height) of the upright image; when smaller than the frame, swscale converts and
        shrinks in one pass (area filter), in place of a full-size conversion and a resize (previews: 0.7 code
        values from :func:`~vidswap.io.frames.resize_image`'s area filter on average, at a third of the cost);
        the frame's own size otherwise."""
        turns = (int(frame.rotation or 0) // 90) % 4
        size = {}
        if shrink_to is not None:
            w, h = shrink_to if turns % 2 == 0 else shrink_to[::-1]  # the stored picture's orientation
            if (w, h) != (frame.width, frame.height) and w <= frame.width and h <= frame.height:
                deep = Interpolation.ACCURATE_RND if self.flags is not None else 0
                size = {"width": int(w), "height": int(h), "interpolation": Interpolation.AREA | deep}
        rgb = self._sws.reformat(frame, format=self.format, src_colorspace=self.matrix,
                                 src_color_range=frame.color_range or None,
                                 **({"interpolation": self.flags} | size))
        image = rgb.to_ndarray()
        if rgb is frame:  # no conversion: the array views the decoder's own picture (a reference frame of the
            image = image.copy()  # next ones, for inter codecs): the frame's pixels must be the caller's to write
        if turns:
            image = np.ascontiguousarray(np.rot90(image, turns))
        return image
