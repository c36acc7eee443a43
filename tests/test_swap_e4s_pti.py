"""The e4s-pti swap core end to end: `vidswap run --swap-core e4s-pti --checkpoint G.safetensors` on a real clip with
a tiny StyleGAN2 checkpoint written here (64 px, random weights: the machinery, not the quality), PTI in the tune
pass cached and reused, and the bad-checkpoint exits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from media_helpers import assert_first_frames_timing_and_audio, read_frames
from safetensors.torch import load_file
from stylegan_core_checks import assert_exit_4_one_line, assert_face_replaced, bad_checkpoints, run_core

from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.importer import save_generator

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("e4s") / "G.safetensors"
    return save_generator(StyleGAN2Generator(StyleGANConfig(**SMALL)), path)


def _run(clip, source, checkpoint, out, shot_text: str, command: tuple[str, ...] = ("run",)):
    return run_core("e4s-pti", clip, source, checkpoint, out, shot_text, command=command)


def test_run_with_the_e4s_pti_core_tunes_once_and_renders_a_real_clip(media, checkpoint, tmp_path):
    clip, source, out = media("single_face_clip"), media("astronaut"), tmp_path / "out.mkv"
    settings = ("swap: {e4s-pti: {steps: 2, source_steps: 4}}\n"
                "tune: {enabled: true, cpu_steps: 4, lr: 0.01, batch: 2, max_frames: 4, w_locality: 0.0}\n")
    result = _run(clip, source, checkpoint, out, settings)
    assert result.exit_code == 0, result.output
    assert "swapped 4 frames" in result.output
    assert_first_frames_timing_and_audio(clip, out, 4)
    assert_face_replaced(clip, out, 4)
    # PTI ran in the tune step: the generator's weights moved and fit the clip's pivots better than the checkpoint
    tune_dir = tmp_path / "out.vidswap" / "tune"
    (tuned,) = tune_dir.glob("e4s_pti_*.safetensors")
    record = json.loads(tuned.with_suffix(".json").read_text())
    assert record["steps"] == 4 and record["frames"] >= 3 and not record["cached"]
    assert record["psnr_tuned"] > record["psnr_inversion"], record
    start, after = load_file(str(checkpoint)), load_file(str(tuned))
    assert any(not torch.equal(after[k], start[k]) for k in start if k.startswith("synthesis."))
    # a farm render chunk of the same job only loads the tuned weights, and its frames are the single pass's
    stamp = tuned.stat().st_mtime_ns
    result = _run(clip, source, checkpoint, out, settings, ("render", "--frames", "2-3"))
    assert result.exit_code == 0, result.output
    assert tuned.stat().st_mtime_ns == stamp and len(list(tune_dir.iterdir())) == 2
    (chunk,) = (tmp_path / "out.vidswap" / "chunks").glob("*/00000002-00000003.mkv")
    got = read_frames(out)
    assert all(np.array_equal(a, b) for a, b in zip(got[2:], read_frames(chunk, limit=2)))
    assert len(read_frames(chunk)) == 2


def test_e4s_pti_bad_checkpoints_exit_4_with_one_line(media, checkpoint, tmp_path):
    clip, source = media("single_face_clip"), media("astronaut")
    cases = bad_checkpoints(checkpoint, tmp_path, "e4s-pti", "not a vidswap StyleGAN2 checkpoint", None,
                            unreadable="not a readable safetensors file")
    assert_exit_4_one_line("e4s-pti", clip, source, cases, tmp_path)
    result = _run(clip, source, checkpoint, tmp_path / "bad.mkv", "swap: {e4s-pti: {id_start: 5, id_stop: 50}}\n")
    assert result.exit_code == 2 and "0 <= start < stop <= 10" in result.output, result.output
