"""An IDATT ``train.yaml`` (``method: idatt``; ``yaml.safe_load``; unknown keys are errors).

Sections: ``generator`` (the frozen StyleGAN2: a converted safetensors file, required), ``data``, ``identity``,
``perceptual``, ``optim`` and ``run`` as FaceDancer's (:mod:`vidswap.train.facedancer.config`; optim defaults
here are the paper's Adam, lr 1e-4, betas 0.9 / 0.999), ``model``
(:class:`~vidswap.swap.stylegan.idatt.IDATTConfig`), ``loss`` (:class:`IDATTLossWeights`) and the stage
lengths: steps ``[0, encoder_steps)`` train the pSp encoder (feature pyramid + latent head) to invert faces,
the next ``idatt_steps`` the IDATT blocks and the latent head (feature pyramid frozen, as the paper's Sec. 3.1),
the rest the blending stage. Example: ``vidswap/configs/train_idatt.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vidswap.errors import ConfigError
from vidswap.swap.stylegan.idatt import IDATTConfig
from vidswap.train.facedancer.config import (IdentityConfig, OptimConfig, RunConfig, build_section, data_section,
                                             resolve_path, shared_sections)
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.facedancer.perceptual import PerceptualConfig
from vidswap.train.megafs.config import GeneratorSection

__all__ = ["IDATTLossWeights", "IDATTTrainConfig", "parse_idatt_config", "load_idatt_config"]


@dataclass(frozen=True)
class IDATTLossWeights:
    """The paper's L_all without L_adv and L_3d (module doc of :mod:`vidswap.train.idatt.step`); it gives no λ.

    rec: pixel L2 (encoder stage: the reconstruction; later stages: swap vs target on same-image pairs).
    perceptual: the paper's LPIPS, here the project's perceptual term (``perceptual`` section: the identity
        network's first ``perceptual_layers`` + 1 maps, or VGG16), swap vs target. identity: 1 - cos of ArcFace
        embeddings, swap vs source (encoder stage: reconstruction vs input). background: blending stage, pixel L2
        to the target outside the inner-face mask (ours: the paper names no loss for that stage).
    """

    rec: float = 1.0
    perceptual: float = 0.8
    identity: float = 1.0
    background: float = 1.0
    perceptual_layers: int = 4


@dataclass(frozen=True)
class IDATTTrainConfig:
    data: DataConfig
    generator: GeneratorSection
    model: IDATTConfig = field(default_factory=IDATTConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    loss: IDATTLossWeights = field(default_factory=IDATTLossWeights)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, beta1=0.9, beta2=0.999))
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/idatt"))
    encoder_steps: int = 0
    idatt_steps: int = 0


@dataclass
class _Sections:
    method: Any = None
    data: Any = None
    generator: Any = None
    model: Any = None
    identity: Any = None
    perceptual: Any = None
    loss: Any = None
    optim: Any = None
    run: Any = None
    encoder_steps: Any = None
    idatt_steps: Any = None


def _steps(raw: dict, key: str, default: int) -> int:
    value = raw.get(key)
    value = default if value is None else value
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def parse_idatt_config(raw: Any, base: Path = Path(".")) -> IDATTTrainConfig:
    """An :class:`IDATTTrainConfig` from the parsed YAML; relative paths against ``base``."""
    if not isinstance(raw, dict):
        raise ConfigError("train.yaml must be a mapping")
    build_section(_Sections, raw, "train.yaml")
    data = data_section(raw, base)
    gen = build_section(GeneratorSection, raw.get("generator"), "generator")
    if not gen.checkpoint:
        raise ConfigError("generator.checkpoint is required: the StyleGAN2 safetensors IDATT generates with")
    gen = GeneratorSection(resolve_path(gen.checkpoint, base))
    identity, perceptual, run = shared_sections(raw, base, {"out": "runs/idatt", **(raw.get("run") or {})})
    if run.steps < 1 or run.batch_size < 1:
        raise ConfigError(f"run.steps and run.batch_size must be >= 1, got {run.steps}, {run.batch_size}")
    optim = build_section(OptimConfig, {"lr": 1e-4, "beta1": 0.9, "beta2": 0.999, **(raw.get("optim") or {})},
                          "optim")
    return IDATTTrainConfig(data=data, generator=gen, model=build_section(IDATTConfig, raw.get("model"), "model"),
                            identity=identity, perceptual=perceptual,
                            loss=build_section(IDATTLossWeights, raw.get("loss"), "loss"), optim=optim, run=run,
                            encoder_steps=_steps(raw, "encoder_steps", run.steps // 3),
                            idatt_steps=_steps(raw, "idatt_steps", run.steps // 3))


def load_idatt_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> IDATTTrainConfig:
    """Read an IDATT train.yaml; ``overrides`` ({section: {key: value}}) replace its values (None: keep)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read training config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"training config {path} is not valid YAML: {exc}") from None
    for section, values in (overrides or {}).items():
        raw[section] = {**(raw.get(section) or {}), **{k: v for k, v in values.items() if v is not None}}
    return parse_idatt_config(raw, path.parent)
