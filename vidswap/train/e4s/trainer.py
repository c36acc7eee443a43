"""``vidswap train`` for E4S: regional GAN inversion trained on reconstruction (the paper's proxy task), a plug-in
(:data:`E4S_METHOD`) on the shared run driver (:mod:`vidswap.train.loop`: DDP, SIGTERM, logging, checkpoint
schedule, summary, plot).

Every step reconstructs a batch of FFHQ-aligned faces through their per-region codes (:mod:`.step`): the encoder
trains, and with ``tune_generator`` the generator's first ``model.masked_layers`` layers too (one Adam over both).
The global batch of step k comes from FaceDancer's :class:`~vidswap.train.facedancer.data.PairSampler` (its target
rows; this rank takes its slice), the flips from a generator seeded by the run seed and the step, so 1 process and
N processes (torchrun, gloo / NCCL via :mod:`vidswap.train.facedancer.distributed`) see the same batch and a
resumed run the same batches as an uninterrupted one. The faces are MegaFS's FFHQ crops with their keypoints
(:func:`~vidswap.train.megafs.data.prepare_ffhq_faces`). One stage: TensorBoard ``loss/<name>``, image grids
``rgi: input|regions|reconstruction``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from vidswap.swap.stylegan.e4s import E4S
from vidswap.train.e4s.checkpoint import load_e4s_state, save_e4s_state
from vidswap.train.e4s.config import E4STrainConfig
from vidswap.train.e4s.step import LOSSES, E4SModels, E4SPass, e4s_step, flip_faces, trainable
from vidswap.train.facedancer.data import augment
from vidswap.train.facedancer.distributed import DistInfo, wrap_ddp
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.loop import TrainerPlugin, TrainResult, run_method
from vidswap.train.megafs.data import FFHQFaces
from vidswap.train.stylegan_state import StyleGANRunState

__all__ = ["E4S_METHOD", "E4STrainer", "flip_flags", "region_picture", "run_e4s_training"]

#: a colour per region (rest, skin, brows, eyes, nose, mouth) for the image grids
REGION_COLOURS = torch.tensor([[0.0, 0.0, 0.0], [0.8, 0.65, 0.5], [0.5, 0.25, 0.0], [0.0, 0.0, 1.0],
                               [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def flip_flags(seed: int, step: int, batch: int, rank: int, world: int) -> torch.Tensor:
    """(batch // world,) bool: this rank's share of the global batch's random horizontal flips (p = 0.5) at
    ``step`` (a generator of its own, so the pair sampler's stream is untouched)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step + 0x5EED_F11F)
    flags = torch.rand(batch, generator=g) < 0.5
    n = batch // world
    return flags[rank * n:(rank + 1) * n]


def region_picture(masks: torch.Tensor) -> torch.Tensor:
    """(B, 6, R, R) region masks -> (B, 3, R, R) in [0, 1], each region in its colour."""
    return torch.einsum("bchw,cd->bdhw", masks, REGION_COLOURS.to(masks)).clamp(0, 1)


class E4STrainer(StyleGANRunState):
    """The run's state on one process (see the module doc)."""

    def __init__(self, cfg: E4STrainConfig, info: DistInfo, log: Callable[[str], None] = print,
                 identity: IdentityNet | None = None, faces: FFHQFaces | None = None):
        gen = self.start_run(cfg, info, log, faces)
        torch.manual_seed(cfg.run.seed)  # identical initial weights on every rank
        self.model = E4S(cfg.model, gen).to(info.device)
        self.opt = self.adam(trainable(self.model, cfg.tune_generator))
        # before the loss networks load: a bad checkpoint fails fast
        self.step = self.resume_with(lambda path: load_e4s_state(path, self.model, self.opt))
        self.load_loss_networks(identity)
        self.sampler = self.pair_sampler(same_rate=0.0)
        self.models = E4SModels(wrap_ddp(E4SPass(self.model), info), self.model, self.identity, self.opt, self.vgg)

    def write_checkpoint(self, path: Path) -> Path:
        """Write the training state to ``path`` (rank 0; :meth:`RunState.save` schedules it)."""
        return save_e4s_state(path, self.model, self.opt, self.step, self.checkpoint_meta())

    def summary_extras(self) -> dict:
        return {**super().summary_extras(), "tune_generator": self.cfg.tune_generator,
                "masked_layers": self.model.masked_layers}

    def local_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(faces (B, 3, R, R) [0, 1], keypoints (B, 5, 2) crop pixels) of this rank at ``step``: colour-jittered
        and flipped (``flip``), on the device."""
        info, d = self.info, self.data
        pb = self.sampler(step).slice(info.rank, info.world)
        rows = self.train_rows[pb.target.numpy()]
        x = augment(d.faces.tensor(rows), pb.aug_t)
        k = torch.from_numpy(d.kps[rows]).float()
        if self.cfg.flip:
            x, k = flip_faces(x, k, flip_flags(self.cfg.run.seed, step, self.sampler.batch, info.rank, info.world))
        return x.to(info.device), k.to(info.device)

    def run_steps(self, until: int, on_step=None, images=None, save_due=lambda step: False) -> bool:
        """Train up to step ``until``; False when stopped early by SIGTERM."""
        while self.step < until:
            for group in self.opt.param_groups:
                group["lr"] = self.cfg.optim.lr_at(self.step)
            t0 = time.perf_counter()
            x, k = self.local_batch(self.step)
            losses, out = e4s_step(self.models, x, k, self.cfg.loss)
            dt = time.perf_counter() - t0
            self.step += 1
            if self.finish_step(until, save_due, None, losses, LOSSES, dt, on_step, images,
                                lambda: ("rgi: input|regions|reconstruction", x,
                                         region_picture(self.model.masks(k)), out)):
                return False
        return True


def _plot(out: Path):
    from vidswap.train.e4s.plot import plot_e4s_run

    return plot_e4s_run(out)


#: E4S on the shared run driver (:mod:`vidswap.train.loop`): one stage, one optimiser.
E4S_METHOD = TrainerPlugin(label="train e4s", build=E4STrainer, plot=_plot,
                           postfix=lambda stage, losses: {"total": f"{losses['total']:.3f}"})


def run_e4s_training(cfg: E4STrainConfig, log: Callable[[str], None] = print, progress: bool = True,
                     identity: IdentityNet | None = None) -> TrainResult:
    """Train as configured (see the module doc). Raises :class:`Preempted` after a SIGTERM checkpoint."""
    return run_method(E4S_METHOD, cfg, log, progress, identity=identity)
