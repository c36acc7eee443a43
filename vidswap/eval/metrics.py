"""Evaluation metrics of identity, geometry and regions: pure functions over arrays (no models, no files), each
with an exact test. The pixel measures over frames (flicker, jitter, sharpness, seams) are in
:mod:`vidswap.eval.frame_metrics`.

Conventions: images are HxWx3 (or HxW) arrays, uint8 / uint16 / float in [0, 1]; intensity measures are reported
in 8-bit levels (0-255) whatever the input depth. Masks are HxW bool or float (> 0.5 = inside). Landmarks are
(..., 106, 2) InsightFace 2d106 points in frame pixels (layout in :mod:`vidswap.eval.judges`). Rotations and
Euler angles follow :mod:`vidswap.faces.pose` (canonical face frame: x image-right, y down, z away from the
camera; ``R`` maps canonical -> frame).

Groups:

* identity -- :func:`identity_similarity`, :func:`mean_embedding`, :func:`retrieval` (FaceForensics++ protocol);
* geometry -- :func:`fit_pose` (scaled-orthographic fit of a 3D template to 2D landmarks), :func:`pose_error`,
  :func:`pose_offset`, :func:`pose_motion_error`,
  :func:`mouth_open_ratio`, :func:`eye_aspect_ratio`, :func:`expression_features`, :func:`expression_error`;
* regions and statistics -- :func:`face_polygon`, :func:`polygon_mask`, :func:`summarize`.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from vidswap.errors import UsageError
from vidswap.eval import judges
from vidswap.faces.identity import cosine, l2_normalize

# --------------------------------------------------------------------------------------------------------------
# identity


def mean_embedding(embeddings: np.ndarray) -> np.ndarray:
    """(N, D) embeddings -> (D,) unit-length mean of their unit-length versions (several source photos)."""
    e = l2_normalize(np.asarray(embeddings, dtype=np.float32).reshape(-1, np.shape(embeddings)[-1]))
    if len(e) == 0:
        raise UsageError("mean_embedding: no embeddings")
    return l2_normalize(e.mean(0))


def identity_similarity(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity of each embedding to a reference: (N, D), (D,) or (N, D) -> (N,) float64.

    Rows that are NaN (no face found) give NaN.
    """
    a = np.asarray(embeddings, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    return np.asarray(cosine(a, b), dtype=np.float64).reshape(-1) if a.ndim > 1 else \
        np.asarray([cosine(a, b)], dtype=np.float64)


def retrieval(result_embeddings_per_clip: Sequence[np.ndarray], gallery: np.ndarray, true_index: Sequence[int],
              k: int = 5) -> tuple[float, float]:
    """Identity retrieval (FaceForensics++ protocol, as in FaceShifter / MegaFS / E4S).

    Every swapped frame is a query; it is matched against the gallery of identities by cosine similarity and
    counts as retrieved at rank r when exactly r gallery entries score strictly higher than its true identity
    (ties go to the true identity). Rates are over all query frames of all clips (the protocol samples 10
    frames evenly per clip, so clips weigh equally).

    Args:
        result_embeddings_per_clip: per swapped clip, (N_i, D) embeddings of its sampled frames. NaN rows
            (no face found) are skipped.
        gallery: (G, D) one embedding per identity (e.g. the mean of an identity's source photos).
        true_index: per clip, the gallery row of its source identity.
        k: the second rank reported (top-k).

    Returns:
        (top-1 rate, top-k rate) in [0, 1]; NaN when there is no valid query.
    """
    if len(result_embeddings_per_clip) != len(true_index):
        raise UsageError(f"retrieval: {len(result_embeddings_per_clip)} clips but {len(true_index)} true indices")
    gal = l2_normalize(np.asarray(gallery, dtype=np.float64))
    hits1 = hitsk = total = 0
    for emb, true in zip(result_embeddings_per_clip, true_index):
        e = np.asarray(emb, dtype=np.float64).reshape(-1, gal.shape[1])
        e = e[np.isfinite(e).all(1)]
        if len(e) == 0:
            continue
        sims = l2_normalize(e) @ gal.T  # (N, G)
        rank = (sims > sims[:, [int(true)]]).sum(1)
        hits1 += int((rank < 1).sum())
        hitsk += int((rank < k).sum())
        total += len(e)
    if total == 0:
        return float("nan"), float("nan")
    return hits1 / total, hitsk / total


# --------------------------------------------------------------------------------------------------------------
# head pose


def _rotation_from_rotvec(v: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(v, dtype=np.float64).reshape(3)).as_matrix()


def fit_pose(points: np.ndarray, template: np.ndarray | None = None, refine: bool = True
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Head pose from 2D landmarks: scaled-orthographic fit ``x ≈ s · (R X)[:2] + t`` of a 3D template.

    A linear affine fit gives ``s R[:2]`` (the nearest scaled pair of orthonormal rows, by SVD); the third row
    is their cross product; Gauss-Newton on (rotation vector, log s, t) then minimises the reprojection error.
    Exact for noise-free scaled-orthographic projections of the template.

    Args:
        points: (B, N, 2) or (N, 2) landmarks in pixels (by default the 2d106 points ``judges.RIGID_106``;
            a (B, 106, 2) array is reduced to them).
        template: (N, 3) 3D points in the canonical face frame; default ``judges.RIGID_TEMPLATE``.
        refine: run the Gauss-Newton refinement.

    Returns:
        s (B,), R (B, 3, 3) canonical -> frame, t (B, 2), rms (B,) reprojection RMS in pixels (B = 1 for an
        (N, 2) input). Faces with NaN points give NaN.
    """
    tpl = np.asarray(judges.RIGID_TEMPLATE if template is None else template, dtype=np.float64)
    x = np.asarray(points, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if template is None and x.shape[1] == 106:
        x = x[:, list(judges.RIGID_106)]
    if x.shape[1:] != (len(tpl), 2):
        raise UsageError(f"fit_pose: points {x.shape[1:]} do not match the template ({len(tpl)}, 3)")
    b = len(x)
    s_out = np.full(b, np.nan)
    r_out = np.full((b, 3, 3), np.nan)
    t_out = np.full((b, 2), np.nan)
    rms = np.full(b, np.nan)
    Xc = tpl - tpl.mean(0)
    pinv = np.linalg.pinv(Xc)  # (3, N)
    for i in range(b):
        q = x[i]
        if not np.isfinite(q).all():
            continue
        qm = q.mean(0)
        A = (pinv @ (q - qm)).T  # (2, 3): q - qm ≈ A Xc
        u, sig, vt = np.linalg.svd(A, full_matrices=False)
        rows = u @ vt
        R = np.vstack([rows, np.cross(rows[0], rows[1])])
        s = float(sig.mean())
        if refine:
            s, R = _refine_pose(q - qm, Xc, s, R)
        t = qm - s * (R[:2] @ tpl.mean(0))
        pred = s * tpl @ R[:2].T + t
        s_out[i], r_out[i], t_out[i] = s, R, t
        rms[i] = math.sqrt(float(((pred - q) ** 2).sum(1).mean()))
    return s_out, r_out, t_out, rms


def _refine_pose(q: np.ndarray, X: np.ndarray, s: float, R: np.ndarray, iters: int = 10
                 ) -> tuple[float, np.ndarray]:
    """Gauss-Newton on centred points: minimise ``|s (R X)[:2] - q|^2`` over a rotation update and log s."""
    log_s = math.log(max(s, 1e-12))
    for _ in range(iters):
        Y = X @ R.T  # rotated template (N, 3)
        sc = math.exp(log_s)
        res = (sc * Y[:, :2] - q).reshape(-1)
        # d/dw of R(w) X at w=0 (left-multiplied update exp([w]x) R): -[Y]x w -> columns for wx, wy, wz
        J = np.zeros((len(X), 2, 4))
        # cross(w, Y) = [wy Yz - wz Yy, wz Yx - wx Yz, wx Yy - wy Yx]
        J[:, 0, 1] = sc * Y[:, 2]
        J[:, 0, 2] = -sc * Y[:, 1]
        J[:, 1, 0] = -sc * Y[:, 2]
        J[:, 1, 2] = sc * Y[:, 0]
        J[:, :, 3] = sc * Y[:, :2]
        J = J.reshape(-1, 4)
        step, *_ = np.linalg.lstsq(J, -res, rcond=None)
        R = _rotation_from_rotvec(step[:3]) @ R
        log_s += step[3]
        if np.abs(step).max() < 1e-12:
            break
    return math.exp(log_s), R


def _finite_rotations(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3, 3) -> ((N, 3, 3) float64, mask (...,) of the rotations without NaN/inf)."""
    R = np.asarray(R, dtype=np.float64)
    ok = np.isfinite(R).all(axis=(-2, -1))
    return R[ok], ok


def euler_degrees(R: np.ndarray) -> np.ndarray:
    """(B, 3, 3) rotations -> (B, 3) yaw, pitch, roll in degrees (``vidswap.faces.pose`` convention:
    ``R = R_y(yaw) R_x(pitch) R_z(roll)``, scipy's intrinsic ``"YXZ"``); NaN rows stay NaN."""
    finite, ok = _finite_rotations(R)
    out = np.full(ok.shape + (3,), np.nan)
    if finite.size:
        out[ok] = Rotation.from_matrix(finite).as_euler("YXZ", degrees=True)
    return out


def pose_error(R_result: np.ndarray, R_target: np.ndarray) -> dict[str, np.ndarray]:
    """Pose error between result and target head rotations, per face.

    Args:
        R_result, R_target: (B, 3, 3) rotations.

    Returns:
        ``angle`` (B,) geodesic angle between the rotations in degrees (the headline number); ``yaw``,
        ``pitch``, ``roll`` (B,) absolute Euler-angle differences; ``l2`` (B,) the L2 norm of the (yaw, pitch,
        roll) difference (what the seed papers report with Hopenet angles). NaN where either is NaN.
    """
    a = np.asarray(R_result, dtype=np.float64).reshape(-1, 3, 3)
    b = np.asarray(R_target, dtype=np.float64).reshape(-1, 3, 3)
    ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
    angle = np.full(len(a), np.nan)
    if ok.any():  # the relative rotation's angle (quaternion based: exact 0 for equal rotations, exact when small)
        angle[ok] = np.degrees((Rotation.from_matrix(a[ok]).inv() * Rotation.from_matrix(b[ok])).magnitude())
    d = euler_degrees(a) - euler_degrees(b)
    d = (d + 180.0) % 360.0 - 180.0
    return {"angle": angle, "yaw": np.abs(d[:, 0]), "pitch": np.abs(d[:, 1]), "roll": np.abs(d[:, 2]),
            "l2": np.linalg.norm(d, axis=1)}


def pose_offset(R_result: np.ndarray, R_target: np.ndarray) -> np.ndarray:
    """The constant rotation ``O`` in the head's own frame that best maps the target's head rotations onto the
    result's over a clip, ``R_result ≈ R_target @ O``: (B, 3, 3), (B, 3, 3) -> (3, 3).

    The least-squares rotation over the frames where both are finite (the SVD projection of the sum of
    ``R_target^T R_result`` onto the rotations); the identity when there is no such frame. A template fit reads a
    face's own proportions (a longer nose, lower-set eyes) as a constant tilt: one person's face turned exactly as
    another's reads a few degrees apart on every frame, and that is this offset, not a difference in motion.
    """
    a = np.asarray(R_result, dtype=np.float64).reshape(-1, 3, 3)
    b = np.asarray(R_target, dtype=np.float64).reshape(-1, 3, 3)
    ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
    if not ok.any():
        return np.eye(3)
    u, _, vt = np.linalg.svd((b[ok].transpose(0, 2, 1) @ a[ok]).sum(0))
    return u @ np.diag([1.0, 1.0, 1.0 if np.linalg.det(u @ vt) >= 0 else -1.0]) @ vt


def pose_motion_error(R_result: np.ndarray, R_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far the result's head motion departs from the target's: per face, the geodesic angle in degrees
    between ``R_result`` and ``R_target @ O`` (:func:`pose_offset`, the clip's constant offset taken out), and
    ``O``. (B, 3, 3), (B, 3, 3) -> (B,) (NaN where either is NaN), (3, 3). Exactly 0 (to float rounding) when
    the result is the target turned by one fixed rotation in the head's frame."""
    offset = pose_offset(R_result, R_target)
    b = np.asarray(R_target, dtype=np.float64).reshape(-1, 3, 3)
    return pose_error(R_result, b @ offset)["angle"], offset


# --------------------------------------------------------------------------------------------------------------
# expression


def _gap(points: np.ndarray, upper: Sequence[int], lower: Sequence[int]) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return np.linalg.norm(p[..., list(upper), :] - p[..., list(lower), :], axis=-1).mean(-1)


def _dist(points: np.ndarray, a: int, b: int) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return np.linalg.norm(p[..., a, :] - p[..., b, :], axis=-1)


def mouth_open_ratio(points: np.ndarray) -> np.ndarray:
    """Mouth opening: mean inner-lip gap (three upper/lower pairs) / mouth width (outer corners).

    (..., 106, 2) -> (...). ~0 closed, ~0.3-0.5 wide open.
    """
    return _gap(points, judges.MOUTH_INNER_UPPER, judges.MOUTH_INNER_LOWER) / np.maximum(
        _dist(points, *judges.MOUTH_CORNERS), 1e-9)


def eye_aspect_ratio(points: np.ndarray) -> np.ndarray:
    """Eye aspect ratio (Soukupová & Čech): mean lid gap (three upper/lower pairs) / corner distance.

    (..., 106, 2) -> (..., 2): image-left eye, image-right eye. ~0.25-0.35 open, < 0.1 closed.
    """
    left = _gap(points, judges.LEFT_EYE_UPPER, judges.LEFT_EYE_LOWER) / np.maximum(
        _dist(points, *judges.LEFT_EYE_CORNERS), 1e-9)
    right = _gap(points, judges.RIGHT_EYE_UPPER, judges.RIGHT_EYE_LOWER) / np.maximum(
        _dist(points, *judges.RIGHT_EYE_CORNERS), 1e-9)
    return np.stack([left, right], -1)


def expression_features(points: np.ndarray) -> np.ndarray:
    """(..., 106, 2) -> (..., 3): mouth opening ratio, image-left and image-right eye aspect ratios.

    Ratios of distances, so invariant to scale, in-plane rotation and translation of the face.
    """
    return np.concatenate([mouth_open_ratio(points)[..., None], eye_aspect_ratio(points)], -1)


def expression_error(result_points: np.ndarray, target_points: np.ndarray) -> dict[str, np.ndarray]:
    """Expression error between result and target landmarks, per face: (B, 106, 2) x2 ->

    ``mouth`` |Δ mouth opening ratio|, ``eyes`` mean |Δ eye aspect ratio| over both eyes, ``l2`` the L2 norm of
    the difference of :func:`expression_features` (all (B,), unitless ratios).
    """
    d = expression_features(result_points) - expression_features(target_points)
    d = d.reshape(-1, 3)
    return {"mouth": np.abs(d[:, 0]), "eyes": np.abs(d[:, 1:]).mean(1), "l2": np.linalg.norm(d, axis=1)}


# --------------------------------------------------------------------------------------------------------------
# regions


def face_polygon(points: np.ndarray, forehead: float = 0.3) -> np.ndarray:
    """Face region outline from 2d106 points: convex hull of the points plus the brows lifted toward the
    forehead by ``forehead`` x the brow-to-chin distance (the 106 points stop at the brows; swaps cover the
    forehead up to about the hairline). (106, 2) -> (K, 2) float32 polygon."""
    p = np.asarray(points, dtype=np.float64)
    brows = p[list(judges.BROWS)]
    up = brows.mean(0) - p[judges.CHIN]
    lifted = brows + forehead * up
    hull = cv2.convexHull(np.concatenate([p, lifted]).astype(np.float32))
    return hull.reshape(-1, 2)


def polygon_mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """(H, W) bool mask of the filled polygon (K, 2) in pixel coordinates (pixel centres at integers)."""
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    shift = 4
    pts = np.round(np.asarray(polygon, dtype=np.float64) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool)


def face_size(mask: np.ndarray) -> float:
    """Square root of a mask's area in pixels (a face-size length for relative widths)."""
    return math.sqrt(float(np.count_nonzero(np.asarray(mask) > 0.5)))


# --------------------------------------------------------------------------------------------------------------
# statistics


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """``mean``, ``median``, ``p95``, ``min``, ``max`` of the finite values and their count ``n`` (None for
    the statistics when there are none)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"mean": None, "median": None, "p95": None, "min": None, "max": None, "n": 0}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}
