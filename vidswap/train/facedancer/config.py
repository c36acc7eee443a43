"""``train.yaml``: the FaceDancer training configuration (read with ``yaml.safe_load``; unknown keys are errors).

Sections: ``data`` (:class:`~vidswap.train.facedancer.data.DataConfig`), ``model``
(:class:`~vidswap.train.facedancer.model.FaceDancerConfig`, or ``model: {paper: C}`` / ``{paper: D, ...}``),
``loss`` (:class:`~vidswap.train.facedancer.losses.LossWeights`), ``perceptual``
(:class:`~vidswap.train.facedancer.perceptual.PerceptualConfig`), and ``identity``, ``optim`` and ``run``
(:mod:`vidswap.train.sections`, shared by every method). Relative paths are relative to the YAML file.
Example: ``vidswap/configs/train_facedancer.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidswap.errors import ConfigError
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.facedancer.losses import LossWeights
from vidswap.train.facedancer.model import FaceDancerConfig
from vidswap.train.facedancer.perceptual import PerceptualConfig
from vidswap.train.sections import (IdentityConfig, OptimConfig, RunConfig, build_section, check_sections,
                                    data_section, read_train_yaml, shared_sections)

__all__ = ["IdentityConfig", "OptimConfig", "RunConfig", "TrainConfig", "load_train_config", "parse_train_config"]


SECTIONS = ("data", "model", "identity", "loss", "perceptual", "optim", "run")  # train.yaml's top level


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig
    model: FaceDancerConfig = field(default_factory=FaceDancerConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def parse_train_config(raw: Any, base: Path = Path(".")) -> TrainConfig:
    """A :class:`TrainConfig` from the parsed YAML mapping; relative paths resolved against ``base``."""
    check_sections(raw, SECTIONS)
    data = data_section(raw, base)
    model_raw = dict(raw.get("model") or {})
    variant = model_raw.pop("paper", None)
    model = (FaceDancerConfig.paper(str(variant), **{k: tuple(v) if isinstance(v, list) else v
                                                    for k, v in model_raw.items()})
             if variant else build_section(FaceDancerConfig, model_raw, "model"))
    identity, perceptual, run = shared_sections(raw, base)
    if run.eval_gallery not in ("heldout", "pairs"):
        raise ConfigError(f"run.eval_gallery must be heldout or pairs, got {run.eval_gallery!r}")
    return TrainConfig(data=data, model=model, identity=identity, loss=build_section(LossWeights, raw.get("loss"), "loss"),
                       perceptual=perceptual, optim=build_section(OptimConfig, raw.get("optim"), "optim"), run=run)


def load_train_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> TrainConfig:
    """Read train.yaml (``yaml.safe_load``); ``overrides`` ({section: {key: value}}) replace its values."""
    return parse_train_config(*read_train_yaml(path, overrides))
