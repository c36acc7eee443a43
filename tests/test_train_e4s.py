"""E4S training at 64 px on real registry faces (a random 64 px StyleGAN2: the machinery, not the quality): DDP 2
processes (gloo) == 1 process, SIGTERM's checkpoint and a bit-identical resume from it, the run's outputs, and
clear errors with exit codes for bad checkpoints and configs. (The falling losses over a few hundred steps are a
documented run, README "`swap.core: e4s`", not a test.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from stylegan_method_setup import ROOT, check_bad_checkpoints, check_bad_configs, env, small_generator, write_method_cfg

TINY = {"input_size": 64, "stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1], "hidden": 16, "groups": 4,
        "masked_layers": 6}


@pytest.fixture(scope="module")
def setup(face_set, tmp_path_factory):
    """(face set folder, preprocessing cache, 64 px generator checkpoint)."""
    return face_set[0], face_set[1], small_generator(tmp_path_factory.mktemp("e4s"))


@pytest.fixture(scope="module")
def identity():
    """The default identity network, loaded once for the in-process runs."""
    from vidswap.train.sections import IdentityConfig
    from vidswap.train.facedancer.identity import IdentityNet

    c = IdentityConfig()
    return IdentityNet.load(c.onnx, c.input_mean, c.input_std)


def write_cfg(path: Path, setup, out: Path, model=None, **run) -> Path:
    return write_method_cfg(path, setup, out, "e4s", model or TINY, **run)


def test_ddp_two_processes_equal_one_process(setup, identity, tmp_path):
    from e4s_probe import probe
    from test_train_facedancer_run import child_failure, free_port

    cfg1 = write_cfg(tmp_path / "one.yaml", setup, tmp_path / "one", batch_size=4)
    cfg2 = write_cfg(tmp_path / "two.yaml", setup, tmp_path / "two", batch_size=2)  # 2 x 2: the same global batch
    threads = torch.get_num_threads()
    try:
        probe(str(cfg1), str(tmp_path / "one.st"), identity)  # one process: here
    finally:
        torch.set_num_threads(threads)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        str(free_port()), str(ROOT / "tests" / "e4s_probe.py"), str(cfg2), str(tmp_path / "two.st")],
                       env=env(), timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, child_failure(r)
    one, two = load_file(tmp_path / "one.st"), load_file(tmp_path / "two.st")
    assert one.keys() == two.keys()
    # both steps trained the encoder and the generator's masked layers (tune_generator), not the later ones
    assert any(k.startswith("g1.E.") for k in one) and any(k.startswith("g2.S.synthesis.b8.conv1") for k in one)
    assert not any(k.startswith("g1.S.synthesis.b64.conv1") for k in one)
    worst = {}
    for tag in ("g1.", "g2."):
        keys = [k for k in one if k.startswith(tag)]
        num = max(float((one[k] - two[k]).abs().max()) for k in keys)
        worst[tag] = num / max(float(one[k].abs().max()) for k in keys)
    # the gradients (DDP's average of two half batches vs the whole batch) agree to rounding, relative to the
    # largest gradient (measured 4e-5); the weights after two Adam steps to +-2 lr (its first steps are ~ +-lr)
    assert worst["g1."] < 1e-4 and worst["g2."] < 1e-4, worst
    for k in (k for k in one if k.startswith("w.")):
        assert torch.allclose(one[k], two[k], rtol=1e-4, atol=2e-3 * 1.01), k
    print(f"DDP vs 1 process, worst relative gradient difference: {worst}")


def test_sigterm_checkpoint_resumes_bit_identically_and_the_run_writes_its_outputs(setup, identity, tmp_path):
    from vidswap.train.e4s.config import load_e4s_config
    from vidswap.train.e4s.trainer import E4S_METHOD, E4STrainer, run_e4s_training
    from vidswap.train.loop import Preempted, run_method

    full = load_e4s_config(write_cfg(tmp_path / "full.yaml", setup, tmp_path / "full", steps=3, image_every=1))
    run_e4s_training(full, log=lambda _m: None, progress=False, identity=identity)

    class Killed(E4STrainer):  # SIGTERM to this process after step 1, as a farm's pre-emption would
        def run_steps(self, until, on_step=None, images=None, save_due=lambda step: False):
            if self.step == 0:
                super().run_steps(1, on_step, images, save_due)
                os.kill(os.getpid(), signal.SIGTERM)
            return super().run_steps(until, on_step, images, save_due)

    part = load_e4s_config(write_cfg(tmp_path / "part.yaml", setup, tmp_path / "part", steps=3, image_every=1))
    with pytest.raises(Preempted, match="stopped by SIGTERM after step 2"):
        run_method(replace(E4S_METHOD, build=Killed), part, log=lambda _m: None, progress=False, identity=identity)
    logs: list[str] = []
    run_e4s_training(part, log=logs.append, progress=False, identity=identity)
    assert any("resumed from" in m and "at step 2" in m for m in logs), logs
    a = load_file(tmp_path / "full/checkpoints/last.safetensors")
    b = load_file(tmp_path / "part/checkpoints/last.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("opt.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the generator's masked layers were fine-tuned (tune_generator), its later ones and the mapping were not
    start = load_file(setup[2])
    assert not torch.equal(a["S.synthesis.b8.conv1.weight"], start["synthesis.b8.conv1.weight"])
    assert torch.equal(a["S.synthesis.b64.conv1.weight"], start["synthesis.b64.conv1.weight"])
    assert torch.equal(a["S.mapping.fc0.weight"], start["mapping.fc0.weight"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "full/tensorboard")).Reload()
    assert {"loss/mse", "loss/perceptual", "loss/identity", "loss/multiscale", "lr"} <= set(events.Tags()["scalars"])
    assert "rgi: input|regions|reconstruction" in events.Tags()["images"]
    summary = json.loads((tmp_path / "full/summary.json").read_text())
    assert summary["step"] == 3 and summary["masked_layers"] == 6 and (tmp_path / "full/losses.png").is_file()
    from vidswap.swap.stylegan.e4s_core import load_e4s  # the checkpoint is the swap core's file

    model, meta = load_e4s(tmp_path / "full/checkpoints/last.safetensors", 64)
    assert meta["step"] == "3" and torch.equal(model.generator.synthesis.b8.conv1.weight,
                                               a["S.synthesis.b8.conv1.weight"])


def test_bad_checkpoints_and_configs_clear_errors(setup, tmp_path):
    from vidswap.swap.stylegan.e4s import E4S, E4SConfig
    from vidswap.swap.stylegan.importer import load_generator
    from vidswap.train.e4s.checkpoint import save_e4s_state

    model = E4S(E4SConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()}),
                load_generator(setup[2]))
    good = save_e4s_state(tmp_path / "good.safetensors", model, torch.optim.Adam(model.encoder.parameters()), 1)
    check_bad_checkpoints(lambda path, out, **kw: write_cfg(path, setup, out, **kw), tmp_path, good,
                          not_ours="is not a vidswap E4S checkpoint", other_format="vidswap.megafs.train",
                          other_model={**TINY, "hidden": 8})
    check_bad_configs(write_cfg(tmp_path / "a.yaml", setup, tmp_path / "a"), tmp_path,
                      [(lambda r: r.update(generator={}), "generator.checkpoint is required"),
                       (lambda r: r.update(model={**TINY, "masked_layers": 0}), "masked_layers must be >= 1"),
                       (lambda r: r.update(flip="yes"), "flip must be true or false")])


def test_the_shipped_example_config_parses():
    from vidswap.train.e4s.config import load_e4s_config
    from vidswap.train.methods import method_of, resolve_method

    path = ROOT / "vidswap/configs/train_e4s.yaml"
    assert method_of(ROOT / "vidswap/configs/train_megafs.yaml") == "megafs"
    assert resolve_method(path).name == "e4s"
    cfg = load_e4s_config(path)
    assert cfg.model.masked_layers == 13 and cfg.optim.lr == 1e-4 and cfg.optim.decay == 0.1
    assert cfg.loss.perceptual == 0.8 and cfg.loss.identity == 0.1 and cfg.tune_generator and cfg.flip
    assert cfg.run.steps == 300_000 and cfg.generator.checkpoint.endswith("ffhq1024.safetensors")
