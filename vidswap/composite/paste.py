"""Paste-back: inverse-warp a face crop and its alpha onto the full-resolution plate and blend.

The work is done in a region of interest around each face's alpha, not over the whole plate, so memory follows
the face size, not the plate size (a 4K plate with a 600-pixel face blends a ~700x700 patch). Pixels where the
warped alpha is 0 are copied from the plate untouched, so a caller that converts back with
:func:`vidswap.composite.convert.from_float` gets the plate's original codes there, bit for bit.

One call pastes one face per plate. For several faces in the same frame, paste them one after the other
(the output of one call is the plate of the next).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import warp_affine

from vidswap.composite.blend import alpha_blend, laplacian_delta, max_levels, poisson_blend
from vidswap.composite.filters import gaussian_blur, smoothstep, support_window
from vidswap.composite.grain import GrainStats, apply_grain, select_items
from vidswap.composite.roi import alpha_bbox, plate_rois, shift_source

MODES = ("alpha", "laplacian", "poisson")


@dataclass(frozen=True)
class PasteParams:
    """Paste-back settings.

    Attributes:
        mode: ``"alpha"`` (feathered alpha, default), ``"laplacian"`` (multi-band) or ``"poisson"`` (OpenCV).
        levels: multi-band levels; None picks ``log2(face ROI / 16)``, at most 7.
        envelope: laplacian/poisson: the multi-band / Poisson change is faded to 0 where the alpha falls below
            this value (so it is exactly the plate where alpha is 0).
        alpha_floor: warped alpha values below this are set to 0 (keeps imperceptible changes off the plate).
        antialias: low-pass the crop before warping when the face shrinks (crop pixels > plate pixels).
    """

    mode: str = "alpha"
    levels: int | None = None
    envelope: float = 0.25
    alpha_floor: float = 1.0 / 4096.0
    antialias: bool = True


def paste_margin(params: PasteParams) -> int:
    """Plate pixels beyond a face crop's footprint that paste-back may read: the bilinear taps, and for the
    multi-band blend the context of its deepest pyramid level (at most 7 levels)."""
    return 4 + (2 ** (7 + 1) if params.mode == "laplacian" else 0)


def antialias_sigma(crop_to_plate: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 3) -> (B,)`` the blur (crop pixels) a shrinking warp needs before it: ``0.5 * sqrt(1/s^2 - 1)``
    for the warp's scale ``s`` (0 when it enlarges); paste-back blurs the crop where it is at least 0.2."""
    a = crop_to_plate[:, :, :2].to(torch.float32)
    s = (a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]).abs().sqrt()
    return 0.5 * torch.sqrt((1.0 / s.clamp(min=1e-3) ** 2 - 1.0).clamp(min=0.0))


def _antialias(x: torch.Tensor, crop_to_plate: torch.Tensor) -> torch.Tensor:
    """Blur crop-space images by the amount a shrinking warp needs (:func:`antialias_sigma`)."""
    sigma = antialias_sigma(crop_to_plate)
    if float(sigma.max()) < 0.2:
        return x
    return gaussian_blur(x, torch.where(sigma < 0.2, torch.zeros_like(sigma), sigma))


def _envelope(alpha: torch.Tensor, level: float) -> torch.Tensor:
    return smoothstep(alpha / max(level, 1e-6))


def paste_crop(
    plate: torch.Tensor,
    crop: torch.Tensor,
    alpha: torch.Tensor,
    crop_to_plate: torch.Tensor,
    mode: str | None = None,
    params: PasteParams = PasteParams(),
    grain: GrainStats | None = None,
    grain_seeds: list[int] | None = None,
    grain_strength: float = 1.0,
    return_alpha: bool = False,
    inplace: bool = False,
    return_boxes: bool = False,
) -> torch.Tensor | tuple:
    """Warp ``crop`` and ``alpha`` to plate resolution with ``crop_to_plate`` (bilinear) and blend them in.

    Args:
        plate: ``(B, 3, H, W)`` float plate (from :func:`~vidswap.composite.convert.to_float`), not modified.
        crop: ``(B, 3, h, w)`` the composited face crop (swapped, colour matched).
        alpha: ``(B, 1, h, w)`` in [0, 1], 0 at the crop border.
        crop_to_plate: ``(B, 2, 3)`` affine mapping crop pixel coordinates to plate pixel coordinates (the
            inverse of the alignment matrix).
        mode: ``"alpha"``, ``"laplacian"`` or ``"poisson"``; overrides ``params.mode``.
        params: see :class:`PasteParams`.
        grain: optional :class:`~vidswap.composite.grain.GrainStats` (per item) to re-grain the pasted area.
        grain_seeds: one seed per item (see :func:`~vidswap.composite.grain.grain_seed`); required with grain.
        grain_strength: scale of the re-applied grain.
        return_alpha: also return the plate-space alpha ``(B, 1, H, W)``.
        inplace: paste into ``plate`` itself (and return it) instead of a copy: the same values, without a copy of
            the whole plate (for a caller that owns ``plate`` and needs only the result).
        return_boxes: also return, per face, the plate box ``(x0, y0, x1, y1)`` (end exclusive) the paste wrote:
            outside it the result is ``plate``, bit for bit (None: nothing written; the whole plate for a face
            whose crop is blurred before the warp).

    Returns:
        ``(B, 3, H, W)`` new plate tensor (``plate`` itself with ``inplace``); with ``return_alpha`` and/or
        ``return_boxes`` a tuple ``(plate, [alpha], [boxes])`` in that order. Exactly ``plate`` where the warped
        alpha is 0.
    """
    mode = params.mode if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"paste mode must be one of {MODES}, got {mode!r}")
    if grain is not None and (grain_seeds is None or len(grain_seeds) != plate.shape[0]):
        raise ValueError("grain needs one seed per batch item")
    out = plate if inplace else plate.clone()
    full_alpha = torch.zeros_like(plate[:, :1]) if return_alpha else None
    # One face at a time, written into its own plate: each face's plate region (and multi-band depth) depends on
    # that face alone, so a frame's result does not depend on which other frames share its batch (farm chunks
    # == single pass).
    boxes = []
    for i in range(plate.shape[0]):
        boxes.append(_paste_one(plate[i:i + 1], crop[i:i + 1], alpha[i:i + 1], crop_to_plate[i:i + 1], mode, params,
                                None if grain is None else select_items(grain, [i]),
                                None if grain_seeds is None else [grain_seeds[i]], grain_strength, out[i:i + 1],
                                None if full_alpha is None else full_alpha[i:i + 1]))
    extra = ((full_alpha,) if return_alpha else ()) + ((boxes,) if return_boxes else ())
    return (out, *extra) if extra else out


def _paste_one(plate: torch.Tensor, crop: torch.Tensor, alpha: torch.Tensor, crop_to_plate: torch.Tensor, mode: str,
               params: PasteParams, grain: GrainStats | None, grain_seeds: list[int] | None, grain_strength: float,
               out: torch.Tensor, full_alpha: torch.Tensor | None) -> tuple[int, int, int, int] | None:
    """:func:`paste_crop` of one face (batch of 1), written into ``out`` (a copy of ``plate``) and ``full_alpha``
    (zeros) in place; returns the face's box (``return_boxes``)."""
    b, c, hp, wp = plate.shape
    dev, dt = plate.device, plate.dtype
    m = crop_to_plate.to(dev, torch.float32)
    alpha = alpha.to(dev, torch.float32).clamp(0.0, 1.0)
    blurred = params.antialias and float(antialias_sigma(m).max()) >= 0.2  # (else _antialias is the identity)
    edge = True  # the coverage channel: where the warp's taps leave the crop, the plate fills in
    if not blurred:
        h, w = alpha.shape[-2:]
        cut = _read_window(alpha, m)
        if cut is None:
            return None
        win, alpha, m = cut
        crop = crop[..., win[0], win[1]]
        # a window inside the crop's border holds all taps of every pixel with alpha > 0: coverage 1 there
        edge = win[0].start == 0 or win[1].start == 0 or win[0].stop == h or win[1].stop == w
    crop = crop.to(dev, torch.float32)
    src = torch.cat([crop, alpha, torch.ones_like(alpha)] if edge else [crop, alpha], dim=1)
    if blurred:
        src = torch.cat([_antialias(src[:, : c + 1], m), src[:, c + 1 :]], dim=1)
    tops, (rh, rw), levels = _layout(src[:, c : c + 1], m, (hp, wp), mode, params)
    live = [i for i, t in enumerate(tops) if t is not None]
    if not live:
        return None
    idx = torch.tensor(live, device=dev)
    shift = torch.zeros(len(live), 2, 3, device=dev)
    shift[:, 0, 2] = torch.tensor([-tops[i][0] for i in live], dtype=torch.float32)
    shift[:, 1, 2] = torch.tensor([-tops[i][1] for i in live], dtype=torch.float32)
    if len(live) < b:  # (a copy of the crop-sized source only when some face misses the plate)
        src, m = src[idx], m[idx]
    warped = _warp(src, m + shift, (rh, rw))
    fg_w, a = warped[:, :c], warped[:, c : c + 1]
    cover = warped[:, c + 1 :] if edge else None
    a = torch.where(a < params.alpha_floor, torch.zeros_like(a), a.clamp(max=1.0))
    bg = torch.stack([plate[i, :, tops[i][1] : tops[i][1] + rh, tops[i][0] : tops[i][0] + rw] for i in live])
    bg32 = bg.to(torch.float32)
    # Zero padding pre-multiplied the face by its coverage; fill the uncovered part with the plate.
    fg = fg_w if cover is None else ((1.0 - cover.clamp_(0.0, 1.0)) * bg32).add_(fg_w)
    fg = torch.where(a > 0, fg, bg32)
    if mode == "alpha":
        roi = alpha_blend(fg, bg32, a)
    elif mode == "laplacian":
        lv = max(1, min(levels, max_levels((rh, rw), 4)))
        delta = laplacian_delta(fg, bg32, a, lv)
        roi = bg32 + _envelope(a, params.envelope) * delta
    else:
        roi = _poisson_rois(fg, bg32, a)
    if grain is not None:
        roi = apply_grain(roi, a, select_items(grain, live), [grain_seeds[i] for i in live], grain_strength)
    roi = torch.where(a > 0, roi.to(dt), bg)
    for j, i in enumerate(live):
        x0, y0 = tops[i]
        out[i, :, y0 : y0 + rh, x0 : x0 + rw] = roi[j]
        if full_alpha is not None:
            full_alpha[i, :, y0 : y0 + rh, x0 : x0 + rw] = a[j].to(dt)
    return (0, 0, wp, hp) if blurred else (tops[0][0], tops[0][1], tops[0][0] + rw, tops[0][1] + rh)


def _warp(src: torch.Tensor, m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear warp of ``src (B, C, h, w)`` by ``m (B, 2, 3)`` (source pixel centres to output pixel centres) to
    ``size (H, W)``, zeros outside: kornia's ``warp_affine(..., align_corners=True)`` up to float rounding, its
    normalised sampling matrix built once in float64 (kornia's for sizes below 2)."""
    (hs, ws), (hd, wd) = src.shape[-2:], size
    if min(hs, ws, hd, wd) < 2:
        return warp_affine(src, m, size, mode="bilinear", padding_mode="zeros", align_corners=True)
    full = torch.zeros(m.shape[0], 3, 3, dtype=torch.float64, device=m.device)
    full[:, :2] = m.to(torch.float64)
    full[:, 2, 2] = 1.0
    to_src = torch.tensor([[2.0 / (ws - 1), 0.0, -1.0], [0.0, 2.0 / (hs - 1), -1.0], [0.0, 0.0, 1.0]],
                          dtype=torch.float64, device=m.device)
    from_dst = torch.tensor([[(wd - 1) / 2.0, 0.0, (wd - 1) / 2.0], [0.0, (hd - 1) / 2.0, (hd - 1) / 2.0],
                             [0.0, 0.0, 1.0]], dtype=torch.float64, device=m.device)
    theta = (to_src @ torch.linalg.inv(full) @ from_dst)[:, :2].to(src.dtype)
    grid = F.affine_grid(theta, [src.shape[0], src.shape[1], hd, wd], align_corners=True)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _read_window(alpha: torch.Tensor, m: torch.Tensor
                 ) -> tuple[tuple[slice, slice], torch.Tensor, torch.Tensor] | None:
    """The crop window an unblurred warp of ``alpha (1, 1, h, w)`` reads (alpha > 0 and its bilinear taps: every
    plate pixel with a warped alpha > 0 has all four taps in it), the alpha cut to it and ``m (1, 2, 3)`` from the
    window's pixels (None: alpha is 0 everywhere). The warp of the window equals the whole crop's up to float
    rounding (kornia normalises coordinates by the source's size)."""
    win = support_window(alpha, 1)
    if win is None:
        return None
    return win, alpha[..., win[0], win[1]], shift_source(m, (win[1].start, win[0].start))


def _layout(alpha: torch.Tensor, m: torch.Tensor, plate_size: tuple[int, int], mode: str, params: PasteParams
            ) -> tuple[list[tuple[int, int] | None], tuple[int, int], int]:
    """The plate ROIs of ``alpha (B, 1, h, w)`` (as it is warped, after any anti-alias blur) under ``m``
    (:func:`~vidswap.composite.roi.plate_rois` with the paste's margin) and the multi-band levels."""
    levels = 1
    if mode == "laplacian":
        box = alpha_bbox(alpha)
        scale = (m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]).abs().sqrt()
        side = float(((box[:, 2:] - box[:, :2]).clamp(min=1).min(dim=1).values * scale).max())
        levels = params.levels or max(1, min(7, int(math.log2(max(side / 16.0, 1.0))) + 1))
    margin = 2 + (2 ** (levels + 1) if mode == "laplacian" else 0)
    tops, size = plate_rois(alpha, m, plate_size, margin)
    return tops, size, levels


def _poisson_rois(fg: torch.Tensor, bg: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Per item: Poisson-clone ``fg`` into ``bg`` inside ``a > 0`` (OpenCV, 16-bit precision path), then fade
    the cloned face in with ``a``."""
    res = []
    for j in range(fg.shape[0]):
        f = (fg[j].permute(1, 2, 0).cpu().numpy().clip(0.0, 1.0) * 65535.0).round().astype(np.uint16)
        g = bg[j].permute(1, 2, 0).cpu().numpy()
        g16 = (g.clip(0.0, 1.0) * 65535.0).round().astype(np.uint16)
        mask = (a[j, 0] > 0).cpu().numpy()
        cloned16 = poisson_blend(f, g16, mask)
        # The correction the clone made, at full float precision of the plate.
        corr = (cloned16.astype(np.float32) - f.astype(np.float32)) / 65535.0
        res.append(torch.from_numpy(corr).permute(2, 0, 1))
    corr = torch.stack(res).to(fg.device, fg.dtype)
    return alpha_blend(fg + corr, bg, a)
