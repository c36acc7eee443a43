"""An IDATT ``train.yaml`` (``method: idatt``; ``yaml.safe_load``; unknown keys are errors).

Sections: ``generator`` (the frozen StyleGAN2: a converted safetensors file, required), ``data``, ``identity``,
``perceptual``, ``optim`` and ``run`` shared by every method (:mod:`vidswap.train.sections`; optim defaults
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

from vidswap.swap.stylegan.idatt import IDATTConfig
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.facedancer.perceptual import PerceptualConfig
from vidswap.train.sections import (GeneratorSection, IdentityConfig, OptimConfig, RunConfig, build_section,
                                    check_sections, read_train_yaml, stage_steps, stylegan_sections)

__all__ = ["IDATTLossWeights", "IDATTTrainConfig", "parse_idatt_config", "load_idatt_config"]

SECTIONS = ("data", "generator", "model", "identity", "perceptual", "loss", "optim", "run", "encoder_steps",
            "idatt_steps")


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


def parse_idatt_config(raw: Any, base: Path = Path(".")) -> IDATTTrainConfig:
    """An :class:`IDATTTrainConfig` from the parsed YAML; relative paths against ``base``."""
    shared = stylegan_sections(check_sections(raw, SECTIONS), base, method="idatt", uses="IDATT generates with",
                               optim={"lr": 1e-4, "beta1": 0.9, "beta2": 0.999})
    steps = shared.run.steps
    return IDATTTrainConfig(data=shared.data, generator=shared.generator,
                            model=build_section(IDATTConfig, raw.get("model"), "model"), identity=shared.identity,
                            perceptual=shared.perceptual, loss=build_section(IDATTLossWeights, raw.get("loss"), "loss"),
                            optim=shared.optim, run=shared.run,
                            encoder_steps=stage_steps(raw, "encoder_steps", steps // 3),
                            idatt_steps=stage_steps(raw, "idatt_steps", steps // 3))


def load_idatt_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> IDATTTrainConfig:
    """Read an IDATT train.yaml; ``overrides`` ({section: {key: value}}) replace its values (None: keep)."""
    return parse_idatt_config(*read_train_yaml(path, overrides))
