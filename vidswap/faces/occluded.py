"""Face landmarks hidden behind a hand follow the face's image motion instead of the landmark model's guess.

Under a hand the face landmarker cannot see the nose or the mouth and guesses them: on the sample clip the raw
landmarks under the hand move 1-2 px a frame where the picture moves 0.4-0.9. The smoother
(:func:`vidswap.faces.smooth.smooth_landmarks`) takes part of that for motion, and the swap rendered on it (its
pose is fitted to all 478 points) shifts the visible eyes and glasses with it. The face's image motion
(:mod:`vidswap.faces.motion`, measured at points clear of the hands) does not see the guess, so a hidden point is
placed on the path that motion traces, plus its departure from that path (expression, slow drift) interpolated
over time between the frames where the point is visible: it moves rigidly with the face while hidden and joins
its measurements again on either side.

Pure functions over numpy arrays. Points are frame pixels; hulls are convex outlines (K, 2).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["hand_hulls", "inside_hulls", "occluded_points", "hold_occluded", "occluded_noise_gain"]


def hand_hulls(hands: np.ndarray) -> list[np.ndarray]:
    """(K, 21, 2+) hand landmarks -> K convex outlines, each (M, 2) float64 in order (OpenCV's convex hull)."""
    return [cv2.convexHull(np.ascontiguousarray(h[:, :2], dtype=np.float32)).reshape(-1, 2).astype(np.float64)
            for h in hands]


def inside_hulls(points: np.ndarray, hulls: list[np.ndarray], margin: float = 0.0) -> np.ndarray:
    """Which of (N, 2) points lie inside any convex outline grown by ``margin`` pixels (each edge moved out by
    ``margin``: the corners are sharp, not rounded) -> (N,) bool. An outline of fewer than 3 points contains
    nothing."""
    pts = np.asarray(points, dtype=np.float64)
    out = np.zeros(len(pts), bool)
    for hull in hulls:
        h = np.asarray(hull, dtype=np.float64)
        if len(h) < 3:
            continue
        a, b = h, np.roll(h, -1, axis=0)
        edge = b - a
        length = np.linalg.norm(edge, axis=1)
        ok = length > 0
        a, edge, length = a[ok], edge[ok], length[ok]
        # signed distance of each point to each edge's line, positive on the hull's inner side
        cross = (edge[None, :, 0] * (pts[:, None, 1] - a[None, :, 1])
                 - edge[None, :, 1] * (pts[:, None, 0] - a[None, :, 0])) / length[None]
        area2 = float(np.sum(a[:, 0] * np.roll(a[:, 1], -1) - np.roll(a[:, 0], -1) * a[:, 1]))
        inner = cross * (1.0 if area2 > 0 else -1.0)
        out |= (inner >= -margin).all(1)
    return out


def occluded_points(track: np.ndarray, hands_per_frame: list[np.ndarray], margin: float) -> np.ndarray:
    """Which landmarks of a face track are behind a hand.

    Args:
        track: (T, N, 2+) landmarks (frame pixels; NaN rows for frames without a measurement).
        hands_per_frame: T arrays (K, 21, 2+) of the hands in each frame (K may be 0).
        margin: a point counts as hidden this fraction of the face's size (RMS radius of the frame's points)
            outside a hand's outline too (the landmark model's guess spreads past the hand's edge).

    Returns:
        (T, N) bool.
    """
    x = np.asarray(track, dtype=np.float64)[..., :2]
    out = np.zeros(x.shape[:2], bool)
    for t, hands in enumerate(hands_per_frame):
        if len(hands) == 0 or not np.isfinite(x[t]).all():
            continue
        radius = float(np.sqrt(((x[t] - x[t].mean(0)) ** 2).sum(1).mean()))
        out[t] = inside_hulls(x[t], hand_hulls(np.asarray(hands)), margin * radius)
    return out


def hold_occluded(track: np.ndarray, path: np.ndarray, occluded: np.ndarray) -> np.ndarray:
    """Replace hidden landmarks by the motion path plus their departure from it interpolated over time.

    For each point, its departure from ``path`` (x, y) and its depth (z) on the frames where it is hidden are
    interpolated linearly between the nearest frames where it is visible (held at the track's ends); a point
    never visible, and frames without a measurement (NaN rows), are left as they are.

    Args:
        track: (T, N, 3) raw landmarks. path: (T, N, 2) where the points go when they follow the face's image
            motion (:func:`vidswap.faces.motion.motion_path`). occluded: (T, N) bool (:func:`occluded_points`).

    Returns:
        (T, N, 3) float64.
    """
    x = np.asarray(track, dtype=np.float64).copy()
    occ = np.asarray(occluded, bool) & np.isfinite(x).all(2)
    if not occ.any():
        return x
    measured = np.isfinite(x).all(2)
    d = x.copy()
    d[..., :2] -= path
    frames = np.arange(len(x))
    for j in np.flatnonzero(occ.any(0)):
        seen = measured[:, j] & ~occ[:, j]
        if not seen.any():
            continue
        hide = occ[:, j]
        for c in range(3):
            d[hide, j, c] = np.interp(frames[hide], frames[seen], d[seen, j, c])
    x[occ, :2] = d[occ, :2] + path[occ]
    x[occ, 2] = d[occ, 2]
    return x


def occluded_noise_gain(occluded: np.ndarray, weight: float) -> np.ndarray | None:
    """How much less a face track's per-frame landmark reading is trusted while a hand covers part of the face.

    With a hand on the face the landmark model guesses the hidden part and its reading of the visible part
    shakes too; the smoother (:func:`vidswap.faces.smooth.smooth_landmarks`, ``noise_gain``) multiplies the
    measurement noise's std on each frame by this gain, so the track leans on the face's image motion and its
    neighbouring frames there.

    Args:
        occluded: (T, N) bool, which landmarks are behind a hand (:func:`occluded_points`).
        weight: the gain per unit of hidden fraction.

    Returns:
        (T,) float64 ``1 + weight x (fraction of the N points hidden on the frame)``, or None when ``weight``
        <= 0 (no gain).
    """
    if weight <= 0:
        return None
    return 1.0 + float(weight) * np.asarray(occluded, dtype=np.float64).mean(1)
