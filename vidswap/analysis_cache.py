"""The shot analysis as a cached stage: the analyze pass over a shot's frames, its cache key (input fingerprint,
frames, settings, models) and the checks that reuse a saved analysis or name why it is stale.

The analysis is saved in the job folder (``tracks.npz``) and shared between jobs of the same input and analysis
settings (:func:`~vidswap.faces.tracksfile.shared_analysis_path`); a farm task must find an up-to-date one
(:func:`load_job_analysis`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vidswap.appearance.analysis import AppearanceCollector, track_texture_space
from vidswap.composite.linear import display_plate
from vidswap.composite.plate_stats import plate_skin_stats
from vidswap.config import JobConfig
from vidswap.errors import InputError
from vidswap.faces.align import as_rgb8
from vidswap.faces.analysis_key import analysis_key, analysis_model_hashes
from vidswap.faces.topology import load_topology
from vidswap.faces.tracksfile import (ShotAnalysis, input_fingerprint, input_size, shared_analysis_path,
                                      stale_reasons)
from vidswap.io import MediaInfo, read_numbers
from vidswap.io.colour import ColourPipeline
from vidswap.memory import frame_bytes, queue_depth
from vidswap.shot import ShotPlan, resolve_device
from vidswap.timing import Progress, StageTimer, batches

if TYPE_CHECKING:
    from vidswap.faces.analyze import AnalysisModels


def analyze_shot(cfg: JobConfig, info: MediaInfo, numbers: list[int], models: AnalysisModels | None,
                 tracks_path: Path, timer: StageTimer, progress: Progress | None = None,
                 colour: ColourPipeline | None = None, work_size: tuple[int, int] | None = None) -> ShotAnalysis:
    """The analyze pass over the frames to render; reuses ``tracks_path`` when its inputs are unchanged, or the
    analysis another job of the same input and analysis settings shared (:func:`shared_analysis_path`).

    ``models`` None (pass-through jobs) records only the frames' timing (for chunked renders and assembly).
    ``colour``: a scene-linear plate's OCIO pipeline; the models see its display-referred picture.
    ``work_size``: (width, height) to analyse the frames at (:attr:`ShotPlan.work_size`); None: the plate's size.
    """
    hashes = models.model_hashes if models is not None else {"passthrough": ""}
    key, inputs = analysis_inputs(cfg, info, numbers, hashes, colour, work_size)
    cached = load_cached_analysis(tracks_path, key)
    if cached is not None:
        return cached
    shared = shared_analysis_path(key)
    cached = load_cached_analysis(shared, key) if models is not None else None
    if cached is not None:
        cached.save(tracks_path)
        return cached
    analyzer = None
    if models is not None:
        topology = load_topology()
        device = resolve_device(cfg.device)
        stats_fn = partial(plate_skin_stats, regions=topology.regions, device=device)
        space, masks = track_texture_space(topology)
        sampler = AppearanceCollector(space, masks, torch.as_tensor(topology.regions["face_oval"]), device=device,
                                      every=cfg.analysis.appearance_every)
        from vidswap.faces.analyze import FrameAnalyzer  # imported where it runs: render tasks only read analyses

        analyzer = FrameAnalyzer(models, cfg.analysis, stats_fn=stats_fn, sampler=sampler)
    timing: dict[str, list] = {"pts": [], "durations": [], "numbers": []}
    done = 0
    if progress:  # the pass's clock starts now, not after its first batch
        progress("analyze", 0, len(numbers))
    w, h = work_size or (info.width, info.height)  # frames waiting for the analysis: within QUEUE_BYTES (4K: 3)
    prefetch = queue_depth(cfg.batch_size, frame_bytes(w, h, info.bit_depth))
    with read_numbers(info, numbers, prefetch=prefetch, size=work_size) as frames:
        try:
            for batch in batches(frames, cfg.batch_size, timer):
                timing["numbers"] += [f.number for f in batch]
                timing["pts"] += [f.pts for f in batch]
                timing["durations"] += [f.duration for f in batch]
                if analyzer is not None:
                    analyzer.push([f.number for f in batch], [_as_analysed(f.image, colour) for f in batch])
                done += len(batch)
                if progress:
                    progress("analyze", done, len(numbers))
            if analyzer is not None:  # hands found late: the frames before them read again
                analyzer.backtrack_hands(partial(_read_again, info, size=work_size, colour=colour), prefetch)
        except BaseException:
            if analyzer is not None:  # no worker left running past the pass (Ctrl-C, a bad frame)
                analyzer.close()
            raise
    fps = float(info.fps) / max(1, cfg.every)
    width, height = work_size or (info.width, info.height)
    header = {"key": key, "inputs": inputs, "input": str(info.path), "fps": fps, "width": width,
              "height": height, "timing": timing}
    if analyzer is None:
        result = ShotAnalysis(header=dict(header, cuts=[], frames=timing["numbers"]), tracks=[])
    else:
        result = analyzer.finish(fps, cfg.smoothing, header)
        for name, sec in analyzer.stage_seconds.items():
            timer.seconds[name] += sec
    result.save(tracks_path)
    if models is not None:
        result.save(shared)
    return result


def _as_analysed(image: np.ndarray, colour: ColourPipeline | None) -> np.ndarray:
    """A decoded frame as the analysis models see it: a scene-linear plate through its OCIO view, else as it is."""
    return image if colour is None else display_plate(colour, image)


def _read_again(info: MediaInfo, numbers: list[int], size: tuple[int, int] | None,
                colour: ColourPipeline | None) -> list[tuple[int, np.ndarray]]:
    """Analysed frames read again as the analyze pass saw them: (number, HxWx3 RGB uint8), ascending."""
    with read_numbers(info, numbers, prefetch=max(1, len(numbers)), size=size) as frames:
        return [(f.number, as_rgb8(_as_analysed(f.image, colour))) for f in frames]


def analysis_inputs(cfg: JobConfig, info: MediaInfo, numbers: list[int], model_hashes: dict[str, str],
                    colour: ColourPipeline | None, work_size: tuple[int, int] | None = None) -> tuple[str, dict]:
    """The analysis cache key and its parts (input fingerprint and size, frames, settings and models digests),
    which the tracks file keeps so a stale analysis can be named (:func:`~vidswap.faces.tracksfile.stale_reasons`)."""
    hashes = dict(model_hashes)
    hashes["blur"] = "opencv-exact-sum"  # the appearance models' Gaussian blurs on OpenCV (float rounding)
    if colour is not None:
        hashes["colour"] = f"{colour.config_name}|{colour.input}|{colour.working}"
    if work_size is not None:  # analysed at the job's working size (previews)
        # and how a video is shrunk to it (swscale's area filter in the RGB conversion since preview4b-s13)
        hashes["work_size"] = f"{work_size[0]}x{work_size[1]}" + ("|sws-area" if info.kind == "video" else "")
    source = info.path if info.kind != "sequence" else Path(info.pattern)
    fingerprint = input_fingerprint(source)
    key = analysis_key(fingerprint, numbers, cfg.analysis, cfg.smoothing, hashes)
    digest = lambda value: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]  # noqa: E731
    inputs = {"input": fingerprint, "size": input_size(source), "frames": [numbers[0], numbers[-1], len(numbers)],
              "settings": digest([dataclasses.asdict(cfg.analysis), dataclasses.asdict(cfg.smoothing)]),
              "models": digest(hashes)}
    return key, inputs


def load_cached_analysis(tracks_path: Path, key: str | None) -> ShotAnalysis | None:
    """The saved analysis if it exists and (when ``key`` is given) matches ``key``; else None (a corrupt or
    stale file is analysed again)."""
    if not tracks_path.exists():
        return None
    try:
        cached = ShotAnalysis.load(tracks_path)
    except (OSError, InputError):
        return None  # unreadable, corrupt or old: analyse again
    return cached if key is None or cached.header.get("key") == key else None


def load_job_analysis(cfg: JobConfig, plan: ShotPlan, passes_through: bool) -> ShotAnalysis:
    """The analysis a farm task must find in the job folder (written by the analyze task), made from this job's
    input, frames, settings and models: a missing, corrupt (:class:`CorruptAnalysis`) or stale one is an
    InputError (exit 2) that says what changed. A farm render never uses stale analysis. ``passes_through``: the
    job's core never changes a pixel (its analysis records only the frames' timing)."""
    if not plan.tracks_path.exists():
        raise InputError(f"no analysis in {plan.job_dir}: run `vidswap analyze` for this shot first")
    found = ShotAnalysis.load(plan.tracks_path)
    hashes = {"passthrough": ""} if passes_through else analysis_model_hashes(hands=cfg.analysis.hands)
    key, inputs = analysis_inputs(cfg, plan.info, plan.numbers, hashes, plan.colour, plan.work_size)
    if found.header.get("key") != key:
        reasons = stale_reasons(found.header.get("inputs"), inputs, plan.info.path.name)
        raise InputError(f"the analysis {plan.tracks_path} is stale: {'; '.join(reasons)}; run `vidswap analyze` "
                         "for this shot again")
    return found
