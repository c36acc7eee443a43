"""The idatt swap core end to end: `vidswap run --swap-core idatt --checkpoint FILE` on a real clip with a tiny
64 px IDATT checkpoint written here (random parts on a random StyleGAN2: the machinery, not the quality), one crop
vs a batch, and the bad-checkpoint exits."""

from __future__ import annotations

import pytest
import torch
from media_helpers import assert_first_frames_timing_and_audio
from stylegan_core_checks import assert_exit_4_one_line, assert_face_replaced, bad_checkpoints, run_core

from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.idatt import IDATT, IDATTConfig
from vidswap.train.idatt.checkpoint import OPTIMISERS, save_idatt_state

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = IDATTConfig(input_size=64, stem=8, widths=(8, 16, 16), depths=(1, 1, 1), fpn=16, medium_codes=3,
                   blend_from=16, blend_width=8, groups=4)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = IDATT(TINY, StyleGAN2Generator(StyleGANConfig(**SMALL)))
    with torch.no_grad():  # attention switched on, so the source reaches the codes
        for att in model.attn.values():
            att.gamma.fill_(1.0)
    opts = {k: torch.optim.Adam(model.parameters()) for k in OPTIMISERS}
    path = tmp_path_factory.mktemp("idatt") / "idatt.safetensors"
    return save_idatt_state(path, model, opts, 3, 1, 1)  # step 3 > 1 + 1: the blending stage was reached


def _run(clip, source, checkpoint, out, shot_text: str = ""):
    return run_core("idatt", clip, source, checkpoint, out, shot_text, frames="0-1")


def test_run_with_the_idatt_core_renders_a_real_clip(media, checkpoint, tmp_path):
    clip, source, out = media("single_face_clip"), media("astronaut"), tmp_path / "out.mkv"
    result = _run(clip, source, checkpoint, out)
    assert result.exit_code == 0, result.output
    assert "swapped 2 frames" in result.output
    assert_first_frames_timing_and_audio(clip, out, 2)
    assert_face_replaced(clip, out, 2, changed=0.1)


def test_idatt_core_one_crop_equals_its_row_and_sources_matter(checkpoint):
    from vidswap.swap.stylegan.idatt_core import IDATTCore, IDATTCoreConfig, IDATTIdentity

    core = IDATTCore(IDATTCoreConfig(checkpoint=str(checkpoint)))
    assert core.size == 64 and core.two_stage
    torch.manual_seed(1)
    targets = torch.rand(2, 3, 64, 64)
    lm = torch.zeros(2, 478, 3)
    lm[..., 0], lm[..., 1] = 32 + 10 * torch.randn(478).abs(), 32 + 10 * torch.randn(478)
    ids = [IDATTIdentity(features=[f.detach() for f in core.model.encode_features(torch.rand(1, 3, 64, 64))])
           for _ in range(2)]
    batch = type("B", (), {"target_crops": targets, "target_landmarks": lm})()
    outs = [core.swap(batch, i).crops for i in ids]
    assert outs[0].shape == (2, 3, 64, 64) and float((outs[0] - outs[1]).abs().mean()) > 1e-4
    one = core.swap(type("B", (), {"target_crops": targets[1:], "target_landmarks": lm[1:]})(), ids[0]).crops
    assert torch.equal(one[0], outs[0][1])  # batch_size 1: a crop's result does not depend on its neighbours


def test_idatt_bad_checkpoints_exit_4_with_one_line(media, checkpoint, tmp_path):
    clip, source = media("single_face_clip"), media("astronaut")
    cases = bad_checkpoints(checkpoint, tmp_path, "idatt", "not a IDATT checkpoint", ('"fpn": 16', '"fpn": 32'))
    assert_exit_4_one_line("idatt", clip, source, cases, tmp_path)
