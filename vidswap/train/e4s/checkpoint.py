"""E4S training checkpoints (``format = vidswap.e4s.train``, safetensors, written atomically).

Tensors: the regional encoder ``E.*``, the generator ``S.*`` (fine-tuned when ``tune_generator``; the swap core
needs only this file), the mean W ``w_avg`` and the Adam state ``opt.*``. Metadata: the E4S and StyleGAN configs
(JSON), the step, the optimiser's groups and the train config. Reading goes through
:func:`vidswap.swap.stylegan.e4s_core.read_e4s` (every failure a ModelError, exit 4); the safetensors and
optimiser plumbing is FaceDancer's (:mod:`vidswap.train.facedancer.checkpoint`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vidswap.errors import ModelError
from vidswap.swap.stylegan.e4s import E4S, E4SConfig
from vidswap.swap.stylegan.e4s_core import TRAIN_FORMAT, read_e4s
from vidswap.swap.stylegan.recorded import load_prefixed, recorded_configs, require_architecture
from vidswap.train.facedancer.checkpoint import atomic_save, load_optimizer, optimizer_tensors

__all__ = ["save_e4s_state", "load_e4s_state"]


def save_e4s_state(path: str | Path, model: E4S, opt: torch.optim.Optimizer, step: int,
                   extra: dict[str, str] | None = None) -> Path:
    """Write everything a resume (and the swap core) needs."""
    tensors = {f"E.{k}": v.float() for k, v in model.encoder.state_dict().items()}
    tensors.update({f"S.{k}": v.float() for k, v in model.generator.state_dict().items()})
    tensors["w_avg"] = model.w_avg.float()
    t_opt, groups = optimizer_tensors("opt", opt)
    tensors.update(t_opt)
    meta = {"format": TRAIN_FORMAT, "version": "1", "step": str(step), "config": model.cfg.to_json(),
            "stylegan_config": json.dumps(model.generator.cfg.to_dict()), "opt": groups,
            **{k: str(v) for k, v in (extra or {}).items()}}
    return atomic_save(tensors, meta, Path(path))


def load_e4s_state(path: str | Path, model: E4S, opt: torch.optim.Optimizer) -> int:
    """Restore a training state into ``model`` and ``opt``; returns its step. ModelError (exit 4) when unreadable,
    not E4S, or of another architecture / generator than ``model``."""
    path = Path(path)
    tensors, meta = read_e4s(path)
    cfg, gcfg = recorded_configs(meta, path, "E4S", E4SConfig)
    require_architecture(cfg, gcfg, model, path)
    load_prefixed(model.encoder, tensors, "E", path, "E4S")
    load_prefixed(model.generator, tensors, "S", path, "E4S")
    model.w_avg.copy_(tensors["w_avg"])
    if "opt" not in meta:
        raise ModelError(f"checkpoint {path} has no optimiser state (not a training checkpoint)")
    load_optimizer(opt, tensors, "opt", meta["opt"])
    return int(meta["step"])
