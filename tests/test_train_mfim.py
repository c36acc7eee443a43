"""MFIM training at 64 px on real registry faces (a random 64 px StyleGAN2: the machinery, not the quality):
DDP 2 processes (gloo) == 1 process, bit-identical resume, the run's outputs (losses.png, TensorBoard, summary),
and clear errors with exit codes for bad checkpoints and configs (the SIGTERM checkpoint is the shared driver's,
tested in test_train_loop.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from stylegan_method_setup import ROOT, check_bad_checkpoints, check_bad_configs, env, small_generator, write_method_cfg

from vidswap.cli import main

TINY = {"input_size": 64, "stem": 8, "widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "fpn": 16, "groups": 4,
        "map_max": 32, "id_from": 32}


@pytest.fixture(scope="module")
def setup(face_set, tmp_path_factory):
    """(face set folder, preprocessing cache, 64 px generator checkpoint)."""
    def noisy(gen):  # non-zero noise strengths, so the style maps' gains start non-zero
        with torch.no_grad():
            for _, block in gen.synthesis.blocks():
                for name in block.layer_names[:-1]:
                    getattr(block, name).noise_strength.fill_(0.2)

    return face_set[0], face_set[1], small_generator(tmp_path_factory.mktemp("mfim"), noisy)


def write_cfg(path: Path, setup, out: Path, model=None, **run) -> Path:
    return write_method_cfg(path, setup, out, "mfim", model or TINY, extra={"discriminator": {"channels": [8, 16]}},
                            **run)


def test_ddp_two_processes_equal_one_process(setup, tmp_path):
    from test_train_facedancer_run import child_failure, free_port

    cfg1 = write_cfg(tmp_path / "one.yaml", setup, tmp_path / "one", batch_size=4)
    cfg2 = write_cfg(tmp_path / "two.yaml", setup, tmp_path / "two", batch_size=2)  # 2 x 2: the same global batch
    probe = str(ROOT / "tests" / "mfim_probe.py")
    one_proc = subprocess.Popen([sys.executable, probe, str(cfg1), str(tmp_path / "one.st")], env=env())
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        str(free_port()), probe, str(cfg2), str(tmp_path / "two.st")], env=env(), timeout=300,
                       capture_output=True, text=True)
    assert one_proc.wait(timeout=300) == 0
    assert r.returncode == 0, child_failure(r)
    one, two = load_file(tmp_path / "one.st"), load_file(tmp_path / "two.st")
    assert one.keys() == two.keys()
    assert any(k.startswith("g1.E.m2m") for k in one) and any(k.startswith("g1.D.") for k in one)
    worst = {}
    for tag in ("g1.E.", "g1.D."):
        keys = [k for k in one if k.startswith(tag)]
        num = max(float((one[k] - two[k]).abs().max()) for k in keys)
        worst[tag] = num / max(float(one[k].abs().max()) for k in keys)
    # step 1's gradients (DDP's average of two half batches vs the whole batch) agree to float32 rounding: the
    # discriminator's to ~1e-6; the encoder's to ~2e-3 of the largest (measured 1.9e-3), rounding amplified by the
    # identity term's backward through the identity network and the generator (in float64 the same step's halves
    # and whole batch agree to 4e-15: benchmarks/mfim_step_float64.py); a run on another global batch
    # differs by orders of magnitude more. The weights after two Adam steps agree to +-lr (Adam's first steps
    # move a weight by about lr = 1e-3 whatever its gradient's size).
    assert worst["g1.E."] < 2e-2 and worst["g1.D."] < 1e-4, worst
    diff = torch.cat([(one[k] - two[k]).abs().flatten() for k in one if k.startswith("w.")])
    # Adam (beta1 0) moves every weight by about +-lr per step, so a rounding-level gradient whose sign differs
    # moves it 2 lr apart: at most 2 steps x 2 lr; typical weights agree far closer (measured median 6e-6; another
    # global batch gives ~lr = 1e-3)
    assert float(diff.max()) <= 2 * 2 * 1e-3 * 1.01 and float(diff.median()) < 1e-4, diff.max()
    print(f"DDP vs 1 process, worst relative gradient difference: {worst}")


def test_resume_is_bit_identical_and_the_run_writes_its_outputs(setup, tmp_path):
    runner = CliRunner()
    full = write_cfg(tmp_path / "full.yaml", setup, tmp_path / "full", steps=3, image_every=1)
    res = runner.invoke(main, ["train", "--config", str(full), "-q"])
    assert res.exit_code == 0, res.output
    part = write_cfg(tmp_path / "part.yaml", setup, tmp_path / "part", steps=1)
    assert runner.invoke(main, ["train", "--config", str(part), "-q"]).exit_code == 0
    res = runner.invoke(main, ["train", "--config", str(part), "--steps", "3", "-q"])
    assert res.exit_code == 0, res.output
    assert "resumed from" in res.output and "at step 1" in res.output and "trained to step 3" in res.output
    a = load_file(tmp_path / "full/checkpoints/last.safetensors")
    b = load_file(tmp_path / "part/checkpoints/last.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optE.") for k in a) and any(k.startswith("optD.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = load_file(tmp_path / "part/checkpoints/step_00000001.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a if k.startswith("E."))  # steps 2-3 trained the encoder
    assert not all(torch.equal(a[k], c[k]) for k in a if k.startswith("D."))  # and the discriminator
    assert all(torch.equal(a[k], c[k]) for k in a if k.startswith("S."))  # the generator stays frozen
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "full/tensorboard")).Reload()
    assert {"loss/identity", "loss/rec_l1", "loss/perceptual", "loss/adv", "loss/r1", "lr"} <= set(
        events.Tags()["scalars"])
    assert "source|target|output" in events.Tags()["images"]
    summary = json.loads((tmp_path / "full/summary.json").read_text())
    assert summary["step"] == 3 and summary["train_faces"] > 0 and (tmp_path / "full/losses.png").is_file()
    # the swap core reads the trained file
    from vidswap.swap.stylegan.mfim_core import load_mfim

    model, meta = load_mfim(tmp_path / "full/checkpoints/last.safetensors", 64)
    assert meta["step"] == "3" and torch.equal(model.encoder.map_gain, a["E.map_gain"])


def test_bad_checkpoints_and_configs_clear_errors(setup, tmp_path):
    cfg = write_cfg(tmp_path / "a.yaml", setup, tmp_path / "a", steps=1)
    assert CliRunner().invoke(main, ["train", "--config", str(cfg), "-q"]).exit_code == 0
    check_bad_checkpoints(lambda path, out, **kw: write_cfg(path, setup, out, **kw), tmp_path,
                          tmp_path / "a/checkpoints/last.safetensors", not_ours="is not a MFIM checkpoint",
                          other_format="vidswap.megafs.train", other_model={**TINY, "fpn": 8})
    check_bad_configs(cfg, tmp_path, [(lambda r: r.update(generator={}), "generator.checkpoint is required"),
                                      (lambda r: r["model"].update(id_from=128), "at least one identity block"),
                                      (lambda r: r.update(loss={"adv": -1}), "loss.adv must be >= 0"),
                                      (lambda r: r.update(loss={"shape": 1}), "unknown key(s) shape in loss")])


def test_the_shipped_example_config_parses():
    from vidswap.train.methods import resolve_method
    from vidswap.train.mfim.config import load_mfim_config

    path = ROOT / "vidswap/configs/train_mfim.yaml"
    assert resolve_method(path).name == "mfim"
    cfg = load_mfim_config(path)
    assert cfg.model.depths == (3, 4, 6, 3) and cfg.model.id_from == 32 and cfg.model.map_max == 64
    assert cfg.loss.adv == 0.1 and cfg.discriminator.channels == (64, 512)
    assert cfg.generator.checkpoint.endswith("ffhq1024.safetensors")
