"""A hand's motion across the frames where the landmarker misses it: a constant-velocity Kalman filter (filterpy) on
the hand's landmark centroid, used online to say where a lost hand is looked for again, and offline (after the
shot) to carry each hand across short gaps between its runs and a few frames past its last one, with a presence
that decays with the distance to the nearest frame where the hand was seen.

The landmarks of a carried frame are the hand's shape (its landmarks about their centroid) placed at the filter's
centroid: across a gap the shapes at the two ends blended linearly, after the last run the last shape. Each run of
readings is smoothed over time first (:func:`smooth_series`, zero-phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MotionParams:
    """How far a hand is carried by its motion model.

    Attributes:
        bridge: gaps of up to this many frames between two runs of one hand are filled (the mask does not drop
            out where the landmarker missed the hand for a few frames).
        coast: frames after a hand's last run that it is carried on its predicted path (at most).
        decay: presence of a carried frame: the nearest seen frame's presence x ``decay ** distance``.
        floor: a carried frame whose presence would fall under this is not carried (ends the coast).
        velocity_keep: per frame the predicted speed is multiplied by this (a lost hand slows down, rather than
            flying off in a straight line).
        process_noise: filter process noise (px per frame^2, white acceleration).
        measurement_noise: filter measurement noise of the centroid (px).
    """

    bridge: int = 12
    coast: int = 3
    decay: float = 0.85
    floor: float = 0.2
    velocity_keep: float = 0.8
    process_noise: float = 2.0
    measurement_noise: float = 2.0


def centroid_filter(centroid: np.ndarray, params: MotionParams):
    """A filterpy ``KalmanFilter`` on state (x, y, vx, vy) started at ``centroid (2,)`` at rest."""
    from filterpy.kalman import KalmanFilter  # imported here: filterpy pulls in scipy.stats (1-2 s)

    kf = KalmanFilter(dim_x=4, dim_z=2)
    a = params.velocity_keep
    kf.F = np.array([[1.0, 0, 1, 0], [0, 1, 0, 1], [0, 0, a, 0], [0, 0, 0, a]])
    kf.H = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0]])
    kf.R = np.eye(2) * params.measurement_noise ** 2
    q = params.process_noise ** 2
    kf.Q = np.array([[q / 4, 0, q / 2, 0], [0, q / 4, 0, q / 2], [q / 2, 0, q, 0], [0, q / 2, 0, q]])
    kf.x = np.array([float(centroid[0]), float(centroid[1]), 0.0, 0.0])
    kf.P = np.diag([params.measurement_noise ** 2] * 2 + [100.0, 100.0])
    return kf


def centroid(points: np.ndarray) -> np.ndarray:
    """(..., 2) the mean x, y of (..., 21, 2+) landmarks."""
    return np.asarray(points, np.float64)[..., :2].mean(-2)


def carry_plan(frames: np.ndarray, presence: np.ndarray, params: MotionParams, last_frame: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Which frames one hand is shown on and with what presence: its seen frames, the frames of gaps of at most
    ``bridge`` frames between them, and up to ``coast`` frames after the last (not past ``last_frame``); a filled
    frame's presence is that of the nearest seen frame (the earlier on a tie) times ``decay ** distance``, and a
    filled frame under ``floor`` is left out.

    Args:
        frames: (N,) sorted, distinct frame numbers where the hand was seen; presence: (N,).

    Returns:
        (M,) int64 frame numbers, sorted; (M,) float32 presence (the seen frames keep theirs).
    """
    frames = np.asarray(frames, np.int64)
    presence = np.asarray(presence, np.float64)
    out_f: list[int] = []
    out_p: list[float] = []

    def carried(n: int, anchor: int, base: float) -> None:
        pr = base * params.decay ** abs(n - anchor)
        if pr >= params.floor:
            out_f.append(n)
            out_p.append(pr)

    for k, (n, pr) in enumerate(zip(frames.tolist(), presence.tolist())):
        out_f.append(n)
        out_p.append(pr)
        if k + 1 < len(frames):
            nxt = int(frames[k + 1])
            if 1 < nxt - n <= params.bridge + 1:
                for g in range(n + 1, nxt):
                    if g - n <= nxt - g:
                        carried(g, n, pr)
                    else:
                        carried(g, nxt, float(presence[k + 1]))
    if len(frames):
        end = int(frames[-1]) + params.coast
        if last_frame is not None:
            end = min(end, int(last_frame))
        for g in range(int(frames[-1]) + 1, end + 1):
            carried(g, int(frames[-1]), float(presence[-1]))
    return np.asarray(out_f, np.int64), np.asarray(out_p, np.float32)


def smoothed_centroids(frames: np.ndarray, centroids: np.ndarray, wanted: np.ndarray, params: MotionParams
                       ) -> np.ndarray:
    """(M, 2) the hand's centroid at the ``wanted`` frames (sorted, within or after the seen ones): the Kalman
    filter run forward over every frame from the first seen one, updated where the hand was seen, then smoothed
    backwards (filterpy's RTS smoother): across a gap this follows the hand's motion on either side; after the
    last seen frame it is the filter's (speed-decaying) prediction.

    Args:
        frames: (N,) sorted seen frame numbers; centroids: (N, 2).
    """
    frames = np.asarray(frames, np.int64)
    start, stop = int(frames[0]), int(max(frames[-1], np.max(wanted)))
    seen = {int(n): c for n, c in zip(frames, np.asarray(centroids, np.float64))}
    kf = centroid_filter(seen[start], params)
    xs, ps = [kf.x.copy()], [kf.P.copy()]
    for n in range(start + 1, stop + 1):
        kf.predict()
        kf.update(seen.get(n))
        xs.append(kf.x.copy())
        ps.append(kf.P.copy())
    xs_s, _, _, _ = kf.rts_smoother(np.asarray(xs), np.asarray(ps))
    return xs_s[np.asarray(wanted, np.int64) - start, :2]


def carry_hand(frames: np.ndarray, points: np.ndarray, presence: np.ndarray, params: MotionParams,
               last_frame: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One hand's rows with its gaps bridged and its end coasted (:func:`carry_plan`): seen frames keep their
    landmarks; a carried frame gets the hand's shape (landmarks about their centroid; across a gap the two ends'
    shapes blended linearly, after the end the last shape) at the Kalman/RTS centroid (:func:`smoothed_centroids`).

    Args:
        frames: (N,) sorted seen frame numbers; points: (N, 21, 3); presence: (N,).

    Returns:
        frames (M,) int64, points (M, 21, 3) float32, presence (M,) float32, carried (M,) bool.
    """
    frames = np.asarray(frames, np.int64)
    points = np.asarray(points, np.float32)
    out_f, out_p = carry_plan(frames, presence, params, last_frame)
    carried = ~np.isin(out_f, frames)
    out_pts = np.zeros((len(out_f), 21, 3), np.float32)
    out_pts[~carried] = points
    if carried.any():
        cen = centroid(points)
        where = smoothed_centroids(frames, cen, out_f[carried], params)
        shapes = points.astype(np.float64).copy()
        shapes[..., :2] -= cen[:, None]
        for j, (n, c) in enumerate(zip(out_f[carried].tolist(), where)):
            k = int(np.searchsorted(frames, n))  # the seen frame after n (len(frames) past the end)
            if k >= len(frames):
                shape = shapes[-1]
            else:
                t = (n - frames[k - 1]) / (frames[k] - frames[k - 1])
                shape = (1 - t) * shapes[k - 1] + t * shapes[k]
            q = shape.copy()
            q[:, :2] += c
            out_pts[np.flatnonzero(carried)[j]] = q
    return out_f, out_pts, out_p, carried


def smooth_series(points: np.ndarray, sigma: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing of (T, ...) along T with edge renormalisation (the ends are not pulled in)."""
    if sigma <= 0 or len(points) < 2:
        return points.copy()
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    t = len(points)
    flat = points.reshape(t, -1).astype(np.float64)
    out = np.zeros_like(flat)
    norm = np.zeros(t)
    for j, w in zip(range(-r, r + 1), k):
        lo, hi = max(0, -j), min(t, t - j)
        if lo >= hi:  # a series shorter than the kernel's reach
            continue
        out[lo:hi] += w * flat[lo + j:hi + j]
        norm[lo:hi] += w
    return (out / norm[:, None]).reshape(points.shape).astype(points.dtype)
