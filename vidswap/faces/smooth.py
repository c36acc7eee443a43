"""Temporal smoothing of landmark tracks and pose parameters (the measures that judge it:
:mod:`vidswap.faces.smooth_measures`).

Two smoothers, both frame-rate aware (parameters are in seconds / Hz, not frames):

* :func:`one_euro` / :class:`OneEuroFilter` -- causal One-Euro filter (Casiez et al. 2012) for previews and
  streaming: a first-order low-pass whose cut-off rises with speed, ``fc = min_cutoff + beta * |speed|``, so a
  still face is smoothed hard and a fast move passes with little lag. Speed is the norm of each point's
  velocity (all D coordinates share one cut-off, so a point is smoothed isotropically).
* :func:`rts_smooth` -- zero-phase two-pass smoother: filterpy's ``KalmanFilter`` forward (constant-velocity
  model, white-noise acceleration) and its Rauch-Tung-Striebel backward pass. All coordinates of a group share
  the model, hence the gains, so the whole group runs as one filter whose state is a (2, M) matrix (position
  and velocity of M coordinates). Adaptive: when a frame's innovation is far beyond what the model expects
  (mean normalised innovation squared over the group > ``gate``: a manoeuvre -- a fast head turn, a jump, a
  mouth snapping shut), that step's process noise is inflated just enough to explain it, so the filter
  follows the move and the backward pass does not smear it across frames.

Units: tracks are divided by a ``scale`` before filtering, so noise levels and speeds are in units of that
scale. :func:`smooth_landmarks` uses the face scale (:func:`face_scale`: RMS distance of the 468 mesh points to
their centroid in x, y; about 0.56 x the outer-eye-corner distance): a noise of 0.003 is 0.3 % of the face.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from vidswap.errors import UsageError
from vidswap.faces.topology import load_static_data, load_topology


@dataclass(frozen=True)
class OneEuroParams:
    """One-Euro filter parameters (speeds in ``scale`` units per second).

    Attributes:
        min_cutoff: Hz, the cut-off at rest (lower = smoother when still, more lag on slow drifts).
        beta: Hz per (scale unit / s): how fast the cut-off rises with speed (higher = less lag when moving).
        d_cutoff: Hz, the cut-off of the low-pass on the speed estimate.
    """

    min_cutoff: float = 1.0
    beta: float = 20.0
    d_cutoff: float = 1.0


@dataclass(frozen=True)
class RtsParams:
    """Adaptive RTS smoother parameters (``scale`` units, seconds).

    Attributes:
        process_noise: sqrt of the spectral density of the white-noise acceleration, scale units / s^1.5.
            Higher follows faster changes of speed; the smoother's bandwidth is about
            ``(process_noise / measurement_noise)**0.5 * fps**0.25 / (2 pi)`` Hz (mean-square sense).
        measurement_noise: std of the per-frame measurement noise, scale units; None (or <= 0) estimates it
            per group from the data (:func:`noise_level`: robust MAD of the second differences).
        gate: mean normalised innovation squared (1 under the model) above which a frame is a manoeuvre and its
            process noise is inflated to explain it; 0 disables the adaptation.
        init_speed: std of the unknown initial speed, scale units / s.
    """

    process_noise: float = 1.0
    measurement_noise: float | None = None
    gate: float = 4.0
    init_speed: float = 1.0


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------

def face_scale(track: np.ndarray) -> float:
    """(T, N, D) landmarks (N >= 468) -> median over frames of the RMS distance of the mesh points to their
    centroid in x, y (pixels). NaN frames are ignored."""
    xy = np.asarray(track, dtype=np.float64)[:, :468, :2]
    r = np.sqrt(((xy - xy.mean(1, keepdims=True)) ** 2).sum(-1).mean(-1))
    r = r[np.isfinite(r)]
    if r.size == 0:
        raise UsageError("face_scale: the track has no valid frames")
    return float(np.median(r))


def noise_level(track: np.ndarray) -> float:
    """Robust estimate of the std of white measurement noise in a track (T, ...): the median absolute second
    difference over all frames and coordinates, ``median|d2| / (0.6745 sqrt(6))``. Smooth motion has small
    second differences, so the median sees mostly the noise. NaNs are ignored."""
    x = np.asarray(track, dtype=np.float64)
    d2 = x[2:] - 2 * x[1:-1] + x[:-2]
    d2 = np.abs(d2[np.isfinite(d2)])
    if d2.size == 0:
        return 0.0
    return float(np.median(d2) / (0.6745 * np.sqrt(6.0)))


def _as_points(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """(T, N, D) stays; (T, k) -> (T, k, 1) (each column a 1D signal); (T,) -> (T, 1, 1)."""
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    if x.ndim == 1:
        x = x[:, None, None]
    elif x.ndim == 2:
        x = x[:, :, None]
    elif x.ndim != 3:
        raise UsageError(f"expected a (T,), (T, k) or (T, N, D) track, got shape {shape}")
    return x, shape


# ---------------------------------------------------------------------------------------------------------------
# One-Euro (causal)
# ---------------------------------------------------------------------------------------------------------------

def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroFilter:
    """Streaming One-Euro filter over a fixed set of N points of dimension D (or k scalars with D = 1).

    ``step(x_t)`` takes one frame ((N, D) array, NaN = missing: the state is held and NaN returned) and returns
    the filtered frame. State lives in the instance; make one per track.
    """

    fps: float
    params: OneEuroParams = field(default_factory=OneEuroParams)
    scale: float = 1.0
    _x: np.ndarray | None = field(default=None, repr=False)
    _dx: np.ndarray | None = field(default=None, repr=False)

    def reset(self) -> None:
        self._x = None
        self._dx = None

    def step(self, x: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, D) filtered (input units)."""
        z = np.asarray(x, dtype=np.float64) / self.scale
        if z.ndim == 1:
            z = z[:, None]
        dt = 1.0 / self.fps
        valid = np.isfinite(z).all(-1)
        if self._x is None:
            self._x = np.where(valid[:, None], z, np.nan)
            self._dx = np.zeros_like(z)
            return self._x * self.scale
        new = ~np.isfinite(self._x).all(-1) & valid  # points seen for the first time
        upd = valid & ~new
        p = self.params
        dx = np.where(upd[:, None], (z - self._x) / dt, 0.0)
        dx_hat = self._dx + _alpha(p.d_cutoff, dt) * (dx - self._dx)
        speed = np.linalg.norm(dx_hat, axis=-1, keepdims=True)
        a = _alpha(p.min_cutoff + p.beta * speed, dt)
        x_hat = self._x + a * (z - self._x)
        self._x = np.where(upd[:, None], x_hat, np.where(new[:, None], z, self._x))
        self._dx = np.where(upd[:, None], dx_hat, self._dx)
        return np.where(valid[:, None], self._x, np.nan) * self.scale


def one_euro(track: np.ndarray, fps: float, params: OneEuroParams | None = None, scale: float = 1.0
             ) -> np.ndarray:
    """Causal One-Euro filter over a whole track.

    Args:
        track: (T, N, D) points (speed = norm over D), or (T, k) / (T,) independent scalar signals.
        fps: frame rate.
        params: filter parameters (speeds in ``scale`` units per second).
        scale: the unit the parameters are expressed in (e.g. :func:`face_scale` for landmarks).

    Returns:
        Filtered track, same shape as ``track``; NaN where the input is NaN.
    """
    x, shape = _as_points(track)
    f = OneEuroFilter(fps=fps, params=params or OneEuroParams(), scale=scale)
    out = np.stack([f.step(frame) for frame in x])
    return out.reshape(shape)


# ---------------------------------------------------------------------------------------------------------------
# adaptive RTS (zero-phase)
# ---------------------------------------------------------------------------------------------------------------

def _rts_group(z: np.ndarray, dt: float, p: RtsParams, noise_gain: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(T, M) measurements, NaN rows = missing frames -> ((T, M) smoothed positions, (T,) Q inflation).
    ``noise_gain`` (T,) >= 1: each frame's measurement-noise std is the group's times this (None: 1)."""
    t_len, m = z.shape
    valid = np.isfinite(z).all(1)
    out = np.full_like(z, np.nan)
    lam = np.ones(t_len)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out, lam
    first, last = int(idx[0]), int(idx[-1])
    sigma = p.measurement_noise if p.measurement_noise is not None and p.measurement_noise > 0 else noise_level(z)
    r = max(sigma, 1e-9) ** 2
    rs = np.full(t_len, r) if noise_gain is None else r * np.asarray(noise_gain, dtype=np.float64) ** 2
    # imported here: filterpy pulls in scipy.stats (~1-2 s), which a render task that only reads the analysis
    # never needs
    from filterpy.common import Q_continuous_white_noise
    from filterpy.kalman import KalmanFilter

    kf = KalmanFilter(dim_x=2, dim_z=1)
    kf.F = np.array([[1.0, dt], [0.0, 1.0]])
    kf.H = np.array([[1.0, 0.0]])
    kf.R = np.array([[r]])
    q0 = Q_continuous_white_noise(dim=2, dt=dt, spectral_density=p.process_noise ** 2)
    kf.x = np.stack([z[first], np.zeros(m)])
    kf.P = np.diag([rs[first], p.init_speed ** 2])
    n = last - first + 1
    xs = np.zeros((n, 2, m))
    ps = np.zeros((n, 2, 2))
    qs = [q0] * n
    xs[0], ps[0] = kf.x, kf.P
    for k in range(1, n):
        x_post, p_post = kf.x.copy(), kf.P.copy()
        kf.predict(Q=q0)
        zk = z[first + k]
        if valid[first + k]:
            rk = rs[first + k]
            y2 = float(np.mean((zk - kf.x[0]) ** 2))
            s = kf.P[0, 0] + rk
            if p.gate > 0 and y2 / s > p.gate:
                # manoeuvre: inflate this step's process noise so that the prior explains the innovation
                base = (kf.F @ p_post @ kf.F.T)[0, 0]
                factor = max(1.0, (y2 - rk - base) / q0[0, 0])
                qs[k] = q0 * factor
                lam[first + k] = factor
                kf.x, kf.P = x_post, p_post
                kf.predict(Q=qs[k])
            kf.update(zk[None, :], R=np.array([[rk]]), H=kf.H)
        else:
            kf.update(None)
        xs[k], ps[k] = kf.x, kf.P
    xs_s, _, _, _ = kf.rts_smoother(xs, ps, Fs=[kf.F] * n, Qs=qs)
    out[first:last + 1] = xs_s[:, 0, :]
    return out, lam


def rts_smooth(track: np.ndarray, fps: float, params: RtsParams | None = None, scale: float = 1.0,
               groups: Sequence[Sequence[int]] | None = None, noise_gain: np.ndarray | None = None) -> np.ndarray:
    """Zero-phase adaptive Kalman/RTS smoothing (constant velocity) of a track.

    Args:
        track: (T, N, D) points, or (T, k) / (T,) scalar signals. A frame with any NaN in a group is a miss
            for that group.
        fps: frame rate.
        params: noise levels in ``scale`` units.
        scale: the unit of the parameters (float, or broadcastable to (N, D), e.g. per-column (k, 1) units for
            pose parameters of different kinds).
        groups: partition of the N points (or k columns) into groups that share one filter and its manoeuvre
            detection (default: one group). See :func:`landmark_groups`.
        noise_gain: (T,) or (T, N) >= 1, per frame (and point): the measurement-noise std there is the group's
            times this (a frame the caller trusts less: a hand over the face). A group takes the mean over its
            points. None: 1 everywhere.

    Returns:
        Smoothed track, same shape; frames between the first and last valid one are estimated (gaps are
        bridged by the smoother), frames outside are NaN.
    """
    x, shape = _as_points(track)
    p = params or RtsParams()
    if fps <= 0:
        raise UsageError(f"rts_smooth: fps must be positive, got {fps}")
    sc = np.broadcast_to(np.asarray(scale, dtype=np.float64), x.shape[1:])
    xn = x / sc
    out = np.full_like(xn, np.nan)
    groups = [np.arange(x.shape[1])] if groups is None else [np.asarray(g, dtype=np.int64) for g in groups]
    gain = None
    if noise_gain is not None:
        gain = np.asarray(noise_gain, dtype=np.float64)
        gain = np.broadcast_to(gain[:, None] if gain.ndim == 1 else gain, x.shape[:2])
        if not (np.isfinite(gain).all() and (gain >= 1.0).all()):
            raise UsageError("rts_smooth: noise_gain must be finite and >= 1")
    for g in groups:
        zg = xn[:, g].reshape(x.shape[0], -1)
        sm, _ = _rts_group(zg, 1.0 / fps, p, None if gain is None else gain[:, g].mean(1))
        out[:, g] = sm.reshape(x.shape[0], len(g), x.shape[2])
    return (out * sc).reshape(shape)


def landmark_groups(n: int = 478, topology=None) -> list[np.ndarray]:
    """A default partition of the landmarks into parts that move independently: the mouth and everything below
    the top of the upper lip (jaw, chin), the eyes with their lids, irises and brows, and the rest of the face
    (which moves with the head). Each part gets its own manoeuvre detection in :func:`rts_smooth`.
    ``topology``: a :class:`vidswap.faces.topology.MeshTopology` (loaded when None)."""
    topo = topology or load_topology()
    can = load_static_data()["canonical"]
    lip_top = can[topo.regions["lips_outer"], 1].min()
    mouth = {i for i in range(468) if can[i, 1] >= lip_top}
    mouth |= set(topo.regions["lips_outer"].tolist()) | set(topo.regions["lips_inner"].tolist())
    eye_contours = set(topo.regions["left_eye"].tolist()) | set(topo.regions["right_eye"].tolist())
    eyes = set(eye_contours)
    for name in ("left_brow", "right_brow"):
        eyes |= set(topo.regions[name].tolist())
    eyes |= set(range(468, 478))
    for a, b in topo.edges.tolist():  # the lids: the ring of mesh points around each eye contour
        if a in eye_contours:
            eyes.add(b)
        if b in eye_contours:
            eyes.add(a)
    eyes -= mouth
    mouth_idx = np.array(sorted(i for i in mouth if i < n), dtype=np.int64)
    eye_idx = np.array(sorted(i for i in eyes if i < n), dtype=np.int64)
    rest = np.array(sorted(set(range(n)) - set(mouth_idx.tolist()) - set(eye_idx.tolist())), dtype=np.int64)
    return [g for g in (rest, eye_idx, mouth_idx) if g.size]


POSE_COLUMNS = ("yaw", "pitch", "roll", "tx", "ty", "tz", "log_s")


def pose_units(scale_px: float) -> np.ndarray:
    """(7,) input units per face-scale unit of the pose vector ``POSE_COLUMNS`` (see
    :func:`vidswap.faces.pose.pose_vector`): a rotation of 1 rad (57.3 degrees) or a relative scale change of 1
    moves the unit-radius canonical face's points by about 1 face unit; translations are divided by the scale
    ``s`` (pixels per canonical unit)."""
    deg = 180.0 / np.pi
    return np.array([deg, deg, deg, scale_px, scale_px, scale_px, 1.0])


def smooth_pose(params: np.ndarray, fps: float, method: str = "rts",
                smoothing: RtsParams | OneEuroParams | None = None) -> np.ndarray:
    """Smooth a (T, 7) pose-vector track (``POSE_COLUMNS``: degrees, pixels, log scale) in face units
    (:func:`pose_units`), so the same parameters as for landmarks apply. One filter group for all columns (a
    head turn moves yaw and translation together). Returns (T, 7)."""
    x = np.asarray(params, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(POSE_COLUMNS):
        raise UsageError(f"smooth_pose: expected (T, {len(POSE_COLUMNS)}), got {x.shape}")
    if method == "none":
        return x.copy()
    units = pose_units(float(np.exp(np.nanmedian(x[:, 6]))))
    if method == "rts":
        p = smoothing if isinstance(smoothing, RtsParams) else None
        return rts_smooth(x, fps, p, scale=units[:, None])
    if method == "one_euro":
        p = smoothing if isinstance(smoothing, OneEuroParams) else OneEuroParams()
        # one point with 7 coordinates: one shared speed-adaptive cut-off
        return one_euro((x / units)[:, None, :], fps, p)[:, 0, :] * units
    raise UsageError(f"unknown smoothing method {method!r}; use rts, one_euro or none")


def smooth_landmarks(track: np.ndarray, fps: float, method: str = "rts",
                     params: RtsParams | OneEuroParams | None = None,
                     groups: Sequence[Sequence[int]] | None = None,
                     motion: np.ndarray | None = None, motion_gate: float | None = None,
                     noise_gain: np.ndarray | None = None) -> np.ndarray:
    """Smooth a (T, 478, 3) landmark track in face-scale units (:func:`face_scale`).

    ``method``: ``"rts"`` (zero-phase; manoeuvre detection per part, ``groups`` default
    :func:`landmark_groups`), ``"one_euro"`` (causal) or ``"none"``. Frames that are NaN (misses, or frames a
    caller rejected as bad) are bridged by ``rts`` and held by ``one_euro``. Returns (T, N, 3) float64.

    ``motion``: (T, 2, 3) the face's image motion from frame t-1 to t (affine maps of frame pixels, NaN where
    unknown; :func:`vidswap.faces.motion.face_motion`). The track then follows the path that motion traces from
    its first frame (:func:`vidswap.faces.motion.motion_path`) and only its departure from that path (x, y) is
    smoothed: a complementary filter, fast motion from the image, position from the landmarks.

    ``motion_gate``: with ``motion`` and ``rts``, the manoeuvre gate of the departure from the motion path (0: no
    manoeuvre detection), in place of ``params.gate``. The fast moves are the image motion's; what departs from
    it fast is mostly the landmark model's noise (on a face leaving the frame, around blinks and quick
    expressions), which the gate would take for a manoeuvre and let through. None keeps ``params.gate``.

    ``noise_gain``: with ``rts``, (T,) or (T, N) >= 1: the measurement noise's std is multiplied by it on those
    frames (points), so the track leans on its neighbours (and, with ``motion``, on the image motion) there
    (:func:`rts_smooth`). Ignored by ``one_euro``.
    """
    x = np.asarray(track, dtype=np.float64)
    if method == "none":
        return x.copy()
    scale = face_scale(x)
    path = None
    if motion is not None:
        from vidswap.faces.motion import motion_path

        if len(motion) != len(x):
            raise UsageError(f"smooth_landmarks: {len(motion)} motions for {len(x)} frames")
        first = int(np.flatnonzero(np.isfinite(x).all(axis=(1, 2)))[0]) if np.isfinite(x).any() else 0
        path = np.zeros(x.shape[:2] + (2,))
        path[first:] = motion_path(x[first, :, :2], motion[first:])
        x = x.copy()
        x[..., :2] -= path
    if method == "rts":
        rts = params if isinstance(params, RtsParams) else None
        if path is not None and motion_gate is not None:
            rts = replace(rts or RtsParams(), gate=motion_gate)
        if groups is None and x.shape[1] in (468, 478):
            groups = landmark_groups(x.shape[1])
        out = rts_smooth(x, fps, rts, scale, groups, noise_gain)
    elif method == "one_euro":
        out = one_euro(x, fps, params if isinstance(params, OneEuroParams) else None, scale)
    else:
        raise UsageError(f"unknown smoothing method {method!r}; use rts, one_euro or none")
    if path is not None:
        out[..., :2] += path
    return out
