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

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from vidswap.errors import VidswapError
from vidswap.swap.stylegan.importer import load_generator
from vidswap.swap.stylegan.megafs import MegaFS
from vidswap.train.facedancer.checkpoint import identity_meta
from vidswap.train.facedancer.data import PairSampler, augment, holdout_split
from vidswap.train.facedancer.distributed import DistInfo
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.perceptual import load_vgg16
from vidswap.train.megafs.checkpoint import load_megafs_state, save_megafs_state
from vidswap.train.megafs.config import MegaFSTrainConfig
from vidswap.train.megafs.data import FFHQFaces, ffhq_faces_for_run
from vidswap.train.megafs.step import (ENCODER_LOSSES, FTM_LOSSES, EncoderPass, FTMPass, StageModels, encoder_step,
                                       ftm_step)
from vidswap.train.loop import RunState, TrainerPlugin, TrainResult, run_method

__all__ = ["MEGAFS", "MegaFSTrainer", "run_megafs_training"]


class MegaFSTrainer(RunState):
    """The run's state on one process (see the module doc)."""

    def __init__(self, cfg: MegaFSTrainConfig, info: DistInfo, log: Callable[[str], None] = print,
                 identity: IdentityNet | None = None, faces: FFHQFaces | None = None):
        self.cfg, self.info, self.log = cfg, info, log
        self.out = Path(cfg.run.out)
        self.ckpt_dir = self.out / "checkpoints"
        gen = load_generator(cfg.generator.checkpoint)
        self.data = faces if faces is not None else ffhq_faces_for_run(
            cfg.data, gen.cfg.resolution, self.out, info, self.log)
        self.train_rows, _ = holdout_split(self.data.faces, cfg.data.holdout)
        if len(self.train_rows) == 0:
            raise VidswapError("no training faces left after the hold-out split (data.holdout)")
        idc = cfg.identity
        self.identity = (identity or IdentityNet.load(idc.onnx, idc.input_mean, idc.input_std)).to(info.device)
        pc = cfg.perceptual
        self.vgg = load_vgg16(pc.weights).to(info.device) if pc.net == "vgg16" else None
        torch.manual_seed(cfg.run.seed)  # identical initial weights on every rank
        self.model = MegaFS(cfg.model, gen).to(info.device)
        o = cfg.optim
        self.opt_e = torch.optim.Adam(self.model.encoder.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
        self.opt_f = torch.optim.Adam(self.model.ftm.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
        self.step = self.resume_with(lambda path: load_megafs_state(path, self.model, self.opt_e, self.opt_f))
        self.sampler = PairSampler(len(self.train_rows), cfg.run.batch_size * info.world, cfg.data.same_rate,
                                   cfg.data.augment, cfg.run.seed)
        self._stage: tuple[str, StageModels] | None = None
        self.stop_requested = False

    def write_checkpoint(self, path: Path) -> Path:
        idc = self.cfg.identity
        extra = {"train_config": json.dumps(asdict(self.cfg), default=str),
                 **identity_meta(idc.onnx, idc.input_mean, idc.input_std)}
        return save_megafs_state(path, self.model, self.opt_e, self.opt_f, self.step, self.cfg.encoder_steps, extra)

    def lr_at(self, step: int) -> float:
        return self.cfg.optim.lr_at(step)

    def summary_extras(self) -> dict:
        return {"encoder_steps": self.cfg.encoder_steps, "faces": len(self.data.faces),
                "train_faces": int(len(self.train_rows))}

    def stage(self, step: int) -> tuple[str, StageModels]:
        """("encoder" | "ftm", the stage's models) of ``step``; the pass is built (and DDP-wrapped) once."""
        name = "encoder" if step < self.cfg.encoder_steps else "ftm"
        if self._stage is None or self._stage[0] != name:
            self.model.encoder.requires_grad_(name == "encoder")
            self.model.ftm.requires_grad_(name == "ftm")
            step_pass: torch.nn.Module = (EncoderPass if name == "encoder" else FTMPass)(self.model)
            if self.info.enabled:
                dev = self.info.device
                step_pass = DDP(step_pass, device_ids=[dev.index] if dev.type == "cuda" else None)
            opt = self.opt_e if name == "encoder" else self.opt_f
            self._stage = (name, StageModels(step_pass, self.model, self.identity, opt, self.vgg))
        return self._stage

    def local_batch(self, step: int):
        """(source, target, source kps, target kps) of this rank at ``step`` (augmented, on the device)."""
        pb = self.sampler(step).slice(self.info.rank, self.info.world)
        t_rows, s_rows = self.train_rows[pb.target.numpy()], self.train_rows[pb.source.numpy()]
        dev, d = self.info.device, self.data
        xt = augment(d.faces.tensor(t_rows), pb.aug_t).to(dev)
        xs = augment(d.faces.tensor(s_rows), pb.aug_s).to(dev)
        return xs, xt, torch.from_numpy(d.kps[s_rows]).to(dev), torch.from_numpy(d.kps[t_rows]).to(dev)

    def run_steps(self, until: int, on_step=None, images=None, save_due=lambda step: False) -> bool:
        """Train up to step ``until``; False when stopped early by SIGTERM."""
        while self.step < until:
            name, models = self.stage(self.step)
            for group in models.opt.param_groups:
                group["lr"] = self.cfg.optim.lr_at(self.step)
            t0 = time.perf_counter()
            xs, xt, ks, kt = self.local_batch(self.step)
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
