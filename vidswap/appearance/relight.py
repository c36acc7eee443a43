"""The relit render: the source's albedo under the plate's light, per frame, in linear light.

In texture space, for frame f of a track::

    result(uv) = detail_s(uv) · SH_t(n_d(uv)) · broad_t(uv) · ratio_f(uv)

* ``detail_s`` -- the source's de-lit albedo detail (:mod:`vidswap.appearance.source`): identity;
* ``SH_t(n_d)`` -- the track's SH light (:mod:`vidswap.appearance.track`) evaluated on the *driven* mesh's normals
  in plate coordinates: the plate's light shading the source's shape;
* ``broad_t`` -- the track's broad light: skin colour under this light, fall-off and cast shadows;
* ``ratio_f`` -- the frame's temporal ratio ``lowpass(I_f) / lowpass(mean_t)`` over the skin away from the
  features: what changes over time (moving shadows, expression wrinkles, lids closing), never the plate actor's
  static identity detail, which cancels. Features (lips, eyes, brows) take the ratio of the skin around them.
  Texels the frame does not see take ratio 1.

The textures are then rendered on the driven mesh (:func:`~vidswap.appearance.texture_space.render_from_texture`)
and encoded back to sRGB. The driven mesh follows the plate's own lip and eye contours
(:func:`follow_weights`): the source's lip colour goes on the target's lip shape, so the plate's mouth interior
and eyes, which show through the holes, meet lips and lids that fit them -- no lip-line smear, blinks and gaze
stay the plate's, and a smiling source does not add its smile to the target's expression at the mouth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.appearance.lighting import normalized_blur, sh_shading
from vidswap.composite.filters import dilate

__all__ = ["RelightParams", "feature_free_skin", "temporal_ratio", "resize_texture", "relit_texture",
           "follow_weights"]

_EPS = 1e-6


@dataclass(frozen=True)
class RelightParams:
    """Settings of the relit render (lengths as fractions of the texture side).

    temporal: sigma of the temporal ratio's low-pass (keeps expression wrinkles, drops grain and misregistration).
    ratio_range: clamp of the temporal ratio.
    feature_margin: features are kept out of the temporal ratio by this margin.
    full_visibility: frame visibility at which the temporal ratio is fully trusted (below: blended toward 1).
    lips_reach, eyes_reach: canonical-unit radii over which the driven mesh goes from the plate's lip / eye
        contours to the source's shape (:func:`follow_weights`).
    """

    temporal: float = 0.012
    ratio_range: tuple[float, float] = (0.35, 2.5)
    feature_margin: float = 0.02
    full_visibility: float = 0.5
    lips_reach: float = 0.45
    eyes_reach: float = 0.2


def feature_free_skin(masks: Mapping[str, Tensor], margin: float) -> Tensor:
    """Skin at least ``margin`` x U from the lips, eyes and brows: (1, 1, U, U)."""
    U = masks["skin"].shape[-1]
    features = (masks["lips"] + masks["eyes"] + masks["brows"]).clamp(0, 1)
    return masks["skin"] * (1.0 - dilate(features, max(margin * U, 1.0)))


def temporal_ratio(frame: Tensor, frame_weight: Tensor, mean: Tensor, mean_weight: Tensor, support: Tensor,
                   params: RelightParams = RelightParams()) -> Tensor:
    """``lowpass(I_f) / lowpass(mean)`` over ``support`` (normalised convolutions), clamped, and blended toward 1
    where the frame saw little.

    Args:
        frame: (B, 3, U, U) linear unwrapped frames; frame_weight (B, 1, U, U) their visibility.
        mean: (1, 3, U, U) the track's appearance; mean_weight (1, 1, U, U).
        support: (1, 1, U, U) where the ratio is measured (:func:`feature_free_skin`); elsewhere it is
            extrapolated from there.

    Returns:
        (B, 3, U, U).
    """
    sigma = max(params.temporal * frame.shape[-1], 0.5)
    num, _ = normalized_blur(frame, frame_weight * support, sigma)
    den, _ = normalized_blur(mean.expand_as(frame), (mean_weight * support).expand_as(frame_weight), sigma)
    lo, hi = params.ratio_range
    ratio = (num / den.clamp(min=_EPS)).clamp(lo, hi)
    seen, _ = normalized_blur(frame_weight, support.expand_as(frame_weight), sigma)
    trust = (seen / params.full_visibility).clamp(0.0, 1.0)
    return 1.0 + (ratio - 1.0) * trust


def resize_texture(texture: Tensor, size: int) -> Tensor:
    """Resample a texture to another texture size (texel centres at integers: the layouts scale with
    ``size - 1``, :func:`~vidswap.appearance.texture_space.build_texture_space`)."""
    if texture.shape[-1] == size:
        return texture
    return F.interpolate(texture, size=(size, size), mode="bilinear", align_corners=True)


def relit_texture(detail: Tensor, lighting: Tensor, broad: Tensor, ratio: Tensor, driven_normals: Tensor) -> Tensor:
    """The relit texture (linear): ``detail · SH(driven normals) · broad · ratio``.

    Args:
        detail: (1, 3, U, U) source detail.
        lighting: (1, 3, 9) the track's SH coefficients.
        broad: (1, 3, u, u) the track's broad light (any texture size; resampled).
        ratio: (B, 3, u, u) the frames' temporal ratios (resampled).
        driven_normals: (B, 3, U, U) unit normals of the driven meshes in plate coordinates.

    Returns:
        (B, 3, U, U).
    """
    U = detail.shape[-1]
    shade = sh_shading(driven_normals, lighting.expand(driven_normals.shape[0], -1, -1)).clamp(min=1e-3)
    return detail * shade * resize_texture(broad, U) * resize_texture(ratio, U)


def follow_weights(canonical: Tensor, regions: Mapping[str, np.ndarray | Sequence[int]],
                   lips_reach: float = 0.45, eyes_reach: float = 0.2) -> Tensor:
    """Per-vertex weight of the source's shape in the relit render's driven mesh: (V, 3) canonical -> (V,).

    0 on the plate's inner lip contour and eye contours (and the irises), rising smoothly (smoothstep of the
    canonical distance) to 1 at ``lips_reach`` / ``eyes_reach`` canonical units from them.
    """
    c = canonical.float()

    def ramp(names: Sequence[str], reach: float) -> Tensor:
        idx = torch.cat([torch.as_tensor(np.asarray(regions[n]), dtype=torch.long) for n in names])
        x = (torch.cdist(c, c[idx]).amin(1) / reach).clamp(0.0, 1.0)
        x[idx] = 0.0  # exactly (cdist of a point to itself is not always 0 in float32)
        return x * x * (3.0 - 2.0 * x)

    w = torch.minimum(ramp(["lips_inner"], lips_reach), ramp(["left_eye", "right_eye"], eyes_reach))
    w[468:] = 0.0  # irises: the plate's gaze
    return w
