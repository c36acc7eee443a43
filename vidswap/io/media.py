"""Probing media: what a clip, an image sequence or a still image is, as one immutable record.

``probe(path)`` reads every video packet's timestamp (no decoding beyond the first frame), so the frame count
is exact and variable frame rate is detected from the real pts deltas, not from the container's average rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidswap.errors import InputError
from vidswap.io import avutil
from vidswap.io.sequences import IMAGE_EXTS, SequencePattern, is_pattern, read_header, sequence_frames

DEFAULT_SEQUENCE_FPS = Fraction(24)  # image files carry no rate; replace() the MediaInfo to change it


@dataclass(frozen=True)
class AudioTrack:
    """One audio stream of a clip (index: the stream index in the container)."""

    index: int
    codec: str
    sample_rate: int
    channels: int
    language: str | None


@dataclass(frozen=True)
class MediaInfo:
    """Everything the pipeline needs to know about an input.

    width/height are the displayed size (after the rotation metadata is applied; frames come upright).
    first_frame is the first frame number: 0 for video and stills, the first file number for sequences.
    frame_count counts the frames a decoder delivers (edit-list-discarded packets excluded).
    fps is the nominal rate (CFR) or the average rate (VFR; ``vfr`` True, pts are the truth; timecodes
    then count frames at round(fps)).  Image inputs have no rate: 24 (use ``dataclasses.replace``).
    time_base is the video stream's time base (None for images); duration is in seconds.
    """

    path: Path
    kind: str  # 'video' | 'sequence' | 'image'
    width: int
    height: int
    frame_count: int
    first_frame: int
    fps: Fraction
    vfr: bool
    time_base: Fraction | None
    duration: float
    codec: str
    pix_fmt: str | None
    bit_depth: int
    color_primaries: str | None
    color_trc: str | None
    colorspace: str | None
    color_range: str | None
    timecode: str | None
    rotation: int
    audio: tuple[AudioTrack, ...]
    pattern: str | None

    @property
    def frame_numbers(self) -> range:
        """All frame numbers of the input, e.g. range(0, 472) or range(1001, 1101)."""
        return range(self.first_frame, self.first_frame + self.frame_count)

    def to_dict(self) -> dict:
        """JSON-able form (Fractions as "num/den" strings), for ``vidswap probe --json``."""
        out = {}
        for key in self.__dataclass_fields__:
            value = getattr(self, key)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Fraction):
                value = f"{value.numerator}/{value.denominator}"
            elif key == "audio":
                value = [dict(vars(track)) for track in value]
            out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "MediaInfo":
        """The record :meth:`to_dict` wrote (KeyError / TypeError / ValueError when it is not one)."""
        fields = dict(data)
        if set(fields) != set(cls.__dataclass_fields__):
            raise KeyError("not a MediaInfo record")
        fields["path"] = Path(fields["path"])
        fields["fps"] = Fraction(fields["fps"])
        fields["time_base"] = None if fields["time_base"] is None else Fraction(fields["time_base"])
        fields["audio"] = tuple(AudioTrack(**track) for track in fields["audio"])
        return cls(**fields)


def probe(path: str | Path) -> MediaInfo:
    """Describe a video file, an image-sequence pattern or a still image.

    InputError when the path is missing, is not media, or holds no frames.
    """
    text = str(path)
    if is_pattern(text):
        return _probe_sequence(text)
    path = Path(text)
    if not path.exists():
        raise InputError(f"input {path} does not exist; check the path")
    if not path.is_file():
        raise InputError(f"input {path} is not a file; give a video, an image or a pattern like plate.####.exr")
    if path.stat().st_size == 0:
        raise InputError(f"input {path} is empty (0 bytes); re-export or re-copy it")
    if path.suffix.lower() in IMAGE_EXTS:
        return _probe_image(path)
    return _probe_video(path)


# ------------------------------------------------------------------------------------------------ stills


def _image_info(path: Path, kind: str, first: int, count: int, header, pattern: str | None) -> MediaInfo:
    codec = {".jpg": "mjpeg", ".jpeg": "mjpeg", ".tif": "tiff"}.get(path.suffix.lower(), path.suffix.lower()[1:])
    return MediaInfo(path=path, kind=kind, width=header.width, height=header.height, frame_count=count,
                     first_frame=first, fps=DEFAULT_SEQUENCE_FPS, vfr=False, time_base=None,
                     duration=float(count / DEFAULT_SEQUENCE_FPS), codec=codec, pix_fmt=header.pix_fmt,
                     bit_depth=header.bit_depth, color_primaries=None, color_trc=None, colorspace=None,
                     color_range=None, timecode=None, rotation=0, audio=(), pattern=pattern)


def _probe_image(path: Path) -> MediaInfo:
    return _image_info(path, "image", 0, 1, read_header(path), None)


def _probe_sequence(text: str) -> MediaInfo:
    pattern = SequencePattern.parse(text)
    frames = sequence_frames(pattern, text)
    header = read_header(pattern.path(frames.start))
    return _image_info(Path(text), "sequence", frames.start, len(frames), header,
                       pattern.display(frames.start, frames[-1]))


# ------------------------------------------------------------------------------------------------- video


@dataclass(frozen=True)
class _Timing:
    """Video timing from the packet timestamps."""

    count: int
    pts: np.ndarray  # sorted presentation timestamps, shape (count,)
    last_duration: int | None
    packets: int  # every packet with data, edit-list-discarded ones included


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(avutil.local_url(path), metadata_errors="replace")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a readable media file ({exc}); check the file or re-export it") from None


def _read_timing(container, stream) -> tuple[_Timing, av.VideoFrame | None]:
    """Scan every packet of ``stream`` (the frame count and pts) and decode its first frame on the way."""
    pts, last_duration, first, packets = [], None, None, 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        packets += 1
        if first is None:
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                decoded = []
            first = decoded[0] if decoded else None
        if packet.is_discard:
            continue
        if packet.pts is not None:
            pts.append(packet.pts)
        last_duration = packet.duration or last_duration
    if first is None:
        try:
            decoded = stream.codec_context.decode(None)
            first = decoded[0] if decoded else None
        except av.FFmpegError:
            first = None
    count = len(pts)
    return _Timing(count, np.sort(np.asarray(pts, dtype=np.int64)), last_duration, packets), first


def _rate_and_vfr(stream, timing: _Timing) -> tuple[Fraction, bool]:
    """Nominal rate and VFR flag from the pts deltas (exact), falling back on the container's rates."""
    nominal = stream.base_rate or stream.guessed_rate or stream.average_rate
    tb = stream.time_base
    if timing.count < 2 or tb is None:
        return Fraction(nominal or DEFAULT_SEQUENCE_FPS), False
    deltas = np.diff(timing.pts)
    spread = int(deltas.max() - deltas.min())
    mean = Fraction(int(timing.pts[-1] - timing.pts[0]), timing.count - 1) * tb
    vfr = spread > max(1, int(0.002 * float(np.median(deltas))))
    if vfr:
        return (Fraction(1) / mean).limit_denominator(1001), True
    if nominal and abs(float(nominal) * float(mean) - 1.0) < 0.01:
        return Fraction(nominal), False
    return (Fraction(1) / mean).limit_denominator(1001), False


def _timecode(container, stream) -> str | None:
    """The start timecode: video stream tag, container tag, or a tmcd data stream."""
    sources = [stream.metadata, container.metadata] + [s.metadata for s in container.streams.data]
    for tags in sources:
        if tags.get("timecode"):
            return tags["timecode"]
    return None


def _audio_tracks(container) -> tuple[AudioTrack, ...]:
    tracks = []
    for stream in container.streams.audio:
        ctx = stream.codec_context
        language = stream.metadata.get("language")
        tracks.append(AudioTrack(index=stream.index, codec=stream.codec_context.codec.canonical_name,
                                 sample_rate=int(ctx.sample_rate or 0), channels=int(ctx.channels or 0),
                                 language=None if language in (None, "", "und") else language))
    return tuple(tracks)


def _probe_video(path: Path) -> MediaInfo:
    container = _open(path)
    with container:
        stream = avutil.video_stream(container)
        if stream is None:
            raise InputError(f"{path} has no video stream; give a video, an image or an image sequence")
        try:
            timing, first = _read_timing(container, stream)
        except av.FFmpegError as exc:
            raise InputError(f"{path} could not be read ({exc}); the file may be truncated or corrupt") from None
        if timing.count == 0 or first is None:
            raise InputError(f"{path} has no decodable video frames; the file may be truncated or corrupt")
        if stream.frames and timing.packets < stream.frames:
            raise InputError(f"{path} is truncated: its index lists {stream.frames} frames but only "
                             f"{timing.packets} are in the file; copy or export it again")
        fps, vfr = _rate_and_vfr(stream, timing)
        tb = Fraction(stream.time_base)
        duration = _duration(container, stream, timing, fps)
        rotation = int(first.rotation or 0) % 360
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        pix_fmt = first.format.name
        return MediaInfo(
            path=path, kind="video", width=width, height=height, frame_count=timing.count, first_frame=0,
            fps=fps, vfr=vfr, time_base=tb, duration=duration, codec=stream.codec_context.codec.canonical_name,
            pix_fmt=pix_fmt,
            bit_depth=avutil.pix_fmt_depth(pix_fmt),
            color_primaries=avutil.tag_name(avutil.PRIMARIES, first.color_primaries),
            color_trc=avutil.tag_name(avutil.TRC, first.color_trc),
            colorspace=avutil.tag_name(avutil.MATRIX, first.colorspace),
            color_range=avutil.tag_name(avutil.RANGE, first.color_range),
            timecode=_timecode(container, stream), rotation=rotation, audio=_audio_tracks(container), pattern=None,
        )


def _duration(container, stream, timing: _Timing, fps: Fraction) -> float:
    """Seconds from the first frame's pts to the end of the last frame."""
    if timing.count and stream.time_base is not None:
        last = timing.last_duration or (int(np.median(np.diff(timing.pts))) if timing.count > 1 else 0)
        if last or timing.count == 1:
            return float((int(timing.pts[-1] - timing.pts[0]) + (last or 0)) * stream.time_base)
    if stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return float(timing.count / fps)
