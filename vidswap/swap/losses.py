"""Losses of per-clip generator tuning (:mod:`vidswap.train.tune`): masked pixel and structural reconstruction,
identity, optical-flow temporal consistency, mask stability and the PTI weight regulariser.

All losses take batched tensors (B, C, H, W) and soft weights (B, 1, H, W) in [0, 1]; a masked mean is
``Σ w·x / Σ w`` (so the loss does not depend on how large the face is). No downloaded perceptual network: the
structural term is SSIM (kornia) at several scales.

Optical flow is OpenCV DIS on the *target* crops (numpy at the edge, :func:`dis_flow`), applied to generator
outputs with ``grid_sample`` (:func:`warp`), with a forward-backward consistency weight (:func:`flow_confidence`).
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "masked_mean",
    "masked_l1",
    "masked_ssim_loss",
    "multiscale_ssim_loss",
    "identity_loss",
    "identity_hinge",
    "dis_flow",
    "warp",
    "flow_confidence",
    "temporal_loss",
    "mask_temporal_loss",
    "weight_l2",
]


def masked_mean(x: Tensor, w: Tensor, eps: float = 1e-6) -> Tensor:
    """``Σ w·x / Σ w`` over everything; ``w`` broadcasts over channels (B, 1, H, W)."""
    w = w.to(x.dtype).expand_as(x)
    return (x * w).sum() / (w.sum() + eps)


def masked_l1(x: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Mean absolute difference inside the weights."""
    return masked_mean((x - y).abs(), w)


def masked_ssim_loss(x: Tensor, y: Tensor, w: Tensor, window: int = 11) -> Tensor:
    """``1 - SSIM`` averaged inside the weights (kornia SSIM map, Gaussian window, images in [0, 1])."""
    from kornia.metrics import ssim

    window = max(3, min(window, (min(x.shape[-2:]) // 2) * 2 - 1))
    s = ssim(x.float(), y.float(), window, max_val=1.0)
    return masked_mean(1.0 - s, w.float())


def multiscale_ssim_loss(x: Tensor, y: Tensor, w: Tensor, scales: int = 3, window: int = 11) -> Tensor:
    """Masked ``1 - SSIM`` averaged over ``scales`` octaves (images and weights box-filtered by 2 each time)."""
    total = x.new_zeros(())
    for k in range(scales):
        if k:
            x, y, w = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2), F.avg_pool2d(w, 2)
        total = total + masked_ssim_loss(x, y, w, window)
    return total / scales


def identity_loss(embeddings: Tensor, reference: Tensor) -> Tensor:
    """``1 - cos`` between (B, D) embeddings and a (D,) or (B, D) reference, averaged."""
    ref = reference.to(embeddings)
    if ref.dim() == 1:
        ref = ref[None]
    return (1.0 - F.cosine_similarity(embeddings, ref.expand_as(embeddings), dim=-1)).mean()


def identity_hinge(cos: Tensor, baseline: Tensor, margin: float = 0.0) -> Tensor:
    """``mean(relu(baseline - margin - cos))``: penalise identity similarity only where it drops below a baseline
    (e.g. the swap core's render), never reward raising it (which an optimiser does adversarially)."""
    return F.relu(baseline.to(cos) - margin - cos).mean()


# ---------------------------------------------------------------------------------------------------------------
# optical flow
# ---------------------------------------------------------------------------------------------------------------

def _gray8(img: np.ndarray | Tensor) -> np.ndarray:
    """(3, H, W) or (H, W, 3) float [0, 1] / uint8 -> (H, W) uint8 luma."""
    if isinstance(img, Tensor):
        img = img.detach().float().cpu().numpy()
        if img.ndim == 3 and img.shape[0] in (1, 3):
            img = img.transpose(1, 2, 0)
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    elif a.ndim == 3:
        a = a[..., 0]
    return np.ascontiguousarray(a)


def dis_flow(cur: Tensor, prev: Tensor, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> Tensor:
    """Backward flow with OpenCV DIS: for every pixel x of ``cur``, ``prev(x + flow(x)) ≈ cur(x)``.

    Args:
        cur, prev: (B, 3, H, W) float images in [0, 1] (torch; converted to 8-bit luma at the edge).

    Returns:
        (B, 2, H, W) float32 flow in pixels (x, y), on ``cur``'s device. Deterministic (single-threaded DIS).
    """
    dis = cv2.DISOpticalFlow_create(preset)
    out = []
    for a, b in zip(cur, prev):
        f = dis.calc(_gray8(a), _gray8(b), None)
        out.append(torch.from_numpy(f).permute(2, 0, 1))
    return torch.stack(out).to(cur.device, torch.float32)


def _grid(flow: Tensor) -> Tensor:
    B, _, H, W = flow.shape
    ys, xs = torch.meshgrid(torch.arange(H, device=flow.device, dtype=flow.dtype),
                            torch.arange(W, device=flow.device, dtype=flow.dtype), indexing="ij")
    x = xs[None] + flow[:, 0]
    y = ys[None] + flow[:, 1]
    return torch.stack([2.0 * x / max(W - 1, 1) - 1.0, 2.0 * y / max(H - 1, 1) - 1.0], -1)


def warp(image: Tensor, flow: Tensor, padding_mode: str = "border") -> Tensor:
    """Backward warp: ``out(x) = image(x + flow(x))`` (bilinear, pixel centres at integer coordinates)."""
    return F.grid_sample(image, _grid(flow.to(image.dtype)), mode="bilinear", padding_mode=padding_mode,
                         align_corners=True)


def flow_confidence(flow_bw: Tensor, flow_fw: Tensor, tol: float = 0.5, rel: float = 0.05) -> Tensor:
    """Forward-backward consistency of a pair of flows, (B, 1, H, W) in {0, 1}.

    ``flow_bw`` maps ``cur`` -> ``prev`` (as :func:`dis_flow`), ``flow_fw`` maps ``prev`` -> ``cur``. A pixel is
    reliable when following ``flow_bw`` and then ``flow_fw`` returns within ``tol + rel·|flow|`` pixels, and the
    target lands inside the image.
    """
    back = warp(flow_fw, flow_bw)
    err = (flow_bw + back).norm(dim=1, keepdim=True)
    mag = flow_bw.norm(dim=1, keepdim=True) + back.norm(dim=1, keepdim=True)
    ok = err <= tol + rel * mag
    g = _grid(flow_bw)
    inside = (g.abs() <= 1.0).all(-1)[:, None]
    return (ok & inside).float()


def temporal_loss(cur: Tensor, prev: Tensor, flow_bw: Tensor, weight: Tensor) -> Tensor:
    """Short-term warping loss: ``|cur - warp(prev, flow)|`` inside ``weight`` (face region x flow confidence)."""
    return masked_l1(cur, warp(prev, flow_bw), weight)


def mask_temporal_loss(cur_alpha: Tensor, prev_alpha: Tensor, flow_bw: Tensor, weight: Tensor) -> Tensor:
    """Mask change between consecutive frames after motion compensation, inside ``weight``."""
    return masked_l1(cur_alpha, warp(prev_alpha, flow_bw), weight)


def weight_l2(params: Iterable[Tensor], anchors: Iterable[Tensor]) -> Tensor:
    """PTI locality: mean squared distance of all parameters to their starting values (one scalar)."""
    total = None
    count = 0
    for p, a in zip(params, anchors):
        d = ((p - a) ** 2).sum()
        total = d if total is None else total + d
        count += p.numel()
    if total is None:
        return torch.zeros(())
    return total / max(count, 1)
