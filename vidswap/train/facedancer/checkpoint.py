"""FaceDancer checkpoints, safetensors only.

* **training state** (``format = vidswap.facedancer.train``): generator ``G.*`` and discriminator ``D.*`` weights,
  both Adam states (``optG.<param>.<field>``, ``optD.*``), the step; metadata holds the model config, the
  optimisers' hyper-parameters (JSON) and the step. Resuming from it continues bit for bit
  (:func:`load_training_state`).
* **inference** (``format = vidswap.facedancer``): the generator alone in float32, with the model config and the
  identity encoder it was trained with (:func:`save_inference`, :func:`load_generator`; a training state file
  loads as well).

Files are written atomically (complete or absent). Every read failure is a :class:`~vidswap.errors.ModelError`
(exit 4) naming the file and what is wrong: unreadable or truncated, another kind of file, another architecture.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from vidswap.errors import ConfigError, ModelError
from vidswap.models.checkpoint_file import load_prefixed_module, read_tagged_checkpoint
from vidswap.train.facedancer.model import FaceDancerConfig, FaceDancerGenerator

__all__ = ["identity_meta", "identity_of", "TRAIN_FORMAT", "INFER_FORMAT", "save_training_state",
           "load_training_state", "save_inference", "load_generator", "read_checkpoint"]

TRAIN_FORMAT = "vidswap.facedancer.train"
INFER_FORMAT = "vidswap.facedancer"
VERSION = "1"


def atomic_save(tensors: dict[str, torch.Tensor], meta: dict[str, str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a FaceDancer checkpoint; ModelError when unreadable or not one."""
    return read_tagged_checkpoint(path, (TRAIN_FORMAT, INFER_FORMAT), "checkpoint", "FaceDancer",
                                  "`vidswap train` or `vidswap train export`")


def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    sd = opt.state_dict()
    tensors = {f"{prefix}.{pid}.{name}": (v if torch.is_tensor(v) else torch.tensor(v))
               for pid, st in sd["state"].items() for name, v in st.items()}
    return tensors, json.dumps(sd["param_groups"])


def save_training_state(path: str | Path, generator: nn.Module, discriminator: nn.Module,
                        opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, step: int,
                        config: FaceDancerConfig, extra: dict[str, str] | None = None) -> Path:
    """Write everything a resume needs (see the module doc)."""
    tensors = {f"G.{k}": v.float() for k, v in generator.state_dict().items()}
    tensors.update({f"D.{k}": v.float() for k, v in discriminator.state_dict().items()})
    tg, groups_g = optimizer_tensors("optG", opt_g)
    td, groups_d = optimizer_tensors("optD", opt_d)
    tensors.update(tg)
    tensors.update(td)
    meta = {"format": TRAIN_FORMAT, "version": VERSION, "step": str(step), "config": config.to_json(),
            "optG": groups_g, "optD": groups_d}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    return atomic_save(tensors, meta, Path(path))


def _config_of(meta: dict[str, str], path: Path) -> FaceDancerConfig:
    try:
        return FaceDancerConfig.from_json(meta["config"])
    except (KeyError, ValueError, TypeError, ConfigError) as exc:
        raise ModelError(f"checkpoint {path} has no readable model config: {exc}") from None


def _load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path) -> None:
    load_prefixed_module(module, tensors, prefix, f"checkpoint {path} does not fit the model")


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str, groups: str) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": json.loads(groups)})


def load_training_state(path: str | Path, generator: nn.Module, discriminator: nn.Module,
                        opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                        config: FaceDancerConfig) -> int:
    """Restore a training state into the given modules and optimisers; returns its step. ModelError (exit 4)
    when the file is unreadable, not a training state, or of another architecture than ``config``."""
    path = Path(path)
    tensors, meta = read_checkpoint(path)
    if meta["format"] != TRAIN_FORMAT:
        raise ModelError(f"{path} is an inference checkpoint (no optimiser state); resume needs a training "
                         f"checkpoint (<out>/checkpoints/*.safetensors)")
    saved = _config_of(meta, path)
    if saved != config:
        raise ModelError(f"checkpoint {path} is of another architecture than train.yaml's model: saved "
                         f"{saved.to_json()} vs {config.to_json()}")
    _load_module(generator, tensors, "G", path)
    _load_module(discriminator, tensors, "D", path)
    load_optimizer(opt_g, tensors, "optG", meta["optG"])
    load_optimizer(opt_d, tensors, "optD", meta["optD"])
    return int(meta["step"])


def identity_meta(onnx: str | None, mean: float = 0.0, std: float = 1.0) -> dict[str, str]:
    """The metadata naming the identity encoder a model was trained with ("" = SFace) and its input scaling."""
    return {"identity_onnx": onnx or "", "identity_mean": repr(float(mean)), "identity_std": repr(float(std))}


def identity_of(meta: dict[str, str]) -> tuple[str | None, float, float]:
    """(ONNX file or None for SFace, input mean, input std) from a checkpoint's metadata."""
    return (meta.get("identity_onnx") or None, float(meta.get("identity_mean", 0.0)),
            float(meta.get("identity_std", 1.0)))


def save_inference(path: str | Path, generator: FaceDancerGenerator, identity: dict[str, str], step: int) -> Path:
    """The generator alone, float32, with its config and the identity encoder (:func:`identity_meta`)."""
    tensors = {k: v.float() for k, v in generator.state_dict().items()}
    meta = {"format": INFER_FORMAT, "version": VERSION, "step": str(step), "config": generator.config.to_json(),
            **identity}
    return atomic_save(tensors, meta, Path(path))


def load_generator(path: str | Path, device: str | torch.device = "cpu"
                   ) -> tuple[FaceDancerGenerator, dict[str, str]]:
    """(generator in eval mode, metadata) from an inference or training checkpoint."""
    path = Path(path)
    tensors, meta = read_checkpoint(path)
    gen = FaceDancerGenerator(_config_of(meta, path))
    if meta["format"] == TRAIN_FORMAT:
        _load_module(gen, tensors, "G", path)
    else:
        _load_module(gen, {f"G.{k}": v for k, v in tensors.items()}, "G", path)
    return gen.to(device).eval(), meta
