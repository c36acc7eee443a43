"""A MegaFS ``train.yaml`` (``method: megafs``; ``yaml.safe_load``; unknown keys are errors).

Sections: ``generator`` (the frozen StyleGAN2: a converted safetensors file, required), ``data``, ``identity``,
``perceptual``, ``optim`` and ``run`` shared by every method (:mod:`vidswap.train.sections`; optim defaults
here are the paper's Adam, lr 0.01, betas 0.9 / 0.999), ``model``
(:class:`~vidswap.swap.stylegan.megafs.MegaFSConfig`), ``loss`` (:class:`MegaFSLossWeights`) and
``encoder_steps``: the first steps train the HieRFE encoder, the rest the FTM with the encoder frozen (the paper
trains them sequentially). Example: ``vidswap/configs/train_megafs.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidswap.swap.stylegan.megafs import MegaFSConfig
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.facedancer.perceptual import PerceptualConfig
from vidswap.train.sections import (GeneratorSection, IdentityConfig, OptimConfig, RunConfig, build_section,
                                    check_sections, read_train_yaml, stage_steps, stylegan_sections)

__all__ = ["MegaFSLossWeights", "MegaFSTrainConfig", "parse_megafs_config", "load_megafs_config"]

SECTIONS = ("data", "generator", "model", "identity", "perceptual", "loss", "optim", "run", "encoder_steps")


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


def parse_megafs_config(raw: Any, base: Path = Path(".")) -> MegaFSTrainConfig:
    """A :class:`MegaFSTrainConfig` from the parsed YAML; relative paths against ``base``."""
    shared = stylegan_sections(check_sections(raw, SECTIONS), base, method="megafs", uses="MegaFS encodes into",
                               optim={"lr": 0.01, "beta1": 0.9, "beta2": 0.999})
    return MegaFSTrainConfig(data=shared.data, generator=shared.generator,
                             model=build_section(MegaFSConfig, raw.get("model"), "model"),
                             identity=shared.identity, perceptual=shared.perceptual,
                             loss=build_section(MegaFSLossWeights, raw.get("loss"), "loss"), optim=shared.optim,
                             run=shared.run, encoder_steps=stage_steps(raw, "encoder_steps", shared.run.steps // 2))


def load_megafs_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> MegaFSTrainConfig:
    """Read a MegaFS train.yaml; ``overrides`` ({section: {key: value}}) replace its values (None: keep)."""
    return parse_megafs_config(*read_train_yaml(path, overrides))
