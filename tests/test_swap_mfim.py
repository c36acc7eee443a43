"""The mfim swap core end to end: `vidswap run --swap-core mfim --checkpoint FILE` on a real clip with a tiny 64 px
MFIM checkpoint written here (random encoder on a random StyleGAN2: the machinery, not the quality), the core's code
routing and ID mixing across source photos, and the bad-checkpoint exits."""

from __future__ import annotations

import pytest
import torch
from media_helpers import assert_first_frames_timing_and_audio
from stylegan_core_checks import assert_exit_4_one_line, assert_face_replaced, bad_checkpoints, run_core

from vidswap.errors import ConfigError
from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.mfim import MFIM, MFIMConfig
from vidswap.train.facedancer.model import Discriminator, FaceDancerConfig
from vidswap.train.mfim.checkpoint import save_mfim_state

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = MFIMConfig(input_size=64, stem=8, widths=(8, 16, 16, 16), depths=(1, 1, 1, 1), fpn=16, groups=4, map_max=32,
                  id_from=32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = MFIM(TINY, StyleGAN2Generator(StyleGANConfig(**SMALL)))
    disc = Discriminator(FaceDancerConfig(size=64, disc_channels=(8, 16)))
    path = tmp_path_factory.mktemp("mfim") / "mfim.safetensors"
    return save_mfim_state(path, model, disc, torch.optim.Adam(model.encoder.parameters()),
                           torch.optim.Adam(disc.parameters()), 0)


def _run(clip, source, checkpoint, out, shot_text: str = ""):
    return run_core("mfim", clip, source, checkpoint, out, shot_text)


def test_run_with_the_mfim_core_renders_a_real_clip(media, checkpoint, tmp_path):
    clip, source, out = media("single_face_clip"), media("astronaut"), tmp_path / "out.mkv"
    result = _run(clip, source, checkpoint, out)
    assert result.exit_code == 0, result.output
    assert "swapped 4 frames" in result.output
    assert_first_frames_timing_and_audio(clip, out, 4)
    assert_face_replaced(clip, out, 4)


def _core(checkpoint, **settings):
    from vidswap.swap.stylegan.mfim_core import MFIMCore, MFIMCoreConfig

    core = MFIMCore(MFIMCoreConfig(checkpoint=str(checkpoint), **settings))
    photos = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    core.align_source = lambda source: photos[int(source.embedding[0])]  # the photo's crop, by its index
    sources = [type("S", (), {"embedding": torch.tensor([float(i), 1.0])})() for i in range(3)]
    return core, photos, sources


def test_mfim_core_mixes_the_right_photo_into_the_right_layers(checkpoint):
    core, photos, sources = _core(checkpoint, mix_shape_source=2, mix_texture_source=0)
    assert core.size == 64 and core.id_range == (32, 64) and core.local_from == 64
    ident = core.prepare(sources)
    with torch.no_grad():
        each = [core.model.encode(photos[i:i + 1]).styles for i in range(3)]
    res = core.model.layer_res
    for name, code in ident.styles.items():  # 32 px: photo 2 (global: shape), 64 px: photo 0 (local); exactly
        if res[name] >= 32:
            assert torch.allclose(code, each[2 if res[name] < 64 else 0][name][0], atol=1e-6), name
    assert all(torch.equal(ident.styles[n], ident.codes[n][2 if res[n] < 64 else 0]) for n in res)
    torch.manual_seed(1)
    targets = torch.rand(2, 3, 64, 64)
    batch = type("B", (), {"target_crops": targets, "target_landmarks": torch.zeros(2, 478, 3)})()
    out = core.swap(batch, ident).crops
    with torch.no_grad():  # the core's render: target codes below 32 px, the mixed identity codes above
        t = core.model.encode(targets[1:])
        want = core.model.decode(core.model.transfer(ident.styles, t))
    assert torch.equal(out[1], ((want[0] + 1) * 0.5).clamp(0, 1))
    plain, _, _ = _core(checkpoint)
    assert not torch.allclose(plain.swap(batch, plain.prepare(sources)).crops, out)
    # mix_weight 0: the target's own codes everywhere (the encoder's reconstruction)
    zero, _, _ = _core(checkpoint, mix_weight=0.0)
    with torch.no_grad():
        recon = torch.cat([((core.model.decode(core.model.encode(targets[i:i + 1])) + 1) * 0.5).clamp(0, 1)
                           for i in range(2)])  # one crop per pass, as the core
    assert torch.equal(zero.swap(batch, zero.prepare(sources)).crops, recon)
    with pytest.raises(ConfigError, match="mix_texture_source is 3 but there are 3"):
        _core(checkpoint, mix_texture_source=3)[0].prepare(sources)
    with pytest.raises(ConfigError, match="id_from <= id_to"):
        _core(checkpoint, id_from=64, id_to=32)
    with pytest.raises(ConfigError, match="block side"):
        _core(checkpoint, local_from=48)


def test_mfim_core_one_crop_per_pass_is_batch_independent(checkpoint):
    from vidswap.swap.stylegan.mfim_core import MFIMCoreConfig

    core, _, sources = _core(checkpoint)
    ident = core.prepare(sources[:1])
    torch.manual_seed(3)
    targets = torch.rand(2, 3, 64, 64)

    def batch(x):
        return type("B", (), {"target_crops": x, "target_landmarks": torch.zeros(len(x), 478, 3)})()

    outs = core.swap(batch(targets), ident).crops
    assert torch.equal(core.swap(batch(targets[1:]), ident).crops[0], outs[1])  # batch_size 1: per crop
    core.config = MFIMCoreConfig(checkpoint=str(checkpoint), batch_size=2)  # one pass of both: equal to rounding
    assert torch.allclose(core.swap(batch(targets), ident).crops, outs, atol=1e-5)


def test_mfim_bad_checkpoints_exit_4_with_one_line(media, checkpoint, tmp_path):
    clip, source = media("single_face_clip"), media("astronaut")
    cases = bad_checkpoints(checkpoint, tmp_path, "mfim", "is not a MFIM checkpoint", ('"fpn": 16', '"fpn": 32'))
    assert_exit_4_one_line("mfim", clip, source, cases, tmp_path)
