"""``vidswap train`` for MFIM on the shared run driver (:mod:`vidswap.train.loop`: DDP, SIGTERM, logging,
checkpoint schedule) as the plug-in :data:`MFIM_PLUGIN`.

One stage (the paper trains the encoder end to end): every step encodes a source and a target, swaps by code
routing through the frozen StyleGAN2 and updates the encoder, then the discriminator (:mod:`.step`). The global
batch of step k comes from FaceDancer's :class:`~vidswap.train.facedancer.data.PairSampler` (this rank takes its
slice) on MegaFS's FFHQ-aligned face cache (:func:`~vidswap.train.megafs.data.prepare_ffhq_faces`), so 1 process
and N processes see the same batch and a resumed run the same batches as an uninterrupted one. Checkpoints
(:mod:`.checkpoint`): ``<out>/checkpoints/last.safetensors`` (+ step files) every ``save_every_steps`` /
``save_every_minutes``, at the end, and after SIGTERM (exit 75, resumable). Logging on rank 0: TensorBoard
(``loss/<name>``, lr, step time, image grids), ``metrics.jsonl``, ``summary.json`` and ``losses.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidswap.swap.stylegan.mfim import MFIM
from vidswap.train.facedancer.distributed import DistInfo, wrap_ddp
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.model import Discriminator, FaceDancerConfig
from vidswap.train.facedancer.plot import moving_average, read_metrics
from vidswap.train.loop import TrainerPlugin, TrainResult, run_method
from vidswap.train.megafs.data import FFHQFaces
from vidswap.train.mfim.checkpoint import load_mfim_state, save_mfim_state
from vidswap.train.mfim.config import MFIMTrainConfig
from vidswap.train.mfim.step import LOSSES, StepModels, SwapPass, mfim_step
from vidswap.train.stylegan_state import StyleGANRunState

__all__ = ["MFIM_PLUGIN", "MFIMTrainer", "run_mfim_training", "plot_mfim_run"]


class MFIMTrainer(StyleGANRunState):
    """The run's state on one process (see the module doc)."""

    def __init__(self, cfg: MFIMTrainConfig, info: DistInfo, log: Callable[[str], None] = print,
                 identity: IdentityNet | None = None, faces: FFHQFaces | None = None):
        gen = self.start_run(cfg, info, log, faces)
        self.load_loss_networks(identity)
        torch.manual_seed(cfg.run.seed)  # identical initial weights on every rank
        self.model = MFIM(cfg.model, gen).to(info.device)
        self.disc = Discriminator(FaceDancerConfig(size=gen.cfg.resolution,
                                                   disc_channels=tuple(cfg.discriminator.channels))).to(info.device)
        self.opt_e, self.opt_d = self.adam(self.model.encoder.parameters()), self.adam(self.disc.parameters())
        self.step = self.resume_with(
            lambda path: load_mfim_state(path, self.model, self.disc, self.opt_e, self.opt_d))
        self.sampler = self.pair_sampler()
        self.models = StepModels(wrap_ddp(SwapPass(self.model), info), wrap_ddp(self.disc, info), self.disc,
                                 self.identity, self.opt_e, self.opt_d, self.vgg)

    def write_checkpoint(self, path: Path) -> Path:
        return save_mfim_state(path, self.model, self.disc, self.opt_e, self.opt_d, self.step, self.checkpoint_meta())

    def run_steps(self, until: int, on_step=None, images=None, save_due=lambda step: False) -> bool:
        """Train up to step ``until``; False when stopped early by SIGTERM."""
        while self.step < until:
            lr = self.cfg.optim.lr_at(self.step)
            for opt in (self.opt_e, self.opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            t0 = time.perf_counter()
            xs, xt, ks, kt, _ = self.local_pairs(self.step)
            losses, out = mfim_step(self.models, xs, xt, ks, kt, self.cfg.loss)
            dt = time.perf_counter() - t0
            self.step += 1
            if self.finish_step(until, save_due, None, losses, LOSSES, dt, on_step, images,
                                lambda: ("source|target|output", xs, xt, out)):
                return False
        return True


def plot_mfim_run(run: str | Path, smooth: int = 10) -> Path | None:
    """Write ``<run>/losses.png`` (the encoder's terms, the GAN terms; faint per step, a trailing moving average);
    None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    steps, _ = read_metrics(run / "metrics.jsonl")
    if not steps:
        return None
    x = np.array([r["step"] for r in steps])
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    panels = ((("total", "identity", "rec_l1", "perceptual"), "encoder losses"),
              (("adv", "d_loss", "r1"), "adversarial (encoder), discriminator, R1"))
    for ax, (names, title) in zip(axes, panels):
        for name in names:
            y = np.array([r[name] for r in steps])
            line, = ax.plot(x, y, alpha=0.25)
            ax.plot(x, moving_average(y, smooth), color=line.get_color(), label=name)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = run / "losses.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


#: MFIM on the shared run driver (:mod:`vidswap.train.loop`): one stage, two optimisers (encoder, discriminator).
MFIM_PLUGIN = TrainerPlugin(label="train mfim", build=MFIMTrainer, plot=plot_mfim_run,
                            postfix=lambda stage, losses: {"total": f"{losses['total']:.3f}",
                                                           "id": f"{losses['identity']:.3f}"})


def run_mfim_training(cfg: MFIMTrainConfig, log: Callable[[str], None] = print, progress: bool = True,
                      identity: IdentityNet | None = None) -> TrainResult:
    """Train as configured (see the module doc). Raises :class:`Preempted` after a SIGTERM checkpoint."""
    return run_method(MFIM_PLUGIN, cfg, log, progress, identity=identity)
