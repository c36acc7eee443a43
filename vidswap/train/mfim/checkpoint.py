"""MFIM training checkpoints (``format = vidswap.mfim.train``, safetensors, written atomically).

Tensors: the encoder ``E.*`` (M2C / M2M heads and the style-map gains), the frozen generator ``S.*`` and its mean
styles ``s_avg`` (so the swap core needs this one file), the discriminator ``D.*`` and both Adam states
``optE.*`` / ``optD.*``. Metadata: the MFIM and StyleGAN configs (JSON), the discriminator widths, the step, the
optimisers' groups and the train config. Reading goes through :func:`vidswap.swap.stylegan.mfim_core.read_mfim`
(every failure a ModelError, exit 4); the safetensors and optimiser plumbing is FaceDancer's
(:mod:`vidswap.train.facedancer.checkpoint`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from vidswap.errors import ModelError
from vidswap.swap.stylegan.mfim import MFIM, MFIMConfig
from vidswap.swap.stylegan.mfim_core import TRAIN_FORMAT, read_mfim
from vidswap.swap.stylegan.recorded import load_prefixed, recorded_configs, require_architecture
from vidswap.train.facedancer.checkpoint import atomic_save, load_optimizer, optimizer_tensors

__all__ = ["save_mfim_state", "load_mfim_state"]


def save_mfim_state(path: str | Path, model: MFIM, disc: nn.Module, opt_e: torch.optim.Optimizer,
                    opt_d: torch.optim.Optimizer, step: int, extra: dict[str, str] | None = None) -> Path:
    """Write everything a resume (and the swap core) needs."""
    tensors = {f"E.{k}": v.float() for k, v in model.encoder.state_dict().items()}
    tensors.update({f"S.{k}": v.float() for k, v in model.generator.state_dict().items()})
    tensors.update({f"D.{k}": v.float() for k, v in disc.state_dict().items()})
    tensors["s_avg"] = model.s_avg.float()
    te, groups_e = optimizer_tensors("optE", opt_e)
    td, groups_d = optimizer_tensors("optD", opt_d)
    tensors.update(te)
    tensors.update(td)
    meta = {"format": TRAIN_FORMAT, "version": "1", "step": str(step), "config": model.cfg.to_json(),
            "stylegan_config": json.dumps(model.generator.cfg.to_dict()), "optE": groups_e, "optD": groups_d,
            **{k: str(v) for k, v in (extra or {}).items()}}
    return atomic_save(tensors, meta, Path(path))


def load_mfim_state(path: str | Path, model: MFIM, disc: nn.Module, opt_e: torch.optim.Optimizer,
                    opt_d: torch.optim.Optimizer) -> int:
    """Restore a training state into ``model``, ``disc`` and the optimisers; returns its step. ModelError (exit 4)
    when unreadable, not MFIM, or of another architecture / generator than ``model``."""
    path = Path(path)
    tensors, meta = read_mfim(path)
    cfg, gcfg = recorded_configs(meta, path, "MFIM", MFIMConfig)
    require_architecture(cfg, gcfg, model, path)
    for part, prefix in ((model.encoder, "E"), (model.generator, "S"), (disc, "D")):
        load_prefixed(part, tensors, prefix, path, "MFIM")
    model.s_avg.copy_(tensors["s_avg"])
    try:
        load_optimizer(opt_e, tensors, "optE", meta["optE"])
        load_optimizer(opt_d, tensors, "optD", meta["optD"])
    except (KeyError, ValueError) as exc:
        raise ModelError(f"checkpoint {path} has unusable optimiser states ({exc})") from None
    return int(meta["step"])
