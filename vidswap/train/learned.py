"""Per-clip tuning of a learned swapper (inswapper / SimSwap / HyperSwap): the ONNX graph converted to torch
(:mod:`vidswap.models.onnx_torch`) and fine-tuned on the clip's own frames with the ``tune`` settings.

Training data: the clip's frames cut in the core's crop exactly as the render cuts them
(:func:`~vidswap.train.tune.data.collect_tune_data`). Loss terms (weights from :class:`TuneParams`):

* **self-reenactment** (``w_l1``): the actor swapped onto himself -- each crop with the source vector made from the
  clip's own faces (its ArcFace embeddings through the core's ``source_vector``) -- must reproduce the crop
  (L1 inside the alpha's border);
* **temporal** (``w_temporal``): with the job's source vector, the change of the swapped crop between consecutive
  frames must follow the target's change (L1 of the frame differences);
* **identity** (``w_identity``): the ArcFace cosine of the swapped crop to the source (the identity network
  converted to torch too, on the 112 ArcFace crop of the swap) must not fall below the untuned model's (a
  hinge, not a maximisation -- see :mod:`vidswap.train.tune.objective`);
* **locality** (``w_locality``): the mean squared distance of the weights to the file's (PTI's regulariser).

Adam for ``steps`` (CUDA) or ``cpu_steps`` (CPU) steps at ``lr``, seeded, on the training frames. Early stopping
(the generator tuning's rule and settings, :mod:`vidswap.train.tune.loop`): ``val_fraction`` of the consecutive
pairs, evenly spread, are held out (:func:`held_out`); every ``val_every`` steps (and after the last) the same
weighted loss on all held-out frames and pairs is measured without sampling; a validation that does not beat the
best by ``min_delta`` (relative) counts as bad, ``patience`` bad ones stop the run, and the best validated weights
are kept (step 0 -- the file's own weights -- included). No randomness enters validation, so a farm's chunks,
tuning on the same inputs, stay bit-identical. The weights are cached in the job
folder's ``tune/`` as safetensors under a key of the clip, the identity, the settings, the core and the swapper
file's sha256, and loaded instead of tuning when the key matches.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.faces.align import arcface_template, similarity_transform, warp_to_crop
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.models.onnx_torch import OnnxModule, load_onnx_module
from vidswap.models.sources import sha256_of
from vidswap.swap.base import SourceFace
from vidswap.swap.learned.identity import arcface_crops, arcface_embeddings
from vidswap.swap.learned.swapper import LearnedIdentity, LearnedSwapCore, border_alpha, explode, implode
from vidswap.train.tune.cache import load_tuned_state, save_tuned_state, tune_key
from vidswap.train.tune.data import FramesReader, TuneData, collect_tune_data
from vidswap.train.tune.params import TuneParams

LEARNED_TUNE_VERSION = "2"  # 2: held-out validation and early stopping


@dataclass
class LearnedTuneInfo:
    """What a learned-swapper tuning run did (also written as JSON next to the weights)."""

    key: str
    cached: bool
    steps: int = 0
    seconds: float = 0.0
    frames: int = 0
    losses: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    weights: str | None = None
    best_step: int = 0
    stopped_early: bool = False
    held_out: int = 0
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)


@dataclass
class _Batch:
    """What every loss evaluation reads (one tuning run): crops (N, 3, S, S), the clip's own and the job's source
    vectors, the source's normalised ArcFace (512,), the untuned identity cosines (N,), the crop border (1, 1, S, S),
    next-frame indices (N,), crop -> ArcFace alignments (N, 2, 3), and the starting weights."""

    crops: Tensor
    own: Tensor
    source: Tensor
    source_id: Tensor
    base_id: Tensor
    border: Tensor
    nxt: Tensor
    align: Tensor
    start: dict[str, Tensor]


def model_crops(core: LearnedSwapCore, crops: Tensor) -> Tensor:
    """The crops in model-size tiles (pixel boost) -- what the swapper itself sees."""
    return implode(crops, core.boost) if core.boost > 1 else crops


def own_vector(core: LearnedSwapCore, data: TuneData) -> Tensor:
    """The source vector of the clip's own actor: the core's ``source_vector`` of its frames' ArcFace embeddings."""
    faces = [SourceFace(image=c, landmarks=lm, x_c_obs=torch.zeros(478, 3))
             for c, lm in zip(data.crops.cpu(), data.landmarks.cpu())]
    embeddings = arcface_embeddings(core.identity_session, arcface_crops(faces, core.identity_template))
    return torch.from_numpy(core.source_vector(embeddings))


def arcface_alignment(core: LearnedSwapCore, n: int) -> Tensor:
    """(n, 2, 3): the core's crop -> the 112 crop its identity network reads (similarity between the templates:
    the standard ArcFace one, or ``core.identity_template`` where the network has its own, as GHOST's does)."""
    src = torch.tensor(core.crop.template, dtype=torch.float64)
    points = arcface_template(112) if core.identity_template is None else np.asarray(core.identity_template)
    dst = torch.from_numpy(np.asarray(points, np.float64)).double()
    return similarity_transform(src, dst).float().expand(n, 2, 3)


def identity_of(arcface: OnnxModule, crops: Tensor, align: Tensor) -> Tensor:
    """(B, 512) L2-normalised ArcFace embeddings of (B, 3, S, S) crops (differentiable)."""
    x = (warp_to_crop(crops, align.to(crops.device), 112) - 0.5) / 0.5
    return F.normalize(arcface(x), dim=-1)


def learned_tune_key(analysis: ShotAnalysis, identity: LearnedIdentity, params: TuneParams, core: LearnedSwapCore,
                     track_ids: Sequence[int] | None) -> str:
    """The cache key: :func:`~vidswap.train.tune.cache.tune_key` plus the swapper file's bytes."""
    parts = (f"vidswap.tune.learned/{LEARNED_TUNE_VERSION}", tune_key(analysis, identity, params, core, track_ids),
             sha256_of(Path(core.path)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def held_out(next_index: Tensor, fraction: float) -> Tensor:
    """(N,) bool: the frames held out for validation -- ``fraction`` of the consecutive pairs (``a``,
    ``next_index[a]``), evenly spread, at least one when there are 3 pairs or more (none below that); the
    generator tuning's split (:func:`vidswap.train.tune.objective.build_pool`)."""
    anchors = [a for a in range(len(next_index)) if int(next_index[a]) >= 0]
    mask = torch.zeros(len(next_index), dtype=torch.bool)
    if fraction <= 0 or len(anchors) < 3:
        return mask
    n_val = max(1, int(round(fraction * len(anchors))))
    for pos in sorted(set(np.linspace(0, len(anchors) - 1, n_val + 2)[1:-1].round().astype(int).tolist())):
        a = anchors[pos]
        mask[a] = mask[int(next_index[a])] = True
    return mask


def loss_terms(core: LearnedSwapCore, module: OnnxModule, arcface: OnnxModule, b: _Batch, rows: Tensor,
               pairs: Tensor, params: TuneParams) -> dict[str, Tensor]:
    """The loss terms on frames ``rows`` and consecutive pairs starting at ``pairs`` (see the module doc)."""
    x = b.crops[rows]
    terms = {"l1": (b.border * (swap_crops(core, module, x, b.own) - x).abs()).mean()}
    if len(pairs) and params.w_temporal > 0:
        nxt = b.nxt[pairs]
        sa = swap_crops(core, module, b.crops[pairs], b.source)
        sb = swap_crops(core, module, b.crops[nxt], b.source)
        terms["temporal"] = (b.border * ((sb - sa) - (b.crops[nxt] - b.crops[pairs])).abs()).mean()
    if params.w_identity > 0:
        swapped = swap_crops(core, module, x, b.source)
        cos = (identity_of(arcface, swapped, b.align[:len(rows)]) * b.source_id).sum(-1)
        terms["identity"] = F.relu(b.base_id[rows] - cos).mean()
    terms["locality"] = sum(((p - b.start[k]) ** 2).mean() for k, p in module.named_parameters()) / len(b.start)
    return terms


def weighted(terms: dict[str, Tensor], params: TuneParams) -> Tensor:
    weights = {"l1": params.w_l1, "temporal": params.w_temporal, "identity": params.w_identity,
               "locality": params.w_locality}
    return sum(weights[k] * v for k, v in terms.items())


def tune_module(core: LearnedSwapCore, data: TuneData, identity: LearnedIdentity, params: TuneParams,
                device: torch.device) -> tuple[OnnxModule, LearnedTuneInfo]:
    """Fine-tune the converted swapper on ``data`` (see the module doc); returns the module (its best validated
    weights) and the run record."""
    torch.manual_seed(params.seed)
    module = load_onnx_module(core.path).to(device).train()
    start = {k: v.detach().clone() for k, v in module.named_parameters()}
    arcface = load_onnx_module(core.identity_session.path).to(device).eval()
    for p in arcface.parameters():
        p.requires_grad_(False)
    crops = data.crops.to(device)
    n = crops.shape[0]
    own, source = own_vector(core, data).to(device), identity.vector.to(device)
    source_id = F.normalize(identity.arcface.to(device).float(), dim=-1)
    border = border_alpha(1, crops.shape[-1], 2 * core.boost, device=device)
    nxt = data.next_index.to(device)
    align = arcface_alignment(core, n)
    with torch.no_grad():
        base_id = (identity_of(arcface, swap_crops(core, module, crops, source), align) * source_id).sum(-1)
    b = _Batch(crops, own, source, source_id, base_id, border, nxt, align, start)
    val = held_out(data.next_index.cpu(), params.val_fraction).to(device)
    train_rows, val_rows = torch.nonzero(~val).flatten(), torch.nonzero(val).flatten()
    starts = (nxt >= 0) & ~val & ~val[nxt.clamp_min(0)]
    train_pairs, val_pairs = torch.nonzero(starts).flatten(), torch.nonzero((nxt >= 0) & val).flatten()
    steps = params.steps_for(device)
    optim = torch.optim.Adam(module.parameters(), lr=params.lr)
    gen = torch.Generator().manual_seed(params.seed)
    info = LearnedTuneInfo(key="", cached=False, frames=n, held_out=len(val_rows))

    def validate(step: int) -> float | None:
        if not len(val_rows):
            return None
        with torch.no_grad():
            v = float(weighted(loss_terms(core, module, arcface, b, val_rows, val_pairs, params), params))
        info.val_steps.append(step)
        info.val_losses.append(v)
        return v

    t0 = time.perf_counter()
    best, bad, step = validate(0), 0, 0
    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    for step in range(1, steps + 1):
        rows = train_rows[torch.randperm(len(train_rows), generator=gen)[:max(1, params.batch)].to(device)]
        pairs = train_pairs[:0]
        if len(train_pairs) and params.w_temporal > 0:
            pairs = train_pairs[torch.randint(len(train_pairs), (max(1, params.batch // 2),), generator=gen)
                                .to(device)]
        optim.zero_grad()
        terms = loss_terms(core, module, arcface, b, rows, pairs, params)
        loss = weighted(terms, params)
        loss.backward()
        optim.step()
        info.losses.append(loss.item())
        for k, v in terms.items():
            info.terms.setdefault(k, []).append(v.item())
        if best is not None and (step % max(1, params.val_every) == 0 or step == steps):
            v = validate(step)
            if v < best * (1.0 - params.min_delta):
                best, bad, info.best_step = v, 0, step
                best_state = {k: x.detach().clone() for k, x in module.state_dict().items()}
            else:
                bad += 1
                if bad >= params.patience:
                    info.stopped_early = True
                    break
    if best is not None:
        module.load_state_dict(best_state)
    else:
        info.best_step = step
    info.steps = step
    info.seconds = time.perf_counter() - t0
    return module.eval(), info


def swap_crops(core: LearnedSwapCore, module: OnnxModule, crops: Tensor, vector: Tensor) -> Tensor:
    """(B, 3, S, S) crops swapped by ``module`` with ``vector`` (tiled and interleaved under pixel boost)."""
    out = core.forward_torch(module, model_crops(core, crops), vector)
    return out if core.boost == 1 else explode(out, core.boost)


def tune_learned_core(core: LearnedSwapCore, analysis: ShotAnalysis, frames_reader_fn: FramesReader,
                      identity: LearnedIdentity, params: TuneParams, cache_dir: str | Path, retune: bool = False,
                      track_ids: Sequence[int] | None = None) -> LearnedTuneInfo:
    """Tune ``core``'s swapper on the clip (or load the cached weights) and make the core run the tuned module."""
    key = learned_tune_key(analysis, identity, params, core, track_ids)
    cache_dir = Path(cache_dir)
    weights = cache_dir / f"learned_{core.name}_{key[:16]}.safetensors"
    cached = None if retune else load_tuned_state(weights, LearnedTuneInfo, key)
    if cached is not None:
        module = load_onnx_module(core.path)
        module.load_state_dict(cached[0])
        core.use_module(module)
        return cached[1]
    data = collect_tune_data(analysis, frames_reader_fn, core.crop, params.max_frames, track_ids)
    module, info = tune_module(core, data, identity, params, core.device)
    info.key, info.weights = key, str(weights)
    save_tuned_state(weights, module, key, info)
    core.use_module(module)
    return info


__all__ = ["LearnedTuneInfo", "held_out", "learned_tune_key", "loss_terms", "own_vector", "tune_learned_core",
           "tune_module"]
