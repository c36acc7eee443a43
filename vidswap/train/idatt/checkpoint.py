"""IDATT training checkpoints (``format = vidswap.idatt.train``, safetensors, written atomically).

Tensors: the trainable parts ``I.*`` (feature pyramid, latent head, IDATT blocks, blender, mean W), the frozen
generator ``S.*`` (so the swap core needs this one file) and the three Adam states ``optE.*`` (encoder stage),
``optA.*`` (IDATT stage), ``optB.*`` (blending stage). Metadata: the IDATT and StyleGAN configs (JSON), the step,
the stage lengths, the optimisers' groups and the train config. Reading goes through
:func:`vidswap.swap.stylegan.idatt_core.read_idatt` (every failure a ModelError, exit 4); the safetensors and
optimiser plumbing is FaceDancer's (:mod:`vidswap.train.facedancer.checkpoint`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vidswap.swap.stylegan.idatt import IDATT, IDATTConfig
from vidswap.swap.stylegan.idatt_core import TRAIN_FORMAT, load_idatt_weights, read_idatt
from vidswap.swap.stylegan.recorded import recorded_configs, require_architecture
from vidswap.train.facedancer.checkpoint import atomic_save, load_optimizer, optimizer_tensors

__all__ = ["OPTIMISERS", "save_idatt_state", "load_idatt_state"]

OPTIMISERS = ("optE", "optA", "optB")  # encoder, idatt, blend stage


def save_idatt_state(path: str | Path, model: IDATT, opts: dict[str, torch.optim.Optimizer], step: int,
                     encoder_steps: int, idatt_steps: int, extra: dict[str, str] | None = None) -> Path:
    """Write everything a resume (and the swap core) needs; ``opts`` keyed by :data:`OPTIMISERS`."""
    tensors = {f"I.{k}": v.float() for k, v in model.state_dict().items() if not k.startswith("generator.")}
    tensors.update({f"S.{k}": v.float() for k, v in model.generator.state_dict().items()})
    meta = {"format": TRAIN_FORMAT, "version": "1", "step": str(step), "encoder_steps": str(encoder_steps),
            "idatt_steps": str(idatt_steps), "config": model.cfg.to_json(),
            "stylegan_config": json.dumps(model.generator.cfg.to_dict())}
    for name in OPTIMISERS:
        t, groups = optimizer_tensors(name, opts[name])
        tensors.update(t)
        meta[name] = groups
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    return atomic_save(tensors, meta, Path(path))


def load_idatt_state(path: str | Path, model: IDATT, opts: dict[str, torch.optim.Optimizer]) -> int:
    """Restore a training state into ``model`` and the optimisers; returns its step. ModelError (exit 4) when
    unreadable, not IDATT, or of another architecture / generator than ``model``."""
    path = Path(path)
    tensors, meta = read_idatt(path)
    cfg, gcfg = recorded_configs(meta, path, "IDATT", IDATTConfig)
    require_architecture(cfg, gcfg, model, path)
    load_idatt_weights(model, tensors, path)
    for name in OPTIMISERS:
        load_optimizer(opts[name], tensors, name, meta[name])
    return int(meta["step"])
