"""Per-clip tuning of a learned swapper (``tune.enabled`` with ``swap.core: inswapper``) on a real clip, with the
inswapper stand-in (it adds ``gain * source[:3]``; the file's gain is 2.0): the converted graph is fine-tuned by
self-reenactment (the actor swapped onto himself must reproduce his crop, which asks for a smaller gain), the
weights are cached in the job folder and reused, and the render runs the tuned torch module.
"""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from safetensors.torch import load_file

import onnx_standins as standin
from test_swap_inswapper import cache, weights  # noqa: F401 - the stand-in model cache fixtures
from vidswap.cli import main
from vidswap.io import probe, read_frames


def decoded(path) -> list[np.ndarray]:
    with read_frames(probe(path)) as frames:
        return [f.image for f in frames]


def test_tuning_a_learned_swapper_on_the_clip_lowers_its_loss_and_is_cached(cache, media, tmp_path):  # noqa: F811
    cache("N")
    clip, source = media("single_face_clip"), media("astronaut")
    out = tmp_path / "tuned.mkv"
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {clip}\nsources: [{source}]\nframes: 0-5\noutput: {{path: {out}}}\n"
                    "swap: {core: inswapper, inswapper: {provider: cpu}}\n"
                    "models: {accept_noncommercial: [inswapper_128, arcface_w600k_r50]}\n"
                    "tune: {enabled: true, cpu_steps: 12, lr: 0.05, batch: 2, max_frames: 6, w_locality: 0.0}\n"
                    + standin.PLAIN_PASTE)
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 0, result.output
    assert "swap core ran on torch cpu (inswapper_128, converted from ONNX)" in result.output
    (tuned,) = (out.parent / "tuned.vidswap" / "tune").glob("learned_inswapper_*.safetensors")
    record = json.loads(tuned.with_suffix(".json").read_text())
    assert record["steps"] == 12 and record["frames"] >= 4 and not record["cached"]
    l1 = record["terms"]["l1"]
    # measured: self-reenactment L1 0.0565 -> 0.0396 in 12 CPU steps, the gain 2.0 -> 1.41 (2.1 s of tuning)
    assert np.mean(l1[-3:]) < 0.8 * np.mean(l1[:3]), l1  # self-reenactment: the actor onto himself
    gain = float(load_file(str(tuned))["t_gain"])
    assert gain < 2.0 - 0.2, gain  # the file's 2.0 moved toward reproducing the clip
    first = decoded(out)
    stamp = tuned.stat().st_mtime_ns

    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])  # same inputs: the cache is reused
    assert result.exit_code == 0, result.output
    assert tuned.stat().st_mtime_ns == stamp
    assert all(np.array_equal(a, b) for a, b in zip(first, decoded(out)))
