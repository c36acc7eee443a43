"""Per-region style codes (E4S's mask-guided synthesis) on the plain StyleGAN2 generator, and the e4s-pti core's use
of them for composite.regions; a small random-weight generator (the algebra, not the quality)."""

from __future__ import annotations

import pytest
import torch

from test_composite_masks import synthetic_face

from vidswap.swap.base import SwapBatch
from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.core import E4SPTIConfig, E4SPTICore, E4SPTIIdentity, mix_codes
from vidswap.swap.stylegan.importer import save_generator
from vidswap.swap.stylegan.inversion import from_unit, synthesize
from vidswap.swap.stylegan.regional import masks_at, regional_synthesize

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    g = StyleGAN2Generator(StyleGANConfig(**SMALL)).eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in g.named_parameters():  # the noise inputs on, so the shared noise path is exercised
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    return g


def two_codes(gen, layers=(3, 7)):
    """(2, L, D): two mapped codes that differ only at ``layers`` (as a swap's mixed code and its pivot)."""
    with torch.no_grad():
        a, b = gen.map(torch.randn(2, SMALL["z_dim"], generator=torch.Generator().manual_seed(1)))
    return torch.stack([a, mix_codes(a[None], b, layers)[0]])


def test_masks_at_sum_to_one():
    m = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for size in (4, 16, 64, 128):
        out = masks_at(m, size)
        assert out.shape == (2, 3, size, size)
        assert torch.allclose(out.sum(1), torch.ones(2, size, size), atol=1e-6)


def test_one_class_everywhere_is_the_plain_synthesis(gen):
    codes = two_codes(gen)
    with torch.no_grad():
        plain = [synthesize(gen, c[None]) for c in codes]
        same = regional_synthesize(gen, torch.stack([codes[0], codes[0]])[None], torch.rand(1, 2, 64, 64))
        assert torch.equal(same, plain[0])  # equal codes: every layer runs once, as plain synthesis
        for k in (0, 1):
            masks = torch.zeros(1, 2, 64, 64)
            masks[:, k] = 1.0
            assert torch.equal(regional_synthesize(gen, codes[None], masks), plain[k])


def test_each_region_renders_its_own_code(gen):
    codes = two_codes(gen)
    masks = torch.zeros(1, 2, 64, 64)
    masks[:, 0, :, :32], masks[:, 1, :, 32:] = 1.0, 1.0  # left: code 0, right: code 1
    with torch.no_grad():
        out = regional_synthesize(gen, codes[None], masks)
        a, b = (synthesize(gen, c[None]) for c in codes)
    left, right = (slice(None), slice(None), slice(None), slice(0, 16)), (slice(None),) * 3 + (slice(48, 64),)
    err = lambda x, y, s: (x[s] - y[s]).abs().mean().item()  # noqa: E731
    assert err(a, b, left) > 0.02  # the codes render differently
    assert err(out, a, left) < 0.2 * err(out, b, left)
    assert err(out, b, right) < 0.2 * err(out, a, right)
    with pytest.raises(ValueError, match="masks must be"):
        regional_synthesize(gen, codes[None], masks[:, :1])
    with pytest.raises(ValueError, match="noise_mode"):
        regional_synthesize(gen, codes[None], masks, noise_mode="random")


def test_e4s_pti_core_swaps_only_the_selected_regions_in_its_codes(gen, tmp_path):
    ckpt = save_generator(gen, tmp_path / "G.safetensors")
    lm, loops = synthetic_face()
    lm = lm * torch.tensor([0.5, 0.5, 1.0])  # the cartoon face in the 64 px crop
    cfg = E4SPTIConfig(checkpoint=str(ckpt), steps=3, source_steps=3)
    whole = E4SPTICore(cfg)
    part = E4SPTICore(cfg, regions=("eyes", "brows", "nose", "skin"), loops=loops)  # keep the mouth
    assert whole.regions is None and part.regions == ("eyes", "brows", "nose", "skin")
    with pytest.raises(ValueError, match="region loops"):
        E4SPTICore(cfg, regions=("eyes",))
    codes = two_codes(gen)
    identity = E4SPTIIdentity(codes=codes[1:], ws=codes[1], embedding=None)
    with torch.no_grad():
        target = from_unit(synthesize(gen, codes[0][None]))
    batch = SwapBatch(target_crops=target, target_landmarks=lm, s=torch.ones(1), R=torch.eye(3)[None],
                      t=torch.zeros(1, 3), expression=torch.zeros(1, 478, 3), confidence=torch.ones(1),
                      frame_to_crop=torch.eye(2, 3)[None])
    full = whole.swap(batch, identity).crops
    regional = part.swap(batch, identity).crops
    pivot = whole.invert_targets(target)
    with torch.no_grad():
        kept = from_unit(synthesize(gen, pivot))
    corner = (slice(None),) * 2 + (slice(0, 8), slice(0, 8))  # outside the face: the target's own code
    cheek = (slice(None),) * 2 + (slice(30, 40), slice(24, 34))  # inside the selection: the swapped code
    err = lambda x, y, s: (x[s] - y[s]).abs().mean().item()  # noqa: E731
    assert err(full, kept, corner) > 0.01  # the swapped code changes the corner too ...
    assert err(regional, kept, corner) < 0.2 * err(full, kept, corner)  # ... the regional codes keep it
    assert err(regional, full, cheek) < 0.2 * err(kept, full, cheek)


def test_the_job_hands_composite_regions_to_the_core(gen, tmp_path):
    from vidswap.config import load_config
    from vidswap.pipeline import job_core
    from vidswap.swap.registry import CoreContext

    ckpt = save_generator(gen, tmp_path / "G.safetensors")
    over = {"swap": {"core": "e4s-pti", "e4s-pti": {"checkpoint": str(ckpt)}}, "composite": {"regions": ["mouth"]}}
    core = job_core(load_config(overrides=over), CoreContext())
    assert core.regions == ("mouth",) and set(core.loops) >= {"face_oval", "lips_outer", "left_eye"}
