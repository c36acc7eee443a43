"""Image sequences and still images: frame-number patterns (via fileseq) and EXR / PNG / TIFF / JPEG files.

Pattern syntax (``vidswap`` accepts what compositing tools write):
  ``plate.%04d.exr``       printf padding
  ``plate.####.png``       one digit per ``#`` (Nuke style); a lone ``#`` means 4 digits (fileseq/RV style)
  ``plate.@@@.png``        one digit per ``@``;  ``plate.$F4.exr`` Houdini style
  ``plate.1001-1100#.exr`` an explicit frame range (fileseq frame set)
Frame numbers are kept as they are on disk (a 1001-based plate stays 1001-based).
Images are HxWx3 RGB: uint8 / uint16 for PNG, TIFF, JPEG (OpenCV; BGR swapped), float32 for EXR (OpenEXR).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import fileseq
import numpy as np
import OpenEXR

from vidswap.errors import InputError, MediaError
from vidswap.io.exr import ExrOutput, write_exr

IMAGE_EXTS = (".exr", ".png", ".tif", ".tiff", ".jpg", ".jpeg")
WRITE_EXTS = {".exr": "exr", ".png": "png", ".tif": "tiff", ".tiff": "tiff"}
_PATTERN_RE = re.compile(r"#|@|%0?\d*d|\$F\d*")


def is_pattern(path: str | Path) -> bool:
    """True when ``path`` names a numbered image sequence rather than one file."""
    name = Path(path).name
    return Path(name).suffix.lower() in IMAGE_EXTS and bool(_PATTERN_RE.search(name))


@dataclass(frozen=True)
class SequencePattern:
    """A parsed sequence pattern: ``directory / (head + zero-padded number + tail)``.

    frames: the explicit frame range of the pattern (``1001-1100#``), or None (whatever is on disk).
    """

    directory: Path
    head: str
    tail: str
    width: int
    frames: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, text: str | Path) -> SequencePattern:
        """Parse a pattern; InputError when it has no frame-number placeholder."""
        text = str(text)
        try:
            seq = fileseq.FileSequence(text, pad_style=fileseq.PAD_STYLE_HASH4)
        except fileseq.ParseException as exc:
            raise InputError(f"cannot parse the image sequence pattern {text}: {exc}; use e.g. plate.####.exr")
        padding = seq.padding()
        if not padding:
            raise InputError(f"{text} has no frame-number placeholder; use e.g. plate.####.exr or plate.%04d.exr")
        style = fileseq.PAD_STYLE_HASH4 if padding == "#" else fileseq.PAD_STYLE_HASH1
        width = fileseq.getPaddingNum(padding, pad_style=style)
        frame_set = seq.frameSet()
        frames = tuple(int(f) for f in frame_set) if frame_set is not None else None
        directory = Path(seq.dirname() or ".")
        return cls(directory, seq.basename(), seq.extension(), max(1, width), frames)

    @property
    def ext(self) -> str:
        return self.tail.lower() if self.tail.startswith(".") else Path(self.tail).suffix.lower()

    def name(self, number: int) -> str:
        """File name (no directory) of frame ``number``."""
        sign = "-" if number < 0 else ""
        return f"{self.head}{sign}{abs(number):0{self.width}d}{self.tail}"

    def path(self, number: int) -> Path:
        return self.directory / self.name(number)

    def display(self, first: int | None = None, last: int | None = None) -> str:
        """fileseq-style pattern, e.g. ``/plates/plate.1001-1100#.exr`` (``#`` = 4 digits, ``@`` = 1)."""
        pad = "#" if self.width == 4 else "@" * self.width
        span = "" if first is None else (f"{first}" if last in (None, first) else f"{first}-{last}")
        return str(self.directory / f"{self.head}{span}{pad}{self.tail}")

    def hashes(self) -> str:
        """The pattern with one ``#`` per digit, as Nuke and RV write it: ``/plates/plate.####.exr``."""
        return str(self.directory / f"{self.head}{'#' * self.width}{self.tail}")

    def scan(self) -> list[int]:
        """Frame numbers present on disk, sorted (strict padding: 0042 matches width 4, 42 does not)."""
        if not self.directory.is_dir():
            return []
        number = re.compile(re.escape(self.head) + r"(-?\d+)" + re.escape(self.tail) + r"\Z")
        found = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                match = number.match(entry.name)
                if match and self.name(int(match.group(1))) == entry.name:
                    found.append(int(match.group(1)))
        return sorted(found)


def sequence_label(text: str | Path) -> tuple[str, str]:
    """A pattern with its frames (``plate.1001-1024#.png``) as people read it: (``plate.####.png``,
    ``1001-1024``); the range is empty when the pattern has none."""
    pattern = SequencePattern.parse(text)
    frames = str(fileseq.FrameSet(sorted(pattern.frames))) if pattern.frames else ""
    return pattern.hashes(), frames


def sequence_frames(pattern: SequencePattern, text: str) -> range:
    """The contiguous frame range of a sequence; InputError when frames are missing or none exist.

    Without an explicit range the sequence spans the first to the last file on disk; gaps are errors
    (a plate with holes would silently shift timing downstream).
    """
    on_disk = pattern.scan()
    if pattern.frames is not None:
        wanted = list(pattern.frames)
        if wanted != list(range(wanted[0], wanted[-1] + 1)):
            raise InputError(f"the frame range of {text} has a step or holes; give a contiguous range like "
                             f"{pattern.display(wanted[0], wanted[-1])}")
    elif on_disk:
        wanted = list(range(on_disk[0], on_disk[-1] + 1))
    else:
        raise InputError(f"no frames found for the image sequence {text}; check the path and the padding")
    present = set(on_disk)
    missing = [n for n in wanted if n not in present]
    if missing:
        shown = ", ".join(str(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        hint = (f"render them or give an explicit range such as {pattern.display(wanted[0], missing[0] - 1)}"
                if missing[0] > wanted[0] else "render them or give an explicit range")
        raise InputError(f"the image sequence {text} is missing {len(missing)} frame(s) ({shown}); {hint}")
    return range(wanted[0], wanted[-1] + 1)


# ---------------------------------------------------------------------------------------------- still files


@dataclass(frozen=True)
class ImageHeader:
    """What probing needs from one image file."""

    width: int
    height: int
    pix_fmt: str  # rgb24 | rgb48le | rgbf16 | rgbf32
    bit_depth: int


_DTYPE_FMT = {np.dtype(np.uint8): ("rgb24", 8), np.dtype(np.uint16): ("rgb48le", 16),
              np.dtype(np.float16): ("rgbf16", 16), np.dtype(np.float32): ("rgbf32", 32)}


def read_header(path: Path) -> ImageHeader:
    """Size and depth of an image file (EXR: header only)."""
    if path.suffix.lower() == ".exr":
        image, stored = _read_exr(path)
        pix_fmt, depth = _DTYPE_FMT.get(stored, ("rgbf32", 32))
        return ImageHeader(image.shape[1], image.shape[0], pix_fmt, depth)
    image = read_image_file(path)
    pix_fmt, depth = _DTYPE_FMT.get(image.dtype, ("rgb24", 8))
    return ImageHeader(image.shape[1], image.shape[0], pix_fmt, depth)


def read_image_file(path: Path) -> np.ndarray:
    """HxWx3 RGB array of an image file: uint8/uint16 (PNG, TIFF, JPEG) or float32 (EXR, and float TIFF).

    Alpha is dropped and grey is expanded to three channels.  InputError when the file cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise InputError(f"image {path} is a folder, not an image file; check the path")
        raise InputError(f"image {path} does not exist; check the path")
    if path.suffix.lower() == ".exr":
        return _read_exr(path)[0]
    import cv2  # here, not at import: a video job reads no image file (a pass-through run imports no OpenCV)

    data = np.fromfile(path, dtype=np.uint8)  # avoids OpenCV's console warnings on bad paths
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR  # keeps 16-bit, honours EXIF orientation
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise InputError(f"{path} is not a readable image; check the file or convert it to PNG/TIFF/EXR")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)
    if image.dtype not in (np.uint8, np.uint16):
        image = image.astype(np.float32)
    return image


def _read_exr(path: Path) -> tuple[np.ndarray, np.dtype]:
    """EXR RGB(A)/Y channels -> (HxWx3 float32 on the display window, the stored dtype).

    Pixels outside the data window are 0."""
    try:
        with OpenEXR.File(str(path)) as exr:
            header = exr.header()
            data_window = [tuple(int(v) for v in corner) for corner in header["dataWindow"]]
            display_window = [tuple(int(v) for v in corner) for corner in header["displayWindow"]]
            channels = exr.channels()
            if "RGB" in channels or "RGBA" in channels:
                pixels = np.array(channels["RGB" if "RGB" in channels else "RGBA"].pixels[:, :, :3])
            elif "Y" in channels:
                pixels = np.repeat(channels["Y"].pixels[:, :, None], 3, axis=2)
            else:
                raise InputError(f"{path} has no RGB or Y channels (has {', '.join(sorted(channels))}); "
                                 "write the plate with RGB channels")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path} is not a readable EXR image ({exc}); check the file") from None
    stored = pixels.dtype
    pixels = np.asarray(pixels, dtype=np.float32)
    (dx0, dy0), (dx1, dy1) = data_window
    (wx0, wy0), (wx1, wy1) = display_window
    if (dx0, dy0, dx1, dy1) == (wx0, wy0, wx1, wy1):
        return np.ascontiguousarray(pixels), stored
    canvas = np.zeros((wy1 - wy0 + 1, wx1 - wx0 + 1, 3), np.float32)
    x0, y0 = max(dx0, wx0), max(dy0, wy0)
    x1, y1 = min(dx1, wx1), min(dy1, wy1)
    if x1 >= x0 and y1 >= y0:
        canvas[y0 - wy0:y1 - wy0 + 1, x0 - wx0:x1 - wx0 + 1] = pixels[y0 - dy0:y1 - dy0 + 1, x0 - dx0:x1 - dx0 + 1]
    return canvas, stored


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Any supported frame dtype -> uint16 full range (uint8 x 257 is exact and invertible)."""
    if image.dtype == np.uint16:
        return image
    if image.dtype == np.uint8:
        return image.astype(np.uint16) * 257
    return np.round(np.clip(image.astype(np.float32), 0.0, 1.0) * 65535.0).astype(np.uint16)


def write_image_file(path: Path, image: np.ndarray, fmt: str, exr: ExrOutput | None = None) -> None:
    """Write HxWx3 RGB ``image`` as ``fmt``: exr (half, ZIP), png (16-bit), tiff (the image's own depth).

    EXR: ``exr`` (default: the built-in OCIO config's defaults) decodes display-referred (integer) images to
    scene-linear and gives the header its colourspace, chromaticities and provenance (:mod:`vidswap.io.exr`).
    MediaError when the file cannot be written.
    """
    import cv2

    try:
        if fmt == "exr":
            exr = exr or ExrOutput.create()
            write_exr(path, {"RGB": exr.encode(image).astype(np.float16)}, exr)
            return
        if fmt == "png":
            data, params = to_uint16(image), [cv2.IMWRITE_PNG_COMPRESSION, 1]
        elif fmt == "tiff":
            data = image if image.dtype in (np.uint8, np.uint16) else image.astype(np.float32)
            params = []
        else:
            raise ValueError(f"unknown image format {fmt}")
        ok, encoded = cv2.imencode(path.suffix, cv2.cvtColor(np.ascontiguousarray(data), cv2.COLOR_RGB2BGR),
                                   params)
        if not ok:
            raise OSError("the encoder refused the image")
        encoded.tofile(path)
    except (OSError, RuntimeError, cv2.error) as exc:
        raise MediaError(f"writing {path} failed ({exc}); check disk space and permissions, then retry") from None
