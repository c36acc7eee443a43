"""E4S training at 64 px on real registry faces (a random 64 px StyleGAN2: the machinery, not the quality): DDP 2
processes (gloo) == 1 process, bit-identical resume, SIGTERM's resumable checkpoint, and clear errors with exit codes
for bad checkpoints and configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.importer import save_generator

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = {"input_size": 64, "stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1], "hidden": 16, "groups": 4,
        "masked_layers": 6}


@pytest.fixture(scope="module")
def setup(face_set, tmp_path_factory):
    """(face set folder, preprocessing cache, 64 px generator checkpoint)."""
    torch.manual_seed(0)
    gen = save_generator(StyleGAN2Generator(StyleGANConfig(**SMALL)),
                         tmp_path_factory.mktemp("e4s") / "G.safetensors")
    return face_set[0], face_set[1], gen


def write_cfg(path: Path, setup, out: Path, model=None, **run) -> Path:
    root, cache, gen = setup
    cfg = {"method": "e4s", "generator": {"checkpoint": str(gen)},
           "data": {"root": str(root), "cache": str(cache), "holdout": 0.0},
           "model": model or TINY, "optim": {"lr": 0.001},
           "run": {"out": str(out), "steps": 2, "batch_size": 2, "log_every": 1, "image_every": 0, "eval_every": 0,
                   "save_every_steps": 0, "save_every_minutes": 0, "threads": 1, **run}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def test_ddp_two_processes_equal_one_process(setup, tmp_path):
    from test_train_facedancer_run import free_port

    cfg1 = write_cfg(tmp_path / "one.yaml", setup, tmp_path / "one", batch_size=4)
    cfg2 = write_cfg(tmp_path / "two.yaml", setup, tmp_path / "two", batch_size=2)  # 2 x 2: the same global batch
    probe = str(ROOT / "tests" / "e4s_probe.py")
    subprocess.run([sys.executable, probe, str(cfg1), str(tmp_path / "one.st")], check=True, env=env(), timeout=300)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        str(free_port()), probe, str(cfg2), str(tmp_path / "two.st")], env=env(), timeout=300,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
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
    # largest gradient; the weights after two Adam steps to +-2 lr at most (Adam's first steps are about +-lr)
    assert worst["g1."] < 1e-4 and worst["g2."] < 1e-4, worst
    for k in (k for k in one if k.startswith("w.")):
        assert torch.allclose(one[k], two[k], rtol=1e-4, atol=2e-3 * 1.01), k
    print(f"DDP vs 1 process, worst relative gradient difference: {worst}")


def test_the_shipped_example_config_parses():
    from vidswap.train.e4s.config import is_e4s_config, load_e4s_config

    path = ROOT / "vidswap/configs/train_e4s.yaml"
    assert is_e4s_config(path) and not is_e4s_config(ROOT / "vidswap/configs/train_megafs.yaml")
    cfg = load_e4s_config(path)
    assert cfg.model.masked_layers == 13 and cfg.optim.lr == 1e-4 and cfg.optim.decay == 0.1
    assert cfg.loss.perceptual == 0.8 and cfg.loss.identity == 0.1 and cfg.tune_generator and cfg.flip
    assert cfg.run.steps == 300_000 and cfg.generator.checkpoint.endswith("ffhq1024.safetensors")
