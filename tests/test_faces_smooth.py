"""Temporal smoothing: One-Euro (causal) and adaptive Kalman/RTS (zero-phase); jitter and lag measures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import build_canonical  # tools/build_canonical.py (conftest puts tools/ on sys.path)
from vidswap.errors import UsageError
from vidswap.faces.smooth import (OneEuroFilter, OneEuroParams, RtsParams, face_scale, noise_level, one_euro,
                                  rts_smooth, smooth_landmarks, smooth_pose)
from vidswap.faces.smooth_measures import jitter, lag, plot_trajectories, step_delay

FPS = 30.0
METHODS = ("rts", "one_euro")


@pytest.fixture(scope="module")
def runner():
    return build_canonical.FaceMeshRunner()


@pytest.fixture(scope="module")
def still_track(media, runner):
    """A real still head: the face mesh run 60 times on one portrait, as a tracker would run it frame after
    frame -- the crop window moving by ~1 px, 1 % in size and 0.5 degree in roll, and sensor noise of 2 grey
    levels. What varies between frames is the model's own measured noise (~0.3 px, 0.5 % of the face scale).
    """
    rng = np.random.default_rng(0)
    rgb = build_canonical.read_rgb(media("single_face_image"))
    _, _, win = runner(rgb)
    out = []
    for _ in range(60):
        w = dataclasses.replace(win, cx=win.cx + rng.normal(0, 1.0), cy=win.cy + rng.normal(0, 1.0),
                                side=win.side * (1 + rng.normal(0, 0.01)),
                                angle=win.angle + np.deg2rad(rng.normal(0, 0.5)))
        noisy = np.clip(rgb + rng.normal(0, 2.0, rgb.shape), 0, 255).astype(np.uint8)
        out.append(runner(noisy, w, refine=0)[0])
    return np.stack(out).astype(np.float64)


@pytest.fixture(scope="module")
def fast_track(media, runner):
    """Real fast head motion: pexels_clip frames 370-459 (turns and nods up to ~8 px/frame), tracked."""
    frames = build_canonical.read_video_frames(media("pexels_clip"), 460)[370:]
    out, win = [], None
    for f in frames:
        lm, _, win = runner(f, win, refine=1)
        out.append(lm)
    return np.stack(out).astype(np.float64)


def _step(still: np.ndarray, amp: float, noise: float, seed: int = 1, t: int = 60, k0: int = 30):
    """Clean and noisy step: the still face jumps by ``amp`` face scales along x at frame k0."""
    rng = np.random.default_rng(seed)
    sc = face_scale(still)
    clean = np.repeat(still[:1], t, 0)
    clean[k0:, :, 0] += amp * sc
    return clean, clean + rng.normal(0, noise * sc, clean.shape)


@pytest.mark.parametrize("method", METHODS)
def test_jitter_drops_3x_on_a_still_real_face(still_track, method):
    sc = face_scale(still_track)
    smoothed = smooth_landmarks(still_track, FPS, method)
    ratio = jitter(still_track) / jitter(smoothed)
    print(f"\n{method}: still face, noise {noise_level(still_track / sc):.4f} face scales; jitter "
          f"{jitter(still_track):.3f} -> {jitter(smoothed):.3f} px/frame^2 = {ratio:.1f}x lower")
    assert ratio >= 3.0
    # it smooths, it does not move the face
    assert np.abs(smoothed.mean(0) - still_track.mean(0)).max() < 0.2 * sc


def test_plot_trajectories(fast_track, tmp_path):
    fps = 24000 / 1001
    smoothed = {m: smooth_landmarks(fast_track, fps, m) for m in METHODS}
    png = plot_trajectories(fast_track, smoothed, [1, 152, 473], tmp_path / "traj.png", fps=fps,
                            title="pexels_clip 370-459")
    assert png.exists() and png.stat().st_size > 20_000
    assert not list(tmp_path.glob("*.tmp.png"))


@pytest.mark.parametrize("method", METHODS)
def test_step_lag_at_most_2_frames(still_track, method):
    for amp in (0.1, 0.3):  # a jump of 10 % / 30 % of the face scale (~6 / 20 px here) in one frame
        clean, noisy = _step(still_track, amp, noise=0.004)
        out = smooth_landmarks(noisy, FPS, method)
        c_in, c_out = clean[:, :468, 0].mean(1), out[:, :468, 0].mean(1)
        d = lag(c_in, c_out)
        d50 = step_delay(c_in, c_out, 0.5)
        d90 = step_delay(c_in, c_out, 0.9)
        print(f"\n{method}: step {amp:.1f} face scales: lag {d:.2f} frames, 50 % after {d50:.2f}, 90 % after "
              f"{d90:.2f} frames")
        assert abs(d) <= 2.0
        assert d50 <= 2.0
        assert d90 <= 2.0  # settled too, not just started
        assert d50 >= -1.0  # a zero-phase smoother must not start the move long before it happens


def test_rts_adaptivity_is_what_keeps_steps_sharp(still_track):
    clean, noisy = _step(still_track, 0.1, noise=0.004)
    c_in = clean[:, :468, 0].mean(1)
    sc = face_scale(noisy)
    adaptive = smooth_landmarks(noisy, FPS, "rts")[:, :468, 0].mean(1)
    plain = smooth_landmarks(noisy, FPS, "rts", RtsParams(gate=0.0))[:, :468, 0].mean(1)
    err_a = np.abs(adaptive - c_in).max() / sc
    err_p = np.abs(plain - c_in).max() / sc
    print(f"\nrts step 0.1: max error adaptive {err_a:.4f}, non-adaptive {err_p:.4f} face scales")
    assert err_a < 0.02 < err_p


@pytest.mark.parametrize("method", METHODS)
def test_no_lag_on_fast_real_motion(fast_track, method):
    fps = 24000 / 1001
    out = smooth_landmarks(fast_track, fps, method)
    c_in, c_out = fast_track[:, :468, :2].mean(1), out[:, :468, :2].mean(1)
    speed = np.linalg.norm(np.diff(c_in, axis=0), axis=1)
    fast = np.flatnonzero(speed > np.percentile(speed, 80)) + 1
    dev = np.linalg.norm(c_out - c_in, axis=1)
    d = lag(c_in, c_out)
    print(f"\n{method}: real motion up to {speed.max():.1f} px/frame: lag {d:.2f} frames, centroid deviation on the "
          f"fastest 20 % frames mean {dev[fast].mean():.2f} max {dev[fast].max():.2f} px")
    assert abs(d) <= 0.5
    assert dev[fast].mean() <= 1.0


def test_gaps_and_missing_frames(still_track):
    x = still_track.copy()
    x[20:24] = np.nan
    x[:3] = np.nan
    y = rts_smooth(x, FPS, scale=face_scale(still_track))
    assert np.isnan(y[:3]).all()  # before the first observation: unknown
    assert np.isfinite(y[3:]).all()  # the gap is bridged by the smoother
    assert np.abs(y[20:24] - still_track[20:24]).max() < 0.05 * face_scale(still_track)
    z = one_euro(x, FPS, scale=face_scale(still_track))
    assert np.isnan(z[20:24]).all() and np.isfinite(z[24:]).all()


def test_fps_aware():
    """Parameters are in seconds: a 0.5 Hz sway passes both smoothers at 24 and 60 fps while the noise is
    halved; One-Euro's rest time constant is the same number of seconds at both rates."""
    for fps in (24.0, 60.0):
        t = np.arange(int(4 * fps)) / fps
        sig = 0.05 * np.sin(2 * np.pi * 0.5 * t)
        rng = np.random.default_rng(3)
        noisy = (sig + rng.normal(0, 0.004, sig.shape))[:, None, None]
        for out in (rts_smooth(noisy, fps)[:, 0, 0], one_euro(noisy, fps)[:, 0, 0]):
            inner = slice(int(fps), -int(fps))
            assert np.abs(out - sig)[inner].max() < 0.012  # the motion passes
            assert jitter(out - sig) < jitter(noisy[:, 0, 0] - sig) / 2  # the noise does not
    rise = []
    for fps in (24.0, 60.0):
        step = np.r_[np.zeros(int(fps)), np.ones(int(2 * fps))]
        out = one_euro(step, fps, OneEuroParams(min_cutoff=1.0, beta=0.0))
        rise.append((step_delay(step, out, 0.63) + 0.5) / fps)  # seconds to 63 %
    assert rise[0] == pytest.approx(1 / (2 * np.pi), rel=0.25) and rise[1] == pytest.approx(rise[0], rel=0.2)


def test_streaming_equals_batch(still_track):
    f = OneEuroFilter(fps=FPS, params=OneEuroParams(), scale=50.0)
    stream = np.stack([f.step(frame) for frame in still_track])
    np.testing.assert_allclose(stream, one_euro(still_track, FPS, scale=50.0))


def test_pose_vector_smoothing():
    """(T, 7) pose vectors [yaw, pitch, roll deg, tx, ty, tz px, log s] with realistic noise: still -> jitter
    3x lower with both methods; a head turn at 60 deg/s -> no lag."""
    rng = np.random.default_rng(4)
    t = np.arange(90) / FPS
    still = np.tile([5.0, -3.0, 1.0, 300.0, 200.0, 0.0, np.log(80.0)], (90, 1))
    noise = rng.normal(0, 1, still.shape) * np.array([0.5, 0.5, 0.3, 0.3, 0.3, 0.3, 0.004])
    turn = still.copy()
    turn[:, 0] += 60 * np.clip(t - 1.0, 0, 1.0)  # yaw 0 -> 60 degrees in one second
    turn[:, 3] += 40 * np.clip(t - 1.0, 0, 1.0)
    for method in METHODS:
        out = smooth_pose(still + noise, FPS, method)
        assert out.shape == still.shape
        assert jitter(out) < jitter(still + noise) / 3
        moved = smooth_pose(turn + noise, FPS, method)
        assert abs(lag(turn[:, 0], moved[:, 0])) <= 1.0
        assert np.abs(moved[:, 0] - turn[:, 0]).max() < 3.0  # degrees


def test_measures():
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 2.0, (5000, 3))
    assert abs(jitter(noise) - np.sqrt(6) * 2.0) < 0.1  # sqrt(6) sigma for white noise
    assert jitter(np.arange(50.0)[:, None] * 3 + 7) == 0.0  # constant speed is not jitter
    sig = np.cumsum(rng.normal(0, 1, 300))
    for k in (0, 1, 3):
        assert lag(sig[10:-10], np.roll(sig, k)[10:-10]) == pytest.approx(k, abs=0.05)
    step = np.r_[np.zeros(20), np.ones(20)]
    assert step_delay(step, step) == 0.0
    late = np.r_[np.zeros(22), np.ones(18)]
    assert step_delay(step, late) == pytest.approx(2.0)
    assert step_delay(step, late, 0.9) == pytest.approx(2.0)
    assert lag(step, late) == pytest.approx(2.0, abs=0.05)


def test_rts_noise_gain_of_one_changes_nothing_and_a_huge_gain_drops_the_frame():
    """``noise_gain`` scales each frame's measurement-noise std: 1 everywhere is the plain smoother, bit for bit;
    a huge gain on one frame is the same as that frame missing (NaN), and a spike there does not come through."""
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(0, 0.01, (40, 3, 2)), 0)
    x[20] += 1.0  # a one-frame spike on every point
    p = RtsParams(measurement_noise=0.01, gate=0.0)
    plain = rts_smooth(x, FPS, p)
    np.testing.assert_array_equal(rts_smooth(x, FPS, p, noise_gain=np.ones(40)), plain)
    gain = np.ones(40)
    gain[20] = 1e6
    missing = x.copy()
    missing[20] = np.nan
    np.testing.assert_allclose(rts_smooth(x, FPS, p, noise_gain=gain), rts_smooth(missing, FPS, p), atol=1e-6)
    assert np.abs(plain[20] - x[20] + 1.0).min() > 0.2  # without the gain the spike comes through


def test_rts_noise_gain_per_point_is_a_groups_mean():
    """A (T, N) gain: each group takes its points' mean, so a group without raised points is unchanged, and
    gains below 1 are refused."""
    rng = np.random.default_rng(6)
    x = np.cumsum(rng.normal(0, 0.01, (30, 4, 2)), 0) + rng.normal(0, 0.02, (30, 4, 2))
    p = RtsParams(measurement_noise=0.02, gate=0.0)
    groups = [[0, 1], [2, 3]]
    gain = np.ones((30, 4))
    gain[10:15, 0] = 5.0  # the first group's mean gain there: 3
    out = rts_smooth(x, FPS, p, groups=groups, noise_gain=gain)
    np.testing.assert_array_equal(out[:, 2:], rts_smooth(x, FPS, p, groups=groups)[:, 2:])
    mean = np.ones(30)
    mean[10:15] = 3.0
    np.testing.assert_array_equal(out[:, :2], rts_smooth(x[:, :2], FPS, p, noise_gain=mean))
    with pytest.raises(UsageError):
        rts_smooth(x, FPS, p, noise_gain=np.full(30, 0.5))
