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

from vidswap.errors import EXIT_RESOURCE, VidswapError
from vidswap.train.facedancer import checkpoint as ckpt
from vidswap.train.facedancer.config import TrainConfig
from vidswap.train.facedancer.data import FaceSet, PairSampler, augment, holdout_split, local_rows
from vidswap.train.facedancer.distributed import DistInfo, all_reduce_mean, any_flag, init_distributed, shutdown
from vidswap.train.facedancer.evaluate import Judges, evaluate_heldout, heldout_pairs, stored_heldout_gallery
from vidswap.train.facedancer.facecache import load_face_cache, prepare_shards, write_index
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.model import Discriminator, FaceDancerGenerator
from vidswap.train.facedancer.perceptual import load_vgg16
from vidswap.train.facedancer.step import LOSS_NAMES, StepModels, SwapPass, train_step
from vidswap.train.run_support import record_step, save_schedule

__all__ = ["Preempted", "TrainResult", "Trainer", "run_training", "image_grid"]


class Preempted(VidswapError):
    """SIGTERM: the run stopped after writing its last checkpoint (exit 75: retry / resume)."""

    exit_code = EXIT_RESOURCE


class TrainResult(dict):
    """What :func:`run_training` returns: step, checkpoint, summary (a dict)."""


def image_grid(source: torch.Tensor, target: torch.Tensor, swap: torch.Tensor, rows: int = 4) -> torch.Tensor:
    """(3, R·S, 3·S) grid: per row source | target | swap (first ``rows`` samples), values in [0, 1]."""
    n = min(rows, source.shape[0])
    row = torch.cat([source[:n], target[:n], swap[:n]], dim=3)  # (n, 3, S, 3S)
    return torch.cat(list(row), dim=1).clamp(0, 1).cpu()


class Trainer:
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
        self.step = self._resume()
        swap_pass: torch.nn.Module = SwapPass(self.generator)
        disc: torch.nn.Module = self.disc
        if info.enabled:
            ids = [dev.index] if dev.type == "cuda" else None
            swap_pass = DDP(swap_pass, device_ids=ids)
            disc = DDP(disc, device_ids=ids)
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

    def _resume(self) -> int:
        r = self.cfg.run.resume
        if r == "never":
            return 0
        path = self.ckpt_dir / "last.safetensors" if r == "auto" else Path(r)
        if r == "auto" and not path.is_file():
            return 0
        step = ckpt.load_training_state(path, self.generator, self.disc, self.opt_g, self.opt_d, self.cfg.model)
        if self.info.rank == 0:
            self.log(f"resumed from {path} at step {step}")
        return step

    # -- checkpoints ----------------------------------------------------------------------------------------
    def save(self) -> Path | None:
        """Rank 0 writes last.safetensors and a step file (keeping ``run.keep``); every rank waits for it."""
        path = None
        if self.info.rank == 0:
            extra = {"train_config": json.dumps(asdict(self.cfg), default=str),
                     **ckpt.identity_meta(self.cfg.identity.onnx, self.cfg.identity.input_mean,
                                          self.cfg.identity.input_std)}
            path = ckpt.save_training_state(self.ckpt_dir / "last.safetensors", self.generator, self.disc,
                                            self.opt_g, self.opt_d, self.step, self.cfg.model, extra)
            if self.cfg.run.keep > 0:
                step_file = self.ckpt_dir / f"step_{self.step:08d}.safetensors"
                step_file.write_bytes(path.read_bytes())
                for old in sorted(self.ckpt_dir.glob("step_*.safetensors"))[:-self.cfg.run.keep]:
                    old.unlink()
        if self.info.enabled:
            torch.distributed.barrier()
        return path

    # -- the loop -------------------------------------------------------------------------------------------
    def local_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target, source, same, source rows) of this rank at ``step`` (augmented, on the device)."""
        t_rows, s_rows, pb = local_rows(self.sampler, self.train_rows, step, self.info.rank, self.info.world)
        xt = augment(self.faces.tensor(t_rows), pb.aug_t).to(self.info.device)
        xs = augment(self.faces.tensor(s_rows), pb.aug_s).to(self.info.device)
        return xt, xs, pb.same, torch.as_tensor(s_rows)

    def run_steps(self, until: int, on_step: Callable[[int, dict[str, float], float], None] | None = None,
                  images: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
                  save_due: Callable[[int], bool] = lambda step: False) -> bool:
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
            stop, save = any_flag([self.stop_requested, save_due(self.step)], self.info)
            if on_step is not None and (self.step % self.cfg.run.log_every == 0 or self.step == until or stop):
                vec = all_reduce_mean(torch.stack([losses[k].float() for k in LOSS_NAMES]), self.info)
                on_step(self.step, dict(zip(LOSS_NAMES, vec.tolist())), dt)
            if images is not None and self.cfg.run.image_every and self.step % self.cfg.run.image_every == 0:
                images(self.step, xs, xt, swap)
            if save or stop:
                self.save()
            if stop:
                return False
        return True


def tensorboard_writer(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # tensorboard is a declared dependency; say so if it is missing
        raise VidswapError(f"TensorBoard logging needs the tensorboard package ({exc}); pip install tensorboard") \
            from None
    return SummaryWriter(str(out / "tensorboard"))


def run_training(cfg: TrainConfig, log: Callable[[str], None] = print, progress: bool = True,
                 identity: IdentityNet | None = None) -> TrainResult:
    """Train as configured (see the module doc). Raises :class:`Preempted` after a SIGTERM checkpoint."""
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    info = init_distributed(cfg.run.device, cfg.run.dist_timeout_s)
    try:
        return _train(cfg, info, log, progress, identity)
    finally:
        shutdown(info)


def _train(cfg: TrainConfig, info: DistInfo, log, progress: bool, identity) -> TrainResult:
    rank0 = info.rank == 0
    trainer = Trainer(cfg, info, log if rank0 else (lambda _m: None), identity=identity)
    previous = signal.signal(signal.SIGTERM, lambda *_: setattr(trainer, "stop_requested", True))
    out = trainer.out
    out.mkdir(parents=True, exist_ok=True)
    writer = tensorboard_writer(out) if rank0 else None
    metrics = (out / "metrics.jsonl").open("a") if rank0 else None
    bar = None
    if rank0 and progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.run.steps, initial=trainer.step, desc="train", unit="step", dynamic_ncols=True)
    eval_pairs = heldout_pairs(trainer.faces.identity, trainer.held_rows, cfg.run.eval_pairs, cfg.run.seed)
    judges = Judges() if rank0 and len(eval_pairs[0]) else None
    step_times: list[float] = []
    last: dict[str, float] = {}
    evals: list[dict] = []
    gallery: list = []  # the held-out retrieval gallery, built at the first evaluation

    def on_step(step: int, losses: dict[str, float], dt: float) -> None:
        step_times.append(dt)
        last.update(losses)
        if not rank0:
            return
        record_step(writer, metrics, step, losses, cfg.optim.lr_at(step - 1), dt)

    def images(step: int, xs, xt, swap) -> None:
        if rank0:
            writer.add_image("source|target|swap", image_grid(xs, xt, swap), step)

    save_due = save_schedule(cfg.run.save_every_steps, cfg.run.save_every_minutes)

    def evaluate(step: int) -> None:
        if not rank0 or not len(eval_pairs[0]):
            return
        if cfg.run.eval_gallery == "heldout" and not gallery:
            t0 = time.perf_counter()
            g, reused = stored_heldout_gallery(out / "eval_gallery.npz", trainer.faces, trainer.held_rows, judges,
                                               trainer.identity, device=info.device)
            gallery.append(g)
            log(f"retrieval gallery: {len(g)} held-out identities ({len(trainer.held_rows)} faces, {g.judge}) "
                f"{'read from' if reused else 'embedded into'} {out / 'eval_gallery.npz'} in "
                f"{time.perf_counter() - t0:.1f} s")
        res = evaluate_heldout(trainer.generator, trainer.identity, trainer.faces, *eval_pairs, judges,
                               device=info.device, gallery=gallery[0] if gallery else None)
        res["step"] = step
        evals.append(res)
        for k, v in res.items():
            if isinstance(v, float) and k not in ("pairs", "step"):
                writer.add_scalar(f"eval/{k}", v, step)
        metrics.write(json.dumps({"eval": res}) + "\n")
        metrics.flush()

    try:
        if trainer.step == 0:
            evaluate(0)
        finished = True
        every = cfg.run.eval_every or cfg.run.steps
        while trainer.step < cfg.run.steps and finished:
            until = min(cfg.run.steps, (trainer.step // every + 1) * every)
            before = trainer.step
            finished = trainer.run_steps(until, on_step, images, save_due)
            if bar is not None:
                bar.update(trainer.step - before)
                if last:
                    bar.set_postfix(g=f"{last.get('g_total', 0):.3f}", id=f"{last.get('identity', 0):.3f}")
            if finished:
                evaluate(trainer.step)
        if finished:
            trainer.save()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        if metrics is not None:
            metrics.close()
    times = np.array(step_times[1:] or step_times or [float("nan")])
    summary = {"step": trainer.step, "processes": info.world, "device": str(info.device),
               "batch_per_process": cfg.run.batch_size, "step_s_median": float(np.median(times)),
               "step_s_mean": float(times.mean()), "last_losses": last, "evals": evals,
               "faces": len(trainer.faces), "train_faces": int(len(trainer.train_rows)),
               "heldout_faces": int(len(trainer.held_rows))}
    if info.device.type == "cuda":
        summary["peak_memory_gib"] = torch.cuda.max_memory_allocated(info.device) / 2**30
    last_ckpt = trainer.ckpt_dir / "last.safetensors"
    if rank0:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        from vidswap.train.facedancer.plot import plot_run

        plot_run(out)
    if not finished:
        raise Preempted(f"stopped by SIGTERM after step {trainer.step}; checkpoint {last_ckpt} written; run the "
                        f"same command again to resume")
    return TrainResult(step=trainer.step, checkpoint=str(last_ckpt), summary=summary)
