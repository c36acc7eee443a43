"""The passes of one shot, run separately on a render farm: analyze once, tune once, render frame chunks
independently, assemble once. Each reads the same shot config; what they share lives in the job folder
(``<output stem>.vidswap/``): the tracks file, the tuned generator, the chunks (named by a hash of everything
their pixels depend on, so chunks of other settings are never mixed in)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidswap.composite.linear import display_frames
from vidswap.config import JobConfig, to_dict
from vidswap.errors import InputError, UsageError
from vidswap.faces.overlay import draw_overlay, plot_track
from vidswap.faces.targets import choose_targets
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.code_stamp import package_digest
from vidswap.io import EncodeSettings, Frame, open_sink, output_kind, probe, read_frames, read_numbers
from vidswap.io.atomic import atomic_file
from vidswap.io.frames import format_frames
from vidswap.io.region_write import changed_box
from vidswap.io.sequences import SequencePattern
from vidswap.analysis_cache import analyze_shot
from vidswap.pipeline import (Progress, RunSummary, StageTimer, build_render, job_core, job_render_threads,
                              patch_outputs, prepared_identity, render_frames, render_patches, require_analysis,
                              summarise, target_identities, write_patch_scripts)
from vidswap.preflight import SideOutputs, check_job
from vidswap.render_loop import keeps_pictures
from vidswap.probe_record import record_probe
from vidswap.source_cache import cached_source_faces
from vidswap.shot import ShotPlan, check_sources, frame_decoration, output_size, plan_frame_numbers, plan_shot, \
    resolve_device, settings_from_config
from vidswap.swap import CoreContext

CHUNK_SETTINGS = EncodeSettings(codec="ffv1")


# --------------------------------------------------------------------------------------------------------------
# analyze and tune


@dataclass
class AnalyzeReport:
    """What the analyze pass wrote: the tracks file, the analysis and its trajectory plots."""

    tracks_path: Path
    analysis: ShotAnalysis
    targets: list[int]
    plots: list[Path]

    def lines(self) -> list[str]:
        a = self.analysis
        out = [f"{len(a.tracks)} track(s); shot cuts at frames: {format_frames(a.header.get('cuts', [])) or 'none'}"]
        for t in a.tracks:
            tag = "  <- target" if t.id in self.targets else ""
            out.append(f"track {t.id}: frames {format_frames(t.frames.tolist())} ({len(t.frames)}), "
                       f"{int(t.interpolated.sum())} interpolated, mean confidence {float(t.confidences.mean()):.2f}{tag}")
            camera = camera_line(t.appearance)
            if camera:
                out.append(f"  {camera}")
        return out


def camera_line(appearance: dict | None) -> str:
    """What the analysis read of the plate's camera on a track, in the words of the settings it feeds: the shutter
    (``composite.motion_blur: auto``) and the grain (``composite.grain: auto``); empty without a model."""
    from vidswap.composite.compositor import AUTO_GRAIN_RANGE
    from vidswap.composite.grain import GrainParams, StoredGrain
    from vidswap.composite.motion_blur import AUTO_SHUTTER

    if not appearance:
        return ""
    shutter = float(np.asarray(appearance.get("shutter", [np.nan])).reshape(-1)[0])
    parts = [f"shutter {shutter:.2f} (measured)" if np.isfinite(shutter)
             else f"shutter {AUTO_SHUTTER:.2f} (too little motion to measure)"]
    grain = StoredGrain.read(appearance)
    if grain is None:
        parts.append("grain not read (too few faces read)")
    else:
        scale = grain.scale(GrainParams(auto_range=AUTO_GRAIN_RANGE))
        added = "none" if scale == 0.0 else "all of it" if scale >= 1.0 else f"{scale:.0%} of it"
        parts.append(f"grain {float(grain.std.mean()) * 255:.1f} 8-bit levels, share {grain.share:.2f} "
                     f"(auto adds {added})")
    return "plate camera: " + "; ".join(parts)


def analyze(cfg: JobConfig, progress: Progress | None = None, overlay: str | Path | None = None) -> AnalyzeReport:
    """The analyze pass alone: writes (or reuses) the tracks file in the job folder, plots the target tracks'
    landmark trajectories (raw vs smoothed) next to it. A pass-through core records only the frames' timing."""
    timer = StageTimer()
    plan = plan_shot(cfg)
    check_job(cfg, plan, SideOutputs(overlay=overlay), replaces=False)  # a bad setting fails before the analysis
    core = job_core(cfg, CoreContext())
    from vidswap.faces.analyze import AnalysisModels  # the analyzer only in this pass: the others read its record

    models = None if core.passes_through else AnalysisModels.load(cfg.analysis)
    analysis = analyze_shot(cfg, plan.info, plan.numbers, models, plan.tracks_path, timer, progress, plan.colour,
                            plan.work_size)
    record_probe(plan.job_dir, plan.info)  # the farm tasks after this pass take it instead of re-reading the plate
    sources = []
    if models is not None and cfg.sources and core.needs:  # recorded once here, so render tasks load no models
        sources = cached_source_faces(cfg.sources, check_sources(cfg.sources), plan.job_dir / "sources",
                                      lambda: models, [])
    targets, plots = [], []
    if models is not None and analysis.tracks:
        selection = dataclasses.replace(cfg.target, map=())
        targets = sorted(choose_targets(selection, analysis, models, max(1, len(cfg.sources))))
        for track in analysis.tracks:
            if track.id in targets and len(track.frames) >= 3:
                plots.append(plot_track(track, analysis.header["fps"], plan.job_dir / f"track_{track.id}.png"))
    if sources and targets:  # the core's prepared sources and per-target set-up, recorded once here: render tasks
        device = resolve_device(cfg.device)  # only read them
        core = job_core(cfg, CoreContext(device=device))
        prepared_identity(cfg, core, sources, plan.job_dir / "sources", device, None)
        try:
            chosen = choose_targets(cfg.target, analysis, models, len(sources))
        except UsageError:  # a bad target map: the render task reports it
            chosen = {}
        target_identities(cfg, core, sources, analysis, chosen, plan.job_dir / "sources", device)
    return AnalyzeReport(plan.tracks_path, analysis, targets, plots)


def write_overlay(cfg: JobConfig, path: str | Path, progress: Progress | None = None) -> Path:
    """A video of the shot with the analysis drawn on it (boxes, track ids, landmarks, pose axes)."""
    plan = plan_shot(cfg)
    analysis = require_analysis(cfg, plan)
    targets = {t.id for t in analysis.tracks}

    def draw(frames: list[Frame]) -> list[Frame]:
        if plan.colour is not None:  # drawn on the display-referred picture the models saw
            frames = list(display_frames(frames, plan.colour))
        return [dataclasses.replace(f, image=draw_overlay(f.image, f.number, analysis, targets)) for f in frames]

    out = Path(path)
    size = output_size(plan.info, cfg.scale, output_kind(out) == "video")
    render_frames(cfg, plan.info, plan.numbers, draw, out, size, StageTimer(), progress,
                  settings=EncodeSettings(codec="h264", crf=20, preset="veryfast"), work_size=plan.work_size,
                  label="overlay")
    return out


def tune(cfg: JobConfig, progress: Progress | None = None) -> Path | None:
    """The tune pass alone (farm): tune the generator on the analysed shot and cache it in the job folder;
    returns that folder (``tune/``), or None when tuning is off or the core passes frames through."""
    plan = plan_shot(cfg, recorded=True)
    if not cfg.tune.enabled or job_core(cfg, CoreContext()).passes_through:
        return None
    build_render(cfg, plan, StageTimer(), progress, [], farm_task=True)  # tunes (or finds the cache)
    return plan.job_dir / "tune"


# --------------------------------------------------------------------------------------------------------------
# render chunks


def chunk_dir(plan: ShotPlan, cfg: JobConfig, analysis_key: str) -> Path:
    """Chunks live in a folder named by everything their pixels depend on (the analysis, the render settings and
    the code, :func:`~vidswap.code_stamp.package_digest`), so chunks of an earlier analysis, other settings or
    another install (a farm job resumed after an upgrade) are never mixed into an assembly."""
    settings = {k: v for k, v in to_dict(cfg).items() if k not in ("frames", "output", "farm", "device", "batch_size",
                                                                   "render_threads")}
    settings["swap"] = {"core": cfg.swap.core, "settings": dataclasses.asdict(cfg.swap.section())}
    settings["output_size"] = plan.size
    settings["decoration"] = (cfg.output.compare, cfg.output.burnin)
    if writes_in_place(cfg, plan):  # the chunk's frames are the output's own files: their place is part of it
        settings["output"] = [str(plan.out_path.resolve()), cfg.output.kind]
    blob = json.dumps({"analysis": analysis_key, "settings": settings, "code": package_digest()}, sort_keys=True,
                      default=str)
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
                 progress: Progress | None = None) -> tuple[Path, RunSummary | None]:
    """Render one frame chunk of the shot (``chunk``: a range within the shot's frames) into the job folder.

    Reads the analysis the analyze pass wrote (never re-analyses a part: chunks agree at the seams). A chunk whose
    output exists with the right frame count is skipped unless ``force`` (idempotent farm retries); outputs are
    written atomically, so a killed task leaves nothing that looks complete.
    """
    timer = StageTimer()
    start = time.perf_counter()
    plan = plan_shot(cfg, recorded=True)
    shot = set(plan.numbers)
    numbers = [n for n in plan_frame_numbers(plan.info, chunk, 1) if n in shot]
    if not numbers:
        raise InputError(f"chunk {chunk} has none of the shot's frames ({format_frames(plan.numbers)})")
    check_job(cfg, plan, replaces=False)
    core = job_core(cfg, CoreContext(device=resolve_device(cfg.device)))  # built once: for the analysis and render
    analysis = require_analysis(cfg, plan, core)
    in_place = writes_in_place(cfg, plan)
    out = chunk_path(chunk_dir(plan, cfg, analysis.header["key"]), numbers, done_marker=in_place)
    if not force and chunk_complete(out, numbers, cfg, plan):
        return out, None
    warnings: list[str] = []
    setup = build_render(cfg, plan, timer, progress, warnings, farm_task=True, farm_analysis=analysis,
                         farm_core=core)
    if not in_place:
        chunk_info = dataclasses.replace(plan.info, audio=(), timecode=None)
        written = render_frames(cfg, plan.info, numbers, setup.processor, out, plan.size, timer, progress,
                                settings=CHUNK_SETTINGS, sink_info=chunk_info, decorate=frame_decoration(cfg, plan),
                                work_size=plan.work_size, threads=job_render_threads(cfg, setup))
        return out, summarise(plan, setup.stage, written, start, timer, warnings, out, numbers)
    if cfg.output.kind == "patch":
        written = render_patches(cfg, plan, numbers, setup, timer, progress)
    else:
        written = render_frames(cfg, plan.info, numbers, setup.processor, plan.out_path, plan.size, timer, progress,
                                decorate=frame_decoration(cfg, plan), work_size=plan.work_size,
                                threads=job_render_threads(cfg, setup))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as temp:  # written last: a killed task leaves no marker
        temp.write_text(f"{format_frames(numbers)}\n")
    return out, summarise(plan, setup.stage, written, start, timer, warnings, plan.out_path, numbers)


# --------------------------------------------------------------------------------------------------------------
# assemble


def assemble(cfg: JobConfig, progress: Progress | None = None) -> RunSummary:
    """Concatenate the shot's chunks in frame order into the output, with the input's timing, audio and
    timecode. Every frame of the shot must be covered by exactly the chunks found in the job folder."""
    timer = StageTimer()
    start = time.perf_counter()
    plan = plan_shot(cfg, recorded=True)
    check_job(cfg, plan)
    header = require_analysis(cfg, plan).header
    timing = header["timing"]
    pts = dict(zip(timing["numbers"], timing["pts"]))
    durations = dict(zip(timing["numbers"], timing["durations"]))
    folder = chunk_dir(plan, cfg, header["key"])
    spans = chunk_cover(folder, plan.numbers)
    covered = {n for first, last, _ in spans for n in plan.numbers if first <= n <= last}
    missing = sorted(set(plan.numbers) - covered)
    if missing:
        raise InputError(f"frames {format_frames(missing)} have no rendered chunk in {folder}; "
                         f"run `vidswap render --frames ...` for them")
    if writes_in_place(cfg, plan):  # the render tasks wrote the output's files; check them, script patches
        if cfg.output.kind == "patch":
            outputs = patch_outputs(plan, write_patch_scripts(cfg, plan))
            return summarise(plan, None, len(plan.numbers), start, timer, [], outputs)
        absent = missing_sequence_frames(plan.out_path, plan.numbers)
        if absent:
            raise InputError(f"frames {format_frames(absent)} of {plan.out_path} are missing although their "
                             "chunks are marked done; render them again with --force")
        return summarise(plan, None, len(plan.numbers), start, timer, [], plan.out_path)
    written = 0
    if progress:
        progress("assemble", 0, len(plan.numbers))
    settings = settings_from_config(cfg, plan.out_path)
    with open_sink(plan.out_path, plan.info, settings, size=plan.size) as sink:
        for first, last, path in spans:
            mine = [n for n in plan.numbers if first <= n <= last]
            if not mine:
                continue
            with read_frames(probe(path)) as frames, plate_pictures(cfg, plan, settings, mine) as plates:
                for number, frame, plate in zip(mine, frames, plates):
                    # as a single pass writes it: the plate's decoded picture, with what the render changed
                    kept = {} if plate is None else {"picture": plate.picture,
                                                     "changed": changed_box(plate.image, frame.image)}
                    sink.write(Frame(number=number, pts=pts[number], timecode=None, image=frame.image,
                                     duration=durations[number], **kept))
                    written += 1
                    if progress:
                        progress("assemble", written, len(plan.numbers))
    return summarise(plan, None, written, start, timer, [], plan.out_path)


@contextmanager
def plate_pictures(cfg: JobConfig, plan: ShotPlan, settings: EncodeSettings, numbers: list[int]):
    """For ``assemble``: the plate's frames ``numbers`` with their decoded pictures where a single pass's render
    loop keeps them (:func:`~vidswap.render_loop.keeps_pictures`, no decoration) and its writer re-encodes them
    (H.264 at the plate's own size, upright: :mod:`vidswap.io.region_write`), else None for every frame."""
    info = plan.info
    if (settings.codec != "h264" or tuple(plan.size) != (info.width, info.height) or int(info.rotation or 0) % 360
            or not keeps_pictures(info, plan.work_size, plan.colour, frame_decoration(cfg, plan) is None)):
        yield itertools.repeat(None)
        return
    with read_numbers(info, numbers, prefetch=2, keep_picture=True) as frames:
        yield frames


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
