"""``vidswap train`` for MegaFS: the encoder stage, then the FTM stage, on FaceDancer's DDP machinery.

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
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from vidswap.errors import VidswapError
from vidswap.swap.stylegan.importer import load_generator
from vidswap.swap.stylegan.megafs import MegaFS
from vidswap.train.facedancer.checkpoint import identity_meta
from vidswap.train.facedancer.data import PairSampler, augment, holdout_split
from vidswap.train.facedancer.distributed import DistInfo, all_reduce_mean, any_flag, init_distributed, shutdown
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.perceptual import load_vgg16
from vidswap.train.facedancer.trainer import Preempted, TrainResult, tensorboard_writer, image_grid
from vidswap.train.megafs.checkpoint import load_megafs_state, save_megafs_state
from vidswap.train.megafs.config import MegaFSTrainConfig
from vidswap.train.megafs.data import FFHQFaces, prepare_ffhq_faces
from vidswap.train.megafs.step import (ENCODER_LOSSES, FTM_LOSSES, EncoderPass, FTMPass, StageModels, encoder_step,
                                       ftm_step)
from vidswap.train.run_support import record_step, save_schedule

__all__ = ["MegaFSTrainer", "run_megafs_training"]


class MegaFSTrainer:
    """The run's state on one process (see the module doc)."""

    def __init__(self, cfg: MegaFSTrainConfig, info: DistInfo, log: Callable[[str], None] = print,
                 identity: IdentityNet | None = None, faces: FFHQFaces | None = None):
        self.cfg, self.info, self.log = cfg, info, log
        self.out = Path(cfg.run.out)
        self.ckpt_dir = self.out / "checkpoints"
        gen = load_generator(cfg.generator.checkpoint)
        self.data = faces if faces is not None else self._faces(gen.cfg.resolution)
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
        self.step = self._resume()
        self.sampler = PairSampler(len(self.train_rows), cfg.run.batch_size * info.world, cfg.data.same_rate,
                                   cfg.data.augment, cfg.run.seed)
        self._stage: tuple[str, StageModels] | None = None
        self.stop_requested = False

    def _faces(self, size: int) -> FFHQFaces:
        d = self.cfg.data
        cache = Path(d.cache) if d.cache else self.out / "data_cache"

        def prep():
            return prepare_ffhq_faces(d.root, size, cache, d.min_face, d.max_images, log=self.log)

        faces = prep() if self.info.rank == 0 else None
        if self.info.enabled:
            torch.distributed.barrier()
        return faces if faces is not None else prep()

    def _resume(self) -> int:
        r = self.cfg.run.resume
        path = self.ckpt_dir / "last.safetensors" if r == "auto" else Path(r)
        if r == "never" or (r == "auto" and not path.is_file()):
            return 0
        step = load_megafs_state(path, self.model, self.opt_e, self.opt_f)
        if self.info.rank == 0:
            self.log(f"resumed from {path} at step {step}")
        return step

    def save(self) -> Path | None:
        """Rank 0 writes last.safetensors and a step file (keeping ``run.keep``); every rank waits for it."""
        path = None
        if self.info.rank == 0:
            idc = self.cfg.identity
            extra = {"train_config": json.dumps(asdict(self.cfg), default=str),
                     **identity_meta(idc.onnx, idc.input_mean, idc.input_std)}
            path = save_megafs_state(self.ckpt_dir / "last.safetensors", self.model, self.opt_e, self.opt_f,
                                     self.step, self.cfg.encoder_steps, extra)
            if self.cfg.run.keep > 0:
                (self.ckpt_dir / f"step_{self.step:08d}.safetensors").write_bytes(path.read_bytes())
                for old in sorted(self.ckpt_dir.glob("step_*.safetensors"))[:-self.cfg.run.keep]:
                    old.unlink()
        if self.info.enabled:
            torch.distributed.barrier()
        return path

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
            stop, save = any_flag([self.stop_requested, save_due(self.step)], self.info)
            if on_step is not None and (self.step % self.cfg.run.log_every == 0 or self.step == until or stop):
                keys = ENCODER_LOSSES if name == "encoder" else FTM_LOSSES
                vec = all_reduce_mean(torch.stack([losses[k].float() for k in keys]), self.info)
                on_step(self.step, name, dict(zip(keys, vec.tolist())), dt)
            if images is not None and self.cfg.run.image_every and self.step % self.cfg.run.image_every == 0:
                images(self.step, name, xs, xt, out)
            if save or stop:
                self.save()
            if stop:
                return False
        return True


def run_megafs_training(cfg: MegaFSTrainConfig, log: Callable[[str], None] = print, progress: bool = True,
                        identity: IdentityNet | None = None) -> TrainResult:
    """Train as configured (see the module doc). Raises :class:`Preempted` after a SIGTERM checkpoint."""
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    info = init_distributed(cfg.run.device, cfg.run.dist_timeout_s)
    try:
        return _train(cfg, info, log, progress, identity)
    finally:
        shutdown(info)


def _train(cfg: MegaFSTrainConfig, info: DistInfo, log, progress: bool, identity) -> TrainResult:
    rank0 = info.rank == 0
    trainer = MegaFSTrainer(cfg, info, log if rank0 else (lambda _m: None), identity=identity)
    previous = signal.signal(signal.SIGTERM, lambda *_: setattr(trainer, "stop_requested", True))
    out = trainer.out
    out.mkdir(parents=True, exist_ok=True)
    writer = tensorboard_writer(out) if rank0 else None
    metrics = (out / "metrics.jsonl").open("a") if rank0 else None
    bar = None
    if rank0 and progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.run.steps, initial=trainer.step, desc="train megafs", unit="step", dynamic_ncols=True)
    step_times: list[float] = []
    last: dict[str, float] = {}

    def on_step(step: int, stage: str, losses: dict[str, float], dt: float) -> None:
        step_times.append(dt)
        last.clear()
        last.update(losses)
        if bar is not None:
            bar.update(step - bar.n)
            bar.set_postfix(stage=stage, total=f"{losses['total']:.3f}")
        if not rank0:
            return
        record_step(writer, metrics, step, losses, cfg.optim.lr_at(step - 1), dt, prefix=f"loss/{stage}",
                    extra={"stage": stage})

    def images(step: int, stage: str, xs, xt, y) -> None:
        if rank0:
            writer.add_image(f"{stage}: source|target|output", image_grid(xs, xt, y), step)

    save_due = save_schedule(cfg.run.save_every_steps, cfg.run.save_every_minutes)

    try:
        finished = trainer.run_steps(cfg.run.steps, on_step, images, save_due)
        if finished:
            trainer.save()
    finally:
        signal.signal(signal.SIGTERM, previous)
        for closer in (bar, writer, metrics):
            if closer is not None:
                closer.close()
    times = np.array(step_times[1:] or step_times or [float("nan")])
    summary = {"step": trainer.step, "processes": info.world, "device": str(info.device),
               "batch_per_process": cfg.run.batch_size, "encoder_steps": cfg.encoder_steps,
               "step_s_median": float(np.median(times)), "step_s_mean": float(times.mean()), "last_losses": last,
               "faces": len(trainer.data.faces), "train_faces": int(len(trainer.train_rows))}
    last_ckpt = trainer.ckpt_dir / "last.safetensors"
    if rank0:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        from vidswap.train.megafs.plot import plot_megafs_run

        plot_megafs_run(out)
    if not finished:
        raise Preempted(f"stopped by SIGTERM after step {trainer.step}; checkpoint {last_ckpt} written; run the "
                        f"same command again to resume")
    return TrainResult(step=trainer.step, checkpoint=str(last_ckpt), summary=summary)
