"""Per-clip fine-tuning of the refinement generator (pivotal tuning, PTI) on the clip's own frames.

E4S (appendix B) fine-tunes its generator on all driven frames of a video before swapping frame by frame, to make
the result temporally consistent; its UI exposes "Max PTI Steps", "PTI Learning Rate" and "PTI Resume Weight
Path". Here the generator is :class:`vidswap.swap.generator.SwapGenerator` and the pivots are self-reenactment
pairs made from the target clip itself:

* **self-reenactment** (pixel ground truth): frame i's own face is textured from frame i's crop and rendered on
  frame j's geometry (the track's neutral shape + frame j's expression and pose, through the same
  :class:`~vidswap.swap.core.GeometricSwapCore` the render uses); the generator, conditioned on frame i's SFace
  embedding, must reproduce the real frame j inside the face: masked L1 + multi-scale SSIM (no downloaded
  perceptual network);
* **swap** (no ground truth): the source identity rendered on consecutive target frames (j, j+1):
  - identity: the SFace cosine of the composited output to the source (differentiable SFace,
    :mod:`vidswap.swap.identity_torch`) must not fall below the render's own (a hinge, not a maximisation:
    maximising it makes the generator paint adversarial colour patterns that fool SFace, seen in the first
    experiments: SFace cosine 0.50 -> 0.80 in 30 steps with green / pink blotches);
  - temporal: the output of frame j warped by the *target's* optical flow (OpenCV DIS on the target crops,
    forward-backward checked) must match the output of frame j+1 inside the face; the same for the blend mask;
  - mask: the blend mask stays near the render's alpha;
* **locality**: an L2 pull of all weights toward the starting point (PTI's regulariser), and early stopping on a
  validation plateau (held-out consecutive pairs); the best validation state is kept -- which is the starting
  point itself when tuning never beat it.

Deterministic: seeded initialisation and ``torch.Generator`` sampling, deterministic algorithms during the
optimisation; the same inputs on the same machine give bit-identical weights. Mixed precision (bf16, or fp16
with loss scaling) on CUDA only.

Tuned weights are cached as safetensors in a folder given by the caller (e.g. ``job_dir / 'tune'``), keyed by the
sha256 of the clip content (the analysis key: input fingerprint, frames, analysis settings, model hashes), the
frames and tracks used, the source identity, the tuning parameters, the starting checkpoint and the swap core's
settings; every render chunk of a farm job finds the same file. ``retune=True`` forces tuning. A PNG of the loss
curves is written next to the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.swap import losses as L
from vidswap.swap.generator import GeneratorConfig, SwapGenerator, face_region, load_generator, save_generator

__all__ = [
    "TuneParams",
    "TuneData",
    "TuneInfo",
    "TUNE_VERSION",
    "collect_tune_data",
    "tune_generator",
    "tune_for_shot",
    "tune_key",
    "frame_reader",
    "identity_hash",
    "plot_history",
    "build_refiner",
]

TUNE_VERSION = 1


@dataclass(frozen=True)
class TuneParams:
    """Settings of per-clip generator tuning.

    Attributes:
        enabled: run tuning at all (the pipeline's switch).
        steps: optimisation steps on CUDA.
        cpu_steps: optimisation steps on CPU (tuning is ~50x slower there).
        lr: Adam learning rate of the network weights.
        gain_lr: learning rate of the zero-initialised output gains γ.
        batch: samples per step (self-reenactment pairs + swap frames).
        swap_fraction: share of the batch given to the swap branch (rounded to whole consecutive pairs).
        max_frames: frames sampled from the clip (evenly, as consecutive pairs).
        pairs_per_frame: texture frames rendered onto each sampled frame (self-reenactment pool).
        texture_frames: frames (evenly spread) that texture the self-reenactment renders.
        crop_size: tuning crop side (None: the swap core's crop size; tune at the size you render).
        val_fraction: share of the consecutive pairs held out for validation.
        val_every: steps between validations (early stopping).
        patience: validations without improvement before stopping.
        min_delta: relative improvement of the validation loss that counts.
        w_l1, w_ssim: self-reenactment reconstruction weights (L1, multi-scale 1 - SSIM).
        w_identity: identity hinge weight (swap branch): SFace cosine to the source below the render's.
        identity_every: apply the identity term every N steps (SFace forward + backward is ~40% of a CPU step).
        identity_margin: drops of the SFace cosine below the render's that the hinge tolerates (batch-size
            numerical noise of the identity network is ~1e-4; the acceptance budget is 0.02).
        w_temporal, w_mask_temporal: flow-warped output and mask consistency (swap branch).
        w_mask: blend mask kept near the render's alpha.
        w_locality: PTI weight regulariser (mean squared distance to the starting weights).
        channels: generator channels when no checkpoint is given.
        seed: seeds initialisation and sampling.
        checkpoint: safetensors file of a generic generator to start from (None: the zero-gain initialisation,
            which is exactly the swap core's render).
    """

    enabled: bool = False
    steps: int = 300
    cpu_steps: int = 40
    lr: float = 1e-3
    gain_lr: float = 1e-2
    batch: int = 8
    swap_fraction: float = 0.5
    max_frames: int = 48
    pairs_per_frame: int = 3
    texture_frames: int = 8
    crop_size: int | None = None
    val_fraction: float = 0.15
    val_every: int = 5
    patience: int = 4
    min_delta: float = 1e-3
    w_l1: float = 1.0
    w_ssim: float = 0.5
    w_identity: float = 1.0
    identity_every: int = 2
    identity_margin: float = 0.005
    w_temporal: float = 1.0
    w_mask_temporal: float = 0.5
    w_mask: float = 1.0
    w_locality: float = 10.0
    channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    seed: int = 0
    checkpoint: str | None = None

    def steps_for(self, device: torch.device) -> int:
        return self.steps if torch.device(device).type == "cuda" else self.cpu_steps

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> "TuneParams":
        """From the job config's ``tune`` section (any object with matching attribute names) plus overrides."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {n: getattr(cfg, n) for n in names if hasattr(cfg, n)}
        kw.update(overrides)
        if "channels" in kw:
            kw["channels"] = tuple(kw["channels"])
        return cls(**kw)


@dataclass
class TuneData:
    """Aligned training crops of a clip (what :func:`collect_tune_data` reads), N frames.

    Attributes:
        numbers: (N,) frame numbers; tracks: (N,) their track ids.
        crops: (N, 3, S, S) aligned target crops (the processor's recipe); landmarks (N, 478, 3) in crop px.
        s, R, t, expression, confidence: the :class:`~vidswap.swap.core.SwapBatch` fields per frame.
        neutral: (N, 478, 3) the track's neutral shape (canonical frame) of each frame.
        textures: (N, 3, T, T) texture crops (the swap core's ``prepare`` recipe); texture_landmarks (N, 478, 3).
        next_index: (N,) index of the following frame of the same track in this data, -1 if none.
    """

    numbers: list[int]
    tracks: list[int]
    crops: Tensor
    landmarks: Tensor
    s: Tensor
    R: Tensor
    t: Tensor
    expression: Tensor
    confidence: Tensor
    neutral: Tensor
    textures: Tensor
    texture_landmarks: Tensor
    next_index: Tensor

    def __len__(self) -> int:
        return len(self.numbers)

    def batch(self, idx: Sequence[int] | Tensor):
        from vidswap.swap.core import SwapBatch

        i = torch.as_tensor(idx, dtype=torch.long)
        return SwapBatch(target_crops=self.crops[i], target_landmarks=self.landmarks[i], s=self.s[i], R=self.R[i],
                         t=self.t[i], expression=self.expression[i], confidence=self.confidence[i])

    def to(self, device: torch.device | str) -> "TuneData":
        kw = {f.name: (getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), Tensor)
                       else getattr(self, f.name)) for f in dataclasses.fields(self)}
        return TuneData(**kw)


@dataclass
class TuneInfo:
    """What a tuning run did (also written as JSON next to the weights)."""

    key: str
    cached: bool
    steps_run: int = 0
    best_step: int = 0
    initial_val: float = float("nan")
    best_val: float = float("nan")
    stopped_early: bool = False
    seconds: float = 0.0
    seconds_per_step: float = 0.0
    device: str = "cpu"
    frames: list[int] = field(default_factory=list)
    weights: str | None = None
    plot: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    val_history: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> str:
        def clean(x):
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x

        return json.dumps(clean(asdict(self)), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "TuneInfo":
        raw = json.loads(text)
        for k in ("initial_val", "best_val"):
            if raw.get(k) is None:
                raw[k] = float("nan")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


# ---------------------------------------------------------------------------------------------------------------
# reading the clip
# ---------------------------------------------------------------------------------------------------------------

def frame_reader(source) -> Callable[[Sequence[int]], Iterable]:
    """A ``frames_reader_fn`` for :func:`tune_for_shot` over a video or image sequence (a path, or the
    :class:`~vidswap.io.MediaInfo` of a probed input): ``fn(numbers)`` streams the range from the first to the
    last wanted frame (``vidswap.io.read_frames``) and yields the wanted :class:`~vidswap.io.Frame` objects."""
    from vidswap.io import probe, read_frames

    info = source if hasattr(source, "frame_numbers") else probe(source)

    def read(numbers: Sequence[int]):
        want = set(int(n) for n in numbers)
        if not want:
            return
        with read_frames(info, range(min(want), max(want) + 1)) as frames:
            for f in frames:
                if f.number in want:
                    yield f

    return read


def _sample_positions(n: int, budget: int) -> list[int]:
    """Anchor rows p of consecutive pairs (p, p+1) spread evenly over a track of n frames, about budget // 2."""
    if n < 2:
        return [0] if n == 1 else []
    pairs = max(1, budget // 2)
    if pairs >= n - 1:
        return list(range(n - 1))
    return sorted(set(np.linspace(0, n - 2, pairs).round().astype(int).tolist()))


def collect_tune_data(analysis, frames_reader_fn: Callable[[Sequence[int]], Iterable], crop_size: int,
                      max_frames: int = 48, track_ids: Sequence[int] | None = None, texture_size: int | None = None,
                      texture_margin: float = 0.25, device: torch.device | str = "cpu") -> TuneData:
    """Sample up to ``max_frames`` frames of the shot's tracks (evenly, as consecutive pairs) and build their aligned
    crops exactly as :class:`~vidswap.swap.processor.FaceSwapProcessor` does, plus texture crops as the swap
    core's ``prepare`` makes them.

    Args:
        analysis: :class:`~vidswap.faces.analyze.ShotAnalysis`.
        frames_reader_fn: ``fn(numbers) -> iterable`` of :class:`~vidswap.io.Frame` (or ``(number, HxWx3)``) in
            any order (:func:`frame_reader`).
        crop_size: aligned crop side S.
        max_frames: frame budget over all tracks (shared in proportion to track length).
        track_ids: tracks to sample (default all).
        texture_size: texture crop side (default: the swap core's: 1.25 S rounded to 32).
        texture_margin: texture crop margin (the swap core's ``texture_margin``).
    """
    from vidswap.composite.convert import to_float
    from vidswap.faces.pose import decompose, expression
    from vidswap.swap.core import crop_frame_from_landmarks, transform_landmarks, warp_to_crop
    from vidswap.swap.processor import CROP_MARGIN

    tracks = [analysis.track(t) for t in track_ids] if track_ids is not None else list(analysis.tracks)
    tracks = [t for t in tracks if len(t.frames)]
    if not tracks:
        raise ValueError("collect_tune_data: no track with frames")
    T = texture_size or max(32, int(round(1.25 * crop_size / 32)) * 32)
    total = sum(len(t.frames) for t in tracks)
    picked: set[tuple[int, int]] = set()  # (track index, track row)
    for k, tr in enumerate(tracks):
        budget = max(2, int(round(max_frames * len(tr.frames) / total)))
        for p in _sample_positions(len(tr.frames), budget):
            picked.add((k, p))
            if p + 1 < len(tr.frames):
                picked.add((k, p + 1))
    wanted = sorted(picked)
    by_number: dict[int, list[tuple[int, int]]] = {}
    for k, p in wanted:
        by_number.setdefault(int(tracks[k].frames[p]), []).append((k, p))
    images: dict[int, np.ndarray] = {}
    for item in frames_reader_fn(sorted(by_number)):
        number, image = (item.number, item.image) if hasattr(item, "image") else (int(item[0]), item[1])
        if number in by_number:
            images[int(number)] = image
    missing = sorted(set(by_number) - set(images))
    if missing:
        raise ValueError(f"collect_tune_data: the reader did not return frames {missing[:8]}")

    rows = []
    for k, p in wanted:
        tr = tracks[k]
        number = int(tr.frames[p])
        img = to_float(images[number], device)[None]
        lm = torch.from_numpy(tr.smoothed[p:p + 1]).to(device)
        m = crop_frame_from_landmarks(lm, crop_size, CROP_MARGIN)
        crop = warp_to_crop(img, m, crop_size)
        lm_crop = transform_landmarks(lm, m)
        mt = crop_frame_from_landmarks(lm, T, texture_margin)
        tex = warp_to_crop(img, mt, T)
        lm_tex = transform_landmarks(lm, mt)
        conf = float(max(tr.confidences[p], 0.0)) if not tr.interpolated[p] else 0.7
        rows.append((number, int(tr.id), crop[0], lm_crop[0], tex[0], lm_tex[0], conf,
                     torch.from_numpy(tr.neutral).to(device)))
    crops = torch.stack([r[2] for r in rows])
    lms = torch.stack([r[3] for r in rows])
    pose = decompose(lms)
    neutral = torch.stack([r[7] for r in rows]).float()
    delta = expression(pose.x_c_obs, neutral)
    nxt = torch.full((len(rows),), -1, dtype=torch.long)
    for a, (ka, pa) in enumerate(wanted[:-1]):
        if wanted[a + 1] == (ka, pa + 1):
            nxt[a] = a + 1
    return TuneData(numbers=[r[0] for r in rows], tracks=[r[1] for r in rows], crops=crops, landmarks=lms,
                    s=pose.s, R=pose.R, t=pose.t, expression=delta,
                    confidence=torch.tensor([r[6] for r in rows], dtype=torch.float32, device=crops.device),
                    neutral=neutral, textures=torch.stack([r[4] for r in rows]),
                    texture_landmarks=torch.stack([r[5] for r in rows]), next_index=nxt.to(crops.device))


# ---------------------------------------------------------------------------------------------------------------
# the training set: renders, flows, embeddings
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class _Pool:
    """Everything the optimisation loop samples from (precomputed once, on the tuning device)."""

    crops: Tensor  # (N, 3, S, S)
    landmarks: Tensor  # (N, 478, 3)
    embeddings: Tensor  # (N, D) SFace of each frame (self-reenactment conditioning)
    source: Tensor  # (D,) source embedding
    # self-reenactment pairs: target j, texture i, render, alpha
    pair_j: Tensor
    pair_i: Tensor
    pair_render: Tensor
    pair_alpha: Tensor
    pair_region: Tensor
    pair_val: Tensor  # (P,) bool
    # swap branch: per frame
    swap_render: Tensor
    swap_alpha: Tensor
    swap_region: Tensor
    swap_align: Tensor  # (N, 2, 3) crop -> ArcFace 112 matrices from the driven landmarks
    swap_id_base: Tensor  # (N,) SFace cosine of the render composite to the source (what must not drop)
    # consecutive pairs (a, b = next of a)
    cons_a: Tensor
    cons_b: Tensor
    cons_flow: Tensor  # (C, 2, S, S) backward flow b -> a
    cons_weight: Tensor  # (C, 1, S, S) flow confidence x face (render alpha of b)
    cons_val: Tensor  # (C,) bool


def _embed(net, images: Tensor, landmarks: Tensor, chunk: int = 16) -> Tensor:
    from vidswap.swap.identity_torch import align_for_identity

    out = []
    with torch.no_grad():
        for s in range(0, images.shape[0], chunk):
            out.append(net(align_for_identity(images[s:s + chunk], landmarks[s:s + chunk]), normalize=True))
    return torch.cat(out)


def _build_pool(data: TuneData, identity, core, sface, params: TuneParams, face_loop: Tensor,
                gen_cfg: GeneratorConfig, device: torch.device) -> _Pool:
    from vidswap.faces.align import estimate_alignment
    from vidswap.swap.core import SourceFace, warp_to_crop
    from vidswap.swap.identity_torch import kps5_from_landmarks

    N = len(data)
    g = torch.Generator().manual_seed(params.seed + 1)
    # held-out consecutive pairs (evenly spread)
    anchors = [a for a in range(N) if int(data.next_index[a]) >= 0]
    n_val = int(round(params.val_fraction * len(anchors))) if len(anchors) >= 3 else 0
    if params.val_fraction > 0 and len(anchors) >= 3:
        n_val = max(1, n_val)
    val_anchor_pos = set(np.linspace(0, len(anchors) - 1, n_val + 2)[1:-1].round().astype(int).tolist()) \
        if n_val else set()
    val_frames = set()
    for k, a in enumerate(anchors):
        if k in val_anchor_pos:
            val_frames.update({a, int(data.next_index[a])})

    embeddings = _embed(sface, data.crops, data.landmarks)
    if identity.embedding is not None:
        source = F.normalize(identity.embedding.to(device, torch.float32).reshape(-1), dim=0)
    else:
        k = identity.texture_index
        source = _embed(sface, identity.images[k:k + 1].to(device), identity.landmarks[k:k + 1].to(device))[0]

    # self-reenactment pool: every frame j gets `pairs_per_frame` texture frames i != j (spread over the clip)
    pj, pi = [], []
    n_tex = max(2, min(N, params.texture_frames))
    textures = sorted(set(np.linspace(0, N - 1, n_tex).round().astype(int).tolist()))
    for j in range(N):
        others = [i for i in textures if i != j and data.numbers[i] != data.numbers[j]]
        if not others:
            continue
        perm = torch.randperm(len(others), generator=g).tolist()
        for k in perm[:max(1, params.pairs_per_frame)]:
            pj.append(j)
            pi.append(others[k])
    idents = {}
    for i in sorted(set(pi)):
        idents[i] = core.prepare([SourceFace(image=data.textures[i], landmarks=data.texture_landmarks[i],
                                             x_c_obs=data.neutral[i])])
    S = data.crops.shape[-1]
    pair_render = torch.zeros(len(pj), 3, S, S, device=device)
    pair_alpha = torch.zeros(len(pj), 1, S, S, device=device)
    with torch.no_grad():
        for i, ident in idents.items():  # one render call per texture frame
            rows = [k for k, x in enumerate(pi) if x == i]
            res = core.swap(data.batch([pj[k] for k in rows]), ident)
            pair_render[rows] = res.crops.to(device, torch.float32)
            pair_alpha[rows] = res.alpha.to(device, torch.float32)
        pair_j = torch.tensor(pj, dtype=torch.long, device=device)
        pair_region = face_region(data.landmarks[pair_j], pair_alpha, face_loop, gen_cfg.region_grow)

        # swap branch
        srs, sas, sdl = [], [], []
        for s in range(0, N, 16):
            res = core.swap(data.batch(range(s, min(N, s + 16))), identity)
            srs.append(res.crops)
            sas.append(res.alpha)
            sdl.append(res.driven_landmarks)
        swap_render = torch.cat(srs).to(device)
        swap_alpha = torch.cat(sas).to(device)
        driven = torch.cat(sdl).to(device)
        swap_region = face_region(data.landmarks, swap_alpha, face_loop, gen_cfg.region_grow)
        kps = kps5_from_landmarks(driven).cpu().numpy()
        swap_align = torch.as_tensor(estimate_alignment(kps, 112), dtype=torch.float32, device=device)
        comp = swap_render * swap_alpha + data.crops.to(device) * (1.0 - swap_alpha)
        swap_id_base = torch.cat([sface(warp_to_crop(comp[s:s + 16], swap_align[s:s + 16], 112), normalize=True)
                                  for s in range(0, N, 16)]) @ source

        # consecutive pairs: DIS flow on the target crops, both ways, forward-backward checked
        ca = torch.tensor(anchors, dtype=torch.long, device=device)
        cb = data.next_index.to(device)[ca] if len(anchors) else ca
        if len(anchors):
            flow_bw = L.dis_flow(data.crops[cb], data.crops[ca])
            flow_fw = L.dis_flow(data.crops[ca], data.crops[cb])
            conf = L.flow_confidence(flow_bw, flow_fw)
            # pixels where the plate itself changes after compensation (occlusions, flow failures) are left out
            photo = (data.crops[cb] - L.warp(data.crops[ca], flow_bw)).abs().mean(1, keepdim=True)
            conf = conf * (photo < 0.08).float()
            face = (swap_alpha[cb] > 0.5).float()
            cons_weight = conf * face
        else:
            S = data.crops.shape[-1]
            flow_bw = torch.zeros(0, 2, S, S, device=device)
            cons_weight = torch.zeros(0, 1, S, S, device=device)
    pair_val = torch.tensor([j in val_frames for j in pj], dtype=torch.bool, device=device)
    cons_val = torch.tensor([a in val_frames for a in anchors], dtype=torch.bool, device=device)
    return _Pool(crops=data.crops.to(device), landmarks=data.landmarks.to(device), embeddings=embeddings,
                 source=source, pair_j=pair_j, pair_i=torch.tensor(pi, dtype=torch.long, device=device),
                 pair_render=pair_render, pair_alpha=pair_alpha, pair_region=pair_region, pair_val=pair_val,
                 swap_render=swap_render, swap_alpha=swap_alpha, swap_region=swap_region, swap_align=swap_align,
                 swap_id_base=swap_id_base,
                 cons_a=ca, cons_b=cb, cons_flow=flow_bw, cons_weight=cons_weight, cons_val=cons_val)


# ---------------------------------------------------------------------------------------------------------------
# the optimisation
# ---------------------------------------------------------------------------------------------------------------

@contextmanager
def _deterministic(device: torch.device):
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def _losses(gen: SwapGenerator, pool: _Pool, pairs: Tensor, cons: Tensor, params: TuneParams, sface,
            anchors: list[Tensor], amp: tuple[bool, torch.dtype], with_locality: bool = True,
            with_identity: bool = True) -> dict[str, Tensor]:
    """All loss terms for self-reenactment pairs ``pairs`` and consecutive swap pairs ``cons`` (pool indices)."""
    from vidswap.swap.core import warp_to_crop

    use_amp, amp_dtype = amp
    dev = pool.crops.device
    n_rec = int(pairs.numel())
    frames = torch.cat([pool.cons_a[cons], pool.cons_b[cons]]) if cons.numel() else cons
    j = pool.pair_j[pairs]
    target = torch.cat([pool.crops[j], pool.crops[frames]])
    render = torch.cat([pool.pair_render[pairs], pool.swap_render[frames]])
    alpha = torch.cat([pool.pair_alpha[pairs], pool.swap_alpha[frames]])
    region = torch.cat([pool.pair_region[pairs], pool.swap_region[frames]])
    emb = torch.cat([pool.embeddings[pool.pair_i[pairs]], pool.source[None].expand(int(frames.numel()), -1)])
    with torch.autocast(device_type="cuda", dtype=amp_dtype, enabled=use_amp):
        delta = gen.residual(target, render, alpha, emb, region)
    g = gen.gain.float()
    out = render + g[:3].view(1, 3, 1, 1) * delta[:, :3].float()
    out_a = torch.clamp(alpha + g[3] * delta[:, 3:4].float(), 0.0, 1.0)
    zero = torch.zeros((), device=dev)
    terms: dict[str, Tensor] = {}
    S = target.shape[-1]
    window = 11 if S >= 192 else 7
    if n_rec:
        # where the crop is shown: compare the crop composited over the ground truth with the render's alpha (the
        # structural windows straddling the face's edge and the eye / mouth holes then see plate on both sides)
        a_r, t_r = alpha[:n_rec], target[:n_rec]
        comp = out[:n_rec] * a_r + t_r * (1.0 - a_r)
        terms["l1"] = L.masked_l1(out[:n_rec], t_r, a_r)
        terms["ssim"] = L.multiscale_ssim_loss(comp, t_r, F.max_pool2d(a_r, 3, 1, 1), 3, window) \
            if params.w_ssim > 0 else zero
    else:
        terms["l1"] = terms["ssim"] = zero
    n_sw = int(frames.numel())
    if n_sw:
        o, a, t = out[n_rec:], out_a[n_rec:], target[n_rec:]
        comp = o * a + t * (1.0 - a)
        if params.w_identity > 0 and with_identity:
            crops112 = warp_to_crop(comp, pool.swap_align[frames], 112)
            with torch.autocast(device_type="cuda", dtype=amp_dtype, enabled=use_amp):
                e = sface(crops112)
            cos = F.cosine_similarity(e.float(), pool.source[None].expand_as(e), dim=-1)
            terms["identity"] = L.identity_hinge(cos, pool.swap_id_base[frames], params.identity_margin)
        else:
            terms["identity"] = zero
        c = int(cons.numel())
        flow, wt = pool.cons_flow[cons], pool.cons_weight[cons]
        terms["temporal"] = L.temporal_loss(o[c:], o[:c], flow, wt)
        terms["mask_temporal"] = L.mask_temporal_loss(a[c:], a[:c], flow, wt)
        terms["mask"] = (out_a[n_rec:] - alpha[n_rec:]).abs().mean()
    else:
        terms["identity"] = terms["temporal"] = terms["mask_temporal"] = terms["mask"] = zero
    if n_rec:
        terms["mask"] = terms["mask"] + (out_a[:n_rec] - alpha[:n_rec]).abs().mean()
    terms["locality"] = L.weight_l2(list(gen.parameters()), anchors) if with_locality else zero
    terms["total"] = (params.w_l1 * terms["l1"] + params.w_ssim * terms["ssim"]
                      + params.w_identity * terms["identity"] + params.w_temporal * terms["temporal"]
                      + params.w_mask_temporal * terms["mask_temporal"] + params.w_mask * terms["mask"]
                      + params.w_locality * terms["locality"])
    return terms


def _validate(gen, pool, params, sface, anchors, amp) -> dict[str, float]:
    pairs = torch.nonzero(pool.pair_val).flatten()
    cons = torch.nonzero(pool.cons_val).flatten()
    if pairs.numel() == 0 and cons.numel() == 0:
        return {}
    sums: dict[str, float] = {}
    n = 0
    with torch.no_grad():
        chunk = max(1, params.batch // 2)
        p_chunks = list(pairs.split(chunk)) or [pairs]
        c_chunks = list(cons.split(max(1, chunk // 2))) or [cons]
        for k in range(max(len(p_chunks), len(c_chunks))):
            p = p_chunks[k] if k < len(p_chunks) else pairs[:0]
            c = c_chunks[k] if k < len(c_chunks) else cons[:0]
            t = _losses(gen, pool, p, c, params, sface, anchors, amp, with_locality=False)
            for key, v in t.items():
                sums[key] = sums.get(key, 0.0) + float(v)
            n += 1
    return {k: v / n for k, v in sums.items()}


def _optimiser(generator: SwapGenerator, params: TuneParams, dev: torch.device):
    """Adam (network weights at ``lr``, the gains γ at ``gain_lr``), the loss scaler and the autocast setting."""
    use_amp = dev.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    net_params = [p for n, p in generator.named_parameters() if n != "gain"]
    opt = torch.optim.Adam([{"params": net_params, "lr": params.lr},
                            {"params": [generator.gain], "lr": params.gain_lr}], betas=(0.9, 0.99))
    return opt, scaler, (use_amp, amp_dtype)


def _train_step(generator, opt, scaler, pool: _Pool, pairs: Tensor, cons: Tensor, params: TuneParams, sface,
                anchors: list[Tensor], amp, with_identity: bool) -> dict[str, Tensor]:
    """One optimisation step on self-reenactment pairs ``pairs`` and consecutive swap pairs ``cons``."""
    terms = _losses(generator, pool, pairs, cons, params, sface, anchors, amp, with_identity=with_identity)
    opt.zero_grad(set_to_none=True)
    scaler.scale(terms["total"]).backward()
    scaler.step(opt)
    scaler.update()
    return terms


def batch_split(params: TuneParams, n_train_pairs: int, n_train_cons: int) -> tuple[int, int]:
    """(self-reenactment samples, consecutive swap pairs) per step for ``params.batch``."""
    n_cons = min(n_train_cons, max(0, int(round(params.batch * params.swap_fraction / 2))))
    if params.w_identity <= 0 and params.w_temporal <= 0 and params.w_mask_temporal <= 0:
        n_cons = 0
    n_rec = max(1, params.batch - 2 * n_cons) if n_train_pairs else 0
    return n_rec, n_cons


def tune_generator(generator: SwapGenerator, data: TuneData, identity, core, params: TuneParams, *,
                   device: torch.device | str | None = None, sface=None, face_loop: Sequence[int] | None = None,
                   progress: bool = True, steps: int | None = None) -> TuneInfo:
    """Tune ``generator`` in place on a clip's training data; keeps the best validation state.

    Args:
        generator: the starting point (a generic checkpoint or the zero-gain initialisation).
        data: :func:`collect_tune_data`.
        identity: the source :class:`~vidswap.swap.core.SourceIdentity` (prepared by ``core``).
        core: the :class:`~vidswap.swap.core.GeometricSwapCore` that renders (same settings as the render pass).
        params: :class:`TuneParams`.
        device: tuning device (default: the generator's).
        sface: a :class:`~vidswap.swap.identity_torch.SFaceTorch` (default: loaded from the model cache).
        face_loop: face-oval loop (default: the mesh topology's).
        progress: show a tqdm bar with the losses.
        steps: override of the step count (default ``params.steps_for(device)``).

    Returns:
        :class:`TuneInfo` (history of every loss term; key and paths are filled in by :func:`tune_for_shot`).
    """
    from tqdm.auto import tqdm

    from vidswap.swap.identity_torch import load_sface

    dev = torch.device(device) if device is not None else next(generator.parameters()).device
    generator.to(dev).train()
    if sface is None:
        sface = load_sface(device=dev)
    sface = sface.to(dev)
    if face_loop is None:
        from vidswap.faces.topology import load_topology

        face_loop = load_topology().regions["face_oval"]
    loop = torch.as_tensor(face_loop, dtype=torch.long, device=dev)
    n_steps = params.steps_for(dev) if steps is None else int(steps)
    t_start = time.perf_counter()
    data = data.to(dev)
    pool = _build_pool(data, identity, core, sface, params, loop, generator.config, dev)

    opt, scaler, amp = _optimiser(generator, params, dev)
    anchors = [p.detach().clone() for p in generator.parameters()]
    g = torch.Generator().manual_seed(params.seed + 2)
    train_pairs = torch.nonzero(~pool.pair_val).flatten().cpu()
    train_cons = torch.nonzero(~pool.cons_val).flatten().cpu()
    n_rec, n_cons = batch_split(params, len(train_pairs), len(train_cons))

    history: dict[str, list[float]] = {}
    val_history: dict[str, list[float]] = {"step": []}
    info = TuneInfo(key="", cached=False, device=str(dev), frames=list(data.numbers))

    def record_val(step: int) -> float | None:
        v = _validate(generator, pool, params, sface, anchors, amp)
        if not v:
            return None
        val_history["step"].append(step)
        for k, x in v.items():
            val_history.setdefault(k, []).append(x)
        return v["total"]

    with _deterministic(dev):
        best = record_val(0)
        info.initial_val = float("nan") if best is None else best
        best_state = {k: v.detach().clone() for k, v in generator.state_dict().items()}
        best_step, bad = 0, 0
        bar = tqdm(range(1, n_steps + 1), desc="tune", disable=not progress, leave=False)
        step = 0
        for step in bar:
            pairs = train_pairs[torch.randperm(len(train_pairs), generator=g)[:n_rec]] if n_rec else train_pairs[:0]
            cons = train_cons[torch.randperm(len(train_cons), generator=g)[:n_cons]] if n_cons else train_cons[:0]
            with_id = step % max(1, params.identity_every) == 0
            terms = _train_step(generator, opt, scaler, pool, pairs.to(dev), cons.to(dev), params, sface, anchors,
                                amp, with_id)
            history.setdefault("step", []).append(step)
            for k, v in terms.items():
                history.setdefault(k, []).append(float(v.detach()) if with_id or k != "identity" else float("nan"))
            bar.set_postfix({k: f"{history[k][-1]:.4f}" for k in ("l1", "ssim", "identity", "temporal", "total")})
            if best is not None and (step % max(1, params.val_every) == 0 or step == n_steps):
                v = record_val(step)
                bar.set_postfix({"val": f"{v:.4f}", "best": f"{best:.4f}"})
                if v < best * (1.0 - params.min_delta):
                    best, best_step, bad = v, step, 0
                    best_state = {k: x.detach().clone() for k, x in generator.state_dict().items()}
                else:
                    bad += 1
                    if bad >= params.patience:
                        info.stopped_early = True
                        break
        bar.close()
    if best is not None:
        generator.load_state_dict(best_state)
    else:
        best_step = step
    generator.eval()
    info.steps_run = step
    info.best_step = best_step
    info.best_val = float("nan") if best is None else float(best)
    info.seconds = time.perf_counter() - t_start
    info.seconds_per_step = info.seconds / max(step, 1)
    info.history = history
    info.val_history = val_history
    return info


# ---------------------------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------------------------

def _sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def identity_hash(identity) -> str:
    """sha256 of a prepared source identity's tensors (texture crops, landmarks, shape, embedding)."""
    parts = []
    for name in ("images", "landmarks", "canonical", "embedding", "vertex_confidence"):
        v = getattr(identity, name, None)
        parts.append(name)
        parts.append(b"" if v is None else v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    parts.append(str(int(identity.texture_index)))
    return _sha(*parts)


def _file_sha(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _clip_hash(analysis, track_ids: Sequence[int] | None) -> str:
    """The clip content: the analysis key (input fingerprint, frames, settings, model hashes) when present, else
    the input's fingerprint, plus the smoothed landmarks of the tracks used."""
    header = getattr(analysis, "header", {}) or {}
    content = header.get("key")
    if not content and header.get("input") and Path(header["input"]).exists():
        from vidswap.faces.tracksfile import input_fingerprint

        content = input_fingerprint(Path(header["input"]))
    tracks = [analysis.track(t) for t in track_ids] if track_ids is not None else list(analysis.tracks)
    parts = [str(content or "")]
    for t in tracks:
        parts += [str(t.id), t.frames.astype(np.int64).tobytes(), np.ascontiguousarray(t.smoothed, np.float32).tobytes()]
    return _sha(*parts)


def tune_key(analysis, identity, params: TuneParams, crop_size: int, core_config: Any = None,
             track_ids: Sequence[int] | None = None) -> str:
    """sha256 naming a tuning result: clip content and frames, source identity, parameters, checkpoint, core."""
    p = asdict(params)
    p.pop("enabled", None)
    ckpt = _file_sha(params.checkpoint) if params.checkpoint else ""
    core = asdict(core_config) if dataclasses.is_dataclass(core_config) else repr(core_config)
    return _sha(f"vidswap.tune/{TUNE_VERSION}", _clip_hash(analysis, track_ids), identity_hash(identity),
                json.dumps(p, sort_keys=True, default=str), str(crop_size), ckpt,
                json.dumps(core, sort_keys=True, default=str))


def plot_history(info: TuneInfo, path: str | Path, title: str = "generator tuning") -> Path:
    """PNG of the training loss terms (per step) and the validation total (at each validation)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    def series(hist, k):
        x = np.asarray(hist.get("step", []), dtype=float)
        y = np.asarray(hist.get(k, []), dtype=float)
        keep = np.isfinite(y)
        return x[keep], np.maximum(y[keep], 1e-5)  # log axis: a zero hinge is drawn at the floor

    steps = info.history.get("step", [])
    for k in ("total", "l1", "ssim", "identity", "temporal", "mask_temporal", "mask"):
        if k in info.history and steps:
            axes[0].plot(*series(info.history, k), label=k, lw=1.2)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_title("training losses (per step)")
    axes[0].legend(fontsize=7)
    vs = info.val_history.get("step", [])
    for k in ("total", "l1", "ssim", "identity", "temporal"):
        if k in info.val_history and vs:
            axes[1].plot(*series(info.val_history, k), marker="o", ms=3, label=f"val {k}")
    if vs:
        axes[1].axvline(info.best_step, color="k", ls="--", lw=0.8, label=f"kept: step {info.best_step}")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_title("validation (held-out pairs)")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{title}: {info.steps_run} steps, {info.seconds_per_step:.2f} s/step on {info.device}"
                 + (", stopped early" if info.stopped_early else ""), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


def tune_for_shot(analysis, frames_reader_fn: Callable[[Sequence[int]], Iterable], identity, params: TuneParams,
                  cache_dir: str | Path, retune: bool = False, *, core=None, track_ids: Sequence[int] | None = None,
                  device: torch.device | str | None = None, progress: bool = True, crop_size: int | None = None,
                  data: TuneData | None = None) -> tuple[SwapGenerator, TuneInfo]:
    """Tune (or load from the cache) the generator for one shot and one source identity.

    Args:
        analysis: the shot's :class:`~vidswap.faces.analyze.ShotAnalysis`.
        frames_reader_fn: ``fn(numbers) -> iterable`` of frames (:func:`frame_reader`); not called on a cache hit.
        identity: the source identity prepared by ``core``.
        params: :class:`TuneParams`.
        cache_dir: folder of the tuned weights (``job_dir / 'tune'``).
        retune: tune even when the cache has a result.
        core: the render's :class:`~vidswap.swap.core.GeometricSwapCore` (default: default settings at the crop
            size).
        track_ids: the target tracks (default all).
        device: tuning device (default CUDA when available).
        progress: tqdm progress bar.
        crop_size: render crop side (default ``params.crop_size`` or the core's ``crop_size``).
        data: pre-collected :class:`TuneData` (skips reading frames).

    Returns:
        (generator in eval mode on ``device``, :class:`TuneInfo` with ``cached`` telling whether it was loaded).
    """
    from vidswap.swap.core import GeometricSwapConfig, GeometricSwapCore

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    S = crop_size or params.crop_size or (core.config.crop_size if core is not None else 256)
    if core is None:
        core = GeometricSwapCore(GeometricSwapConfig(crop_size=S))
    key = tune_key(analysis, identity, params, S, core.config, track_ids)
    cache_dir = Path(cache_dir)
    weights = cache_dir / f"generator_{key[:16]}.safetensors"
    info_path = weights.with_suffix(".json")
    plot_path = cache_dir / f"generator_{key[:16]}_loss.png"
    if not retune and weights.exists():
        try:
            gen = load_generator(weights, dev).eval()
            info = TuneInfo.from_json(info_path.read_text()) if info_path.exists() else TuneInfo(key=key, cached=True)
            info.cached = True
            return gen, info
        except Exception:  # unreadable: tune again
            pass

    if params.checkpoint:
        gen = load_generator(params.checkpoint, dev)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            gen = SwapGenerator(GeneratorConfig(channels=tuple(params.channels))).to(dev)
    if data is None:
        data = collect_tune_data(analysis, frames_reader_fn, S, params.max_frames, track_ids,
                                 texture_size=core.config.texture_size, texture_margin=core.config.texture_margin)
    info = tune_generator(gen, data, identity, core, params, device=dev, progress=progress)
    info.key = key
    info.weights = str(weights)
    info.plot = str(plot_path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_generator(gen, weights, {"tune_key": key, "frames": json.dumps(info.frames),
                                  "best_step": str(info.best_step)})
    plot_history(info, plot_path)
    _write_text(info_path, info.to_json())
    return gen, info


def build_refiner(analysis, frames_reader_fn: Callable[[Sequence[int]], Iterable], targets: dict, params: TuneParams,
                  cache_dir: str | Path, retune: bool = False, *, core=None, device: torch.device | str | None = None,
                  progress: bool = True, crop_size: int | None = None):
    """Tune one generator per distinct source identity of a processor's ``targets`` (track id -> identity; tracks
    that share an identity are tuned together) and return ``(refiner, infos)`` for ``FaceSwapProcessor.refiner``.

    The pipeline hook is::

        if cfg.tune.enabled and processor.targets:
            processor.refiner, _ = build_refiner(analysis, frame_reader(plan.info), processor.targets,
                                                 TuneParams.from_config(cfg.tune), plan.job_dir / "tune",
                                                 cfg.tune.retune, core=processor.core, device=processor.device)
    """
    from vidswap.swap.generator import GeneratorRefiner, RefinerPerIdentity

    groups: dict[int, tuple[Any, list[int]]] = {}
    for tid, ident in targets.items():
        groups.setdefault(id(ident), (ident, []))[1].append(int(tid))
    refiners, infos = [], []
    for ident, tids in groups.values():
        gen, info = tune_for_shot(analysis, frames_reader_fn, ident, params, cache_dir, retune, core=core,
                                  track_ids=tids, device=device, progress=progress, crop_size=crop_size)
        refiners.append((ident, GeneratorRefiner(gen, device)))
        infos.append(info)
    return RefinerPerIdentity(refiners), infos
