"""The e4s swap core end to end: `vidswap run --swap-core e4s --checkpoint FILE --tune` on a real clip with a tiny
64 px E4S checkpoint written here (random regional encoder on a random StyleGAN2: the machinery, not the quality),
the per-clip PTI of its generator cached and reused by a farm chunk (bit-identical frames), the per-region
selection (composite.regions) and the bad-checkpoint exits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from media_helpers import assert_first_frames_timing_and_audio, read_frames
from safetensors.torch import load_file
from stylegan_core_checks import assert_exit_4_one_line, assert_face_replaced, bad_checkpoints, run_core

from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.e4s import E4S, E4SConfig
from vidswap.train.e4s.checkpoint import save_e4s_state

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = E4SConfig(input_size=64, stem=8, widths=(8, 16, 16), depths=(1, 1, 1), hidden=16, groups=4)
# an upright face in the 64 px FFHQ crop (dense landmarks are reduced to these five by the core)
KPS = torch.tensor([[24.0, 27.0], [40.0, 27.0], [32.0, 35.0], [26.0, 43.0], [38.0, 43.0]])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = E4S(TINY, StyleGAN2Generator(StyleGANConfig(**SMALL)))
    with torch.no_grad():  # larger code offsets than the initial ones, so the source's codes visibly matter
        model.encoder.w2.mul_(30)
    path = tmp_path_factory.mktemp("e4s") / "e4s.safetensors"
    return save_e4s_state(path, model, torch.optim.Adam(model.encoder.parameters()), 0)


def _run(clip, source, checkpoint, out, shot_text: str = "", command: tuple[str, ...] = ("run",)):
    return run_core("e4s", clip, source, checkpoint, out, shot_text, command=command)


def test_run_with_the_e4s_core_tunes_once_and_renders_a_real_clip(media, checkpoint, tmp_path):
    clip, source, out = media("single_face_clip"), media("astronaut"), tmp_path / "out.mkv"
    settings = "tune: {enabled: true, cpu_steps: 3, lr: 0.01, batch: 2, max_frames: 4, w_locality: 0.0}\n"
    result = _run(clip, source, checkpoint, out, settings)
    assert result.exit_code == 0, result.output
    assert "swapped 4 frames" in result.output
    assert_first_frames_timing_and_audio(clip, out, 4)
    assert_face_replaced(clip, out, 4)
    # the tune step fine-tuned the generator on the clip's frames rendered from their own regional codes
    tune_dir = tmp_path / "out.vidswap" / "tune"
    (tuned,) = tune_dir.glob("e4s_*.safetensors")
    record = json.loads(tuned.with_suffix(".json").read_text())
    assert record["steps"] == 3 and record["frames"] >= 3 and not record["cached"]
    assert record["psnr_tuned"] > record["psnr_inversion"], record
    start, after = load_file(str(checkpoint)), load_file(str(tuned))
    assert any(not torch.equal(after[k], start[f"S.{k}"]) for k in after if k.startswith("synthesis."))
    # a farm render chunk of the same job only loads the tuned weights, and its frames are the single pass's
    stamp = tuned.stat().st_mtime_ns
    result = _run(clip, source, checkpoint, out, settings, ("render", "--frames", "2-3"))
    assert result.exit_code == 0, result.output
    assert tuned.stat().st_mtime_ns == stamp and len(list(tune_dir.iterdir())) == 2
    (chunk,) = (tmp_path / "out.vidswap" / "chunks").glob("*/00000002-00000003.mkv")
    got = read_frames(out)
    assert all(np.array_equal(a, b) for a, b in zip(got[2:], read_frames(chunk, limit=2)))


def _batch(crops: torch.Tensor):
    landmarks = torch.zeros(len(crops), 478, 3)
    from vidswap.faces.types import LEFT_EYE_CONTOUR, MOUTH_CORNERS, NOSE_TIP, RIGHT_EYE_CONTOUR

    landmarks[:, list(RIGHT_EYE_CONTOUR), :2] = KPS[0]
    landmarks[:, list(LEFT_EYE_CONTOUR), :2] = KPS[1]
    landmarks[:, NOSE_TIP, :2] = KPS[2]
    landmarks[:, MOUTH_CORNERS[0], :2], landmarks[:, MOUTH_CORNERS[1], :2] = KPS[3], KPS[4]
    return type("B", (), {"target_crops": crops, "target_landmarks": landmarks})()


def test_e4s_core_swaps_the_selected_regions_codes(checkpoint):
    from vidswap.swap.stylegan.e4s_core import E4SCore, E4SCoreConfig, E4SIdentity

    core = E4SCore(E4SCoreConfig(checkpoint=str(checkpoint)))
    assert core.size == 64 and core.crop.size == 64
    torch.manual_seed(1)
    batch = _batch(torch.rand(2, 3, 64, 64))
    masks = core.crop_masks(batch.target_landmarks)
    assert torch.allclose(masks, core.model.masks(KPS[None].expand(2, -1, -1)))
    codes = [core.model.encode(torch.rand(1, 3, 64, 64), masks[:1])[0] for _ in range(2)]
    outs = [core.swap(batch, E4SIdentity(codes=c)).crops for c in codes]
    assert outs[0].shape == (2, 3, 64, 64) and float((outs[0] - outs[1]).abs().mean()) > 1e-3
    one = core.swap(_batch(batch.target_crops[1:]), E4SIdentity(codes=codes[0])).crops  # one crop per pass
    assert torch.equal(one[0], outs[0][1])
    # composite.regions [eyes]: only the source's eye codes are used; its other codes change nothing
    eyes = E4SCore(E4SCoreConfig(checkpoint=str(checkpoint)), regions=("eyes",))
    mixed = codes[0].clone()
    mixed[3] = codes[1][3]  # REGIONS[3] == "eyes"
    a = eyes.swap(batch, E4SIdentity(codes=codes[0])).crops
    assert torch.equal(eyes.swap(batch, E4SIdentity(codes=mixed)).crops,
                       eyes.swap(batch, E4SIdentity(codes=codes[1])).crops)
    assert not torch.equal(a, eyes.swap(batch, E4SIdentity(codes=codes[1])).crops)


def test_e4s_bad_checkpoints_exit_4_with_one_line(media, checkpoint, tmp_path):
    clip, source = media("single_face_clip"), media("astronaut")
    cases = bad_checkpoints(checkpoint, tmp_path, "e4s", "is not a vidswap E4S checkpoint",
                            ('"hidden": 16', '"hidden": 32'), other_format="vidswap.megafs.train")
    assert_exit_4_one_line("e4s", clip, source, cases, tmp_path)
