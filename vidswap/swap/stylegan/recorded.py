"""Reading the models a StyleGAN-family checkpoint records (E4S, IDATT, MegaFS, MFIM): the model and generator
configs in its metadata, the generator it must match, and its ``prefix.*`` tensors loaded strictly into the
model's parts, every failure a :class:`~vidswap.errors.ModelError` (exit 4) naming the file and the method."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, TypeVar

import torch
from torch import Tensor

from vidswap.errors import ConfigError, ModelError
from vidswap.models.checkpoint_file import load_prefixed_module
from vidswap.swap.stylegan.generator import StyleGAN2Generator, StyleGANConfig

__all__ = ["recorded_configs", "recorded_generator", "build_recorded", "load_prefixed", "require_architecture"]

C = TypeVar("C")
M = TypeVar("M")


def recorded_configs(meta: dict[str, str], path: Path, label: str, config_cls: type[C]
                     ) -> tuple[C, StyleGANConfig]:
    """The model config (``config_cls.from_json(meta["config"])``) and the generator config a ``label``
    checkpoint records."""
    try:
        return config_cls.from_json(meta["config"]), StyleGANConfig.from_dict(json.loads(meta["stylegan_config"]))
    except (KeyError, ValueError, TypeError, ConfigError) as exc:
        raise ModelError(f"{label} checkpoint {path} has no readable model config: {exc}") from None


def recorded_generator(gcfg: StyleGANConfig, path: Path, resolution: int | None) -> StyleGAN2Generator:
    """A generator of the recorded shape (untrained); ``resolution`` (when given) must be its side."""
    if resolution is not None and gcfg.resolution != resolution:
        raise ModelError(f"{path.name}: generator is {gcfg.resolution}x{gcfg.resolution}, this core needs "
                         f"{resolution}x{resolution}")
    return StyleGAN2Generator(gcfg)


def build_recorded(label: str, path: Path, make: Callable[[], M]) -> M:
    """``make()``, a recorded config it refuses being the checkpoint's fault (ModelError)."""
    try:
        return make()
    except ConfigError as exc:
        raise ModelError(f"{label} checkpoint {path}: {exc}") from None


def load_prefixed(module: torch.nn.Module, tensors: dict[str, Tensor], prefix: str, path: Path, label: str) -> None:
    """Load the ``prefix.*`` tensors of a ``label`` checkpoint into ``module`` (strict); ModelError naming the
    mismatch."""
    load_prefixed_module(module, tensors, prefix, f"{label} checkpoint {path} does not fit its recorded architecture")


def require_architecture(cfg, gcfg: StyleGANConfig, model: torch.nn.Module, path: Path) -> None:
    """A training checkpoint resumes only into the same model and generator shape (``model.cfg``,
    ``model.generator.cfg``); ModelError saying which otherwise."""
    if cfg != model.cfg or gcfg != model.generator.cfg:
        raise ModelError(f"checkpoint {path} is of another architecture than train.yaml's: saved model "
                         f"{cfg.to_json()} on a {gcfg.resolution} px generator vs {model.cfg.to_json()} on "
                         f"{model.generator.cfg.resolution} px")
