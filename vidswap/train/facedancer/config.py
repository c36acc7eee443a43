"""``train.yaml``: the FaceDancer training configuration (read with ``yaml.safe_load``; unknown keys are errors).

Sections: ``data`` (:class:`~vidswap.train.facedancer.data.DataConfig`), ``model``
(:class:`~vidswap.train.facedancer.model.FaceDancerConfig`, or ``model: {paper: C}`` / ``{paper: D, ...}``),
``identity`` (:class:`IdentityConfig`), ``loss`` (:class:`~vidswap.train.facedancer.losses.LossWeights`),
``perceptual`` (:class:`~vidswap.train.facedancer.perceptual.PerceptualConfig`), ``optim`` (:class:`OptimConfig`),
``run`` (:class:`RunConfig`). Relative paths are relative to the YAML file.
Example: ``vidswap/configs/train_facedancer.yaml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vidswap.errors import ConfigError
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.facedancer.losses import LossWeights
from vidswap.train.facedancer.model import FaceDancerConfig
from vidswap.train.facedancer.perceptual import PerceptualConfig

__all__ = ["IdentityConfig", "OptimConfig", "RunConfig", "TrainConfig", "load_train_config", "parse_train_config"]


@dataclass(frozen=True)
class IdentityConfig:
    """The frozen identity encoder: ``onnx`` an ArcFace-class ONNX file (None: the project's SFace); the graph
    sees ``(255·x - input_mean) / input_std`` (SFace: 0, 1; InsightFace ArcFace models: 127.5, 127.5)."""

    onnx: str | None = None
    input_mean: float = 0.0
    input_std: float = 1.0


@dataclass(frozen=True)
class OptimConfig:
    """Adam (paper: β1 = 0, β2 = 0.99, lr 1e-4, lr × 0.97 every 100K steps), for G and D alike.

    With β1 = 0 Adam's first steps are ``lr · g / (|g| + eps)``, about ``±lr`` for every weight whose gradient
    is not far below eps, so gradients that differ only by rounding (another thread count, another split of the
    batch over processes) can move some weights by 2·lr. A larger ``eps`` makes the update smooth in g.
    """

    lr: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.99
    decay: float = 0.97
    decay_every: int = 100_000
    eps: float = 1e-8  # Adam's epsilon (the paper does not give it; torch's default)

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (staircase decay)."""
        return self.lr * self.decay ** (step // self.decay_every)


@dataclass(frozen=True)
class RunConfig:
    """The run.

    Attributes:
        out: run folder (checkpoints/, tensorboard/, metrics.jsonl, summary.json).
        steps: total optimisation steps.
        batch_size: pairs per process (the paper: 10 on one GPU); the global batch is batch_size × processes.
        seed: pair sampling seed.
        save_every_steps / save_every_minutes: checkpoint interval (whichever comes first; 0 = off).
        keep: step checkpoints kept besides ``last.safetensors``.
        log_every: scalars every N steps; image_every: image grids; eval_every: held-out evaluation (0 = off;
            always at the end).
        eval_pairs: held-out pairs evaluated.
        eval_gallery: the ID-retrieval gallery: ``heldout`` (every held-out identity, embedded once per run) or
            ``pairs`` (only the evaluated pairs' sources).
        device: auto (CUDA when present, one GPU per process by LOCAL_RANK), cpu or cuda.
        amp: mixed precision (bf16 autocast) on CUDA; ignored on CPU.
        dist_timeout_s: how long the process group waits for its master / peers.
        resume: "auto" (continue from <out>/checkpoints/last.safetensors if present), "never", or a file.
        threads: torch CPU threads per process (0: torch's default).
    """

    out: str = "runs/facedancer"
    steps: int = 500_000
    batch_size: int = 10
    seed: int = 0
    save_every_steps: int = 5000
    save_every_minutes: float = 30.0
    keep: int = 3
    log_every: int = 50
    image_every: int = 1000
    eval_every: int = 5000
    eval_pairs: int = 64
    eval_gallery: str = "heldout"
    device: str = "auto"
    amp: bool = True
    dist_timeout_s: float = 300.0
    resume: str = "auto"
    threads: int = 0


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig
    model: FaceDancerConfig = field(default_factory=FaceDancerConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def build_section(cls: type, raw: Any, where: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(sorted(unknown))} in {where}; known: {', '.join(sorted(known))}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        return cls(**kw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def resolve_path(value: str | None, base: Path) -> str | None:
    if value is None or value == "":
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


def data_section(raw: dict, base: Path) -> DataConfig:
    """The ``data`` section every train.yaml has: its image folder required, paths resolved against ``base``."""
    data = build_section(DataConfig, raw.get("data"), "data")
    if not data.root:
        raise ConfigError("data.root is required: the folder of face images")
    return dataclasses.replace(data, root=resolve_path(data.root, base), cache=resolve_path(data.cache, base))


def shared_sections(raw: dict, base: Path, run_raw: Any) -> tuple[IdentityConfig, PerceptualConfig, RunConfig]:
    """The ``identity``, ``perceptual`` and ``run`` sections every train.yaml has (``run_raw``: the run mapping,
    with a method's defaults merged in), paths resolved against ``base``."""
    identity = build_section(IdentityConfig, raw.get("identity"), "identity")
    identity = dataclasses.replace(identity, onnx=resolve_path(identity.onnx, base))
    perceptual = build_section(PerceptualConfig, raw.get("perceptual"), "perceptual")
    perceptual = dataclasses.replace(perceptual, weights=resolve_path(perceptual.weights, base))
    run = build_section(RunConfig, run_raw, "run")
    resume = run.resume if run.resume in ("auto", "never") else resolve_path(run.resume, base)
    return identity, perceptual, dataclasses.replace(run, out=resolve_path(run.out, base), resume=resume)


def parse_train_config(raw: Any, base: Path = Path(".")) -> TrainConfig:
    """A :class:`TrainConfig` from the parsed YAML mapping; relative paths resolved against ``base``."""
    if not isinstance(raw, dict):
        raise ConfigError("train.yaml must be a mapping with data/model/identity/loss/perceptual/optim/run sections")
    build_section(_Sections, raw, "train.yaml")
    data = data_section(raw, base)
    model_raw = dict(raw.get("model") or {})
    variant = model_raw.pop("paper", None)
    model = (FaceDancerConfig.paper(str(variant), **{k: tuple(v) if isinstance(v, list) else v
                                                    for k, v in model_raw.items()})
             if variant else build_section(FaceDancerConfig, model_raw, "model"))
    identity, perceptual, run = shared_sections(raw, base, raw.get("run"))
    if run.eval_gallery not in ("heldout", "pairs"):
        raise ConfigError(f"run.eval_gallery must be heldout or pairs, got {run.eval_gallery!r}")
    if run.steps < 1 or run.batch_size < 1:
        raise ConfigError(f"run.steps and run.batch_size must be >= 1, got {run.steps}, {run.batch_size}")
    return TrainConfig(data=data, model=model, identity=identity, loss=build_section(LossWeights, raw.get("loss"), "loss"),
                       perceptual=perceptual, optim=build_section(OptimConfig, raw.get("optim"), "optim"), run=run)


@dataclass
class _Sections:  # the known top-level keys
    method: Any = None  # "facedancer" (vidswap.train.methods picks the loader)
    data: Any = None
    model: Any = None
    identity: Any = None
    loss: Any = None
    perceptual: Any = None
    optim: Any = None
    run: Any = None


def load_train_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> TrainConfig:
    """Read train.yaml (``yaml.safe_load``); ``overrides`` ({section: {key: value}}) replace its values."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read training config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"training config {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"training config {path} must be a mapping")
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {})
        raw[section] = {**(raw[section] or {}), **{k: v for k, v in values.items() if v is not None}}
    return parse_train_config(raw, path.parent)
