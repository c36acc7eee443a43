"""Paste-back: crop reproduced where alpha is 1, plate untouched (bit-exact) where alpha is 0, all bit depths."""

import cv2
import numpy as np
import pytest
import torch

from vidswap.composite.convert import from_float, to_float
from vidswap.composite.paste import PasteParams, paste_crop

H, W, h, w = 90, 120, 48, 64


def plate_and_crop(dtype, seed=0):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    plate = rng.integers(0, top + 1, size=(2, H, W, 3)).astype(dtype)
    crop = rng.integers(0, top + 1, size=(2, h, w, 3)).astype(dtype)
    alpha = torch.zeros(2, 1, h, w)
    alpha[:, :, 10:38, 12:52] = 1.0
    alpha[:, :, 8:10, 12:52] = 0.5  # a soft edge
    return plate, crop, alpha


def translation(tx, ty, b=2):
    return torch.tensor([[1.0, 0.0, tx], [0.0, 1.0, ty]]).expand(b, 2, 3).clone()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_identity_like_paste_is_exact(dtype):
    plate, crop, alpha = plate_and_crop(dtype)
    m = translation(30.0, 20.0)
    m[1, :, 2] = torch.tensor([50.0, 35.0])
    out, a_plate = paste_crop(to_float(plate), to_float(crop), alpha, m, "alpha", return_alpha=True)
    res = from_float(out, dtype)
    for b, (tx, ty) in enumerate([(30, 20), (50, 35)]):
        full = np.zeros((H, W), bool)
        full[ty + 10 : ty + 38, tx + 12 : tx + 52] = True
        np.testing.assert_array_equal(res[b][full], crop[b, 10:38, 12:52].reshape(-1, 3))
        zero = (a_plate[b, 0] == 0).numpy()
        assert zero.sum() > H * W - 40 * 30 - 200
        np.testing.assert_array_equal(res[b][zero], plate[b][zero])
        soft = np.zeros((H, W), bool)
        soft[ty + 8 : ty + 10, tx + 12 : tx + 52] = True
        mid = (plate[b][soft].astype(np.float64) + crop[b, 8:10, 12:52].reshape(-1, 3)) / 2
        assert np.abs(res[b][soft] - mid).max() <= 1.0


@pytest.mark.parametrize("mode", ["alpha", "laplacian", "poisson"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_alpha_zero_is_bit_exact_for_every_mode(mode, dtype):
    rng = np.random.default_rng(1)
    if dtype == np.float32:
        plate = (rng.random((1, H, W, 3)) * 3.0).astype(np.float32)  # scene-referred, above 1
    else:
        plate = rng.integers(0, np.iinfo(dtype).max + 1, size=(1, H, W, 3)).astype(dtype)
    crop = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(2))
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    alpha = (1.0 - (((xx - 32) / 22) ** 2 + ((yy - 24) / 16) ** 2)).clamp(0, 1)[None, None] ** 0.5
    ang = np.deg2rad(17.0)
    s = 1.3
    m = torch.tensor([[[s * np.cos(ang), -s * np.sin(ang), 40.0], [s * np.sin(ang), s * np.cos(ang), 5.0]]]).float()
    out, a_plate = paste_crop(to_float(plate), crop, alpha, m, mode, return_alpha=True)
    res = from_float(out, dtype)
    zero = (a_plate[0, 0] == 0).numpy()
    assert 0 < (~zero).sum() < H * W
    assert res[0][zero].tobytes() == plate[0][zero].tobytes()
    assert not np.array_equal(res[0][~zero], plate[0][~zero])


def test_rotated_paste_matches_opencv_warp():
    crop = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(3))
    plate = torch.zeros(1, 3, H, W)
    alpha = torch.ones(1, 1, h, w)
    ang = np.deg2rad(-25.0)
    mat = np.array([[np.cos(ang), -np.sin(ang), 30.0], [np.sin(ang), np.cos(ang), 40.0]], np.float32)
    out, a_plate = paste_crop(plate, crop, alpha, torch.from_numpy(mat)[None], "alpha", return_alpha=True)
    ref = cv2.warpAffine(crop[0].permute(1, 2, 0).numpy(), mat, (W, H), flags=cv2.INTER_LINEAR)
    inner = (a_plate[0, 0] > 0.999).numpy()
    assert inner.sum() > 2000
    assert np.abs(out[0].permute(1, 2, 0).numpy()[inner] - ref[inner]).max() < 1e-4


def test_shrinking_paste_is_antialiased():
    """A 4x-downscaled checkerboard crop averages to grey instead of aliasing."""
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    checker = ((xx + yy) % 2).float().expand(1, 3, -1, -1)
    m = torch.tensor([[[0.25, 0.0, 20.0], [0.0, 0.25, 20.0]]])
    out = paste_crop(torch.zeros(1, 3, 80, 80), checker, torch.ones(1, 1, 128, 128), m)
    centre = out[0, :, 28:44, 28:44]
    assert (centre - 0.5).abs().max() < 0.02
    raw = paste_crop(
        torch.zeros(1, 3, 80, 80), checker, torch.ones(1, 1, 128, 128), m, params=PasteParams(antialias=False)
    )
    assert (raw[0, :, 28:44, 28:44] - 0.5).abs().max() > 0.1


def test_empty_or_offscreen_face_returns_the_plate():
    plate = torch.rand(2, 3, 40, 50)
    crop = torch.rand(2, 3, 16, 16)
    alpha = torch.ones(2, 1, 16, 16)
    alpha[0] = 0.0
    m = translation(500.0, 500.0)  # item 1 is far off the plate
    m[0, :, 2] = torch.tensor([5.0, 5.0])
    out = paste_crop(plate, crop, alpha, m, "laplacian")
    assert torch.equal(out, plate)
    with pytest.raises(ValueError):
        paste_crop(plate, crop, alpha, m, "median")


def test_laplacian_paste_blends_and_keeps_detail():
    plate = torch.full((1, 3, 120, 120), 0.3)
    crop = torch.full((1, 3, 64, 64), 0.7)
    crop[..., ::2, :] += 0.1  # fine stripes: high frequency must survive inside the face
    alpha = torch.zeros(1, 1, 64, 64)
    alpha[..., 8:56, 8:56] = 1.0
    out = paste_crop(plate, crop, alpha, translation(28.0, 28.0, 1), "laplacian", params=PasteParams(levels=4))
    centre = out[0, 0, 56:64, 56:64]  # plate rows 56, 58, ... are crop rows 28, 30, ...: the bright stripes
    assert (centre[0::2] - centre[1::2]).mean() > 0.08
    assert out[0, 0, 60, 60].item() == pytest.approx(crop[0, 0, 32, 32].item(), abs=0.03)


def test_paste_reads_only_the_alpha_window_and_matches_the_whole_crop_warp():
    """Paste-back warps only the crop window of alpha > 0 and its bilinear taps: the crop outside that window is
    never read, and the result is the whole crop's warp (kornia's, as before) up to float rounding."""
    from kornia.geometry.transform import warp_affine

    g = torch.Generator().manual_seed(5)
    crop = torch.rand(1, 3, h, w, generator=g)
    plate = torch.rand(1, 3, H, W, generator=g)
    alpha = torch.zeros(1, 1, h, w)
    alpha[..., 14:30, 20:44] = torch.rand(1, 1, 16, 24, generator=g) * 0.9 + 0.1
    ang = np.deg2rad(12.0)
    mat = torch.tensor([[[1.1 * np.cos(ang), -1.1 * np.sin(ang), 25.3], [1.1 * np.sin(ang), 1.1 * np.cos(ang), 17.8]]],
                       dtype=torch.float32)
    out = paste_crop(plate, crop, alpha, mat, "alpha")
    far = crop.clone()
    far[..., :13, :] = 1e6  # outside the window (rows 13..30, cols 19..44): never read
    far[..., :, 45:] = -1e6
    assert torch.equal(paste_crop(plate, far, alpha, mat, "alpha"), out)
    warped = warp_affine(torch.cat([crop, alpha], 1), mat, (H, W), mode="bilinear", padding_mode="zeros",
                         align_corners=True)
    a = torch.where(warped[:, 3:] < PasteParams().alpha_floor, torch.zeros_like(warped[:, 3:]), warped[:, 3:])
    ref = torch.where(a > 0, torch.lerp(plate, warped[:, :3], a), plate)
    assert (a > 0).sum() > 300
    assert (out - ref).abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["alpha", "laplacian"])
def test_inplace_paste_equals_the_copying_one(mode):
    g = torch.Generator().manual_seed(6)
    plate = torch.rand(2, 3, H, W, generator=g)
    crop = torch.rand(2, 3, h, w, generator=g)
    _, _, alpha = plate_and_crop(np.uint8)
    mats = translation(20.4, 17.7)
    ref = paste_crop(plate, crop, alpha, mats, mode)
    own = plate.clone()
    out = paste_crop(own, crop, alpha, mats, mode, inplace=True)
    assert out is own and torch.equal(out, ref) and not torch.equal(ref, plate)
