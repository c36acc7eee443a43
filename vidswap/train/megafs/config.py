"""A MegaFS ``train.yaml`` (``method: megafs``; ``yaml.safe_load``; unknown keys are errors).

Sections: ``generator`` (the frozen StyleGAN2: a converted safetensors file, required), ``data``, ``identity``,
``perceptual``, ``optim`` and ``run`` as FaceDancer's (:mod:`vidswap.train.facedancer.config`; optim defaults
here are the paper's Adam, lr 0.01, betas 0.9 / 0.999), ``model``
(:class:`~vidswap.swap.stylegan.megafs.MegaFSConfig`), ``loss`` (:class:`MegaFSLossWeights`) and
``encoder_steps``: the first steps train the HieRFE encoder, the rest the FTM with the encoder frozen (the paper
trains them sequentially). Example: ``vidswap/configs/train_megafs.yaml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vidswap.errors import ConfigError
from vidswap.swap.stylegan.megafs import MegaFSConfig
from vidswap.train.facedancer.config import (IdentityConfig, OptimConfig, RunConfig, build_section, data_section,
                                             resolve_path, shared_sections)
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.facedancer.perceptual import PerceptualConfig

__all__ = ["MegaFSLossWeights", "MegaFSTrainConfig", "is_megafs_config", "parse_megafs_config",
           "load_megafs_config"]


@dataclass(frozen=True)
class MegaFSLossWeights:
    """Encoder stage (paper λ1..λ3: 1, 0.8, 1): ``rec`` pixel L2, ``perceptual`` (the paper's LPIPS; here
    FaceDancer's perceptual term, chosen by the ``perceptual`` section: the frozen identity network's first
    ``perceptual_layers`` + 1 feature maps by default, or VGG16 relu1_2..relu5_3 from user-supplied weights),
    ``identity`` (1 - cos), ``w_reg`` (squared distance of the codes from the mean W, off in the paper).
    FTM stage (paper φ1, φ2, φ3, φ5: 8, 32, 24, 32): ``ftm_rec`` (self-swaps of source and target reproduce
    them), ``ftm_perceptual`` (swap vs target), ``ftm_identity`` (swap vs source), ``ftm_norm`` (|L_s^high -
    L_s2t|^2). The paper's landmark terms (λ4, φ4: an HRNet landmark predictor) have no offline network here and
    are left out."""

    rec: float = 1.0
    perceptual: float = 0.8
    identity: float = 1.0
    w_reg: float = 0.0
    ftm_rec: float = 8.0
    ftm_perceptual: float = 32.0
    ftm_identity: float = 24.0
    ftm_norm: float = 32.0
    perceptual_layers: int = 4


@dataclass(frozen=True)
class GeneratorSection:
    """``generator.checkpoint``: the converted StyleGAN2 safetensors (``vidswap models convert-stylegan``)."""

    checkpoint: str = ""


@dataclass(frozen=True)
class MegaFSTrainConfig:
    data: DataConfig
    generator: GeneratorSection
    model: MegaFSConfig = field(default_factory=MegaFSConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    loss: MegaFSLossWeights = field(default_factory=MegaFSLossWeights)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.01, beta1=0.9, beta2=0.999))
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/megafs"))
    encoder_steps: int = 0


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


def is_megafs_config(path: str | Path) -> bool:
    """Whether train.yaml says ``method: megafs`` (False for FaceDancer's files and unreadable ones: the
    FaceDancer loader then reports them)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and raw.get("method") == "megafs"


def parse_megafs_config(raw: Any, base: Path = Path(".")) -> MegaFSTrainConfig:
    """A :class:`MegaFSTrainConfig` from the parsed YAML; relative paths against ``base``."""
    if not isinstance(raw, dict):
        raise ConfigError("train.yaml must be a mapping")
    build_section(_Sections, raw, "train.yaml")
    data = data_section(raw, base)
    gen = build_section(GeneratorSection, raw.get("generator"), "generator")
    if not gen.checkpoint:
        raise ConfigError("generator.checkpoint is required: the StyleGAN2 safetensors MegaFS encodes into")
    gen = GeneratorSection(resolve_path(gen.checkpoint, base))
    identity, perceptual, run = shared_sections(raw, base, {"out": "runs/megafs", **(raw.get("run") or {})})
    if run.steps < 1 or run.batch_size < 1:
        raise ConfigError(f"run.steps and run.batch_size must be >= 1, got {run.steps}, {run.batch_size}")
    encoder_steps = raw.get("encoder_steps")
    encoder_steps = run.steps // 2 if encoder_steps is None else encoder_steps
    if not isinstance(encoder_steps, int) or encoder_steps < 0:
        raise ConfigError(f"encoder_steps must be an integer >= 0, got {encoder_steps!r}")
    optim = build_section(OptimConfig, {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, **(raw.get("optim") or {})}, "optim")
    return MegaFSTrainConfig(data=data, generator=gen, model=build_section(MegaFSConfig, raw.get("model"), "model"),
                             identity=identity, perceptual=perceptual,
                             loss=build_section(MegaFSLossWeights, raw.get("loss"), "loss"),
                             optim=optim, run=run, encoder_steps=encoder_steps)


def load_megafs_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> MegaFSTrainConfig:
    """Read a MegaFS train.yaml; ``overrides`` ({section: {key: value}}) replace its values (None: keep)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read training config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"training config {path} is not valid YAML: {exc}") from None
    for section, values in (overrides or {}).items():
        raw[section] = {**(raw.get(section) or {}), **{k: v for k, v in values.items() if v is not None}}
    return parse_megafs_config(raw, path.parent)
