"""``vidswap train`` for IDATT: the encoder stage, the IDATT stage, the blending stage, on the shared run driver
(:mod:`vidswap.train.loop`: DDP, SIGTERM, logging, checkpoint schedule) as the plug-in :data:`IDATT_PLUGIN`.

The StyleGAN2 generator is frozen throughout; each stage trains its parts (:data:`~.step.STAGE_PARTS`) with its
own Adam, all three kept in one checkpoint, so a resume lands in the right stage with the right optimiser. Per
step the global batch comes from FaceDancer's :class:`~vidswap.train.facedancer.data.PairSampler` (this rank
takes its slice; ``data.same_rate`` same-image pairs, the paper's 0.5), on MegaFS's FFHQ-aligned face cache
(:mod:`vidswap.train.megafs.data`), so 1 process and N processes see the same batch and a resumed run the same
batches as an uninterrupted one. The stage's pass is DDP-wrapped when the stage starts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from vidswap.swap.stylegan.idatt import IDATT
from vidswap.train.facedancer.distributed import DistInfo, wrap_ddp
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.idatt.checkpoint import load_idatt_state, save_idatt_state
from vidswap.train.idatt.config import IDATTTrainConfig
from vidswap.train.idatt.step import (STAGE_LOSSES, STAGE_PARTS, BlendPass, EncoderPass, StageModels, TransferPass,
                                      blend_step, encoder_step, idatt_step)
from vidswap.train.loop import TrainerPlugin, TrainResult, run_method
from vidswap.train.megafs.data import FFHQFaces
from vidswap.train.stylegan_state import StyleGANRunState

__all__ = ["IDATT_PLUGIN", "IDATTTrainer", "run_idatt_training", "stage_of"]

_PASSES = {"encoder": EncoderPass, "idatt": TransferPass, "blend": BlendPass}
_OPT = {"encoder": "optE", "idatt": "optA", "blend": "optB"}


def stage_of(step: int, encoder_steps: int, idatt_steps: int) -> str:
    """The stage that trains ``step`` (0-based)."""
    return "encoder" if step < encoder_steps else "idatt" if step < encoder_steps + idatt_steps else "blend"


class IDATTTrainer(StyleGANRunState):
    """The run's state on one process (see the module doc)."""

    def __init__(self, cfg: IDATTTrainConfig, info: DistInfo, log: Callable[[str], None] = print,
                 identity: IdentityNet | None = None, faces: FFHQFaces | None = None):
        gen = self.start_run(cfg, info, log, faces)
        self.load_loss_networks(identity)
        torch.manual_seed(cfg.run.seed)  # identical initial weights on every rank
        self.model = IDATT(cfg.model, gen).to(info.device)
        self.opts = {_OPT[s]: self.adam([p for part in STAGE_PARTS[s] for p in getattr(self.model, part).parameters()])
                     for s in _OPT}
        self.step = self.resume_with(lambda path: load_idatt_state(path, self.model, self.opts))
        self.sampler = self.pair_sampler()
        self._stage: tuple[str, StageModels] | None = None

    def write_checkpoint(self, path: Path) -> Path:
        return save_idatt_state(path, self.model, self.opts, self.step, self.cfg.encoder_steps,
                                self.cfg.idatt_steps, self.checkpoint_meta())

    def summary_extras(self) -> dict:
        return {"encoder_steps": self.cfg.encoder_steps, "idatt_steps": self.cfg.idatt_steps,
                **super().summary_extras()}

    def stage(self, step: int) -> tuple[str, StageModels]:
        """(stage name, the stage's models) of ``step``; the pass is built (and DDP-wrapped) once per stage."""
        name = stage_of(step, self.cfg.encoder_steps, self.cfg.idatt_steps)
        if self._stage is None or self._stage[0] != name:
            self.model.requires_grad_(False)
            for part in STAGE_PARTS[name]:
                getattr(self.model, part).requires_grad_(True)
            step_pass: torch.nn.Module = _PASSES[name](self.model)
            step_pass = wrap_ddp(step_pass, self.info)
            self._stage = (name, StageModels(step_pass, self.model, self.identity, self.opts[_OPT[name]], self.vgg))
        return self._stage

    def run_steps(self, until: int, on_step=None, images=None, save_due=lambda step: False) -> bool:
        """Train up to step ``until``; False when stopped early by SIGTERM."""
        while self.step < until:
            name, models = self.stage(self.step)
            for group in models.opt.param_groups:
                group["lr"] = self.cfg.optim.lr_at(self.step)
            t0 = time.perf_counter()
            xs, xt, ks, kt, same = self.local_pairs(self.step)
            if name == "encoder":
                losses, out = encoder_step(models, xt, kt, self.cfg.loss)
            else:
                losses, out = (idatt_step if name == "idatt" else blend_step)(models, xs, xt, ks, kt, same,
                                                                               self.cfg.loss)
            dt = time.perf_counter() - t0
            self.step += 1
            if self.finish_step(until, save_due, name, losses, STAGE_LOSSES[name], dt, on_step, images,
                                lambda: (f"{name}: source|target|output", xs, xt, out)):
                return False
        return True


def _plot(out: Path):
    from vidswap.train.idatt.plot import plot_idatt_run

    return plot_idatt_run(out)


#: IDATT on the shared run driver (:mod:`vidswap.train.loop`): three stages, per-stage loss keys and optimisers.
IDATT_PLUGIN = TrainerPlugin(label="train idatt", build=IDATTTrainer, plot=_plot,
                             postfix=lambda stage, losses: {"stage": stage, "total": f"{losses['total']:.3f}"})


def run_idatt_training(cfg: IDATTTrainConfig, log: Callable[[str], None] = print, progress: bool = True,
                       identity: IdentityNet | None = None) -> TrainResult:
    """Train as configured (see the module doc). Raises :class:`Preempted` after a SIGTERM checkpoint."""
    return run_method(IDATT_PLUGIN, cfg, log, progress, identity=identity)
