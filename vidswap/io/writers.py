"""Writing frames: video files (PyAV encoders, audio + timecode carried from the input) and image sequences.

Timing: a video output has the input's time_base and every frame keeps its pts and duration, so CFR and VFR
clips come out frame-for-frame identical in timing.  When a sub-range is rendered the whole output is moved
earlier so it starts where the input starts (pts - (first written pts - input start)); its timecode then
starts at the timecode of the first rendered frame and the audio is trimmed to the rendered span.

Bit depth: uint16 frames go into 10-bit ProRes / 16-bit FFV1 at full precision (RGB48 -> YUV with accurate
rounding); H.264 is an 8-bit 4:2:0 review format.  FFV1 stores RGB planes, so it is lossless for the frames
it is given.  Colour tags (primaries, transfer, matrix, range) of the input are written to the output and
the input's matrix and range are used for RGB -> YUV.

Everything is atomic (see :mod:`vidswap.io.atomic`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import Interpolation, VideoReformatter

from vidswap.errors import ConfigError, InputError, MediaError
from vidswap.io import avutil
from vidswap.io.atomic import atomic_file, atomic_files, check_writable_dir, ensure_writable_dir, same_file
from vidswap.io.frames import Frame, resize_image, timecode_at
from vidswap.io.media import MediaInfo
from vidswap.io.exr import ExrOutput
from vidswap.io.region_write import merge_region, mergeable
from vidswap.io.mux import (AudioCopier, check_container_codecs, container_codecs, copy_stream_tags, open_copier,
                            open_source)
from vidswap.io.sequences import WRITE_EXTS, SequencePattern, is_pattern, to_uint16, write_image_file

VIDEO_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
VIDEO_CODECS = ("h264", "prores_hq", "prores_4444", "ffv1")
IMAGE_CODECS = ("exr", "png", "tiff")
_CODEC_IDS = {"libx264": "h264", "prores_ks": "prores", "ffv1": "ffv1"}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


@dataclass(frozen=True)
class EncodeSettings:
    """How to encode: codec (h264 | prores_hq | prores_4444 | ffv1 | exr | png | tiff), H.264 crf/preset.

    For image-sequence outputs the file extension decides the format; ``codec`` may name it or be left
    at a video codec.
    """

    codec: str = "h264"
    crf: int = 18
    preset: str = "medium"

    def __post_init__(self):
        if self.codec not in VIDEO_CODECS + IMAGE_CODECS:
            raise ConfigError(f"unknown codec {self.codec!r}; use one of {', '.join(VIDEO_CODECS + IMAGE_CODECS)}")
        if not 0 <= int(self.crf) <= 51:
            raise ConfigError(f"crf {self.crf} is out of range; use 0 (lossless) to 51")
        if self.preset not in X264_PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; use one of {', '.join(X264_PRESETS)}")


def output_kind(path: str | Path) -> str:
    """'video' or 'sequence' from the output's extension (InputError for anything else)."""
    suffix = Path(str(path)).suffix.lower()
    if suffix in VIDEO_CONTAINERS:
        return "video"
    if suffix in WRITE_EXTS:
        return "sequence"
    raise InputError(f"cannot tell the output type of {path}; use .mov/.mp4/.mkv for video or a pattern like "
                     "out.####.exr / .png / .tif for an image sequence")


class FrameSink(Protocol):
    """Where rendered frames go: ``write(frame)`` one at a time, in order; ``frames_written`` so far."""

    frames_written: int

    def write(self, frame: Frame) -> None: ...


@contextmanager
def open_sink(out: str | Path, info: MediaInfo, settings: EncodeSettings = EncodeSettings(),
              size: tuple[int, int] | None = None, exr: ExrOutput | None = None) -> Iterator[FrameSink]:
    """Open an atomic output for frames of ``info`` at ``size`` = (width, height) (default: the input's).

    ``exr``: for EXR sequences, the colourspace the pixels are written in and the header attributes
    (:class:`vidswap.io.exr.ExrOutput`; default: the built-in OCIO config's defaults).

    On normal exit the encoder is flushed, audio and timecode are muxed and the file (or every frame file)
    is renamed into place; on an exception (KeyboardInterrupt included) temporaries are removed and the
    exception propagates.  InputError up front for an unwritable directory, an unknown extension, a
    codec the container cannot hold, or an output that would overwrite the input.
    """
    out = Path(str(out))
    kind = check_output(out, info, settings, size)
    width, height = size or (info.width, info.height)
    if kind == "video":
        ensure_writable_dir(out.parent, out)
        with atomic_file(out) as temp:
            sink = VideoSink(temp, out, info, settings, (width, height))
            try:
                yield sink
                sink.finish()
            except BaseException:
                sink.abort()
                raise
    else:
        pattern = SequencePattern.parse(out)
        fmt = WRITE_EXTS[pattern.ext]
        ensure_writable_dir(pattern.directory, out)
        with atomic_files(pattern.directory) as staging:
            sink = SequenceSink(staging, pattern, fmt, (width, height),
                                exr=(exr or ExrOutput.create()) if fmt == "exr" else None)
            yield sink
            if sink.frames_written == 0:
                raise MediaError(f"no frames were written to {out}; nothing to save")


def check_output(out: str | Path, info: MediaInfo, settings: EncodeSettings,
                 size: tuple[int, int] | None = None) -> str:
    """Every check of an output that needs no writing (InputError, exit 2): the type from the extension, the
    codec for it and its container, the size for the codec, an existing folder under the name, a writable
    folder (nothing is created), the input not overwritten. Returns 'video' or 'sequence'. Called before any
    work, and again by :func:`open_sink`."""
    out = Path(str(out))
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in str(out)):
        raise InputError(f"the output name {str(out)!r:.80} has a control character (a newline?); logs, farm "
                         "scripts and Nuke break on it: rename it")
    kind = output_kind(out)
    width, height = size or (info.width, info.height)
    if width <= 0 or height <= 0:
        raise InputError(f"output size {width}x{height} for {out} is invalid; give a positive width and height")
    _refuse_input_overwrite(out, info)
    if kind == "video":
        if settings.codec not in VIDEO_CODECS:
            raise InputError(f"{out} is a video file but the codec is {settings.codec}; use an image pattern "
                             f"like {out.stem}.####.{settings.codec} or a video codec")
        if out.is_dir():
            raise InputError(f"the output {out} is a folder; give a file name, e.g. {out / 'shot.mov'}")
        encoder = _encoding(settings, info, False).encoder
        codecs = {"the video": _CODEC_IDS[encoder]}
        for track in info.audio:
            codecs[f"audio track {track.index}"] = track.codec
        check_container_codecs(container_codecs(out.suffix.lower()), out, codecs)
        check_writable_dir(out.parent, out)
    else:
        pattern = SequencePattern.parse(out)
        fmt = WRITE_EXTS[pattern.ext]
        if settings.codec in IMAGE_CODECS and settings.codec != fmt:
            raise InputError(f"{out} ends in {pattern.ext} but the codec is {settings.codec}; make them agree")
        check_writable_dir(pattern.directory, out)
    return kind


def encode_size(settings: EncodeSettings, size: tuple[int, int]) -> tuple[int, int]:
    """The size a video is encoded at for a picture of ``size``: H.264 4:2:0 needs an even width and height,
    ProRes an even width, FFV1 takes any size. The picture is padded (its last row/column repeated), never
    resampled, to reach it."""
    width, height = size
    if settings.codec == "h264":
        return width + width % 2, height + height % 2
    if settings.codec.startswith("prores"):
        return width + width % 2, height
    return width, height


def padding_note(out: str | Path, settings: EncodeSettings, size: tuple[int, int]) -> str | None:
    """One line when ``out`` is padded to an even size for its codec (None when not)."""
    padded = encode_size(settings, size)
    if padded == tuple(size):
        return None
    return (f"{out}: {settings.codec} needs an even size, so the {size[0]}x{size[1]} picture is padded to "
            f"{padded[0]}x{padded[1]} (edge repeated, not resampled); write .mkv (FFV1) to keep the size")


def pad_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxWxC ``image`` grown to ``size`` = (width, height) by repeating its last column/row."""
    h, w = image.shape[:2]
    if (w, h) == tuple(size):
        return image
    return np.pad(image, ((0, size[1] - h), (0, size[0] - w), (0, 0)), mode="edge")


def _refuse_input_overwrite(out: Path, info: MediaInfo) -> None:
    same = False
    if info.kind == "sequence" and is_pattern(out):
        a, b = SequencePattern.parse(out), SequencePattern.parse(info.path)
        same = (a.directory.resolve(), a.head, a.tail) == (b.directory.resolve(), b.head, b.tail)
    elif info.kind != "sequence" and not is_pattern(out):
        same = same_file(out, info.path)
    if same:
        raise InputError(f"the output {out} would overwrite the input; write to another path")


# ------------------------------------------------------------------------------------------------- video


@dataclass(frozen=True)
class _Encoding:
    """Encoder choice for one output: encoder name, pixel format, private options, colour tag codes."""

    encoder: str
    pix_fmt: str
    options: dict[str, str]
    matrix: str | None  # FFmpeg matrix name used for RGB -> YUV (None: RGB output or swscale default)
    tags: dict[str, int] = field(default_factory=dict)  # color_primaries/color_trc/colorspace/color_range


def _encoding(settings: EncodeSettings, info: MediaInfo, deep: bool) -> _Encoding:
    tags = {
        "color_primaries": avutil.tag_code(avutil.PRIMARIES, info.color_primaries),
        "color_trc": avutil.tag_code(avutil.TRC, info.color_trc),
        "colorspace": avutil.tag_code(avutil.MATRIX, info.colorspace),
        "color_range": avutil.tag_code(avutil.RANGE, info.color_range),
    }
    matrix = info.colorspace if info.colorspace != "gbr" else None
    if settings.codec == "ffv1":
        tags.update(colorspace=0, color_range=2)  # RGB planes, full range
        return _Encoding("ffv1", "gbrp16le" if deep else "bgr0",
                         {"level": "3", "slicecrc": "1", "g": "1", "slices": "4"}, None, tags)
    if info.colorspace == "gbr":  # RGB source going to a YUV codec: describe the matrix we use
        tags["colorspace"], matrix = 1, "bt709"
    if settings.codec == "h264":
        return _Encoding("libx264", "yuv420p", {"crf": str(settings.crf), "preset": settings.preset}, matrix, tags)
    profile, pix_fmt = ("hq", "yuv422p10le") if settings.codec == "prores_hq" else ("4444", "yuv444p10le")
    return _Encoding("prores_ks", pix_fmt, {"profile": profile, "vendor": "apl0"}, matrix, tags)


def _mov_options(time_base: Fraction, info: MediaInfo) -> dict[str, str]:
    """mov/mp4 muxer options that keep timestamps exact: the video track counts in the input's time base,
    and the movie timescale (edit lists: audio that starts late or is trimmed) divides every track's."""
    options = {"video_track_timescale": str(time_base.denominator)}
    movie = time_base.denominator
    for track in info.audio:
        if track.sample_rate:
            movie = math.lcm(movie, track.sample_rate)
    if movie <= 2**31 - 1:
        options["movie_timescale"] = str(movie)
    return options


class VideoSink:
    """Encodes frames into ``temp`` (a video file) and muxes the input's audio alongside."""

    def __init__(self, temp: Path, final: Path, info: MediaInfo, settings: EncodeSettings,
                 size: tuple[int, int]):
        self.frames_written = 0
        self.final = final
        self.info = info
        self.settings = settings
        self.size = size
        self.time_base = info.time_base if info.kind == "video" and info.time_base else 1 / Fraction(info.fps)
        self._frame_ticks = max(1, round(1 / (Fraction(info.fps) * self.time_base)))
        self._durations: dict[int, int] = {}
        self._prev_pts: int | None = None
        self._shift = 0
        self._last_end: Fraction | None = None
        self._stream = None
        self._encoding: _Encoding | None = None
        self._sws = VideoReformatter()
        self._region_sws = VideoReformatter()
        self._to_rgb: avutil.RgbConverter | None = None
        self._copier: AudioCopier | None = None
        self._source = None
        fmt = VIDEO_CONTAINERS[final.suffix.lower()]
        options = _mov_options(self.time_base, info) if fmt in ("mp4", "mov") else {}
        encoder = _encoding(settings, info, False).encoder
        try:
            self._out = av.open(avutil.local_url(temp), "w", format=fmt, options=options)
        except av.FFmpegError as exc:
            raise InputError(f"cannot create {final} ({exc}); check the path") from None
        try:
            self._source = open_source(Path(info.path)) if info.kind == "video" else None
            codecs = {"the video": _CODEC_IDS[encoder]}
            for track in info.audio:
                codecs[f"audio track {track.index}"] = track.codec
            check_container_codecs(self._out.supported_codecs, final, codecs)
        except BaseException:
            self.abort()
            raise

    # -- setup on the first frame (needs its bit depth, pts and timecode) --

    def _start(self, frame: Frame) -> None:
        deep = frame.image.dtype != np.uint8 if frame.image is not None else self.info.bit_depth > 8
        enc = _encoding(self.settings, self.info, deep)
        stream = self._out.add_stream(enc.encoder, rate=self.info.fps)
        stream.width, stream.height = encode_size(self.settings, self.size)
        stream.pix_fmt = enc.pix_fmt
        stream.time_base = self.time_base
        ctx = stream.codec_context
        ctx.time_base = self.time_base
        for key, code in enc.tags.items():
            if code is not None:
                setattr(ctx, key, code)
        # Frame threads (PyAV defaults to slice threads, which makes x264 slower and less efficient).
        ctx.thread_count = 0
        ctx.thread_type = "AUTO"
        stream.options = dict(enc.options)
        start_pts = 0
        if self._source is not None:
            source_video = avutil.video_stream(self._source)
            if source_video is not None:
                copy_stream_tags(source_video, stream)
                start_pts = source_video.start_time or 0
        tc = frame.timecode or timecode_at(self.info.timecode, self.info.fps, frame.number - self.info.first_frame)
        if tc:
            stream.metadata["timecode"] = tc
        self._stream, self._encoding = stream, enc
        if frame.pts is not None and self.info.kind == "video":
            self._shift = frame.pts - start_pts
        if self._source is not None and self.info.audio:
            self._copier = open_copier(Path(self.info.path), self._source, self._out)
            self._source = None
            start = Fraction(frame.pts if frame.pts is not None else 0) * self.time_base
            self._copier.begin(start, Fraction(self._shift) * self.time_base)

    # -- per frame --

    def write(self, frame: Frame) -> None:
        """Encode one frame (HxWx3 uint8/uint16/float32 RGB, or a decoded picture: :attr:`Frame.picture`) at the
        output size, keeping its timing."""
        if frame.image is not None and (frame.image.ndim != 3 or frame.image.shape[2] != 3):
            raise ValueError(f"frame {frame.number}: expected an HxWx3 RGB image, got shape {frame.image.shape}")
        try:
            if self._stream is None:
                self._start(frame)
            pts, duration, source_pts = self._timing(frame)
            if frame.image is None:
                picture = self._decoded(frame.picture)
            else:
                picture = self._region_picture(frame) or self._picture(frame.image)
            picture.pts = pts
            picture.time_base = self.time_base
            self._durations[pts] = duration
            self._mux(self._stream.encode(picture))
            self.frames_written += 1
            self._last_end = Fraction(source_pts + duration) * self.time_base
            if self._copier is not None:
                self._copier.copy_until(self._last_end)
        except av.FFmpegError as exc:
            raise MediaError(f"encoding frame {frame.number} into {self.final} failed ({exc}); "
                             "check disk space and retry") from None
        except OSError as exc:
            raise MediaError(f"writing {self.final} failed at frame {frame.number} ({exc.strerror}); "
                             "check disk space and retry") from None

    def _timing(self, frame: Frame) -> tuple[int, int, int]:
        """(output pts, duration, pts on the input timeline) in time_base ticks."""
        if self.info.kind == "video" and frame.pts is not None:
            source_pts = frame.pts
        else:
            source_pts = (frame.number - self.info.first_frame) * self._frame_ticks
        duration = frame.duration
        if not duration:  # a frame rebuilt without its duration: the last spacing seen is the best guess
            step = source_pts - self._prev_pts if self._prev_pts is not None else 0
            duration = step if step > 0 else self._frame_ticks
        self._prev_pts = source_pts
        return source_pts - self._shift, duration, source_pts

    def _decoded(self, picture: av.VideoFrame) -> av.VideoFrame:
        """A decoded picture of the input as the encoder's frame: as it is when it already has the encoder's pixel
        format and size (the encoder's colour tags are the input's), else through RGB like any rendered frame."""
        width, height = encode_size(self.settings, self.size)
        if (picture.format.name == self._encoding.pix_fmt and (picture.width, picture.height) == (width, height)
                and not int(picture.rotation or 0) % 360):
            picture.pict_type = PictureType.NONE  # the encoder chooses its own frame types
            return self._tagged(picture)
        if self._to_rgb is None:
            self._to_rgb = avutil.RgbConverter(self.info.bit_depth > 8, self.info.colorspace)
        return self._picture(self._to_rgb(picture))

    def _region_picture(self, frame: Frame) -> av.VideoFrame | None:
        """A rendered frame as its decoded picture with only ``frame.changed`` converted back from RGB
        (:func:`~vidswap.io.region_write.merge_region`), or None where :func:`~vidswap.io.region_write.mergeable`
        says that does not apply."""
        if not mergeable(frame, self.size, self._encoding.pix_fmt):
            return None
        return self._tagged(merge_region(frame.picture, frame.image, frame.changed, self._region_yuv))

    def _region_yuv(self, image: np.ndarray) -> av.VideoFrame:
        """(h, w, 3) uint8 RGB -> yuv420p as :meth:`_picture` converts a whole frame (its own swscale context:
        the region's size changes from frame to frame, the whole frame's does not)."""
        rgb = av.VideoFrame.from_ndarray(image, format="rgb24")
        return self._encoder_format(self._region_sws, rgb, image.shape[1], image.shape[0], Interpolation.BICUBIC)

    def _encoder_format(self, sws: VideoReformatter, rgb: av.VideoFrame, width: int, height: int,
                        flags) -> av.VideoFrame:
        """An RGB frame in the encoder's pixel format at ``width`` x ``height`` (its matrix and range for YUV)."""
        enc = self._encoding
        yuv = enc.pix_fmt.startswith("yuv")
        return sws.reformat(rgb, width=width, height=height, format=enc.pix_fmt, interpolation=flags,
                            dst_colorspace=avutil.sws_matrix(enc.matrix) if yuv else None,
                            dst_color_range=(enc.tags.get("color_range") or None) if yuv else None)

    def _picture(self, image: np.ndarray) -> av.VideoFrame:
        """RGB array -> frame in the encoder's pixel format, scaled to the output size, tagged."""
        width, height = self.size
        if (image.shape[1], image.shape[0]) == (width, height):  # odd plate, even-only codec: pad, not resample
            width, height = encode_size(self.settings, self.size)
            image = pad_to(image, (width, height))
        else:  # another size: scaled to the output size, then padded like any plate of it
            width, height = encode_size(self.settings, self.size)
        if image.dtype == np.uint8:
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            flags = Interpolation.BICUBIC
        else:
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(to_uint16(image)), format="rgb48le")
            flags = avutil.SWS_FLAGS
        return self._tagged(self._encoder_format(self._sws, rgb, width, height, flags))

    def _tagged(self, picture: av.VideoFrame) -> av.VideoFrame:
        """``picture`` with the encoder's colour tags set (those it has)."""
        for key, code in self._encoding.tags.items():
            if code is not None:
                setattr(picture, key, code)
        return picture

    def _mux(self, packets) -> None:
        for packet in packets:
            duration = self._durations.pop(packet.pts, None)
            if duration:
                packet.duration = duration
            self._out.mux_one(packet)

    # -- end --

    def finish(self) -> None:
        """Flush the encoder, copy the remaining audio, write the trailer (MediaError on failure)."""
        if self.frames_written == 0:
            raise MediaError(f"no frames were written to {self.final}; nothing to save")
        try:
            self._mux(self._stream.encode(None))
            if self._copier is not None:
                self._copier.finish(self._last_end)
            self._out.close()
        except av.FFmpegError as exc:
            raise MediaError(f"finishing {self.final} failed ({exc}); check disk space and retry") from None
        except OSError as exc:
            raise MediaError(f"finishing {self.final} failed ({exc.strerror}); check disk space and retry") from None
        finally:
            self._close_inputs()

    def abort(self) -> None:
        """Release everything without finishing (the caller deletes the temp file)."""
        self._close_inputs()
        try:
            self._out.close()
        except (av.FFmpegError, OSError, ValueError):
            return  # the file is being thrown away: a failure to finish its trailer does not matter

    def _close_inputs(self) -> None:
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        if self._source is not None:
            self._source.close()
            self._source = None


# ---------------------------------------------------------------------------------------------- sequences


class SequenceSink:
    """Writes each frame as ``pattern`` with the frame's own number, into a staging directory."""

    def __init__(self, staging: Path, pattern: SequencePattern, fmt: str, size: tuple[int, int],
                 exr: ExrOutput | None = None):
        self.frames_written = 0
        self.exr = exr
        self.staging = staging
        self.pattern = pattern
        self.fmt = fmt
        self.size = size
        self._numbers: set[int] = set()

    def write(self, frame: Frame) -> None:
        """Write frame ``frame.number`` (HxWx3 RGB uint8/uint16/float32), resized to the output size."""
        if frame.image.ndim != 3 or frame.image.shape[2] != 3:
            raise ValueError(f"frame {frame.number}: expected an HxWx3 RGB image, got shape {frame.image.shape}")
        if frame.number in self._numbers:
            raise ValueError(f"frame {frame.number} was written twice to {self.pattern.display()}")
        image = resize_image(frame.image, self.size)
        write_image_file(self.staging / self.pattern.name(frame.number), image, self.fmt, self.exr)
        self._numbers.add(frame.number)
        self.frames_written += 1

