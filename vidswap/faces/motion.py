"""The image motion of a face between consecutive frames, for the landmark smoother to follow.

The landmark smoother (:mod:`vidswap.faces.smooth`) removes what changes fast in a landmark track, taking it for
measurement noise. Real plates also move fast: a head that judders with the frame cadence (frames captured at
uneven times: 2.4, 4.0, 2.8, 4.1 px of head motion on alternate frames of the sample clip), camera shake. A swap
rendered on the smoothed landmarks then slides against the plate's own head by up to a pixel a frame, which the
eye reads as the face shimmering (and the eval as flicker: the result does not move with the plate's optical
flow). The plate's dense optical flow over the face measures this motion far more precisely than 478 landmarks
do, so the analyze pass records it per face and frame (:func:`face_motion`): one affine map from the previous
frame to this one, fitted robustly to the flow at the face's rigid landmarks. The smoother then follows the
path it traces (:func:`motion_path`) and smooths only what the image motion does not explain (expression, the
landmark model's noise, the flow's slow drift): a complementary filter, fast motion from the image, position
from the landmarks.

Pure functions over numpy arrays (OpenCV's DIS flow and robust affine estimator). Points are (N, 2) pixels,
pixel centres at integers; an affine map is (2, 3) ``[A | b]`` with ``x' = A x + b``; NaN maps mean "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["MotionParams", "gray8", "apply_affine", "fit_affine", "face_motion", "clear_of", "motion_path"]

#: an unknown motion
NAN_AFFINE = np.full((2, 3), np.nan)


@dataclass(frozen=True)
class MotionParams:
    """Settings of :func:`face_motion`.

    Attributes:
        max_side: the face's region is measured at most this many pixels on its longer side (the flow is scaled
            back): an affine fit over a few hundred points stays within a few hundredths of a pixel at this size
            (on the sample clip 128, 160 and 256 follow the plate's flow equally well; 128 costs ~3 ms a face).
        margin: the region is the landmarks' box grown by this fraction of its size on each side.
        preset: OpenCV's DIS preset (``cv2.DISOPTICAL_FLOW_PRESET_*``).
        hand_margin: the analyze pass measures the motion only at points farther than this fraction of the face
            size (RMS radius) from the hands tracked in front of the face, in either frame (the flow there is the
            hand's); on the sample clip's hand stretch this takes its flicker from 1.246 to 1.231 x the plate.
        min_points: with fewer points left, the motion is unknown (NaN).
        max_disagreement: the fitted motion is rejected (NaN) when it moves the previous frame's landmarks more
            than this fraction of the face size (RMS radius) away from the current ones on average: the flow
            followed something else (a hand sweeping over the face, a flash).
    """

    max_side: int = 128
    margin: float = 0.1
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    hand_margin: float = 0.1
    min_points: int = 30
    max_disagreement: float = 0.05


def gray8(image: np.ndarray) -> np.ndarray:
    """An HxWx3 RGB uint8 frame -> HxW uint8 luma (OpenCV's Rec. 601 weights)."""
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``A x + b`` for (..., 2) points and a (2, 3) map -> (..., 2) float64."""
    m = np.asarray(m, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ m[:, :2].T + m[:, 2]


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The affine map taking ``src`` (N, 2) to ``dst`` (N, 2), robust to outliers: OpenCV's least-median-of-squares
    estimator (``cv2.estimateAffine2D``, LMEDS: deterministic, up to half the points may be outliers), refined by
    Levenberg-Marquardt on its inliers, on centred coordinates (float32 inside keeps 1e-4 px). Exact (to that)
    for points related by an affine map; N >= 3 points not on a line. Returns (2, 3) float64; all NaN when no map
    is found."""
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    cs, cd = s.mean(0), d.mean(0)
    m, _ = cv2.estimateAffine2D((s - cs).astype(np.float32), (d - cd).astype(np.float32), method=cv2.LMEDS,
                                refineIters=20)
    if m is None:
        return NAN_AFFINE.copy()
    m = m.astype(np.float64)
    return np.concatenate([m[:, :2], (m[:, 2] + cd - m[:, :2] @ cs)[:, None]], 1)


def _region(points: np.ndarray, shape: tuple[int, int], margin: float) -> tuple[slice, slice] | None:
    lo, hi = points.min(0), points.max(0)
    grow = margin * (hi - lo)
    x0, y0 = np.floor(lo - grow).astype(int)
    x1, y1 = np.ceil(hi + grow).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return slice(y0, y1), slice(x0, x1)


def face_motion(prev: np.ndarray, cur: np.ndarray, prev_points: np.ndarray, cur_points: np.ndarray,
                params: MotionParams = MotionParams()) -> np.ndarray:
    """The affine motion of a face from the previous frame to this one, as the plate's optical flow sees it.

    DIS optical flow (OpenCV, ``params.preset``) from ``cur`` back to ``prev`` over the face's region, sampled at the
    face's current points (bilinear); the affine map taking where each point was to where it is is fitted with
    :func:`fit_affine`. Rejected (NaN) when the region is off the frame, or when the map disagrees with the
    landmarks' own motion by more than ``params.max_disagreement`` of the face size.

    Args:
        prev, cur: (H, W) uint8 luma of the previous and the current frame (:func:`gray8`), or the (H, W, 3) RGB
            uint8 frames themselves: then only the measured region is converted to luma (the same values; the
            analysis's cost then follows the face's size, not the plate's).
        prev_points, cur_points: (N, 2) the face's rigid landmarks in both frames (frame pixels; the same points).

    Returns:
        (2, 3) float64 map of frame-pixel positions in ``prev`` to positions in ``cur``, or all NaN.
    """
    cur_points = np.asarray(cur_points, dtype=np.float64)
    prev_points = np.asarray(prev_points, dtype=np.float64)
    if not (np.isfinite(cur_points).all() and np.isfinite(prev_points).all()):
        return NAN_AFFINE.copy()
    roi = _region(cur_points, cur.shape[:2], params.margin)
    if roi is None:
        return NAN_AFFINE.copy()
    ys, xs = roi
    a, b = (np.ascontiguousarray(im[ys, xs]) if im.ndim == 2 else gray8(im[ys, xs]) for im in (cur, prev))
    h, w = a.shape
    k = min(1.0, params.max_side / max(h, w))
    if k < 1.0:
        size = (max(8, round(w * k)), max(8, round(h * k)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    kx, ky = a.shape[1] / w, a.shape[0] / h
    flow = cv2.DISOpticalFlow_create(params.preset).calc(a, b, None)
    # the points in the measured region's pixels (pixel centres at integers on both scales)
    q = np.stack([(cur_points[:, 0] - xs.start + 0.5) * kx - 0.5, (cur_points[:, 1] - ys.start + 0.5) * ky - 0.5], 1)
    qf = q.astype(np.float32)[:, None, :]
    f = np.stack([cv2.remap(flow[..., c], qf[..., 0], qf[..., 1], cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)[:, 0] for c in range(2)], 1).astype(np.float64)
    m_small = fit_affine(q + f, q)  # measured-region pixels: where each point was -> where it is
    # back to frame pixels: x_small = S (x - o) + c with S = diag(kx, ky), c = 0.5 (k - 1)
    scale = np.array([kx, ky])
    shift = np.array([0.5 * kx - 0.5 - kx * xs.start, 0.5 * ky - 0.5 - ky * ys.start])
    A = m_small[:, :2] * scale[None, :] / scale[:, None]
    bvec = (m_small[:, :2] @ shift + m_small[:, 2] - shift) / scale
    m = np.concatenate([A, bvec[:, None]], 1)
    radius = np.sqrt(((cur_points - cur_points.mean(0)) ** 2).sum(1).mean())
    miss = np.linalg.norm(apply_affine(m, prev_points) - cur_points, axis=1).mean()
    if not np.isfinite(m).all() or miss > params.max_disagreement * radius:
        return NAN_AFFINE.copy()
    return m


def clear_of(points: np.ndarray, outlines: list[np.ndarray], margin: float) -> np.ndarray:
    """Which points (N, 2) lie outside every outline (convex hulls, (K, 2) or OpenCV's (K, 1, 2)) by more than
    ``margin`` pixels: (N,) bool. The face's motion is measured only at points clear of the hands in front of it
    (the flow there is the hand's)."""
    pts = np.asarray(points, dtype=np.float64)
    keep = np.ones(len(pts), bool)
    for outline in outlines:
        poly = np.asarray(outline, dtype=np.float32).reshape(-1, 1, 2)
        # only points within the outline's bounds grown by the margin (and a pixel) can be that close to it
        lo, hi = poly[:, 0].min(0) - margin - 1.0, poly[:, 0].max(0) + margin + 1.0
        near = np.flatnonzero(keep & (pts >= lo).all(1) & (pts <= hi).all(1))
        inside = np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), True) for x, y in pts[near]])
        if len(near):
            keep[near] = inside < -margin
    return keep


def motion_path(start: np.ndarray, motions: np.ndarray) -> np.ndarray:
    """The path points take when they follow the measured motion: (N, 2) positions at the first frame and (T, 2, 3)
    maps (row t: frame t-1 -> t; row 0 is not used) -> (T, N, 2) with ``path[0] = start`` and
    ``path[t] = motions[t](path[t-1])``; where a map is unknown (NaN) the points hold still."""
    m = np.asarray(motions, dtype=np.float64)
    out = np.empty((len(m),) + np.shape(start), dtype=np.float64)
    if len(m) == 0:
        return out
    out[0] = start
    for t in range(1, len(m)):
        out[t] = apply_affine(m[t], out[t - 1]) if np.isfinite(m[t]).all() else out[t - 1]
    return out
