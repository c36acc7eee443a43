"""Per-clip tuning of a learned swapper (``tune.enabled`` with ``swap.core: inswapper``) on a real clip, with the
inswapper stand-in (it adds ``gain * source[:3]``; the file's gain is 2.0): the converted graph is fine-tuned by
self-reenactment (the actor swapped onto himself must reproduce his crop, which asks for a smaller gain), the
weights are cached in the job folder and reused, and the render runs the tuned torch module.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import onnx_standins as standin
from test_swap_inswapper import cache, weights  # noqa: F401 - the stand-in model cache fixtures
from vidswap.cli import main
from vidswap.io import probe, read_frames
from vidswap.train.learned import held_out


def decoded(path) -> list[np.ndarray]:
    with read_frames(probe(path)) as frames:
        return [f.image for f in frames]


def tuned_shot(tmp_path, media, tune: str):
    """A 6-frame real-clip shot with the inswapper stand-in and ``tune`` settings; returns (config, output)."""
    clip, source = media("single_face_clip"), media("astronaut")
    out = tmp_path / "tuned.mkv"
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {clip}\nsources: [{source}]\nframes: 0-5\noutput: {{path: {out}}}\n"
                    "swap: {core: inswapper, inswapper: {provider: cpu}}\n"
                    "models: {accept_noncommercial: [inswapper_128, arcface_w600k_r50]}\n"
                    "tune: {enabled: true, cpu_steps: 12, lr: 0.05, batch: 2, max_frames: 6, "
                    f"w_locality: 0.0{tune}}}\n"
                    + standin.PLAIN_PASTE)
    return shot, out


def test_held_out_frames_are_evenly_spread_consecutive_pairs():
    nxt = torch.tensor([1, 2, 3, 4, 5, -1, 7, 8, 9, -1])  # two runs: frames 0-5 and 6-9; 8 pairs
    # 2 of 8 pairs, at anchor positions round(linspace(0, 7, 4)[1:3]) = (2, 5): pairs (2, 3) and (6, 7)
    assert torch.nonzero(held_out(nxt, 0.25)).flatten().tolist() == [2, 3, 6, 7]
    # at least one pair: position round(3.5) = 4 (numpy rounds halves to even), the pair (4, 5)
    assert torch.nonzero(held_out(nxt, 0.05)).flatten().tolist() == [4, 5]
    assert not held_out(nxt, 0.0).any() and not held_out(torch.tensor([1, 2, -1]), 0.5).any()  # 2 pairs: none


def test_tuning_a_learned_swapper_on_the_clip_lowers_its_loss_and_is_cached(cache, media, tmp_path):  # noqa: F811
    cache("N")
    shot, out = tuned_shot(tmp_path, media, "")
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 0, result.output
    assert "swap core ran on torch cpu (inswapper_128, converted from ONNX)" in result.output
    (tuned,) = (out.parent / "tuned.vidswap" / "tune").glob("learned_inswapper_*.safetensors")
    record = json.loads(tuned.with_suffix(".json").read_text())
    assert record["steps"] == 12 and record["frames"] >= 4 and not record["cached"]
    # one of the 5 consecutive pairs held out; validated at steps 0, 5, 10, 12 and still improving at the end
    assert record["held_out"] == 2 and record["val_steps"] == [0, 5, 10, 12] and not record["stopped_early"]
    assert record["best_step"] == 12 and record["val_losses"][-1] < record["val_losses"][0]
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


def test_tuning_stops_when_the_held_out_loss_stops_improving_and_keeps_the_best(cache, media, tmp_path):  # noqa: F811
    """``min_delta: 1.0`` asks each validation to beat the best by 100%: none can, so after
    ``patience`` 2 validations (steps 2 and 4) the run stops and the best validated weights are the file's own
    (step 0): the gain stays exactly 2.0. A rerun with --retune is bit-identical (no randomness in validation)."""
    cache("N")
    shot, out = tuned_shot(tmp_path, media, ", val_every: 2, patience: 2, min_delta: 1.0")
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 0, result.output
    (tuned,) = (out.parent / "tuned.vidswap" / "tune").glob("learned_inswapper_*.safetensors")
    record = json.loads(tuned.with_suffix(".json").read_text())
    assert record["stopped_early"] and record["steps"] == 4 and record["val_steps"] == [0, 2, 4]
    assert record["best_step"] == 0 and len(record["losses"]) == 4
    assert float(load_file(str(tuned))["t_gain"]) == 2.0
    state = load_file(str(tuned))
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q", "--retune"])
    assert result.exit_code == 0, result.output
    again = json.loads(tuned.with_suffix(".json").read_text())
    assert again["losses"] == record["losses"] and again["val_losses"] == record["val_losses"]
    assert all(torch.equal(v, load_file(str(tuned))[k]) for k, v in state.items())


def test_identity_loss_crops_with_the_identity_networks_own_template():
    """GHOST's identity network reads the arcface_112_v1 crop: the tuning's identity alignment maps the core's
    crop template onto those points (the other families: onto the standard ArcFace 112 template)."""
    from types import SimpleNamespace

    from vidswap.faces.align import arcface_template
    from vidswap.swap.learned.swapper import ARCFACE_112_V1
    from vidswap.train.learned import arcface_alignment

    core_template = arcface_template(256)
    standard, v1 = arcface_template(112), np.asarray(ARCFACE_112_V1, np.float64)
    pts = torch.from_numpy(np.asarray(core_template, np.float32))
    for own, expected, other in ((ARCFACE_112_V1, v1, standard), (None, standard, v1)):
        core = SimpleNamespace(crop=SimpleNamespace(template=core_template), identity_template=own)
        m = arcface_alignment(core, 3)
        assert m.shape == (3, 2, 3) and torch.equal(m[0], m[2])
        mapped = (pts @ m[0, :, :2].T + m[0, :, 2]).numpy()
        err, err_other = np.abs(mapped - expected).mean(), np.abs(mapped - other).mean()
        assert err < 1.0 and err < err_other / 2, (err, err_other)
        if own is None:
            assert err < 1e-3  # the core's template is the standard one scaled: an exact similarity
