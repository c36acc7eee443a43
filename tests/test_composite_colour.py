"""Colour: masked LAB statistics, Reinhard transfer, histogram matching, temporal smoothing of statistics."""

import pytest
import torch
from kornia.color import rgb_to_lab

from vidswap.composite.colour import (
    apply_stats_transfer,
    histogram_match,
    masked_lab_stats,
    pack_stats,
    smooth_stats,
    unpack_stats,
)


def scene(seed=0, size=48):
    g = torch.Generator().manual_seed(seed)
    src = (torch.tensor([0.55, 0.45, 0.40]).view(1, 3, 1, 1) + 0.08 * torch.rand(2, 3, size, size, generator=g))
    dst = (torch.tensor([0.60, 0.50, 0.38]).view(1, 3, 1, 1) + 0.12 * torch.rand(2, 3, size, size, generator=g))
    mask = torch.zeros(2, 1, size, size)
    mask[0, :, 8:40, 10:38] = 1.0
    mask[1, :, 4:30, 4:44] = 1.0
    return src, dst, mask


def test_masked_stats_match_a_direct_computation():
    src, _, mask = scene()
    mean, std = masked_lab_stats(src, mask)
    lab = rgb_to_lab(src)
    for b in range(2):
        sel = lab[b][:, mask[b, 0] > 0]  # (3, N)
        assert torch.allclose(mean[b], sel.mean(dim=1), atol=1e-4)
        assert torch.allclose(std[b], sel.std(dim=1, unbiased=False), atol=1e-4)


def test_reinhard_transfer_reaches_target_stats_and_keeps_outside():
    src, dst, mask = scene()
    s, d = masked_lab_stats(src, mask), masked_lab_stats(dst, mask)
    out = apply_stats_transfer(src, s, d, mask)
    assert out.min() > 0 and out.max() < 1  # in gamut: no clamping involved
    mean, std = masked_lab_stats(out, mask)
    assert torch.allclose(mean, d[0], atol=1e-3)
    assert torch.allclose(std, d[1], atol=1e-3)
    outside = (mask == 0).expand_as(src)
    assert torch.equal(out[outside], src[outside])
    # Packed (B, 6) statistics work the same.
    out2 = apply_stats_transfer(src, pack_stats(*s), pack_stats(*d), mask)
    assert torch.equal(out, out2)
    # Strength 0 leaves the image (up to the LAB round trip).
    same = apply_stats_transfer(src, s, d, mask, strength=0.0)
    assert torch.allclose(same, src, atol=1e-5)


def test_std_gain_is_limited():
    src, dst, mask = scene()
    s = masked_lab_stats(src, mask)
    flat = (s[0], s[1] * 1e-3)  # a nearly flat source would need a 1000x gain
    out = apply_stats_transfer(src, flat, masked_lab_stats(dst, mask), mask, max_std_ratio=2.0)
    assert torch.isfinite(out).all() and out.max() <= 1.0


def test_histogram_match_rgb_takes_reference_values_exactly():
    g = torch.Generator().manual_seed(3)
    img = torch.rand(1, 3, 20, 30, generator=g)
    ref = torch.rand(1, 3, 25, 24, generator=g) ** 3  # a very different distribution
    mi = torch.zeros(1, 1, 20, 30)
    mi[..., 2:18, 5:25] = 1  # 320 pixels
    mr = torch.zeros(1, 1, 25, 24)
    mr[..., 0:16, 0:20] = 1  # 320 pixels
    out = histogram_match(img, ref, mi, mr, space="rgb")
    for c in range(3):
        got = torch.sort(out[0, c][mi[0, 0] > 0]).values
        want = torch.sort(ref[0, c][mr[0, 0] > 0]).values
        assert torch.allclose(got, want, atol=1e-6)
        # Order is kept: the mapping is monotonic.
        x = img[0, c][mi[0, 0] > 0]
        y = out[0, c][mi[0, 0] > 0]
        assert torch.equal(torch.argsort(x), torch.argsort(y))
    outside = (mi == 0).expand_as(img)
    assert torch.equal(out[outside], img[outside])


def test_histogram_match_lab_matches_quantiles():
    src, dst, mask = scene(5)
    out = histogram_match(src, dst, mask, mask, space="lab")
    lab_o, lab_d = rgb_to_lab(out), rgb_to_lab(dst)
    q = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    for b in range(2):
        sel = mask[b, 0] > 0
        for c in range(3):
            assert torch.allclose(
                torch.quantile(lab_o[b, c][sel], q), torch.quantile(lab_d[b, c][sel], q), atol=0.05
            )


def test_smooth_stats_removes_pumping():
    g = torch.Generator().manual_seed(2)
    t = torch.arange(60, dtype=torch.float32)
    trend = torch.stack([60 + 0.1 * t, 10 + 0 * t, 20 - 0.05 * t, 8 + 0 * t, 4 + 0 * t, 5 + 0 * t], dim=1)
    noisy = trend + torch.randn(60, 6, generator=g)
    noisy[30] += 15.0  # one frame with a bad mask

    def pump(x):
        return (x[1:] - x[:-1]).var(dim=0).mean().item()

    for mode in ("gaussian", "median", "ema"):
        out = smooth_stats(noisy, sigma=3.0, mode=mode, window=7, alpha=0.2)
        assert out.shape == noisy.shape
        assert pump(out) < 0.2 * pump(noisy), mode
    med = smooth_stats(noisy, mode="median", window=7)
    assert (med[30] - trend[30]).abs().max() < 3.0  # the outlier frame is ignored
    gauss = smooth_stats(trend, sigma=3.0)
    assert torch.allclose(gauss[10:50], trend[10:50], atol=1e-4)  # zero phase: no lag on a linear trend
    mean, std = unpack_stats(gauss)
    assert mean.shape == (60, 3) and std.shape == (60, 3)
    with pytest.raises(ValueError):
        smooth_stats(noisy, mode="kalman")


def test_fast_lab_conversions_agree_with_kornia():
    """composite.lab: kornia's formulas with the knees as clamps (no where()); values at, above and below every
    knee (sRGB 0.04045, linear 0.0031308, XYZ 0.008856, f 0.2069), black, white and random colours."""
    from kornia.color import lab_to_rgb as k_lab_to_rgb, rgb_to_lab as k_rgb_to_lab

    from vidswap.composite import lab as fast_lab

    g = torch.Generator().manual_seed(3)
    knees = torch.tensor([0.0, 1e-4, 0.003, 0.0031308, 0.0032, 0.04, 0.04045, 0.041, 0.2, 0.5, 0.99, 1.0])
    grid = torch.cartesian_prod(knees, knees, knees).T.reshape(1, 3, -1, 12)
    images = torch.cat([grid, torch.rand(1, 3, grid.shape[2], 12, generator=g)])
    lab = fast_lab.rgb_to_lab(images)
    assert (lab - k_rgb_to_lab(images)).abs().max() < 3e-4  # L*a*b* units (float rounding of the cube root)
    assert (fast_lab.lab_to_rgb(lab) - k_lab_to_rgb(lab, clip=False)).abs().max() < 2e-5
    assert (fast_lab.lab_to_rgb(lab) - images).abs().max() < 2e-5  # round trip
    gain = torch.tensor([[1.3, 0.7, 1.2], [0.8, 1.5, 0.9]])
    offset = torch.tensor([[-5.0, 3.0, -2.0], [4.0, -6.0, 1.0]])
    moved = k_lab_to_rgb(lab * gain[:, :, None, None] + offset[:, :, None, None], clip=False)
    assert (fast_lab.lab_affine(lab, gain, offset) - moved).abs().max() < 2e-5


def test_positive_pow_is_pow_to_float_rounding_and_in_place():
    """composite.lab.positive_pow: exp(p log x) for the conversions' exponents over their ranges, against float64
    pow: within 3e-6 relative over [0.001, 1.26] (torch's float32 pow_: 7e-7), a 1000th of a code value; the tensor
    given is the one returned."""
    from vidswap.composite.lab import positive_pow

    x64 = torch.cat([torch.logspace(-3, 0.1, 4001, dtype=torch.float64), torch.tensor([0.0031308, 0.008856, 1.0],
                                                                                        dtype=torch.float64)])
    for p in (2.4, 1 / 2.4, 1 / 3.0):
        x = x64.float()
        out = positive_pow(x, p)
        assert out.data_ptr() == x.data_ptr()
        want = x64.float().double() ** p
        assert ((out.double() - want).abs() / want).max() < 3e-6
    assert positive_pow(torch.tensor([1.0]), 2.4).item() == 1.0


def test_transfer_with_strength_is_the_blend_in_lab():
    """apply_stats_transfer's per-channel affine (strength folded into gain and offset) equals the blend of the
    original and the fully moved L*a*b*, as the formula reads."""
    from kornia.color import lab_to_rgb as k_lab_to_rgb

    from vidswap.composite import lab as fast_lab

    g = torch.Generator().manual_seed(4)
    image = torch.rand(2, 3, 8, 8, generator=g)
    src = (torch.tensor([[60.0, 8.0, 12.0]] * 2), torch.tensor([[10.0, 4.0, 5.0]] * 2))
    dst = (torch.tensor([[50.0, 12.0, 10.0]] * 2), torch.tensor([[12.0, 3.0, 6.0]] * 2))
    out = apply_stats_transfer(image, src, dst, None, strength=0.4, max_std_ratio=None, clamp_max=None)
    lab = fast_lab.rgb_to_lab(image)
    moved = (lab - src[0][:, :, None, None]) * (dst[1] / src[1])[:, :, None, None] + dst[0][:, :, None, None]
    want = k_lab_to_rgb(lab + 0.4 * (moved - lab), clip=False).clamp(min=0.0)
    assert (out - want).abs().max() < 2e-5
