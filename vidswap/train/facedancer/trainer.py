"""``vidswap train``: the FaceDancer training loop under torch DDP.

Launch: ``vidswap train --config train.yaml`` (one process) or ``torchrun --nproc-per-node N -m vidswap.cli train
--config train.yaml`` (N processes; :mod:`.distributed` joins the group torchrun describes). The ranks share the
preparation of the face cache's missing shards (:mod:`.facecache`), then each reads faces lazily. Each step: the
global batch of step k (:class:`~.data.PairSampler`), this rank's slice, one G and one D update
(:func:`~.step.train_step`), learning rate ``lr · 0.97^(k // 100K)``.

Checkpoints (:mod:`.checkpoint`, rank 0 writes): ``<out>/checkpoints/last.safetensors`` and ``step_XXXXXXXX``
files every ``save_every_steps`` steps or ``save_every_minutes`` minutes, and at the end. SIGTERM (pre-emption)
makes every rank stop after its current step; rank 0 writes ``last.safetensors`` and the command exits 75
(retryable) saying so; running the same command again resumes (``run.resume: auto``) bit for bit.

Logging on rank 0: TensorBoard (``<out>/tensorboard``: every loss, lr, step time; image grids source | target |
swap), ``<out>/metrics.jsonl`` (one JSON line per logged step and per evaluation), tqdm progress, and
``<out>/summary.json`` at the end (step-time statistics, last losses, evaluations).

The run around the steps (process group, SIGTERM, logging, save schedule, summary, plot) is the shared driver's,
:mod:`vidswap.train.loop`; this module is FaceDancer's plug-in (:data:`FACEDANCER`, :class:`Trainer`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from vidswap.errors import VidswapError
from vidswap.train.facedancer import checkpoint as ckpt
from vidswap.train.facedancer.config import TrainConfig
from vidswap.train.facedancer.data import FaceSet, PairSampler, augment, holdout_split, local_rows
from vidswap.train.facedancer.distributed import DistInfo, wrap_ddp
from vidswap.train.facedancer.evaluate import Judges, evaluate_heldout, heldout_pairs, stored_heldout_gallery
from vidswap.train.facedancer.facecache import load_face_cache, prepare_shards, write_index
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.model import Discriminator, FaceDancerGenerator
from vidswap.train.facedancer.perceptual import load_vgg16
from vidswap.train.facedancer.step import LOSS_NAMES, StepModels, SwapPass, train_step
from vidswap.train.loop import (Preempted, RunLog, RunState, TrainerPlugin, TrainResult, image_grid, run_method,
                                tensorboard_writer)

__all__ = ["FACEDANCER", "Preempted", "TrainResult", "Trainer", "run_training", "image_grid", "tensorboard_writer"]


class Trainer(RunState):
    """The run's state on one process (see the module doc)."""

    def __init__(self, cfg: TrainConfig, info: DistInfo, log: Callable[[str], None] = print,
                 identity: IdentityNet | None = None, faces: FaceSet | None = None):
        self.cfg, self.info, self.log = cfg, info, log
        self.out = Path(cfg.run.out)
        self.ckpt_dir = self.out / "checkpoints"
        dev = info.device
        self.faces = faces if faces is not None else self._faces()
        self.train_rows, self.held_rows = holdout_split(self.faces, cfg.data.holdout)
        if len(self.train_rows) == 0:
            raise VidswapError("no training faces left after the hold-out split (data.holdout)")
        idc = cfg.identity
        self.identity = (identity or IdentityNet.load(idc.onnx, idc.input_mean, idc.input_std)).to(dev)
        model_cfg = cfg.model
        if model_cfg.id_dim != self.identity.dim:
            from vidswap.errors import ConfigError

            raise ConfigError(f"model.id_dim is {model_cfg.id_dim} but the identity encoder gives "
                              f"{self.identity.dim}-d vectors; set model.id_dim: {self.identity.dim}")
        torch.manual_seed(cfg.run.seed)  # identical initial weights on every rank
        self.generator = FaceDancerGenerator(model_cfg).to(dev)
        self.disc = Discriminator(model_cfg).to(dev)
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
        self.step = self.resume_with(lambda path: ckpt.load_training_state(
            path, self.generator, self.disc, self.opt_g, self.opt_d, self.cfg.model))
        swap_pass, disc = wrap_ddp(SwapPass(self.generator), info), wrap_ddp(self.disc, info)
        pc = cfg.perceptual
        vgg = load_vgg16(pc.weights).to(dev) if pc.net == "vgg16" else None
        self.models = StepModels(swap_pass, disc, self.disc, self.identity, self.opt_g, self.opt_d, vgg)
        global_batch = cfg.run.batch_size * info.world
        self.sampler = PairSampler(len(self.train_rows), global_batch, cfg.data.same_rate, cfg.data.augment,
                                   cfg.run.seed)
        self.stop_requested = False

    # -- setup ----------------------------------------------------------------------------------------------
    def _faces(self) -> FaceSet:
        """Every rank prepares its share of the cache's missing shards (shard j on rank j % world), then all
        load it (lazily: each rank reads only the faces of its batch slices)."""
        d = self.cfg.data
        cache = Path(d.cache) if d.cache else self.out / "data_cache"
        report = prepare_shards(d.root, self.cfg.model.size, cache, d.min_face, max_images=d.max_images,
                                shard_images=d.shard_images, part=self.info.rank, parts=self.info.world,
                                log=self.log)
        if self.info.enabled:
            torch.distributed.barrier()
        write_index(report.folder, Path(d.root))  # every shard is committed now; idempotent
        faces = load_face_cache(report.folder)
        if report.done:
            self.log(f"face cache {report.folder}: {len(faces)} faces of {len(faces.names)} identities")
        return faces

    # -- checkpoints ----------------------------------------------------------------------------------------
    def write_checkpoint(self, path: Path) -> Path:
        extra = {"train_config": json.dumps(asdict(self.cfg), default=str),
                 **ckpt.identity_meta(self.cfg.identity.onnx, self.cfg.identity.input_mean,
                                      self.cfg.identity.input_std)}
        return ckpt.save_training_state(path, self.generator, self.disc, self.opt_g, self.opt_d, self.step,
                                        self.cfg.model, extra)

    # -- the loop -------------------------------------------------------------------------------------------
    def local_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target, source, same, source rows) of this rank at ``step`` (augmented, on the device)."""
        t_rows, s_rows, pb = local_rows(self.sampler, self.train_rows, step, self.info.rank, self.info.world)
        xt = augment(self.faces.tensor(t_rows), pb.aug_t).to(self.info.device)
        xs = augment(self.faces.tensor(s_rows), pb.aug_s).to(self.info.device)
        return xt, xs, pb.same, torch.as_tensor(s_rows)

    def lr_at(self, step: int) -> float:
        return self.cfg.optim.lr_at(step)

    def run_steps(self, until: int, on_step=None, images=None, save_due: Callable[[int], bool] = lambda step: False
                  ) -> bool:
        """Train up to step ``until``; returns False when stopped early by a stop request (SIGTERM)."""
        amp = self.cfg.run.amp
        while self.step < until:
            for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
                group["lr"] = self.cfg.optim.lr_at(self.step)
            t0 = time.perf_counter()
            xt, xs, same, _ = self.local_batch(self.step)
            losses, swap = train_step(self.models, xt, xs, same, self.cfg.loss, amp)
            if self.info.device.type == "cuda":
                torch.cuda.synchronize(self.info.device)
            dt = time.perf_counter() - t0
            self.step += 1
            if self.finish_step(until, save_due, None, losses, LOSS_NAMES, dt, on_step, images,
                                lambda: ("source|target|swap", xs, xt, swap)):
                return False
        return True

    # -- the driver's hooks: held-out evaluation and the summary ---------------------------------------------
    def begin(self, sink: RunLog) -> None:
        cfg = self.cfg
        self.eval_every = cfg.run.eval_every
        self.eval_pairs = heldout_pairs(self.faces.identity, self.held_rows, cfg.run.eval_pairs, cfg.run.seed)
        self.judges = Judges() if sink.rank0 and len(self.eval_pairs[0]) else None
        self.evals: list[dict] = []
        self.gallery: list = []  # the held-out retrieval gallery, built at the first evaluation

    def evaluate(self, step: int, sink: RunLog) -> None:
        if not sink.rank0 or not len(self.eval_pairs[0]):
            return
        out, dev = self.out, self.info.device
        if self.cfg.run.eval_gallery == "heldout" and not self.gallery:
            t0 = time.perf_counter()
            g, reused = stored_heldout_gallery(out / "eval_gallery.npz", self.faces, self.held_rows, self.judges,
                                               self.identity, device=dev)
            self.gallery.append(g)
            sink.log(f"retrieval gallery: {len(g)} held-out identities ({len(self.held_rows)} faces, {g.judge}) "
                     f"{'read from' if reused else 'embedded into'} {out / 'eval_gallery.npz'} in "
                     f"{time.perf_counter() - t0:.1f} s")
        res = evaluate_heldout(self.generator, self.identity, self.faces, *self.eval_pairs, self.judges,
                               device=dev, gallery=self.gallery[0] if self.gallery else None)
        res["step"] = step
        self.evals.append(res)
        for k, v in res.items():
            if isinstance(v, float) and k not in ("pairs", "step"):
                sink.scalar(f"eval/{k}", v, step)
        sink.json_line({"eval": res})

    def summary_extras(self) -> dict:
        return {"evals": self.evals, "faces": len(self.faces), "train_faces": int(len(self.train_rows)),
                "heldout_faces": int(len(self.held_rows))}


def _plot(out: Path):
    from vidswap.train.facedancer.plot import plot_run

    return plot_run(out)


#: FaceDancer on the shared run driver (:mod:`vidswap.train.loop`).
FACEDANCER = TrainerPlugin(label="train", build=Trainer, plot=_plot,
                           postfix=lambda stage, losses: {"g": f"{losses.get('g_total', 0):.3f}",
                                                          "id": f"{losses.get('identity', 0):.3f}"})


def run_training(cfg: TrainConfig, log: Callable[[str], None] = print, progress: bool = True,
                 identity: IdentityNet | None = None) -> TrainResult:
    """Train as configured (see the module doc). Raises :class:`Preempted` after a SIGTERM checkpoint."""
    return run_method(FACEDANCER, cfg, log, progress, identity=identity)
