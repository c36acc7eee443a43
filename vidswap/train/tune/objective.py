"""The objective of per-clip tuning (PTI): the training set it samples from and the loss terms.

E4S (appendix B) fine-tunes its generator on all driven frames of a video before swapping frame by frame, to make
the result temporally consistent; its UI exposes "Max PTI Steps", "PTI Learning Rate" and "PTI Resume Weight
Path". Here the generator is :class:`vidswap.swap.generator.SwapGenerator` and the pivots are self-reenactment
pairs made from the target clip itself:

* **self-reenactment** (pixel ground truth): frame i's own face is textured from frame i's crop and rendered on
  frame j's geometry (the track's neutral shape + frame j's expression and pose, through the same
  swap core the render uses); the generator, conditioned on frame i's SFace
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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.faces.align import estimate_alignment, kps5_from_landmarks, warp_to_crop
from vidswap.swap import losses as L
from vidswap.swap.base import SourceFace, SourceIdentity, SwapCore
from vidswap.swap.generator import GeneratorConfig, SwapGenerator, face_region
from vidswap.swap.identity_torch import SFaceTorch, align_for_identity
from vidswap.train.tune.data import TuneData
from vidswap.train.tune.params import TuneParams


@dataclass
class Pool:
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


def embed(net: SFaceTorch, images: Tensor, landmarks: Tensor, chunk: int = 16) -> Tensor:
    """(N, D) normalised SFace embeddings of (N, 3, S, S) crops with (N, 478, 3) landmarks, in chunks."""
    out = []
    with torch.no_grad():
        for s in range(0, images.shape[0], chunk):
            out.append(net(align_for_identity(images[s:s + chunk], landmarks[s:s + chunk]), normalize=True))
    return torch.cat(out)


def build_pool(data: TuneData, identity: SourceIdentity, core: SwapCore, sface: SFaceTorch, params: TuneParams,
               face_loop: Tensor, gen_cfg: GeneratorConfig, device: torch.device) -> Pool:
    """Precompute the training set on ``device``: self-reenactment renders (the core re-prepared from each texture
    frame), the source identity's renders of every frame, SFace embeddings, consecutive-pair flows and weights,
    and the held-out validation split."""
    if identity.embedding is None:
        raise ValueError("tuning needs the source identity's SFace embedding (SourceIdentity.embedding)")
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

    embeddings = embed(sface, data.crops, data.landmarks)
    source = F.normalize(identity.embedding.to(device, torch.float32).reshape(-1), dim=0)

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
            sdl.append(res.driven_landmarks if res.driven_landmarks is not None else
                       data.landmarks[s:min(N, s + 16)])
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
    return Pool(crops=data.crops.to(device), landmarks=data.landmarks.to(device), embeddings=embeddings,
                 source=source, pair_j=pair_j, pair_i=torch.tensor(pi, dtype=torch.long, device=device),
                 pair_render=pair_render, pair_alpha=pair_alpha, pair_region=pair_region, pair_val=pair_val,
                 swap_render=swap_render, swap_alpha=swap_alpha, swap_region=swap_region, swap_align=swap_align,
                 swap_id_base=swap_id_base,
                 cons_a=ca, cons_b=cb, cons_flow=flow_bw, cons_weight=cons_weight, cons_val=cons_val)


def loss_terms(gen: SwapGenerator, pool: Pool, pairs: Tensor, cons: Tensor, params: TuneParams, sface: SFaceTorch,
               anchors: list[Tensor], amp: tuple[bool, torch.dtype], with_locality: bool = True,
               with_identity: bool = True) -> dict[str, Tensor]:
    """All loss terms for self-reenactment pairs ``pairs`` and consecutive swap pairs ``cons`` (pool indices), and
    their weighted ``total``."""
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
