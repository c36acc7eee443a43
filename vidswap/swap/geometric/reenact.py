"""Reenactment geometry: the source identity's shape driven by the target's pose and expression.

The decomposition (FaceVid2Vid / LivePortrait, shared with :mod:`vidswap.faces.pose`)::

    x_driven = s · R · (x_c(source) + δ(target)) + t        (column vectors, R: canonical -> crop)

with ``x_c`` an identity's neutral shape in the canonical frame (frontal, centred, unit RMS radius), ``δ`` the
target's expression offset in canonical units and ``s, R, t`` the target's pose mapping canonical units to
crop pixels. All functions are pure and batched over a leading dimension; shapes in docstrings.

Also here: several source photos combined into one identity (:func:`combine_sources`) and the "inner" mask of
eye and mouth openings (:func:`inner_mask`) that decides whose eyes and mouth interior are shown.
"""

from __future__ import annotations

import math
from typing import Iterable, Literal, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from vidswap.appearance.raster import fill_polygons, loop_outlines
from vidswap.composite.filters import dilate

__all__ = [
    "driven_geometry",
    "canonical_from_landmarks",
    "mix_shape",
    "robust_mean_shape",
    "combine_sources",
    "INNER_REGIONS",
    "inner_loops",
    "inner_mask",
    "hole_triangles",
]

ShapeMode = Literal["source", "target", "blend"]

#: region loops whose interiors are the eye openings and the mouth opening (names of MeshTopology.regions)
INNER_REGIONS: tuple[str, ...] = ("left_eye", "right_eye", "lips_inner")


def driven_geometry(source_canonical: Tensor, target_expression: Tensor | None, s: Tensor, R: Tensor,
                    t: Tensor) -> Tensor:
    """``s · R · (x_c + δ) + t``.

    Args:
        source_canonical: (B, V, 3) or (V, 3) identity shape in the canonical frame.
        target_expression: (B, V, 3) expression offsets δ in canonical units, or None for none.
        s: (B,) scale, canonical units -> pixels.
        R: (B, 3, 3) rotation, canonical -> crop (applied to column vectors).
        t: (B, 3) translation in pixels.

    Returns:
        (B, V, 3) driven landmarks in crop pixels (z in the same pixel scale).
    """
    x = source_canonical.to(R.dtype)
    if target_expression is not None:
        x = x + target_expression.to(R.dtype)
    if x.dim() == 2:
        x = x.expand(R.shape[0], -1, -1)
    return s.to(R.dtype)[:, None, None] * torch.einsum("bij,bvj->bvi", R, x) + t.to(R.dtype)[:, None, :]


def canonical_from_landmarks(landmarks: Tensor, s: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """Inverse of the pose: ``R^T (x - t) / s`` -> (B, V, 3) observed shape in the canonical frame (x_c + δ)."""
    x = landmarks.to(R.dtype) - t.to(R.dtype)[:, None, :]
    return torch.einsum("bji,bvj->bvi", R, x) / s.to(R.dtype)[:, None, None]


def mix_shape(src_c: Tensor, tgt_c: Tensor, mode: ShapeMode = "source", weight: float = 0.5) -> Tensor:
    """Whose face shape the swap has.

    Args:
        src_c: (..., V, 3) source identity shape (canonical frame).
        tgt_c: (..., V, 3) target identity shape (canonical frame); broadcast against ``src_c``.
        mode: ``source`` (the source's shape), ``target`` (keep the plate actor's shape, swap only the
            appearance: the most robust), ``blend`` (``weight`` of the source shape, ``1 - weight`` of the target).
        weight: source weight in [0, 1] for ``blend`` (the config's ``swap.shape_weight``).

    Returns:
        The mixed shape, broadcast shape of the inputs.
    """
    if mode == "source":
        return torch.broadcast_tensors(src_c, tgt_c)[0].clone()
    if mode == "target":
        return torch.broadcast_tensors(tgt_c, src_c)[0].clone()
    if mode == "blend":
        w = float(min(max(weight, 0.0), 1.0))
        return tgt_c + w * (src_c - tgt_c)
    raise ValueError(f"shape mode must be source, target or blend, got {mode!r}")


def robust_mean_shape(canonicals: Tensor, weights: Tensor | None = None, iters: int = 5) -> Tensor:
    """Outlier-resistant weighted mean of K shapes (K, V, 3) -> (V, 3).

    Iteratively reweighted: each shape's weight is its prior weight times a Cauchy weight on its RMS distance to
    the current mean, scaled by 2x the median distance; with K <= 2 it is the plain weighted mean. Shapes with
    non-finite points get weight 0.
    """
    K = canonicals.shape[0]
    x = canonicals.to(torch.float32)
    finite = torch.isfinite(x).flatten(1).all(1)
    prior = torch.ones(K, device=x.device) if weights is None else weights.to(x.device, torch.float32).clamp(min=0)
    prior = prior * finite
    if float(prior.sum()) <= 0:
        raise ValueError("robust_mean_shape: no usable shape (all weights zero or non-finite)")
    x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    w = prior
    mean = (w[:, None, None] * x).sum(0) / w.sum()
    if int((prior > 0).sum()) <= 2:
        return mean
    for _ in range(iters):
        r = ((x - mean) ** 2).sum(-1).mean(-1).sqrt()  # (K,)
        scale = 2.0 * r[prior > 0].median().clamp(min=1e-6)
        w = prior / (1.0 + (r / scale) ** 2)
        mean = (w[:, None, None] * x).sum(0) / w.sum()
    return mean


def combine_sources(
    canonicals: Tensor,
    yaws: Tensor | Sequence[float],
    pitches: Tensor | Sequence[float],
    expr_energy: Tensor | Sequence[float] | None = None,
    *,
    angle_scale: float = 15.0,
    expr_scale: float = 0.05,
) -> tuple[Tensor, int]:
    """Several photos of the source actor -> one shape and the photo to take the texture from.

    The shape is a robust mean of the K canonical shapes (:func:`robust_mean_shape`), weighted toward frontal
    photos (``cos(yaw) · cos(pitch)``, floored at 0.05: their depth is measured best). The texture photo is the
    one with the lowest ``hypot(yaw, pitch) / angle_scale + sqrt(expr_energy) / expr_scale``: the most frontal
    and most neutral one.

    Args:
        canonicals: (K, V, 3) shapes in the canonical frame (unit RMS radius), e.g. ``Pose.x_c_obs``.
        yaws, pitches: (K,) degrees (:mod:`vidswap.faces.pose` convention).
        expr_energy: (K,) mean squared expression displacement in canonical units
            (:func:`vidswap.faces.pose.expression_energy`), or None to rank by pose only.
        angle_scale: degrees of head turn that count as much as ``expr_scale`` of RMS expression displacement.
        expr_scale: RMS expression displacement (canonical units, i.e. fraction of the face's RMS radius).

    Returns:
        x_c: (V, 3) combined shape; best_index: the texture photo.
    """
    K = canonicals.shape[0]
    device = canonicals.device
    yaw = torch.as_tensor(yaws, dtype=torch.float32, device=device).reshape(K)
    pitch = torch.as_tensor(pitches, dtype=torch.float32, device=device).reshape(K)
    energy = torch.zeros(K, device=device) if expr_energy is None else \
        torch.as_tensor(expr_energy, dtype=torch.float32, device=device).reshape(K).clamp(min=0)
    frontal = (torch.cos(torch.deg2rad(yaw)) * torch.cos(torch.deg2rad(pitch))).clamp(min=0.05)
    x_c = robust_mean_shape(canonicals, frontal)
    score = torch.hypot(yaw, pitch) / angle_scale + energy.sqrt() / expr_scale
    finite = torch.isfinite(canonicals.flatten(1)).all(1) & torch.isfinite(score)
    score = torch.where(finite, score, torch.full_like(score, math.inf))
    return x_c, int(torch.argmin(score))


def inner_loops(regions: Mapping[str, Iterable[int]], names: Sequence[str] = INNER_REGIONS,
                device: torch.device | str | None = None) -> list[Tensor]:
    """The index loops of the inner regions (default: both eye openings and the mouth opening)."""
    missing = [n for n in names if n not in regions]
    if missing:
        raise KeyError(f"topology has no region(s) {missing}")
    return [torch.as_tensor(regions[n], dtype=torch.long, device=device).reshape(-1) for n in names]


def hole_triangles(loops: Sequence[Tensor | Sequence[int]]) -> Tensor:
    """Fan triangles (from each loop's first point) that close the given loops: (sum(L_i - 2), 3) int64.

    Use to render the source's own eyes and mouth interior (``inner: source``) on a mesh with holes there.
    """
    fans = []
    for loop in loops:
        loop = torch.as_tensor(loop, dtype=torch.long).reshape(-1).cpu()
        k = torch.arange(1, loop.numel() - 1)
        if k.numel():
            fans.append(torch.stack([loop[0].expand_as(k), loop[k], loop[k + 1]], 1))
    return torch.cat(fans, 0) if fans else torch.zeros(0, 3, dtype=torch.long)


def inner_mask(
    landmarks: Tensor,
    loops: Sequence[Tensor | Sequence[int]],
    size: tuple[int, int],
    *,
    grow: float = 1.0,
    feather: float = 1.0,
    outline: bool = False,
) -> Tensor:
    """Soft mask of the inside of the given landmark loops (eye and mouth openings).

    Used to cut holes in the render alpha so that the plate's own eyes and mouth interior (blinks, gaze,
    teeth, tongue) show through (``inner: target``).

    Args:
        landmarks: (B, N, 2+) points in the crop's pixels.
        loops: index loops (e.g. :func:`inner_loops`).
        size: (H, W) of the crop.
        grow: dilation in pixels (covers lash lines and the lip edge).
        feather: softening radius in pixels (two box filters, about a Gaussian of sigma 1.15 x feather;
            0 = hard).
        outline: also the loops' own lines (:func:`~vidswap.appearance.raster.loop_outlines`), grown one pixel
            less than the polygons. A loop that encloses few or no pixel centres -- a closed mouth or eye, its
            contour collapsed to a line -- then cuts a hole all along its line, where the fill alone cuts one only
            where the contour parts by a pixel: at a closed mouth's corners, whose plate lip corners showed as two
            dark blobs at the ends of the render's lips. Where a loop is open, each of its line's pixels lies
            within a pixel of its fill, so with any growth (``grow`` or ``feather`` > 0) the grown line lies
            inside the grown fill: the same mask.

    Returns:
        (B, 1, H, W) float32 in [0, 1]: exactly 1 on the polygons grown by ``grow`` px, falling to 0 over the
        next ``4 * feather`` px (0.5 at ``grow + 2 * feather`` px outside the outline).
    """
    hard = fill_polygons(landmarks, loops, size)[:, None].float()
    rf = max(1, int(round(feather))) if feather > 0 else 0
    r = int(math.ceil(max(grow, 0.0))) + 2 * rf  # the soft ramp lies outside the grown polygons
    if r > 0:  # a (2r+1)^2 square (composite.filters: OpenCV on CPU tensors, the same values elsewhere)
        hard = dilate(hard, r, shape="square")
    if outline:
        line = loop_outlines(landmarks, loops, size)[:, None].float()
        hard = torch.maximum(hard, dilate(line, r - 1, shape="square") if r > 1 else line)
    if not rf:
        return hard
    # two box filters: a cheap near-Gaussian softening (sigma ~ 1.15 * feather). Both passes are sums of whole
    # numbers (exact in float32 in any order), divided once: exactly 0 and 1 where the box sees none or all
    opencv = hard.device.type == "cpu"
    sums = _box_sum_opencv(_box_sum_opencv(hard, rf), rf) if opencv else _box_sum(_box_sum(hard, rf), rf)
    return sums / float((2 * rf + 1) ** 4)


# box sums by shifted slices (any device; pooling kernels are slow on CPU), and OpenCV's on CPU tensors: the same
# values, 5-20x faster at a 1024-px crop

def _box_sum(x: Tensor, r: int) -> Tensor:
    """(2r+1)^2 box sum of (B, 1, H, W), zeros outside the image."""
    row = x.clone()
    for k in range(1, r + 1):
        row[..., k:] += x[..., :-k]
        row[..., :-k] += x[..., k:]
    out = row.clone()
    for k in range(1, r + 1):
        out[..., k:, :] += row[..., :-k, :]
        out[..., :-k, :] += row[..., k:, :]
    return out


def _box_sum_opencv(x: Tensor, r: int) -> Tensor:
    """:func:`_box_sum` of a float32 CPU tensor by ``cv2.boxFilter`` (unnormalised, zeros outside); the same values
    where the sums are whole numbers below 2^24, as :func:`inner_mask`'s are."""
    planes = x.contiguous().numpy()
    k = 2 * r + 1
    out = np.stack([cv2.boxFilter(p, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)
                    for p in planes.reshape(-1, *planes.shape[-2:])])
    return torch.from_numpy(out.reshape(planes.shape))
