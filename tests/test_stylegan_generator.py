"""StyleGAN2 generator: modulation math on known weights, W / W+ / S-space equivalences, noise modes, layout."""

import math

import pytest
import torch

from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.layers import modulated_conv2d, resample_filter, upsample2d

TINY = dict(z_dim=8, w_dim=8, mapping_layers=2, channel_base=128, channel_max=16)


def tiny(resolution=32, seed=0):
    torch.manual_seed(seed)
    g = StyleGAN2Generator(StyleGANConfig(resolution=resolution, **TINY)).eval()
    with torch.no_grad():  # noise strengths start at 0 in training; give them a value so noise modes matter
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    return g


def test_modulation_and_demodulation_on_known_weights():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]]])  # [1, 2, 2, 2]
    weight = torch.tensor([[[[1.0]], [[2.0]]]])  # [O=1, I=2, 1, 1]
    styles = torch.tensor([[3.0, 1.0]])
    # modulated weights (3, 2); without demodulation y = 3 x0 + 2 x1
    plain = modulated_conv2d(x, weight, styles, demodulate=False)
    assert torch.equal(plain, 3 * x[:, :1] + 2 * x[:, 1:])
    # demodulated: divided by sqrt(3^2 + 2^2 + 1e-8)
    demod = modulated_conv2d(x, weight, styles, demodulate=True)
    torch.testing.assert_close(demod, (3 * x[:, :1] + 2 * x[:, 1:]) / math.sqrt(13.0), rtol=1e-6, atol=0)


def test_modulated_conv_is_per_sample_and_same_padded():
    x = torch.ones(2, 1, 3, 3)
    weight = torch.ones(1, 1, 3, 3)
    styles = torch.tensor([[2.0], [0.5]])
    y = modulated_conv2d(x, weight, styles, demodulate=False)
    # centre sees 9 taps, edge 6, corner 4; each sample has its own style
    expected = torch.tensor([[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]])
    assert torch.equal(y[0, 0], 2 * expected) and torch.equal(y[1, 0], 0.5 * expected)


def test_upsampling_conv_and_skip_upsample_keep_a_constant_interior():
    kernel = resample_filter()
    assert kernel.shape == (4, 4) and float(kernel.sum()) == pytest.approx(1.0)
    x = torch.ones(1, 1, 6, 6)
    up = upsample2d(x, kernel)
    assert up.shape == (1, 1, 12, 12)
    torch.testing.assert_close(up[0, 0, 2:-2, 2:-2], torch.ones(8, 8))
    weight = torch.arange(9.0).reshape(1, 1, 3, 3)
    y = modulated_conv2d(x, weight, torch.tensor([[0.5]]), demodulate=False, up=True, kernel=kernel)
    assert y.shape == (1, 1, 12, 12)
    # every output pixel gathers each kernel tap once over the four phases: sum(K) * style = 36 * 0.5
    torch.testing.assert_close(y[0, 0, 3:-3, 3:-3], torch.full((6, 6), 18.0))


@pytest.mark.parametrize("resolution,num_ws", [(64, 10), (128, 12), (1024, 18)])
def test_num_ws_and_ffhq_style_space_size(resolution, num_ws):
    cfg = StyleGANConfig(resolution=resolution)
    assert cfg.num_ws == num_ws
    with torch.device("meta"):
        g = StyleGAN2Generator(cfg)
    index = g.synthesis.layer_ws_index()
    assert max(index.values()) == num_ws - 1
    assert index["b4.torgb"] == index["b8.conv0"] == 1
    if resolution == 1024:  # StyleSpace of FFHQ-1024: 26 style layers, 9088 channels
        assert len(g.synthesis.style_shapes) == 26 and sum(g.synthesis.style_shapes.values()) == 9088


def test_w_broadcast_equals_w_plus_and_sampling():
    g = tiny(64)
    z = torch.randn(3, 8)
    with torch.no_grad():
        w = g.mapping(z)
        explicit = torch.stack([w] * g.num_ws, dim=1)
        a = g.synthesis(g.broadcast(w))
        b = g.synthesis(explicit)
        c = g(z)
    assert a.shape == (3, 3, 64, 64)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_w_plus_code_feeds_only_its_layers():
    g = tiny(32)
    with torch.no_grad():
        ws = g.broadcast(g.mapping(torch.randn(1, 8))).clone()
        before = g.synthesis.ws_to_styles(ws)
        ws[:, 1] += 1.0
        after = g.synthesis.ws_to_styles(ws)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"b4.torgb", "b8.conv0"}  # code 1: the first toRGB and the next block's up-conv


def test_style_space_round_trip_and_edit():
    g = tiny(32)
    with torch.no_grad():
        ws = torch.randn(2, g.num_ws, 8)
        styles = g.synthesis.ws_to_styles(ws)
        assert {k: v.shape[1] for k, v in styles.items()} == g.synthesis.style_shapes
        direct = g.synthesis(ws)
        via_s = g.synthesis.synthesize(styles)
        styles["b16.conv1"] = styles["b16.conv1"] * 1.5
        edited = g.synthesis.synthesize(styles)
    assert torch.equal(direct, via_s)
    assert not torch.allclose(direct, edited)


def test_noise_modes():
    g = tiny(32)
    ws = torch.randn(1, g.num_ws, 8)
    with torch.no_grad():
        const1, const2 = g.synthesis(ws, "const"), g.synthesis(ws, "const")
        none1, none2 = g.synthesis(ws, "none"), g.synthesis(ws, "none")
        rand1, rand2 = g.synthesis(ws, "random"), g.synthesis(ws, "random")
        seeded = [g.synthesis(ws, "random", torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(const1, const2) and torch.equal(none1, none2)
    assert not torch.allclose(const1, none1)
    assert not torch.allclose(rand1, rand2)
    assert torch.equal(seeded[0], seeded[1])
    with pytest.raises(ValueError, match="noise_mode"):
        g.synthesis(ws, "fixed")


def test_truncation():
    g = tiny(32)
    with torch.no_grad():
        g.mapping.w_avg.copy_(torch.arange(8.0))
        ws = torch.randn(2, g.num_ws, 8)
        full = g.mapping.truncate(ws, psi=0.0)
        half = g.mapping.truncate(ws, psi=0.5, cutoff=3)
    assert torch.equal(full, torch.arange(8.0).expand(2, g.num_ws, 8))
    torch.testing.assert_close(half[:, :3], (ws[:, :3] + torch.arange(8.0)) / 2)
    assert torch.equal(half[:, 3:], ws[:, 3:])


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="power of two"):
        StyleGANConfig(resolution=96)
    with pytest.raises(ValueError, match="unknown StyleGAN config keys: depth"):
        StyleGANConfig.from_dict({"resolution": 64, "depth": 3})
    cfg = StyleGANConfig(resolution=64, **TINY)
    assert StyleGANConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"W\+ codes must be \[B, 8, 8\]"):
        tiny(32).synthesis(torch.zeros(1, 9, 8))
