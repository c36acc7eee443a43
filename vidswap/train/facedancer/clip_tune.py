"""Per-clip tuning of a trained FaceDancer generator (``swap.core: facedancer`` with ``tune.enabled``).

The generator from ``vidswap train`` is fine-tuned on the clip's own frames (pivotal tuning, as for the learned
swappers in :mod:`vidswap.train.learned`), instead of training a refiner on its output. Training data: the clip's
frames cut in the core's crop exactly as the render cuts them (:func:`~vidswap.train.tune.data.collect_tune_data`).
Loss terms (weights from :class:`~vidswap.train.tune.params.TuneParams`):

* **self-reenactment** (``w_l1``): the actor swapped onto himself -- every crop with the identity vector of the
  clip's own actor (the model's identity encoder on the clip's crops, averaged and normalised, like ``prepare``
  does for source photos) -- must reproduce the crop (L1 inside the alpha's border);
* **temporal** (``w_temporal``): with the job's source identity, the change of the swapped crop between
  consecutive frames must follow the target's change;
* **identity** (``w_identity``): the identity encoder's cosine of the swapped crop to the source identity must not
  fall below the untuned generator's (a hinge);
* **locality** (``w_locality``): mean squared distance of the weights to the checkpoint's (PTI's regulariser).

Adam for ``steps`` (CUDA) or ``cpu_steps`` (CPU) at ``lr``, seeded. The tuned weights are cached in the job
folder's ``tune/`` as safetensors, keyed by the clip, the identity, the settings and the checkpoint's sha256, and
loaded instead of tuning when the key matches.
"""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.models.sources import sha256_of
from vidswap.swap.facedancer import FaceDancerCore, FaceDancerIdentity, border_alpha
from vidswap.train.learned import LearnedTuneInfo
from vidswap.train.tune.cache import load_tuned_state, save_tuned_state, tune_key
from vidswap.train.tune.data import FramesReader, TuneData, collect_tune_data
from vidswap.train.tune.params import TuneParams

FACEDANCER_TUNE_VERSION = "1"


def facedancer_tune_key(analysis: ShotAnalysis, identity: FaceDancerIdentity, params: TuneParams,
                        core: FaceDancerCore, track_ids: Sequence[int] | None = None) -> str:
    """sha256 naming a tuning result: the common tune key plus this tuner's version and the checkpoint's bytes."""
    parts = [tune_key(analysis, identity, params, core, track_ids), f"facedancer-clip/{FACEDANCER_TUNE_VERSION}",
             sha256_of(Path(core.config.checkpoint))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def clip_identity(core: FaceDancerCore, crops: Tensor) -> Tensor:
    """(D,) the clip actor's unit identity vector from its aligned crops (N, 3, S, S), as ``prepare`` makes one."""
    with torch.no_grad():
        return F.normalize(core.identity_net(crops.clamp(0, 1)).mean(0), dim=0)


def swap_with(generator: torch.nn.Module, crops: Tensor, id_vec: Tensor) -> Tensor:
    """(B, 3, S, S) crops swapped to the (D,) identity by ``generator``."""
    return generator(crops.clamp(0, 1), id_vec[None].expand(crops.shape[0], -1))


def tune_generator(core: FaceDancerCore, data: TuneData, identity: FaceDancerIdentity, params: TuneParams,
                   device: torch.device) -> tuple[torch.nn.Module, LearnedTuneInfo]:
    """Fine-tune a copy of the core's generator on ``data`` (see the module doc); returns it and the run record."""
    torch.manual_seed(params.seed)
    gen = copy.deepcopy(core.generator).to(device).train().requires_grad_(True)
    start = {k: v.detach().clone() for k, v in gen.named_parameters()}
    idnet = core.identity_net.to(device).eval()
    for p in idnet.parameters():
        p.requires_grad_(False)
    crops = data.crops.to(device).float()
    n = crops.shape[0]
    own = clip_identity(core, crops)
    source = F.normalize(identity.id_vec.to(device).float(), dim=0)
    border = border_alpha(crops.shape[-1], core.config.feather, device)
    nxt = data.next_index.to(device)
    pairs = torch.nonzero(nxt >= 0).flatten()
    with torch.no_grad():
        base_id = F.normalize(idnet(swap_with(gen, crops, source)), dim=-1) @ source
    steps = params.steps_for(device)
    optim = torch.optim.Adam(gen.parameters(), lr=params.lr)
    sampler = torch.Generator().manual_seed(params.seed)
    info = LearnedTuneInfo(key="", cached=False, frames=n)
    weights = {"l1": params.w_l1, "temporal": params.w_temporal, "identity": params.w_identity,
               "locality": params.w_locality}
    t0 = time.perf_counter()
    for _ in range(steps):
        rows = torch.randperm(n, generator=sampler)[:max(1, params.batch)].to(device)
        optim.zero_grad()
        x = crops[rows]
        terms = {"l1": (border * (swap_with(gen, x, own) - x).abs()).mean()}
        if len(pairs) and params.w_temporal > 0:
            a = pairs[torch.randint(len(pairs), (max(1, params.batch // 2),), generator=sampler).to(device)]
            b = nxt[a]
            moved = swap_with(gen, crops[b], source) - swap_with(gen, crops[a], source)
            terms["temporal"] = (border * (moved - (crops[b] - crops[a])).abs()).mean()
        if params.w_identity > 0:
            cos = F.normalize(idnet(swap_with(gen, x, source)), dim=-1) @ source
            terms["identity"] = F.relu(base_id[rows] - cos).mean()
        terms["locality"] = sum(((p - start[k]) ** 2).mean() for k, p in gen.named_parameters()) / len(start)
        loss = sum(weights[k] * v for k, v in terms.items())
        loss.backward()
        optim.step()
        info.losses.append(loss.item())
        for k, v in terms.items():
            info.terms.setdefault(k, []).append(v.item())
    info.steps = steps
    info.seconds = time.perf_counter() - t0
    return gen.eval().requires_grad_(False), info


def tune_facedancer_core(core: FaceDancerCore, analysis: ShotAnalysis, frames_reader_fn: FramesReader,
                         identity: FaceDancerIdentity, params: TuneParams, cache_dir: str | Path,
                         retune: bool = False, track_ids: Sequence[int] | None = None) -> LearnedTuneInfo:
    """Tune ``core``'s generator on the clip (or load the cached weights) and make the core render with it."""
    key = facedancer_tune_key(analysis, identity, params, core, track_ids)
    cache_dir = Path(cache_dir)
    weights = cache_dir / f"facedancer_{key[:16]}.safetensors"
    cached = None if retune else load_tuned_state(weights, LearnedTuneInfo, key)
    if cached is not None:
        gen = copy.deepcopy(core.generator)
        gen.load_state_dict(cached[0])
        core.use_generator(gen)
        return cached[1]
    data = collect_tune_data(analysis, frames_reader_fn, core.crop, params.max_frames, track_ids)
    gen, info = tune_generator(core, data, identity, params, core.device)
    info.key, info.weights = key, str(weights)
    save_tuned_state(weights, gen, key, info)
    core.use_generator(gen)
    return info


__all__ = ["clip_identity", "facedancer_tune_key", "tune_facedancer_core", "tune_generator"]
