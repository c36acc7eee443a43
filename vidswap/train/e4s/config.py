"""An E4S ``train.yaml`` (``method: e4s``; ``yaml.safe_load``; unknown keys are errors).

Sections: ``generator`` (the StyleGAN2: a converted safetensors file, required), ``data``, ``identity``,
``perceptual``, ``optim`` and ``run`` shared by every method (:mod:`vidswap.train.sections`; optim defaults here
are the paper's Adam, lr 1e-4, betas 0.9 / 0.999, x0.1 every 100K steps), ``model``
(:class:`~vidswap.swap.stylegan.e4s.E4SConfig`), ``loss`` (:class:`E4SLossWeights`), ``tune_generator`` (the paper
fine-tunes the generator's first K = ``model.masked_layers`` layers with the encoder; false freezes it, the
paper's ablation A) and ``flip`` (random horizontal flips, p = 0.5, as the paper). Example:
``vidswap/configs/train_e4s.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidswap.errors import ConfigError
from vidswap.swap.stylegan.e4s import E4SConfig
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.facedancer.perceptual import PerceptualConfig
from vidswap.train.sections import (GeneratorSection, IdentityConfig, OptimConfig, RunConfig, build_section,
                                    check_sections, read_train_yaml, stylegan_sections)

__all__ = ["E4SLossWeights", "E4STrainConfig", "parse_e4s_config", "load_e4s_config"]

SECTIONS = ("data", "generator", "model", "identity", "perceptual", "loss", "optim", "run", "tune_generator", "flip")


@dataclass(frozen=True)
class E4SLossWeights:
    """The paper's RGI loss ``L_mse + 0.8 L_ms_lpips + 0.1 L_ms_id (+ 0.1 L_ms_parsing + 0.01 L_adv)``:

    ``mse`` pixel L2; ``perceptual`` the perceptual term at ``perceptual_scales`` image scales (1, 1/2, ...; the
    paper's multi-scale LPIPS; here FaceDancer's perceptual term, chosen by the ``perceptual`` section: the frozen
    identity network's first ``perceptual_layers`` + 1 feature maps, or VGG16 from user-supplied weights);
    ``identity`` the multi-scale identity loss, ``Σ_i (1 - cos)`` over the identity network's first
    ``identity_levels`` feature maps plus its embedding; ``multiscale`` pixel L1 at 1/2 and 1/4 scale (not in the
    paper; 0 for its loss). The parsing loss (a pretrained face parser) and the adversarial term (StyleGAN's
    pretrained discriminator) have no offline networks here and are left out."""

    mse: float = 1.0
    perceptual: float = 0.8
    identity: float = 0.1
    multiscale: float = 0.5
    perceptual_layers: int = 4
    perceptual_scales: int = 2
    identity_levels: int = 5

    def __post_init__(self) -> None:
        if min(self.mse, self.perceptual, self.identity, self.multiscale) < 0:
            raise ConfigError("loss weights must be >= 0")
        if self.perceptual_scales < 1 or self.identity_levels < 0 or self.perceptual_layers < 0:
            raise ConfigError("loss.perceptual_scales must be >= 1, identity_levels and perceptual_layers >= 0")


@dataclass(frozen=True)
class E4STrainConfig:
    data: DataConfig
    generator: GeneratorSection
    model: E4SConfig = field(default_factory=E4SConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    loss: E4SLossWeights = field(default_factory=E4SLossWeights)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, beta1=0.9, beta2=0.999, decay=0.1))
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/e4s"))
    tune_generator: bool = True
    flip: bool = True


def _flag(raw: dict, key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def parse_e4s_config(raw: Any, base: Path = Path(".")) -> E4STrainConfig:
    """An :class:`E4STrainConfig` from the parsed YAML; relative paths against ``base``."""
    shared = stylegan_sections(check_sections(raw, SECTIONS), base, method="e4s", uses="E4S inverts into",
                               optim={"lr": 1e-4, "beta1": 0.9, "beta2": 0.999, "decay": 0.1})
    return E4STrainConfig(data=shared.data, generator=shared.generator,
                          model=build_section(E4SConfig, raw.get("model"), "model"), identity=shared.identity,
                          perceptual=shared.perceptual, loss=build_section(E4SLossWeights, raw.get("loss"), "loss"),
                          optim=shared.optim, run=shared.run, tune_generator=_flag(raw, "tune_generator", True),
                          flip=_flag(raw, "flip", True))


def load_e4s_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> E4STrainConfig:
    """Read an E4S train.yaml; ``overrides`` ({section: {key: value}}) replace its values (None: keep)."""
    return parse_e4s_config(*read_train_yaml(path, overrides))
