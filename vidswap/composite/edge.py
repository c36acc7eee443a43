"""Edge matching: where the swapped face meets the plate, it takes the plate's colour and fine detail.

A feathered paste blends two images that differ at every scale; along the feather the eye sees both at once:
a tone step (the source's skin a little redder or darker than the plate's around it), and the source's fine
detail cut off by the mask (a glasses arm ending in mid-air, a wrinkle stopping at the jaw line). Seam placement
in graphics-based face replacement (Dale et al. 2011) and E4S's recolour-then-blend chain avoid both. Here, in
crop space, before the paste:

* **colour**: the render's low-frequency mismatch with the plate, measured on a thin ring just inside the paste
  boundary, is spread inward by a normalised convolution (a smooth membrane, as in seamless cloning) and added
  with a weight that is 1 at the boundary and falls to 0 over ``colour_reach`` of the face size;
* **detail**: the render's band above ``detail_sigma`` is swapped for the plate's over ``detail_reach`` of the face
  size inside the boundary, so at the boundary the two images differ only smoothly and the source's features
  fade out instead of being cut.

Deep inside the face (identity: eyes, nose, mouth, the cheeks' middle) the render is unchanged. Per frame and pure:
farm chunks stay identical to a single pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from vidswap.composite.filters import below, erode, gaussian_blur, support_window
from vidswap.composite.masks import feather_mask

__all__ = ["BandParams", "EdgeParams", "band_feather", "band_step", "boundary_weight", "edge_match"]

_EPS = 1e-6


@dataclass(frozen=True)
class EdgeParams:
    """Settings of :func:`edge_match`; lengths are fractions of the face size.

    Attributes:
        ring: width of the ring inside the paste boundary on which the colour mismatch is measured.
        colour_sigma: smoothing of the measured mismatch along and into the face.
        colour_reach: distance inside the boundary over which the colour correction falls from 1 to 0.
        detail_sigma: the render's band above this (a Gaussian's sigma) is the detail the plate's replaces ...
        detail_reach: ... over this distance inside the boundary.
        level: the paste alpha at which the boundary is taken.
    """

    ring: float = 0.03
    colour_sigma: float = 0.08
    colour_reach: float = 0.08
    detail_sigma: float = 0.012
    detail_reach: float = 0.04
    level: float = 0.5


def boundary_weight(inside: Tensor, reach: Tensor) -> Tensor:
    """1 on and outside the boundary of ``inside``, falling smoothly to 0 at ~``reach`` px within it.

    inside (B, 1, h, w) in {0, 1}, reach (B,) px -> (B, 1, h, w): ``clamp(2 blur(1 - inside, reach / 2), 0, 1)``
    (a Gaussian edge: 0.5 of the blurred outside is exactly at the boundary, doubled to 1), squared for a soft
    start. Exactly 1 outside, and 0 (to float precision) deeper than ``1.5 reach``.
    """
    outside = 1.0 - inside
    w = (2.0 * gaussian_blur(outside, reach / 2.0)).clamp(0.0, 1.0)
    w = torch.maximum(w, outside)
    return w * w


def edge_match(render: Tensor, plate: Tensor, alpha: Tensor, face_size: Tensor,
               params: EdgeParams = EdgeParams()) -> Tensor:
    """The render with the plate's colour and detail along the paste boundary.

    Args:
        render: (B, 3, h, w) the (colour-matched) swapped faces in crop space.
        plate: (B, 3, h, w) the plate's aligned crops.
        alpha: (B, 1, h, w) the paste alpha of the face region (before occluders are taken out: an occluder's edge
            is not the face's).
        face_size: (B,) face size in crop pixels.

    Returns:
        (B, 3, h, w); equal to ``render`` where the boundary is far, and everywhere when ``alpha`` is empty.
    """
    size = face_size.to(render).reshape(-1).clamp(min=1.0)
    inside = (alpha >= params.level).to(render)
    ring_px = (params.ring * size).clamp(min=1.0)
    ring = inside - erode(inside, ring_px)
    diff = (plate - render) * ring
    csig = (params.colour_sigma * size).clamp(min=0.5)
    num = gaussian_blur(diff, csig)
    den = gaussian_blur(ring, csig)
    offset = num / den.clamp(min=_EPS) * (den > 1e-4).to(render)
    out = render + boundary_weight(inside, params.colour_reach * size) * offset
    dsig = (params.detail_sigma * size).clamp(min=0.5)
    plate_detail = plate - gaussian_blur(plate, dsig)
    render_detail = out - gaussian_blur(out, dsig)
    out = out + boundary_weight(inside, params.detail_reach * size) * (plate_detail - render_detail)
    has_face = inside.flatten(1).amax(1) > 0
    return torch.where(has_face[:, None, None, None], out, render)


# ----------------------------------------------------------------------------------- two-band feather


@dataclass(frozen=True)
class BandParams:
    """Settings of :func:`band_feather`; lengths are fractions of the face size.

    Attributes:
        feather: the ramp (0 -> 1) of the low band, from the paste's outer boundary inward (the paste alpha's own
            ramp is ``composite.feather``).
        sigma: the low band: the render's difference from the plate blurred by a Gaussian of this sigma.
        min_sigma: the low band is computed below the crop's pixels by the largest step (1 to ``max_step``) that
            leaves its Gaussian at least this many pixels of sigma there (:func:`band_step`), then upsampled
            bilinearly: a blur that wide carries nothing a step's box filter and bilinear upsampling change beyond
            rounding-level amounts (measured: within 1 code value of the full-size band at 1080p).
    """

    feather: float = 0.2
    sigma: float = 0.03
    min_sigma: float = 4.0
    max_step: int = 4


def band_feather(render: Tensor, plate: Tensor, alpha: Tensor, face: Tensor, face_size: Tensor, erosion: float,
                 params: BandParams = BandParams(), visible: Tensor | None = None) -> Tensor:
    """The render whose low-frequency difference from the plate crosses the paste boundary over a wide ramp.

    A feathered paste ramps the whole difference ``render - plate`` over the paste alpha's narrow feather: a
    colour or shading mismatch of the face's rim then becomes a step a few pixels wide (the seam). Here the
    difference is split into a low band (its normalised Gaussian blur over the paste's support) and the rest; the
    rest keeps the paste alpha's ramp, the low band takes the ramp of ``feather_mask(face, erosion, feather)``,
    which starts at the same outer boundary and is wider (Burt & Adelson's multi-band blend, confined to the
    paste's support so the plate stays exact outside it). The returned crop, pasted with ``alpha``, gives
    ``plate + alpha * (d - low) + min(alpha_low, alpha) * low``.

    Args:
        render: (B, 3, h, w) the (colour-matched) swapped faces in crop space.
        plate: (B, 3, h, w) the plate's aligned crops.
        alpha: (B, 1, h, w) the paste alpha of the face region (before occluders are taken out).
        face: (B, 1, h, w) the face outline's mask the paste alpha was feathered from.
        face_size: (B,) face size in crop pixels.
        erosion: the paste's erosion (fraction of the face size).
        visible: (B, 1, h, w) in [0, 1], how much of each pixel is not behind an occluder (``1 - occluder``; None:
            all of it). The low band averages the difference over the visible face only: a hand in front of the
            face differs from the render by a hand's colours, which must not spread into the face around it.

    Returns:
        (B, 3, h, w); ``render`` where ``alpha`` is 0 or the low band's alpha reaches the paste's.
    """
    size = face_size.to(render).reshape(-1).clamp(min=1.0)
    sig = (params.sigma * size).clamp(min=0.5)
    a_low = torch.minimum(feather_mask(face.to(render), size, erosion, params.feather), alpha)
    out = render.clone()
    # Each face in its support's box grown by the blur's reach (ceil(3 sigma), as gaussian_blur truncates): every
    # support pixel's blur then reads only pixels of that window, or the crop's own replicated border where the
    # window is clipped, so the result equals the whole crop's; outside the support the render is returned as is.
    for i, reach in enumerate(torch.ceil(3.0 * sig).long().tolist()):
        win = support_window(alpha[i:i + 1], reach)
        if win is None:
            continue
        rows, cols = win
        r, a = render[i:i + 1, :, rows, cols], alpha[i:i + 1, :, rows, cols]
        support = (a > 0).to(render)
        weight = support if visible is None else support * visible[i:i + 1, :, rows, cols].to(render)
        d = (r - plate[i:i + 1, :, rows, cols]) * weight
        low = _low_band(d, weight, float(sig[i]), band_step(float(sig[i]), params)) * support
        ratio = torch.where(a > 0, a_low[i:i + 1, :, rows, cols] / a.clamp(min=_EPS), torch.ones_like(a))
        out[i:i + 1, :, rows, cols] = r - (1.0 - ratio) * low
    return out


def band_step(sigma: float, params: BandParams) -> int:
    """The factor (1 to ``params.max_step``) by which :func:`band_feather`'s low band of Gaussian ``sigma``
    (pixels) is computed below the crop's pixels: the largest leaving ``params.min_sigma`` pixels of sigma."""
    return int(max(1, min(params.max_step, math.floor(sigma / max(params.min_sigma, 1e-6)))))


def _low_band(d: Tensor, support: Tensor, sigma: float, step: int) -> Tensor:
    """The normalised Gaussian blur of ``d (1, C, h, w)`` (already weighted) over the weights ``support (1, 1, h,
    w)`` (``blur(d) / blur(support)``), computed on both box-filtered down by ``step`` (replicated edge) and
    upsampled bilinearly."""
    if step == 1:
        return gaussian_blur(d, sigma) / gaussian_blur(support, sigma).clamp(min=_EPS)

    def normalised(both: Tensor) -> Tensor:
        both = gaussian_blur(both, sigma / step)
        return both[:, :-1] / both[:, -1:].clamp(min=_EPS)

    return below(torch.cat([d, support], 1), step, normalised, pad="replicate")
