"""Head pose and expression from dense 3D landmarks: the FaceVid2Vid / LivePortrait decomposition

    x = s · R · (x_c + δ) + t

with ``x`` (478, 3) landmarks in frame pixels (x right, y down, z away from the camera in the same pixel
scale: MediaPipe's convention, smaller z = closer), ``x_c`` the identity's neutral face in the canonical frame,
``δ`` the expression offset, ``s`` scale, ``R`` rotation, ``t`` translation (column vectors).

Canonical frame: the frame coordinates of a face looking straight into the lens: x toward the subject's left
(image right), y down, z away from the camera; the face's symmetry plane is x = 0, it looks along -z, the 468
mesh points are centred on the origin with unit RMS radius. ``R = I`` is a frontal, upright face.

Euler angles (degrees), intrinsic yaw -> pitch -> roll::

    R = R_y(yaw) · R_x(pitch) · R_z(roll)        (right-handed rotations about the frame axes)

* yaw about y: positive turns the face toward image left (the subject's right),
* pitch about x: positive tilts the face down (chin toward the chest),
* roll about z (the face's viewing axis): positive turns the head clockwise on screen (top toward image right).

All functions are batched torch functions (numpy inputs are accepted and converted); shapes in docstrings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidswap.errors import UsageError

DATA_FILE = Path(__file__).resolve().parent / "data" / "canonical_face.npz"

# Points used to fit s, R, t: parts of the face that move least with expression, spread wide enough to fix the
# rotation well. Chosen by the per-point non-rigid residual over a strongly expressive real clip (pexels_clip:
# residual after a rigid fit, median + 90th percentile over frames, symmetrised) and kept mirror-symmetric:
#   forehead (mid-forehead above the brows, not the brows themselves or the hairline):
#       151, 9, 8, 108/337, 69/299
#   nose bridge and side walls (the most rigid part of the mesh), not the nostrils, tip or alae:
#       168, 6, 197, 195, 5, 122/351, 196/419, 3/248, 188/412, 174/399, 236/456, 51/281, 245/465
#   cheekbones (upper cheek under the eyes, not the lower cheek that moves with a smile):
#       121/350, 47/277, 120/349, 231/451, 232/452, 128/357, 114/343, 217/437, 126/355, 100/329, 142/371
# Excluded: mouth, lips, jaw, chin, eyes, eyelids, brows, irises and the face-oval silhouette points (which
# slide along the cheek with yaw).
RIGID_INDICES: tuple[int, ...] = (
    151, 9, 8, 108, 337, 69, 299,
    168, 6, 197, 195, 5, 122, 351, 196, 419, 3, 248, 188, 412, 174, 399, 236, 456, 51, 281, 245, 465,
    121, 350, 47, 277, 120, 349, 231, 451, 232, 452, 128, 357, 114, 343, 217, 437, 126, 355, 100, 329, 142, 371,
)


@dataclass
class Pose:
    """Decomposed head pose of B faces.

    Attributes:
        s: (B,) scale (frame pixels per canonical unit).
        R: (B, 3, 3) rotation, canonical -> frame.
        t: (B, 3) translation in frame pixels.
        yaw, pitch, roll: (B,) degrees (convention in the module docstring).
        x_c_obs: (B, N, 3) the observed landmarks in the canonical frame, ``R^T (x - t) / s``
            (= x_c + δ: identity shape plus expression).
        rms: (B,) RMS residual of the rigid fit on the fitted points, canonical units.
    """

    s: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    yaw: torch.Tensor
    pitch: torch.Tensor
    roll: torch.Tensor
    x_c_obs: torch.Tensor
    rms: torch.Tensor


def _as_tensor(x, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if dtype is not None:
        return t.to(dtype)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def umeyama(src, dst, weights=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform (Umeyama 1991) with ``dst ≈ s · R · src + t``, batched.

    Args:
        src: (B, N, 3) source points.
        dst: (B, N, 3) target points.
        weights: optional (B, N) or (N,) non-negative point weights.

    Returns:
        s (B,), R (B, 3, 3) proper rotation (det +1), t (B, 3); same dtype and device as ``dst``.
    """
    dst = _as_tensor(dst)
    src = _as_tensor(src, dst.dtype).to(dst.device)
    if src.ndim != 3 or src.shape != dst.shape or src.shape[-1] != 3:
        raise UsageError(f"umeyama: src and dst must both be (B, N, 3), got {tuple(src.shape)} and "
                         f"{tuple(dst.shape)}")
    b, n, _ = dst.shape
    w = torch.ones(b, n, dtype=dst.dtype, device=dst.device) if weights is None else \
        _as_tensor(weights, dst.dtype).to(dst.device).expand(b, n)
    w = w / w.sum(-1, keepdim=True)
    mu_s = (w[..., None] * src).sum(1)
    mu_d = (w[..., None] * dst).sum(1)
    a = src - mu_s[:, None]
    d = dst - mu_d[:, None]
    cov = torch.einsum("bn,bni,bnj->bij", w, d, a)
    u, sig, vh = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    diag = torch.ones(b, 3, dtype=dst.dtype, device=dst.device)
    diag[:, 2] = sign
    rot = u @ torch.diag_embed(diag) @ vh
    var_s = (w * (a ** 2).sum(-1)).sum(-1)
    scale = (sig * diag).sum(-1) / var_s
    trans = mu_d - scale[:, None] * torch.einsum("bij,bj->bi", rot, mu_s)
    return scale, rot, trans


def matrix_from_euler(yaw, pitch, roll) -> torch.Tensor:
    """(B,) yaw, pitch, roll in degrees -> (B, 3, 3) ``R_y(yaw) · R_x(pitch) · R_z(roll)``."""
    yaw = _as_tensor(yaw)
    pitch = _as_tensor(pitch, yaw.dtype)
    roll = _as_tensor(roll, yaw.dtype)
    y, p, r = (torch.deg2rad(v) for v in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = torch.cos(y), torch.sin(y), torch.cos(p), torch.sin(p), torch.cos(r), torch.sin(r)
    one, zero = torch.ones_like(y), torch.zeros_like(y)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*y.shape, 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(*y.shape, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*y.shape, 3, 3)
    return ry @ rx @ rz


def euler_from_matrix(R) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 3, 3) rotation -> (yaw, pitch, roll) each (B,) in degrees, inverse of :func:`matrix_from_euler`
    for pitch in (-90, 90)."""
    R = _as_tensor(R)
    pitch = torch.asin(torch.clamp(-R[..., 1, 2], -1.0, 1.0))
    yaw = torch.atan2(R[..., 0, 2], R[..., 2, 2])
    roll = torch.atan2(R[..., 1, 0], R[..., 1, 1])
    return torch.rad2deg(yaw), torch.rad2deg(pitch), torch.rad2deg(roll)


def rotation_angle(R_a, R_b) -> torch.Tensor:
    """(B, 3, 3), (B, 3, 3) -> (B,) geodesic angle in degrees between two rotations."""
    R_a = _as_tensor(R_a)
    R_b = _as_tensor(R_b, R_a.dtype)
    rel = R_a.transpose(-1, -2) @ R_b
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.acos(torch.clamp(cos, -1.0, 1.0)))


def canonical_face(path: Path | str = DATA_FILE) -> torch.Tensor:
    """(478, 3) float32 canonical face: frontal, mirror-symmetric, centred, unit RMS radius (module docstring).

    Built by ``python tools/build_canonical.py`` from a real frontal face (median of the first frames
    of the sample clip ``single_face_clip``), symmetrised with the mirror map.
    """
    with np.load(path) as z:
        return torch.from_numpy(z["canonical"].astype(np.float32))


def decompose(points, canonical=None, rigid_idx=None, weights=None) -> Pose:
    """Fit ``x = s R (x_c + δ) + t`` to landmarks.

    Args:
        points: (B, N, 3) landmarks in frame pixels (N = 478, or 468 without irises).
        canonical: (N', 3) canonical face, N' >= N (default :func:`canonical_face`).
        rigid_idx: indices of the points the similarity is fitted on (default :data:`RIGID_INDICES`).
        weights: optional (len(rigid_idx),) or (B, len(rigid_idx)) weights of those points.

    Returns:
        Pose with s, R, t, Euler angles and ``x_c_obs = R^T (x - t) / s`` (B, N, 3) for all points. Faces
        with NaN among the fitted points (misses) get NaN everywhere.
    """
    x = _as_tensor(points)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise UsageError(f"decompose: points must be (B, N, 3), got {tuple(x.shape)}")
    can = canonical_face() if canonical is None else _as_tensor(canonical)
    can = can.to(dtype=x.dtype, device=x.device)[: x.shape[1]]
    idx = torch.as_tensor(RIGID_INDICES if rigid_idx is None else rigid_idx, dtype=torch.long, device=x.device)
    b = x.shape[0]
    valid = torch.isfinite(x[:, idx]).all(-1).all(-1)  # frames with a missing face: NaN out
    s = torch.full((b,), float("nan"), dtype=x.dtype, device=x.device)
    R = torch.full((b, 3, 3), float("nan"), dtype=x.dtype, device=x.device)
    t = torch.full((b, 3), float("nan"), dtype=x.dtype, device=x.device)
    src = can[idx].expand(b, -1, -1)
    if bool(valid.any()):
        w = None if weights is None else _as_tensor(weights, x.dtype).to(x.device)
        if w is not None and w.ndim == 2:
            w = w[valid]
        s[valid], R[valid], t[valid] = umeyama(src[valid], x[valid][:, idx], w)
    x_c_obs = torch.einsum("bji,bnj->bni", R, x - t[:, None]) / s[:, None, None]
    fit = x_c_obs[:, idx] - src
    rms = torch.sqrt((fit ** 2).sum(-1).mean(-1))
    yaw, pitch, roll = euler_from_matrix(R)
    return Pose(s=s, R=R, t=t, yaw=yaw, pitch=pitch, roll=roll, x_c_obs=x_c_obs, rms=rms)


def compose(s, R, t, x_c, delta=None) -> torch.Tensor:
    """``x = s · R · (x_c + δ) + t``.

    Args:
        s: (B,) scale; R: (B, 3, 3); t: (B, 3).
        x_c: (N, 3) or (B, N, 3) canonical-frame shape (identity neutral, or ``x_c_obs``).
        delta: optional (B, N, 3) or (N, 3) expression offset.

    Returns:
        (B, N, 3) landmarks in frame pixels.
    """
    R = _as_tensor(R)
    s = _as_tensor(s, R.dtype).to(R.device)
    t = _as_tensor(t, R.dtype).to(R.device)
    shape = _as_tensor(x_c, R.dtype).to(R.device)
    if delta is not None:
        shape = shape + _as_tensor(delta, R.dtype).to(R.device)
    shape = shape.expand(R.shape[0], -1, -1)
    return s[:, None, None] * torch.einsum("bij,bnj->bni", R, shape) + t[:, None]


def pose_vector(pose: Pose) -> torch.Tensor:
    """Pose -> (B, 7) ``[yaw, pitch, roll (degrees), tx, ty, tz (pixels), log s]`` (for smoothing)."""
    return torch.cat([torch.stack([pose.yaw, pose.pitch, pose.roll], -1), pose.t, torch.log(pose.s)[:, None]], -1)


def pose_from_vector(vec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 7) pose vector (:func:`pose_vector`) -> ``(s (B,), R (B, 3, 3), t (B, 3))``."""
    v = _as_tensor(vec)
    return torch.exp(v[:, 6]), matrix_from_euler(v[:, 0], v[:, 1], v[:, 2]), v[:, 3:6]


def expression(x_c_obs, neutral) -> torch.Tensor:
    """Expression offset ``δ = x_c_obs - neutral``: (B, N, 3), (N, 3) -> (B, N, 3) (canonical units)."""
    x = _as_tensor(x_c_obs)
    return x - _as_tensor(neutral, x.dtype).to(x.device)


def expression_energy(x_c_obs, reference, idx=None) -> torch.Tensor:
    """(T, N, 3), (N, 3) -> (T,) mean squared distance to a reference shape over points ``idx`` (default: all
    mesh points that are not rigid)."""
    x = _as_tensor(x_c_obs)
    ref = _as_tensor(reference, x.dtype).to(x.device)
    if idx is None:
        mask = torch.ones(min(x.shape[1], 468), dtype=torch.bool)
        mask[list(RIGID_INDICES)] = False
        idx = torch.nonzero(mask).squeeze(1)
    return ((x[:, idx] - ref[idx]) ** 2).sum(-1).mean(-1)


def neutral_shape(x_c_obs, quantile: float = 0.3, min_frames: int = 3, reference=None) -> torch.Tensor:
    """Robust neutral (identity) shape of one track in the canonical frame.

    ``(T, N, 3) -> (N, 3)``. Expression energy (:func:`expression_energy`, over the non-rigid mesh points) of
    every frame is measured against ``reference`` (default: the neutral-expression canonical face; an
    identity's own shape differs from it by a constant offset, so the ranking follows the expression); the
    calmest ``quantile`` of the frames (at least ``min_frames``) give a first per-point median; the energies
    are measured again against that median, and the result is the per-point median of the calmest frames then.
    A track that smiles or talks most of the time still gets its calm frames. Frames with NaN (misses) are
    ignored.
    """
    x = _as_tensor(x_c_obs)
    if x.ndim != 3:
        raise UsageError(f"neutral_shape: expected (T, N, 3), got {tuple(x.shape)}")
    valid = torch.isfinite(x).all(-1).all(-1)
    x = x[valid]
    if x.shape[0] == 0:
        raise UsageError("neutral_shape: the track has no valid frames")
    ref = canonical_face() if reference is None else _as_tensor(reference)
    ref = ref.to(dtype=x.dtype, device=x.device)[: x.shape[1]]
    k = max(min(min_frames, x.shape[0]), int(math.ceil(quantile * x.shape[0])))
    for _ in range(2):
        calm = torch.argsort(expression_energy(x, ref))[:k]
        ref = x[calm].median(dim=0).values
    return ref
