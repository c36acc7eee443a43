"""The FaceDancer swap core: `vidswap run --swap-core facedancer --checkpoint ...` end to end on a real clip with a
checkpoint trained here by `vidswap train` (tiny, a few steps: the machinery, not the quality)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from vidswap.cli import main
from vidswap.swap.facedancer import border_alpha

ROOT = Path(__file__).resolve().parents[1]


def test_border_alpha_exact():
    a = border_alpha(8, 0.25)  # ramp of 2 px: pixel centres 0.5/2, 1.5/2, then 1
    row = torch.tensor([0.25, 0.75, 1, 1, 1, 1, 0.75, 0.25])
    assert a.shape == (1, 1, 8, 8)
    assert torch.allclose(a[0, 0, 3], row) and torch.allclose(a[0, 0, :, 0], row * 0.25)
    assert torch.equal(border_alpha(4, 0.0), torch.ones(1, 1, 4, 4))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import face_set as fs

    root = tmp_path_factory.mktemp("fdcore")
    fs.build_face_set(root / "set", clips={}, stills={"astronaut": "astronaut", "grace_hopper": "grace_hopper"})
    cfg = {"data": {"root": str(root / "set"), "holdout": 0.0},
           "model": {"size": 64, "channels": [8, 16, 16, 16], "skips": ["concat", "affa", "affa", "none"],
                     "style_dim": 32, "bottleneck_blocks": 1, "disc_channels": [8, 32]},
           "run": {"out": str(root / "run"), "steps": 1, "batch_size": 2, "eval_pairs": 0, "threads": 1}}
    (root / "train.yaml").write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--config", str(root / "train.yaml"), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["train", "export", str(root / "run/checkpoints/last.safetensors"), "-o",
                               str(root / "fd"), "--no-onnx"])
    assert res.exit_code == 0, res.output
    return root / "fd.safetensors"


def _frames(path: Path) -> list[np.ndarray]:
    from media_helpers import read_frames

    return [f.astype(np.float32) for f in read_frames(path)]


def test_run_with_the_facedancer_core_end_to_end(media, checkpoint, tmp_path):
    clip, source, out = media("single_face_clip"), media("astronaut"), tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, "-m", "vidswap.cli", "run", str(clip), "--source", str(source),
                           "--swap-core", "facedancer", "--checkpoint", str(checkpoint), "--frames", "0-5",
                           "--codec", "ffv1", "-o", str(tmp_path / "out.mkv"), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got, plate = _frames(tmp_path / "out.mkv"), _frames(clip)[:6]
    assert len(got) == 6
    diff = np.stack([np.abs(g - p).mean(-1) for g, p in zip(got, plate)])  # (6, H, W)
    h, w = diff.shape[1:]
    changed = diff > 8
    # the face (centre of this frontal clip) is replaced; the frame border is the plate's
    assert changed[:, h // 4: 3 * h // 4, w // 3: 2 * w // 3].mean() > 0.2
    assert diff[:, :, : w // 8].max() < 2 and diff[:, :, -w // 8:].max() < 2


def test_facedancer_core_bad_checkpoints(tmp_path):
    from vidswap.errors import ConfigError, ModelError
    from vidswap.swap import build_core

    with pytest.raises(ConfigError, match="needs a checkpoint") as exc:
        build_core("facedancer", {})
    assert exc.value.exit_code == 2
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    for path, needle in ((bad, "unreadable"), (tmp_path / "missing.safetensors", "does not exist")):
        with pytest.raises(ModelError, match=needle) as exc:
            build_core("facedancer", {"checkpoint": str(path)})
        assert exc.value.exit_code == 4


def test_tune_fine_tunes_the_trained_generator_on_the_clip_and_caches_it(media, checkpoint, tmp_path):
    """``tune.enabled`` with the facedancer core tunes the generator itself (not a refiner on its output): the
    self-reenactment loss falls, the weights move away from the checkpoint's, and a second run reuses them."""
    import json

    from safetensors.torch import load_file

    from vidswap.cli import main as cli_main

    clip, source = media("single_face_clip"), media("astronaut")
    out = tmp_path / "tuned.mkv"
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {clip}\nsources: [{source}]\nframes: 0-5\noutput: {{path: {out}, codec: ffv1}}\n"
                    f"swap: {{core: facedancer, facedancer: {{checkpoint: {checkpoint}}}}}\n"
                    "tune: {enabled: true, cpu_steps: 15, lr: 0.003, batch: 2, max_frames: 6, w_locality: 0.0}\n")
    result = CliRunner().invoke(cli_main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 0, result.output
    tune_dir = out.parent / "tuned.vidswap" / "tune"
    (tuned,) = tune_dir.glob("facedancer_*.safetensors")
    assert not list(tune_dir.glob("refiner*")), "the facedancer core must not fall back to the output refiner"
    record = json.loads(tuned.with_suffix(".json").read_text())
    assert record["steps"] == 15 and record["frames"] >= 4 and not record["cached"]
    l1 = record["terms"]["l1"]
    # measured: 0.66 of the start with the landmarks smoothed on their own, 0.815 since they follow the plate's
    # image motion (the crops of these 6 frames changed); the property is a clear fall over 15 steps
    assert np.mean(l1[-3:]) < 0.85 * np.mean(l1[:3]), l1
    start, after = load_file(str(checkpoint)), load_file(str(tuned))
    moved = [k for k in after if k in start and not torch.equal(after[k], start[k])]
    assert moved, "tuning left every generator weight as the checkpoint's"
    first = _frames(out)
    stamp = tuned.stat().st_mtime_ns
    result = CliRunner().invoke(cli_main, ["run", "--config", str(shot), "-q"])  # same inputs: cache reused
    assert result.exit_code == 0, result.output
    assert tuned.stat().st_mtime_ns == stamp
    assert all(np.array_equal(a, b) for a, b in zip(first, _frames(out)))
