"""``vidswap train`` for MegaFS: the encoder stage, then the FTM stage, on the shared run driver
(:mod:`vidswap.train.loop`: DDP, SIGTERM, logging, checkpoint schedule) as the plug-in :data:`MEGAFS`.

Steps ``[0, encoder_steps)`` train the HieRFE encoder (reconstruction through W++), the rest the FTM with the
encoder frozen; the StyleGAN2 generator is frozen throughout. Per step the global batch of step k comes from
FaceDancer's :class:`~vidswap.train.facedancer.data.PairSampler` (this rank takes its slice), so 1 process and N
processes (torchrun, gloo / NCCL via :mod:`vidswap.train.facedancer.distributed`) see the same batch and a resumed
run the same batches as an uninterrupted one. The stage's pass is DDP-wrapped when it starts (only its own
parameters require gradients). Checkpoints (:mod:`.checkpoint`): ``<out>/checkpoints/last.safetensors`` (+ step
files) every ``save_every_steps`` / ``save_every_minutes``, at the end, and after SIGTERM (exit 75, resumable).
Logging on rank 0: TensorBoard (``loss/<stage>/<name>``, lr, step time, image grids), ``metrics.jsonl``,
``summary.json`` and ``losses.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from vidswap.swap.stylegan.megafs import MegaFS
from vidswap.train.facedancer.distributed import DistInfo, wrap_ddp
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.megafs.checkpoint import load_megafs_state, save_megafs_state
from vidswap.train.megafs.config import MegaFSTrainConfig
from vidswap.train.megafs.data import FFHQFaces
from vidswap.train.megafs.step import (ENCODER_LOSSES, FTM_LOSSES, EncoderPass, FTMPass, StageModels, encoder_step,
                                       ftm_step)
from vidswap.train.loop import TrainerPlugin, TrainResult, run_method
from vidswap.train.stylegan_state import StyleGANRunState

__all__ = ["MEGAFS", "MegaFSTrainer", "run_megafs_training"]


class MegaFSTrainer(StyleGANRunState):
    """The run's state on one process (see the module doc)."""

    def __init__(self, cfg: MegaFSTrainConfig, info: DistInfo, log: Callable[[str], None] = print,
                 identity: IdentityNet | None = None, faces: FFHQFaces | None = None):
        gen = self.start_run(cfg, info, log, faces)
        self.load_loss_networks(identity)
        torch.manual_seed(cfg.run.seed)  # identical initial weights on every rank
        self.model = MegaFS(cfg.model, gen).to(info.device)
        self.opt_e, self.opt_f = self.adam(self.model.encoder.parameters()), self.adam(self.model.ftm.parameters())
        self.step = self.resume_with(lambda path: load_megafs_state(path, self.model, self.opt_e, self.opt_f))
        self.sampler = self.pair_sampler()
        self._stage: tuple[str, StageModels] | None = None

    def write_checkpoint(self, path: Path) -> Path:
        return save_megafs_state(path, self.model, self.opt_e, self.opt_f, self.step, self.cfg.encoder_steps,
                                 self.checkpoint_meta())

    def summary_extras(self) -> dict:
        return {"encoder_steps": self.cfg.encoder_steps, **super().summary_extras()}

    def stage(self, step: int) -> tuple[str, StageModels]:
        """("encoder" | "ftm", the stage's models) of ``step``; the pass is built (and DDP-wrapped) once."""
        name = "encoder" if step < self.cfg.encoder_steps else "ftm"
        if self._stage is None or self._stage[0] != name:
            self.model.encoder.requires_grad_(name == "encoder")
            self.model.ftm.requires_grad_(name == "ftm")
            step_pass: torch.nn.Module = (EncoderPass if name == "encoder" else FTMPass)(self.model)
            step_pass = wrap_ddp(step_pass, self.info)
            opt = self.opt_e if name == "encoder" else self.opt_f
            self._stage = (name, StageModels(step_pass, self.model, self.identity, opt, self.vgg))
        return self._stage

    def run_steps(self, until: int, on_step=None, images=None, save_due=lambda step: False) -> bool:
        """Train up to step ``until``; False when stopped early by SIGTERM."""
        while self.step < until:
            name, models = self.stage(self.step)
            for group in models.opt.param_groups:
                group["lr"] = self.cfg.optim.lr_at(self.step)
            t0 = time.perf_counter()
            xs, xt, ks, kt, _ = self.local_pairs(self.step)
            if name == "encoder":
                losses, out = encoder_step(models, xt, kt, self.cfg.loss)
            else:
                losses, out = ftm_step(models, xs, xt, ks, kt, self.cfg.loss)
            dt = time.perf_counter() - t0
            self.step += 1
            keys = ENCODER_LOSSES if name == "encoder" else FTM_LOSSES
            if self.finish_step(until, save_due, name, losses, keys, dt, on_step, images,
                                lambda: (f"{name}: source|target|output", xs, xt, out)):
                return False
        return True


def _plot(out: Path):
    from vidswap.train.megafs.plot import plot_megafs_run

    return plot_megafs_run(out)


#: MegaFS on the shared run driver (:mod:`vidswap.train.loop`): two stages, per-stage loss keys and optimisers.
MEGAFS = TrainerPlugin(label="train megafs", build=MegaFSTrainer, plot=_plot,
                       postfix=lambda stage, losses: {"stage": stage, "total": f"{losses['total']:.3f}"})


def run_megafs_training(cfg: MegaFSTrainConfig, log: Callable[[str], None] = print, progress: bool = True,
                        identity: IdentityNet | None = None) -> TrainResult:
    """Train as configured (see the module doc). Raises :class:`Preempted` after a SIGTERM checkpoint."""
    return run_method(MEGAFS, cfg, log, progress, identity=identity)
