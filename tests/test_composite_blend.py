"""Blending: alpha, Laplacian multi-band (checked against an OpenCV/NumPy reference), Poisson."""

import cv2
import numpy as np
import pytest
import torch

from vidswap.composite.blend import (
    alpha_blend,
    collapse_pyramid,
    laplacian_blend,
    laplacian_pyramid,
    poisson_blend,
    pyr_down,
    pyr_up,
)


def pair(h=64, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    fg = torch.rand(1, 3, h, w, generator=g)
    bg = torch.rand(1, 3, h, w, generator=g)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    mask = (((xx - w / 2) ** 2 + (yy - h / 2) ** 2) < (min(h, w) / 3) ** 2).float()[None, None]
    return fg, bg, mask


def reference_multiband(fg, bg, mask, levels):
    """Burt-Adelson with cv2.pyrDown/pyrUp on float64 HxWx3 arrays (textbook form, two pyramids)."""

    def gauss(x):
        p = [x]
        for _ in range(levels - 1):
            p.append(cv2.pyrDown(p[-1]))
        return p

    def lap(x):
        g = gauss(x)
        return [g[i] - cv2.pyrUp(g[i + 1], dstsize=(g[i].shape[1], g[i].shape[0])) for i in range(levels - 1)] + [g[-1]]

    la, lb = lap(fg), lap(bg)
    gm = [m if m.ndim == 3 else m[:, :, None] for m in gauss(mask)]
    bands = [m * a + (1 - m) * b for m, a, b in zip(gm, la, lb)]
    out = bands[-1]
    for band in reversed(bands[:-1]):
        out = cv2.pyrUp(out, dstsize=(band.shape[1], band.shape[0])) + band
    return out


def to_np(t):
    return t[0].permute(1, 2, 0).double().numpy()


@pytest.mark.parametrize("size,levels", [((64, 48), 4), ((45, 61), 4), ((33, 20), 3)])
def test_laplacian_blend_matches_opencv_reference(size, levels):
    fg, bg, mask = pair(*size)
    soft = torch.nn.functional.avg_pool2d(mask, 5, 1, 2)
    ours = laplacian_blend(fg, bg, soft, levels)
    ref = reference_multiband(to_np(fg), to_np(bg), soft[0, 0].double().numpy(), levels)
    assert np.abs(to_np(ours) - ref).max() < 1e-5


def test_pyramids_match_opencv_and_invert():
    x = torch.rand(1, 3, 37, 50, dtype=torch.float64)
    a = to_np(x)
    assert np.abs(to_np(pyr_down(x)) - cv2.pyrDown(a)).max() < 1e-12
    d = cv2.pyrDown(a)
    up = pyr_up(torch.from_numpy(d).permute(2, 0, 1)[None], (37, 50))
    assert np.abs(to_np(up) - cv2.pyrUp(d, dstsize=(50, 37))).max() < 1e-12
    assert torch.allclose(collapse_pyramid(laplacian_pyramid(x, 5)), x, atol=1e-12)


def test_one_level_is_alpha_blend():
    fg, bg, step = pair()
    assert torch.equal(laplacian_blend(fg, bg, step, levels=1), alpha_blend(fg, bg, step))
    hard = alpha_blend(fg, bg, step)
    inside = step.bool().expand_as(fg)
    assert torch.equal(hard[inside], fg[inside]) and torch.equal(hard[~inside], bg[~inside])


def test_equal_fg_and_bg_give_bg_exactly():
    _, bg, mask = pair(40, 52)
    soft = torch.nn.functional.avg_pool2d(mask, 7, 1, 3)
    assert torch.equal(laplacian_blend(bg.clone(), bg, soft, 5), bg)
    const = torch.full((2, 3, 30, 30), 0.3)
    assert torch.equal(laplacian_blend(const.clone(), const, torch.rand(2, 1, 30, 30), 4), const)


def test_multiband_widens_low_frequencies_only():
    """A flat colour step crossing a hard mask is blended over a wide band; alpha keeps it sharp."""
    fg = torch.full((1, 3, 64, 64), 0.8)
    bg = torch.full((1, 3, 64, 64), 0.2)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :, 32:] = 1
    row = laplacian_blend(fg, bg, mask, 5)[0, 0, 32]
    transition = ((row > 0.21) & (row < 0.79)).sum().item()
    assert transition > 6
    assert row[0].item() == pytest.approx(0.2, abs=0.03) and row[-1].item() == pytest.approx(0.8, abs=0.03)


def test_poisson_blend_uint8_removes_offset_and_keeps_outside():
    h, w = 80, 90
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([60 + xx, 80 + yy // 2, 100 + (xx + yy) // 4], -1).astype(np.uint8)
    fg = np.clip(bg.astype(int) + 40, 0, 255).astype(np.uint8)  # same texture, brighter
    mask = np.zeros((h, w), np.uint8)
    mask[20:60, 25:70] = 1
    out = poisson_blend(fg, bg, mask)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[mask == 0], bg[mask == 0])
    assert np.abs(out[mask > 0].astype(int) - bg[mask > 0].astype(int)).max() <= 3


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_poisson_blend_carries_the_foregrounds_texture_inside(dtype):
    """Inside the mask the clone has the foreground's gradients (its stripes, which the flat background lacks),
    outside it is the background exactly. (A clone that returned the background everywhere passed the
    offset-only tests above: OpenCV 5 overwrote the mask that decided what is inside.)"""
    h, w = 64, 64
    scale = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}[dtype]
    xx = np.mgrid[0:h, 0:w][1]
    bg = np.full((h, w, 3), 0.3, np.float64)
    fg = bg.copy()
    fg[..., 0] += 0.3 * ((xx // 8) % 2)
    bg, fg = (np.rint(a * scale).astype(dtype) if scale != 1.0 else a.astype(dtype) for a in (bg, fg))
    mask = np.zeros((h, w), bool)
    mask[10:54, 10:54] = True
    out = poisson_blend(fg, bg, mask).astype(np.float64) / scale
    np.testing.assert_array_equal(out[~mask], bg[~mask].astype(np.float64) / scale)
    step = out[32, 24, 0] - out[32, 23, 0]  # a stripe edge inside: the foreground's step of 0.3
    assert step == pytest.approx(0.3, abs=0.02), step
    assert out[20:44, 20:44, 0].std() > 0.1


def test_poisson_blend_high_bit_depth():
    h, w = 60, 70
    yy, xx = np.mgrid[0:h, 0:w]
    bg = (np.stack([xx * 300 + 5000, yy * 400 + 8000, (xx + yy) * 150 + 9000], -1)).astype(np.uint16)
    fg = (bg.astype(np.int64) + 6000).astype(np.uint16)
    mask = np.zeros((h, w), bool)
    mask[15:45, 15:55] = True
    out = poisson_blend(fg, bg, mask)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[~mask], bg[~mask])
    assert np.abs(out[mask].astype(int) - bg[mask].astype(int)).max() < 3 * 257
    empty = poisson_blend(fg, bg, np.zeros((h, w), bool))
    np.testing.assert_array_equal(empty, bg)
