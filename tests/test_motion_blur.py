"""Motion blur of the swapped face (vidswap.composite.motion_blur) and the shutter measured from the plate
(vidswap.appearance.sharpness): exact answers on synthetic inputs."""

import math

import numpy as np
import pytest
import torch

from vidswap.appearance.sharpness import SMEAR_RESPONSE, directional_blur, shutter_estimate
from vidswap.composite.compositor import composite_params
from vidswap.composite.motion_blur import (AUTO_SHUTTER, _smear, crop_motion, motion_blur, path_length,
                                           track_shutter, track_velocity)
from vidswap.errors import ConfigError
from vidswap.sections import CompositeConfig


def test_track_velocity_central_one_sided_and_gaps():
    frames = np.array([10, 11, 12, 14, 20, 21])
    points = np.array([0.0, 2.0, 6.0, 7.0, 100.0, 103.0])[:, None, None] * np.ones((1, 1, 2))
    v = track_velocity(frames, points, np.arange(6))[:, 0, 0]
    # 10: forward (11 - 10); 11: central (12 - 10) / 2; 12: backward (gap to 14); 14: alone; 20 / 21: one-sided
    assert v.tolist() == [2.0, 3.0, 4.0, 0.0, 3.0, 3.0]
    assert track_velocity(frames, points, np.array([1]))[0, 0].tolist() == [3.0, 3.0]


def test_crop_motion_recovers_an_affine_field_in_crop_pixels():
    rng = np.random.default_rng(0)
    frame_points = torch.from_numpy(rng.uniform(100, 300, (1, 50, 2))).float()
    # frame velocity: 3 px right, 1 up, plus a slow rotation about (200, 200)
    rot = torch.tensor([[0.0, -0.01], [0.01, 0.0]])
    velocity = torch.tensor([3.0, -1.0]) + (frame_points - 200.0) @ rot.T
    frame_to_crop = torch.tensor([[[2.0, 0.0, -150.0], [0.0, 2.0, -120.0]]])
    crop_points = frame_points * 2.0 - torch.tensor([150.0, 120.0])
    motion = crop_motion(crop_points, velocity, frame_to_crop)[0]
    # crop velocity = 2 x frame velocity; as a function of crop position x_c: x_f = (x_c + offset) / 2
    expected_linear = rot  # 2 * rot / 2
    assert torch.allclose(motion[:, :2], expected_linear, atol=1e-5)
    x_c = crop_points[0, 7]
    assert torch.allclose(motion[:, :2] @ x_c + motion[:, 2], 2.0 * velocity[0, 7], atol=1e-4)


def _smeared_step(x: np.ndarray, edge: float, length: float) -> np.ndarray:
    """A 0 -> 1 step between pixels ``edge - 1`` and ``edge`` (bilinear: ``clip(p - edge + 1, 0, 1)``) averaged
    over motion_blur's ``ceil(length) + 1`` samples along ``[-1/2, 1/2] x length``."""
    k = math.ceil(length) + 1
    steps = ((np.arange(k) + 0.5) / k - 0.5) * length
    return np.clip(x[:, None] + steps[None] - edge + 1.0, 0.0, 1.0).mean(1)


def test_motion_blur_smears_an_edge_into_a_ramp_of_the_shutter_length():
    image = torch.zeros(1, 3, 32, 64)
    image[:, :, 8:24, 20:40] = 1.0
    alpha = torch.ones(1, 1, 32, 64)
    motion = torch.tensor([[[0.0, 0.0, 16.0], [0.0, 0.0, 0.0]]])  # 16 px a frame, to the right
    out, out_alpha = motion_blur(image, alpha, motion, 0.5)  # 180 degrees: an 8-px box
    row = out[0, 0, 16].numpy()
    assert row[:15].tolist() == [0.0] * 15 and row[45:].tolist() == [0.0] * 19
    x = np.arange(64, dtype=np.float64)
    expected = _smeared_step(x, 20.0, 8.0) - _smeared_step(x, 40.0, 8.0)  # the square's two edges
    assert np.allclose(row, expected, atol=1e-6)
    assert expected[15] == 0.0 and expected[24] == 1.0 and (np.diff(expected[15:25]) > 0).all()  # an 8-px ramp
    assert np.allclose(out[0, 0, 4].numpy(), 0.0)  # nothing smears across the motion
    assert torch.equal(out_alpha, alpha)


def test_motion_blur_leaves_still_frames_and_a_closed_shutter_as_they_are():
    image, alpha = torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16)
    still = torch.zeros(2, 2, 3)
    still[1, 0, 2] = 0.9  # under min_length at a 180-degree shutter
    out, out_alpha = motion_blur(image, alpha, still, 0.5)
    assert out is image and out_alpha is alpha
    moving = torch.zeros(2, 2, 3)
    moving[0, 1, 2] = 6.0
    out, _ = motion_blur(image, alpha, moving, 0.0)
    assert out is image
    out, _ = motion_blur(image, alpha, moving, 0.5)
    assert torch.equal(out[1], image[1]) and not torch.equal(out[0], image[0])


def test_motion_blur_premultiplies_by_alpha():
    """Colour where alpha is 0 is undefined (NaN here) and must not leak; alpha smears with the colour."""
    image = torch.full((1, 3, 8, 40), float("nan"))
    image[:, :, :, 10:30] = 0.25
    alpha = torch.zeros(1, 1, 8, 40)
    alpha[:, :, :, 10:30] = 1.0
    motion = torch.tensor([[[0.0, 0.0, 8.0], [0.0, 0.0, 0.0]]])
    out, out_alpha = motion_blur(image, alpha, motion, 1.0)
    a = out_alpha[0, 0, 4].numpy()
    x = np.arange(40, dtype=np.float64)
    assert np.allclose(a, _smeared_step(x, 10.0, 8.0) - _smeared_step(x, 30.0, 8.0), atol=1e-6)
    covered = out_alpha[0, 0] > 0
    assert torch.allclose(out[0][:, covered], torch.tensor(0.25))  # the colour stays the face's, not diluted


def test_smear_opencv_and_grid_sample_agree():
    premult = torch.rand(4, 40, 56)
    field = torch.tensor([[0.02, 0.01, 5.0], [0.0, -0.03, 2.0]])
    on_cv = _smear(premult, field, (3, 4, 50, 36), 7)
    on_torch = _smear(premult.clone().requires_grad_(True), field, (3, 4, 50, 36), 7).detach()
    assert torch.allclose(on_cv, on_torch, atol=1e-5)


def test_path_length_is_the_longest_smear_over_the_box():
    motion = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 4.0]])
    assert path_length(motion, (0, 0, 10, 10), 0.5) == pytest.approx(2.5)
    spin = torch.tensor([[0.0, -0.1, 0.0], [0.1, 0.0, 0.0]])  # rotation about the origin: fastest corner (10, 10)
    assert path_length(spin, (0, 0, 10, 10), 1.0) == pytest.approx(math.hypot(1.0, 1.0), rel=1e-6)


def test_shutter_estimate_recovers_the_shutter_of_a_box_smear():
    rng = np.random.default_rng(1)
    n, camera, shutter = 12, 0.004 ** 2, 0.6
    velocity = rng.normal(0, 0.03, (n, 2))
    speed = np.linalg.norm(velocity, axis=1)
    d = velocity / speed[:, None]
    cov = camera * np.eye(2)[None] + ((shutter * speed) ** 2 / 12.0)[:, None, None] * np.einsum("ni,nj->nij", d, d)
    assert shutter_estimate(cov, velocity, min_speed=0.0, response=1.0) == pytest.approx(0.6, abs=1e-9)
    # the measure reads only SMEAR_RESPONSE of a smear's variance: the estimate scales it back
    read = camera * np.eye(2)[None] + SMEAR_RESPONSE * (cov - camera * np.eye(2)[None])
    assert shutter_estimate(read, velocity, min_speed=0.0) == pytest.approx(0.6, abs=1e-9)
    assert shutter_estimate(camera * np.eye(2)[None].repeat(n, 0), velocity, min_speed=0.0) == 0.0
    assert shutter_estimate(cov * 10.0, velocity, min_speed=0.0) == 1.0  # clamped to a 360-degree shutter
    assert math.isnan(shutter_estimate(cov, velocity * 1e-3))  # nothing moves enough to tell
    # faces of 30 px moving 0.03 of their height a frame move under a pixel: too little to tell either
    assert math.isnan(shutter_estimate(cov, velocity, np.full(n, 30.0), min_speed=0.0))
    assert shutter_estimate(cov, velocity, np.full(n, 3000.0), min_speed=0.0, response=1.0) == pytest.approx(0.6)


def _edges(size: int = 160, seed: int = 0) -> torch.Tensor:
    """Random bars and diamonds: straight edges across x, across y and at 45 degrees."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.full((size, size), 0.2, np.float32)
    for k in range(40):
        cx, cy, r = rng.uniform(12, size - 12), rng.uniform(12, size - 12), rng.uniform(5, 12)
        inside = (np.abs(xx - cx) + np.abs(yy - cy) < r) if k % 2 else ((np.abs(xx - cx) < r) & (np.abs(yy - cy) < r))
        image[inside] = rng.uniform(0.3, 0.9)
    return torch.from_numpy(image)[None, None]


def test_directional_blur_tells_a_smear_along_x_from_the_camera_blur():
    """An isotropic picture measures (nearly) isotropic; smeared along x, its blur grows along x and not along y.
    (The re-blur measure reads a box smear's gradient peak, so its size is approximate: the shutter's estimate
    is checked on real footage in test_motion_blur_media.)"""
    from vidswap.composite.filters import gaussian_blur

    sharp = gaussian_blur(_edges(), 0.8)
    mask = torch.zeros_like(sharp)
    mask[..., 12:-12, 12:-12] = 1.0
    iso = directional_blur(sharp.expand(-1, 3, -1, -1), mask)[0]
    smeared = _smear(torch.cat([sharp[0], torch.ones_like(sharp[0])]),
                     torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]]), (0, 0, 160, 160), 4)[:1][None]
    moved = directional_blur(smeared.expand(-1, 3, -1, -1), mask)[0]
    assert abs(float(iso[0, 0] - iso[1, 1])) < 0.15 and abs(float(iso[0, 1])) < 0.15
    assert float(moved[0, 0] - iso[0, 0]) > 3.0 ** 2 / 12  # along x: at least the 3-px box's variance
    assert abs(float(moved[1, 1] - iso[1, 1])) < 0.1 and abs(float(moved[0, 1])) < 0.15  # across: unchanged


def test_track_shutter_falls_back_to_180_degrees():
    assert track_shutter({"shutter": np.array([0.25], np.float32)}) == pytest.approx(0.25)
    assert track_shutter({"shutter": np.array([np.nan], np.float32)}) == AUTO_SHUTTER == 0.5
    assert track_shutter({}) == AUTO_SHUTTER and track_shutter(None) == AUTO_SHUTTER


def test_motion_blur_setting():
    assert composite_params(CompositeConfig(), seed=0).motion_blur is None  # auto: the track's measured shutter
    assert composite_params(CompositeConfig(motion_blur=0.5), seed=0).motion_blur == 0.5
    assert composite_params(CompositeConfig(motion_blur=0), seed=0).motion_blur == 0.0
    for bad in (1.5, -0.1, True, "fast"):
        with pytest.raises(ConfigError, match="composite.motion_blur"):
            CompositeConfig(motion_blur=bad)


def test_eval_along_across_energy_of_a_plane():
    """I = 2x + y: the Sobel gradient is (16, 8) everywhere inside, so the energy along x over that across is
    exactly 4, along y 1/4, along the diagonal (2 + 1)^2 / (1 - 2)^2 = 9."""
    from vidswap.eval.frame_metrics import along_across_energy, eroded

    yy, xx = np.mgrid[0:40, 0:50].astype(np.float32)
    image = 2.0 * xx + yy
    face = np.zeros((40, 50), bool)
    face[1:-1, 1:-1] = True
    mask = eroded(face, 2)
    assert not mask[:3].any() and not mask[:, -3:].any() and mask[3:-3, 3:-3].all()
    assert along_across_energy(image, mask, np.array([3.0, 0.0])) == pytest.approx(4.0, rel=1e-6)
    assert along_across_energy(image, mask, np.array([0.0, -1.0])) == pytest.approx(0.25, rel=1e-6)
    assert along_across_energy(image, mask, np.array([1.0, 1.0])) == pytest.approx(9.0, rel=1e-5)
    assert math.isnan(along_across_energy(image, np.zeros((40, 50), bool), np.array([1.0, 0.0])))
