"""The sections every ``train.yaml`` shares, and how they are read (``yaml.safe_load``; unknown keys are errors).

Every method's file has ``data``, ``run`` and (except ``stylegan-glo``) ``identity`` and ``perceptual``; the
StyleGAN-family methods (``e4s``, ``idatt``, ``megafs``, ``mfim``) also have ``generator`` (a converted StyleGAN2
safetensors, required) and FaceDancer's ``optim`` with their paper's Adam defaults: :func:`stylegan_sections`
reads those six at once. Relative paths are relative to the YAML file. A method's own module adds its ``model``
and ``loss`` sections.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vidswap.errors import ConfigError
from vidswap.train.facedancer.data import DataConfig
from vidswap.train.facedancer.perceptual import PerceptualConfig

__all__ = ["IdentityConfig", "OptimConfig", "RunConfig", "GeneratorSection", "StyleGANSections", "build_section",
           "check_sections", "resolve_path", "data_section", "run_section", "shared_sections", "stylegan_sections",
           "stage_steps", "read_train_yaml"]


@dataclass(frozen=True)
class IdentityConfig:
    """The frozen identity encoder: ``onnx`` an ArcFace-class ONNX file (None: the project's SFace); the graph
    sees ``(255·x - input_mean) / input_std`` (SFace: 0, 1; InsightFace ArcFace models: 127.5, 127.5)."""

    onnx: str | None = None
    input_mean: float = 0.0
    input_std: float = 1.0


@dataclass(frozen=True)
class OptimConfig:
    """Adam (FaceDancer's paper: β1 = 0, β2 = 0.99, lr 1e-4, lr × 0.97 every 100K steps), for G and D alike.

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
class GeneratorSection:
    """``generator.checkpoint``: the converted StyleGAN2 safetensors (``vidswap models convert-stylegan``)."""

    checkpoint: str = ""


@dataclass(frozen=True)
class StyleGANSections:
    """The sections a StyleGAN-family train.yaml shares, read and checked (:func:`stylegan_sections`)."""

    data: DataConfig
    generator: GeneratorSection
    identity: IdentityConfig
    perceptual: PerceptualConfig
    optim: OptimConfig
    run: RunConfig


def build_section(cls: type, raw: Any, where: str):
    """``cls(**raw)`` for one mapping of the YAML (None: the defaults); lists become tuples; unknown keys and
    wrong types are :class:`ConfigError` naming ``where``."""
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


def check_sections(raw: Any, known: tuple[str, ...]) -> dict:
    """The top level of a train.yaml: a mapping whose keys are all in ``known`` (``method`` always is)."""
    if not isinstance(raw, dict):
        raise ConfigError("train.yaml must be a mapping")
    names = {"method", *known}
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(sorted(unknown))} in train.yaml; "
                          f"known: {', '.join(sorted(names))}")
    return raw


def resolve_path(value: str | None, base: Path) -> str | None:
    """``value`` relative to ``base`` (the YAML's folder) unless absolute; ``~`` expanded; None / "" kept."""
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


def run_section(raw: dict, base: Path, out: str | None = None) -> RunConfig:
    """The ``run`` section (``out``: the method's default run folder; None: :class:`RunConfig`'s), its paths
    resolved against ``base``; ``steps`` and ``batch_size`` must be >= 1."""
    run_raw = raw.get("run") if out is None else {"out": out, **(raw.get("run") or {})}
    run = build_section(RunConfig, run_raw, "run")
    if run.steps < 1 or run.batch_size < 1:
        raise ConfigError(f"run.steps and run.batch_size must be >= 1, got {run.steps}, {run.batch_size}")
    resume = run.resume if run.resume in ("auto", "never") else resolve_path(run.resume, base)
    return dataclasses.replace(run, out=resolve_path(run.out, base), resume=resume)


def shared_sections(raw: dict, base: Path, out: str | None = None
                    ) -> tuple[IdentityConfig, PerceptualConfig, RunConfig]:
    """The ``identity``, ``perceptual`` and ``run`` sections (``out``: as :func:`run_section`), paths resolved
    against ``base``."""
    identity = build_section(IdentityConfig, raw.get("identity"), "identity")
    identity = dataclasses.replace(identity, onnx=resolve_path(identity.onnx, base))
    perceptual = build_section(PerceptualConfig, raw.get("perceptual"), "perceptual")
    perceptual = dataclasses.replace(perceptual, weights=resolve_path(perceptual.weights, base))
    return identity, perceptual, run_section(raw, base, out)


def stylegan_sections(raw: dict, base: Path, *, method: str, uses: str, optim: dict[str, float]
                      ) -> StyleGANSections:
    """A StyleGAN-family method's shared sections: ``data``, the required ``generator.checkpoint`` (``uses``:
    what the method does with the generator, for the error), ``identity``, ``perceptual``, ``run`` (default
    folder ``runs/<method>``) and ``optim`` (``optim``: the method's Adam defaults under the file's values)."""
    data = data_section(raw, base)
    gen = build_section(GeneratorSection, raw.get("generator"), "generator")
    if not gen.checkpoint:
        raise ConfigError(f"generator.checkpoint is required: the StyleGAN2 safetensors {uses}")
    identity, perceptual, run = shared_sections(raw, base, f"runs/{method}")
    return StyleGANSections(data=data, generator=GeneratorSection(resolve_path(gen.checkpoint, base)),
                            identity=identity, perceptual=perceptual,
                            optim=build_section(OptimConfig, {**optim, **(raw.get("optim") or {})}, "optim"), run=run)


def stage_steps(raw: dict, key: str, default: int) -> int:
    """A stage length (``encoder_steps`` and the like): an integer >= 0, ``default`` when absent."""
    value = raw.get(key)
    value = default if value is None else value
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def read_train_yaml(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> tuple[dict, Path]:
    """A train.yaml's mapping and its folder (the base of relative paths); ``overrides`` ({section: {key:
    value}}, None values meaning keep) replace its values."""
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
        raw[section] = {**(raw.get(section) or {}), **{k: v for k, v in values.items() if v is not None}}
    return raw, path.parent
