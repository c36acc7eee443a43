"""The relit render: the source's albedo under the plate's light, per frame, in linear light.

In texture space, for frame f of a track::

    result = detail_s(uv) · broad_t(uv) · ratio_f(uv)  x  SH_t(n_d)   (the last factor per driven vertex)

* ``detail_s`` -- the source's de-lit albedo detail (:mod:`vidswap.appearance.source`): identity;
* ``SH_t(n_d)`` -- the track's SH light (:mod:`vidswap.appearance.track`) evaluated on the *driven* mesh's vertex
  normals in plate coordinates and interpolated over the render: the plate's light shading the source's shape;
* ``broad_t`` -- the track's broad light: skin colour under this light, fall-off and cast shadows;
* ``ratio_f`` -- the frame's temporal ratio ``lowpass(I_f) / lowpass(mean_t)`` over the skin away from the
  features: what changes over time (moving shadows, expression wrinkles, lids closing), never the plate actor's
  static identity detail, which cancels. Features (lips, eyes, brows) take the ratio of the skin around them.
  Texels the frame does not see take ratio 1.

The detail is rendered on the driven mesh (:func:`~vidswap.appearance.texture_space.render_from_texture`), the
frame's light ``broad_t · ratio_f`` sampled at the same surface points and multiplied in per pixel with the
per-vertex shading, and encoded back to sRGB. The track model and the frame's ratio live at a small texture size
(they are low-pass); the detail at the photo's. The product is never made at the detail's size: for a 512-texel
detail that made (B, 8, 512, 512) textures every batch (portrait_m7: 35 -> 27 ms a frame, one thread).

The driven mesh follows the plate's own lip and eye contours (:func:`follow_weights`): the source's lip colour goes
on the target's lip shape, so the plate's mouth interior and eyes, which show through the holes, meet lips and lids
that fit them -- no lip-line smear, blinks and gaze stay the plate's, and a smiling source does not add its smile to
the target's expression at the lip contours. Around them, a source photo with its lips apart takes the track's
neutral shape (:mod:`vidswap.swap.geometric.mouth_rest`), so its dropped lower lip or stretched smile is not added
either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.appearance.encoding import toward_luminance
from vidswap.appearance.lighting import normalized_blur, sh_shading
from vidswap.appearance.texture_space import vertex_normals
from vidswap.composite.filters import dilate, smoothstep

__all__ = ["RelightParams", "PlateLight", "plate_light", "feature_free_skin", "temporal_ratio", "resize_texture",
           "vertex_shading", "distance_ramp", "follow_weights", "outline_fade",
           "outline_gain", "outline_smooth", "lid_glints"]

_EPS = 1e-6


@dataclass(frozen=True)
class RelightParams:
    """Settings of the relit render (lengths as fractions of the texture side).

    temporal: sigma of the temporal ratio's low-pass (keeps moving light and shadow and broad expression
        wrinkles, drops grain and misregistration). At 0.02 it also carried the narrow folds by which a frame's
        expression differs from the track's median appearance (a neutral frame in a smiling track), as blobs that
        came and went with quick expressions and that the eval's landmark judge read as moving features.
    ratio_deadband: changes of the temporal ratio smaller than this (in log units) are noise (grain, compression,
        the mesh sliding a little over the skin), not light: they are dropped, larger ones are kept less this much.
    ratio_range: clamp of the temporal ratio.
    feature_margin: features are kept out of the temporal ratio by this margin.
    full_visibility: frame visibility at which the temporal ratio is fully trusted (below: blended toward 1).
    lips_reach, eyes_reach: canonical-unit radii over which the driven mesh goes from the plate's lip / eye
        contours to the source's shape (:func:`follow_weights`).
    lid_close_start, lid_close_full: a plate eye's openness relative to the source's at which its own lids start
        to show, and from which they show fully (the geometric core's relit render).
    shading_from_plate: weight of the plate's own mesh (vs the driven mesh) in the normals the SH light shades:
        1 carries the plate's shading over point by point (the light falls as it does on the plate: the best
        lighting match); 0 shades the source's shape (its nose and brow ridges cast their own light).
    outline: width of the band along the face's outline (fraction of the texture side) over which the render's
        weight rises from 0 at the outline to 1 inside (:func:`outline_fade`): there the plate shows through, so
        the boundary is the plate's own by construction (0: off).
    outline_match: width of the band along the outline (fraction of the texture side) where the source's albedo
        takes a per-track gain that makes the render equal the track's own appearance there
        (:func:`outline_gain`), falling smoothly to no gain inside (0: off). Fixed per track: it cannot flicker.
    outline_detail: width of the band along the outline (fraction of the texture side) over which the source's
        albedo goes from its own low-pass (skin tone, no glasses rims or wrinkles) at the outline to its full detail
        inside (:func:`outline_smooth`): the outline crosses no feature of the source (0: off).
    outline_sigma: the low-pass of that gain and of the smoothed detail (fraction of the texture side): tone, not
        detail.
    outline_gain_range: clamp of the gain.
    lid_glint_knee, lid_glint_slope: on the lids (the band that bends with the plate's eye contour), the source
        albedo's luminance detail above the knee (x the skin) is compressed by the slope (:func:`lid_glints`): a
        photo's glints on glasses or wet lids would stretch and move as the plate's lids squeeze (slope 1: off).
    brow_borrow, brow_borrow_grow, brow_faint: a source whose brows are faint against the plate actor's (its brow
        contrast at most ``brow_faint[0]`` x the track's, fading out at ``brow_faint[1]`` x) takes up to
        ``brow_borrow`` of the track's brow detail on its own tone, over the brows grown by ``brow_borrow_grow``
        (the geometric core's relit render; not where a kept frame of glasses lies over the brows). The plate's
        frown and closing eyes show in its brows; faint brows do not carry them (the eval's landmark judge then
        reads closed eyes as open). 0: off (the default; the core's ``relit_brows``).
    steep_edges: the mesh edges beside a triangle seen edge-on (its screen area over its canonical area under this
        share of the frame's median) are smoothed in the render, so they are not drawn as staircases
        (:mod:`vidswap.swap.geometric.edge_smooth`). 0: off.
    """

    temporal: float = 0.04
    ratio_deadband: float = 0.04
    ratio_range: tuple[float, float] = (0.35, 2.5)
    feature_margin: float = 0.02
    full_visibility: float = 0.5
    lips_reach: float = 0.3
    eyes_reach: float = 0.2
    lid_close_start: float = 0.65
    lid_close_full: float = 0.35
    shading_from_plate: float = 1.0
    outline: float = 0.0
    outline_match: float = 0.0
    outline_detail: float = 0.0
    outline_sigma: float = 0.03
    outline_gain_range: tuple[float, float] = (0.67, 1.5)
    lid_glint_knee: float = 1.1
    lid_glint_slope: float = 0.2
    brow_borrow: float = 0.0
    brow_borrow_grow: float = 0.01
    brow_faint: tuple[float, float] = (0.35, 0.6)
    steep_edges: float = 0.35


def _filled(face: Tensor) -> Tensor:
    """(1, 1, U, U) the face mask (> 0.5) with its holes (eye and mouth openings) filled, 0/1: the parts of what is
    outside it (4-connected, as a hole's edge is traced) that do not reach the border are filled."""
    face_u8 = (face[0, 0] > 0.5).cpu().numpy().astype(np.uint8)
    _, labels = cv2.connectedComponents(1 - face_u8, connectivity=4)
    outer = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = (labels > 0) & ~np.isin(labels, outer)
    return torch.from_numpy((holes | (face_u8 > 0)).astype(np.float32))[None, None].to(face)


def outline_fade(face: Tensor, width: float) -> Tensor:
    """Weight of the render along the face's outline in texture space: (1, 1, U, U) face coverage -> (1, 1, U, U).

    The face's holes (eye and mouth openings) are filled first: only its outer outline counts.
    0 on the outline (the face's texels next to one outside it) and outside, rising as a smoothstep of the
    Euclidean distance (in texels, less the outline's own 1) to 1 at ``width`` x U and beyond; all ones for
    ``width`` <= 0. Fixed in texture space: it moves with the mesh and is the same on every frame.
    """
    if width <= 0:
        return torch.ones_like(face)
    filled = _filled(face)[0, 0].cpu().numpy().astype(np.uint8)
    dist = torch.from_numpy(cv2.distanceTransform(filled, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)).to(face)  # exact
    return smoothstep((dist - 1.0) / (width * face.shape[-1]))[None, None]


def outline_gain(expected: Tensor, plate: Tensor, weight: Tensor, face: Tensor, skin: Tensor, band: float,
                 sigma: float, gain_range: tuple[float, float] = (0.67, 1.5)) -> Tensor:
    """Per-track gain on the source's albedo that makes the render meet the plate along the face's outline.

    ``ratio = lowpass(plate) / lowpass(expected)`` (normalised convolutions over the skin the track saw within
    ``band`` of the outline, ``sigma`` x U), clamped to ``gain_range``; the gain is ``ratio`` on the outline and
    falls to 1 at ``band`` x U inside (``1 - outline_fade``), and is 1 where the track saw no skin near.

    Args:
        expected: (1, 3, u, u) the render the source's albedo gives under the track's light (linear).
        plate: (1, 3, u, u) the track's own appearance (its weighted median, linear); weight (1, 1, u, u) its
            visibility.
        face, skin: (1, 1, u, u) region masks.

    Returns:
        (1, 3, u, u) gain (exactly 1 for ``band`` <= 0).
    """
    if band <= 0:
        return torch.ones_like(expected)
    inside = 1.0 - outline_fade(face, band)  # 1 on the outline, 0 from band inward
    ring = weight * skin * inside * (weight > 0.3)
    s = max(sigma * face.shape[-1], 0.5)
    num, seen = normalized_blur(plate, ring, s)
    den, _ = normalized_blur(expected, ring, s)
    lo, hi = gain_range
    ratio = (num / den.clamp(min=_EPS)).clamp(lo, hi)
    trust = (seen / seen.amax().clamp(min=_EPS) * 4.0).clamp(0.0, 1.0)  # no ring near: no gain
    return 1.0 + (ratio - 1.0) * trust * inside * _filled(face)


def outline_smooth(detail: Tensor, skin: Tensor, face: Tensor, band: float, sigma: float) -> Tensor:
    """The source's albedo with its detail faded out toward the face's outline: (1, C, U, U) -> (1, C, U, U).

    ``fade · detail + (1 - fade) · lowpass(detail)``, ``fade`` = :func:`outline_fade` (0 on the outline, 1 from
    ``band`` x U inside) and the low-pass a normalised convolution over the ``skin`` (``sigma`` x U), so the
    features' colours do not bleed into it. Unchanged for ``band`` <= 0.
    """
    if band <= 0:
        return detail
    fade = outline_fade(face, band)
    smooth, seen = normalized_blur(detail, skin, max(sigma * detail.shape[-1], 0.5))
    smooth = torch.where(seen > 1e-3, smooth, detail)  # no skin near: keep the detail
    return fade * detail + (1.0 - fade) * smooth


def feature_free_skin(masks: Mapping[str, Tensor], margin: float) -> Tensor:
    """Skin at least ``margin`` x U from the lips, eyes and brows: (1, 1, U, U)."""
    U = masks["skin"].shape[-1]
    features = (masks["lips"] + masks["eyes"] + masks["brows"]).clamp(0, 1)
    return masks["skin"] * (1.0 - dilate(features, max(margin * U, 1.0)))


@dataclass
class PlateLight:
    """A track's light at render time (from its :class:`~vidswap.appearance.track.TrackAppearance`), with the
    frame-independent half of the temporal ratio computed once.

    lighting: (1, 1, 9) SH coefficients of the luminance (plate coordinates).
    broad: (1, 3, u, u) broad light.
    mean_lowpass: (1, 3, u, u) the low-passed track appearance over ``support`` (the ratio's denominator).
    support: (1, 1, u, u) skin away from the features, where the ratio is measured.
    sigma: the low-pass sigma in texels.
    edge_blur: (1,) the camera's blur around the face, as a fraction of its height (NaN when unknown).
    """

    lighting: Tensor
    broad: Tensor
    mean_lowpass: Tensor
    support: Tensor
    sigma: float
    edge_blur: Tensor


def plate_light(model: Mapping[str, Tensor], masks: Mapping[str, Tensor],
                params: RelightParams = RelightParams()) -> PlateLight:
    """The render-time light of a track from its model tensors (``TrackAppearance.tensors()``: mean, weight,
    broad, lighting, edge_blur) and the region masks at the model's texture size."""
    mean, weight = model["mean"], model["weight"]
    support = feature_free_skin(masks, params.feature_margin).to(mean)
    sigma = max(params.temporal * mean.shape[-1], 0.5)
    mean_lowpass, _ = normalized_blur(mean, weight * support, sigma)
    return PlateLight(lighting=model["lighting"], broad=model["broad"], mean_lowpass=mean_lowpass,
                      support=support, sigma=sigma, edge_blur=model["edge_blur"].reshape(1))


def temporal_ratio(light: PlateLight, frame: Tensor, frame_weight: Tensor,
                   params: RelightParams = RelightParams()) -> Tensor:
    """``lowpass(I_f) / lowpass(mean)`` over the light's support (normalised convolutions), clamped, less the
    dead band (in log units), and blended toward 1 (in log units) where the frame saw little.

    Args:
        light: the track's :class:`PlateLight`.
        frame: (B, 3, u, u) linear unwrapped frames (the model's texture size); frame_weight (B, 1, u, u) their
            visibility (times any occlusion matte).

    Returns:
        (B, 3, u, u).
    """
    support = light.support.expand_as(frame_weight)
    num, _ = normalized_blur(frame, frame_weight * support, light.sigma)
    lo, hi = params.ratio_range
    log_ratio = torch.log((num / light.mean_lowpass.clamp(min=_EPS)).clamp(lo, hi))
    log_ratio = torch.sign(log_ratio) * (log_ratio.abs() - params.ratio_deadband).clamp(min=0.0)
    seen, _ = normalized_blur(frame_weight, support, light.sigma)
    trust = (seen / params.full_visibility).clamp(0.0, 1.0)
    return torch.exp(log_ratio * trust)


def resize_texture(texture: Tensor, size: int) -> Tensor:
    """Resample a texture to another texture size (texel centres at integers: the layouts scale with
    ``size - 1``, :func:`~vidswap.appearance.texture_space.build_texture_space`)."""
    if texture.shape[-1] == size:
        return texture
    return F.interpolate(texture, size=(size, size), mode="bilinear", align_corners=True)


def vertex_shading(frame_verts: Tensor, triangles: Tensor, lighting: Tensor) -> Tensor:
    """SH shading of posed meshes per vertex: (B, V, 3) plate-pixel vertices, (1 or B, C, 9) -> (B, V, 3),
    floored at 1e-3 (achromatic light, C = 1, is the same on every channel). Interpolated over the render
    (Gouraud), which is smooth enough for nine bands."""
    # frame by frame: the batched normals' scatter-add and the einsum may round the last bit differently for
    # another batch size, and farm chunks batch frames differently from one pass
    shades = []
    for b in range(frame_verts.shape[0]):
        n = vertex_normals(frame_verts[b:b + 1], triangles).transpose(1, 2)  # (1, 3, V)
        shades.append(sh_shading(n, lighting[b:b + 1] if lighting.shape[0] > 1 else lighting))  # (1, C, V)
    return torch.cat(shades).transpose(1, 2).clamp(min=1e-3).expand(-1, -1, 3)


def lid_glints(detail: Tensor, lids: Tensor, knee: float, slope: float) -> Tensor:
    """The source albedo detail with its highlights on the lids compressed: (B, C>=3, U, U) detail (luminance 1 =
    the skin), (1 or B, 1, U, U) soft lid mask in [0, 1] -> same shape as ``detail``.

    Where the detail's luminance L (Rec. 709 weights of the first three channels) exceeds ``knee`` it is brought
    to ``knee + (L - knee) x slope``, colour ratios kept; the result blends to that by the mask. Channels past the
    third (a weight) are passed as they are.
    """
    return toward_luminance(detail, lambda lum: torch.where(lum > knee, knee + (lum - knee) * slope, lum), lids)


def distance_ramp(canonical: Tensor, indices: Tensor | Sequence[int] | np.ndarray, reach: float) -> Tensor:
    """Per vertex, 0 on the ``indices`` vertices rising smoothly (smoothstep of the canonical distance to the
    nearest of them) to 1 at ``reach`` canonical units: (V, 3) -> (V,). ``reach`` > 0."""
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=canonical.device)
    x = (torch.cdist(canonical, canonical[idx]).amin(1) / reach).clamp(0.0, 1.0)
    x[idx] = 0.0  # exactly (cdist of a point to itself is not always 0 in float32)
    return smoothstep(x)


def follow_weights(canonical: Tensor, regions: Mapping[str, np.ndarray | Sequence[int]],
                   lips_reach: float = 0.3, eyes_reach: float = 0.2) -> Tensor:
    """Per-vertex weight of the source's shape in the relit render's driven mesh: (V, 3) canonical -> (V,).

    0 on the plate's inner lip contour and eye contours (and the irises), rising smoothly (smoothstep of the
    canonical distance, :func:`distance_ramp`) to 1 at ``lips_reach`` / ``eyes_reach`` canonical units from them.
    """
    c = canonical.float()
    eyes = np.concatenate([np.asarray(regions["left_eye"]), np.asarray(regions["right_eye"])])
    w = torch.minimum(distance_ramp(c, regions["lips_inner"], lips_reach), distance_ramp(c, eyes, eyes_reach))
    w[468:] = 0.0  # irises: the plate's gaze
    return w
