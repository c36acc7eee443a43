"""Whole-face skin-tone match of the relit render, fitted once per track in linear light.

The relit render is ``detail_s · broad_t · ratio_f · SH_t`` (:mod:`vidswap.appearance.relight`): the plate's broad
light times the source's detail layer, which is 1 *on average* over the source's skin. On a source with strong
features on the skin (glasses rims, deep wrinkles, a flash-reddened crease) that mean is pulled away from the skin
itself, and the detail's colour (the photo's make-up-level casts) rides along, so the render's skin can come out
more orange or darker than the plate's skin under the same light -- a "mask painted on the actor" over the whole
face that the per-frame colour match then has to pull back, frame by frame.

The match compares, over *clean* skin only, the render the source's albedo gives under the track's light
(``expected``) with the track's own appearance (its weighted median over the shot, ``plate``), and takes one
gain per channel: the weighted median of ``plate / expected``. Clean skin is skin away from the brows, eyes and
lips where neither face shows a feature: the source's luminance detail and the plate's (its appearance over its
own broad light and shading) both stay within ``detail_limit`` (log units) of the skin, so glasses rims, wrinkles,
stubble and a beard do not vote. Medians make it robust; a single gain per channel keeps every texel's detail
ratio (identity lives in the detail, which is untouched). Fixed per track: it cannot flicker.

Shapes: textures (1, C, u, u) linear; masks (1, 1, u, u).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vidswap.appearance.quantile import weighted_quantile_along
from vidswap.appearance.encoding import luminance

__all__ = ["SkinToneParams", "weighted_quantile", "clean_skin", "skin_tone_gain"]

_EPS = 1e-6


@dataclass(frozen=True)
class SkinToneParams:
    """Settings of the skin-tone match.

    Attributes:
        method: ``"gain"`` (one gain per channel, fitted once per track) or ``"none"``.
        detail_limit: a texel is clean skin only while both faces' luminance detail stays within this many log
            units of their skin (0.12 ~ 13%): rims, wrinkles, stubble and moles are left out of the fit.
        min_visibility: track visibility below which a texel is left out.
        gain_range: clamp of each channel's gain (a failed fit must not repaint the face).
        min_texels: fewer clean texels than this (weighted) and the gain is 1 (nothing to fit on).
    """

    method: str = "gain"
    detail_limit: float = 0.12
    min_visibility: float = 0.3
    gain_range: tuple[float, float] = (0.5, 2.0)
    min_texels: float = 50.0

    def __post_init__(self) -> None:
        if self.method not in ("gain", "none"):
            raise ValueError(f"skin tone method must be gain or none, got {self.method!r}")


def weighted_quantile(values: Tensor, weights: Tensor, q: float = 0.5) -> Tensor:
    """Per-channel weighted quantile over the texels: (1, C, u, u) values, (1, 1, u, u) weights >= 0 -> (1, C, 1, 1).

    The smallest value whose cumulative weight (in ascending order) reaches ``q`` of the total."""
    C = values.shape[1]
    w = weights.reshape(1, -1).expand(C, -1)
    return weighted_quantile_along(values.reshape(C, -1), w, 1, q).reshape(1, C, 1, 1)


def clean_skin(source_detail: Tensor, plate_detail: Tensor, skin: Tensor, limit: float) -> Tensor:
    """(1, 1, u, u) 0/1: texels of ``skin`` where both detail layers' luminance is within ``limit`` log units of
    their median over the skin (no glasses rims, wrinkles, stubble on either face).

    source_detail, plate_detail: (1, 3, u, u) linear detail (the skin ~1 at broad scales)."""
    keep = skin > 0.5
    for detail in (source_detail, plate_detail):
        log_lum = torch.log(luminance(detail).clamp(min=_EPS))
        centre = weighted_quantile(log_lum, keep.float())
        keep = keep & ((log_lum - centre).abs() <= limit)
    return keep.float()


def skin_tone_gain(expected: Tensor, plate: Tensor, weight: Tensor, shading: Tensor, skin: Tensor,
                   params: SkinToneParams = SkinToneParams()) -> Tensor:
    """Per-channel gain on the source's albedo that brings its skin under the track's light to the plate's skin.

    Args:
        expected: (1, 3, u, u) the render the source's albedo gives under the track's light (linear):
            ``detail_s · broad_t · shading``.
        plate: (1, 3, u, u) the track's own appearance (its weighted median, linear); weight (1, 1, u, u) its
            visibility.
        shading: (1, 3, u, u) the track's broad light times its SH shading (what both share; dividing it out
            leaves each face's detail layer).
        skin: (1, 1, u, u) where skin may be measured (away from brows, eyes and lips).

    Returns:
        (1, 3, 1, 1) ``exp(weighted median over clean skin of log(plate / expected))``, clamped to
        ``gain_range``; exactly 1 for ``method: none`` or too few clean texels.
    """
    ones = torch.ones(1, expected.shape[1], 1, 1, dtype=expected.dtype, device=expected.device)
    if params.method == "none":
        return ones
    light = shading.clamp(min=_EPS)
    clean = clean_skin(expected / light, plate / light, skin * (weight >= params.min_visibility), params.detail_limit)
    w = clean * weight
    if float(w.sum()) < params.min_texels:
        return ones
    log_ratio = torch.log(plate.clamp(min=_EPS)) - torch.log(expected.clamp(min=_EPS))
    lo, hi = params.gain_range
    return torch.exp(weighted_quantile(log_ratio, w)).clamp(lo, hi)
