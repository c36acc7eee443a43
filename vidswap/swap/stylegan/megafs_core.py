"""The MegaFS swap core (``swap.core: megafs``) and its checkpoint reader.

Config::

    swap:
      core: megafs
      megafs: {checkpoint: runs/megafs/checkpoints/last.safetensors}

(or ``vidswap run --swap-core megafs --checkpoint FILE``). The checkpoint is a ``vidswap train`` MegaFS file
(``format = vidswap.megafs.train``): the encoder (``E.*``), the FTM (``F.*``) and the frozen StyleGAN2 it was
trained with (``S.*``), so one file is all a render needs. The core

* asks for FFHQ crops at the generator's resolution (:class:`~vidswap.swap.stylegan.align.FFHQCrop`);
* encodes every source photo to W++ and averages their codes (the source identity);
* per batch of target crops: encodes them, swaps the high codes through the FTM (the target's C and low codes
  kept), renders with the generator and hands the crops back with a feathered border alpha.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.errors import ConfigError
from vidswap.faces.align import warp_to_crop
from vidswap.models.checkpoint_file import read_tagged_checkpoint
from vidswap.swap.base import SourceFace, SourceIdentity, SwapBatch, SwapCore, SwapResult
from vidswap.swap.facedancer import border_alpha
from vidswap.swap.stylegan.align import FFHQCrop
from vidswap.swap.stylegan.inversion import from_unit
from vidswap.swap.stylegan.megafs import MegaFS, MegaFSConfig, WPlusPlus
from vidswap.swap.stylegan.recorded import build_recorded, load_prefixed, recorded_configs, recorded_generator

__all__ = ["TRAIN_FORMAT", "MegaFSCoreConfig", "MegaFSCore", "MegaFSIdentity", "read_megafs", "load_megafs",
           "build_megafs"]

TRAIN_FORMAT = "vidswap.megafs.train"


def read_megafs(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of a MegaFS checkpoint; ModelError (exit 4) when missing, unreadable or not one."""
    return read_tagged_checkpoint(path, (TRAIN_FORMAT,), "MegaFS checkpoint", "MegaFS",
                                  "`vidswap train` with a MegaFS train.yaml")


def load_megafs(path: str | Path, resolution: int | None = None) -> tuple[MegaFS, dict[str, str]]:
    """(MegaFS model in eval mode, metadata) from a checkpoint; ``resolution`` (when given) must be the
    generator's."""
    path = Path(path)
    tensors, meta = read_megafs(path)
    cfg, gcfg = recorded_configs(meta, path, "MegaFS", MegaFSConfig)
    gen = recorded_generator(gcfg, path, resolution)
    load_prefixed(gen, tensors, "S", path, "MegaFS")
    model = build_recorded("MegaFS", path, lambda: MegaFS(cfg, gen))
    load_prefixed(model.encoder, tensors, "E", path, "MegaFS")
    load_prefixed(model.ftm, tensors, "F", path, "MegaFS")
    if "w_avg" in tensors:
        model.w_avg.copy_(tensors["w_avg"])
    return model.eval(), meta


@dataclass(frozen=True)
class MegaFSCoreConfig:
    """``swap.megafs``: checkpoint (required), resolution the generator must have (None: any), batch_size (crops
    per encoder + generator pass), feather (alpha border ramp, fraction of the crop side).

    ``batch_size`` 1 (default) renders each crop on its own, so a frame's result does not depend on which frames
    share its render batch and farm chunks are bit-identical to one pass. Larger passes are faster on a GPU but
    differ from per-crop results by float rounding (~1e-5), which can move a code value across a chunk boundary.
    """

    checkpoint: str | None = None
    resolution: int | None = None
    batch_size: int = 1
    feather: float = 0.08

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"swap.megafs.batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.feather < 0.5:
            raise ConfigError(f"swap.megafs.feather must be in [0, 0.5), got {self.feather}")


@dataclass(kw_only=True)
class MegaFSIdentity(SourceIdentity):
    """``const`` (C4, 4, 4) and ``ws`` (L, D): the source photos' mean W++ codes."""

    const: Tensor
    ws: Tensor


class MegaFSCore(SwapCore):
    """See the module doc."""

    name = "megafs"
    needs = frozenset({"image", "landmarks", "embedding"})

    def __init__(self, config: MegaFSCoreConfig, device: torch.device | str = "cpu"):
        if not config.checkpoint:
            raise ConfigError("swap.core megafs needs a trained MegaFS checkpoint: swap.megafs.checkpoint (or "
                              "--checkpoint; train one with `vidswap train --config` a MegaFS train.yaml)")
        self.config = config
        self.device = torch.device(device)
        self.model, self.meta = load_megafs(config.checkpoint, config.resolution)
        self.model.to(self.device).requires_grad_(False)
        self.size = self.model.generator.cfg.resolution
        self.crop = FFHQCrop(size=self.size)

    def align_source(self, source: SourceFace) -> Tensor:
        """(3, R, R) the source photo in the FFHQ crop."""
        m = self.crop.frame_to_crop(source.landmarks[None].float().cpu()).to(self.device)
        return warp_to_crop(source.image[None].float().to(self.device), m, self.size)[0].clamp(0, 1)

    @torch.no_grad()
    def prepare(self, sources: list[SourceFace]) -> MegaFSIdentity:
        if not sources:
            raise ConfigError("the megafs core needs at least one source photo")
        codes = self.model.encode(torch.stack([self.align_source(s) for s in sources]))
        embs = [s.embedding for s in sources if s.embedding is not None]
        emb = F.normalize(torch.stack(embs).float().mean(0), dim=0) if embs else None
        return MegaFSIdentity(const=codes.const.mean(0).cpu(), ws=codes.ws.mean(0).cpu(), embedding=emb)

    @torch.no_grad()
    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        if not isinstance(identity, MegaFSIdentity):
            raise TypeError(f"the megafs core needs its own prepared identity, got {type(identity).__name__}")
        dev = batch.target_crops.device
        model = self.model.to(dev)
        source = WPlusPlus(const=identity.const[None].to(dev), ws=identity.ws[None].to(dev))
        outs = []
        for i in range(0, len(batch.target_crops), self.config.batch_size):
            target = model.encode(batch.target_crops[i:i + self.config.batch_size].float().clamp(0, 1))
            outs.append(from_unit(model.decode(model.transfer(source, target))))
        crops = torch.cat(outs) if outs else batch.target_crops
        alpha = border_alpha(self.size, self.config.feather, dev).expand(crops.shape[0], 1, -1, -1)
        return SwapResult(crops=crops, alpha=alpha.contiguous(), driven_landmarks=batch.target_landmarks)


def build_megafs(config: MegaFSCoreConfig, context) -> MegaFSCore:
    """The registry's builder (ModelError, exit 4, for a missing or unusable checkpoint)."""
    return MegaFSCore(config, device=context.device)
