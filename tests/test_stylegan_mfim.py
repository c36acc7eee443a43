"""MFIM modules at 64 px: S-space codes and style maps of the encoder, the synthesis with style maps as noise
inputs, the code routing (target coarse, source identity blocks) and ID mixing across layers with exact
expectations."""

from __future__ import annotations

import pytest
import torch

from vidswap.errors import ConfigError
from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.mfim import (MFIM, MFIMConfig, id_source_styles, layer_resolutions, mix_styles,
                                        synthesize_with_maps)

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = MFIMConfig(input_size=64, stem=8, widths=(8, 16, 16, 16), depths=(1, 1, 1, 1), fpn=16, groups=4, map_max=32,
                  id_from=32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    gen = StyleGAN2Generator(StyleGANConfig(**SMALL))
    with torch.no_grad():
        for _, block in gen.synthesis.blocks():
            for name in block.layer_names[:-1]:
                getattr(block, name).noise_strength.fill_(0.3)
    return MFIM(TINY, gen).eval()


def test_encoder_gives_s_space_codes_and_style_maps(model):
    x = torch.rand(2, 3, 64, 64)
    codes = model.encode(x)
    names = list(model.generator.synthesis.layer_ws_index())
    assert list(codes.styles) == names and len(names) == 14  # b4: conv1, torgb; b8..b64: conv0, conv1, torgb
    assert all(codes.styles[n].shape == (2, model.generator.synthesis.style_shapes[n]) for n in names)
    # style maps at every conv layer up to map_max (32 px), one channel at the layer's side
    assert sorted(codes.maps) == sorted(n for n in names if not n.endswith("torgb") and layer_resolutions(
        model.generator)[n] <= 32)
    assert all(codes.maps[n].shape == (2, 1, model.layer_res[n], model.layer_res[n]) for n in codes.maps)
    # codes from the pyramid level of their block (pSp's coarse / medium / fine), maps from the nearest side
    enc = model.encoder
    assert enc.sides == (16, 8, 4)
    assert [enc.level_of(r) for r in (4, 8, 16, 32, 64)] == [2, 2, 1, 1, 0]
    assert [enc.map_level_of(r) for r in (4, 8, 16, 32)] == [2, 1, 0, 0]
    # the gains start at the generator's noise strength
    assert torch.equal(enc.map_gain, torch.full((len(codes.maps),), 0.3))
    assert model.decode(codes).shape == (2, 3, 64, 64)


def test_synthesis_with_style_maps_is_the_generator_with_the_maps_as_noise(model):
    g = model.generator
    styles = g.synthesis.ws_to_styles(g.map(torch.randn(2, 32)))
    assert torch.equal(synthesize_with_maps(g, styles, {}, {}), g.synthesis.synthesize(styles, noise_mode="const"))
    convs = [n for n in styles if not n.endswith("torgb")]
    zero = {n: torch.zeros(2, 1, model.layer_res[n], model.layer_res[n]) for n in convs}
    gains = {n: torch.tensor(0.3) for n in convs}
    assert torch.equal(synthesize_with_maps(g, styles, zero, gains), g.synthesis.synthesize(styles, noise_mode="none"))
    # a map equal to the layer's constant noise, at its noise strength, is the constant-noise synthesis
    const = {n: g.synthesis.get_submodule(n).noise_const[None, None].expand(2, 1, -1, -1) for n in convs}
    strength = {n: g.synthesis.get_submodule(n).noise_strength for n in convs}
    assert torch.allclose(synthesize_with_maps(g, styles, const, strength),
                          g.synthesis.synthesize(styles, noise_mode="const"), atol=1e-6)
    assert not torch.allclose(synthesize_with_maps(g, styles, {k: v + 1 for k, v in zero.items()}, gains),
                              g.synthesis.synthesize(styles, noise_mode="none"))


def test_mix_styles_takes_the_source_at_the_identity_blocks_only():
    res = {"b4.conv1": 4, "b16.conv0": 16, "b32.conv0": 32, "b32.torgb": 32, "b64.conv1": 64}
    tgt = {n: torch.full((2, 3), float(i)) for i, n in enumerate(res)}
    src = {n: torch.full((3,), 10.0 + i) for i, n in enumerate(res)}
    out = mix_styles(tgt, src, res, (32, 64))
    for n in res:
        want = src[n].expand(2, 3) if res[n] >= 32 else tgt[n]
        assert torch.equal(out[n], want), n
    assert out["b4.conv1"] is tgt["b4.conv1"]
    half = mix_styles(tgt, src, res, (16, 32), weight=0.25)
    assert torch.equal(half["b16.conv0"], torch.full((2, 3), 1.0 + 0.25 * (11.0 - 1.0)))
    assert torch.equal(half["b64.conv1"], tgt["b64.conv1"]) and torch.equal(half["b4.conv1"], tgt["b4.conv1"])
    assert all(torch.equal(mix_styles(tgt, src, res, (32, 64), weight=0.0)[n], tgt[n]) for n in res)


def test_id_mixing_picks_the_right_photo_for_the_right_layers(model):
    res = model.layer_res
    photos = {n: torch.stack([torch.full((c,), 100.0 * p + i) for p in range(3)])
              for i, (n, c) in enumerate(model.generator.synthesis.style_shapes.items())}
    mixed = id_source_styles(photos, res, local_from=64, shape_source=0, texture_source=2)
    for i, n in enumerate(res):
        if res[n] < 64:
            assert torch.equal(mixed[n], photos[n][0]), n  # global ID codes (and unused coarse ones): photo 0
        else:
            assert torch.equal(mixed[n], photos[n][2]), n  # local ID codes: photo 2
    mean = id_source_styles(photos, res, local_from=64)
    assert all(torch.equal(mean[n], photos[n].mean(0)) for n in res)
    only_tex = id_source_styles(photos, res, local_from=64, texture_source=1)
    assert all(torch.equal(only_tex[n], photos[n][1] if res[n] >= 64 else photos[n].mean(0)) for n in res)
    # through the model's transfer: target codes and maps at 4-16 px, photo 0 at 32 px, photo 2 at 64 px
    target = model.encode(torch.rand(2, 3, 64, 64))
    out = model.transfer(mixed, target)
    for n in res:
        want = target.styles[n] if res[n] < 32 else photos[n][0 if res[n] < 64 else 2].expand(2, -1)
        assert torch.equal(out.styles[n], want), n
    assert out.maps is target.maps


def test_swap_depends_on_the_source_identity_codes_only(model):
    src, tgt = torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        y = model.swap(src, tgt)
        s = model.encode(src).styles
        t = model.encode(tgt)
        coarse_changed = {n: (v + 5.0 if model.layer_res[n] < 32 else v) for n, v in s.items()}
        assert torch.equal(model.decode(model.transfer(coarse_changed, t)), y)
        fine_changed = {n: (v + 0.5 if model.layer_res[n] >= 32 else v) for n, v in s.items()}
        assert not torch.allclose(model.decode(model.transfer(fine_changed, t)), y)
    assert y.shape == (2, 3, 64, 64)


def test_config_errors():
    with pytest.raises(ConfigError, match="input_size"):
        MFIMConfig(input_size=48)
    with pytest.raises(ConfigError, match="id_from"):
        MFIMConfig(id_from=48)
    with pytest.raises(ConfigError, match="at least one identity block"):
        MFIM(MFIMConfig(input_size=64, id_from=128), StyleGAN2Generator(StyleGANConfig(**SMALL)))
    assert MFIMConfig.from_json(TINY.to_json()) == TINY
