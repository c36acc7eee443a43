"""The run driver every ``vidswap train`` method plugs into (FaceDancer, MegaFS, ...).

The driver (:func:`run_method`) owns what a training run does around the optimisation itself: the process group
(one process, or torchrun's DDP group via :mod:`vidswap.train.facedancer.distributed`), SIGTERM (stop after the
current step, write ``last.safetensors``, raise :class:`Preempted`: exit 75, run the same command again to
resume), the tqdm bar, TensorBoard + ``metrics.jsonl`` (:func:`~vidswap.train.run_support.record_step`), the
checkpoint schedule (``run.save_every_steps`` / ``run.save_every_minutes``), ``summary.json`` and the method's
``losses.png``.

A method supplies a :class:`TrainerPlugin` (its progress label, the function that builds its trainer state, its
plot and its progress-bar postfix) and a trainer state deriving from :class:`RunState`, which implements
``run_steps`` (train to a step, report each logged step's losses through ``on_step(step, stage, losses, dt)``,
image grids through ``images(step, tag, source, target, output)``, save when ``save_due(step)`` or stopped) and
``write_checkpoint``. ``stage`` is None for a single-stage method (TensorBoard ``loss/<name>``, JSON lines
``{"step", "step_s", ...losses}``) or the stage's name (``loss/<stage>/<name>``, ``{"step", "stage", "step_s",
...}``). The config is a dataclass with a ``run`` section (:class:`vidswap.train.facedancer.config.RunConfig`).
See docs/training.md ("Adding a training method").
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vidswap.errors import EXIT_RESOURCE, VidswapError
from vidswap.train.facedancer.distributed import DistInfo, all_reduce_mean, any_flag, init_distributed, shutdown
from vidswap.train.run_support import record_step, save_schedule

__all__ = ["Preempted", "TrainResult", "RunLog", "RunState", "TrainerPlugin", "image_grid", "run_method",
           "tensorboard_writer"]

#: on_step(step, stage or None, {loss name: mean over processes}, step seconds)
OnStep = Callable[[int, "str | None", dict, float], None]
#: images(step, TensorBoard tag, source, target, output): (B, 3, S, S) in [0, 1]
OnImages = Callable[[int, str, torch.Tensor, torch.Tensor, torch.Tensor], None]


class Preempted(VidswapError):
    """SIGTERM: the run stopped after writing its last checkpoint (exit 75: retry / resume)."""

    exit_code = EXIT_RESOURCE


class TrainResult(dict):
    """What a run returns: step, checkpoint, summary (a dict)."""


def image_grid(source: torch.Tensor, target: torch.Tensor, swap: torch.Tensor, rows: int = 4) -> torch.Tensor:
    """(3, R·S, 3·S) grid: per row source | target | swap (first ``rows`` samples), values in [0, 1]."""
    n = min(rows, source.shape[0])
    row = torch.cat([source[:n], target[:n], swap[:n]], dim=3)  # (n, 3, S, 3S)
    return torch.cat(list(row), dim=1).clamp(0, 1).cpu()


def tensorboard_writer(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # tensorboard is a declared dependency; say so if it is missing
        raise VidswapError(f"TensorBoard logging needs the tensorboard package ({exc}); pip install tensorboard") \
            from None
    return SummaryWriter(str(out / "tensorboard"))


@dataclass
class RunLog:
    """Rank 0's sinks (``writer``: TensorBoard, ``metrics``: metrics.jsonl; None on the other ranks) and the log
    function, handed to a trainer's :meth:`RunState.begin` / :meth:`RunState.evaluate` hooks."""

    writer: Any
    metrics: Any
    log: Callable[[str], None]

    @property
    def rank0(self) -> bool:
        return self.writer is not None

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def json_line(self, record: dict) -> None:
        """One line of metrics.jsonl (flushed)."""
        if self.metrics is not None:
            self.metrics.write(json.dumps(record) + "\n")
            self.metrics.flush()


class RunState:
    """Base of a method's trainer state on one process. A subclass sets ``cfg`` (with a ``run`` section),
    ``info`` (:class:`DistInfo`), ``log`` (the rank's message sink), ``out`` / ``ckpt_dir`` (Paths), ``step``
    (usually :meth:`resume_with`) and ``stop_requested`` in its ``__init__`` and implements :meth:`run_steps`,
    :meth:`write_checkpoint` and :meth:`lr_at`; the hooks :meth:`begin`, :meth:`evaluate` (with ``eval_every``)
    and :meth:`summary_extras` are optional."""

    cfg: Any
    info: DistInfo
    out: Path
    ckpt_dir: Path
    step: int = 0
    stop_requested: bool = False
    eval_every: int = 0  # steps between evaluate() calls (0: only at the start and the end)

    # -- what a method implements ---------------------------------------------------------------------------
    def run_steps(self, until: int, on_step: OnStep | None = None, images: OnImages | None = None,
                  save_due: Callable[[int], bool] = lambda step: False) -> bool:
        """Train up to step ``until``; False when stopped early by a stop request (SIGTERM)."""
        raise NotImplementedError

    def write_checkpoint(self, path: Path) -> Path:
        """Write the full training state at ``self.step`` to ``path`` (rank 0 only); returns the path."""
        raise NotImplementedError

    def lr_at(self, step: int) -> float:
        """The learning rate logged for the step that started at ``step``."""
        raise NotImplementedError

    def begin(self, sink: RunLog) -> None:
        """Called once by the driver before the first step (e.g. build evaluation judges)."""

    def evaluate(self, step: int, sink: RunLog) -> None:
        """Called at step 0 (fresh runs), every ``eval_every`` steps and at the end (not after SIGTERM)."""

    def summary_extras(self) -> dict:
        """Method-specific keys appended to summary.json."""
        return {}

    # -- shared by every method -----------------------------------------------------------------------------
    def after_step(self, until: int, save_due: Callable[[int], bool]) -> tuple[bool, bool, bool]:
        """(stop, save, log_now) after ``self.step`` was incremented: the SIGTERM flag and the save schedule
        agreed over every process, and whether this step's losses are logged (every ``run.log_every`` steps,
        at ``until`` and when stopping)."""
        stop, save = any_flag([self.stop_requested, save_due(self.step)], self.info)
        log_now = self.step % self.cfg.run.log_every == 0 or self.step == until or stop
        return stop, save, log_now

    def finish_step(self, until: int, save_due: Callable[[int], bool], stage: str | None, losses: dict, keys,
                    dt: float, on_step: OnStep | None = None, images: OnImages | None = None,
                    picture: Callable[[], tuple] | None = None) -> bool:
        """The end of every method's step, after ``self.step`` was incremented: the losses ``keys`` averaged over
        processes to ``on_step`` when due (:meth:`after_step`), ``images(self.step, *picture())`` every
        ``run.image_every`` steps (``picture`` is only called then), and a checkpoint when the schedule or a stop
        request asks for one. True when the run must stop (SIGTERM; the checkpoint is written)."""
        stop, save, log_now = self.after_step(until, save_due)
        if on_step is not None and log_now:
            vec = all_reduce_mean(torch.stack([losses[k].detach().float() for k in keys]), self.info)
            on_step(self.step, stage, dict(zip(keys, vec.tolist())), dt)
        if images is not None and picture is not None and self.cfg.run.image_every \
                and self.step % self.cfg.run.image_every == 0:
            images(self.step, *picture())
        if save or stop:
            self.save()
        return stop

    def resume_path(self) -> Path | None:
        """The checkpoint ``run.resume`` asks to resume from: ``auto`` -> ``<ckpt_dir>/last.safetensors`` when it
        exists, a path -> that path, ``never`` (or ``auto`` with no checkpoint yet) -> None."""
        r = self.cfg.run.resume
        if r == "never":
            return None
        path = self.ckpt_dir / "last.safetensors" if r == "auto" else Path(r)
        return None if r == "auto" and not path.is_file() else path

    def resume_with(self, load: Callable[[Path], int]) -> int:
        """The step to start at: 0, or ``load(path)``'s step for :meth:`resume_path` (reported on rank 0)."""
        path = self.resume_path()
        if path is None:
            return 0
        step = load(path)
        if self.info.rank == 0:
            self.log(f"resumed from {path} at step {step}")
        return step

    def save(self) -> Path | None:
        """Rank 0 writes last.safetensors and a step file (keeping ``run.keep``); every rank waits for it."""
        path = None
        if self.info.rank == 0:
            path = self.write_checkpoint(self.ckpt_dir / "last.safetensors")
            keep = self.cfg.run.keep
            if keep > 0:
                (self.ckpt_dir / f"step_{self.step:08d}.safetensors").write_bytes(path.read_bytes())
                for old in sorted(self.ckpt_dir.glob("step_*.safetensors"))[:-keep]:
                    old.unlink()
        if self.info.enabled:
            torch.distributed.barrier()
        return path


@dataclass(frozen=True)
class TrainerPlugin:
    """A method as the driver sees it.

    Attributes:
        label: the progress bar's description ("train", "train megafs").
        build: ``build(cfg, info, log, **kwargs) -> RunState`` (``log`` is a no-op on ranks > 0).
        plot: ``plot(run_folder)`` writes ``<run>/losses.png`` from metrics.jsonl (rank 0, at the end).
        postfix: ``postfix(stage, losses) -> dict`` shown on the progress bar.
    """

    label: str
    build: Callable[..., RunState]
    plot: Callable[[Path], Any]
    postfix: Callable[[str | None, dict], dict]


def run_method(plugin: TrainerPlugin, cfg, log: Callable[[str], None] = print, progress: bool = True,
               **build_kwargs) -> TrainResult:
    """Train as configured (see the module doc). Raises :class:`Preempted` after a SIGTERM checkpoint."""
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    info = init_distributed(cfg.run.device, cfg.run.dist_timeout_s)
    try:
        return _drive(plugin, cfg, info, log, progress, build_kwargs)
    finally:
        shutdown(info)


def _drive(plugin: TrainerPlugin, cfg, info: DistInfo, log, progress: bool, build_kwargs: dict) -> TrainResult:
    rank0 = info.rank == 0
    trainer = plugin.build(cfg, info, log if rank0 else (lambda _m: None), **build_kwargs)
    previous = signal.signal(signal.SIGTERM, lambda *_: setattr(trainer, "stop_requested", True))
    out = trainer.out
    out.mkdir(parents=True, exist_ok=True)
    sink = RunLog(tensorboard_writer(out) if rank0 else None, (out / "metrics.jsonl").open("a") if rank0 else None,
                  log if rank0 else (lambda _m: None))
    bar = None
    if rank0 and progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.run.steps, initial=trainer.step, desc=plugin.label, unit="step", dynamic_ncols=True)
    step_times: list[float] = []
    last: dict[str, float] = {}

    def on_step(step: int, stage: str | None, losses: dict[str, float], dt: float) -> None:
        step_times.append(dt)
        last.clear()
        last.update(losses)
        if bar is not None:
            bar.update(step - bar.n)
            bar.set_postfix(**plugin.postfix(stage, losses))
        if rank0:
            record_step(sink.writer, sink.metrics, step, losses, trainer.lr_at(step - 1), dt,
                        prefix="loss" if stage is None else f"loss/{stage}",
                        extra=None if stage is None else {"stage": stage})

    def images(step: int, tag: str, xs, xt, y) -> None:
        if rank0:
            sink.writer.add_image(tag, image_grid(xs, xt, y), step)

    save_due = save_schedule(cfg.run.save_every_steps, cfg.run.save_every_minutes)
    try:
        trainer.begin(sink)
        if trainer.step == 0:
            trainer.evaluate(0, sink)
        finished = True
        every = trainer.eval_every or cfg.run.steps
        while trainer.step < cfg.run.steps and finished:
            until = min(cfg.run.steps, (trainer.step // every + 1) * every)
            finished = trainer.run_steps(until, on_step, images, save_due)
            if bar is not None:
                bar.update(trainer.step - bar.n)
            if finished:
                trainer.evaluate(trainer.step, sink)
        if finished:
            trainer.save()
    finally:
        signal.signal(signal.SIGTERM, previous)
        for closer in (bar, sink.writer, sink.metrics):
            if closer is not None:
                closer.close()
    times = np.array(step_times[1:] or step_times or [float("nan")])
    summary = {"step": trainer.step, "processes": info.world, "device": str(info.device),
               "batch_per_process": cfg.run.batch_size, "step_s_median": float(np.median(times)),
               "step_s_mean": float(times.mean()), "last_losses": last, **trainer.summary_extras()}
    if info.device.type == "cuda":
        summary["peak_memory_gib"] = torch.cuda.max_memory_allocated(info.device) / 2**30
    last_ckpt = trainer.ckpt_dir / "last.safetensors"
    if rank0:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        plugin.plot(out)
    if not finished:
        raise Preempted(f"stopped by SIGTERM after step {trainer.step}; checkpoint {last_ckpt} written; run the "
                        f"same command again to resume")
    return TrainResult(step=trainer.step, checkpoint=str(last_ckpt), summary=summary)
