"""The kept-contrast weight and band, and the colour match's L* gain kept under them (composite.colour_keep_contrast)."""

import numpy as np
import pytest
import torch
from kornia.color import lab_to_rgb as k_lab_to_rgb

from vidswap.composite import lab as fast_lab
from vidswap.composite.colour import apply_stats_transfer
from vidswap.composite.compositor import RELIT_KEEP_CONTRAST, CompositeConfig, composite_params
from vidswap.composite.contrast import (KeepContrastParams, contrast_base, ellipse_weight, inner_indices,
                                       keep_contrast_weight, weight_step)
from vidswap.composite.masks import feather_mask
from vidswap.errors import ConfigError


def test_ellipse_weight_follows_the_points_mahalanobis_distance():
    # mean (12, 6), std 2 along x and 1 along y, no correlation
    pts = torch.tensor([[[10.0, 5.0], [14.0, 5.0], [10.0, 7.0], [14.0, 7.0]]])
    w = ellipse_weight(pts, (12, 24), 1.0, 2.0)
    assert w.shape == (1, 1, 12, 24)
    row = w[0, 0, 6]
    assert row[12] == 1.0 and row[14] == 1.0  # d = 0, 1: inside
    assert row[15] == pytest.approx(0.5, abs=1e-6)  # d = 1.5: half way, smoothstep(0.5) = 0.5
    assert row[13] == 1.0 and row[16] == 0.0 and row[20] == 0.0  # d = 0.5, 2, 4
    assert row[9] == pytest.approx(0.5, abs=1e-6)  # symmetric
    assert w[0, 0, 7, 12] == 1.0 and w[0, 0, 8, 12] == 0.0  # along y: d = 1, 2
    # the pixel (14, 7) has d = sqrt(1 + 1) = 1.414..., t = 0.414..., weight 1 - t^2 (3 - 2 t)
    t = 2 ** 0.5 - 1.0
    assert w[0, 0, 7, 14] == pytest.approx(1.0 - t * t * (3.0 - 2.0 * t), abs=1e-6)


def test_ellipse_weight_turns_with_correlated_points():
    # points along the diagonal x = y (spread 2 along it, 1 across): (x, y) = c + a u + b v
    u, v = np.array([1.0, 1.0]) / 2 ** 0.5, np.array([1.0, -1.0]) / 2 ** 0.5
    pts = [10.0 + s * u * 2 + r * v for s in (-1, 1) for r in (-1, 1)]
    w = ellipse_weight(torch.tensor(np.array(pts))[None].float(), (21, 21), 1.0, 3.0)
    # (12, 12) is 2 sqrt(2) from the centre along the diagonal: d = 1.414; (7, 13) is 3 sqrt(2) across it: d = 4.24
    t = (2 ** 0.5 - 1.0) / 2.0
    assert w[0, 0, 12, 12] == pytest.approx(1.0 - t * t * (3.0 - 2.0 * t), abs=1e-5)
    assert w[0, 0, 13, 7] == 0.0 and w[0, 0, 7, 13] == 0.0
    assert torch.equal(w, w.transpose(-1, -2))  # symmetric about the diagonal


def test_ellipse_weight_in_a_window_is_the_whole_images_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    pts = torch.rand(2, 12, 2, generator=g) * torch.tensor([40.0, 30.0]) + 5.0
    whole = ellipse_weight(pts, (48, 56), 1.0, 2.0)
    part = ellipse_weight(pts, (17, 23), 1.0, 2.0, origin=(9, 20))
    assert torch.equal(part, whole[..., 9:26, 20:43])


def test_inner_indices_are_the_distinct_indices_of_the_inner_loops():
    regions = {"left_eye": np.array([1, 2, 3]), "right_eye": np.array([7, 8]), "left_brow": np.array([3, 4]),
               "right_brow": np.array([9]), "nose": np.array([2, 5]), "lips_outer": np.array([11, 10]),
               "face_oval": np.array([20, 21, 22])}
    assert inner_indices(regions).tolist() == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    lm = torch.zeros(1, 23, 3)
    lm[0, [1, 2, 3, 4, 5, 7, 8, 9, 10, 11], 0] = torch.tensor([8.0, 10, 12, 14, 16, 8, 10, 12, 14, 16])
    lm[0, [1, 2, 3, 4, 5, 7, 8, 9, 10, 11], 1] = torch.tensor([14.0, 14, 14, 14, 14, 18, 18, 18, 18, 18])
    lm[0, [20, 21, 22], :2] = 100.0  # the face oval's landmarks do not move the ellipse
    face = torch.zeros(1, 1, 32, 24)
    face[..., 2:30, 1:23] = 1.0
    size = torch.tensor([28.0])
    params = KeepContrastParams(strength=0.5, inner=1.0, outer=2.0, erosion=0.1, feather=0.2)
    w = keep_contrast_weight(lm, regions, face, size, params)
    central = ellipse_weight(lm[:, [1, 2, 3, 4, 5, 7, 8, 9, 10, 11], :2], (32, 24), 1.0, 2.0)
    taper = feather_mask(face, size, 0.1, 0.2)
    assert torch.equal(w, 0.5 * (1.0 - central) * taper)
    assert w[0, 0, 16, 12] == 0.0  # the ellipse's centre
    assert w[0, 0, 0].abs().max() == 0.0 and w[0, 0, :, 1].abs().max() == 0.0  # outside the face, on its outline
    assert w[0, 0, 12, 12] == 0.5  # above the features, inside the taper: (12, 12) is 2 sigma above the centre
    assert taper[0, 0, 12, 12] == 1.0 and central[0, 0, 12, 12] == 0.0


def test_weight_step_follows_the_taper_ramp():
    p = KeepContrastParams(feather=0.08, min_ramp=10.0, max_step=4)
    assert [weight_step(fs, p) for fs in (100.0, 124.9, 125.0, 249.9, 250.0, 375.0, 500.0, 2000.0)] == \
        [1, 1, 1, 1, 2, 3, 4, 4]
    assert weight_step(2000.0, KeepContrastParams(feather=0.08, max_step=1)) == 1


def test_keep_contrast_weight_below_the_face_pixels_is_within_a_few_thousandths():
    """A large synthetic face (an ellipse outline, central points in a grid): the weight computed on the mask
    box-filtered down (step 2 and 4) against the one at the face's own pixels."""
    from vidswap.composite.masks import face_size, polygon_mask

    t = torch.linspace(0, 2 * np.pi, 65)[:-1]
    oval = torch.stack([256 + 200 * torch.cos(t), 256 + 240 * torch.sin(t)], -1)[None]  # (1, 64, 2)
    gy, gx = torch.meshgrid(torch.linspace(190, 330, 4), torch.linspace(180, 332, 3), indexing="ij")
    inner = torch.stack([gx.flatten(), gy.flatten()], -1)[None]  # (1, 12, 2)
    lm = torch.cat([oval, inner], 1)
    regions = {"face_oval": np.arange(64), "left_eye": np.arange(64, 67), "right_eye": np.arange(67, 70),
               "left_brow": np.arange(70, 72), "right_brow": np.arange(72, 74), "nose": np.arange(74, 75),
               "lips_outer": np.arange(75, 76)}
    face = polygon_mask(oval, (512, 512))
    fs = face_size(oval)
    ref = keep_contrast_weight(lm, regions, face, fs, KeepContrastParams(strength=0.6, max_step=1))
    for step in (2, 4):
        p = KeepContrastParams(strength=0.6, max_step=step, min_ramp=1.0)
        assert weight_step(float(fs), p) == step
        w = keep_contrast_weight(lm, regions, face, fs, p)
        d = (w - ref).abs()
        assert float(ref.max()) == pytest.approx(0.6)
        assert float(d.max()) < 0.06 and float(d.mean()) < 0.004
        assert float(w[face == 0].max()) < 0.005  # outside the face it stays (nearly) 0


def test_contrast_base_is_the_gaussian_at_the_band():
    x = torch.zeros(2, 1, 41, 41)
    x[:, :, 20, 20] = 1.0
    out = contrast_base(x, torch.tensor([100.0, 200.0]), 0.01)  # sigma 1 and 2 px, truncated at 3 sigma
    for b, sigma in ((0, 1.0), (1, 2.0)):
        k = torch.exp(-0.5 * (torch.arange(-3 * sigma, 3 * sigma + 1) / sigma) ** 2)
        k = k / k.sum()
        r = int(3 * sigma)
        assert torch.allclose(out[b, 0, 20 - r:21 + r, 20 - r:21 + r], k[:, None] * k[None, :], atol=1e-7)
        assert out[b, 0].sum() == pytest.approx(1.0, abs=1e-6)
    assert contrast_base(x, torch.tensor([100.0, 200.0]), 0.0) is x


def _image_and_stats():
    g = torch.Generator().manual_seed(3)
    image = 0.4 + 0.2 * torch.rand(2, 3, 8, 8, generator=g)  # in gamut after every transfer below
    src = (torch.tensor([[60.0, 8.0, 12.0]] * 2), torch.tensor([[14.0, 4.0, 5.0]] * 2))
    dst = (torch.tensor([[55.0, 9.0, 11.0]] * 2), torch.tensor([[7.0, 4.0, 5.0]] * 2))
    return image, src, dst


def test_keep_l_moves_the_lightness_gain_towards_one():
    image, src, dst = _image_and_stats()
    lab = fast_lab.rgb_to_lab(image)
    keep = torch.zeros(2, 1, 8, 8)
    keep[:, :, :, 4:] = 1.0
    keep[:, :, 0, :] = 0.5
    out = apply_stats_transfer(image, src, dst, None, max_std_ratio=None, clamp_max=None, keep_l=keep)
    assert out.min() > 0 and out.max() < 1  # in gamut: no clamping involved
    gain = (dst[1] / src[1])[:, :, None, None]
    moved = (lab - src[0][:, :, None, None]) * gain + dst[0][:, :, None, None]
    l_gain = gain[:, :1] + keep * (1.0 - gain[:, :1])  # 0.5 -> 1 where keep is 1, 0.75 on row 0's left
    moved[:, :1] = (lab[:, :1] - src[0][:, :1, None, None]) * l_gain + dst[0][:, :1, None, None]
    want = k_lab_to_rgb(moved, clip=False).clamp(min=0.0)
    assert (out - want).abs().max() < 2e-5
    # where keep is 1, L* is only shifted by the means' difference (-5); a* and b* are matched as without keep
    got = fast_lab.rgb_to_lab(out)
    assert (got[:, 0, 1:, 4:] - (lab[:, 0, 1:, 4:] - 5.0)).abs().max() < 1e-3
    plain = apply_stats_transfer(image, src, dst, None, max_std_ratio=None, clamp_max=None)
    assert (fast_lab.rgb_to_lab(plain)[:, 1:] - got[:, 1:]).abs().max() < 1e-3
    # keep 0 everywhere is the plain match
    zero = apply_stats_transfer(image, src, dst, None, max_std_ratio=None, clamp_max=None, keep_l=keep * 0)
    assert (zero - plain).abs().max() < 2e-5


def test_keep_base_is_what_the_kept_gain_acts_on():
    image, src, dst = _image_and_stats()
    lab = fast_lab.rgb_to_lab(image)
    base = torch.full((2, 1, 8, 8), 60.0)  # the source mean: its deviation is 0, so nothing is kept
    keep = torch.ones(2, 1, 8, 8)
    plain = apply_stats_transfer(image, src, dst, None, max_std_ratio=None, clamp_max=None)
    same = apply_stats_transfer(image, src, dst, None, max_std_ratio=None, clamp_max=None, keep_l=keep,
                                keep_base=base)
    assert (same - plain).abs().max() < 2e-5
    # base = L: as without a base; base = L + 4: L* lifted by (1 - 0.5) * 4 = 2 over the plain match
    kept = apply_stats_transfer(image, src, dst, None, max_std_ratio=None, clamp_max=None, keep_l=keep)
    own = apply_stats_transfer(image, src, dst, None, max_std_ratio=None, clamp_max=None, keep_l=keep,
                               keep_base=lab[:, :1])
    assert (kept - own).abs().max() < 2e-5
    up = apply_stats_transfer(image, src, dst, None, max_std_ratio=None, clamp_max=None, keep_l=keep,
                              keep_base=lab[:, :1] + 4.0)
    assert (fast_lab.rgb_to_lab(up)[:, 0] - fast_lab.rgb_to_lab(kept)[:, 0] - 2.0).abs().max() < 1e-3


def test_keep_l_with_strength_shifts_by_the_blended_means():
    image, src, dst = _image_and_stats()
    lab = fast_lab.rgb_to_lab(image)
    out = apply_stats_transfer(image, src, dst, None, strength=0.4, max_std_ratio=None, clamp_max=None,
                               keep_l=torch.ones(2, 1, 8, 8))
    assert (fast_lab.rgb_to_lab(out)[:, 0] - (lab[:, 0] + 0.4 * -5.0)).abs().max() < 1e-3


def test_colour_keep_contrast_config():
    auto = CompositeConfig()
    assert RELIT_KEEP_CONTRAST > 0
    assert composite_params(auto, 0, relit=True).keep_contrast == KeepContrastParams(strength=RELIT_KEEP_CONTRAST)
    assert composite_params(auto, 0, relit=False).keep_contrast is None
    assert composite_params(CompositeConfig(colour_keep_contrast=0.3), 0).keep_contrast.strength == 0.3
    assert composite_params(CompositeConfig(colour_keep_contrast=0.0), 0, relit=True).keep_contrast is None
    for bad in (1.5, -0.1, "on", True):
        with pytest.raises(ConfigError, match="colour_keep_contrast"):
            CompositeConfig(colour_keep_contrast=bad)
    with pytest.raises(ValueError, match="inner < outer"):
        KeepContrastParams(inner=2.0, outer=1.0)


def test_colour_chroma_limit_caps_the_a_and_b_gains_only():
    """The Reinhard match with ``max_chroma_ratio`` 1.25: std gains (L, a, b) of 1.5 / 3 / 0.5 become 1.5 / 1.25 / 0.5
    exactly (the L* gain and a lowering gain untouched); ``composite.colour_chroma_limit: auto`` is 1.25 for the
    relit appearance, none (``colour_std_limit`` alone) for every other core."""
    from vidswap.composite.compositor import RELIT_CHROMA_LIMIT

    gen = torch.Generator().manual_seed(5)
    image = torch.rand(1, 3, 8, 8, generator=gen) * 0.2 + 0.4  # in gamut after the transfer
    lab = fast_lab.rgb_to_lab(image)
    src = (torch.tensor([[50.0, 10.0, 12.0]]), torch.tensor([[4.0, 2.0, 6.0]]))
    dst = (torch.tensor([[52.0, 11.0, 10.0]]), torch.tensor([[6.0, 6.0, 3.0]]))
    out = apply_stats_transfer(image, src, dst, None, max_std_ratio=3.0, clamp_max=None, lab=lab,
                               max_chroma_ratio=1.25)
    want = (lab - src[0][..., None, None]) * torch.tensor([1.5, 1.25, 0.5]).view(1, 3, 1, 1) + dst[0][..., None, None]
    assert (fast_lab.rgb_to_lab(out) - want).abs().max() < 1e-3
    assert RELIT_CHROMA_LIMIT == 1.25
    assert composite_params(CompositeConfig(), 0, relit=True).colour.max_chroma_ratio == RELIT_CHROMA_LIMIT
    assert composite_params(CompositeConfig(), 0, relit=False).colour.max_chroma_ratio is None
    assert composite_params(CompositeConfig(colour_chroma_limit=2.0), 0).colour.max_chroma_ratio == 2.0
    for bad in (0.5, 11.0, "on", True):
        with pytest.raises(ConfigError, match="colour_chroma_limit"):
            CompositeConfig(colour_chroma_limit=bad)
