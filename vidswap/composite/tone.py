"""Boundary tone match: a smooth lightness offset over the whole swapped face, fitted so that the face's lightness
meets the plate's along the inside of the paste boundary.

The relit render carries the plate's light, but the colour match that follows it anchors the *mean* of the face (the
source's darker features included) to the plate's skin, which leaves the source's clear skin a few levels lighter
than the plate's around it: a tone step along the outline, the "mask painted on" look. Matching the boundary itself
(edge matching, :mod:`~vidswap.composite.edge`) brings the plate's tone *into* the outer face and costs identity.
Here the correction is a low-order polynomial in the crop's coordinates (by default quadratic: six numbers per
frame), fitted to the L* difference plate - face on a ring just inside the boundary (robustly: the ring's pixels
that are not skin like the rest of it -- hair over the face's sides, the shadow under the chin -- are left out,
Tukey's biweight) and added to the L* of the whole face: the tone step goes, while every feature, wrinkle and
contrast of the face stays exactly as rendered (a polynomial this smooth has no shape to show). Only L* moves; a*
and b* stay, so the offset is added in CIE f-space (fx, fy and fz all move by offset / 116), which saves the L*a*b*
matrices.

Per frame and pure: farm chunks stay identical to a single pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vidswap.composite.filters import erode, support_window
from vidswap.composite.lab import f_to_rgb, lightness_f, rgb_to_f

__all__ = ["MIN_SPREAD", "MEDIAN_SAMPLES", "ToneParams", "polynomial_basis", "fit_offset", "boundary_ring_weight",
           "tone_match"]

#: the least robust spread (L* units) of the ring's residuals :func:`fit_offset` rejects against: a fit that
#: meets the ring within rounding keeps all of it
MIN_SPREAD = 0.5
#: the least number of the ring's pixels its medians (:func:`fit_offset`'s robust start and spread) are taken over
MEDIAN_SAMPLES = 2048


@dataclass(frozen=True)
class ToneParams:
    """Settings of :func:`tone_match`.

    Attributes:
        ring: width of the ring inside the paste boundary the offset is fitted on (fraction of the face size).
        order: polynomial order of the offset over the crop (0: a constant, 1: a plane, 2: quadratic).
        ridge: Tikhonov weight on the polynomial's coefficients (in units of ring pixels): keeps a short or
            one-sided ring from extrapolating wildly, and the offset steady from frame to frame (a weaker one,
            1e-3, lowers the seam further but raises the flicker by ~0.02).
        min_pixels: fewer ring pixels than this and the frame is left as it is.
        level: the paste alpha at which the boundary is taken.
        robust: ring pixels further than this many robust spreads from the fit are left out of it (Tukey's
            biweight, :func:`fit_offset`; 4.685, its usual constant: 95 % of a least-squares fit's efficiency on
            clean data): the plate's hair over the face's sides or the shadow under the chin on the ring pulled a
            least-squares fit dark (pexels_clip: the relit face a grey mask, 3.6-4.9 levels darker than the
            plate's skin around it). 3 left out more and matched the border closer still, but the darker face
            raised the eval judge's landmark jitter on single_face_clip x grace_hopper 1.025 -> 1.073 (4.685:
            1.049). 0: plain least squares.
        rounds: the refits that take ``robust``.
    """

    ring: float = 0.05
    order: int = 2
    ridge: float = 0.1
    min_pixels: float = 64.0
    level: float = 0.5
    robust: float = 4.685
    rounds: int = 3


def polynomial_basis(height: int, width: int, order: int) -> Tensor:
    """Monomials of the crop coordinates x, y in [-1, 1] (pixel centres at the ends) up to ``order``:
    (K, H, W) with K = 1, 3, 6 for order 0, 1, 2, in the order 1, x, y, x², xy, y²."""
    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, got {order}")
    y, x = torch.meshgrid(torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij")
    terms = [torch.ones_like(x)]
    if order >= 1:
        terms += [x, y]
    if order >= 2:
        terms += [x * x, x * y, y * y]
    return torch.stack(terms)


def fit_offset(difference: Tensor, weight: Tensor, order: int, ridge: float = 1e-3,
               basis: Tensor | None = None, robust: float = 0.0, rounds: int = 3) -> Tensor:
    """The weighted least-squares polynomial fit of ``difference`` over the crop, evaluated everywhere.

    difference, weight: (B, 1, H, W) -> (B, 1, H, W). Minimises ``sum w (p - d)^2 + ridge * sum(w) * |c|^2`` over
    the coefficients c of :func:`polynomial_basis` (or of ``basis`` (K, H, W): a window of a larger crop's); a frame
    with no weight gets 0. ``robust`` > 0: each pixel's weight times Tukey's biweight of its residual ``r``, ``(1 -
    (r / (robust s))^2)^2`` (0 beyond), ``s`` the residuals' robust spread (1.4826 x their median absolute value
    over the weighted pixels -- every k-th of them, :data:`MEDIAN_SAMPLES` or more --, at least :data:`MIN_SPREAD`
    L* units), first about the values' median, then ``rounds`` times about the last fit: the pixels that are not the
    skin the rest of the ring is -- a strand of hair, a shadow -- drop out of the fit. Each frame on its own, over
    its weighted pixels alone.
    """
    B, _, H, W = difference.shape
    if basis is None:
        basis = polynomial_basis(H, W, order)
    basis = basis.to(difference).reshape(-1, H * W)  # (K, N)
    out = torch.zeros_like(difference)
    for b in range(B):
        w = weight[b].reshape(-1)
        idx = torch.nonzero(w > 0)[:, 0]
        if idx.numel() == 0:
            continue
        wi, d, a = w.index_select(0, idx), difference[b].reshape(-1).index_select(0, idx), basis.index_select(1, idx)
        # the robust fit starts from the residuals about the median (a least-squares start of order > 0 bends
        # toward what it should leave out, which then no longer stands out); the pixels nearest the median, and
        # then the fit, keep a weight near 1, so the weights never all vanish
        ww = wi * _biweight(d - _sampled(d).median(), robust) if robust > 0 else wi
        coef = _solve(a, ww, d, ridge)
        for _ in range(rounds if robust > 0 else 0):
            coef = _solve(a, wi * _biweight(d - coef @ a, robust), d, ridge)
        out[b] = (coef @ basis).reshape(1, H, W)
    return out


def _solve(a: Tensor, w: Tensor, d: Tensor, ridge: float) -> Tensor:
    """The coefficients (K,) of the ridge-regularised weighted least squares of ``d`` (n,) on the basis ``a``
    (K, n) with weights ``w`` (n,); a constant (K = 1) in closed form."""
    total = w.sum()
    damping = ridge * total.clamp(min=1.0)
    if a.shape[0] == 1:
        return ((w * d * a[0]).sum() / ((w * a[0] * a[0]).sum() + damping)).reshape(1)
    eye = torch.eye(a.shape[0], dtype=d.dtype, device=d.device)
    return torch.linalg.solve((a * w) @ a.T + damping * eye, (a * w) @ d)


def _sampled(values: Tensor) -> Tensor:
    """Every k-th of the values (N,), k such that :data:`MEDIAN_SAMPLES` to twice that many are left: the medians
    of the robust fit need no more (a ring holds 5 000-20 000 pixels at a 384-px crop)."""
    return values[::max(1, values.numel() // MEDIAN_SAMPLES)]


def _biweight(residual: Tensor, robust: float) -> Tensor:
    """Tukey's biweight of residuals (N,) at ``robust`` x their robust spread (at least :data:`MIN_SPREAD`)."""
    spread = (1.4826 * _sampled(residual).abs().median()).clamp(min=MIN_SPREAD)
    u2 = (residual / (robust * spread)).square_().clamp_(max=1.0)
    return (1.0 - u2).square_()


def boundary_ring_weight(alpha: Tensor, face_size: Tensor, params: ToneParams = ToneParams(),
                         valid: Tensor | None = None) -> Tensor:
    """The fitting ring: pixels with ``alpha >= level`` within ``ring x face_size`` of its boundary, times
    ``valid`` (e.g. the face mask without occluders). (B, 1, H, W), (B,) -> (B, 1, H, W) in {0, 1} (or soft with a
    soft ``valid``)."""
    inside = (alpha >= params.level).to(alpha.dtype)
    width = (params.ring * face_size.to(alpha).reshape(-1)).clamp(min=1.0)
    ring = inside - erode(inside, width)
    return ring * valid.to(ring) if valid is not None else ring


def tone_match(render: Tensor, plate: Tensor, alpha: Tensor, face_size: Tensor, params: ToneParams = ToneParams(),
               valid: Tensor | None = None) -> Tensor:
    """The render with a smooth L* offset that meets the plate's lightness along the inside of the paste boundary.

    Args:
        render: (B, 3, h, w) the (colour-matched) swapped faces in crop space, RGB in [0, 1].
        plate: (B, 3, h, w) the plate's aligned crops.
        alpha: (B, 1, h, w) the paste alpha of the face region (before occluders are taken out).
        face_size: (B,) face size in crop pixels.
        valid: (B, 1, h, w) where the plate shows skin that may be measured (1), or None (everywhere).

    Returns:
        (B, 3, h, w) in [0, 1]; ``render`` itself for frames whose ring has fewer than ``min_pixels`` pixels.
    """
    out = render.clone()
    H, W = render.shape[-2:]
    basis = polynomial_basis(H, W, params.order).to(render)
    # Each face in the box of its alpha > 0 grown by a pixel: the ring (inside its alpha >= level, eroded) lies
    # within it, the paste reads nothing outside it, and the basis is the whole crop's, so the fit is the same.
    for i in range(render.shape[0]):
        win = support_window(alpha[i:i + 1], 1)
        if win is None:
            continue
        rows, cols = win
        a = alpha[i:i + 1, :, rows, cols]
        v = None if valid is None else valid[i:i + 1, :, rows, cols]
        ring = boundary_ring_weight(a, face_size.reshape(-1)[i:i + 1], params, v)
        if float(ring.sum()) < params.min_pixels:
            continue
        # L* = 116 fy - 16; with a* and b* held, moving L* by d moves fx, fy and fz alike by d / 116
        f = rgb_to_f(render[i:i + 1, :, rows, cols].clamp(0.0, 1.0))
        plate_fy = lightness_f(plate[i:i + 1, :, rows, cols].to(render).clamp(0.0, 1.0))
        offset = fit_offset(116.0 * (plate_fy - f[:, 1:2]), ring, params.order, params.ridge, basis[:, rows, cols],
                            params.robust, params.rounds)
        moved = f_to_rgb(f.add_(offset / 116.0)).clamp_(0.0, 1.0)
        out[i:i + 1, :, rows, cols] = moved
    return out
