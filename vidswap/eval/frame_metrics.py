"""Evaluation measures over frames: pure functions over arrays (no models, no files), each with an exact test.

Conventions as in :mod:`vidswap.eval.metrics` (images HxWx3 or HxW, uint8 / uint16 / float in [0, 1], intensity
measures in 8-bit levels; masks HxW bool or float, > 0.5 = inside).

* temporal -- :func:`dis_flow`, :func:`warp_with_flow`, :func:`flicker_error`, :func:`temporal_noise`,
  :func:`ratio_summary`, :func:`jitter_ratio`, :func:`landmark_acceleration`, :func:`flow_miss`;
* image quality -- :func:`laplacian_energy`, :func:`sharpness_ratio`, :func:`boundary_ring`,
  :func:`gradient_magnitude`, :func:`change_mask`, :func:`seam_ratio`, :func:`boundary_step`,
  :func:`boundary_arc_steps`, :func:`boundary_tone_offset`.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from vidswap.eval.metrics import face_size
from vidswap.faces.smooth_measures import jitter


# --------------------------------------------------------------------------------------------------------------
# temporal


def _as_float(image: np.ndarray) -> np.ndarray:
    """Image -> float32 in 8-bit levels (0-255)."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a.astype(np.float32)
    if a.dtype == np.uint16:
        return a.astype(np.float32) * np.float32(255.0 / 65535.0)
    return a.astype(np.float32) * np.float32(255.0)


def _gray(image: np.ndarray) -> np.ndarray:
    """Image -> float32 luma (Rec. 601 weights, RGB order) in 8-bit levels."""
    f = _as_float(image)
    if f.ndim == 2:
        return f
    return f[..., 0] * np.float32(0.299) + f[..., 1] * np.float32(0.587) + f[..., 2] * np.float32(0.114)


def _mask(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    return m if m.dtype == bool else m > 0.5


def dis_flow(prev: np.ndarray, cur: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
             max_side: int | None = 320) -> np.ndarray:
    """Dense optical flow (OpenCV DIS) from ``cur`` back to ``prev``: (H, W, 2) float32 with
    ``cur(p) ≈ prev(p + flow(p))``. Inputs are images of the same size (any dtype / channels).

    Images larger than ``max_side`` are measured at that size (INTER_AREA) and the flow scaled back up: a face
    region moves mostly rigidly, and this keeps the cost flat from SD to 4K (None: full size).
    """
    a = np.clip(_gray(cur) + 0.5, 0, 255).astype(np.uint8)
    b = np.clip(_gray(prev) + 0.5, 0, 255).astype(np.uint8)
    h, w = a.shape
    k = 1.0 if max_side is None else min(1.0, max_side / max(h, w))
    if k < 1.0:
        size = (max(8, round(w * k)), max(8, round(h * k)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    flow = cv2.DISOpticalFlow_create(preset).calc(a, b, None)
    if k < 1.0:
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= np.float32(w / a.shape[1])
        flow[..., 1] *= np.float32(h / a.shape[0])
    return flow


def warp_with_flow(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Warp ``image`` (the previous frame) onto the current frame with a :func:`dis_flow` field (float32, 8-bit
    levels; bilinear, borders replicated)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(_as_float(image), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def flicker_error(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """Motion-compensated temporal change inside a mask: mean |cur - warp(prev)| over the mask's pixels and
    channels, in 8-bit levels. ``flow`` comes from the *target* frames (:func:`dis_flow`), so a result and
    its target are compensated by the same motion. NaN for an empty mask."""
    m = _mask(mask)
    if not m.any():
        return float("nan")
    diff = np.abs(_as_float(cur) - warp_with_flow(prev, flow))
    return float(diff[m].mean())


def temporal_noise(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray, mask: np.ndarray,
                   highpass_sigma: float = 1.5) -> float:
    """The frame-to-frame noise (grain) inside a mask, in 8-bit levels: the robust std (1.4826 MAD, mean over the
    channels) of the high-pass residual (``image - gaussian(image, highpass_sigma)``) of ``cur`` minus ``prev``'s
    moved by ``flow`` (:func:`dis_flow`; each pixel from its nearest source pixel, so the noise is not interpolated
    away), over sqrt 2, on the mask's flatter half (the pixels whose gradient after a 3-pixel Gaussian is at most the
    mask's median), where the flow's error leaves little of the picture's own detail. Independent noise of std s
    in both frames reads about s times the high-pass's gain; a clean picture moving as the flow says reads 0. NaN
    under 64 pixels."""
    m = _mask(mask)
    if m.sum() < 64:
        return float("nan")
    h, w = m.shape
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    sx = np.clip(np.rint(gx + flow[..., 0]), 0, w - 1).astype(np.int64)
    sy = np.clip(np.rint(gy + flow[..., 1]), 0, h - 1).astype(np.int64)
    a, b = _as_float(cur), _as_float(prev)
    a, b = (x if x.ndim == 3 else x[..., None] for x in (a, b))
    ra = a - cv2.GaussianBlur(a, (0, 0), highpass_sigma).reshape(a.shape)
    rb = b - cv2.GaussianBlur(b, (0, 0), highpass_sigma).reshape(b.shape)
    d = (ra - rb[sy, sx]) / np.float32(np.sqrt(2.0))
    smooth = cv2.GaussianBlur(_gray(cur), (0, 0), 3.0)
    gradient = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    flat = m & (gradient <= np.median(gradient[m]))
    values = d[flat]  # (N, C)
    return float(np.mean(1.4826 * np.median(np.abs(values - np.median(values, axis=0)), axis=0)))


def ratio_summary(result: Sequence[float], target: Sequence[float]) -> dict[str, float]:
    """Aggregate per-frame measures of a result against the same measure on its target (frames where either
    is NaN are dropped): ``result`` / ``target`` means, ``ratio`` = Σ result / Σ target (1 = as the plate;
    identical inputs give exactly 1.0) and ``excess`` = mean(result) - mean(target) (exactly 0.0 for identical
    inputs)."""
    r = np.asarray(result, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(t)
    if not ok.any():
        nan = float("nan")
        return {"result": nan, "target": nan, "ratio": nan, "excess": nan}
    r, t = r[ok], t[ok]
    sr, st = float(r.sum()), float(t.sum())
    ratio = 1.0 if sr == st else (sr / st if st > 0 else float("inf"))
    return {"result": float(r.mean()), "target": float(t.mean()), "ratio": ratio,
            "excess": float(r.mean() - t.mean())}


def jitter_ratio(result_tracks: np.ndarray, target_tracks: np.ndarray) -> dict[str, float]:
    """Landmark jitter (RMS second difference, ``vidswap.faces.smooth_measures.jitter``) of result vs target tracks.

    Args:
        result_tracks, target_tracks: (T, P, 2) landmark tracks (NaN for frames without a face), T >= 3.

    Returns:
        ``result``, ``target`` jitter in pixels / frame^2 and ``ratio`` = result / target (1.0 when equal).
    """
    r = jitter(np.asarray(result_tracks, dtype=np.float64))
    t = jitter(np.asarray(target_tracks, dtype=np.float64))
    ratio = 1.0 if r == t else (r / t if t > 0 else float("inf"))
    return {"result": r, "target": t, "ratio": ratio}


def landmark_acceleration(tracks: np.ndarray) -> np.ndarray:
    """Per-frame RMS second difference of landmark tracks (T, P, 2) -> (T,) px/frame^2, centred on each frame
    (NaN at both ends and next to frames without a face). Its RMS over frames is :func:`jitter`-like."""
    t = np.asarray(tracks, dtype=np.float64)
    out = np.full(len(t), np.nan)
    if len(t) >= 3:
        d2 = (t[2:] - 2 * t[1:-1] + t[:-2]).reshape(len(t) - 2, -1)
        ok = np.isfinite(d2).all(1)
        out[1:-1][ok] = np.sqrt((d2[ok] ** 2).mean(1))
    return out


def flow_miss(prev: np.ndarray, cur: np.ndarray, prev_points: np.ndarray, cur_points: np.ndarray,
              margin: int = 20) -> float:
    """How far tracked points move otherwise than the picture: mean distance (px) between each point's
    frame-to-frame motion and the :func:`dis_flow` of the frames at its current position (the flow flicker
    compensates with). Frames (H, W[, 3]), points (N, 2) frame pixels; the flow is measured on the points' box
    grown by ``margin`` px. 0 for points that move exactly with the picture; NaN without finite points."""
    p0 = np.asarray(prev_points, dtype=np.float64)
    p1 = np.asarray(cur_points, dtype=np.float64)
    ok = np.isfinite(p0).all(1) & np.isfinite(p1).all(1)
    if not ok.any():
        return float("nan")
    p0, p1 = p0[ok], p1[ok]
    h, w = np.shape(cur)[:2]
    x0, y0 = np.clip(np.floor(p1.min(0) - margin).astype(int), 0, None)
    x1, y1 = np.minimum(np.ceil(p1.max(0) + margin).astype(int) + 1, [w, h])
    flow = dis_flow(prev[y0:y1, x0:x1], cur[y0:y1, x0:x1])
    q = (p1 - [x0, y0]).astype(np.float32)[:, None, :]
    f = np.stack([cv2.remap(flow[..., c], q[..., 0], q[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                  [:, 0] for c in range(2)], 1)
    return float(np.linalg.norm(p1 - p0 + f, axis=1).mean())


# --------------------------------------------------------------------------------------------------------------
# image quality


def laplacian_energy(image: np.ndarray, mask: np.ndarray) -> float:
    """High-frequency energy: variance of the Laplacian of the luma inside the mask (8-bit levels^2)."""
    m = _mask(mask)
    if not m.any():
        return float("nan")
    lap = cv2.Laplacian(_gray(image), cv2.CV_32F, ksize=3)
    return float(lap[m].astype(np.float64).var())


def sharpness_ratio(result: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """:func:`laplacian_energy` of the result / that of the target inside the mask (< 1: softer than the
    plate, > 1: sharper or noisier; exactly 1.0 for identical images)."""
    r, t = laplacian_energy(result, mask), laplacian_energy(target, mask)
    if r == t:
        return 1.0
    return r / t if t > 0 else float("inf")


def eroded(mask: np.ndarray, width: int) -> np.ndarray:
    """(H, W) bool: the mask eroded by ``width`` px (an ellipse)."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    return cv2.erode(_mask(mask).astype(np.uint8), k) > 0


def along_across_energy(image: np.ndarray, mask: np.ndarray, direction: np.ndarray) -> float:
    """Gradient energy of the luma along ``direction`` (2,) over that across it, inside the mask: a picture
    smeared along the direction (a camera's motion blur) has less of it along. NaN for an empty mask or no
    gradient across."""
    m = _mask(mask)
    d = np.asarray(direction, np.float64)
    norm = float(np.hypot(d[0], d[1]))
    if not m.any() or norm == 0.0:
        return float("nan")
    c, s = d / norm
    g = _gray(image)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)[m], cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)[m]
    along = (gx * c + gy * s).astype(np.float64)
    across = (gy * c - gx * s).astype(np.float64)
    energy = float((across * across).mean())
    return float((along * along).mean()) / energy if energy > 0 else float("nan")


def boundary_ring(mask: np.ndarray, width: int) -> np.ndarray:
    """(H, W) bool band of pixels within ``width`` px of the mask's boundary (both sides)."""
    m = _mask(mask).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    return (cv2.dilate(m, k) > 0) & ~(cv2.erode(m, k, borderType=cv2.BORDER_REPLICATE) > 0)


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 Sobel gradient magnitude of the luma (8-bit levels per pixel)."""
    g = _gray(image)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / np.float32(8.0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / np.float32(8.0)
    return np.sqrt(gx * gx + gy * gy)


def change_mask(result: np.ndarray, target: np.ndarray, threshold: float = 4.0, sigma: float = 2.0
                ) -> np.ndarray:
    """Where the result visibly differs from the plate: the region a swap replaced (its boundary is where a
    paste seam would be). Per-pixel largest channel difference in 8-bit levels, Gaussian-blurred by ``sigma``
    px, above ``threshold``; the largest connected part with its holes filled. (H, W) bool; empty when nothing
    changed."""
    diff = np.abs(_as_float(result) - _as_float(target))
    if diff.ndim == 3:
        diff = diff.max(-1)
    if sigma > 0:
        diff = cv2.GaussianBlur(diff, (0, 0), sigma)
    m = (diff > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if count <= 1:
        return np.zeros(m.shape, bool)
    keep = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    # fill holes: flood the background from a padded border; what the flood cannot reach is inside
    pad = np.pad(keep, 1)
    flood = pad.copy()
    cv2.floodFill(flood, np.zeros((pad.shape[0] + 2, pad.shape[1] + 2), np.uint8), (0, 0), 1)
    holes = (flood == 0)[1:-1, 1:-1]
    return keep.astype(bool) | holes


def seam_ratio(result: np.ndarray, target: np.ndarray, mask: np.ndarray, width: int | None = None) -> float:
    """Seam visibility: mean gradient magnitude of the result along the face-mask boundary (a band of
    ``width`` px each side; default 3% of the face size, at least 2 px) relative to the plate's along the same
    band. 1 = no more edge energy than the plate (exactly 1.0 for identical images); a visible paste seam or
    colour step raises it."""
    m = _mask(mask)
    if not m.any():
        return float("nan")
    w = width if width is not None else max(2, int(round(0.03 * face_size(m))))
    ring = boundary_ring(m, w)
    r = float(gradient_magnitude(result)[ring].astype(np.float64).mean())
    t = float(gradient_magnitude(target)[ring].astype(np.float64).mean())
    if r == t:
        return 1.0
    return r / t if t > 0 else float("inf")


def _boundary_bands(m: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) bool bands of a bool mask: the pixels inside it within ``width`` px of its boundary, and those
    outside it within ``width`` px (L2 distance transforms)."""
    m8 = m.astype(np.uint8)
    inner = m & (cv2.distanceTransform(m8, cv2.DIST_L2, 3) <= width)
    outer = ~m & (cv2.distanceTransform(1 - m8, cv2.DIST_L2, 3) <= width)
    return inner, outer


def boundary_step(result: np.ndarray, target: np.ndarray, mask: np.ndarray, width: int) -> float:
    """Tone step across the mask boundary that the plate does not have: a feathered colour mismatch (a patch
    brighter or redder than the skin around it) has little gradient but is plainly visible.

    At every boundary pixel, the local mean colour of a band ``width`` px deep just inside the mask minus that
    of the band just outside (Gaussian-weighted over ``width`` px along the boundary) is compared between result
    and plate; returns the mean over the boundary of the RGB distance between the two differences, in 8-bit
    levels. 0 = no step beyond the plate's own (exactly 0.0 for identical images); NaN for an empty or full mask.
    """
    m = _mask(mask)
    if not m.any() or m.all():
        return float("nan")
    width = max(1, int(width))
    inner, outer = (band.astype(np.float32) for band in _boundary_bands(m, width))
    ring = boundary_ring(m, 1) & m
    sigma = float(width)

    def across(image: np.ndarray) -> np.ndarray:
        img = _as_float(image)
        img = img[..., None] if img.ndim == 2 else img
        sides = []
        for band in (inner, outer):
            den = cv2.GaussianBlur(band, (0, 0), sigma)[..., None]
            num = cv2.GaussianBlur(img * band[..., None], (0, 0), sigma)
            num = num[..., None] if num.ndim == 2 else num
            sides.append(num / np.maximum(den, 1e-6))
        return (sides[0] - sides[1])[ring]

    step = np.linalg.norm(across(result).astype(np.float64) - across(target), axis=-1)
    return float(step.mean()) if len(step) else float("nan")


#: Arcs of the boundary for :func:`boundary_arc_steps` (equal angles around the mask's centroid).
STEP_ARCS = 16


def boundary_arc_steps(result: np.ndarray, target: np.ndarray, mask: np.ndarray, width: int,
                       arcs: int = STEP_ARCS) -> np.ndarray:
    """The change ``result - target`` just inside the mask boundary minus just outside it, arc by arc.

    The boundary is cut into ``arcs`` arcs of equal angle around the mask's centroid; in each, the per-channel
    median change over the band ``width`` px deep inside the mask minus the median over the band ``width`` px
    deep outside. Arcs where either band holds fewer than ``width`` pixels are left out. Medians, so a feature
    the swap changes near its edge (a brow, the jaw line) counts only where it fills half an arc's band.

    Returns (K, C) float64 in 8-bit levels, K <= ``arcs`` (C = 1 for a grey image); (0, C) for an empty or full
    mask.
    """
    change = _as_float(result) - _as_float(target)
    change = change[..., None] if change.ndim == 2 else change
    m = _mask(mask)
    if not m.any() or m.all():
        return np.zeros((0, change.shape[-1]))
    width = max(1, int(width))
    inner, outer = _boundary_bands(m, width)
    ys, xs = np.nonzero(m)
    yy, xx = np.mgrid[:m.shape[0], :m.shape[1]]
    angle = np.arctan2(yy - ys.mean(), xx - xs.mean())
    arc = np.minimum((angle + np.pi) * (arcs / (2 * np.pi)), arcs - 1).astype(np.int32)
    steps = []
    for k in range(arcs):
        d_in, d_out = change[inner & (arc == k)], change[outer & (arc == k)]
        if len(d_in) >= width and len(d_out) >= width:
            steps.append(np.median(d_in, 0).astype(np.float64) - np.median(d_out, 0))
    return np.asarray(steps, np.float64).reshape(-1, change.shape[-1])


def boundary_tone_offset(result: np.ndarray, target: np.ndarray, mask: np.ndarray, width: int,
                         arcs: int = STEP_ARCS) -> float:
    """How much the changed region as a whole is brighter or another colour than the plate just around it: the
    RGB length of the mean over the boundary's arcs of :func:`boundary_arc_steps`, in 8-bit levels.

    This is the "patch" look: a swapped face redder or lighter than the skin it sits in, all around its edge,
    whether the edge is hard or feathered. A difference that changes sign along the boundary (the source's skin
    lighter at one cheek and darker at the other, a brow reaching the edge) averages out here; the seam ratio and
    :func:`boundary_step` see those. A uniform offset of d levels in every channel with a hard edge measures
    exactly d x sqrt(3); 0.0 for identical images; NaN when no arc can be measured.
    """
    steps = boundary_arc_steps(result, target, mask, width, arcs)
    return float(np.linalg.norm(steps.mean(0))) if len(steps) else float("nan")
