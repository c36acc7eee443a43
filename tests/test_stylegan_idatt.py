"""IDATT's parts with exact expectations on small tensors: the attention block (Eqs. 4-5), the multi-source key
layout, the inner-face mask, the blender's start, the model's W+ and image shapes."""

from __future__ import annotations

import math

import pytest
import torch

from vidswap.errors import ConfigError
from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.idatt import IDATT, IDATTConfig, IdentityAttention, inner_face_mask, source_keys

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = IDATTConfig(input_size=64, stem=8, widths=(8, 16, 16), depths=(1, 1, 1), fpn=16, medium_codes=3,
                   blend_from=16, blend_width=8, groups=4)


def _block(channels=8, reduction=4, heads=1, gamma=0.5):
    torch.manual_seed(0)
    att = IdentityAttention(channels, reduction, heads)
    with torch.no_grad():
        att.gamma.fill_(gamma)
    return att


def test_one_key_gives_that_keys_value_projection_everywhere():
    att = _block()
    target, source = torch.randn(2, 8, 3, 5), torch.randn(2, 8, 1, 1)  # one source position: one key
    out = att(target, source)
    expected = target + 0.5 * att.out(att.value(source))  # (B, C, 1, 1) broadcast over every query position
    assert torch.allclose(out, expected, atol=1e-6)


def test_hand_computed_attention():
    att = IdentityAttention(4, reduction=4)  # one channel for Q, K, V
    with torch.no_grad():
        for conv, w in ((att.query, 1.0), (att.key, 2.0), (att.value, 3.0)):
            conv.weight.zero_()
            conv.weight[0, 0] = w  # reads channel 0 only
            conv.bias.zero_()
        att.out.weight.fill_(1.0)
        att.out.bias.zero_()
        att.gamma.fill_(2.0)
    target = torch.zeros(1, 4, 1, 1)
    target[0, 0] = 0.5  # q = 0.5
    source = torch.zeros(1, 4, 1, 2)
    source[0, 0, 0] = torch.tensor([1.0, -1.0])  # k = (2, -2), v = (3, -3)
    # M = softmax(q k) = softmax(1, -1); F_st = M v; every output channel = gamma * F_st + target
    e = math.exp(1.0) / (math.exp(1.0) + math.exp(-1.0))
    fst = e * 3.0 + (1 - e) * -3.0
    out = att(target, source)
    assert torch.allclose(out[0, :, 0, 0], 2.0 * fst + target[0, :, 0, 0], atol=1e-6)


def test_permuting_keys_and_values_changes_nothing_and_gamma_zero_is_identity():
    att = _block(channels=16, heads=2)
    target, source = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 3, 3)
    perm = torch.randperm(9)
    shuffled = source.flatten(2)[:, :, perm].reshape(2, 16, 3, 3)
    assert torch.allclose(att(target, source), att(target, shuffled), atol=1e-6)
    assert not torch.allclose(att(target, source), target, atol=1e-3)
    m = att.attention(target, source)
    assert m.shape == (2, 2, 16, 9) and torch.allclose(m.sum(-1), torch.ones(2, 2, 16), atol=1e-6)
    fresh = IdentityAttention(16, 4, 2)  # gamma starts at 0: the block starts as the identity (Eq. 5)
    assert torch.equal(fresh(target, source), target)


def test_source_keys_are_every_photos_positions():
    maps = torch.randn(3, 4, 2, 2)
    keys = source_keys(maps)
    assert keys.shape == (1, 4, 2, 6)
    got = sorted(map(tuple, keys[0].flatten(1).T.tolist()))
    assert got == sorted(map(tuple, maps.permute(0, 2, 3, 1).reshape(-1, 4).tolist()))
    att = _block()
    one = torch.randn(1, 8, 2, 2)  # the same photo twice attends exactly as once
    t = torch.randn(1, 8, 3, 3)
    assert torch.allclose(att(t, source_keys(one.expand(2, -1, -1, -1))), att(t, one), atol=1e-6)


def test_inner_face_mask_covers_the_face_centre_not_the_corners():
    kps = torch.tensor([[[20.0, 26.0], [44.0, 26.0], [32.0, 36.0], [24.0, 46.0], [40.0, 46.0]]])
    m = inner_face_mask(kps, 64)
    assert m.shape == (1, 1, 64, 64) and float(m.min()) >= 0 and float(m.max()) <= 1
    assert m[0, 0, 36, 32] > 0.99 and m[0, 0, 2, 2] < 0.01 and m[0, 0, 62, 62] < 0.01
    assert torch.allclose(m, m.flip(-1), atol=1e-5)  # symmetric keypoints: a symmetric mask


def test_model_shapes_and_untrained_blender_is_the_pixel_blend():
    torch.manual_seed(0)
    model = IDATT(TINY, StyleGAN2Generator(StyleGANConfig(**SMALL)))
    assert set(model.attn) == {"coarse", "medium", "fine"} and len(model.latent.heads) == 10
    src, tgt = torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64)
    fs, ft = model.encode_features(src), model.encode_features(tgt)
    assert [tuple(f.shape) for f in ft] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 16, 4, 4)]
    ws = model.codes(model.transfer(fs, ft))
    assert ws.shape == (2, 10, 32)
    # gamma = 0 at the start: the swap's codes are the target's own reconstruction codes
    assert torch.allclose(ws, model.codes(ft), atol=1e-6)
    img, feats = model.side(ws)
    assert sorted(feats) == [16, 32, 64] and torch.allclose(img, model.generator.synthesis(ws), atol=1e-6)
    kps = torch.tensor([[20.0, 26.0], [44.0, 26.0], [32.0, 36.0], [24.0, 46.0], [40.0, 46.0]]).expand(2, 5, 2)
    mask = inner_face_mask(kps, 64, TINY.mask_feather)
    assert torch.allclose(model.final(img, feats, tgt, kps), mask * img + (1 - mask) * (tgt * 2 - 1), atol=1e-6)


def test_config_errors():
    with pytest.raises(ConfigError, match="attention_levels"):
        IDATTConfig(attention_levels=("coarse", "middle"))
    with pytest.raises(ConfigError, match="divide by reduction"):
        IDATTConfig(widths=(6, 16, 16), reduction=4)
    with pytest.raises(ConfigError, match="blend_from"):
        IDATT(IDATTConfig(**{**TINY.__dict__, "blend_from": 128}), StyleGAN2Generator(StyleGANConfig(**SMALL)))
