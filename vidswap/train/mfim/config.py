"""An MFIM ``train.yaml`` (``method: mfim``; ``yaml.safe_load``; unknown keys are errors).

Sections: ``generator`` (the frozen StyleGAN2: a converted safetensors file, required; MegaFS's section),
``data``, ``identity``, ``perceptual``, ``optim`` and ``run`` shared by every method
(:mod:`vidswap.train.sections`), ``model`` (:class:`~vidswap.swap.stylegan.mfim.MFIMConfig`), ``loss``
(:class:`MFIMLossWeights`) and ``discriminator`` (:class:`DiscriminatorSection`). Example:
``vidswap/configs/train_mfim.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidswap.errors import ConfigError
from vidswap.swap.stylegan.mfim import MFIMConfig
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.facedancer.perceptual import PerceptualConfig
from vidswap.train.sections import (GeneratorSection, IdentityConfig, OptimConfig, RunConfig, build_section,
                                    check_sections, read_train_yaml, stylegan_sections)

__all__ = ["MFIMLossWeights", "DiscriminatorSection", "MFIMTrainConfig", "parse_mfim_config", "load_mfim_config"]

SECTIONS = ("data", "generator", "model", "identity", "perceptual", "loss", "discriminator", "optim", "run")


@dataclass(frozen=True)
class MFIMLossWeights:
    """The paper's Eq. 6 terms we can compute offline (its λ values are in the supplement, not in the paper; these
    are ours): ``identity`` 1 - cos(R(swap), R(source)) with the project's identity network (SFace, or
    ``identity.onnx`` an ArcFace); ``rec_l1`` and ``perceptual``: L_recon = L1(swap, target) + perceptual(swap,
    target) (the paper's LPIPS; here the ``perceptual`` section's term: the identity network's first
    ``perceptual_layers`` + 1 feature maps, or VGG16 from user weights); ``adv`` the non-saturating GAN loss and
    ``r1`` (γ of ½ γ |∇D(real)|²) against a StarGAN-v2 discriminator (FaceDancer's). The 3DMM terms (shape, pose,
    expression from DECA) have no offline network and are left out."""

    identity: float = 1.0
    rec_l1: float = 1.0
    perceptual: float = 1.0
    adv: float = 0.1
    r1: float = 10.0
    perceptual_layers: int = 4

    def __post_init__(self) -> None:
        for name in ("identity", "rec_l1", "perceptual", "adv", "r1"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class DiscriminatorSection:
    """``discriminator.channels``: the first width and the cap (StarGAN-v2: 2^14 / side, 512)."""

    channels: tuple[int, int] = (64, 512)

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or min(self.channels) < 1:
            raise ConfigError(f"discriminator.channels must be two widths >= 1, got {list(self.channels)}")


@dataclass(frozen=True)
class MFIMTrainConfig:
    data: DataConfig
    generator: GeneratorSection
    model: MFIMConfig = field(default_factory=MFIMConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    loss: MFIMLossWeights = field(default_factory=MFIMLossWeights)
    discriminator: DiscriminatorSection = field(default_factory=DiscriminatorSection)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, beta1=0.0, beta2=0.99))
    run: RunConfig = field(default_factory=lambda: RunConfig(out="runs/mfim"))


def parse_mfim_config(raw: Any, base: Path = Path(".")) -> MFIMTrainConfig:
    """A :class:`MFIMTrainConfig` from the parsed YAML; relative paths against ``base``."""
    shared = stylegan_sections(check_sections(raw, SECTIONS), base, method="mfim", uses="MFIM encodes into",
                               optim={"lr": 1e-4, "beta1": 0.0, "beta2": 0.99})
    return MFIMTrainConfig(data=shared.data, generator=shared.generator,
                           model=build_section(MFIMConfig, raw.get("model"), "model"), identity=shared.identity,
                           perceptual=shared.perceptual, loss=build_section(MFIMLossWeights, raw.get("loss"), "loss"),
                           discriminator=build_section(DiscriminatorSection, raw.get("discriminator"),
                                                       "discriminator"),
                           optim=shared.optim, run=shared.run)


def load_mfim_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> MFIMTrainConfig:
    """Read an MFIM train.yaml; ``overrides`` ({section: {key: value}}) replace its values (None: keep)."""
    return parse_mfim_config(*read_train_yaml(path, overrides))
