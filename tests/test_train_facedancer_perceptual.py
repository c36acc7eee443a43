"""The perceptual loss's networks: the VGG16 safetensors loader (a file the test builds in torchvision's layout,
checked against an independent conv/pool reference) and the identity-feature default, with exact answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from vidswap.errors import ConfigError, ModelError
from vidswap.train.facedancer.config import parse_train_config
from vidswap.train.facedancer.losses import feature_l1
from vidswap.train.facedancer.perceptual import PerceptualConfig, load_vgg16, vgg16_perceptual
from vidswap.train.facedancer.step import StepModels, perceptual_loss

# torchvision's vgg16().features, written out: conv widths and "M" for max-pool
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A VGG16 state dict in torchvision's key layout (features.N.*, plus classifier keys the loader ignores)."""
    g = torch.Generator().manual_seed(seed)
    state, idx, cin = {}, 0, 3
    for v in VGG16_CFG:
        if v == "M":
            idx += 1
            continue
        state[f"features.{idx}.weight"] = torch.randn(v, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5
        state[f"features.{idx}.bias"] = torch.randn(v, generator=g) * 0.01
        idx += 2  # conv, relu
        cin = v
    state["classifier.0.weight"] = torch.zeros(4, 8)
    return state


def reference_taps(state: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """The ReLU output before each max-pool, computed straight from the state dict."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h, idx, taps = (x - mean) / std, 0, []
    for v in VGG16_CFG:
        if v == "M":
            taps.append(h)
            h = F.max_pool2d(h, 2)
            idx += 1
            continue
        h = F.relu(F.conv2d(h, state[f"features.{idx}.weight"], state[f"features.{idx}.bias"], padding=1))
        idx += 2
    return taps


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = vgg16_state()
    path = tmp_path_factory.mktemp("vgg") / "vgg16.safetensors"
    save_file(state, str(path))
    return path, state


def test_vgg16_loader_matches_reference(vgg_file):
    path, state = vgg_file
    net = load_vgg16(path)
    assert torch.equal(net.convs[12].weight, state["features.28.weight"])
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net(x)
    ref = reference_taps(state, x)
    assert [tuple(t.shape[1:]) for t in ours] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    assert len(net(x, n=1)) == 2


def test_vgg16_perceptual_exact(vgg_file):
    path, state = vgg_file
    net = load_vgg16(path)
    g = torch.Generator().manual_seed(2)
    t, c = torch.rand(3, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)
    assert torch.equal(vgg16_perceptual(net, t, t), torch.zeros(3))
    c.requires_grad_(True)
    loss = vgg16_perceptual(net, t, c, n=4)
    ref = sum((a - b).abs().flatten(1).mean(1) for a, b in zip(reference_taps(state, t), reference_taps(state, c)))
    assert loss.shape == (3,) and torch.allclose(loss, ref, rtol=1e-4)
    loss.sum().backward()
    assert c.grad is not None and float(c.grad.abs().sum()) > 0


def test_step_perceptual_identity_and_vgg(vgg_file):
    path, _ = vgg_file
    g = torch.Generator().manual_seed(3)
    t, c = torch.rand(4, 3, 32, 32, generator=g), torch.rand(4, 3, 32, 32, generator=g)
    same = torch.tensor([1.0, 0.0, 1.0, 0.0])
    f_t = [torch.rand(4, 2, 3, 3, generator=g) for _ in range(6)]
    f_c = [x + 0.5 for x in f_t]  # every map off by exactly 0.5 -> n + 1 = 5 maps give 2.5 where same
    ident = StepModels(None, None, None, None, None, None)
    assert torch.allclose(perceptual_loss(ident, t, c, same, f_t, f_c, 4), torch.tensor([2.5, 0.0, 2.5, 0.0]))
    assert torch.allclose(perceptual_loss(ident, t, c, same, f_t, f_c, 4),
                          feature_l1(f_t, f_c, range(5)) * same)
    net = load_vgg16(path)
    vgg = StepModels(None, None, None, None, None, None, net)
    out = perceptual_loss(vgg, t, c, same, f_t, f_c, 4)
    rows = torch.tensor([0, 2])
    assert torch.equal(out[[1, 3]], torch.zeros(2))
    assert torch.allclose(out[rows], vgg16_perceptual(net, t[rows], c[rows]), rtol=1e-6)
    assert torch.equal(perceptual_loss(vgg, t, c, torch.zeros(4), f_t, f_c, 4), torch.zeros(4))


def test_vgg16_loader_errors(vgg_file, tmp_path):
    path, state = vgg_file
    with pytest.raises(ModelError, match="do not exist"):
        load_vgg16(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load_vgg16(bad)
    short = {k: v for k, v in state.items() if k != "features.28.bias"}
    save_file(short, str(tmp_path / "short.safetensors"))
    with pytest.raises(ModelError, match=r"lack features\.28\.bias"):
        load_vgg16(tmp_path / "short.safetensors")
    wrong = {**state, "features.0.weight": torch.zeros(64, 1, 3, 3)}
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(ModelError, match=r"features\.0\.weight has shape \(64, 1, 3, 3\)"):
        load_vgg16(tmp_path / "wrong.safetensors")


def test_perceptual_config():
    assert PerceptualConfig() == PerceptualConfig("identity", None)
    with pytest.raises(ConfigError, match="needs perceptual.weights"):
        PerceptualConfig(net="vgg16")
    with pytest.raises(ConfigError, match="only read with perceptual.net: vgg16"):
        PerceptualConfig(weights="x.safetensors")
    with pytest.raises(ConfigError, match="identity or vgg16"):
        PerceptualConfig(net="vgg19")
    cfg = parse_train_config({"data": {"root": "faces"}, "perceptual": {"net": "vgg16", "weights": "w/vgg.st"}},
                             Path("/cfg"))
    assert cfg.perceptual == PerceptualConfig("vgg16", "/cfg/w/vgg.st")
    assert parse_train_config({"data": {"root": "faces"}}).perceptual.net == "identity"
