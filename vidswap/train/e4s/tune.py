"""Per-clip tuning of the e4s core's generator (the paper's video mode, appendix B: the RGI generator fine-tuned on
the clip's frames with the reconstruction loss, then every frame swapped with it): a tune-pass step.

The e4s-pti core's PTI (:func:`~vidswap.swap.stylegan.inversion.pivotal_tuning`, the same settings through
:func:`~vidswap.train.stylegan_pti.pti_params` and the same cache files) with E4S's pivots: the clip's frames are
cut in the core's FFHQ crop as the render cuts them (:func:`~vidswap.train.tune.data.collect_tune_data`), encoded
to their per-region codes on their own region masks, and a copy of the generator is fine-tuned so that the
mask-guided synthesis of those codes reproduces the frames (the paper: 200 updates per frame at lr 1e-3; here
``tune.steps`` / ``tune.cpu_steps`` at ``tune.lr``). The render then swaps every frame with the tuned generator.
The weights are cached in the job folder's ``tune/`` keyed by the clip, identity, settings and the checkpoint's
sha256; a farm render chunk only loads them.
"""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.models.sources import sha256_of
from vidswap.swap.stylegan.e4s import mask_guided_synthesize
from vidswap.swap.stylegan.e4s_core import E4SCore, E4SIdentity
from vidswap.swap.stylegan.inversion import InversionParams, PTIParams, from_unit, pivotal_tuning, psnr
from vidswap.train.stylegan_pti import PTITuneInfo
from vidswap.train.tune.cache import load_tuned_state, save_tuned_state, tune_key
from vidswap.train.tune.data import FramesReader, collect_tune_data
from vidswap.train.tune.params import TuneParams

E4S_TUNE_VERSION = "1"

__all__ = ["e4s_tune_key", "tune_e4s_core"]


def e4s_tune_key(analysis: ShotAnalysis, identity: E4SIdentity, params: TuneParams, core: E4SCore,
                 track_ids: Sequence[int] | None = None) -> str:
    """sha256 naming a tuning result: the common tune key plus this tuner's version, the selected regions and the
    checkpoint's bytes."""
    parts = [tune_key(analysis, identity, params, core, track_ids), f"e4s/{E4S_TUNE_VERSION}", repr(core.select),
             sha256_of(Path(core.config.checkpoint))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def tune_e4s_core(core: E4SCore, analysis: ShotAnalysis, frames_reader_fn: FramesReader, identity: E4SIdentity,
                  params: TuneParams, cache_dir: str | Path, retune: bool = False,
                  track_ids: Sequence[int] | None = None) -> PTITuneInfo:
    """Tune ``core``'s generator on the clip (or load the cached weights) and make the core render with it."""
    key = e4s_tune_key(analysis, identity, params, core, track_ids)
    weights = Path(cache_dir) / f"e4s_{key[:16]}.safetensors"
    cached = None if retune else load_tuned_state(weights, PTITuneInfo, key)
    if cached is not None:
        gen = copy.deepcopy(core.base)
        gen.load_state_dict(cached[0])
        core.use_generator(gen)
        return cached[1]
    t0 = time.perf_counter()
    data = collect_tune_data(analysis, frames_reader_fn, core.crop, params.max_frames, track_ids)
    crops = data.crops.to(core.device).float().clamp(0, 1)
    masks = core.crop_masks(data.landmarks.to(core.device))
    k = core.model.masked_layers
    with torch.no_grad():
        codes = core.codes(crops, masks)

    def render(gen, rows: Tensor) -> Tensor:
        return mask_guided_synthesize(gen, codes[rows], masks[rows], k)

    pti = PTIParams(steps=params.steps_for(core.device), lr=params.lr, batch=params.batch,
                    w_locality=params.w_locality, seed=params.seed, recon=InversionParams())
    result = pivotal_tuning(core.base, codes, crops, pti, render=render)
    with torch.no_grad():
        rows = torch.arange(len(crops), device=crops.device)
        before = psnr(from_unit(render(core.base, rows)), crops).mean().item()
        after = psnr(from_unit(render(result.generator, rows)), crops).mean().item()
    info = PTITuneInfo(key=key, cached=False, steps=len(result.losses), seconds=time.perf_counter() - t0,
                       frames=int(crops.shape[0]), losses=result.losses, terms=result.terms, weights=str(weights),
                       psnr_inversion=before, psnr_tuned=after)
    save_tuned_state(weights, result.generator, key, info)
    core.use_generator(result.generator)
    return info
