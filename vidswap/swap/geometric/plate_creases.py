"""The plate's expression creases on the relit face: the furrows of the forehead, the lines between the brows and
the folds from the nose's wings down past the mouth's corners.

The relit render carries the plate's light through the frame's temporal ratio, low-passed at 0.04 of the texture
side and taken relative to the track's median appearance (:func:`~vidswap.appearance.relight.temporal_ratio`).
A brow's furrows are narrower than that (2-4 texels apart in the 128-texel track texture), and in a shot that
holds its expression -- a plate that cries from its second second on -- they are in the median too. So the relit
face stayed calm while the plate frowned, cried or raised its brows.

Here they come from the plate's own crop, resampled to the render's pixels: the plate's log luma against its own
blur (sigma ``sigma`` x the face height) over the skin alone -- the plate's brows and eyes, grown by
:data:`FEATURE_CLEAR` (:func:`plate_features`), are left out of that reference, so the skin beside a dark brow
does not read bright. A fold is a dark groove with lit skin bulging on either side; both are taken, through a soft
dead band of ``deadband`` log units (:func:`soft_deadband`: grain and pores fade out, a crease keeps its full depth
and width), the lit side only within :data:`CREASE_NEAR` of a groove and up to :data:`LIT_SHARE` of its depth (a
lone highlight, or the shine on a smooth brow ridge beside a faint line, is not a crease). Taken on the forehead and
between the brows (:func:`crease_zone`: away from the render's brows and eyes, within the forehead fade; and away
from the plate's own, softened over :data:`FEATURE_SOFT`), multiplied into the relit face in linear light before
its encoding and its blur match (:func:`apply_creases`). (Before s34 only the groove was taken, less a hard dead
band: a thin dark line that read as a crack in the skin, with none of the fold's light.)

A crease that is always there -- an older actor's forehead lines -- is the plate actor's, not the expression's:
the layer is weighted per frame by how far the plate's brows have moved from the track's neutral
(:func:`vertex_motion` of the brows, :func:`crease_gate`), so a face at rest keeps the source's forehead.
Measured (mean length of the brow vertices' expression offsets, canonical units): the three webcam and stock clips
at rest 0.001-0.012, pexels_clip crying 0.024-0.046, the webcam actor's grin (its squint lowers the brows)
0.030-0.039.

The nasolabial folds (:func:`fold_zone`) are taken the same way on frames whose mouth corners have moved from the
track's neutral (:func:`mouth_motion`, :func:`frame_folds`: a smile, a cry, speech), from the plate's crop blurred
first by :data:`FOLD_PREFILTER` (a smile's folds are broad; the plate actor's stubble and pores beside the mouth are
not) and off the plate's lips as well as its brows and eyes. Without them a grin or a cry sat on a calm face.

Shapes: crops (B, 3, H, W) sRGB in [0, 1]; faces (B, 3, H, W) linear (the render before its encoding); layers and
weights (B, 1, H, W); texture masks (1, 1, U, U); expression offsets (B, V, 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from vidswap.appearance.encoding import srgb_to_linear
from vidswap.appearance.raster import fill_loops
from vidswap.composite.filters import dilate, gaussian_blur, smoothstep
from vidswap.faces.types import MOUTH_CORNERS
from vidswap.swap.geometric.mouth_rest import fold_region

__all__ = ["CREASE_SIGMA", "CREASE_DEADBAND", "CREASE_NEAR", "LIT_SHARE", "FEATURE_SOFT", "BROW_MOTION", "crease_zone",
           "plate_features", "vertex_motion", "frame_creases", "crease_gate", "soft_deadband", "groove_depth_near",
           "crease_layer", "log_luma", "skin_reference", "creases_of", "apply_creases", "take_creases",
           "CreaseReaches", "crease_reaches", "FOLD_ZONE_WIDTH", "MOUTH_MOTION",
           "FOLD_PREFILTER", "fold_zone", "mouth_motion", "frame_folds"]

#: the blur the plate's creases are measured against, as a fraction of the face height (a furrow is a few
#: percent of it wide)
CREASE_SIGMA = 0.02
#: the departure (log units) below which the plate's fine detail is grain, pores or compression, not a crease
CREASE_DEADBAND = 0.02
#: how far from a groove (x the face height) the lit skin beside it is taken as the fold's
CREASE_NEAR = 0.03
#: a fold's lit side is taken up to this share of the depth of the groove beside it (log units): a highlight
#: beside a faint line (the shine on a smooth brow ridge) stays out
LIT_SHARE = 0.5
#: how far around the plate's own brows and eyes (x the face height) no crease is taken
FEATURE_CLEAR = 0.03
#: over how much of the face height (a Gaussian's sigma) the creases fade in from the plate's brows and eyes
FEATURE_SOFT = 0.01
#: the brows' mean motion (canonical units) from which the creases start to show and at which they show fully
BROW_MOTION = (0.01, 0.03)
#: the width (fraction of the texture side) of the band along the nasolabial folds (:func:`fold_zone`) where the
#: plate's own folds are taken: wider than the source's (``relit_smile_folds``), as the plate's fold lies where
#: the plate actor's face puts it
FOLD_ZONE_WIDTH = 0.05
#: the mouth corners' mean motion (canonical units) from which the plate's folds start to show and at which they
#: show fully. Measured: face_noface_clip at rest 0.003-0.007 and grinning 0.22-0.30, pexels_clip crying
#: 0.013-0.14, carphone_clip talking 0.01-0.2
MOUTH_MOTION = (0.03, 0.10)
#: the blur (sigma, x the face height) of the plate's crop before its folds are read beside the mouth: a smile's
#: folds are broad, the stubble and pores there are not
FOLD_PREFILTER = 0.006


def crease_zone(masks: dict[str, Tensor], clear: float = 0.01, soft: float = 0.015) -> Tensor:
    """The forehead and the skin between the brows in texture space: the skin above the middle between the brows'
    lowest row and the eyes' top row, off the brows and eyes grown by ``clear`` x U, times the forehead fade
    (``source_masks``), softened by ``soft`` x U. -> (1, 1, U, U) in [0, 1]; all 0 without brows or eyes."""
    brows, eyes = masks["brows"], masks["eyes"]
    U = brows.shape[-1]
    brow_rows = torch.nonzero(brows[0, 0].amax(1) > 0.5)[:, 0]
    eye_rows = torch.nonzero(eyes[0, 0].amax(1) > 0.5)[:, 0]
    if brow_rows.numel() == 0 or eye_rows.numel() == 0:
        return torch.zeros_like(brows)
    limit = (float(brow_rows.max()) + float(eye_rows.min())) / 2
    rows = torch.arange(U, dtype=brows.dtype, device=brows.device).view(1, 1, U, 1)
    features = dilate((brows + eyes).clamp(0.0, 1.0), max(clear * U, 1.0))
    zone = (rows < limit).to(brows.dtype) * masks["skin"] * (1.0 - features) * masks["forehead_fade"]
    return gaussian_blur(zone, soft * U).clamp(0.0, 1.0) if soft > 0 else zone


def fold_zone(masks: dict[str, Tensor], width: float = FOLD_ZONE_WIDTH) -> Tensor:
    """The skin along the nasolabial folds in texture space (:func:`~.mouth_rest.fold_region` of the mesh's
    ``mouth``, ``nose`` and ``skin`` masks, a band ``width`` x U wide): where a smile or a cry deepens the plate's
    folds. -> (1, 1, U, U) in [0, 1]."""
    return fold_region(masks["mouth"], masks["nose"], masks["skin"], width)


def plate_features(landmarks: Tensor, loops: Sequence[Tensor], size: tuple[int, int], face_heights: Tensor,
                   clear: float = FEATURE_CLEAR) -> Tensor:
    """The plate's own brows and eyes in its crops: the ``loops`` (landmark index loops) of the crops' landmarks
    (B, V, 2+) filled and grown by ``clear`` x the face height (the largest of ``face_heights`` (B,)).
    -> (B, 1, H, W) in {0, 1}. The render's zone follows the driven mesh, whose brows are the source's; the
    plate's brows, where they differ, are no crease. Filled by :func:`~vidswap.appearance.raster.fill_loops` (on the
    CPU by OpenCV, which also takes the pixels the outline crosses: a pixel more along the edges, well within the
    growth)."""
    filled = fill_loops(landmarks, loops, size)
    return dilate(filled, max(float(clear * face_heights.max()), 1.0)).clamp(0.0, 1.0)


def vertex_motion(expression: Tensor, vertices: Sequence[int] | np.ndarray | Tensor) -> Tensor:
    """The mean length of the expression offsets (B, V, 3) over ``vertices``: how far that part of the plate's
    face (the brows, the mouth's corners) has moved from the track's neutral, in canonical units. -> (B,)."""
    idx = torch.as_tensor(np.asarray(vertices), dtype=torch.long, device=expression.device)
    return expression[:, idx].float().norm(dim=-1).mean(-1)


def frame_creases(expression: Tensor, regions: dict[str, Tensor], amount: float) -> Tensor | None:
    """(B,) how much of the plate's creases each frame takes: ``amount`` x :func:`crease_gate` of the frames'
    :func:`vertex_motion` of the brows (expression offsets (B, V, 3), the mesh's ``regions`` index loops); None
    for ``amount`` 0 or a mesh without brows."""
    if amount <= 0 or not {"left_brow", "right_brow"} <= regions.keys():
        return None
    brows = torch.cat([torch.as_tensor(regions["left_brow"]), torch.as_tensor(regions["right_brow"])])
    return crease_gate(vertex_motion(expression, brows)) * amount


def mouth_motion(expression: Tensor, corners: Sequence[int] = MOUTH_CORNERS) -> Tensor:
    """:func:`vertex_motion` at the mouth's corners: how far a smile, a cry or speech has moved them. -> (B,)."""
    return vertex_motion(expression, corners)


def frame_folds(expression: Tensor, amount: float) -> Tensor | None:
    """(B,) how much of the plate's nasolabial folds each frame takes: ``amount`` x :func:`crease_gate` of the
    frames' :func:`mouth_motion` between :data:`MOUTH_MOTION`; None for ``amount`` 0."""
    if amount <= 0:
        return None
    return crease_gate(mouth_motion(expression), MOUTH_MOTION) * amount


def crease_gate(motion: Tensor, levels: tuple[float, float] = BROW_MOTION) -> Tensor:
    """How much of the plate's creases a frame takes: 0 up to ``levels[0]`` of brow motion, 1 from ``levels[1]``
    (smoothstep). (B,) -> (B,)."""
    return smoothstep((motion - levels[0]) / (levels[1] - levels[0]))


def soft_deadband(x: Tensor, deadband: float) -> Tensor:
    """``x^3 / (x^2 + deadband^2)``: departures well under ``deadband`` fade out (as ``x^3``), those well over it
    keep nearly their full size (``x - deadband^2 / x``); odd, so dark and light alike. Any shape."""
    return x * x * x / (x * x + deadband * deadband)


def groove_depth_near(depth: Tensor, face_heights: Tensor, near: float = CREASE_NEAR) -> Tensor:
    """How deep the deepest groove near each pixel is: ``depth`` (B, 1, H, W) >= 0 (log units) grown (a local
    maximum) by ``near`` x each frame's face height (B,) and softened by half that (a Gaussian's sigma).
    -> (B, 1, H, W) >= 0."""
    reach = (near * face_heights.to(depth)).clamp(min=1.0)
    return gaussian_blur(dilate(depth, reach), (0.5 * reach).clamp(min=0.5))


def crease_layer(crops: Tensor, face_heights: Tensor, skin: Tensor | None = None, sigma: float = CREASE_SIGMA,
                 deadband: float = CREASE_DEADBAND, near: float = CREASE_NEAR, prefilter: float = 0.0) -> Tensor:
    """The plate's creases as log luma: the crops' log luma ``log L`` (Rec. 709 weights on the sRGB values, then
    linearised) less its blur by ``sigma`` x each crop's face height (B,) in its pixels, taken over ``skin`` (B, 1,
    H, W) in [0, 1] alone (a normalised blur; None: everywhere), through :func:`soft_deadband`; the dark part
    (grooves) everywhere, the light part (a fold's lit sides) at most :data:`LIT_SHARE` of the depth, beyond twice
    the dead band, of the deepest groove on the skin near it (:func:`groove_depth_near`; the dark rim the blur
    leaves beside a lone highlight is shallower than that, so the highlight is not taken). ``prefilter`` > 0: the
    luma is blurred first, by that x the face height (what is finer is no fold: stubble, pores). -> (B, 1, H, W).
    (Linearising the luma, one channel, instead of taking the luminance of the linearised colour: a third of the
    cost, and on skin the two ratios agree.)"""
    lum = log_luma(crops, face_heights, prefilter)
    skin = None if skin is None else skin.to(lum)
    x = soft_deadband(lum - skin_reference(lum, skin, (sigma * face_heights.to(lum)).clamp(min=0.5)), deadband)
    return creases_of(x, skin, face_heights, deadband, near)


def log_luma(crops: Tensor, face_heights: Tensor, prefilter: float = 0.0) -> Tensor:
    """:func:`crease_layer`'s log luma of the crops (B, 3, H, W), blurred first by ``prefilter`` x each face
    height (B,) when above 0 -> (B, 1, H, W)."""
    rgb = crops.clamp(0.0, 1.0)
    luma = 0.2126 * rgb[:, :1] + 0.7152 * rgb[:, 1:2] + 0.0722 * rgb[:, 2:3]
    if prefilter > 0:
        luma = gaussian_blur(luma, (prefilter * face_heights.to(luma)).clamp(min=0.5))
    return srgb_to_linear(luma).clamp(min=1e-4).log()


def skin_reference(lum: Tensor, skin: Tensor | None, blur: Tensor) -> Tensor:
    """The log luma (B, 1, H, W) blurred by ``blur`` (B,) pixels over the ``skin`` (B, 1, H, W) alone (a
    normalised blur; None: everywhere): what :func:`crease_layer` measures the creases against."""
    if skin is None:
        return gaussian_blur(lum, blur)
    return gaussian_blur(lum * skin, blur) / gaussian_blur(skin, blur).clamp(min=1e-3)


def creases_of(x: Tensor, skin: Tensor | None, face_heights: Tensor, deadband: float = CREASE_DEADBAND,
               near: float = CREASE_NEAR) -> Tensor:
    """:func:`crease_layer` from the dead-banded departure ``x`` (B, 1, H, W) of the log luma from its skin
    reference: the dark part everywhere, the light part up to :data:`LIT_SHARE` of the grooves' depth near it."""
    dark = x.clamp(max=0.0)
    depth = (-dark - 2.0 * deadband).clamp(min=0.0)  # grooves: darker than twice the dead band
    depth = depth if skin is None else depth * skin
    return dark + torch.minimum(x.clamp(min=0.0), LIT_SHARE * groove_depth_near(depth, face_heights, near))


def apply_creases(face: Tensor, layer: Tensor, weight: Tensor) -> Tensor:
    """The relit face (linear light) with the plate's creases multiplied in: ``face x exp(layer x weight)``.
    Where ``weight`` is 0 the face is returned exactly."""
    return torch.where(weight > 0, face * torch.exp(layer * weight), face)


def take_creases(face: Tensor, crops: Tensor, weight: Tensor, face_heights: Tensor, landmarks: Tensor,
                 loops: Sequence[Tensor], sigma: float = CREASE_SIGMA, deadband: float = CREASE_DEADBAND,
                 prefilter: float = 0.0) -> Tensor:
    """The relit face (linear) with the crops' creases (:func:`crease_layer`, over the skin off the plate's own
    brows and eyes: :func:`plate_features` of ``landmarks`` (B, V, 2+) and ``loops``) multiplied in by ``weight``
    times that skin softened by :data:`FEATURE_SOFT`, frame by frame only over the box of pixels where its
    ``weight`` is above 0 (the forehead: the conversions, the blur and the fill of whole crops cost as much as the
    render). Each step runs on that box grown by the reach of the steps after it (:func:`crease_reaches`: the
    features' fill widest, then the luma, the reference blur, the grooves' growth), so the result is the
    whole-crop one; and each frame's depends on that frame alone, as farm chunks need. face (B, 3, H, W) linear,
    crops (B, 3, H, W) sRGB at the face's pixels; weight (B, 1, H, W); face_heights (B,) and landmarks in those
    pixels -> ``face``, written in place (a precaution: a copy, made only when some frame takes creases, would
    give the render's later steps another memory layout depending on the batch's make-up, and vectorised kernels
    may round the last bit by layout; no difference was measured)."""
    H, W = weight.shape[-2:]
    on = weight[:, 0] > 0
    rows_on, cols_on = on.any(2), on.any(1)  # (B, H), (B, W)
    for b in range(face.shape[0]):
        rows, cols = torch.nonzero(rows_on[b])[:, 0], torch.nonzero(cols_on[b])[:, 0]
        if rows.numel() == 0:
            continue
        height = face_heights[b:b + 1].float()
        inner = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
        reach = crease_reaches(float(height), sigma, prefilter)
        box = partial(_grown, inner, (H, W))  # each step's box: the inner one grown by what reads it after
        groove = box(reach.groove)  # the dead-banded departure, read by the grooves' growth and softening
        ref = box(reach.groove + reach.reference)  # the log luma and the skin, read by the reference blur
        luma = box(reach.groove + reach.reference + reach.prefilter)  # the crops, read by the prefilter
        fade_box = box(reach.fade)  # the skin, read by the fade's blur
        feat = box(max(reach.groove + reach.reference, reach.fade) + reach.features)  # the features' fill
        shifted = torch.cat([landmarks[b:b + 1, :, :1] - feat[2], landmarks[b:b + 1, :, 1:2] - feat[0]], -1)
        skin = 1.0 - plate_features(shifted, loops, (feat[1] - feat[0], feat[3] - feat[2]), height)
        lum = _cut(log_luma(crops[b:b + 1, :, luma[0]:luma[1], luma[2]:luma[3]], height, prefilter), luma, ref)
        skin_ref = _cut(skin, feat, ref)
        reference = skin_reference(lum, skin_ref, (sigma * height).clamp(min=0.5))
        x = soft_deadband(_cut(lum, ref, groove) - _cut(reference, ref, groove), deadband)
        layer = _cut(creases_of(x, _cut(skin, feat, groove), height, deadband), groove, inner)
        soft = _cut(skin, feat, fade_box)
        fade = _cut(gaussian_blur(soft, max(FEATURE_SOFT * float(height), 0.5)) * soft, fade_box, inner)
        r0, r1, c0, c1 = inner
        face[b:b + 1, :, r0:r1, c0:c1] = apply_creases(face[b:b + 1, :, r0:r1, c0:c1], layer,
                                                       weight[b:b + 1, :, r0:r1, c0:c1] * fade)
    return face


@dataclass(frozen=True)
class CreaseReaches:
    """How far (pixels) each step of :func:`take_creases` reads around a pixel of its result, for one face height:
    the grooves' growth and softening (``groove``), the reference blur (``reference``), the folds' prefilter
    (``prefilter``), the plate features' growth (``features``) and the fade's blur (``fade``); each a step's
    truncation (a Gaussian of sigma ``s`` reads ``ceil(3 s)``, a growth of ``r`` reads ``round(r)``) and a pixel
    more."""

    groove: int
    reference: int
    prefilter: int
    features: int
    fade: int


def crease_reaches(height: float, sigma: float = CREASE_SIGMA, prefilter: float = 0.0) -> CreaseReaches:
    """:class:`CreaseReaches` for a face ``height`` px tall."""
    near = max(CREASE_NEAR * height, 1.0)
    return CreaseReaches(groove=int(math.ceil(near)) + _blur_reach(0.5 * near) + 1,
                         reference=_blur_reach(sigma * height) + 1,
                         prefilter=_blur_reach(prefilter * height) + 1 if prefilter > 0 else 0,
                         features=int(math.ceil(FEATURE_CLEAR * height)) + 1,
                         fade=_blur_reach(FEATURE_SOFT * height) + 1)


def _blur_reach(sigma: float) -> int:
    """The pixels a Gaussian blur of ``sigma`` (floored at 0.5, as the steps floor it) reads on each side."""
    return int(math.ceil(3.0 * max(sigma, 0.5)))


def _grown(inner: tuple[int, int, int, int], size: tuple[int, int], margin: int) -> tuple[int, int, int, int]:
    """The box ``inner`` (r0, r1, c0, c1) grown by ``margin`` on every side, clipped to the (H, W) ``size``."""
    r0, r1, c0, c1 = inner
    return max(r0 - margin, 0), min(r1 + margin, size[0]), max(c0 - margin, 0), min(c1 + margin, size[1])


def _cut(x: Tensor, box: tuple[int, int, int, int], part: tuple[int, int, int, int]) -> Tensor:
    """The ``part`` (r0, r1, c0, c1, crop pixels) of ``x`` (..., h, w), which covers ``box``."""
    return x[..., part[0] - box[0]:part[1] - box[0], part[2] - box[2]:part[3] - box[2]]


