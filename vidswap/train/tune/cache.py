"""Tuned generators in the job folder: their cache keys, tuning or loading them, and the per-track refiner the
render stage calls.

Tuned weights are cached as safetensors in a folder given by the caller (``job_dir / 'tune'``), keyed by the
sha256 of the clip content (the analysis key: input fingerprint, frames, analysis settings, model hashes), the
frames and tracks used, the source identity, the tuning parameters, the starting checkpoint and the swap core
(name, crop, settings); every render chunk of a farm job finds the same file. ``retune=True`` forces tuning. A
PNG of the loss curves and a JSON record of the run are written next to the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from vidswap.errors import ModelError
from vidswap.faces.tracksfile import ShotAnalysis, input_fingerprint
from vidswap.io.atomic import atomic_file
from vidswap.models.sources import sha256_of
from vidswap.swap.base import SourceIdentity, SwapCore, TrackRefiners
from vidswap.swap.generator import GeneratorConfig, GeneratorRefiner, SwapGenerator, load_generator, save_generator
from vidswap.train.tune.data import FramesReader, TuneData, collect_tune_data
from vidswap.train.tune.loop import TuneInfo, tune_generator
from vidswap.train.tune.params import TuneParams, cpu_tuning_warning
from vidswap.train.tune.plot import plot_history

log = logging.getLogger("vidswap")

TUNE_VERSION = 2  # 2: keys name the core and its crop; identities hash every field


def _sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def _tensor_bytes(value: Tensor) -> bytes:
    return value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()


def identity_hash(identity: SourceIdentity) -> str:
    """sha256 of a prepared source identity: every field, tensors by value (:meth:`SourceIdentity.tensors`)."""
    parts: list[bytes | str] = [type(identity).__name__]
    tensors = identity.tensors()
    for f in dataclasses.fields(identity):
        value = getattr(identity, f.name)
        parts += [f.name, _tensor_bytes(tensors[f.name]) if f.name in tensors else repr(value)]
    return _sha(*parts)


def _clip_hash(analysis: ShotAnalysis, track_ids: Sequence[int] | None) -> str:
    """The clip content: the analysis key (input fingerprint, frames, settings, model hashes) when present, else
    the input's fingerprint, plus the smoothed landmarks of the tracks used."""
    header = analysis.header or {}
    content = header.get("key")
    if not content and header.get("input") and Path(header["input"]).exists():
        content = input_fingerprint(Path(header["input"]))
    tracks = [analysis.track(t) for t in track_ids] if track_ids is not None else list(analysis.tracks)
    parts = [str(content or "")]
    for t in tracks:
        parts += [str(t.id), t.frames.astype(np.int64).tobytes(), np.ascontiguousarray(t.smoothed, np.float32).tobytes()]
    return _sha(*parts)


def tune_key(analysis: ShotAnalysis, identity: SourceIdentity, params: TuneParams, core: SwapCore,
             track_ids: Sequence[int] | None = None) -> str:
    """sha256 naming a tuning result: clip content and frames, source identity, parameters, checkpoint, and the
    core (name, crop, settings)."""
    p = asdict(params)
    p.pop("enabled", None)
    p.pop("retune", None)
    ckpt = sha256_of(Path(params.checkpoint)) if params.checkpoint else ""
    settings = asdict(core.config) if dataclasses.is_dataclass(core.config) else repr(core.config)
    return _sha(f"vidswap.tune/{TUNE_VERSION}", _clip_hash(analysis, track_ids), identity_hash(identity),
                json.dumps(p, sort_keys=True, default=str), core.name, repr(core.crop), ckpt,
                json.dumps(settings, sort_keys=True, default=str))


def _load_cached(weights: Path, info_path: Path, key: str, device: torch.device) -> tuple[SwapGenerator, TuneInfo] | None:
    """The cached generator and its run record, or None when they are missing or unreadable (tune again)."""
    if not weights.exists():
        return None
    try:
        gen = load_generator(weights, device).eval()
        info = TuneInfo.from_json(info_path.read_text()) if info_path.exists() else TuneInfo(key=key, cached=True)
    except (ModelError, OSError, ValueError, TypeError):
        return None
    info.cached = True
    return gen, info


def load_tuned_state(weights: Path, info_cls: type, key: str) -> tuple[dict[str, Tensor], object] | None:
    """Cached per-clip weights of a tuned module (safetensors) and their run record (``info_cls`` built from the
    JSON beside them, or ``info_cls(key, True)`` when it is missing) with ``cached`` set; None when there are no
    weights. Shared by the tuners of learned swappers, FaceDancer and e4s-pti."""
    if not weights.exists():
        return None
    state = load_file(str(weights))
    record = weights.with_suffix(".json")
    info = info_cls(**json.loads(record.read_text())) if record.exists() else info_cls(key, True)
    info.cached = True
    return state, info


def save_tuned_state(weights: Path, module: torch.nn.Module, key: str, info: object) -> None:
    """Write a tuned module's weights (safetensors, tagged with the tune key) and its run record (a dataclass, as
    JSON beside them), each atomically."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_file(weights) as temp:
        save_file(state, str(temp), metadata={"tune_key": key})
    with atomic_file(weights.with_suffix(".json")) as temp:
        temp.write_text(json.dumps(asdict(info)))


def tune_for_shot(analysis: ShotAnalysis, frames_reader_fn: FramesReader, identity: SourceIdentity,
                  params: TuneParams, cache_dir: str | Path, retune: bool = False, *, core: SwapCore,
                  track_ids: Sequence[int] | None = None, device: torch.device | str | None = None,
                  progress: bool = True, data: TuneData | None = None) -> tuple[SwapGenerator, TuneInfo]:
    """Tune (or load from the cache) the generator for one shot and one source identity.

    Args:
        analysis: the shot's :class:`~vidswap.faces.tracksfile.ShotAnalysis`.
        frames_reader_fn: ``fn(numbers) -> iterable`` of frames (:func:`~vidswap.train.tune.data.frame_reader`);
            not called on a cache hit.
        identity: the source identity prepared by ``core``.
        params: :class:`~vidswap.train.tune.params.TuneParams`.
        cache_dir: folder of the tuned weights (``job_dir / 'tune'``).
        retune: tune even when the cache has a result.
        core: the render's swap core (its crop and renders are what the generator learns to refine).
        track_ids: the target tracks (default all).
        device: tuning device (default CUDA when available).
        progress: tqdm progress bar.
        data: pre-collected :class:`~vidswap.train.tune.data.TuneData` (skips reading frames).

    Returns:
        (generator in eval mode on ``device``, :class:`~vidswap.train.tune.loop.TuneInfo` with ``cached`` telling
        whether it was loaded).
    """
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    key = tune_key(analysis, identity, params, core, track_ids)
    cache_dir = Path(cache_dir)
    weights = cache_dir / f"generator_{key[:16]}.safetensors"
    info_path = weights.with_suffix(".json")
    plot_path = cache_dir / f"generator_{key[:16]}_loss.png"
    if not retune:
        cached = _load_cached(weights, info_path, key, dev)
        if cached is not None:
            return cached

    if params.checkpoint:
        gen = load_generator(params.checkpoint, dev)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            gen = SwapGenerator(GeneratorConfig(channels=tuple(params.channels))).to(dev)
    if data is None:
        data = collect_tune_data(analysis, frames_reader_fn, core.crop, params.max_frames, track_ids)
    if dev.type == "cpu":  # said before the steps start: minutes, not the seconds of a render
        log.warning(cpu_tuning_warning(params, int(data.crops.shape[-1])))
    info = tune_generator(gen, data, identity, core, params, device=dev, progress=progress)
    info.key = key
    info.weights = str(weights)
    info.plot = str(plot_path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_generator(gen, weights, {"tune_key": key, "frames": json.dumps(info.frames),
                                  "best_step": str(info.best_step)})
    plot_history(info, plot_path)
    with atomic_file(info_path) as temp:
        temp.write_text(info.to_json())
    return gen, info


def build_refiner(analysis: ShotAnalysis, frames_reader_fn: FramesReader, targets: dict[int, SourceIdentity],
                  params: TuneParams, cache_dir: str | Path, retune: bool = False, *, core: SwapCore,
                  device: torch.device | str | None = None,
                  progress: bool = True) -> tuple[TrackRefiners, list[TuneInfo]]:
    """Tune one generator per distinct source identity of ``targets`` (track id -> identity; tracks whose
    identities are equal are tuned together) and return the per-track refiner for the render stage and the runs'
    records."""
    groups: dict[str, tuple[SourceIdentity, list[int]]] = {}
    for tid, ident in targets.items():
        groups.setdefault(identity_hash(ident), (ident, []))[1].append(int(tid))
    refiners: dict[int, GeneratorRefiner] = {}
    infos = []
    for ident, tids in groups.values():
        gen, info = tune_for_shot(analysis, frames_reader_fn, ident, params, cache_dir, retune, core=core,
                                  track_ids=tids, device=device, progress=progress)
        refiner = GeneratorRefiner(gen, device)
        refiners.update({tid: refiner for tid in tids})
        infos.append(info)
    return TrackRefiners(refiners), infos
