"""The plate's sensor noise or film grain on a tracked face, told from texture by how it changes over time.

A swapped face is clean; on a noisy plate it reads as a smooth patch (:mod:`vidswap.composite.grain` re-applies
grain). Measured on one frame, a high-pass residual cannot tell grain from pores, stubble, hair or a codec's
blocks: all are fine detail. Over time they differ: texture moves with the picture, noise is new in every frame.
So the analyze pass reads, on the faces of every 5th frame or so, the high-pass residual of the frame minus the
previous frame moved onto it (DIS optical flow, each pixel taken from its nearest source pixel so the noise is not
interpolated away): for independent noise fields that difference is ``sqrt(2)`` times the noise, with the same
spatial and cross-channel correlation, while texture cancels up to the flow's error.

It is read on the plate's face itself, inside its oval, on the flatter half of it (the pixels whose smoothed
gradient is at most the median: cheeks, forehead; not the eyes, brows, nostrils or lips, where the flow's error
and expression leave residual of their own): that is where the swapped face goes, at its brightness (noise depends
on the signal, and clips in the blacks) and under the codec's treatment of it. A ring around the face reads
background and hair instead: on carphone_clip, whose window scenery moves past, a ring read 3.7 levels where its
face reads 1.4.

Whether that residual *is* grain is told by its *share*: the frame-to-frame residual over the frame's own residual
on the same pixels (which holds the skin's texture and the noise alike): near 1 where the fine detail is noise,
well under 1 where it is texture. ``composite.grain: auto`` decides by it (:func:`~vidswap.composite.grain.
track_grain`). Readings (RESULTS.md lead s33): noisy versions of pexels_clip and single_face_clip 0.86-1.17; the
registry clips 0.22-0.44 (carphone_clip 0.42). A face whose skin shows strong fine texture at the plate's resolution
under weak noise reads a low share too (it gets no grain at ``auto``).

Each face gives one row of :data:`NOISE_FIELDS`; :func:`track_noise` takes a track's median.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vidswap.composite.convert import to_float
from vidswap.composite.grain import TRACK_FIELDS, grain_from_residual, highpass, residual_statistics
from vidswap.faces.align import face_height

__all__ = ["NOISE_FIELDS", "face_noise", "track_noise"]

#: one face's noise reading on its flat pixels: the frame-to-frame residual's robust std (r, g, b), cross-channel
#: correlations (rg, rb, gb) and lag-1 autocorrelation, and the frame's own residual's robust std (mean over the
#: channels: the still detail); stds in plate units of full scale
NOISE_FIELDS = ("std_r", "std_g", "std_b", "corr_rg", "corr_rb", "corr_gb", "rho", "still")
#: the face's pixels read: inside the oval by more than this many face heights (clear of its outline) ...
INSET = 0.08
#: ... whose gradient, after a Gaussian of FLAT_SIGMA pixels (wider than the noise's own scale, so the noise does
#: not pick its own pixels), is at most the FLAT_QUANTILE of the face's
FLAT_SIGMA, FLAT_QUANTILE = 3.0, 0.5
#: a face is read only when the previous frame's nearest face is within this many face heights (else: a cut, or
#: another face), and from at least MIN_PIXELS pixels
MAX_STEP, MIN_PIXELS = 0.5, 256
#: a big face is read in the square of this side around its centre (the cost follows a fixed number of pixels)
MAX_SIDE = 384
HIGHPASS_SIGMA = 1.5  # as :class:`~vidswap.composite.grain.GrainParams`


def _box(oval_points: np.ndarray, step: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the oval's box grown by the face's ``step`` and the high-pass's reach, at most
    :data:`MAX_SIDE` a side around its centre, inside the frame."""
    h, w = shape[:2]
    pad = abs(step) + 3 * HIGHPASS_SIGMA + 2
    lo, hi = oval_points.min(0) - pad, oval_points.max(0) + pad
    centre, half = 0.5 * (lo + hi), np.minimum(0.5 * (hi - lo), MAX_SIDE / 2)
    x0, y0 = (max(0, int(np.floor(v))) for v in centre - half)
    x1, y1 = int(min(w, np.ceil(centre[0] + half[0]))), int(min(h, np.ceil(centre[1] + half[1])))
    return x0, y0, x1, y1


def face_noise(previous: np.ndarray, current: np.ndarray, points: np.ndarray, oval: np.ndarray,
               step: float, flow: cv2.DISOpticalFlow | None = None) -> np.ndarray:
    """One face's noise reading (:data:`NOISE_FIELDS`; NaN where it cannot be read).

    Args:
        previous, current: HxWx3 consecutive analysed frames at the plate's resolution (uint8, uint16 or float).
        points: (P, 2+) the face's landmarks in ``current``'s pixels (P >= 468: its height is the mesh's).
        oval: the face oval's landmark index loop.
        step: how far (pixels) the face moved since ``previous`` (the box is grown by it).
        flow: a DIS optical flow object to reuse (one is made when None).
    """
    out = np.full(len(NOISE_FIELDS), np.nan, np.float32)
    pts = np.asarray(points, np.float32)
    height = float(face_height(torch.from_numpy(np.ascontiguousarray(pts[None])))[0])
    x0, y0, x1, y1 = _box(pts[oval, :2], step, current.shape)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return out
    planes = to_float(np.stack([current[y0:y1, x0:x1], previous[y0:y1, x0:x1]]))  # (2, 3, h, w), full scale 1
    grey = [cv2.cvtColor(np.clip(p.permute(1, 2, 0).numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8),
                         cv2.COLOR_RGB2GRAY) for p in planes]
    dis = flow if flow is not None else cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    f = dis.calc(grey[0], grey[1], None)  # current pixel -> where it was in previous
    gy, gx = np.mgrid[0:y1 - y0, 0:x1 - x0]
    sx, sy = np.rint(gx + f[..., 0]).astype(np.int64), np.rint(gy + f[..., 1]).astype(np.int64)
    inside_box = (sx >= 0) & (sx < x1 - x0) & (sy >= 0) & (sy < y1 - y0)
    r = highpass(planes, HIGHPASS_SIGMA)
    d = (r[0] - r[1][:, np.clip(sy, 0, y1 - y0 - 1), np.clip(sx, 0, x1 - x0 - 1)]) / np.sqrt(2.0)
    face = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(face, [np.round(pts[oval, :2] - (x0, y0)).astype(np.int32)], 1)
    region = (cv2.distanceTransform(face, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) > INSET * height) & inside_box
    margin = int(np.ceil(3 * HIGHPASS_SIGMA))
    region[:margin], region[-margin:], region[:, :margin], region[:, -margin:] = False, False, False, False
    if region.sum() < 2 * MIN_PIXELS:
        return out
    smooth = cv2.GaussianBlur(grey[0].astype(np.float32), (0, 0), FLAT_SIGMA)
    gradient = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    flat = torch.from_numpy(region & (gradient <= np.quantile(gradient[region], FLAT_QUANTILE)))[None, None].float()
    std, corr, rho, _ = residual_statistics(d[None], flat)
    still = residual_statistics(r[:1], flat)[0].mean()
    c = corr[0]
    out[:] = [*std[0].tolist(), float(c[0, 1]), float(c[0, 2]), float(c[1, 2]), float(rho[0]), float(still)]
    return out


def track_noise(rows: np.ndarray, min_faces: int = 4) -> dict[str, np.ndarray]:
    """A track's grain from its faces' readings ``rows (N, len(NOISE_FIELDS))`` (NaN rows skipped): the median of
    each field; the std and blur sigma of the grain whose residual that is
    (:func:`~vidswap.composite.grain.grain_from_residual`); its grain share (the median residual std, mean over the
    channels, over the median still detail). All NaN with fewer than ``min_faces`` readings.

    Returns:
        {"grain_std": (3,) full-scale units, "grain_corr": (3,) rg, rb, gb, "grain_sigma": (1,) pixels,
        "grain_share": (1,)} float32.
    """
    rows = np.asarray(rows, np.float32).reshape(-1, len(NOISE_FIELDS))
    rows = rows[np.isfinite(rows).all(axis=1)]
    if len(rows) < min_faces:
        return {k: np.full(n, np.nan, np.float32) for k, n in TRACK_FIELDS.items()}
    m = np.median(rows, axis=0)
    corr = torch.eye(3)
    for (i, j), v in zip(((0, 1), (0, 2), (1, 2)), m[3:6]):
        corr[i, j] = corr[j, i] = float(v)
    grain = grain_from_residual(torch.from_numpy(m[None, :3].copy()), corr[None], torch.tensor([float(m[6])]),
                                torch.ones(1, dtype=torch.bool), HIGHPASS_SIGMA)
    return {"grain_std": grain.std[0].numpy().astype(np.float32), "grain_corr": m[3:6].astype(np.float32),
            "grain_sigma": grain.sigma.numpy().astype(np.float32).reshape(1),
            "grain_share": np.asarray([float(m[:3].mean()) / max(float(m[7]), 1e-12)], np.float32)}
