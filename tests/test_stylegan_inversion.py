"""Encoder-free inversion (W+ optimisation) and pivotal tuning on a small StyleGAN2 generator, on a real face.

The generator is 64 px, built here with a fixed seed and not trained (random weights): the face crop (the registry's
``single_face_image`` portrait, in the FFHQ crop from our own landmarks) was never seen by it. Measured on the 2-core
test machine: 20 inversion + 30 PTI steps (what the test runs) 13.3 -> 17.9 dB; 30 + 40 steps 13.7 -> 18.8 dB.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidswap.faces.align import warp_to_crop
from vidswap.io import read_image
from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.align import FFHQCrop
from vidswap.swap.stylegan.core import E4SPTIConfig, default_id_layers, mix_codes
from vidswap.swap.stylegan.inversion import (InversionParams, PTIParams, from_unit, invert, mean_w,
                                             pivotal_tuning, psnr, reconstruction_loss, synthesize, to_unit)

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)

#: PSNR floors (dB) of the held-out face after inversion + PTI, and of PTI's gain over inversion alone
PTI_FLOOR_DB = 17.0
PTI_GAIN_DB = 3.0


def small_generator(seed: int = 0) -> StyleGAN2Generator:
    torch.manual_seed(seed)
    return StyleGAN2Generator(StyleGANConfig(**SMALL)).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def faces(media) -> torch.Tensor:
    """(3, 3, 64, 64): FFHQ crops of three real portraits (single_face_image first), from our analysis."""
    from vidswap.faces.analyze import AnalysisConfig, AnalysisModels, analyze_image

    models = AnalysisModels.load(AnalysisConfig(), threads=1)
    crop, out = FFHQCrop(size=64), []
    for name in ("single_face_image", "astronaut", "grace_hopper"):
        image = np.ascontiguousarray(read_image(media(name)))
        (face, *_) = analyze_image(image, models)
        m = crop.frame_to_crop(torch.from_numpy(np.asarray(face.landmarks.points)).float()[None])
        out.append(warp_to_crop(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255, m, 64)[0].clamp(0, 1))
    return torch.stack(out)


def test_inversion_then_pti_reconstructs_a_held_out_real_face(faces):
    gen = small_generator()
    face = faces[:1]
    start = psnr(from_unit(synthesize(gen, invert(gen, face, InversionParams(steps=0)))), face).item()
    pivots = invert(gen, face, InversionParams(steps=20, lr=0.05))
    inverted = psnr(from_unit(synthesize(gen, pivots)), face).item()
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    result = pivotal_tuning(gen, pivots, face, PTIParams(steps=30, lr=1e-2, batch=1))
    tuned = psnr(from_unit(synthesize(result.generator, pivots)), face).item()
    print(f"held-out face PSNR: mean W {start:.2f} dB, inversion {inverted:.2f} dB, + PTI {tuned:.2f} dB")
    assert inverted > start + 1.0, (start, inverted)
    assert tuned > PTI_FLOOR_DB and tuned > inverted + PTI_GAIN_DB, (inverted, tuned)
    assert result.losses[-1] < 0.5 * result.losses[0]
    # PTI tunes a copy: the generator it started from is unchanged, and so are its requires_grad flags
    assert all(torch.equal(v, before[k]) for k, v in gen.state_dict().items())
    assert not any(p.requires_grad for p in gen.parameters())


def test_inversion_is_batch_independent(faces):
    gen = small_generator(1)
    params = InversionParams(steps=4, lr=0.05)
    batched = invert(gen, faces, params)
    single = torch.cat([invert(gen, faces[i:i + 1], params) for i in range(len(faces))])
    assert torch.equal(batched, single)
    assert batched.shape == (3, gen.num_ws, 32)
    assert not torch.equal(batched[0], batched[1])  # different faces, different codes


def test_inversion_starts_at_the_mean_w_and_checks_its_input():
    gen = small_generator()
    w = mean_w(gen)
    z = torch.randn(4096, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(w, gen.mapping(z).mean(0))
    ws = invert(gen, torch.zeros(2, 3, 64, 64), InversionParams(steps=0))
    assert torch.equal(ws, w[None, None].expand(2, gen.num_ws, -1))
    gen.mapping.w_avg.fill_(0.25)  # a tracked mean (NVIDIA checkpoints) is used as it is
    assert torch.equal(mean_w(gen), torch.full((32,), 0.25))
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        invert(gen, torch.zeros(1, 3, 32, 32))


def test_reconstruction_loss_terms_exact():
    real = torch.zeros(2, 3, 8, 8)
    fake = torch.zeros(2, 3, 8, 8)
    fake[1] = 0.5  # second sample off by 0.5 everywhere: l2 0.25, l1 0.5, pyramid L1 0.5 at 4 px (8 px: 1 level)
    terms = reconstruction_loss(fake, real, InversionParams())
    torch.testing.assert_close(terms["l2"], torch.tensor([0.0, 0.25]))
    torch.testing.assert_close(terms["l1"], torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(terms["multiscale"], torch.tensor([0.0, 0.5]))
    assert torch.equal(from_unit(to_unit(torch.tensor([0.0, 0.25, 1.0]))), torch.tensor([0.0, 0.25, 1.0]))
    torch.testing.assert_close(psnr(torch.full((1, 3, 2, 2), 0.1), torch.zeros(1, 3, 2, 2)), torch.tensor([20.0]))


def test_mix_codes_takes_the_source_at_the_identity_layers_only():
    target = torch.zeros(2, 10, 4)
    source = torch.ones(10, 4)
    mixed = mix_codes(target, source, (3, 7), weight=1.0)
    assert torch.equal(mixed[:, 3:7], torch.ones(2, 4, 4)) and mixed[:, :3].abs().sum() == 0 == mixed[:, 7:].sum()
    half = mix_codes(target, source, (3, 7), weight=0.25)
    assert torch.equal(half[:, 3:7], torch.full((2, 4, 4), 0.25))
    assert torch.equal(mix_codes(target, source, (3, 7), weight=0.0), target)
    assert default_id_layers(18) == (3, 9) and default_id_layers(10) == (3, 7)


def test_e4s_pti_config_rejects_bad_settings():
    from vidswap.errors import ConfigError

    for bad in ({"mix_weight": 1.5}, {"steps": -1}, {"lr": 0.0}, {"feather": 0.5}, {"mix_shape_source": -1}):
        with pytest.raises(ConfigError) as exc:
            E4SPTIConfig(**bad)
        assert exc.value.exit_code == 2


def test_e4s_pti_swap_of_a_batch_equals_the_swap_of_its_parts(faces, tmp_path):
    """A farm chunk boundary may split a render batch anywhere: the core's output per crop must not change."""
    from vidswap.swap.base import SwapBatch
    from vidswap.swap.stylegan.core import E4SPTICore, E4SPTIIdentity
    from vidswap.swap.stylegan.importer import save_generator

    path = save_generator(small_generator(2), tmp_path / "g.safetensors")
    core = E4SPTICore(E4SPTIConfig(checkpoint=str(path), steps=3))
    assert core.crop.size == 64 and core.id_layers == (3, 7)
    n = len(faces)
    batch = SwapBatch(target_crops=faces, target_landmarks=torch.zeros(n, 478, 3), s=torch.ones(n),
                      R=torch.eye(3).expand(n, 3, 3), t=torch.zeros(n, 3), expression=torch.zeros(n, 478, 3),
                      confidence=torch.ones(n), frame_to_crop=torch.zeros(n, 2, 3))
    codes = torch.randn(1, core.base.num_ws, 32, generator=torch.Generator().manual_seed(3))
    identity = E4SPTIIdentity(codes=codes, ws=codes[0])
    whole = core.swap(batch, identity)
    parts = [core.swap(batch.select(rows), identity) for rows in ([0], [1, 2])]
    assert torch.equal(whole.crops, torch.cat([p.crops for p in parts]))
    assert whole.crops.shape == (3, 3, 64, 64) and whole.alpha.shape == (3, 1, 64, 64)
    assert not torch.equal(whole.crops[0], whole.crops[1])


def _portrait(face: torch.Tensor) -> "SourceFace":
    """A source photo that is exactly a 64 px FFHQ crop: landmarks whose five keypoints make the FFHQ quad the
    image square (eye distance 16, eyes to mouth 16: |x| = max(32, 28.8) = 32 about c = (32, 32))."""
    from vidswap.faces.types import LEFT_EYE_CONTOUR, MOUTH_CORNERS, NOSE_TIP, RIGHT_EYE_CONTOUR
    from vidswap.swap.base import SourceFace

    lm = torch.zeros(478, 3)
    lm[list(RIGHT_EYE_CONTOUR), :2] = torch.tensor([24.0, 30.4])
    lm[list(LEFT_EYE_CONTOUR), :2] = torch.tensor([40.0, 30.4])
    lm[NOSE_TIP, :2] = torch.tensor([32.0, 38.0])
    lm[MOUTH_CORNERS[0], :2] = torch.tensor([26.0, 46.4])
    lm[MOUTH_CORNERS[1], :2] = torch.tensor([38.0, 46.4])
    return SourceFace(image=face, landmarks=lm, x_c_obs=torch.zeros(478, 3), embedding=torch.tensor([3.0, 4.0]))


def test_e4s_pti_prepare_mixes_identity_layers_across_source_photos(faces, tmp_path):
    from vidswap.errors import ConfigError
    from vidswap.swap.stylegan.core import E4SPTICore
    from vidswap.swap.stylegan.importer import save_generator

    path = save_generator(small_generator(4), tmp_path / "g.safetensors")
    sources = [_portrait(faces[1]), _portrait(faces[2])]
    core = E4SPTICore(E4SPTIConfig(checkpoint=str(path), source_steps=2))
    torch.testing.assert_close(core.align_source(sources[0]), faces[1], atol=1e-4, rtol=0)  # the crop is the photo
    plain = core.prepare(sources)
    assert plain.codes.shape == (2, 10, 32) and not torch.equal(plain.codes[0], plain.codes[1])
    torch.testing.assert_close(plain.ws, plain.codes.mean(0))
    torch.testing.assert_close(plain.embedding, torch.tensor([0.6, 0.8]))
    mixed = E4SPTICore(E4SPTIConfig(checkpoint=str(path), source_steps=2, mix_shape_source=1,
                                    mix_texture_source=0)).prepare(sources)
    assert torch.equal(mixed.codes, plain.codes)  # each photo inverted alike
    assert torch.equal(mixed.ws[3:5], plain.codes[1, 3:5]) and torch.equal(mixed.ws[5:7], plain.codes[0, 5:7])
    assert torch.equal(mixed.ws[:3], plain.ws[:3]) and torch.equal(mixed.ws[7:], plain.ws[7:])
    with pytest.raises(ConfigError, match="mix_shape_source is 2 but there are 2 source photo"):
        E4SPTICore(E4SPTIConfig(checkpoint=str(path), mix_shape_source=2)).prepare(sources)
