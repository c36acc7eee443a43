"""MegaFS modules at 64 px: W++ shapes and code routing of the HieRFE encoder, the FTM's cell arithmetic on
known weights, the swap taking the target's topology codes, and the generator's constant-input override."""

from __future__ import annotations

import pytest
import torch

from vidswap.errors import ConfigError
from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.megafs import MegaFS, MegaFSConfig, TransferBlock, TransferCell

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = MegaFSConfig(input_size=64, stem=8, widths=(8, 16, 16, 16), depths=(1, 1, 1, 1), fpn=16, low_codes=4,
                    mid_codes=3, cells=2, groups=4)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MegaFS(TINY, StyleGAN2Generator(StyleGANConfig(**SMALL))).eval()


def test_encoder_gives_w_plus_plus_and_routes_codes_to_pyramid_levels(model):
    x = torch.rand(3, 3, 64, 64)
    codes = model.encode(x)
    assert codes.const.shape == (3, 16, 4, 4) and codes.ws.shape == (3, 10, 32)
    # 4 low codes from the smallest level (4 x 4: 2 stride-2 steps), 3 from the middle (8 x 8), 3 from the largest
    assert model.encoder.levels == [2] * 4 + [1] * 3 + [0] * 3
    assert [len(h.convs) // 3 for h in model.encoder.heads] == [2] * 4 + [3] * 3 + [4] * 3
    # C starts at the generator's constant (zero-initialised offset); a 128 px input is resized to 64 first
    assert torch.equal(codes.const, model.generator.synthesis.b4.const.expand(3, -1, -1, -1))
    big = model.encode(torch.nn.functional.interpolate(x, size=128, mode="nearest"))
    assert big.ws.shape == (3, 10, 32)
    assert model.decode(codes).shape == (3, 3, 64, 64)


def test_transfer_cell_is_the_papers_two_step_trajectory():
    cell = TransferCell(2)
    with torch.no_grad():
        for lin in (cell.k1_s, cell.k2_s, cell.k1_t, cell.k2_t):
            lin.weight.zero_()
        cell.k1_s.bias.fill_(0.0)                 # sigmoid(0) = 0.5
        cell.k2_s.bias.fill_(0.5)                 # tanh(0.5)
        cell.k1_t.bias.fill_(100.0)               # sigmoid -> 1
        cell.k2_t.bias.fill_(0.0)                 # tanh(0) = 0
    ls, lt = torch.tensor([[2.0, -4.0]]), torch.tensor([[1.0, 3.0]])
    s, t = cell(ls, lt)
    assert torch.allclose(s, torch.tanh(torch.tensor(0.5)) + 0.5 * ls)
    assert torch.allclose(t, lt)
    block = TransferBlock(2, 1)
    block.cells[0] = cell
    with torch.no_grad():
        block.omega.copy_(torch.tensor([0.0, 100.0]))  # gate 0.5 on the first channel, 1 (target) on the second
    out = block(ls, lt)
    assert torch.allclose(out, torch.stack([0.5 * t[0, 0] + 0.5 * s[0, 0], t[0, 1]])[None])


def test_swap_keeps_the_targets_constant_and_low_codes(model):
    src, tgt = model.encode(torch.rand(2, 3, 64, 64)), model.encode(torch.rand(2, 3, 64, 64))
    out = model.transfer(src, tgt)
    assert torch.equal(out.ws[:, :4], tgt.ws[:, :4]) and out.const is tgt.const
    assert not torch.allclose(out.ws[:, 4:], tgt.ws[:, 4:])
    # the high codes depend on the source; one source code broadcasts over a batch of targets
    other = model.transfer(tgt, tgt)
    assert not torch.allclose(out.ws[:, 4:], other.ws[:, 4:])
    one = model.transfer(type(src)(src.const[:1], src.ws[:1]), tgt)
    assert torch.allclose(one.ws[0], out.ws[0])


def test_generator_constant_override(model):
    g = model.generator
    ws = g.map(torch.randn(2, 32))
    const = g.synthesis.b4.const.expand(2, -1, -1, -1)
    assert torch.equal(g.synthesis(ws), g.synthesis(ws, const=const))
    assert not torch.allclose(g.synthesis(ws), g.synthesis(ws, const=const + 1.0))


def test_config_errors():
    with pytest.raises(ConfigError, match="input_size"):
        MegaFSConfig(input_size=48)
    with pytest.raises(ConfigError, match="same length"):
        MegaFSConfig(widths=(8, 8), depths=(1, 1))
    with pytest.raises(ConfigError, match="at least one high code"):
        MegaFS(MegaFSConfig(input_size=64, low_codes=10), StyleGAN2Generator(StyleGANConfig(**SMALL)))
