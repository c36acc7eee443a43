"""A StyleGAN-GLO ``train.yaml`` (``method: stylegan-glo``; ``yaml.safe_load``; unknown keys are errors).

Sections: ``data`` (FaceDancer's: ``root``, ``cache``, ``min_face``, ``max_images``, ``holdout``; the images are
cut in the FFHQ crop as for MegaFS, :func:`vidswap.train.megafs.data.prepare_ffhq_faces`), ``generator`` (the
architecture, :class:`~vidswap.swap.stylegan.generator.StyleGANConfig` fields; default a 32 px, 32-channel
generator), ``loss`` (:class:`GLOLossWeights`), ``optim`` (:class:`GLOOptim`) and ``run`` (every method's
:class:`~vidswap.train.sections.RunConfig`). Example: ``vidswap/configs/train_stylegan_glo.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidswap.errors import ConfigError
from vidswap.swap.stylegan.generator import StyleGANConfig
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.sections import (RunConfig, build_section, check_sections, data_section, read_train_yaml,
                                    run_section)

__all__ = ["GLOLossWeights", "GLOOptim", "GLOTrainConfig", "parse_glo_config", "load_glo_config"]

SECTIONS = ("data", "generator", "loss", "optim", "run")

SMALL_GENERATOR = {"resolution": 32, "z_dim": 32, "w_dim": 64, "mapping_layers": 2, "channel_base": 2048,
                   "channel_max": 32}


@dataclass(frozen=True)
class GLOLossWeights:
    """Reconstruction of each training image from its code: ``l2`` · MSE + ``l1`` · L1 + ``multiscale`` · L1 at
    1/2 and 1/4 scale (the inversion loss, :func:`vidswap.swap.stylegan.inversion.reconstruction_loss`), plus
    ``code_reg`` · the mean squared distance of the batch's codes to the mean code (keeps the codes together, so
    an inversion starting at the mean code has less far to go)."""

    l2: float = 1.0
    l1: float = 0.5
    multiscale: float = 0.5
    code_reg: float = 0.01


@dataclass(frozen=True)
class GLOOptim:
    """Adam for the synthesis network (``lr``, betas ``beta1`` / ``beta2``) and for the codes (``code_lr``);
    constant learning rates. Codes start at the mapping network's mean W plus ``code_init_std`` · N(0, 1)."""

    lr: float = 2e-3
    code_lr: float = 1e-2
    beta1: float = 0.0
    beta2: float = 0.99
    code_init_std: float = 0.05

    def lr_at(self, step: int) -> float:
        return self.lr


@dataclass(frozen=True)
class GLOTrainConfig:
    data: DataConfig
    generator: StyleGANConfig = field(default_factory=lambda: StyleGANConfig(**SMALL_GENERATOR))
    loss: GLOLossWeights = field(default_factory=GLOLossWeights)
    optim: GLOOptim = field(default_factory=GLOOptim)
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/stylegan-glo"))


def parse_glo_config(raw: Any, base: Path = Path(".")) -> GLOTrainConfig:
    """A :class:`GLOTrainConfig` from the parsed YAML; relative paths against ``base``."""
    check_sections(raw, SECTIONS)
    data = data_section(raw, base)
    try:
        gen = build_section(StyleGANConfig, {**SMALL_GENERATOR, **(raw.get("generator") or {})}, "generator")
    except ValueError as exc:
        raise ConfigError(f"generator: {exc}") from None
    run = run_section(raw, base, "runs/stylegan-glo")
    optim = build_section(GLOOptim, raw.get("optim"), "optim")
    if optim.lr <= 0 or optim.code_lr <= 0:
        raise ConfigError(f"optim.lr and optim.code_lr must be > 0, got {optim.lr}, {optim.code_lr}")
    return GLOTrainConfig(data=data, generator=gen, loss=build_section(GLOLossWeights, raw.get("loss"), "loss"),
                          optim=optim, run=run)


def load_glo_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> GLOTrainConfig:
    """Read a StyleGAN-GLO train.yaml; ``overrides`` ({section: {key: value}}) replace its values (None: keep)."""
    return parse_glo_config(*read_train_yaml(path, overrides))
