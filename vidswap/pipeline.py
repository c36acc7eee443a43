"""Wires the stages of a shot in order: read -> (analyze -> swap -> composite) -> write -> mux.

This is the one module that knows the stage order. Stages exchange ``Frame`` records and batches; nothing here
holds all frames of a clip in memory.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

import cv2
import fileseq
import numpy as np

from vidswap.config import JobConfig
from vidswap.errors import InputError
from vidswap.io import EncodeSettings, Frame, MediaInfo, open_sink, output_kind, probe, read_frames, read_image

if TYPE_CHECKING:
    import torch


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
    warnings: list[str] = field(default_factory=list)

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
    return dataclasses.replace(frame, image=np.ascontiguousarray(cv2.resize(frame.image, size, interpolation=interp)))


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
# analysis and sources


def job_dir(out_path: Path) -> Path:
    """The job folder next to the output: tracks file, plots, summaries (``<output stem>.vidswap/``)."""
    name = Path(str(out_path).replace("#", "").replace("@", ""))
    stem = name.name.split("%")[0].rstrip("._-") if "%" in name.name else name.stem.rstrip("._-")
    return name.parent / f"{stem}.vidswap"


def resolve_device(name: str) -> "torch.device":
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA device; use --device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def load_source_faces(paths: tuple[str, ...], images: list[np.ndarray], models, warnings: list[str]) -> list:
    """Analyse the source portraits: the largest face of each (NoFaceError, exit 3, if a source has none)."""
    import torch

    from vidswap.composite.convert import to_float
    from vidswap.errors import NoFaceError
    from vidswap.faces.analyze import analyze_image
    from vidswap.faces.pose import decompose
    from vidswap.swap.core import SourceFace

    faces = []
    for path, image in zip(paths, images):
        found = analyze_image(image, models)
        if not found:
            raise NoFaceError(f"no usable face in source {path}: use a clear, front-facing portrait")
        if len(found) > 1:
            warnings.append(f"source {path} has {len(found)} faces; using the largest")
        face = found[0]
        pts = torch.from_numpy(face.landmarks.points)
        pose = decompose(pts[None])
        faces.append(SourceFace(image=to_float(image), landmarks=pts, x_c_obs=pose.x_c_obs[0],
                                yaw=float(pose.yaw[0]), pitch=float(pose.pitch[0]), roll=float(pose.roll[0]),
                                embedding=torch.from_numpy(face.embedding)))
    return faces


def analyze_shot(cfg: JobConfig, info: MediaInfo, numbers: list[int], models, tracks_path: Path,
                 timer: StageTimer, progress: Callable[[str, int, int], None] | None = None):
    """The analyze pass over the frames to render; reuses ``tracks_path`` when its inputs are unchanged."""
    from vidswap.faces.analyze import FrameAnalyzer, ShotAnalysis, analysis_key, input_fingerprint

    key = analysis_key(input_fingerprint(info.path if info.kind != "sequence" else Path(info.pattern)), numbers,
                       cfg.analysis, cfg.smoothing, models.model_hashes)
    if tracks_path.exists():
        try:
            cached = ShotAnalysis.load(tracks_path)
            if cached.header.get("key") == key:
                return cached
        except (OSError, ValueError, KeyError, InputError):
            pass  # unreadable or old: analyse again
    analyzer = FrameAnalyzer(models, cfg.analysis)
    done = 0
    with read_frames(info, frames_as_range(numbers), prefetch=max(4, cfg.batch_size)) as frames:
        for batch in _batches(frames, cfg.batch_size, timer):
            analyzer.push([f.number for f in batch], [f.image for f in batch])
            done += len(batch)
            if progress:
                progress("analyze", done, len(numbers))
    fps = float(info.fps) / max(1, cfg.every)
    result = analyzer.finish(fps, cfg.smoothing, {"key": key, "input": str(info.path), "fps": fps,
                                                  "width": info.width, "height": info.height})
    for name, sec in analyzer.stage_seconds.items():
        timer.seconds[name] += sec
    result.save(tracks_path)
    return result


def choose_targets(cfg: JobConfig, analysis, models, n_sources: int) -> dict[int, int | None]:
    """Track id -> source index (None = all sources combined as one identity)."""
    from types import SimpleNamespace

    from vidswap.faces.analyze import analyze_image
    from vidswap.faces.track import select_targets

    tracks = [SimpleNamespace(id=t.id, shot=t.shot, frames=t.frames, mean_area=t.mean_area,
                              embedding=t.embedding if t.embedding.size else None) for t in analysis.tracks]
    if cfg.target.map:
        mapping: dict[int, int | None] = {}
        for pair in cfg.target.map:
            try:
                tid, src = (int(x) for x in pair.split(":"))
            except ValueError:
                raise InputError(f"bad target map {pair!r}: use TRACK:SOURCE, e.g. 0:1") from None
            if tid not in {t.id for t in tracks}:
                raise InputError(f"target map {pair}: no track {tid}; tracks: {[t.id for t in tracks]}")
            if not 0 <= src < n_sources:
                raise InputError(f"target map {pair}: no source {src}; {n_sources} source(s) given")
            mapping[tid] = src
        return mapping
    reference = None
    if cfg.target.mode == "reference":
        faces = analyze_image(read_image(cfg.target.reference), models)
        if not faces:
            raise InputError(f"no face in the target reference {cfg.target.reference}")
        reference = faces[0].embedding
    ids = select_targets(tracks, cfg.target.mode, cfg.target.index, reference)
    return {tid: None for tid in ids}


def build_swap(cfg: JobConfig, info: MediaInfo, out_path: Path, timer: StageTimer,
               progress: Callable[[str, int, int], None] | None, warnings: list[str]):
    """Everything the render pass needs: models, sources, the shot analysis, targets -> a FaceSwapProcessor."""
    from vidswap.faces.analyze import AnalysisModels
    from vidswap.faces.topology import load_topology
    from vidswap.swap.core import GeometricSwapConfig, GeometricSwapCore
    from vidswap.swap.processor import FaceSwapProcessor, composite_params

    device = resolve_device(cfg.device)
    with timer.stage("load"):
        source_images = check_sources(cfg.sources)  # cheap checks first: a bad path fails before model loading
        models = AnalysisModels.load(cfg.analysis)
        topology = load_topology()
        sources = load_source_faces(cfg.sources, source_images, models, warnings)
    numbers = plan_frame_numbers(info, cfg.frames, cfg.every)
    analysis = analyze_shot(cfg, info, numbers, models, job_dir(out_path) / "tracks.npz", timer, progress)
    targets = choose_targets(cfg, analysis, models, len(sources))
    core = GeometricSwapCore(GeometricSwapConfig.from_config(cfg.swap, device=str(device)), topology)
    with timer.stage("load"):
        combined = core.prepare(sources)
        identities = {tid: combined if src is None else core.prepare([sources[src]]) for tid, src in targets.items()}
    return FaceSwapProcessor(analysis=analysis, targets=identities, core=core, regions=topology.regions,
                             params=composite_params(cfg.composite, cfg.seed), crop_size=cfg.swap.crop_size,
                             device=device)


# --------------------------------------------------------------------------------------------------------------
# the run


def passthrough(frames: list[Frame]) -> list[Frame]:
    """The pass-through core: frames unchanged (I/O testing, and the frames without a target face)."""
    return frames


def run(cfg: JobConfig, progress: Callable[[str, int, int], None] | None = None) -> RunSummary:
    """Run a whole shot job: analyze (cached), then one streaming render pass; return its summary.

    ``progress(stage, done, total)`` is called after every batch of the analyze and render passes.
    """
    if cfg.input is None:
        raise InputError("no input given: vidswap run INPUT (or input: in the shot YAML)")
    timer = StageTimer()
    start = time.perf_counter()
    info = probe(cfg.input)
    numbers = plan_frame_numbers(info, cfg.frames, cfg.every)
    out_path = Path(cfg.output.path) if cfg.output.path else default_output_path(info)
    if out_path.resolve() == Path(info.path).resolve():
        raise InputError(f"output {out_path} would overwrite the input; choose another -o")
    video_out = output_kind(out_path) == "video"
    size = output_size(info, cfg.scale, video_out)
    warnings: list[str] = []
    if cfg.swap.core == "passthrough":
        check_sources(cfg.sources)
        processor: FrameProcessor = passthrough
    else:
        processor = build_swap(cfg, info, out_path, timer, progress, warnings)
    written = 0
    with open_sink(out_path, info, settings_from_config(cfg, out_path), size=size) as sink:
        with read_frames(info, frames_as_range(numbers), prefetch=max(4, cfg.batch_size)) as frames:
            for batch in _batches(frames, cfg.batch_size, timer):
                with timer.stage("swap"):
                    batch = processor(batch)
                with timer.stage("encode"):
                    for frame in batch:
                        sink.write(resize_frame(frame, size))
                written += len(batch)
                if progress:
                    progress("render", written, len(numbers))
        mux_start = time.perf_counter()
    timer.seconds["mux"] += time.perf_counter() - mux_start
    with_summary = getattr(processor, "summary", None)
    swapped, passed = with_summary() if with_summary else (0, list(numbers))
    return RunSummary(input=str(info.path), output=str(out_path), frames_written=written, frames_swapped=swapped,
                      passed_through=passed, seconds=time.perf_counter() - start,
                      stage_seconds=dict(timer.seconds), width=size[0], height=size[1], warnings=warnings)


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
