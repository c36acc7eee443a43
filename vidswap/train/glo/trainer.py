"""``vidswap train`` with ``method: stylegan-glo``: GLO training of a small StyleGAN2 generator on the shared run
driver (:mod:`vidswap.train.loop`, plug-in :data:`STYLEGAN_GLO`).

Each training image i has its own learnable W+ code c_i (N, num_ws, w_dim), starting at the mapping network's
mean W plus a little seeded noise. A step draws the global batch of step k (a seeded permutation of the training
rows, so 1 and N processes, and a resumed run, see the same batches; this rank takes its slice), synthesises
``G(c_i)`` and takes one Adam step on the synthesis weights and one on the codes, on the inversion's
reconstruction loss (:func:`~vidswap.swap.stylegan.inversion.reconstruction_loss`) plus a pull of the codes
towards their mean. The mapping network is not trained (there is no z); the checkpoint sets its ``w_avg`` to the
codes' mean, where :func:`~vidswap.swap.stylegan.inversion.invert` starts.

Files: ``<out>/checkpoints/last.safetensors`` (+ step files; ``format = vidswap.stylegan-glo.train``: generator
``G.*``, ``codes``, Adam states ``optG.*`` / ``optC.*``) and, at every save, ``<out>/generator.safetensors``: the
generator alone in the converted-StyleGAN format (:func:`~vidswap.swap.stylegan.importer.save_generator`), what
the e4s-pti core and the inversion read. Logged losses: ``total``, ``l2``, ``l1``, ``multiscale``, ``code_reg``
and ``psnr`` (dB, the batch's reconstructions).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from vidswap.errors import ModelError, VidswapError
from vidswap.models.checkpoint_file import read_tagged_checkpoint
from vidswap.swap.stylegan.generator import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.importer import save_generator
from vidswap.swap.stylegan.inversion import from_unit, mean_w, psnr, reconstruction_loss, to_unit
from vidswap.train.facedancer.checkpoint import atomic_save, load_optimizer, optimizer_tensors
from vidswap.train.facedancer.data import holdout_split
from vidswap.train.facedancer.distributed import DistInfo, wrap_ddp
from vidswap.train.glo.config import GLOLossWeights, GLOTrainConfig
from vidswap.train.loop import RunState, TrainerPlugin, TrainResult, run_method
from vidswap.train.megafs.data import FFHQFaces, ffhq_faces_for_run

__all__ = ["GLO_LOSSES", "STYLEGAN_GLO", "TRAIN_FORMAT", "GLOModel", "GLOTrainer", "batch_rows", "glo_losses",
           "run_glo_training"]

TRAIN_FORMAT = "vidswap.stylegan-glo.train"
GLO_LOSSES = ("total", "l2", "l1", "multiscale", "code_reg", "psnr")


class GLOModel(nn.Module):
    """The generator and the (N, num_ws, w_dim) codes; ``forward(rows)`` synthesises those rows' images."""

    def __init__(self, gen: StyleGAN2Generator, codes: Tensor):
        super().__init__()
        self.generator = gen
        self.codes = nn.Parameter(codes)

    def forward(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """(images (B, 3, R, R) in [-1, 1], the rows' codes (B, num_ws, w_dim))."""
        codes = self.codes[rows]
        return self.generator.synthesis(codes, noise_mode="const"), codes


def batch_rows(n: int, global_batch: int, seed: int, step: int, rank: int = 0, world: int = 1) -> Tensor:
    """This rank's rows (indices into the N training images) of step ``step``: the first ``global_batch`` of a
    permutation seeded by (seed, step), split into ``world`` equal slices."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + step))
    rows = perm[:min(global_batch, n)]
    per = len(rows) // world
    return rows[rank * per:(rank + 1) * per]


def glo_losses(fake: Tensor, real: Tensor, codes: Tensor, center: Tensor, w: GLOLossWeights) -> dict[str, Tensor]:
    """The step's scalar terms (``GLO_LOSSES``): fake / real (B, 3, R, R) in [-1, 1], codes (B, num_ws, w_dim),
    center (w_dim,) the mean code (held fixed)."""
    terms = {k: v.mean() for k, v in reconstruction_loss(fake, real, _inv_params(w)).items()}
    terms["code_reg"] = (codes - center).square().mean()
    total = w.l2 * terms["l2"] + w.l1 * terms["l1"] + w.multiscale * terms.get("multiscale", 0.0) \
        + w.code_reg * terms["code_reg"]
    out = {"total": total, **terms}
    out.setdefault("multiscale", total.new_zeros(()))
    out["psnr"] = psnr(from_unit(fake.detach()), from_unit(real)).mean()
    return out


def _inv_params(w: GLOLossWeights):
    from vidswap.swap.stylegan.inversion import InversionParams

    return InversionParams(w_l2=w.l2, w_l1=w.l1, w_multiscale=w.multiscale)


class GLOTrainer(RunState):
    """The run's state on one process (see the module doc)."""

    def __init__(self, cfg: GLOTrainConfig, info: DistInfo, log: Callable[[str], None] = print,
                 faces: FFHQFaces | None = None):
        self.cfg, self.info, self.log = cfg, info, log
        self.out = Path(cfg.run.out)
        self.ckpt_dir = self.out / "checkpoints"
        self.data = faces if faces is not None else ffhq_faces_for_run(
            cfg.data, cfg.generator.resolution, self.out, info, self.log)
        self.train_rows, self.held_rows = holdout_split(self.data.faces, cfg.data.holdout)
        if len(self.train_rows) == 0:
            raise VidswapError("no training faces left after the hold-out split (data.holdout)")
        torch.manual_seed(cfg.run.seed)  # identical initial weights and codes on every rank
        gen = StyleGAN2Generator(cfg.generator)
        w0 = mean_w(gen, seed=cfg.run.seed)
        noise = torch.randn(len(self.train_rows), gen.num_ws, cfg.generator.w_dim,
                            generator=torch.Generator().manual_seed(cfg.run.seed))
        self.model = GLOModel(gen, w0[None, None] + cfg.optim.code_init_std * noise).to(info.device)
        self.model.generator.mapping.requires_grad_(False)
        o = cfg.optim
        self.opt_g = torch.optim.Adam(self.model.generator.synthesis.parameters(), lr=o.lr, betas=(o.beta1, o.beta2))
        self.opt_c = torch.optim.Adam([self.model.codes], lr=o.code_lr, betas=(o.beta1, o.beta2))
        self.step = self.resume_with(self._load_state)
        self.step_model: nn.Module = wrap_ddp(self.model, info)
        self.images = torch.from_numpy(self.data.faces.images[self.train_rows])  # (N, R, R, 3) uint8
        self.stop_requested = False

    # -- checkpoints ----------------------------------------------------------------------------------------
    def _load_state(self, path: Path) -> int:
        """Load the training state saved at ``path``; its step."""
        tensors, meta = read_tagged_checkpoint(path, (TRAIN_FORMAT,), "StyleGAN-GLO checkpoint", "StyleGAN-GLO",
                                               "`vidswap train` with a stylegan-glo train.yaml")
        try:
            saved = StyleGANConfig.from_dict(json.loads(meta["stylegan_config"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"checkpoint {path} has no readable generator config: {exc}") from None
        if saved != self.cfg.generator or tensors["codes"].shape != self.model.codes.shape:
            raise ModelError(f"checkpoint {path} is of another generator or training set than train.yaml's: saved "
                             f"{saved} with {tensors['codes'].shape[0]} codes vs {self.cfg.generator} with "
                             f"{self.model.codes.shape[0]}")
        gen = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
        self.model.generator.load_state_dict(gen, strict=True)
        with torch.no_grad():
            self.model.codes.copy_(tensors["codes"])
        load_optimizer(self.opt_g, tensors, "optG", meta["optG"])
        load_optimizer(self.opt_c, tensors, "optC", meta["optC"])
        return int(meta["step"])

    def write_checkpoint(self, path: Path) -> Path:
        gen = self.model.generator
        with torch.no_grad():
            gen.mapping.w_avg.copy_(self.model.codes.mean((0, 1)))  # where inversion starts
        tensors = {f"G.{k}": v.detach().float().cpu() for k, v in gen.state_dict().items()}
        tensors["codes"] = self.model.codes.detach().float().cpu()
        tg, groups_g = optimizer_tensors("optG", self.opt_g)
        tc, groups_c = optimizer_tensors("optC", self.opt_c)
        tensors.update(tg)
        tensors.update(tc)
        meta = {"format": TRAIN_FORMAT, "version": "1", "step": str(self.step),
                "stylegan_config": json.dumps(self.cfg.generator.to_dict()), "optG": groups_g, "optC": groups_c,
                "train_config": json.dumps(asdict(self.cfg), default=str)}
        path = atomic_save(tensors, meta, Path(path))
        save_generator(gen, self.out / "generator.safetensors")
        return path

    def lr_at(self, step: int) -> float:
        return self.cfg.optim.lr_at(step)

    def summary_extras(self) -> dict:
        return {"faces": len(self.data.faces), "train_faces": int(len(self.train_rows)),
                "heldout_faces": int(len(self.held_rows)), "generator": self.cfg.generator.to_dict(),
                "generator_file": str(self.out / "generator.safetensors")}

    # -- the loop -------------------------------------------------------------------------------------------
    def local_batch(self, step: int) -> tuple[Tensor, Tensor]:
        """(rows, real images (B, 3, R, R) in [-1, 1]) of this rank at ``step``, on the device."""
        rows = batch_rows(len(self.train_rows), self.cfg.run.batch_size * self.info.world, self.cfg.run.seed, step,
                          self.info.rank, self.info.world)
        real = self.images[rows].permute(0, 3, 1, 2).float() / 255.0
        return rows.to(self.info.device), to_unit(real).to(self.info.device)

    def run_steps(self, until: int, on_step=None, images=None, save_due=lambda step: False) -> bool:
        """Train up to step ``until``; False when stopped early by SIGTERM."""
        while self.step < until:
            t0 = time.perf_counter()
            rows, real = self.local_batch(self.step)
            center = self.model.codes.detach().mean((0, 1))
            self.opt_g.zero_grad(set_to_none=True)
            self.opt_c.zero_grad(set_to_none=True)
            fake, codes = self.step_model(rows)
            losses = glo_losses(fake, real, codes, center, self.cfg.loss)
            losses["total"].backward()
            self.opt_g.step()
            self.opt_c.step()
            if self.info.device.type == "cuda":
                torch.cuda.synchronize(self.info.device)
            dt = time.perf_counter() - t0
            self.step += 1
            if self.finish_step(until, save_due, None, losses, GLO_LOSSES, dt, on_step, images,
                                lambda: ("target|reconstruction|difference", from_unit(real), from_unit(fake.detach()),
                                         (from_unit(fake.detach()) - from_unit(real)).abs())):
                return False
        return True


def _plot(out: Path):
    from vidswap.train.glo.plot import plot_glo_run

    return plot_glo_run(out)


#: StyleGAN-GLO on the shared run driver.
STYLEGAN_GLO = TrainerPlugin(label="train stylegan-glo", build=GLOTrainer, plot=_plot,
                             postfix=lambda stage, losses: {"total": f"{losses['total']:.3f}",
                                                            "psnr": f"{losses['psnr']:.1f}"})


def run_glo_training(cfg: GLOTrainConfig, log: Callable[[str], None] = print, progress: bool = True,
                     **kw) -> TrainResult:
    """Train as configured (see the module doc). Raises :class:`~vidswap.train.loop.Preempted` after SIGTERM."""
    return run_method(STYLEGAN_GLO, cfg, log, progress, **kw)
