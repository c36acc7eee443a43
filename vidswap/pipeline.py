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

import fileseq
import numpy as np

from vidswap.config import JobConfig
from vidswap.errors import InputError
from vidswap.io import (EncodeSettings, Frame, MediaInfo, open_sink, output_kind, probe, read_frames, read_image,
                        resize_image)

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
    image = resize_image(frame.image, size)
    return frame if image is frame.image else dataclasses.replace(frame, image=image)


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
                 timer: StageTimer, progress: Callable[[str, int, int], None] | None = None, colour=None):
    """The analyze pass over the frames to render; reuses ``tracks_path`` when its inputs are unchanged.

    ``models`` None (pass-through jobs) records only the frames' timing (for chunked renders and assembly).
    ``colour``: a scene-linear plate's OCIO pipeline; the models see its display-referred picture.
    """
    from vidswap.faces.analyze import FrameAnalyzer, analysis_key
    from vidswap.faces.tracksfile import ShotAnalysis, input_fingerprint

    hashes = models.model_hashes if models is not None else {"passthrough": ""}
    if colour is not None:
        hashes = dict(hashes, colour=f"{colour.config_name}|{colour.input}|{colour.working}")
    key = analysis_key(input_fingerprint(info.path if info.kind != "sequence" else Path(info.pattern)), numbers,
                       cfg.analysis, cfg.smoothing, hashes)
    cached = load_cached_analysis(tracks_path, key)
    if cached is not None:
        return cached
    from vidswap.composite.linear import display_plate
    analyzer = None
    if models is not None:
        from functools import partial

        from vidswap.faces.topology import load_topology
        from vidswap.swap.processor import plate_skin_stats

        stats_fn = partial(plate_skin_stats, regions=load_topology().regions, device=resolve_device(cfg.device))
        analyzer = FrameAnalyzer(models, cfg.analysis, stats_fn=stats_fn)
    timing: dict[str, list] = {"pts": [], "durations": [], "numbers": []}
    done = 0
    with read_frames(info, frames_as_range(numbers), prefetch=max(4, cfg.batch_size)) as frames:
        for batch in _batches(frames, cfg.batch_size, timer):
            timing["numbers"] += [f.number for f in batch]
            timing["pts"] += [f.pts for f in batch]
            timing["durations"] += [getattr(f, "duration", None) for f in batch]
            if analyzer is not None:
                images = [f.image if colour is None else display_plate(colour, f.image) for f in batch]
                analyzer.push([f.number for f in batch], images)
            done += len(batch)
            if progress:
                progress("analyze", done, len(numbers))
    fps = float(info.fps) / max(1, cfg.every)
    header = {"key": key, "input": str(info.path), "fps": fps, "width": info.width, "height": info.height,
              "timing": timing}
    if analyzer is None:
        result = ShotAnalysis(header=dict(header, cuts=[], frames=timing["numbers"]), tracks=[])
    else:
        result = analyzer.finish(fps, cfg.smoothing, header)
        for name, sec in analyzer.stage_seconds.items():
            timer.seconds[name] += sec
    result.save(tracks_path)
    return result


def load_cached_analysis(tracks_path: Path, key: str | None):
    """The saved analysis if it exists and (when ``key`` is given) matches ``key``; else None."""
    from vidswap.faces.tracksfile import ShotAnalysis

    if not tracks_path.exists():
        return None
    try:
        cached = ShotAnalysis.load(tracks_path)
    except (OSError, ValueError, KeyError, InputError):
        return None  # unreadable or old: analyse again
    return cached if key is None or cached.header.get("key") == key else None


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


@dataclass
class ShotPlan:
    """What a job renders: the input, its frames, the output and the job folder.

    colour: the OCIO pipeline of a scene-linear (float, EXR) plate; None for display-referred inputs.
    """

    info: MediaInfo
    numbers: list[int]
    out_path: Path
    size: tuple[int, int]
    colour: object | None = None

    @property
    def job_dir(self) -> Path:
        return job_dir(self.out_path)


def plan_shot(cfg: JobConfig) -> ShotPlan:
    if cfg.input is None:
        raise InputError("no input given: vidswap run INPUT (or input: in the shot YAML)")
    info = probe(cfg.input)
    numbers = plan_frame_numbers(info, cfg.frames, cfg.every)
    patches = cfg.output.kind == "patch"
    if cfg.output.path:
        out_path = Path(cfg.output.path)
    else:
        out_path = default_output_path(info, "_face") if patches else default_output_path(info)
        if patches and info.kind != "sequence":
            out_path = out_path.with_name(f"{out_path.stem}.####.png")
    if out_path.resolve() == Path(info.path).resolve():
        raise InputError(f"output {out_path} would overwrite the input; choose another -o")
    if patches:
        from vidswap.composite.patch import check_patch_pattern

        check_patch_pattern(out_path)
        if cfg.output.compare or cfg.output.burnin:
            raise InputError("output.compare and output.burnin draw on whole frames; patch outputs have none")
    size = output_size(info, cfg.scale, output_kind(out_path) == "video")
    if cfg.output.compare:
        size = (size[0] * 2, size[1])
    return ShotPlan(info, numbers, out_path, size, shot_colour(cfg, info))


def is_float_plate(info: MediaInfo) -> bool:
    """A scene-linear plate: float pixels (EXR, float TIFF)."""
    return (info.pix_fmt or "").startswith("rgbf")


def shot_colour(cfg: JobConfig, info: MediaInfo):
    """The OCIO pipeline (``colorspace:`` section) for a float plate; None for display-referred inputs, whose
    pixels the models take as they are."""
    if not is_float_plate(info):
        return None
    from vidswap.io.colour import ColourPipeline

    return ColourPipeline.from_config(cfg.colorspace)


def linear_output(out_path: Path) -> bool:
    """Outputs that keep scene-linear float pixels (EXR / TIFF sequences); others get the display picture."""
    return Path(str(out_path)).suffix.lower() in (".exr", ".tif", ".tiff")


def build_processor(cfg: JobConfig, plan: ShotPlan, timer: StageTimer,
                    progress: Callable[[str, int, int], None] | None, warnings: list[str],
                    require_analysis: bool = False):
    """The frame processor for the render pass and the shot analysis (analysed now, or loaded from the job
    folder). ``require_analysis``: a farm render task must find the analysis the analyze task wrote."""
    if cfg.swap.core == "passthrough":  # no analysis needed, except a farm task's timing record
        check_sources(cfg.sources)
        return passthrough, _analysis(cfg, plan, None, timer, progress, True) if require_analysis else None
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
    analysis = _analysis(cfg, plan, models, timer, progress, require_analysis)
    targets = choose_targets(cfg, analysis, models, len(sources))
    if not analysis.tracks:
        warnings.append(f"no face found in {plan.info.path.name}; every frame passes through untouched")
    elif not targets:
        warnings.append(f"no face track matches the target selection ({cfg.target.mode}); frames pass through")
    core = GeometricSwapCore(GeometricSwapConfig.from_config(cfg.swap, device=str(device)), topology)
    with timer.stage("load"):
        combined = core.prepare(sources)
        identities = {tid: combined if src is None else core.prepare([sources[src]]) for tid, src in targets.items()}
    processor = FaceSwapProcessor(analysis=analysis, targets=identities, core=core, regions=topology.regions,
                                  params=composite_params(cfg.composite, cfg.seed), crop_size=cfg.swap.crop_size,
                                  device=device)
    if cfg.tune.enabled and identities:
        with timer.stage("tune"):
            processor.refiner = tune_refiner(cfg, plan, analysis, processor, retune=cfg.tune.retune and not
                                             require_analysis, progress=progress is not None)
    if plan.colour is not None and cfg.output.kind != "patch":  # patch jobs write the display crops themselves
        from vidswap.composite.linear import SceneLinearProcessor

        processor = SceneLinearProcessor(processor, plan.colour, display_output=not linear_output(plan.out_path))
    return processor, analysis


def tune_refiner(cfg: JobConfig, plan: ShotPlan, analysis, processor, retune: bool, progress: bool):
    """The tuned generator(s) for the processor's targets: loaded from the job folder's ``tune/`` cache when its
    inputs are unchanged, tuned now otherwise (pivotal tuning on the clip's own frames)."""
    from vidswap.swap.tune import TuneParams, build_refiner, frame_reader

    params = TuneParams.from_config(cfg.tune, enabled=True)
    read = frame_reader(plan.info)
    if plan.colour is not None:  # the generator learns on the display-referred picture the models see
        from vidswap.composite.linear import display_frames

        read = (lambda numbers, _read=read: display_frames(_read(numbers), plan.colour))
    refiner, _ = build_refiner(analysis, read,
                               processor.targets, params, plan.job_dir / "tune", retune, core=processor.core,
                               device=processor.device, progress=progress, crop_size=cfg.swap.crop_size)
    return refiner


def tune(cfg: JobConfig, progress: Callable[[str, int, int], None] | None = None) -> Path:
    """The tune pass alone (farm): tune the generator on the analysed shot and cache it in the job folder."""
    if cfg.swap.core == "passthrough" or not cfg.tune.enabled:
        plan = plan_shot(cfg)
        return plan.job_dir / "tune"  # nothing to tune: the render uses the swap core alone
    timer = StageTimer()
    plan = plan_shot(cfg)
    build_processor(cfg, plan, timer, progress, [], require_analysis=True)  # tunes (or finds the cache)
    return plan.job_dir / "tune"


def _analysis(cfg: JobConfig, plan: ShotPlan, models, timer: StageTimer, progress, require: bool):
    if require:
        found = load_cached_analysis(plan.job_dir / "tracks.npz", None)
        if found is None:
            raise InputError(f"no analysis in {plan.job_dir}: run `vidswap analyze` for this shot first")
        return found
    return analyze_shot(cfg, plan.info, plan.numbers, models, plan.job_dir / "tracks.npz", timer, progress,
                        plan.colour)


# --------------------------------------------------------------------------------------------------------------
# the run


def passthrough(frames: list[Frame]) -> list[Frame]:
    """The pass-through core: frames unchanged (I/O testing, and the frames without a target face)."""
    return frames


def run(cfg: JobConfig, progress: Callable[[str, int, int], None] | None = None, debug_frames: Path | None = None,
        contact_sheet: Path | None = None, contact_count: int = 12) -> RunSummary:
    """Run a whole shot job: analyze (cached in the job folder), then one streaming render pass to the output.

    ``progress(stage, done, total)`` is called after every batch of the analyze and render passes.
    ``debug_frames``: a folder for per-frame strips (target crop | render | mask | final) of every swapped face.
    ``contact_sheet``: a PNG of ``contact_count`` evenly sampled frames, plate | result.
    """
    timer = StageTimer()
    start = time.perf_counter()
    plan = plan_shot(cfg)
    warnings: list[str] = []
    processor, _ = build_processor(cfg, plan, timer, progress, warnings)
    if debug_frames is not None and hasattr(processor, "sinks"):
        processor.sinks.append(DebugStrips(Path(debug_frames)))
    if cfg.output.kind == "patch":
        written = render_patches(cfg, plan, plan.numbers, processor, timer, progress)
        write_patch_scripts(plan)
        return _summary(plan, processor, written, start, timer, warnings, plan.out_path)
    sheet = None
    if contact_sheet is not None:
        linear_result = plan.colour if linear_output(plan.out_path) else None
        sheet = ContactSheet.sampling(plan.numbers, contact_count, plan.colour, linear_result)
    written = render_frames(cfg, plan.info, plan.numbers, processor, plan.out_path, plan.size, timer, progress,
                            observer=sheet, decorate=frame_decoration(cfg, plan))
    if sheet is not None:
        sheet.save(Path(contact_sheet))
    return _summary(plan, processor, written, start, timer, warnings, plan.out_path)


def render_patches(cfg: JobConfig, plan: ShotPlan, numbers: list[int], processor: FrameProcessor, timer: StageTimer,
                   progress=None) -> int:
    """The render pass of a patch job: every swapped face of ``numbers`` as a patch file + sidecar (see
    :mod:`vidswap.composite.patch`), moved into the output directory when the pass succeeds. Returns the number
    of frames processed."""
    from vidswap.composite.patch import PatchWriter, check_patch_pattern
    from vidswap.io.atomic import atomic_files, ensure_writable_dir

    pattern = check_patch_pattern(plan.out_path)
    ensure_writable_dir(pattern.directory, plan.out_path)
    done = 0
    with atomic_files(pattern.directory) as staging:
        writer = PatchWriter(staging, pattern, (plan.info.width, plan.info.height), plan.colour)
        sinks = getattr(processor, "sinks", None)
        if sinks is not None:
            sinks.append(writer)
        for batch, _ in processed_batches(cfg, plan.info, numbers, processor, timer, progress, plan.colour):
            done += len(batch)
    return done


def write_patch_scripts(plan: ShotPlan) -> list[Path]:
    """The Nuke script of every track's patches (after all frames are on disk)."""
    from vidswap.composite.patch import check_patch_pattern, write_nuke_scripts

    return write_nuke_scripts(check_patch_pattern(plan.out_path))


def frame_decoration(cfg: JobConfig, plan: ShotPlan):
    """``decorate(plate, result) -> picture`` for ``output.compare`` / ``output.burnin``; None when neither."""
    if not (cfg.output.compare or cfg.output.burnin):
        return None
    from functools import partial

    from vidswap.composite.burnin import decorate_frame

    shot = Path(cfg.input).name if cfg.input else plan.info.path.name
    return partial(decorate_frame, compare=cfg.output.compare, burnin=cfg.output.burnin, shot=shot,
                   preset=cfg.preset, size=plan.size, fps=plan.info.fps)


@dataclass
class DebugStrips:
    """Writes ``<folder>/strip_<frame>_t<track>.png``: target crop | render | mask | final for each swapped face."""

    folder: Path

    def __call__(self, item) -> None:
        import cv2

        from vidswap.composite.debug import strip

        self.folder.mkdir(parents=True, exist_ok=True)
        final = item.target_crop * (1 - item.alpha) + item.crop * item.alpha
        image = strip(item.target_crop, item.crop, item.alpha, final)
        cv2.imwrite(str(self.folder / f"strip_{item.number:06d}_t{item.track}.png"), image[..., ::-1])


@dataclass
class ContactSheet:
    """Collects (plate, result) pairs of sampled frames during the render pass and writes them as one PNG."""

    wanted: set[int]
    pairs: list = field(default_factory=list)
    plate_colour: object | None = None  # a linear plate's OCIO pipeline: thumbnails show its display picture
    result_colour: object | None = None  # the same for linear results (EXR outputs)

    @classmethod
    def sampling(cls, numbers: list[int], count: int, plate_colour=None, result_colour=None) -> "ContactSheet":
        picks = np.linspace(0, len(numbers) - 1, min(count, len(numbers))).round().astype(int)
        return cls({numbers[i] for i in picks}, plate_colour=plate_colour, result_colour=result_colour)

    def __call__(self, before: list[Frame], after: list[Frame]) -> None:
        from vidswap.composite.linear import display_plate

        for a, b in zip(before, after):
            if a.number in self.wanted:
                plate = a.image if self.plate_colour is None else display_plate(self.plate_colour, a.image)
                result = b.image if self.result_colour is None else display_plate(self.result_colour, b.image)
                self.pairs.append((a.number, _thumb(plate), _thumb(result)))

    def save(self, path: Path) -> Path:
        import cv2

        from vidswap.composite.debug import contact_sheet

        sheet = contact_sheet([(a, b) for _, a, b in self.pairs], cols=2, cell_height=240,
                              labels=[f"frame {n}" for n, _, _ in self.pairs])
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), sheet[..., ::-1])
        return path


def _thumb(image: np.ndarray, height: int = 240) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def render_frames(cfg: JobConfig, info: MediaInfo, numbers: list[int], processor: FrameProcessor, out_path: Path,
                  size: tuple[int, int], timer: StageTimer, progress=None, settings: EncodeSettings | None = None,
                  sink_info: MediaInfo | None = None, observer: Callable[[list, list], None] | None = None,
                  decorate: Callable[[Frame, Frame], np.ndarray] | None = None) -> int:
    """Stream ``numbers`` of the input through ``processor`` into ``out_path``; returns the frames written.

    ``sink_info`` (default ``info``) is what the writer copies audio and timecode from; ``observer(before, after)``
    sees every batch before and after processing (contact sheets); ``decorate(plate, result)`` returns the picture
    written instead of the result (side-by-side compares, burn-ins).
    """
    written = 0
    settings = settings or settings_from_config(cfg, out_path)
    with open_sink(out_path, sink_info or info, settings, size=size) as sink:
        for batch, result in processed_batches(cfg, info, numbers, processor, timer, progress):
            if observer is not None:
                observer(batch, result)
            if decorate is not None:
                result = [dataclasses.replace(b, image=decorate(a, b)) for a, b in zip(batch, result)]
            with timer.stage("encode"):
                for frame in result:
                    sink.write(resize_frame(frame, size))
            written += len(result)
        mux_start = time.perf_counter()
    timer.seconds["mux"] += time.perf_counter() - mux_start
    return written


def processed_batches(cfg: JobConfig, info: MediaInfo, numbers: list[int], processor: FrameProcessor,
                      timer: StageTimer, progress=None, colour=None) -> Iterator[tuple[list[Frame], list[Frame]]]:
    """The render pass's read -> process loop: yields ``(plates, results)`` per batch of ``numbers`` and reports
    ``progress("render", done, total)`` once the caller has taken each batch. ``colour``: a linear plate's OCIO
    pipeline, to hand the processor display-referred frames."""
    done = 0
    with read_frames(info, frames_as_range(numbers), prefetch=max(4, cfg.batch_size)) as frames:
        if colour is not None:
            from vidswap.composite.linear import display_frames

            frames = display_frames(frames, colour)
        for batch in _batches(frames, cfg.batch_size, timer):
            with timer.stage("swap"):
                result = processor(batch)
            yield batch, result
            done += len(batch)
            if progress:
                progress("render", done, len(numbers))


def _summary(plan: ShotPlan, processor, written: int, start: float, timer: StageTimer, warnings: list[str],
             output: Path, numbers: list[int] | None = None) -> RunSummary:
    with_summary = getattr(processor, "summary", None)
    swapped, passed = with_summary() if with_summary else (0, list(numbers or plan.numbers))
    return RunSummary(input=str(plan.info.path), output=str(output), frames_written=written, frames_swapped=swapped,
                      passed_through=passed, seconds=time.perf_counter() - start,
                      stage_seconds=dict(timer.seconds), width=plan.size[0], height=plan.size[1], warnings=warnings)


# --------------------------------------------------------------------------------------------------------------
# farm passes: analyze once, render chunks independently, assemble


CHUNK_SETTINGS = EncodeSettings(codec="ffv1")


@dataclass
class AnalyzeReport:
    """What the analyze pass wrote: the tracks file, the analysis and its trajectory plots."""

    tracks_path: Path
    analysis: object
    targets: list[int]
    plots: list[Path]

    def lines(self) -> list[str]:
        a = self.analysis
        out = [f"{len(a.tracks)} track(s); shot cuts at frames: {fileseq_str(a.header.get('cuts', [])) or 'none'}"]
        for t in a.tracks:
            tag = "  <- target" if t.id in self.targets else ""
            out.append(f"track {t.id}: frames {fileseq_str(t.frames.tolist())} ({len(t.frames)}), "
                       f"{int(t.interpolated.sum())} interpolated, mean confidence {float(t.confidences.mean()):.2f}{tag}")
        return out


def analyze(cfg: JobConfig, progress: Callable[[str, int, int], None] | None = None) -> AnalyzeReport:
    """The analyze pass alone: writes (or reuses) the tracks file in the job folder, plots the target tracks'
    landmark trajectories (raw vs smoothed) next to it."""
    timer = StageTimer()
    plan = plan_shot(cfg)
    models = None
    if cfg.swap.core != "passthrough":
        from vidswap.faces.analyze import AnalysisModels

        models = AnalysisModels.load(cfg.analysis)
    tracks_path = plan.job_dir / "tracks.npz"
    analysis = analyze_shot(cfg, plan.info, plan.numbers, models, tracks_path, timer, progress,
                            plan.colour)
    targets, plots = [], []
    if models is not None and analysis.tracks:
        from vidswap.faces.overlay import plot_track

        targets = sorted(choose_targets(dataclasses.replace(cfg, target=dataclasses.replace(cfg.target, map=())),
                                        analysis, models, max(1, len(cfg.sources))))
        for track in analysis.tracks:
            if track.id in targets and len(track.frames) >= 3:
                plots.append(plot_track(track, analysis.header["fps"], plan.job_dir / f"track_{track.id}.png"))
    return AnalyzeReport(tracks_path, analysis, targets, plots)


def write_overlay(cfg: JobConfig, path: str | Path, progress: Callable[[str, int, int], None] | None = None) -> Path:
    """A video of the shot with the analysis drawn on it (boxes, track ids, landmarks, pose axes)."""
    from vidswap.faces.overlay import draw_overlay

    plan = plan_shot(cfg)
    analysis = load_cached_analysis(plan.job_dir / "tracks.npz", None)
    if analysis is None:
        raise InputError(f"no analysis in {plan.job_dir}: run `vidswap analyze` first")
    targets = {t.id for t in analysis.tracks}

    def draw(frames: list[Frame]) -> list[Frame]:
        if plan.colour is not None:  # drawn on the display-referred picture the models saw
            from vidswap.composite.linear import display_frames

            frames = list(display_frames(frames, plan.colour))
        return [dataclasses.replace(f, image=draw_overlay(f.image, f.number, analysis, targets)) for f in frames]

    out = Path(path)
    size = output_size(plan.info, cfg.scale, output_kind(out) == "video")
    render_frames(cfg, plan.info, plan.numbers, draw, out, size, StageTimer(), progress,
                  settings=EncodeSettings(codec="h264", crf=20, preset="veryfast"))
    return out


def chunk_dir(plan: ShotPlan, cfg: JobConfig, analysis_key: str) -> Path:
    """Chunks live in a folder named by everything their pixels depend on (the analysis and the render settings),
    so chunks of an earlier analysis or other settings are never mixed into an assembly."""
    import hashlib
    import json

    from vidswap.config import to_dict

    settings = {k: v for k, v in to_dict(cfg).items() if k not in ("frames", "output", "farm", "device", "batch_size")}
    settings["output_size"] = plan.size
    settings["decoration"] = (cfg.output.compare, cfg.output.burnin)
    if writes_in_place(cfg, plan):  # the chunk's frames are the output's own files: their place is part of it
        settings["output"] = [str(plan.out_path.resolve()), cfg.output.kind]
    blob = json.dumps({"analysis": analysis_key, "settings": settings}, sort_keys=True, default=str)
    return plan.job_dir / "chunks" / hashlib.sha256(blob.encode()).hexdigest()[:16]


def writes_in_place(cfg: JobConfig, plan: ShotPlan) -> bool:
    """Image-sequence and patch outputs: render tasks write their frames straight into the output (one file per
    frame, lossless, float kept) and mark the chunk done; video outputs are rendered to FFV1 chunks and
    concatenated by ``assemble``."""
    return cfg.output.kind == "patch" or output_kind(plan.out_path) != "video"


def chunk_path(folder: Path, numbers: list[int], done_marker: bool = False) -> Path:
    return folder / f"{numbers[0]:08d}-{numbers[-1]:08d}.{'done' if done_marker else 'mkv'}"


def missing_sequence_frames(out_path: Path, numbers: list[int]) -> list[int]:
    """The frames of ``numbers`` whose file of the image-sequence output ``out_path`` is not on disk."""
    from vidswap.io.sequences import SequencePattern

    pattern = SequencePattern.parse(out_path)
    return [n for n in numbers if not pattern.path(n).exists()]


def chunk_complete(path: Path, numbers: list[int], cfg: JobConfig, plan: ShotPlan) -> bool:
    """A chunk rendered before and complete: the FFV1 chunk with all its frames, or the done marker (and, for
    image sequences, every frame file of the chunk on disk)."""
    if not path.exists():
        return False
    if path.suffix == ".done":
        if cfg.output.kind == "patch":
            return True
        return not missing_sequence_frames(plan.out_path, numbers)
    try:
        return probe(path).frame_count == len(numbers)
    except InputError:
        return False  # unreadable leftover: render again


def render_chunk(cfg: JobConfig, chunk: str, force: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> tuple[Path, RunSummary | None]:
    """Render one frame chunk of the shot (``chunk``: a range within the shot's frames) into the job folder.

    Reads the analysis the analyze pass wrote (never re-analyses a part: chunks agree at the seams). A chunk whose
    output exists with the right frame count is skipped unless ``force`` (idempotent farm retries); outputs are
    written atomically, so a killed task leaves nothing that looks complete.
    """
    timer = StageTimer()
    start = time.perf_counter()
    plan = plan_shot(cfg)
    wanted = plan_frame_numbers(plan.info, chunk, 1)
    shot = set(plan.numbers)
    numbers = [n for n in wanted if n in shot]
    if not numbers:
        raise InputError(f"chunk {chunk} has none of the shot's frames ({fileseq_str(plan.numbers)})")
    analysis = load_cached_analysis(plan.job_dir / "tracks.npz", None)
    if analysis is None:
        raise InputError(f"no analysis in {plan.job_dir}: run `vidswap analyze` for this shot first")
    in_place = writes_in_place(cfg, plan)
    out = chunk_path(chunk_dir(plan, cfg, analysis.header["key"]), numbers, done_marker=in_place)
    if not force and chunk_complete(out, numbers, cfg, plan):
        return out, None
    warnings: list[str] = []
    processor, _ = build_processor(cfg, plan, timer, progress, warnings, require_analysis=True)
    if not in_place:
        chunk_info = dataclasses.replace(plan.info, audio=(), timecode=None)
        written = render_frames(cfg, plan.info, numbers, processor, out, plan.size, timer, progress,
                                settings=CHUNK_SETTINGS, sink_info=chunk_info, decorate=frame_decoration(cfg, plan))
        return out, _summary(plan, processor, written, start, timer, warnings, out, numbers)
    if cfg.output.kind == "patch":
        written = render_patches(cfg, plan, numbers, processor, timer, progress)
    else:
        written = render_frames(cfg, plan.info, numbers, processor, plan.out_path, plan.size, timer, progress,
                                decorate=frame_decoration(cfg, plan))
    from vidswap.io.atomic import atomic_file

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as temp:  # written last: a killed task leaves no marker
        temp.write_text(f"{fileseq_str(numbers)}\n")
    return out, _summary(plan, processor, written, start, timer, warnings, plan.out_path, numbers)


def assemble(cfg: JobConfig, progress: Callable[[str, int, int], None] | None = None) -> RunSummary:
    """Concatenate the shot's chunks in frame order into the output, with the input's timing, audio and
    timecode. Every frame of the shot must be covered by exactly the chunks found in the job folder."""
    from vidswap.faces.tracksfile import ShotAnalysis

    timer = StageTimer()
    start = time.perf_counter()
    plan = plan_shot(cfg)
    tracks = plan.job_dir / "tracks.npz"
    if not tracks.exists():
        raise InputError(f"no analysis in {plan.job_dir}: run `vidswap analyze` and the render chunks first")
    header = ShotAnalysis.load(tracks).header
    timing = header["timing"]
    pts = dict(zip(timing["numbers"], timing["pts"]))
    durations = dict(zip(timing["numbers"], timing["durations"]))
    folder = chunk_dir(plan, cfg, header["key"])
    spans = chunk_cover(folder, plan.numbers)
    covered = {n for first, last, _ in spans for n in plan.numbers if first <= n <= last}
    missing = sorted(set(plan.numbers) - covered)
    if missing:
        raise InputError(f"frames {fileseq_str(missing)} have no rendered chunk in {folder}; "
                         f"run `vidswap render --frames ...` for them")
    if writes_in_place(cfg, plan):  # the render tasks wrote the output's files; check them, script patches
        if cfg.output.kind == "patch":
            write_patch_scripts(plan)
        else:
            absent = missing_sequence_frames(plan.out_path, plan.numbers)
            if absent:
                raise InputError(f"frames {fileseq_str(absent)} of {plan.out_path} are missing although their "
                                 "chunks are marked done; render them again with --force")
        return _summary(plan, None, len(plan.numbers), start, timer, [], plan.out_path)
    written = 0
    with open_sink(plan.out_path, plan.info, settings_from_config(cfg, plan.out_path), size=plan.size) as sink:
        for first, last, path in spans:
            mine = [n for n in plan.numbers if first <= n <= last]
            if not mine:
                continue
            with read_frames(probe(path)) as frames:
                for number, frame in zip(mine, frames):
                    sink.write(Frame(number=number, pts=pts[number], timecode=None, image=frame.image,
                                     duration=durations[number]))
                    written += 1
                    if progress:
                        progress("assemble", written, len(plan.numbers))
    return _summary(plan, None, written, start, timer, [], plan.out_path)


def chunk_cover(folder: Path, numbers: list[int]) -> list[tuple[int, int, Path]]:
    """Non-overlapping chunks covering the shot, in frame order: ``(first, last, path)``.

    Chunks left from an earlier cut of the range (another chunk size) may overlap the current ones; walking in
    frame order, each next chunk must start after the last frame covered, and of chunks starting at the same
    frame the newest wins. Frames left uncovered are reported by the caller.
    """
    found = []
    for path in [*folder.glob("*.mkv"), *folder.glob("*.done")] if folder.exists() else []:
        try:
            first, last = (int(x) for x in path.stem.split("-"))
        except ValueError:
            continue
        found.append((first, -path.stat().st_mtime_ns, last, path))
    cover, end = [], None
    for first, _, last, path in sorted(found):
        if end is not None and first <= end:
            continue
        if any(first <= n <= last for n in numbers):
            cover.append((first, last, path))
            end = last
    return cover


def fileseq_str(numbers: list[int]) -> str:
    return str(fileseq.FrameSet(numbers)) if numbers else ""


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
