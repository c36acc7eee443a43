"""Wires the stages of a shot in order: read -> analyze (cached) -> render stage -> write.

This is the one module that knows the stage order; the stages live elsewhere (face analysis in
:mod:`vidswap.faces`, the render stage in :mod:`vidswap.render`, tuning in :mod:`vidswap.train.tune`, the farm
passes in :mod:`vidswap.jobs.passes`). Stages exchange ``Frame`` records and batches; nothing here holds all
frames of a clip in memory.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidswap.composite.patch import (NukePlate, PatchWriter, check_patch_pattern, plate_grain_record, track_pattern,
                                     write_nuke_scripts)
from vidswap.config import JobConfig
from vidswap.copy_stage import CopyStage
from vidswap.memory import RENDER_CROP_PIXELS, release_after_analysis
from vidswap.io import EncodeSettings, Frame, MediaInfo, open_sink, output_kind, resize_image
from vidswap.io.atomic import atomic_files, ensure_writable_dir
from vidswap.io.background import background_writer
from vidswap.io.colour import ColourPipeline
from vidswap.io.sequences import SequencePattern
from vidswap.io.writers import padding_note
from vidswap.preflight import SideOutputs, check_job
from vidswap.shot import ShotPlan, check_sources, exr_output, frame_decoration, linear_output, plan_shot, \
    resolve_device, settings_from_config
from vidswap.swap import CoreContext, build_core
from vidswap.swap.registry import known_passthrough
from vidswap.models.runtime import default_threads
from vidswap.render_loop import frames_in_flight, processed_batches, render_threads
from vidswap.timing import Progress, StageTimer

# What a swapping job uses (torch, kornia, the models) is imported by the functions that use it: a pass-through
# run imports none of it (tests/test_cli_imports.py).
if TYPE_CHECKING:
    from vidswap.faces.analyze import AnalysisModels
    from vidswap.faces.tracksfile import ShotAnalysis
    from vidswap.render import RenderStage
    from vidswap.swap import Refiner, SourceFace, SourceIdentity, SwapCore
    from vidswap.swap.facedancer import FaceDancerCore
    from vidswap.swap.learned import LearnedSwapCore
    from vidswap.swap.stylegan.core import E4SPTICore
    from vidswap.swap.stylegan.e4s_core import E4SCore
    from vidswap.train.tune.data import FramesReader

#: A stage that maps a batch of frames to a batch of frames (same numbers, same order).
FrameProcessor = Callable[[list[Frame]], list[Frame]]


@dataclass
class RunSummary:
    """What a run did, for the CLI report and the tests. ``swapping``: the core changes faces (False for
    pass-through jobs and for passes that only move frames, like ``assemble``)."""

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
    swapping: bool = True
    runtime: str = ""  # what ran the swap core (SwapCore.runtime), when it says

    @property
    def fps(self) -> float:
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------------------------------------------
# analysis and sources


def load_source_faces(paths: tuple[str, ...], images: list[np.ndarray], models: AnalysisModels,
                      warnings: list[str]) -> list[SourceFace]:
    """Analyse the source portraits: the largest face of each (NoFaceError, exit 3, if a source has none)."""
    from vidswap.source_cache import analyse_source, source_faces

    return source_faces(paths, images, lambda path, image: analyse_source(path, image, models), warnings)


# --------------------------------------------------------------------------------------------------------------
# the render stage


@dataclass
class RenderSetup:
    """The render stage of a job and what feeds it.

    stage:     the :class:`~vidswap.render.RenderStage` (its ``sinks`` take face layers, ``summary()`` reports), or
               a pass-through core's :class:`~vidswap.copy_stage.CopyStage`.
    processor: what the frames go through: the stage, or the scene-linear wrapper around it for float plates.
    analysis:  the shot's analysis (None for a pass-through run that needs none).
    """

    stage: RenderStage | CopyStage
    processor: FrameProcessor
    analysis: ShotAnalysis | None


def job_core(cfg: JobConfig, context: CoreContext) -> SwapCore:
    """The job's swap core (``swap.core`` and its ``swap.<core>`` section); the context gets the job's
    ``models.accept_noncommercial`` and ``composite.regions``."""
    context = dataclasses.replace(context, accept_noncommercial=frozenset(cfg.models.accept_noncommercial),
                                  regions=tuple(cfg.composite.regions))
    return build_core(cfg.swap.core, cfg.swap.section(), context)


def _identity_inputs(cfg: JobConfig, which: int | None) -> tuple[list[int], dict, list[str]]:
    """(picked sources, core settings, source keys) that key a prepared identity's record."""
    from vidswap.source_cache import source_key

    picked = list(range(len(cfg.sources))) if which is None else [which]
    settings = {"section": dataclasses.asdict(cfg.swap.section()), "regions": list(cfg.composite.regions),
                "accept_noncommercial": sorted(cfg.models.accept_noncommercial)}
    return picked, settings, [source_key(cfg.sources[k]) for k in picked]


def prepared_identity(cfg: JobConfig, core: SwapCore, sources: list[SourceFace], folder: Path, device,
                      which: int | None) -> SourceIdentity:
    """``core.prepare`` of all ``sources`` (``which`` None) or of source ``which`` alone, recorded in the job
    folder's ``sources/`` so a farm render task or a re-run reads it instead (:mod:`vidswap.identity_cache`)."""
    from vidswap.code_stamp import package_digest

    return _prepared_and_key(cfg, core, sources, folder, device, which, package_digest())[0]


def _prepared_and_key(cfg: JobConfig, core: SwapCore, sources: list[SourceFace], folder: Path, device,
                      which: int | None, code: str) -> tuple[SourceIdentity, str]:
    """:func:`prepared_identity` and its record key, the source files hashed once for both; ``code``: the
    package's digest, which a record must have been made by to be read back."""
    from vidswap.identity_cache import cached_identity, identity_key

    picked, settings, keys = _identity_inputs(cfg, which)
    key = identity_key(cfg.swap.core, settings, device, keys)
    return cached_identity(core, key, [sources[k] for k in picked], folder, device, code), key


def target_identities(cfg: JobConfig, core: SwapCore, sources: list[SourceFace], analysis: ShotAnalysis,
                      targets: dict[int, int | None], folder: Path, device) -> dict[int, SourceIdentity]:
    """Each target track's identity (``core.for_target`` of its prepared source identity), the per-target set-up
    recorded in the job folder's ``sources/`` next to the prepared identities (:mod:`vidswap.target_cache`), so
    every farm render task of the shot reads it instead of computing it again."""
    from vidswap.code_stamp import package_digest
    from vidswap.target_cache import cached_target

    code = package_digest()
    prepared: dict[int | None, tuple[SourceIdentity, str]] = {}
    identities = {}
    for tid, src in targets.items():
        if src not in prepared:
            prepared[src] = _prepared_and_key(cfg, core, sources, folder, device, src, code)
        identity, key = prepared[src]
        identities[tid] = cached_target(core, identity, key, analysis.track(tid), folder, device, code)
    return identities


def require_analysis(cfg: JobConfig, plan: ShotPlan, core: SwapCore | None = None) -> ShotAnalysis:
    """The up-to-date analysis a farm task must find in the job folder (:func:`load_job_analysis`); ``core``: the
    job's core, if the caller has built it (else it is built here, for its ``passes_through``)."""
    from vidswap.analysis_cache import load_job_analysis

    core = core if core is not None else job_core(cfg, CoreContext())
    return load_job_analysis(cfg, plan, core.passes_through)


def build_render(cfg: JobConfig, plan: ShotPlan, timer: StageTimer, progress: Progress | None, warnings: list[str],
                 farm_task: bool = False, farm_analysis: ShotAnalysis | None = None,
                 farm_core: SwapCore | None = None) -> RenderSetup:
    """The render stage for the job and the shot analysis (analysed now, or loaded from the job folder; a farm
    task must find the analysis the analyze task wrote, or pass the one it has read as ``farm_analysis``, and the
    job's core it has built for that, on the job's device, as ``farm_core``: a core is built once per task).
    Tunes the refiner when ``tune.enabled``. A pass-through core's frames are copied (:class:`CopyStage`); the
    built-in one is known before it is built, so its jobs resolve no device and import no torch."""
    device = "cpu" if farm_core is None and known_passthrough(cfg.swap.core) else resolve_device(cfg.device)
    context = CoreContext(device=device)
    with timer.stage("load"):
        # cheap checks first: a bad source path fails before model loading; a pass-through core needs no source
        source_images = check_sources(cfg.sources) if cfg.sources else []
        matte = None
        if cfg.composite.matte:  # read with OpenCV: imported by the jobs that have one
            from vidswap.composite.matte import UserMatte

            matte = UserMatte.open(cfg.composite.matte, plan.numbers, (plan.info.width, plan.info.height))
        core = farm_core if farm_core is not None else job_core(cfg, context)
        if not source_images and not core.passes_through:
            check_sources(cfg.sources)  # InputError: no source given
    if core.passes_through:  # no faces analysed; a farm task still reads the frames' timing record
        analysis = (farm_analysis or require_analysis(cfg, plan, core)) if farm_task else None
        stage = CopyStage(core)
        return RenderSetup(stage, stage, analysis)
    from vidswap.analysis_cache import analyze_shot
    from vidswap.composite.compositor import composite_params
    from vidswap.composite.linear import SceneLinearProcessor
    from vidswap.composite.matte import MatteWriter
    from vidswap.faces.targets import choose_targets
    from vidswap.render import RenderStage
    from vidswap.source_cache import cached_source_faces

    relit = cfg.swap.core == "geometric" and getattr(cfg.swap.section(), "appearance", None) == "relit"
    params = composite_params(cfg.composite, cfg.seed, relit=relit)
    loaded: list[AnalysisModels] = []

    def models() -> AnalysisModels:  # loaded when first needed: a farm task whose sources are recorded never does
        if not loaded:
            from vidswap.faces.analyze import AnalysisModels  # (nor imports the analyzer)

            loaded.append(AnalysisModels.load(cfg.analysis))
        return loaded[0]

    with timer.stage("load"):
        if not farm_task:
            models()
        topology = context.topology
        sources = cached_source_faces(cfg.sources, source_images, plan.job_dir / "sources", models, warnings) \
            if core.needs else []
    if farm_task:
        analysis = farm_analysis or require_analysis(cfg, plan, core)
    else:
        analysis = analyze_shot(cfg, plan.info, plan.numbers, models(), plan.tracks_path, timer, progress,
                                plan.colour, plan.work_size)
    targets = choose_targets(cfg.target, analysis, models() if cfg.target.mode == "reference" else None,
                             len(sources))
    if loaded:  # the analysis models are not needed past here; neither is what the analysis pass freed
        loaded.clear()
        release_after_analysis()
    if not analysis.tracks:
        warnings.append(f"no face found in {plan.info.path.name}; every frame passes through untouched")
    elif not targets:
        warnings.append(f"no face track matches the target selection ({cfg.target.mode}); frames pass through")
    with timer.stage("load"):
        identities = target_identities(cfg, core, sources, analysis, targets, plan.job_dir / "sources", device)
    stage = RenderStage(analysis, identities, core, topology.regions, params, device,
                        plate_layers=plan.colour is not None and cfg.output.kind != "patch", matte=matte,
                        crop_pixels=RENDER_CROP_PIXELS)
    if cfg.composite.matte_output:
        stage.matte_sinks.append(MatteWriter.create(cfg.composite.matte_output))
    if cfg.tune.enabled and identities:
        from vidswap.swap.facedancer import FaceDancerCore
        from vidswap.swap.learned import LearnedSwapCore
        from vidswap.swap.stylegan.core import E4SPTICore
        from vidswap.swap.stylegan.e4s_core import E4SCore

        with timer.stage("tune"):
            if isinstance(core, (LearnedSwapCore, FaceDancerCore, E4SPTICore, E4SCore)):  # the swapper is tuned
                tune_learned(cfg, plan, analysis, core, identities, warnings, cfg.tune.retune and not farm_task)
            else:
                stage.refiner = tune_refiner(cfg, plan, analysis, stage, retune=cfg.tune.retune and not farm_task,
                                             progress=progress is not None)
    processor: FrameProcessor = stage
    if stage.plate_layers:  # float plates: the faces are laid over the linear plate (patch jobs write crops)
        linear = SceneLinearProcessor(stage, plan.colour, display_output=not linear_output(plan.out_path))
        stage.sinks.append(linear.collect)
        processor = linear
    return RenderSetup(stage, processor, analysis)


def tune_refiner(cfg: JobConfig, plan: ShotPlan, analysis: ShotAnalysis, stage: RenderStage, retune: bool,
                 progress: bool) -> Refiner:
    """The tuned generator(s) for the stage's targets: loaded from the job folder's ``tune/`` cache when its
    inputs are unchanged, tuned now otherwise (pivotal tuning on the clip's own frames)."""
    from vidswap.train.tune.cache import build_refiner  # the tuning stack: only jobs that tune import it
    from vidswap.train.tune.data import frame_reader

    read: FramesReader = frame_reader(plan.info)
    if plan.work_size is not None:  # the analysis's coordinates: frames at the job's working size
        read = partial(_resized_reader, read, plan.work_size)
    if plan.colour is not None:  # the generator learns on the display-referred picture the models see
        read = partial(_display_reader, read, plan.colour)
    refiner, _ = build_refiner(analysis, read, stage.targets, cfg.tune, plan.job_dir / "tune", retune,
                               core=stage.core, device=stage.device, progress=progress)
    return refiner


def tune_learned(cfg: JobConfig, plan: ShotPlan, analysis: ShotAnalysis,
                 core: LearnedSwapCore | FaceDancerCore | E4SPTICore | E4SCore,
                 identities: dict[int, SourceIdentity], warnings: list[str], retune: bool) -> None:
    """Tune a learned swapper (ONNX graph in torch), a trained FaceDancer generator or the e4s-pti / e4s core's
    StyleGAN2 generator (PTI) on the clip (or load its cached weights from ``tune/``); the core then runs it."""
    from vidswap.swap.facedancer import FaceDancerCore
    from vidswap.swap.stylegan.core import E4SPTICore
    from vidswap.swap.stylegan.e4s_core import E4SCore
    from vidswap.train.e4s.tune import tune_e4s_core  # the tuning stack: only jobs that tune import it
    from vidswap.train.facedancer.clip_tune import tune_facedancer_core
    from vidswap.train.learned import tune_learned_core
    from vidswap.train.stylegan_pti import tune_e4s_pti_core
    from vidswap.train.tune.cache import identity_hash
    from vidswap.train.tune.data import frame_reader

    read: FramesReader = frame_reader(plan.info)
    if plan.work_size is not None:  # the analysis's coordinates: frames at the job's working size
        read = partial(_resized_reader, read, plan.work_size)
    if plan.colour is not None:
        read = partial(_display_reader, read, plan.colour)
    identity = next(iter(identities.values()))
    if any(identity_hash(i) != identity_hash(identity) for i in identities.values()):
        warnings.append("a learned swapper is tuned for one source identity; tuned for the first target's")
    tuner = (tune_facedancer_core if isinstance(core, FaceDancerCore) else
             tune_e4s_pti_core if isinstance(core, E4SPTICore) else
             tune_e4s_core if isinstance(core, E4SCore) else tune_learned_core)
    tuner(core, analysis, read, identity, cfg.tune, plan.job_dir / "tune", retune, track_ids=list(identities))


def _resized_reader(read: FramesReader, size: tuple[int, int], numbers: list[int]) -> Iterator[Frame]:
    return (resize_frame(frame, size) for frame in read(numbers))


def _display_reader(read: FramesReader, colour: ColourPipeline, numbers: list[int]) -> Iterator[Frame]:
    from vidswap.composite.linear import display_frames

    return display_frames(read(numbers), colour)


# --------------------------------------------------------------------------------------------------------------
# the run


def run(cfg: JobConfig, progress: Progress | None = None, debug_frames: Path | None = None,
        contact_sheet: Path | None = None, contact_count: int = 12) -> RunSummary:
    """Run a whole shot job: analyze (cached in the job folder), then one streaming render pass to the output.

    ``progress(stage, done, total)`` is called after every batch of the analyze and render passes.
    ``debug_frames``: a folder for per-frame strips (target crop | render | mask | final) of every swapped face.
    ``contact_sheet``: a PNG of ``contact_count`` evenly sampled frames, plate | result.
    """
    timer = StageTimer()
    start = time.perf_counter()
    plan = plan_shot(cfg)
    check_job(cfg, plan, SideOutputs(contact_sheet=contact_sheet, debug_frames=debug_frames))
    warnings: list[str] = []
    setup = build_render(cfg, plan, timer, progress, warnings)
    if debug_frames is not None:
        from vidswap.composite.debug import DebugStrips

        setup.stage.sinks.append(DebugStrips(Path(debug_frames)))
    if cfg.output.kind == "patch":
        written = render_patches(cfg, plan, plan.numbers, setup, timer, progress)
        outputs = patch_outputs(plan, write_patch_scripts(cfg, plan))
        return summarise(plan, setup.stage, written, start, timer, warnings, outputs)
    if output_kind(plan.out_path) == "video":
        note = padding_note(plan.out_path, settings_from_config(cfg, plan.out_path), plan.size)
        warnings += [note] if note else []
    sheet = None
    if contact_sheet is not None:
        from vidswap.composite.debug import ContactSheet

        linear_result = plan.colour if linear_output(plan.out_path) else None
        sheet = ContactSheet.sampling(plan.numbers, contact_count, plan.colour, linear_result)
    decorate = frame_decoration(cfg, plan)
    written = render_frames(cfg, plan.info, plan.numbers, setup.processor, plan.out_path, plan.size, timer,
                            progress, observer=sheet, decorate=decorate, work_size=plan.work_size,
                            rgb=not copies_pictures(cfg, plan, setup, sheet is not None or debug_frames is not None,
                                                    decorate is not None),
                            threads=job_render_threads(cfg, setup))
    if sheet is not None:
        sheet.save(Path(contact_sheet))
    return summarise(plan, setup.stage, written, start, timer, warnings, plan.out_path)


def copies_pictures(cfg: JobConfig, plan: ShotPlan, setup: RenderSetup, observed: bool, decorated: bool) -> bool:
    """Whether the run's frames go from the decoder to the encoder as decoded pictures, with no YUV -> RGB -> YUV
    round trip: a pass-through core, nothing that looks at the pixels (mattes, contact sheets, debug strips,
    burn-ins, compares), a video plate encoded to H.264 at its own size in display space."""
    stage = setup.stage
    return (stage.core.passes_through and stage.matte is None and not stage.matte_sinks and not observed
            and not decorated and plan.info.kind == "video" and plan.colour is None and plan.work_size is None
            and tuple(plan.size) == (plan.info.width, plan.info.height) and output_kind(plan.out_path) == "video"
            and settings_from_config(cfg, plan.out_path).codec == "h264")


def render_patches(cfg: JobConfig, plan: ShotPlan, numbers: list[int], setup: RenderSetup, timer: StageTimer,
                   progress: Progress | None = None) -> int:
    """The render pass of a patch job: every swapped face of ``numbers`` as a patch file + sidecar (see
    :mod:`vidswap.composite.patch`), moved into the output directory when the pass succeeds. Returns the number
    of frames processed."""
    pattern = check_patch_pattern(plan.out_path)
    ensure_writable_dir(pattern.directory, plan.out_path)
    done = 0
    with atomic_files(pattern.directory) as staging:
        exr = exr_output(cfg, plan.info)
        grain = {t.id: plate_grain_record(t.appearance) for t in setup.stage.analysis.tracks}
        setup.stage.sinks.append(PatchWriter(staging, pattern, (plan.info.width, plan.info.height),
                                             exr=exr if pattern.ext == ".exr" else None, display_space=exr.display,
                                             plate_grain=grain))
        for batch, _ in processed_batches(cfg.batch_size, plan.info, numbers, setup.processor, timer, progress, plan.colour):
            done += len(batch)
    return done


def write_patch_scripts(cfg: JobConfig, plan: ShotPlan) -> dict[int, Path]:
    """The Nuke script of every track's patches, merged over the plate (after all frames are on disk)."""
    return write_nuke_scripts(check_patch_pattern(plan.out_path), nuke_plate(cfg, plan))


def nuke_plate(cfg: JobConfig, plan: ShotPlan) -> NukePlate:
    """The job's plate as the Nuke scripts read it (sequence as ``plate.####.exr``, its OCIO colourspace)."""
    info = plan.info
    space = plan.colour.input if plan.colour is not None else exr_output(cfg, info).display
    first, last = info.frame_numbers[0], info.frame_numbers[-1]
    if info.kind == "sequence" and info.pattern:
        return NukePlate(SequencePattern.parse(info.pattern).hashes(), first, last, space)
    return NukePlate(str(Path(info.path).resolve()), first, last, space, movie=info.kind == "video")


def patch_outputs(plan: ShotPlan, scripts: dict[int, Path]) -> str:
    """What a patch job wrote, for its report: every track's patch pattern (``face_t0.####.png``)."""
    pattern = check_patch_pattern(plan.out_path)
    written = [track_pattern(pattern, track).hashes() for track in sorted(scripts)]
    return ", ".join(written) if written else f"no patches (no face swapped) for {pattern.hashes()}"


def render_frames(cfg: JobConfig, info: MediaInfo, numbers: list[int], processor: FrameProcessor, out_path: Path,
                  size: tuple[int, int], timer: StageTimer, progress: Progress | None = None,
                  settings: EncodeSettings | None = None, sink_info: MediaInfo | None = None,
                  observer: Callable[[list[Frame], list[Frame]], None] | None = None,
                  decorate: Callable[[Frame, Frame], np.ndarray] | None = None,
                  work_size: tuple[int, int] | None = None, label: str = "render", rgb: bool = True,
                  threads: int = 1) -> int:
    """Stream ``numbers`` of the input through ``processor`` into ``out_path``; returns the frames written.
    ``rgb=False``: the frames stay decoded pictures (:func:`copies_pictures`; the processor must not look at them).
    ``threads``: batches processed at once (:func:`job_render_threads`; the processor must be safe to call so).

    ``sink_info`` (default ``info``) is what the writer copies audio and timecode from; ``observer(before, after)``
    sees every batch before and after processing (contact sheets); ``decorate(plate, result)`` returns the picture
    written instead of the result (side-by-side compares, burn-ins).
    """
    written = 0
    if hasattr(processor, "in_place"):  # a RenderStage (no torch import here): with nothing looking at the plates
        processor.in_place = observer is None and decorate is None  # after it, faces are pasted into the frames read
    settings = settings or settings_from_config(cfg, out_path)
    exr = exr_output(cfg, info) if settings.codec == "exr" else None
    with open_sink(out_path, sink_info or info, settings, size=size, exr=exr) as sink:
        # the encoder works on a thread of its own while the next batch renders; "encode" is the time the
        # render waited for it, "encode_overlapped" the time it worked
        keep = hasattr(processor, "in_place") and not decorate  # the render stage's frames keep their pictures
        depth = frames_in_flight(cfg.batch_size, info, work_size, pictures=keep)
        with background_writer(sink, partial(resize_frame, size=size), depth=depth) as writer:
            for batch, result in processed_batches(cfg.batch_size, info, numbers, processor, timer, progress,
                                                   size=work_size, label=label, rgb=rgb, threads=threads,
                                                   keep_pictures=keep):
                if observer is not None:
                    observer(batch, result)
                if decorate is not None:
                    result = [dataclasses.replace(b, image=decorate(a, b), changed=None) for a, b in zip(batch, result)]
                with timer.stage("encode"):
                    for frame in result:
                        writer.write(frame)
                written += len(result)
                del batch, result  # not kept while the next batch is read and rendered
            mux_start = time.perf_counter()
        timer.seconds["encode_overlapped"] += writer.busy
    timer.seconds["mux"] += time.perf_counter() - mux_start
    return written


def job_render_threads(cfg: JobConfig, setup: RenderSetup) -> int:
    """The render pass's threads for the job (``render_threads``, :func:`vidswap.render_loop.render_threads`): 1 for
    a pass-through copy and whenever the stage hands faces to sinks that expect frame order."""
    stage = setup.stage
    if stage.core.passes_through:
        return 1
    ordered = bool(stage.sinks or stage.matte_sinks) or setup.processor is not stage
    return render_threads(cfg.render_threads, stage.device.type, ordered, default_threads())


def resize_frame(frame: Frame, size: tuple[int, int]) -> Frame:
    """Resize keeping dtype (uint8 / uint16 / float) and timing."""
    image = resize_image(frame.image, size)
    return frame if image is frame.image else dataclasses.replace(frame, image=image)


def summarise(plan: ShotPlan, stage: RenderStage | CopyStage | None, written: int, start: float, timer: StageTimer,
              warnings: list[str], output: Path | str, numbers: list[int] | None = None) -> RunSummary:
    """The run's summary; ``stage`` None for passes that only move frames (assemble)."""
    swapped, passed = stage.summary() if stage is not None else (0, list(numbers or plan.numbers))
    return RunSummary(input=str(plan.info.path), output=str(output), frames_written=written, frames_swapped=swapped,
                      passed_through=passed, seconds=time.perf_counter() - start,
                      stage_seconds=dict(timer.seconds), width=plan.size[0], height=plan.size[1], warnings=warnings,
                      swapping=stage is not None and not stage.core.passes_through,
                      runtime=stage.core.runtime() if stage is not None else "")
