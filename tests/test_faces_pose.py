"""Pose / expression decomposition x = s R (x_c + δ) + t."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import build_canonical  # tools/build_canonical.py (conftest puts tools/ on sys.path)
from vidswap.faces.pose import (RIGID_INDICES, canonical_face, compose, decompose, euler_from_matrix, expression,
                                matrix_from_euler, neutral_shape, pose_from_vector, pose_vector, rotation_angle,
                                umeyama)
from vidswap.faces.topology import load_topology

PORTRAITS = ("portrait_f1", "portrait_m7", "single_face_image")  # surprise, disgust, smile: real expressions


@pytest.fixture(scope="module")
def real_faces(media):
    runner = build_canonical.FaceMeshRunner()
    return {n: runner(build_canonical.read_rgb(media(n)))[0] for n in PORTRAITS}


def _random_similarity(b, gen):
    angles = (torch.rand(b, 3, generator=gen, dtype=torch.float64) - 0.5) * 120
    R = matrix_from_euler(angles[:, 0], angles[:, 1], angles[:, 2])
    s = torch.rand(b, generator=gen, dtype=torch.float64) * 100 + 50
    t = torch.randn(b, 3, generator=gen, dtype=torch.float64) * 100
    return s, R, t


def test_umeyama_exact_batched():
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(5, 40, 3, generator=gen, dtype=torch.float64)
    s, R, t = _random_similarity(5, gen)
    dst = s[:, None, None] * src @ R.transpose(1, 2) + t[:, None]
    s2, R2, t2 = umeyama(src, dst)
    torch.testing.assert_close(s2, s)
    torch.testing.assert_close(R2, R)
    torch.testing.assert_close(t2, t)
    assert torch.allclose(torch.linalg.det(R2), torch.ones(5, dtype=torch.float64))
    # weights: corrupted points with weight 0 do not matter
    bad = dst.clone()
    bad[:, :10] += 50.0
    w = torch.ones(40, dtype=torch.float64)
    w[:10] = 0
    s3, R3, t3 = umeyama(src, bad, w)
    torch.testing.assert_close(R3, R)
    torch.testing.assert_close(s3, s)
    # numpy in, torch out; a reflection in the data still gives a proper rotation
    s4, R4, _ = umeyama(src.numpy(), (src * torch.tensor([-1.0, 1, 1], dtype=torch.float64)).numpy())
    assert torch.allclose(torch.linalg.det(R4), torch.ones(5, dtype=torch.float64))


def test_euler_convention_and_roundtrip():
    yaw = torch.tensor([30.0, 0, 0, -44, 10], dtype=torch.float64)
    pitch = torch.tensor([0.0, 30, 0, 25, -80], dtype=torch.float64)
    roll = torch.tensor([0.0, 0, 30, -170, 5], dtype=torch.float64)
    R = matrix_from_euler(yaw, pitch, roll)
    y2, p2, r2 = euler_from_matrix(R)
    torch.testing.assert_close(torch.stack([y2, p2, r2]), torch.stack([yaw, pitch, roll]))
    fwd = torch.tensor([0.0, 0, -1], dtype=torch.float64)  # the canonical face looks along -z
    up = torch.tensor([0.0, -1, 0], dtype=torch.float64)  # y is down
    assert (R[0] @ fwd)[0] < -0.4  # yaw > 0: the face turns toward image left
    assert (R[1] @ fwd)[1] > 0.4  # pitch > 0: the face tilts down
    assert (R[2] @ up)[0] > 0.4  # roll > 0: the head top moves toward image right (clockwise on screen)
    # order: R = R_y(yaw) R_x(pitch) R_z(roll)
    Ry = matrix_from_euler(yaw, torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64))
    Rx = matrix_from_euler(torch.zeros(5, dtype=torch.float64), pitch, torch.zeros(5, dtype=torch.float64))
    Rz = matrix_from_euler(torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64), roll)
    torch.testing.assert_close(R, Ry @ Rx @ Rz)


def test_canonical_face():
    can = canonical_face()
    assert can.shape == (478, 3) and can.dtype == torch.float32
    mesh = can[:468].double()
    torch.testing.assert_close(mesh.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0)
    assert abs(float(mesh.pow(2).sum(1).mean().sqrt()) - 1.0) < 1e-5
    mirror = torch.from_numpy(load_topology().mirror)
    torch.testing.assert_close(can[mirror] * torch.tensor([-1.0, 1, 1]), can, atol=1e-6, rtol=0)
    assert can[1, 2] < mesh[:, 2].min() + 0.05  # the nose tip is the closest point to the camera
    assert can[263, 0] > 0 > can[33, 0]  # +x toward the subject's left eye (image right)
    assert can[152, 1] > can[10, 1]  # chin below forehead (y down)
    pose = decompose(can[None])
    torch.testing.assert_close(pose.R[0], torch.eye(3), atol=1e-5, rtol=0)
    assert abs(float(pose.s[0]) - 1) < 1e-5


def test_rigid_indices_symmetric():
    mirror = load_topology().mirror
    rigid = set(RIGID_INDICES)
    assert len(rigid) == len(RIGID_INDICES) == 50
    assert {int(mirror[i]) for i in rigid} == rigid
    topo = load_topology()
    for region in ("lips_outer", "lips_inner", "left_eye", "right_eye", "left_brow", "right_brow", "face_oval"):
        assert not rigid & set(topo.regions[region].tolist()), region


def test_compose_decompose_roundtrip(real_faces):
    x = torch.from_numpy(np.stack([real_faces[n] for n in PORTRAITS]))  # (3, 478, 3) float32 frame pixels
    pose = decompose(x)
    assert pose.x_c_obs.shape == (3, 478, 3) and pose.x_c_obs.dtype == torch.float32
    back = compose(pose.s, pose.R, pose.t, pose.x_c_obs)
    torch.testing.assert_close(back, x, atol=2e-3, rtol=0)  # float32, coordinates up to ~500 px
    x64 = x.double()
    p64 = decompose(x64)
    torch.testing.assert_close(compose(p64.s, p64.R, p64.t, p64.x_c_obs), x64, atol=1e-9, rtol=0)
    # with a neutral shape and expression: x_c + δ reproduces the same points
    neutral = neutral_shape(p64.x_c_obs)
    delta = expression(p64.x_c_obs, neutral)
    torch.testing.assert_close(compose(p64.s, p64.R, p64.t, neutral, delta), x64, atol=1e-9, rtol=0)
    # a missing face (NaN) gives NaN for that row only
    holes = x64.clone()
    holes[1] = float("nan")
    ph = decompose(holes)
    assert torch.isnan(ph.R[1]).all() and torch.isnan(ph.x_c_obs[1]).all()
    torch.testing.assert_close(ph.R[[0, 2]], p64.R[[0, 2]])
    # through the smoothing-friendly 7-vector
    s, R, t = pose_from_vector(pose_vector(p64))
    torch.testing.assert_close(compose(s, R, t, p64.x_c_obs), x64, atol=1e-9, rtol=0)


def _synthetic_expression(base: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B, 478, 3) canonical-frame shapes -> a random extra expression: jaw drop, smile (mouth corners up and
    out, cheeks raised -- which touches some of the rigid points), brow raise."""
    b = base.shape[0]
    y = base[..., 1]
    amount = torch.rand(b, 4, generator=gen, dtype=base.dtype)
    delta = torch.zeros_like(base)
    lower = torch.clamp(y - 0.25, min=0)  # below the upper lip: moves with the jaw
    delta[..., 1] += 0.35 * amount[:, :1] * lower
    delta[..., 0] += 0.05 * amount[:, 1:2] * torch.sign(base[..., 0]) * torch.exp(-((y - 0.45) / 0.2) ** 2)
    delta[..., 1] -= 0.04 * amount[:, 1:2] * torch.exp(-((y - 0.1) / 0.25) ** 2) * (base[..., 0].abs() > 0.3)
    delta[..., 1] -= 0.06 * amount[:, 2:3] * torch.exp(-((y + 0.55) / 0.12) ** 2)  # brows up
    return base + delta


def _perspective_landmarks(points: torch.Tensor, distance: float, centre: tuple[float, float]) -> torch.Tensor:
    """Camera-frame points (B, N, 3) in pixels at the face's depth, face centre at depth ``distance`` ->
    MediaPipe-style image landmarks: x, y by a pinhole with focal length ``distance`` (so 1 unit at the face's
    depth is 1 pixel), z = depth relative to the face centre in that pixel scale."""
    depth = distance + points[..., 2]
    x = distance * points[..., 0] / depth + centre[0]
    y = distance * points[..., 1] / depth + centre[1]
    return torch.stack([x, y, points[..., 2]], -1)


def _pose_errors(pose, R_true, angles):
    err = rotation_angle(pose.R.double(), R_true)
    euler_err = (torch.stack([pose.yaw, pose.pitch, pose.roll], -1).double() - angles).abs()
    return err, euler_err


@pytest.mark.parametrize("projection", ["weak_perspective", "perspective"])
def test_pose_recovery_within_2_degrees(real_faces, projection):
    """Real faces (3 identities with real expressions), rotated by known yaw/pitch/roll up to +-45 degrees each
    (all three at once), plus a random synthetic expression, projected to image landmarks (face ~220 px wide)
    with 0.7 px noise: the rotation comes back within 2 degrees.

    ``weak_perspective``: MediaPipe-like scaled orthographic image coordinates, face anywhere in the frame.
    ``perspective``: a pinhole camera 7 face widths away (a close-up), face on the optical axis (off-axis, the
    apparent rotation really is different: it is the rotation relative to the line of sight that is seen).
    """
    gen = torch.Generator().manual_seed(1)
    shapes = decompose(torch.from_numpy(np.stack([real_faces[n] for n in PORTRAITS])).double()).x_c_obs
    n = 90
    shape = _synthetic_expression(shapes[torch.arange(n) % len(PORTRAITS)], gen)
    angles = (torch.rand(n, 3, generator=gen, dtype=torch.float64) * 2 - 1) * 45
    angles[:8] = torch.tensor([[45, 0, 0], [-45, 0, 0], [0, 45, 0], [0, -45, 0], [0, 0, 45], [0, 0, -45],
                               [45, 45, 45], [-45, -45, -45]], dtype=torch.float64)
    R_true = matrix_from_euler(angles[:, 0], angles[:, 1], angles[:, 2])
    size = 90.0  # pixels per canonical unit (face width ~2.4 units ~ 220 px)
    cam = size * torch.einsum("bij,bnj->bni", R_true, shape)
    if projection == "perspective":
        img = _perspective_landmarks(cam, distance=7 * 2.4 * size, centre=(640.0, 360.0))
    else:
        offset = torch.randn(n, 1, 3, generator=gen, dtype=torch.float64) * torch.tensor([200.0, 100.0, 0.0])
        img = cam + offset + torch.tensor([640.0, 360.0, 0.0], dtype=torch.float64)
    img = img + torch.randn(img.shape, generator=gen, dtype=torch.float64) * 0.7
    pose = decompose(img.float())
    err, euler_err = _pose_errors(pose, R_true, angles)
    print(f"\npose recovery ({projection}, {n} faces): rotation error mean {err.mean():.2f} max {err.max():.2f} "
          f"deg; max |yaw| {euler_err[:, 0].max():.2f} |pitch| {euler_err[:, 1].max():.2f} "
          f"|roll| {euler_err[:, 2].max():.2f} deg")
    assert float(err.max()) <= 2.0
    assert float(euler_err.max()) <= 2.0
    assert pose.s.shape == (n,) and pose.t.shape == (n, 3)


def test_neutral_shape_is_robust():
    """A track that is expressive in most frames (25 of 40) of an identity that is not the canonical face: the
    neutral shape comes from the calm minority, where a plain median would give the expression."""
    gen = torch.Generator().manual_seed(2)
    can = canonical_face().double()
    identity = can * torch.tensor([1.06, 0.97, 1.1], dtype=torch.float64)  # wider, shorter, deeper face
    identity[:, 1] += 0.03 * torch.sin(3 * identity[:, 0])
    frames = identity.expand(40, -1, -1).clone() + torch.randn(40, 478, 3, generator=gen, dtype=torch.float64) * 0.003
    talk = _synthetic_expression(frames[:25], gen)
    talk[..., 1] += (frames[:25, :, 1] > 0.25) * 0.15  # mouth open
    frames[:25] = talk
    neutral = neutral_shape(frames)
    assert float((neutral - identity).norm(dim=-1).max()) < 0.02
    assert float((frames.median(0).values - identity).norm(dim=-1).max()) > 0.1
    frames[5] = float("nan")  # misses are ignored
    assert torch.isfinite(neutral_shape(frames)).all()
