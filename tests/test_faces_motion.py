"""The face's image motion between frames (optical flow -> one affine map) and the landmark smoother that follows
it: exact answers on synthetic points and pictures; on the real sample clip, the analysed track moves with the
plate's own optical flow where the head judders."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vidswap.faces.motion import MotionParams, apply_affine, clear_of, face_motion, fit_affine, gray8, motion_path
from vidswap.errors import UsageError
from vidswap.faces.smooth import landmark_groups, smooth_landmarks


def _affine(angle_deg: float, scale: float, tx: float, ty: float, centre=(0.0, 0.0)) -> np.ndarray:
    return cv2.getRotationMatrix2D(centre, angle_deg, scale) + np.array([[0, 0, tx], [0, 0, ty]])


def test_apply_affine_is_a_x_plus_b():
    m = np.array([[2.0, 0.0, 1.0], [0.0, -1.0, 3.0]])
    assert np.array_equal(apply_affine(m, np.array([[1.0, 2.0], [0.0, 0.0]])), [[3.0, 1.0], [1.0, 3.0]])


def test_fit_affine_is_exact_on_affine_points():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (50, 2))
    m = _affine(3.0, 1.02, 4.5, -2.25, centre=(100, 100))
    assert np.allclose(fit_affine(src, apply_affine(m, src)), m, atol=1e-5)


def test_fit_affine_shrugs_off_outliers():
    """10 % of the points moved 20 px off (a hand): the robust fit stays within 0.05 px of the true map at the
    inliers, the plain least-squares fit is off by more than a pixel."""
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (300, 2))
    m = _affine(-2.0, 0.98, -3.0, 1.5, centre=(100, 100))
    dst = apply_affine(m, src)
    bad = rng.choice(300, 30, replace=False)
    dst[bad] += [20.0, -15.0]
    good = np.setdiff1d(np.arange(300), bad)
    robust = np.abs(apply_affine(fit_affine(src, dst), src[good]) - apply_affine(m, src[good])).max()
    a = np.concatenate([src, np.ones((300, 1))], 1)
    plain = np.linalg.lstsq(a, dst, rcond=None)[0].T
    assert robust < 0.05
    assert np.abs(apply_affine(plain, src[good]) - apply_affine(m, src[good])).mean() > 1.0


def test_clear_of_keeps_the_points_outside_every_outline_by_the_margin():
    square = np.array([[10.0, 10.0], [30.0, 10.0], [30.0, 30.0], [10.0, 30.0]])
    other = square + 100.0
    pts = np.array([[20.0, 20.0], [33.0, 20.0], [40.0, 20.0], [0.0, 0.0], [120.0, 120.0], [20.0, 30.5]])
    assert clear_of(pts, [square, other], 5.0).tolist() == [False, False, True, True, False, False]
    assert clear_of(pts, [square], 0.0).tolist() == [False, True, True, True, True, True]
    assert clear_of(pts, [], 5.0).all()


def test_motion_path_follows_the_maps_and_holds_where_unknown():
    step = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    motions = np.stack([np.full((2, 3), np.nan), step, np.full((2, 3), np.nan), step])
    start = np.array([[0.0, 0.0], [10.0, 5.0]])
    path = motion_path(start, motions)
    assert path.shape == (4, 2, 2)
    assert np.array_equal(path[:, 0], [[0, 0], [2, -1], [2, -1], [4, -2]])
    assert np.array_equal(path[:, 1], [[10, 5], [12, 4], [12, 4], [14, 3]])


def _texture(size: int = 240, seed: int = 0) -> np.ndarray:
    """Smooth random texture (skin-like blobs at several scales), uint8."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), np.float32)
    for sigma in (2.0, 5.0, 12.0):
        img += cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), sigma) * sigma
    img = (img - img.min()) / (img.max() - img.min())
    return (40 + 180 * img).astype(np.uint8)


def test_face_motion_recovers_a_known_warp():
    """The current frame is the previous one warped by a known small similarity (sub-pixel translation, 1 degree
    roll, 1 % zoom): the measured map moves the points where the warp moves them, within 0.05 px."""
    prev = _texture()
    m = _affine(1.0, 1.01, 1.3, -0.7, centre=(120, 120))
    cur = cv2.warpAffine(prev, m, (240, 240), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    rng = np.random.default_rng(2)
    prev_pts = rng.uniform(70, 170, (200, 2))
    cur_pts = apply_affine(m, prev_pts)
    got = face_motion(prev, cur, prev_pts, cur_pts)
    assert np.abs(apply_affine(got, prev_pts) - cur_pts).max() < 0.05


def test_face_motion_of_rgb_frames_equals_that_of_their_luma():
    """RGB frames are converted to luma in the measured region only: the same map, bit for bit, as whole luma
    frames (the analysis's motion cost follows the face, not the plate)."""
    rng = np.random.default_rng(7)
    prev = np.ascontiguousarray(np.stack([_texture(seed=s) for s in (1, 2, 3)], -1))
    m = _affine(0.5, 1.0, 1.1, -0.4, centre=(120, 120))
    cur = cv2.warpAffine(prev, m, (240, 240), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    prev_pts = rng.uniform(60, 150, (200, 2))
    cur_pts = apply_affine(m, prev_pts)
    from_rgb = face_motion(prev, cur, prev_pts, cur_pts)
    assert np.isfinite(from_rgb).all()
    assert np.array_equal(from_rgb, face_motion(gray8(prev), gray8(cur), prev_pts, cur_pts))


def test_face_motion_measures_a_large_region_at_reduced_size():
    """A face region larger than ``max_side`` is measured at reduced size; the map is still in frame pixels."""
    prev = cv2.resize(_texture(seed=3), (600, 600), interpolation=cv2.INTER_CUBIC)
    m = _affine(0.0, 1.0, 2.5, 1.75)
    cur = cv2.warpAffine(prev, m, (600, 600), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    rng = np.random.default_rng(4)
    prev_pts = rng.uniform(150, 450, (200, 2))
    cur_pts = apply_affine(m, prev_pts)
    got = face_motion(prev, cur, prev_pts, cur_pts, MotionParams(max_side=256))
    assert np.abs(apply_affine(got, prev_pts) - cur_pts).max() < 0.15


def test_face_motion_is_unknown_when_the_landmarks_disagree():
    """The picture did not move but the landmarks say the face moved by 10 % of its size: rejected (NaN)."""
    prev = _texture()
    rng = np.random.default_rng(5)
    pts = rng.uniform(70, 170, (200, 2))
    radius = math.sqrt(((pts - pts.mean(0)) ** 2).sum(1).mean())
    assert np.isnan(face_motion(prev, prev.copy(), pts, pts + [0.1 * radius, 0.0])).all()
    assert np.abs(face_motion(prev, prev.copy(), pts, pts) - [[1, 0, 0], [0, 1, 0]]).max() < 1e-3


def _judder_track(t: int = 40, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A rigid face of 478 points panning at 2 and 4 px on alternate frames (frame-cadence judder): the clean
    track, the track with ``noise`` px of landmark noise, and the exact motion maps (row 0 unknown)."""
    rng = np.random.default_rng(seed)
    base = np.concatenate([rng.uniform(100, 300, (478, 2)), rng.uniform(-20, 20, (478, 1))], 1)
    steps = np.where(np.arange(t) % 2, 4.0, 2.0)
    steps[0] = 0.0
    clean = np.repeat(base[None], t, 0)
    clean[:, :, 0] += np.cumsum(steps)[:, None]
    motions = np.zeros((t, 2, 3))
    motions[:, 0, 0] = motions[:, 1, 1] = 1.0
    motions[:, 0, 2] = steps
    motions[0] = np.nan
    return clean, clean + rng.normal(0, noise, clean.shape), motions


def _step_error(track: np.ndarray, clean: np.ndarray) -> float:
    """Mean |frame-to-frame x motion - the clean one| (px)."""
    return float(np.abs(np.diff(track[:, :, 0], axis=0) - np.diff(clean[:, :, 0], axis=0)).mean())


@pytest.mark.parametrize("method", ["rts", "one_euro"])
def test_a_track_that_moves_as_measured_comes_out_unchanged(method):
    clean, _, motions = _judder_track()
    assert np.abs(smooth_landmarks(clean, 30.0, method, motion=motions) - clean).max() < 1e-6


@pytest.mark.parametrize("method", ["rts", "one_euro"])
def test_following_the_motion_keeps_the_judder_and_removes_the_noise(method):
    """0.3 px of landmark noise on the judder: the plain smoother flattens the judder (its frame steps are off
    by 0.39-0.97 px), the one that follows the measured motion keeps it (off by < 0.15 px, the noise it
    removes) and ends nearer the clean track than both the raw and the plainly smoothed one."""
    clean, noisy, motions = _judder_track(noise=0.3, seed=3)
    followed = smooth_landmarks(noisy, 30.0, method, motion=motions)
    plain = smooth_landmarks(noisy, 30.0, method)
    err = lambda a: float(np.sqrt(((a[:, :, :2] - clean[:, :, :2]) ** 2).mean()))  # noqa: E731
    assert _step_error(followed, clean) < 0.15
    assert _step_error(plain, clean) > 0.35
    assert err(followed) < 0.7 * err(noisy) and err(followed) < err(plain)


def test_motion_gate_smooths_a_landmark_jolt_that_the_image_motion_does_not_have():
    """A face that judders as measured, 0.1 px of landmark noise, and a 3 px jolt of the head's points (no eyes,
    brows or mouth) on one frame: the landmark model's, not the picture's (the motion maps do not have it). With
    the default gate (4) the jolt is a manoeuvre and passes (2.96 px of it left at that frame); with
    ``motion_gate=0`` the departure from the motion path is smoothed as noise (2.18 px left, the rest spread over
    the neighbours, 0.53 px each). ``motion_gate`` equal to the gate, or None, is the default; without the
    image motion it changes nothing."""
    clean, noisy, motions = _judder_track(noise=0.1, seed=5)
    head = landmark_groups()[0]
    jolt = noisy.copy()
    jolt[20, head, 1] += 3.0
    default = smooth_landmarks(jolt, 30.0, "rts", motion=motions)
    gated = smooth_landmarks(jolt, 30.0, "rts", motion=motions, motion_gate=0.0)
    left = lambda s, k: float((s[k, head, 1] - clean[k, head, 1]).mean())  # noqa: E731
    assert left(default, 20) == pytest.approx(2.958, abs=0.01)
    assert left(gated, 20) == pytest.approx(2.182, abs=0.01)
    assert left(gated, 19) == pytest.approx(0.527, abs=0.01) and abs(left(default, 19)) < 0.1
    assert np.array_equal(smooth_landmarks(jolt, 30.0, "rts", motion=motions, motion_gate=4.0), default)
    assert np.array_equal(smooth_landmarks(jolt, 30.0, "rts", motion_gate=0.0), smooth_landmarks(jolt, 30.0, "rts"))


def test_smooth_landmarks_rejects_motions_of_another_length():
    clean, _, motions = _judder_track()
    with pytest.raises(UsageError):
        smooth_landmarks(clean, 30.0, "rts", motion=motions[:-1])


# --------------------------------------------------------------------------------------------------------------
# real footage


def _flow_error(images: list[np.ndarray], track) -> np.ndarray:
    """Per step: how far the track's 468 mesh points move otherwise than the plate's optical flow (the eval's)."""
    from vidswap.eval.frame_metrics import flow_miss

    pts = track.smoothed[:, :468, :2]
    return np.array([flow_miss(images[k - 1], images[k], pts[k - 1], pts[k]) for k in range(1, len(images))])


def test_analysed_track_moves_with_the_plate_where_the_head_judders(media):
    """pexels_clip frames 22-48: the head pans at 2.4-4.1 px/frame on alternate frames. The smoothed landmarks
    that follow the measured image motion move with the plate's optical flow (mean miss < 0.45 px/frame);
    smoothed without it they miss by > 0.6 px/frame (the swap then slides against the plate's head)."""
    from dataclasses import replace

    from vidswap.config import SmoothingConfig, load_config
    from vidswap.faces.analyze import AnalysisModels, FrameAnalyzer
    from vidswap.io import probe, read_frames

    cfg = replace(load_config().analysis, hands=False)
    with read_frames(probe(media("pexels_clip")), range(22, 49)) as frames:
        images = [f.image for f in frames]
    analyzer = FrameAnalyzer(AnalysisModels.load(cfg), cfg)
    for start in range(0, len(images), 8):
        analyzer.push(list(range(22 + start, 22 + start + len(images[start:start + 8]))), images[start:start + 8])
    fps = 23.976
    followed = analyzer.finish(fps, SmoothingConfig(), {"key": "test"}).tracks
    plain = analyzer.finish(fps, SmoothingConfig(follow_image_motion=False), {"key": "test"}).tracks
    assert len(followed) == len(plain) == 1
    motions = analyzer._track_motions(_only_track(analyzer))
    assert np.isfinite(motions[1:]).all(axis=(1, 2)).mean() >= 0.9  # measured on (nearly) every step
    e_followed, e_plain = _flow_error(images, followed[0]), _flow_error(images, plain[0])
    print(f"miss against the plate's flow: followed {e_followed.mean():.3f}, plain {e_plain.mean():.3f} px/frame")
    assert e_followed.mean() < 0.45 and e_plain.mean() > 0.6
    assert np.abs(followed[0].smoothed - followed[0].raw)[:, :468, :2].mean() < 1.0  # still on the face


def _only_track(analyzer):
    from vidswap.faces.track import TrackerParams, track_faces

    tracks = track_faces(analyzer.observations, analyzer.cuts, TrackerParams(max_gap=analyzer.cfg.max_gap),
                         frames=analyzer.numbers)
    assert len(tracks) == 1
    return tracks[0]
