"""The source's lightness contrast kept around the face's central features: where, and in which band.

The Reinhard colour match (:mod:`~vidswap.composite.colour`) scales the render's L* spread to the plate's skin. On
a relit render of a source with more detail than the plate (creases, glasses rims, wrinkles) that gain is well
below 1 (about 0.7 on grace_hopper), and it flattens what the ArcFace judge recognises the source by
(RESULTS.md, skintone-s9). Measured on grace_hopper (RESULTS.md, relgrace-s10), that identity is not in the
central features: keeping the L* contrast inside an ellipse over the eyes, brows, nose and mouth gains no ArcFace
and raises the judge's landmark jitter, while keeping it on the rest of the face (forehead, temples, cheeks, jaw)
gains it; and it sits in the fine band (a base blurred by 1 % of the face size keeps most of it, 2.5 % none).

So the colour match's L* gain is moved towards 1, by a fraction, with a weight that is 0 over the ellipse of the
central landmarks (:func:`ellipse_weight`), 0 along the paste boundary (the face outline eroded and feathered, as
the paste alpha is), 1 between; and only on the render's lightness blurred by a small fraction of the face size
(:func:`contrast_base`), so the finest detail, which costs flicker and gives the judge nothing, stays matched.
Everything is a pure function of the frame's landmarks and render, so every frame's result depends only on the
analysis and that frame (farm chunks stay bit-identical).

Shapes: landmarks ``(B, N, 2 or 3)`` pixels (x right, y down, pixel centres at integers); weights
``(B, 1, H, W)`` in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vidswap.composite.filters import below, gaussian_blur, smoothstep, support_window
from vidswap.composite.masks import feather_mask

__all__ = ["KeepContrastParams", "INNER_REGIONS", "inner_indices", "ellipse_weight", "keep_contrast_weight",
           "weight_step", "contrast_base"]

#: Topology regions whose landmarks the central-feature ellipse is fitted to.
INNER_REGIONS = ("left_eye", "right_eye", "left_brow", "right_brow", "nose", "lips_outer")


@dataclass(frozen=True)
class KeepContrastParams:
    """Settings of the kept L* contrast.

    Attributes:
        strength: fraction of the colour match's L* gain undone where the weight is 1 (0: off, 1: the source's
            own L* contrast in the kept band there).
        inner: Mahalanobis radius (in standard deviations of the central landmarks) up to which the central
            ellipse is excluded entirely.
        outer: radius from which the weight is full (smoothstep between). Points spread evenly over an
            ellipse's area sit within radius 2, so 2 is about the hull of the eyes, brows and lips.
        erosion, feather: the boundary taper, as :func:`~vidswap.composite.masks.feather_mask` of the face
            outline (fractions of the face size): 0 up to ``erosion + feather / 2`` inside the outline, 1 from
            ``erosion + feather`` (the default paste alpha is 1 from 0.08).
        band: sigma of the Gaussian that gives the lightness the kept gain acts on (fraction of the face size).
        min_ramp, max_step: the weight is smooth, so it is computed on the face mask box-filtered down by an integer
            step (at most ``max_step``; the largest at which the taper's ramp still spans ``min_ramp`` pixels) and
            upsampled bilinearly (:func:`weight_step`); ``max_step`` 1: at the face's own pixels.
    """

    strength: float = 0.0
    inner: float = 1.0
    outer: float = 2.0
    erosion: float = 0.04
    feather: float = 0.08
    band: float = 0.01
    min_ramp: float = 10.0
    max_step: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        if not 0.0 <= self.inner < self.outer:
            raise ValueError(f"need 0 <= inner < outer, got inner {self.inner}, outer {self.outer}")
        if min(self.erosion, self.feather, self.band) < 0.0:
            raise ValueError("erosion, feather and band must be >= 0")
        if self.max_step < 1 or self.min_ramp <= 0.0:
            raise ValueError(f"need max_step >= 1 and min_ramp > 0, got {self.max_step}, {self.min_ramp}")


def inner_indices(regions: Mapping[str, np.ndarray], names: Sequence[str] = INNER_REGIONS) -> np.ndarray:
    """The sorted distinct landmark indices of the ``names`` loops of ``regions`` (``MeshTopology.regions``)."""
    return np.unique(np.concatenate([np.asarray(regions[n], dtype=np.int64).reshape(-1) for n in names]))


def ellipse_weight(points: Tensor, size: tuple[int, int], inner: float, outer: float,
                   origin: tuple[int, int] = (0, 0)) -> Tensor:
    """A smooth weight over the ellipse of a point set's mean and covariance.

    With ``d`` a pixel centre's Mahalanobis distance to the points' mean under their (population) covariance,
    the weight is 1 for ``d <= inner``, 0 for ``d >= outer`` and ``1 - smoothstep`` in between
    (``t = (d - inner) / (outer - inner)``, weight ``1 - t² (3 - 2 t)``).

    Args:
        points: ``(B, K, 2)`` x, y in pixels, K >= 3, not all on one line.
        size: ``(H, W)`` of the weight.
        inner, outer: radii, ``0 <= inner < outer``.
        origin: ``(row, column)`` of the weight's top-left pixel in the points' pixels (a window of a larger
            image: the values there, bit for bit).

    Returns:
        ``(B, 1, H, W)`` float32 in [0, 1].
    """
    p = points[..., :2].to(torch.float64)
    mean = p.mean(dim=1)  # (B, 2)
    c = p - mean[:, None]
    cov = c.transpose(1, 2) @ c / p.shape[1]  # (B, 2, 2)
    prec = torch.linalg.inv(cov + 1e-9 * torch.eye(2, dtype=p.dtype, device=p.device))
    h, w = size
    ys = torch.arange(origin[0], origin[0] + h, dtype=p.dtype, device=p.device)
    xs = torch.arange(origin[1], origin[1] + w, dtype=p.dtype, device=p.device)
    dx = xs[None, None, :] - mean[:, 0, None, None]  # (B, 1, W)
    dy = ys[None, :, None] - mean[:, 1, None, None]  # (B, H, 1)
    a, b, d = prec[:, 0, 0, None, None], prec[:, 0, 1, None, None], prec[:, 1, 1, None, None]
    dist = (a * dx * dx + 2.0 * b * dx * dy + d * dy * dy).clamp(min=0.0).sqrt()  # (B, H, W)
    return (1.0 - smoothstep((dist - inner) / (outer - inner))).to(torch.float32)[:, None].to(points.device)


def keep_contrast_weight(landmarks: Tensor, regions: Mapping[str, np.ndarray], face: Tensor, face_size: Tensor,
                         params: KeepContrastParams) -> Tensor:
    """Where the colour match's L* gain is moved towards 1: ``strength * (1 - ellipse) * taper``.

    The ellipse is evaluated only over each face's taper's support (elsewhere the weight is 0 whatever it is). Both
    are smooth: each face's weight is computed on its mask box-filtered down by :func:`weight_step` (landmarks and
    face size scaled with it) and upsampled bilinearly (pixel centres aligned), within a few thousandths of the
    weight at the face's own pixels.

    Args:
        landmarks: ``(B, N, 2 or 3)`` the target's landmarks in the pixels of ``face``.
        regions: ``MeshTopology.regions`` (the ellipse is fitted to :data:`INNER_REGIONS`' landmarks).
        face: ``(B, 1, H, W)`` the face outline's mask.
        face_size: ``(B,)`` face sizes in pixels.

    Returns:
        ``(B, 1, H, W)`` in ``[0, strength]``.
    """
    idx = torch.as_tensor(inner_indices(regions), device=landmarks.device)
    steps = [weight_step(float(v), params) for v in face_size.reshape(-1).tolist()]
    out = None if len(set(steps)) == 1 else torch.zeros_like(face)
    for step in sorted(set(steps)):  # a face's step depends on that face alone (farm chunks == single pass)
        items = [i for i, v in enumerate(steps) if v == step]
        pts, fs = landmarks[items][:, idx, :2], face_size[items]
        if step > 1:
            pts, fs = (pts + 0.5) / step - 0.5, fs / step
        weight = below(face[items], step, lambda f, pts=pts, fs=fs: _weight(pts, f, fs, params))
        if out is None:
            return weight
        out[items] = weight
    return out


def weight_step(face_size: float, params: KeepContrastParams) -> int:
    """The factor (1 to :attr:`KeepContrastParams.max_step`) by which :func:`keep_contrast_weight` of a face of
    ``face_size`` pixels is computed below its pixels: the largest at which the taper's ramp (``feather`` x the
    face size) still spans :attr:`KeepContrastParams.min_ramp` pixels."""
    return int(max(1, min(params.max_step, math.floor(params.feather * face_size / max(params.min_ramp, 1e-6)))))


def _weight(points: Tensor, face: Tensor, face_size: Tensor, params: KeepContrastParams) -> Tensor:
    """:func:`keep_contrast_weight` at the faces' own pixels (``points (B, K, 2)`` the central landmarks, ``face
    (B, 1, H, W)``, ``face_size (B,)``)."""
    taper = feather_mask(face, face_size, params.erosion, params.feather)
    out = torch.zeros_like(taper)
    for i in range(face.shape[0]):
        win = support_window(taper[i:i + 1], 0)
        if win is None:
            continue
        rows, cols = win
        central = ellipse_weight(points[i:i + 1], (rows.stop - rows.start, cols.stop - cols.start), params.inner,
                                 params.outer, origin=(rows.start, cols.start))
        out[i:i + 1, :, rows, cols] = (1.0 - central.to(face)) * taper[i:i + 1, :, rows, cols] * params.strength
    return out


def contrast_base(lightness: Tensor, face_size: Tensor, band: float) -> Tensor:
    """``(B, 1, H, W)`` lightness blurred by a Gaussian of sigma ``band * face_size`` (``(B,)`` pixels; truncated
    at 3 sigma, replicated border): the part of the lightness whose contrast is kept."""
    return gaussian_blur(lightness, face_size * band) if band > 0 else lightness
