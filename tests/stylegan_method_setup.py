"""Shared set-up of the StyleGAN-family training tests (test_train_e4s / idatt / megafs / mfim): a 64 px random
StyleGAN2 checkpoint, the train.yaml writer every test uses, the environment of the subprocess runs, and the
checks every method's bad inputs must pass (one clear line, exit 4 for an unusable checkpoint, exit 2 for a bad
config)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import save_file

from vidswap.cli import main
from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.importer import save_generator

ROOT = Path(__file__).resolve().parents[1]
#: the 64 px generator every method's tests encode into
SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
#: a run that stops quickly and writes no periodic checkpoints or images
QUICK_RUN = {"steps": 2, "batch_size": 2, "log_every": 1, "image_every": 0, "eval_every": 0, "save_every_steps": 0,
             "save_every_minutes": 0, "threads": 1}


def small_generator(folder: Path, prepare: Callable[[StyleGAN2Generator], None] | None = None) -> Path:
    """A seeded random 64 px generator saved in ``folder`` (``prepare`` may change it before saving)."""
    torch.manual_seed(0)
    gen = StyleGAN2Generator(StyleGANConfig(**SMALL))
    if prepare is not None:
        prepare(gen)
    return save_generator(gen, folder / "G.safetensors")


def write_method_cfg(path: Path, setup, out: Path, method: str, model: dict, extra: dict | None = None,
                     data: dict | None = None, **run) -> Path:
    """A train.yaml at ``path`` for ``method`` on ``setup`` = (face folder, preprocessing cache, generator):
    ``model`` its model section, ``extra`` more top-level keys, ``data`` more data keys, ``run`` over
    :data:`QUICK_RUN`."""
    root, cache, gen = setup
    cfg = {"method": method, "generator": {"checkpoint": str(gen)},
           "data": {"root": str(root), "cache": str(cache), "holdout": 0.0, **(data or {})},
           "model": model, "optim": {"lr": 0.001}, **(extra or {}),
           "run": {"out": str(out), **QUICK_RUN, **run}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def env() -> dict[str, str]:
    """The environment of a subprocess run: this checkout first on PYTHONPATH."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def check_bad_checkpoints(write_cfg: Callable[..., Path], tmp_path: Path, good: Path, *, not_ours: str,
                          other_format: str, other_model: dict) -> None:
    """Resuming from a truncated copy of ``good``, another method's file (format ``other_format``) or ``good``
    under another architecture (``other_model``): exit 4 with a line saying so (``not_ours``: the message for
    the foreign file). ``write_cfg(path, out, model=None, **run)`` writes the method's config."""
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(good.read_bytes()[:300])
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other), metadata={"format": other_format})
    runner = CliRunner()
    for run, model, needle in (({"resume": str(corrupt)}, None, "unreadable"),
                               ({"resume": str(other)}, None, not_ours),
                               ({"resume": str(good)}, other_model, "another architecture")):
        cfg = write_cfg(tmp_path / "b.yaml", tmp_path / "b", model=model, **run)
        res = runner.invoke(main, ["train", "--config", str(cfg), "-q"])
        assert res.exit_code == 4 and needle in res.output, (needle, res.output)


def check_bad_configs(cfg: Path, tmp_path: Path, changes: list[tuple[Callable[[dict], None], str]]) -> None:
    """Each change applied to the train.yaml ``cfg`` on its own: exit 2 and the expected line."""
    runner = CliRunner()
    for change, needle in changes:
        raw = yaml.safe_load(cfg.read_text())
        change(raw)
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
        res = runner.invoke(main, ["train", "--config", str(tmp_path / "c.yaml"), "-q"])
        assert res.exit_code == 2 and needle in res.output, (needle, res.output)
