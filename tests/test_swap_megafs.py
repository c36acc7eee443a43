"""The megafs swap core end to end: `vidswap run --swap-core megafs --checkpoint FILE` on a real clip with a tiny
64 px MegaFS checkpoint written here (random encoder/FTM on a random StyleGAN2: the machinery, not the quality),
and the bad-checkpoint exits."""

from __future__ import annotations

import pytest
import torch
from media_helpers import assert_first_frames_timing_and_audio
from stylegan_core_checks import assert_exit_4_one_line, assert_face_replaced, bad_checkpoints, run_core

from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.megafs import MegaFS, MegaFSConfig
from vidswap.train.megafs.checkpoint import save_megafs_state

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = MegaFSConfig(input_size=64, stem=8, widths=(8, 16, 16, 16), depths=(1, 1, 1, 1), fpn=16, mid_codes=3,
                    cells=2, groups=4)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = MegaFS(TINY, StyleGAN2Generator(StyleGANConfig(**SMALL)))
    with torch.no_grad():  # a non-zero C offset, so the target's C visibly reaches the generator
        model.encoder.to_const.weight.normal_(0, 0.1)
    opt = torch.optim.Adam(model.encoder.parameters())
    path = tmp_path_factory.mktemp("megafs") / "megafs.safetensors"
    return save_megafs_state(path, model, opt, torch.optim.Adam(model.ftm.parameters()), 0, 0)


def _run(clip, source, checkpoint, out, shot_text: str = ""):
    return run_core("megafs", clip, source, checkpoint, out, shot_text)


def test_run_with_the_megafs_core_renders_a_real_clip(media, checkpoint, tmp_path):
    clip, source, out = media("single_face_clip"), media("astronaut"), tmp_path / "out.mkv"
    result = _run(clip, source, checkpoint, out)
    assert result.exit_code == 0, result.output
    assert "swapped 4 frames" in result.output
    assert_first_frames_timing_and_audio(clip, out, 4)
    assert_face_replaced(clip, out, 4)


def test_megafs_core_swaps_the_sources_codes(checkpoint):
    from vidswap.swap.stylegan.megafs_core import MegaFSCore, MegaFSCoreConfig, MegaFSIdentity

    core = MegaFSCore(MegaFSCoreConfig(checkpoint=str(checkpoint), batch_size=1))
    assert core.size == 64 and core.crop.size == 64
    torch.manual_seed(1)
    targets = torch.rand(2, 3, 64, 64)
    ids = [core.model.encode(torch.rand(1, 3, 64, 64)) for _ in range(2)]
    batch = type("B", (), {"target_crops": targets, "target_landmarks": torch.zeros(2, 478, 3)})()
    outs = [core.swap(batch, MegaFSIdentity(const=c.const[0], ws=c.ws[0])).crops for c in ids]
    assert outs[0].shape == (2, 3, 64, 64) and float((outs[0] - outs[1]).abs().mean()) > 1e-3
    with torch.no_grad():  # one crop alone gives that crop's swap (here every pass is one crop: batch_size 1)
        one = core.swap(type("B", (), {"target_crops": targets[1:], "target_landmarks": torch.zeros(1, 478, 3)})(),
                        MegaFSIdentity(const=ids[0].const[0], ws=ids[0].ws[0])).crops
    assert torch.equal(one[0], outs[0][1])
    core.config = MegaFSCoreConfig(checkpoint=str(checkpoint), batch_size=2)  # one pass of both: equal to rounding
    both = core.swap(batch, MegaFSIdentity(const=ids[0].const[0], ws=ids[0].ws[0])).crops
    assert torch.allclose(both, outs[0], atol=1e-5)


def test_megafs_bad_checkpoints_exit_4_with_one_line(media, checkpoint, tmp_path):
    clip, source = media("single_face_clip"), media("astronaut")
    cases = bad_checkpoints(checkpoint, tmp_path, "megafs", "not a MegaFS checkpoint", ('"fpn": 16', '"fpn": 32'))
    assert_exit_4_one_line("megafs", clip, source, cases, tmp_path)
