"""The FaceDancer-style refinement generator (vidswap.swap.generator): shapes, exact identity at zero gain, AdaIN,
AFFA, safetensors round trip, the refiner adapter."""

from __future__ import annotations

import pytest
import torch

from vidswap.swap.base import SourceIdentity, SwapBatch, SwapResult
from vidswap.swap.generator import (
    AFFA,
    AdaIN,
    GeneratorConfig,
    GeneratorRefiner,
    SwapGenerator,
    face_region,
    load_generator,
    lowpass_face,
    read_metadata,
    save_generator,
)

SMALL = GeneratorConfig(channels=(8, 16, 32, 64), style_dim=64)


def inputs(B: int, S: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(B, 3, S, S, generator=g)
    render = torch.rand(B, 3, S, S, generator=g)
    alpha = (torch.rand(B, 1, S, S, generator=g) > 0.3).float() * torch.rand(B, 1, S, S, generator=g)
    emb = torch.nn.functional.normalize(torch.randn(B, 128, generator=g), dim=1)
    return target, render, alpha, emb


def perturbed(config: GeneratorConfig = SMALL, seed: int = 1) -> SwapGenerator:
    """A generator with non-zero gains and random weights everywhere (as after tuning)."""
    torch.manual_seed(seed)
    gen = SwapGenerator(config)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.05 * torch.randn_like(p))
        gen.gain.copy_(torch.tensor([0.3, -0.2, 0.25, 0.4]))
    return gen


@pytest.mark.parametrize("S", [128, 256, 512])
def test_shapes_for_crop_sizes(S):
    gen = perturbed()
    B = 2 if S < 512 else 1
    t, r, a, e = inputs(B, S)
    region = face_region(None, a, None)
    with torch.no_grad():
        crop, alpha = gen(t, r, a, e, region)
    assert crop.shape == (B, 3, S, S) and alpha.shape == (B, 1, S, S)
    assert float(alpha.min()) >= 0.0 and float(alpha.max()) <= 1.0
    assert torch.isfinite(crop).all()
    assert not torch.equal(crop, r)  # non-zero gains change the render


def test_default_size_is_small_enough_for_cpu_tuning():
    gen = SwapGenerator()
    assert gen.config.channels == (32, 64, 128, 256)
    assert 1_000_000 < gen.num_parameters() < 6_000_000


def test_rejects_sizes_not_multiple_of_16():
    gen = SwapGenerator(SMALL)
    t, r, a, e = inputs(1, 120)
    with pytest.raises(ValueError, match="multiples of 16"):
        gen(t, r, a, e)


def test_zero_gain_reproduces_the_render_exactly():
    gen = SwapGenerator(SMALL)
    with torch.no_grad():  # make the residual branch anything but zero: only γ = 0 must matter
        for name, p in gen.named_parameters():
            if name != "gain":
                p.add_(torch.randn_like(p))
    assert gen.is_identity
    t, r, a, e = inputs(3, 128)
    gen.train()
    crop, alpha = gen(t, r, a, e, face_region(None, a, None))
    assert torch.equal(crop, r) and torch.equal(alpha, a)
    # and the refiner adapter hands the swap core's result back untouched
    batch = SwapBatch(target_crops=t, target_landmarks=torch.zeros(3, 478, 3), s=torch.ones(3),
                      R=torch.eye(3).expand(3, 3, 3), t=torch.zeros(3, 3), expression=torch.zeros(3, 478, 3),
                      confidence=torch.ones(3), frame_to_crop=torch.eye(3)[:2].expand(3, 2, 3))
    result = SwapResult(crops=r, alpha=a, driven_landmarks=torch.zeros(3, 478, 3))
    ident = SourceIdentity(embedding=e[0])
    out = GeneratorRefiner(gen, "cpu", face_loop=list(range(10)))(0, batch, result, ident)
    assert torch.equal(out.crops, r) and torch.equal(out.alpha, a)


def test_gain_gradient_flows_at_zero():
    """γ starts at zero, yet the first step gets a gradient for γ (IDATT's zero-initialised residual)."""
    gen = SwapGenerator(SMALL)
    t, r, a, e = inputs(2, 128)
    crop, alpha = gen(t, r, a, e)
    ((crop - t) ** 2).mean().add(alpha.mean()).backward()
    assert gen.gain.grad is not None and float(gen.gain.grad.abs().sum()) > 0


def test_adain_output_has_the_style_statistics():
    torch.manual_seed(0)
    h = torch.randn(2, 5, 16, 16) * 3.0 + 7.0
    scale = torch.rand(2, 5) * 2 + 0.5
    bias = torch.randn(2, 5)
    y = AdaIN.apply_style(h, scale, bias)
    assert torch.allclose(y.mean(dim=(2, 3)), bias, atol=1e-5)
    assert torch.allclose(y.std(dim=(2, 3), unbiased=False), scale, atol=1e-4)
    # through the module: styles from a vector
    ada = AdaIN(5, 8)
    with torch.no_grad():
        ada.affine.weight.normal_()
        ada.affine.bias.normal_()
    w = torch.randn(2, 8)
    s, b = ada.style(w)
    y = ada(h, w)
    assert torch.allclose(y.mean(dim=(2, 3)), b, atol=1e-4)
    assert torch.allclose(y.std(dim=(2, 3), unbiased=False), s.abs(), atol=1e-3)


def test_affa_gating_extremes():
    torch.manual_seed(0)
    h = torch.randn(2, 6, 8, 8)
    z = torch.randn(2, 6, 8, 8)
    assert torch.equal(AFFA.fuse(h, z, torch.ones_like(h)), h)
    assert torch.equal(AFFA.fuse(h, z, torch.zeros_like(h)), z)
    affa = AFFA(6)
    with torch.no_grad():
        affa.mask.weight.zero_()
        affa.mask.bias.fill_(200.0)  # sigmoid saturates to exactly 1
    assert torch.equal(affa(h, z), h)
    with torch.no_grad():
        affa.mask.bias.fill_(-200.0)  # ... and to exactly 0
    assert torch.equal(affa(h, z), z)
    with torch.no_grad():
        affa.mask.bias.fill_(0.0)  # m = 0.5: the mean
    assert torch.allclose(affa(h, z), (h + z) / 2, atol=1e-6)


def test_lowpass_hides_the_face_interior_only():
    torch.manual_seed(0)
    t = torch.rand(1, 3, 128, 128)
    region = torch.zeros(1, 1, 128, 128)
    region[..., 32:96, 32:96] = 1.0
    out = lowpass_face(t, region, 16)
    assert torch.equal(out[..., :32, :], t[..., :32, :])  # outside: untouched
    inner = out[..., 40:88, 40:88]
    assert float(inner.std()) < 0.25 * float(t[..., 40:88, 40:88].std())  # inside: no detail left


def test_safetensors_round_trip(tmp_path):
    gen = perturbed()
    path = save_generator(gen, tmp_path / "g.safetensors", {"note": "test"})
    assert path.exists() and not list(tmp_path.glob(".*part"))
    meta = read_metadata(path)
    assert meta["note"] == "test" and GeneratorConfig.from_json(meta["config"]) == SMALL
    back = load_generator(path)
    t, r, a, e = inputs(2, 128)
    with torch.no_grad():
        assert all(torch.equal(x, y) for x, y in zip(gen(t, r, a, e), back(t, r, a, e)))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    from vidswap.errors import ModelError

    with pytest.raises(ModelError):
        load_generator(bad)


def test_refiner_batches_and_matches_the_generator():
    gen = perturbed().eval()
    B, S = 5, 128
    t, r, a, e = inputs(B, S)
    lm = torch.rand(B, 478, 3) * 100 + 14
    loop = list(range(0, 40))
    batch = SwapBatch(target_crops=t, target_landmarks=lm, s=torch.ones(B), R=torch.eye(3).expand(B, 3, 3),
                      t=torch.zeros(B, 3), expression=torch.zeros(B, 478, 3), confidence=torch.ones(B),
                      frame_to_crop=torch.eye(3)[:2].expand(B, 2, 3))
    result = SwapResult(crops=r, alpha=a, driven_landmarks=lm, confidence=a)
    ident = SourceIdentity(embedding=e[0])
    out = GeneratorRefiner(gen, "cpu", batch_size=2, face_loop=loop)(0, batch, result, ident)
    with torch.no_grad():
        crop, alpha = gen(t, r, a, e[0], face_region(lm, a, torch.tensor(loop), gen.config.region_grow))
    assert out.crops.shape == (B, 3, S, S) and out.alpha.shape == (B, 1, S, S)
    assert torch.allclose(out.crops, crop, atol=1e-5) and torch.allclose(out.alpha, alpha, atol=1e-5)
    assert out.driven_landmarks is lm and out.confidence is a
