"""What the StyleGAN-family trainers (``e4s``, ``idatt``, ``megafs``, ``mfim``) share on top of the run driver's
:class:`~vidswap.train.loop.RunState`: the frozen generator and the FFHQ-crop face set of the run, the hold-out
split, the loss networks (identity, optional VGG16), Adam from the ``optim`` section, the pair sampler, one
rank's slice of a step's pairs, and the checkpoint metadata (the run's config and identity network)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from vidswap.errors import VidswapError
from vidswap.swap.stylegan.generator import StyleGAN2Generator
from vidswap.swap.stylegan.importer import load_generator
from vidswap.train.facedancer.checkpoint import identity_meta
from vidswap.train.facedancer.data import PairSampler, augment, holdout_split
from vidswap.train.facedancer.distributed import DistInfo
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.perceptual import load_vgg16
from vidswap.train.loop import RunState
from vidswap.train.megafs.data import FFHQFaces, ffhq_faces_for_run

__all__ = ["StyleGANRunState"]


class StyleGANRunState(RunState):
    """A StyleGAN-family method's state on one process. Its ``__init__`` calls :meth:`start_run` first, then
    builds its model and optimisers (:meth:`adam`), :meth:`load_loss_networks` and ``self.sampler`` =
    :meth:`pair_sampler`, in the order the method needs (E4S resumes before the loss networks load, so a bad
    checkpoint fails fast)."""

    cfg: Any
    log: Callable[[str], None]
    data: FFHQFaces
    sampler: PairSampler

    def start_run(self, cfg: Any, info: DistInfo, log: Callable[[str], None], faces: FFHQFaces | None
                  ) -> StyleGAN2Generator:
        """Set the run's config, process, log, folders, face set (``faces`` or the run's FFHQ-crop cache) and
        training rows; the generator of ``generator.checkpoint``."""
        self.cfg, self.info, self.log = cfg, info, log
        self.out = Path(cfg.run.out)
        self.ckpt_dir = self.out / "checkpoints"
        self.stop_requested = False
        gen = load_generator(cfg.generator.checkpoint)
        self.data = faces if faces is not None else ffhq_faces_for_run(cfg.data, gen.cfg.resolution, self.out,
                                                                       info, log)
        self.train_rows, _ = holdout_split(self.data.faces, cfg.data.holdout)
        if len(self.train_rows) == 0:
            raise VidswapError("no training faces left after the hold-out split (data.holdout)")
        return gen

    def load_loss_networks(self, identity: IdentityNet | None) -> None:
        """``self.identity`` (``identity`` or the ``identity`` section's network) and ``self.vgg`` (VGG16 when
        ``perceptual.net`` is vgg16, else None), on the device."""
        idc, pc, dev = self.cfg.identity, self.cfg.perceptual, self.info.device
        self.identity = (identity or IdentityNet.load(idc.onnx, idc.input_mean, idc.input_std)).to(dev)
        self.vgg = load_vgg16(pc.weights).to(dev) if pc.net == "vgg16" else None

    def adam(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Adam:
        """Adam as the ``optim`` section sets it."""
        o = self.cfg.optim
        return torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)

    def pair_sampler(self, same_rate: float | None = None) -> PairSampler:
        """The run's pair sampler over the training rows (global batch = ``run.batch_size`` x processes);
        ``same_rate`` None: ``data.same_rate``."""
        c = self.cfg
        rate = c.data.same_rate if same_rate is None else same_rate
        return PairSampler(len(self.train_rows), c.run.batch_size * self.info.world, rate, c.data.augment, c.run.seed)

    def local_pairs(self, step: int):
        """(source, target, source kps, target kps, same-image flags) of this rank at ``step``: augmented, on the
        device."""
        pb = self.sampler(step).slice(self.info.rank, self.info.world)
        t_rows, s_rows = self.train_rows[pb.target.numpy()], self.train_rows[pb.source.numpy()]
        dev, d = self.info.device, self.data
        xt = augment(d.faces.tensor(t_rows), pb.aug_t).to(dev)
        xs = augment(d.faces.tensor(s_rows), pb.aug_s).to(dev)
        return (xs, xt, torch.from_numpy(d.kps[s_rows]).to(dev), torch.from_numpy(d.kps[t_rows]).to(dev),
                pb.same.to(dev))

    def checkpoint_meta(self) -> dict[str, str]:
        """The metadata every checkpoint carries: the run's config (JSON) and its identity network."""
        idc = self.cfg.identity
        return {"train_config": json.dumps(asdict(self.cfg), default=str),
                **identity_meta(idc.onnx, idc.input_mean, idc.input_std)}

    def lr_at(self, step: int) -> float:
        return self.cfg.optim.lr_at(step)

    def summary_extras(self) -> dict:
        return {"faces": len(self.data.faces), "train_faces": int(len(self.train_rows))}
