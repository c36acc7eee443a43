"""Per-clip pivotal tuning (PTI) of the e4s-pti core's StyleGAN2 generator: a tune-pass step.

The clip's frames are cut in the core's FFHQ crop exactly as the render cuts them
(:func:`~vidswap.train.tune.data.collect_tune_data`), inverted to W+ pivots with the checkpoint's generator (the
same :meth:`~vidswap.swap.stylegan.core.E4SPTICore.invert_targets` the render runs per frame), and a copy of the
generator is fine-tuned so the pivots reproduce the frames (:func:`~vidswap.swap.stylegan.inversion.pivotal_tuning`;
Adam for ``tune.steps`` on CUDA / ``tune.cpu_steps`` on CPU at ``tune.lr``, minibatches of ``tune.batch`` drawn
with ``tune.seed``, locality weight ``tune.w_locality``). The tuned weights are cached in the job folder's
``tune/`` as safetensors keyed by the clip, the identity, the settings and the checkpoint's sha256; a farm render
chunk only loads them, so every chunk renders with the same generator as a single pass.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.models.sources import sha256_of
from vidswap.swap.stylegan.core import E4SPTICore, E4SPTIIdentity
from vidswap.swap.stylegan.inversion import PTIParams, from_unit, pivotal_tuning, psnr, synthesize
from vidswap.train.learned import LearnedTuneInfo
from vidswap.train.tune.cache import load_tuned_state, save_tuned_state, tune_key
from vidswap.train.tune.data import FramesReader, collect_tune_data
from vidswap.train.tune.params import TuneParams

PTI_TUNE_VERSION = "1"

__all__ = ["PTITuneInfo", "pti_params", "pti_tune_key", "tune_e4s_pti_core"]


@dataclass
class PTITuneInfo(LearnedTuneInfo):
    """A PTI run: the learned-tune record plus the clip crops' mean PSNR (dB) rendered from their pivots by the
    checkpoint's generator (inversion alone) and by the tuned one."""

    psnr_inversion: float = 0.0
    psnr_tuned: float = 0.0


def pti_tune_key(analysis: ShotAnalysis, identity: E4SPTIIdentity, params: TuneParams, core: E4SPTICore,
                 track_ids: Sequence[int] | None = None) -> str:
    """sha256 naming a tuning result: the common tune key plus this tuner's version and the checkpoint's bytes."""
    parts = [tune_key(analysis, identity, params, core, track_ids), f"e4s-pti/{PTI_TUNE_VERSION}",
             sha256_of(Path(core.config.checkpoint))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def pti_params(core: E4SPTICore, params: TuneParams, device: torch.device | str) -> PTIParams:
    """The PTI settings from the job's ``tune`` section and the core's reconstruction loss."""
    return PTIParams(steps=params.steps_for(device), lr=params.lr, batch=params.batch, w_locality=params.w_locality,
                     seed=params.seed, recon=core.config.inversion())


def tune_e4s_pti_core(core: E4SPTICore, analysis: ShotAnalysis, frames_reader_fn: FramesReader,
                      identity: E4SPTIIdentity, params: TuneParams, cache_dir: str | Path, retune: bool = False,
                      track_ids: Sequence[int] | None = None) -> PTITuneInfo:
    """PTI-tune ``core``'s generator on the clip (or load the cached weights) and make the core render with it."""
    key = pti_tune_key(analysis, identity, params, core, track_ids)
    cache_dir = Path(cache_dir)
    weights = cache_dir / f"e4s_pti_{key[:16]}.safetensors"
    cached = None if retune else load_tuned_state(weights, PTITuneInfo, key)
    if cached is not None:
        gen = copy.deepcopy(core.base)
        gen.load_state_dict(cached[0])
        core.use_generator(gen)
        return cached[1]
    t0 = time.perf_counter()
    data = collect_tune_data(analysis, frames_reader_fn, core.crop, params.max_frames, track_ids)
    crops = data.crops.to(core.device).float().clamp(0, 1)
    pivots = core.invert_targets(crops)
    result = pivotal_tuning(core.base, pivots, crops, pti_params(core, params, core.device))
    with torch.no_grad():
        before = psnr(from_unit(synthesize(core.base, pivots)), crops).mean().item()
        after = psnr(from_unit(synthesize(result.generator, pivots)), crops).mean().item()
    info = PTITuneInfo(key=key, cached=False, steps=len(result.losses), seconds=time.perf_counter() - t0,
                       frames=int(crops.shape[0]), losses=result.losses, terms=result.terms, weights=str(weights),
                       psnr_inversion=before, psnr_tuned=after)
    save_tuned_state(weights, result.generator, key, info)
    core.use_generator(result.generator)
    return info
