"""E4S modules at 64 px: the keypoint region masks, per-region pooling on known features, the regional encoder's
codes, mask-guided synthesis (a region's code acts only through its mask; one code everywhere is the plain
generator), the swap's code selection, and the flip augmentation's keypoint mirroring."""

from __future__ import annotations

import pytest
import torch

from vidswap.errors import ConfigError
from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.e4s import (REGIONS, E4S, E4SConfig, pool_regions, region_masks, region_select)
from vidswap.swap.stylegan.inversion import synthesize

SMALL = dict(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = E4SConfig(input_size=32, stem=8, widths=(8, 16, 16), depths=(1, 1, 1), hidden=16, groups=4)
# an upright face in a 64 px FFHQ crop: eyes, nose tip, mouth corners
KPS = torch.tensor([[[24.0, 27.0], [40.0, 27.0], [32.0, 35.0], [26.0, 43.0], [38.0, 43.0]]])
KPS32 = KPS / 2  # the same face in the 32 px crop of the test generator


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return E4S(TINY, StyleGAN2Generator(StyleGANConfig(**SMALL))).eval()


def _centroid(m: torch.Tensor) -> torch.Tensor:
    """(H, W) mask -> its (x, y) centre of mass in pixel centres."""
    ys, xs = torch.meshgrid(torch.arange(m.shape[0]) + 0.5, torch.arange(m.shape[1]) + 0.5, indexing="ij")
    return torch.stack([(m * xs).sum(), (m * ys).sum()]) / m.sum()


def test_region_masks_partition_the_crop_and_sit_on_their_keypoints():
    m = region_masks(KPS, 64)[0]
    assert m.shape == (len(REGIONS), 64, 64) and torch.allclose(m.sum(0), torch.ones(64, 64), atol=1e-6)
    idx = {r: i for i, r in enumerate(REGIONS)}
    assert torch.allclose(_centroid(m[idx["eyes"]]), torch.tensor([32.0, 27.0]), atol=0.5)
    assert torch.allclose(_centroid(m[idx["mouth"]]), torch.tensor([32.0, 43.0]), atol=1.0)
    assert _centroid(m[idx["brows"]])[1] < 27 - 3 and 27 < _centroid(m[idx["nose"]])[1] < 36
    assert m[idx["rest"], 2, 2] > 0.99 and m[idx["skin"], 35, 24] > 0.95  # a corner; a cheek
    # the face turned a quarter in the image turns its masks with it
    rot = torch.stack([63.999 - KPS[..., 1], KPS[..., 0]], -1)  # (x, y) -> (W - y, x)
    mr = region_masks(rot, 64)[0]
    assert torch.allclose(mr, torch.rot90(m, -1, dims=(1, 2)), atol=2e-3)


def test_pool_regions_averages_features_inside_each_mask():
    masks = torch.zeros(1, 3, 8, 8)
    masks[0, 0, :, :4], masks[0, 1, :, 4:] = 1, 1  # left half, right half, an empty third class
    feats = torch.zeros(1, 2, 8, 8)
    feats[0, 0, :, :4], feats[0, 0, :, 4:], feats[0, 1] = 3.0, -1.0, torch.arange(64.0).reshape(8, 8)
    v = pool_regions(feats, masks)
    left, right = torch.arange(64.0).reshape(8, 8)[:, :4].mean(), torch.arange(64.0).reshape(8, 8)[:, 4:].mean()
    assert torch.allclose(v, torch.tensor([[[3.0, left], [-1.0, right], [0.0, 0.0]]]))
    # pooled at a coarser feature map: the masks are area-averaged to it first
    assert torch.allclose(pool_regions(torch.nn.functional.avg_pool2d(feats, 2), masks)[0, :2], v[0, :2])


def test_encoder_codes_start_at_the_mean_w_and_depend_on_the_region(model):
    x = torch.rand(2, 3, 32, 32)
    masks = model.masks(KPS32.expand(2, -1, -1))
    codes = model.encode(x, masks)
    assert codes.shape == (2, len(REGIONS), model.generator.num_ws, 32)
    # the MLPs' last layer starts small: every code near the generator's mean W, but each region its own
    assert (codes - model.w_avg).abs().max() < 0.5
    assert not torch.equal(codes[:, 1], codes[:, 2])
    # a 64 px input is resized to the encoder's 32 first
    big = torch.nn.functional.interpolate(x, size=64, mode="nearest")
    assert model.encode(big, masks).shape == codes.shape


def test_mask_guided_synthesis_uses_each_code_only_through_its_mask(model):
    torch.manual_seed(1)
    codes = model.w_avg + 0.3 * torch.randn(1, len(REGIONS), model.generator.num_ws, 32)
    masks = torch.zeros(1, len(REGIONS), 32, 32)
    masks[0, 0, :, :16], masks[0, 1, :, 16:] = 1, 1  # the other four regions are empty
    y = model.decode(codes, masks)
    other = codes.clone()
    other[:, 2:] = model.w_avg + torch.randn(1, len(REGIONS) - 2, model.generator.num_ws, 32)
    assert torch.equal(model.decode(other, masks), y)  # codes of empty regions change nothing, bit for bit
    changed = codes.clone()
    changed[:, 1] += 0.5
    assert not torch.equal(model.decode(changed, masks), y)
    # one code in every region is exactly the plain generator
    same = codes[:, :1].expand(-1, len(REGIONS), -1, -1)
    assert torch.equal(model.decode(same, model.masks(KPS32)), synthesize(model.generator, codes[:, 0]))


def test_masked_layers_share_one_code_after_the_first_k():
    torch.manual_seed(0)
    gen = StyleGAN2Generator(StyleGANConfig(**SMALL))
    m = E4S(E4SConfig(**{**TINY.__dict__, "masked_layers": 4}), gen).eval()
    codes = m.w_avg + 0.3 * torch.randn(1, len(REGIONS), gen.num_ws, 32)
    masks = m.masks(KPS32)
    # layers >= 4 see the mask-area-weighted mean of the regions' codes: replacing every region's late codes by
    # that mean renders the same image
    flat = codes.clone()
    area = masks.flatten(2).mean(-1)
    area = area / area.sum(1, keepdim=True)
    mean = torch.einsum("bc,bcld->bld", area, codes[:, :, 4:])
    flat[:, :, 4:] = mean[:, None]
    assert torch.allclose(m.decode(codes, masks), m.decode(flat, masks), atol=1e-5)
    with pytest.raises(ConfigError, match="masked_layers"):
        E4S(E4SConfig(**{**TINY.__dict__, "masked_layers": 99}), gen)


def test_swap_takes_the_sources_codes_for_the_selected_regions():
    assert region_select(None) == (False, True, True, True, True, True)
    assert region_select(["face"]) == region_select(None)
    assert region_select(["eyes", "nose"]) == (False, False, False, True, True, False)
    with pytest.raises(ConfigError, match="unknown face region"):
        region_select(["hair"])
    src, tgt = torch.ones(len(REGIONS), 3, 2), torch.zeros(2, len(REGIONS), 3, 2)
    mixed = E4S.mix(src, tgt, region_select(["eyes", "nose"]))
    assert mixed[:, 3:5].eq(1).all() and mixed[:, :3].eq(0).all() and mixed[:, 5].eq(0).all()


def test_flip_mirrors_images_and_keypoints_consistently():
    from vidswap.train.e4s.step import flip_faces

    img = torch.rand(2, 3, 64, 64)
    kps = torch.cat([KPS, KPS + torch.tensor([3.0, 1.0])])
    fi, fk = flip_faces(img, kps, torch.tensor([True, False]))
    assert torch.equal(fi[0], img[0].flip(-1)) and torch.equal(fi[1], img[1]) and torch.equal(fk[1], kps[1])
    assert fk[0, 0, 0] < fk[0, 1, 0] and fk[0, 3, 0] < fk[0, 4, 0]  # image-left eye and mouth corner first
    # the masks of the mirrored keypoints are the mirrored masks
    assert torch.allclose(region_masks(fk[:1], 64), region_masks(kps[:1], 64).flip(-1), atol=1e-4)
