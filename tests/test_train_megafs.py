"""MegaFS training at 64 px on real registry faces (a random 64 px StyleGAN2: the machinery, not the quality):
DDP 2 processes (gloo) == 1 process, bit-identical resume across the encoder -> FTM stage switch, the run's
outputs (losses.png, TensorBoard, summary), and clear errors with exit codes for bad checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file, save_file
from stylegan_method_setup import ROOT, check_bad_checkpoints, check_bad_configs, env, small_generator, write_method_cfg

from vidswap.cli import main

TINY = {"input_size": 64, "stem": 8, "widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "fpn": 16, "mid_codes": 3,
        "cells": 2, "groups": 4}


@pytest.fixture(scope="module")
def setup(face_set, tmp_path_factory):
    """(face set folder, preprocessing cache, 64 px generator checkpoint)."""
    return face_set[0], face_set[1], small_generator(tmp_path_factory.mktemp("megafs"))


def write_cfg(path: Path, setup, out: Path, model=None, perceptual=None, **run) -> Path:
    return write_method_cfg(path, setup, out, "megafs", model or TINY,
                            extra={"perceptual": perceptual or {}, "encoder_steps": 1}, **run)


def test_ddp_two_processes_equal_one_process(setup, tmp_path):
    from test_train_facedancer_run import child_failure, free_port

    cfg1 = write_cfg(tmp_path / "one.yaml", setup, tmp_path / "one", batch_size=4)
    cfg2 = write_cfg(tmp_path / "two.yaml", setup, tmp_path / "two", batch_size=2)  # 2 x 2: the same global batch
    ctl = write_cfg(tmp_path / "ctl.yaml", setup, tmp_path / "ctl", batch_size=4, seed=1)  # another global batch
    probe = str(ROOT / "tests" / "megafs_probe.py")
    for cfg, out in ((cfg1, "one.st"), (ctl, "ctl.st")):
        subprocess.run([sys.executable, probe, str(cfg), str(tmp_path / out)], check=True, env=env(), timeout=300)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        str(free_port()), probe, str(cfg2), str(tmp_path / "two.st")], env=env(), timeout=300,
                       capture_output=True, text=True)
    assert r.returncode == 0, child_failure(r)
    one, two, other = (load_file(tmp_path / f) for f in ("one.st", "two.st", "ctl.st"))
    assert one.keys() == two.keys() == other.keys()
    assert any(k.startswith("g1.E.") for k in one) and any(k.startswith("g2.F.") for k in one)

    def relative(a, b, tag):
        keys = [k for k in one if k.startswith(tag)]
        return max(float((a[k] - b[k]).abs().max()) for k in keys) / max(float(a[k].abs().max()) for k in keys)

    ddp = {tag: relative(one, two, tag) for tag in ("g1.", "g2.", "w.")}
    control = {tag: relative(one, other, tag) for tag in ("g1.", "g2.", "w.")}
    # step 1's gradients (DDP's average of two half batches vs the whole batch) agree to rounding: the summation
    # order differs, and how far that moves a float32 sum depends on the CPU's kernels (1e-6 on one machine, 1.4e-4
    # relative on an AMD EPYC one). A run on another global batch differs by orders of magnitude more.
    assert ddp["g1."] < 1e-3 and ddp["g1."] < control["g1."] / 100, (ddp, control)
    # step 2 runs on weights after Adam's first step, lr * g / (|g| + eps): about +-lr wherever |g| is near the
    # rounding level, so a few such weights flip by up to 2 * lr and step 2's gradients inherit that; still far
    # below what another batch gives
    assert ddp["g2."] < control["g2."] / 20, (ddp, control)
    for k in (k for k in one if k.startswith("w.")):
        assert torch.allclose(one[k], two[k], rtol=1e-4, atol=2e-3 * 1.01), k  # Adam's first step: +-lr at most
    print(f"DDP vs 1 process, worst relative difference: {ddp}; another global batch: {control}")


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def test_resume_across_the_stage_switch_is_bit_identical(setup, tmp_path):
    runner = CliRunner()
    full = write_cfg(tmp_path / "full.yaml", setup, tmp_path / "full", steps=3, image_every=1)
    res = runner.invoke(main, ["train", "--config", str(full), "-q"])
    assert res.exit_code == 0, res.output
    part = write_cfg(tmp_path / "part.yaml", setup, tmp_path / "part", steps=1, image_every=1)
    assert runner.invoke(main, ["train", "--config", str(part), "-q"]).exit_code == 0  # the encoder stage
    res = runner.invoke(main, ["train", "--config", str(part), "--steps", "3", "-q"])  # resume into the FTM stage
    assert res.exit_code == 0, res.output
    assert "resumed from" in res.output and "at step 1" in res.output and "trained to step 3" in res.output
    a = _state(tmp_path / "full/checkpoints/last.safetensors")
    b = _state(tmp_path / "part/checkpoints/last.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optF.") for k in a) and any(k.startswith("optE.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _state(tmp_path / "part/checkpoints/step_00000001.safetensors")
    from vidswap.swap.stylegan.importer import load_generator
    from vidswap.swap.stylegan.megafs import MegaFS, MegaFSConfig

    torch.manual_seed(0)  # run.seed: the trainer's initial weights
    init = MegaFS(MegaFSConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()}),
                  load_generator(setup[2])).encoder.state_dict()
    assert not all(torch.equal(c[f"E.{k}"], v) for k, v in init.items())  # step 1 trained the encoder
    assert all(torch.equal(a[k], c[k]) for k in a if k.startswith("E."))  # then it stayed frozen
    assert not all(torch.equal(a[k], c[k]) for k in a if k.startswith("F."))  # steps 2-3 trained the FTM
    assert all(torch.equal(a[k], c[k]) for k in a if k.startswith("S."))  # the generator stays frozen
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "full/tensorboard")).Reload()
    assert {"loss/encoder/rec", "loss/ftm/identity", "loss/ftm/norm", "lr"} <= set(events.Tags()["scalars"])
    assert {"encoder: source|target|output", "ftm: source|target|output"} <= set(events.Tags()["images"])
    summary = json.loads((tmp_path / "full/summary.json").read_text())
    assert summary["step"] == 3 and summary["encoder_steps"] == 1 and (tmp_path / "full/losses.png").is_file()


def test_bad_checkpoints_clear_errors(setup, tmp_path):
    cfg = write_cfg(tmp_path / "a.yaml", setup, tmp_path / "a", steps=1)
    assert CliRunner().invoke(main, ["train", "--config", str(cfg), "-q"]).exit_code == 0
    check_bad_checkpoints(lambda path, out, **kw: write_cfg(path, setup, out, **kw), tmp_path,
                          tmp_path / "a/checkpoints/last.safetensors", not_ours="not a MegaFS checkpoint",
                          other_format="vidswap.facedancer.train", other_model={**TINY, "fpn": 8})
    check_bad_configs(cfg, tmp_path, [(lambda r: r.update(generator={}), "generator.checkpoint is required")])


def test_encoder_losses_fall_and_sigterm_leaves_a_resumable_checkpoint(setup, tmp_path):
    import signal
    import time

    cfg = write_cfg(tmp_path / "t.yaml", setup, tmp_path / "t", steps=10_000)
    raw = yaml.safe_load(cfg.read_text())
    raw["encoder_steps"] = 10_000
    cfg.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen([sys.executable, "-m", "vidswap.cli", "train", "--config", str(cfg), "-q"], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "t" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 16):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "stopped by SIGTERM after step" in err and "run the same command again to resume" in err
    recs = [json.loads(line) for line in metrics.read_text().splitlines()]
    rec = [r["rec"] for r in recs]
    # the encoder learns to reconstruct through the generator: measured 0.86 -> 0.31 (first / last 4 of 17 steps)
    assert sum(rec[-4:]) < 0.75 * sum(rec[:4]), rec
    print(f"encoder pixel L2 over {len(rec)} steps: first 4 {sum(rec[:4]) / 4:.3f}, last 4 {sum(rec[-4:]) / 4:.3f}")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "t/checkpoints/last.safetensors"), "pt") as fh:
        k = int(fh.metadata()["step"])
    assert len(recs) <= k < 10_000
    res = CliRunner().invoke(main, ["train", "--config", str(cfg), "--steps", str(k + 1), "-q"])
    assert res.exit_code == 0, res.output
    assert f"at step {k}" in res.output and f"trained to step {k + 1}" in res.output


def test_the_shipped_example_config_parses():
    from vidswap.train.megafs.config import load_megafs_config
    from vidswap.train.methods import method_of

    path = ROOT / "vidswap/configs/train_megafs.yaml"
    assert method_of(path) == "megafs" and method_of(ROOT / "vidswap/configs/train_facedancer.yaml") == "facedancer"
    cfg = load_megafs_config(path)
    assert cfg.model.depths == (3, 4, 6, 3) and cfg.encoder_steps == 300_000 and cfg.optim.lr == 0.01
    assert cfg.loss.ftm_identity == 24 and cfg.generator.checkpoint.endswith("ffhq1024.safetensors")


def test_perceptual_vgg16_reaches_the_loss(setup, tmp_path):
    from test_train_facedancer_perceptual import vgg16_state

    weights = tmp_path / "vgg.safetensors"
    save_file(vgg16_state(), str(weights))
    runner = CliRunner()
    logged = {}
    for net, extra in (("identity", {}), ("vgg16", {"weights": str(weights)})):
        cfg = write_cfg(tmp_path / f"{net}.yaml", setup, tmp_path / net, perceptual={"net": net, **extra}, steps=1)
        res = runner.invoke(main, ["train", "--config", str(cfg), "-q"])
        assert res.exit_code == 0, res.output
        logged[net] = json.loads((tmp_path / net / "metrics.jsonl").read_text().splitlines()[0])
    assert logged["identity"]["rec"] == logged["vgg16"]["rec"]  # the same first step, another perceptual term
    assert logged["identity"]["perceptual"] != logged["vgg16"]["perceptual"] and logged["vgg16"]["perceptual"] > 0
    cfg = write_cfg(tmp_path / "bad.yaml", setup, tmp_path / "bad", perceptual={"net": "vgg16"}, steps=1)
    res = runner.invoke(main, ["train", "--config", str(cfg), "-q"])
    assert res.exit_code == 2 and "needs perceptual.weights" in res.output
