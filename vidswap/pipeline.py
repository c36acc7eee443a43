"""Wires the stages of a shot in order: read -> (analyze -> swap -> composite) -> write -> mux.

This is the one module that knows the stage order. Stages exchange ``Frame`` records and batches; nothing here
holds all frames of a clip in memory.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

import cv2
import fileseq
import numpy as np

from vidswap.config import JobConfig
from vidswap.errors import InputError
from vidswap.io import EncodeSettings, Frame, MediaInfo, open_sink, output_kind, probe, read_frames, read_image


class FrameProcessor(Protocol):
    """A stage that maps a batch of frames to a batch of frames (same numbers, same order)."""

    def __call__(self, frames: list[Frame]) -> list[Frame]: ...


@dataclass
class StageTimer:
    """Accumulates wall seconds per stage name."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


@dataclass
class RunSummary:
    """What a run did, for the CLI report and the tests."""

    input: str
    output: str
    frames_written: int
    frames_swapped: int
    passed_through: list[int]
    seconds: float
    stage_seconds: dict[str, float]
    width: int
    height: int

    @property
    def fps(self) -> float:
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------------------------------------------
# planning


def plan_frame_numbers(info: MediaInfo, frames: str | None, every: int) -> list[int]:
    """The frame numbers to render: the ``frames`` range (fileseq syntax) within the clip, every N-th."""
    available = info.frame_numbers
    if frames is None:
        numbers = list(available)
    else:
        try:
            wanted = list(fileseq.FrameSet(str(frames)))
        except fileseq.ParseException:
            raise InputError(f"bad frame range {frames!r}: use e.g. 1001-1100 or 0-99x2") from None
        outside = [n for n in wanted if n not in available]
        if outside:
            raise InputError(f"frame range {frames} is outside {info.path.name}'s frames "
                             f"{available.start}-{available.stop - 1}")
        numbers = wanted
    return numbers[::every]


def frames_as_range(numbers: list[int]) -> range:
    """``numbers`` as a range (they are evenly spaced by construction)."""
    if len(numbers) == 1:
        return range(numbers[0], numbers[0] + 1)
    step = numbers[1] - numbers[0]
    if any(b - a != step for a, b in zip(numbers, numbers[1:])):
        raise InputError("frame ranges with gaps are not supported; render each part separately")
    return range(numbers[0], numbers[-1] + 1, step)


def default_output_path(info: MediaInfo, suffix: str = "_swapped") -> Path:
    """``<input stem>_swapped.<ext>`` next to the input; sequences keep their padding and numbering."""
    if info.kind == "sequence" and info.pattern:
        seq = fileseq.FileSequence(info.pattern)
        base = Path(seq.basename().rstrip("._-") + suffix)
        return Path(seq.dirname() or ".") / f"{base}.{seq.padding()}{seq.extension()}"
    path = Path(info.path)
    ext = path.suffix if info.kind == "video" else ".mp4"
    return path.with_name(f"{path.stem}{suffix}{ext}")


def output_size(info: MediaInfo, scale: float, video_out: bool) -> tuple[int, int]:
    """(width, height) after scaling; even for video codecs with chroma subsampling."""
    w, h = info.width * scale, info.height * scale
    if video_out:
        return max(2, int(round(w / 2)) * 2), max(2, int(round(h / 2)) * 2)
    return max(1, int(round(w))), max(1, int(round(h)))


def resize_frame(frame: Frame, size: tuple[int, int]) -> Frame:
    """Resize keeping dtype (uint8 / uint16 / float) and timing."""
    h, w = frame.image.shape[:2]
    if (w, h) == size:
        return frame
    interp = cv2.INTER_AREA if size[0] < w else cv2.INTER_CUBIC
    image = cv2.resize(frame.image, size, interpolation=interp)
    return Frame(number=frame.number, pts=frame.pts, timecode=frame.timecode, image=np.ascontiguousarray(image))


def check_sources(paths: tuple[str, ...]) -> list[np.ndarray]:
    """Read every source portrait; a missing or unreadable one is an InputError (exit 2)."""
    if not paths:
        raise InputError("no source image given: use --source IMAGE (or sources: in the shot YAML)")
    return [read_image(p) for p in paths]


def settings_from_config(cfg: JobConfig, out_path: Path) -> EncodeSettings:
    codec = cfg.output.codec or _codec_for(out_path)
    return EncodeSettings(codec=codec, crf=cfg.output.crf, preset=cfg.output.encoder_preset)


def _codec_for(path: Path) -> str:
    ext = Path(str(path).replace("#", "").replace("@", "")).suffix.lower()
    return {".exr": "exr", ".png": "png", ".tif": "tiff", ".tiff": "tiff", ".mkv": "ffv1"}.get(ext, "h264")


# --------------------------------------------------------------------------------------------------------------
# the run


def passthrough(frames: list[Frame]) -> list[Frame]:
    """The pass-through core: frames unchanged (I/O testing, and the frames without a target face)."""
    return frames


def run(cfg: JobConfig, processor_factory: Callable[[JobConfig, MediaInfo], FrameProcessor] | None = None,
        progress: Callable[[int, int], None] | None = None) -> RunSummary:
    """Run a whole shot job in one streaming pass and return its summary.

    ``processor_factory(cfg, info)`` builds the per-batch frame processor (the swap); ``None`` = pass-through.
    ``progress(done, total)`` is called after every written batch.
    """
    if cfg.input is None:
        raise InputError("no input given: vidswap run INPUT (or input: in the shot YAML)")
    timer = StageTimer()
    start = time.perf_counter()
    info = probe(cfg.input)
    check_sources(cfg.sources)
    numbers = plan_frame_numbers(info, cfg.frames, cfg.every)
    out_path = Path(cfg.output.path) if cfg.output.path else default_output_path(info)
    if out_path.resolve() == Path(info.path).resolve():
        raise InputError(f"output {out_path} would overwrite the input; choose another -o")
    video_out = output_kind(out_path) == "video"
    size = output_size(info, cfg.scale, video_out)
    processor = processor_factory(cfg, info) if processor_factory else passthrough
    written = 0
    with open_sink(out_path, info, settings_from_config(cfg, out_path), size=size) as sink:
        with read_frames(info, frames_as_range(numbers), prefetch=max(4, cfg.batch_size)) as frames:
            for batch in _batches(frames, cfg.batch_size, timer):
                with timer.stage("process"):
                    batch = processor(batch)
                with timer.stage("encode"):
                    for frame in batch:
                        sink.write(resize_frame(frame, size))
                written += len(batch)
                if progress:
                    progress(written, len(numbers))
    with_summary = getattr(processor, "summary", None)
    swapped, passed = (with_summary() if with_summary else (0, list(numbers)))
    return RunSummary(input=str(info.path), output=str(out_path), frames_written=written, frames_swapped=swapped,
                      passed_through=passed, seconds=time.perf_counter() - start,
                      stage_seconds=dict(timer.seconds), width=size[0], height=size[1])


def _batches(frames: Iterator[Frame], size: int, timer: StageTimer) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    it = iter(frames)
    while True:
        with timer.stage("decode"):
            frame = next(it, None)
        if frame is None:
            break
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
