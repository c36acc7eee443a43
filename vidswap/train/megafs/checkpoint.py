"""MegaFS training checkpoints (``format = vidswap.megafs.train``, safetensors, written atomically).

Tensors: the encoder ``E.*``, the FTM ``F.*``, the frozen generator ``S.*`` (so the swap core needs this one
file), the mean W ``w_avg``, and both Adam states ``optE.*`` / ``optF.*``. Metadata: the MegaFS and StyleGAN
configs (JSON), the step, the optimisers' groups, ``encoder_steps`` and the train config. Reading goes through
:func:`vidswap.swap.stylegan.megafs_core.read_megafs` (every failure a ModelError, exit 4); the safetensors and
optimiser plumbing is FaceDancer's (:mod:`vidswap.train.facedancer.checkpoint`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vidswap.swap.stylegan.megafs import MegaFS, MegaFSConfig
from vidswap.swap.stylegan.megafs_core import TRAIN_FORMAT, read_megafs
from vidswap.swap.stylegan.recorded import load_prefixed, recorded_configs, require_architecture
from vidswap.train.facedancer.checkpoint import atomic_save, load_optimizer, optimizer_tensors

__all__ = ["save_megafs_state", "load_megafs_state"]


def save_megafs_state(path: str | Path, model: MegaFS, opt_e: torch.optim.Optimizer, opt_f: torch.optim.Optimizer,
                      step: int, encoder_steps: int, extra: dict[str, str] | None = None) -> Path:
    """Write everything a resume (and the swap core) needs."""
    tensors = {f"E.{k}": v.float() for k, v in model.encoder.state_dict().items()}
    tensors.update({f"F.{k}": v.float() for k, v in model.ftm.state_dict().items()})
    tensors.update({f"S.{k}": v.float() for k, v in model.generator.state_dict().items()})
    tensors["w_avg"] = model.w_avg.float()
    te, groups_e = optimizer_tensors("optE", opt_e)
    tf, groups_f = optimizer_tensors("optF", opt_f)
    tensors.update(te)
    tensors.update(tf)
    meta = {"format": TRAIN_FORMAT, "version": "1", "step": str(step), "encoder_steps": str(encoder_steps),
            "config": model.cfg.to_json(), "stylegan_config": json.dumps(model.generator.cfg.to_dict()),
            "optE": groups_e, "optF": groups_f, **{k: str(v) for k, v in (extra or {}).items()}}
    return atomic_save(tensors, meta, Path(path))


def load_megafs_state(path: str | Path, model: MegaFS, opt_e: torch.optim.Optimizer,
                      opt_f: torch.optim.Optimizer) -> int:
    """Restore a training state into ``model`` and the optimisers; returns its step. ModelError (exit 4) when
    unreadable, not MegaFS, or of another architecture / generator than ``model``."""
    path = Path(path)
    tensors, meta = read_megafs(path)
    cfg, gcfg = recorded_configs(meta, path, "MegaFS", MegaFSConfig)
    require_architecture(cfg, gcfg, model, path)
    for part, prefix in ((model.encoder, "E"), (model.ftm, "F"), (model.generator, "S")):
        load_prefixed(part, tensors, prefix, path, "MegaFS")
    model.w_avg.copy_(tensors["w_avg"])
    load_optimizer(opt_e, tensors, "optE", meta["optE"])
    load_optimizer(opt_f, tensors, "optF", meta["optF"])
    return int(meta["step"])
