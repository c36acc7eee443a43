"""The ``vidswap train`` methods: ``method:`` in train.yaml (absent: ``facedancer``) -> its config loader and its
run function, imported only when a command runs (so ``vidswap --help`` stays light).

Adding a method is one :class:`TrainMethod` line in :data:`METHODS` (see docs/training.md, "Adding a training
method"): ``config`` names ``load(path, overrides) -> cfg`` (overrides: ``{"run": {"steps", "out", "resume"}}``,
None values meaning keep) and ``run`` names ``run(cfg, log, progress) -> TrainResult``, usually
``run_method(PLUGIN, cfg, log, progress)`` of :mod:`vidswap.train.loop`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from vidswap.errors import UsageError

__all__ = ["DEFAULT_METHOD", "METHODS", "TrainMethod", "method_of", "resolve_method"]

DEFAULT_METHOD = "facedancer"


@dataclass(frozen=True)
class TrainMethod:
    """One method: ``config`` and ``run`` are ``"module:function"`` names (imported on use)."""

    name: str
    config: str
    run: str
    about: str = ""

    def load_config(self, path: str | Path, overrides: dict | None = None) -> Any:
        return _attr(self.config)(path, overrides)

    def runner(self) -> Callable[..., Any]:
        return _attr(self.run)


def _attr(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


#: name -> method (one line per method, in alphabetical order).
METHODS: dict[str, TrainMethod] = {m.name: m for m in (
    TrainMethod("e4s", "vidswap.train.e4s.config:load_e4s_config",
                "vidswap.train.e4s.trainer:run_e4s_training", "E4S (regional encoder, mask-guided StyleGAN2)"),
    TrainMethod("facedancer", "vidswap.train.facedancer.config:load_train_config",
                "vidswap.train.facedancer.trainer:run_training", "FaceDancer (AFFA U-Net swapper, GAN)"),
    TrainMethod("idatt", "vidswap.train.idatt.config:load_idatt_config",
                "vidswap.train.idatt.trainer:run_idatt_training", "IDATT / MAttFace (pSp + attention, then blending)"),
    TrainMethod("megafs", "vidswap.train.megafs.config:load_megafs_config",
                "vidswap.train.megafs.trainer:run_megafs_training", "MegaFS (HieRFE encoder, then FTM)"),
    TrainMethod("mfim", "vidswap.train.mfim.config:load_mfim_config",
                "vidswap.train.mfim.trainer:run_mfim_training", "MFIM (S-space codes + style maps, ID mixing)"),
    TrainMethod("stylegan-glo", "vidswap.train.glo.config:load_glo_config",
                "vidswap.train.glo.trainer:run_glo_training", "a small StyleGAN2 generator by GLO (codes + G)"),
)}


def method_of(path: str | Path) -> str:
    """The ``method:`` of a train.yaml (``facedancer`` when absent, and for unreadable files or non-mappings:
    the FaceDancer loader then reports them)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return DEFAULT_METHOD
    if not isinstance(raw, dict) or raw.get("method") is None:
        return DEFAULT_METHOD
    return raw["method"] if isinstance(raw["method"], str) else repr(raw["method"])


def resolve_method(path: str | Path) -> TrainMethod:
    """The method a train.yaml names; :class:`UsageError` (exit 2) for an unknown one."""
    name = method_of(path)
    if name not in METHODS:
        raise UsageError(f"unknown training method {name!r} in {path} (method:); known: {', '.join(sorted(METHODS))}")
    return METHODS[name]
