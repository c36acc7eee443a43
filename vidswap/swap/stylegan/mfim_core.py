"""The MFIM swap core (``swap.core: mfim``) and its checkpoint reader.

Config::

    swap:
      core: mfim
      mfim: {checkpoint: runs/mfim/checkpoints/last.safetensors}

(or ``vidswap run --swap-core mfim --checkpoint FILE``). The checkpoint is a ``vidswap train`` MFIM file
(``format = vidswap.mfim.train``): the facial attribute encoder (``E.*``), the frozen StyleGAN2 it was trained
with (``S.*``) and its mean styles (``s_avg``), so one file is all a render needs (the discriminator ``D.*`` and
optimiser states are for resuming only). The core

* asks for FFHQ crops at the generator's resolution (:class:`~vidswap.swap.stylegan.align.FFHQCrop`);
* encodes every source photo to S-space codes; the identity codes are their mean, or with ``mix_shape_source`` /
  ``mix_texture_source`` one photo's global ID codes (blocks from ``id_from`` below ``local_from`` px: face shape)
  and another's local ones (``local_from`` px and finer: eyes, nose, lips, skin) -- MFIM's ID mixing;
* per batch of target crops: encodes them (codes and style maps), takes the source's codes at the identity blocks
  ``[id_from, id_to]`` (blended by ``mix_weight``) and the target's elsewhere, renders with the generator (the
  target's style maps as noise inputs) and hands the crops back with a feathered border alpha.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.errors import ConfigError, ModelError
from vidswap.faces.align import warp_to_crop
from vidswap.models.checkpoint_file import read_tagged_checkpoint
from vidswap.swap.base import SourceFace, SourceIdentity, SwapBatch, SwapCore, SwapResult
from vidswap.swap.facedancer import border_alpha
from vidswap.swap.stylegan.align import FFHQCrop
from vidswap.swap.stylegan.inversion import from_unit
from vidswap.swap.stylegan.mfim import MFIM, MFIMConfig, id_source_styles
from vidswap.swap.stylegan.recorded import build_recorded, load_prefixed, recorded_configs, recorded_generator

__all__ = ["TRAIN_FORMAT", "MFIMCoreConfig", "MFIMCore", "MFIMIdentity", "read_mfim", "load_mfim", "build_mfim"]

TRAIN_FORMAT = "vidswap.mfim.train"


def read_mfim(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of an MFIM checkpoint; ModelError (exit 4) when missing, unreadable or not one."""
    return read_tagged_checkpoint(path, (TRAIN_FORMAT,), "MFIM checkpoint", "MFIM",
                                  "`vidswap train` with an MFIM train.yaml")


def load_mfim(path: str | Path, resolution: int | None = None) -> tuple[MFIM, dict[str, str]]:
    """(MFIM model in eval mode, metadata) from a checkpoint; ``resolution`` (when given) must be the generator's."""
    path = Path(path)
    tensors, meta = read_mfim(path)
    cfg, gcfg = recorded_configs(meta, path, "MFIM", MFIMConfig)
    gen = recorded_generator(gcfg, path, resolution)
    load_prefixed(gen, tensors, "S", path, "MFIM")
    model = build_recorded("MFIM", path, lambda: MFIM(cfg, gen))
    load_prefixed(model.encoder, tensors, "E", path, "MFIM")
    if tensors.get("s_avg") is None or tensors["s_avg"].shape != model.s_avg.shape:
        raise ModelError(f"MFIM checkpoint {path} does not fit its recorded architecture (mean styles s_avg)")
    model.s_avg.copy_(tensors["s_avg"])
    return model.eval(), meta


def _side(name: str, value: int | None) -> None:
    if value is not None and (value < 4 or value & (value - 1)):
        raise ConfigError(f"swap.mfim.{name} must be a block side (a power of two >= 4), got {value}")


@dataclass(frozen=True)
class MFIMCoreConfig:
    """``swap.mfim``.

    checkpoint (required); resolution the generator must have (None: any); batch_size: crops per encoder +
    generator pass (1, the default, renders each crop on its own, so farm chunks are bit-identical to one pass;
    larger passes differ from it by float rounding); id_from / id_to: the block sides whose codes come from the
    source (None: the checkpoint's ``id_from`` and the generator's side); local_from: the first block side of
    the local ID codes (None: 2 x id_from, the paper's 32 / 64 split); mix_weight: 1 = the source's codes at the
    identity blocks, 0 = the target's; mix_shape_source / mix_texture_source: source photo indices for the global
    / local ID codes (None: the photos' mean); feather: alpha border ramp (fraction of the crop side).
    """

    checkpoint: str | None = None
    resolution: int | None = None
    batch_size: int = 1
    id_from: int | None = None
    id_to: int | None = None
    local_from: int | None = None
    mix_weight: float = 1.0
    mix_shape_source: int | None = None
    mix_texture_source: int | None = None
    feather: float = 0.08

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"swap.mfim.batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.feather < 0.5:
            raise ConfigError(f"swap.mfim.feather must be in [0, 0.5), got {self.feather}")
        if not 0.0 <= self.mix_weight <= 1.0:
            raise ConfigError(f"swap.mfim.mix_weight must be in [0, 1], got {self.mix_weight}")
        for name in ("id_from", "id_to", "local_from"):
            _side(name, getattr(self, name))
        for name in ("mix_shape_source", "mix_texture_source"):
            if (v := getattr(self, name)) is not None and v < 0:
                raise ConfigError(f"swap.mfim.{name} must be a source photo index >= 0, got {v}")


@dataclass(kw_only=True)
class MFIMIdentity(SourceIdentity):
    """``codes``: each source photo's S-space codes {layer: (P, C)}; ``styles``: the identity codes {layer: (C,)}."""

    codes: dict[str, Tensor]
    styles: dict[str, Tensor]

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor, the per-layer codes as ``codes.<layer>`` / ``styles.<layer>`` (cache keys hash these)."""
        out = super().tensors()
        out.update({f"codes.{k}": v for k, v in self.codes.items()})
        out.update({f"styles.{k}": v for k, v in self.styles.items()})
        return out


class MFIMCore(SwapCore):
    """See the module doc."""

    name = "mfim"
    needs = frozenset({"image", "landmarks", "embedding"})

    def __init__(self, config: MFIMCoreConfig, device: torch.device | str = "cpu"):
        if not config.checkpoint:
            raise ConfigError("swap.core mfim needs a trained MFIM checkpoint: swap.mfim.checkpoint (or --checkpoint; "
                              "train one with `vidswap train --config` an MFIM train.yaml)")
        self.config = config
        self.device = torch.device(device)
        self.model, self.meta = load_mfim(config.checkpoint, config.resolution)
        self.model.to(self.device).requires_grad_(False)
        self.size = self.model.generator.cfg.resolution
        self.crop = FFHQCrop(size=self.size)
        lo = config.id_from or self.model.cfg.id_from
        hi = config.id_to or self.size
        self.local_from = config.local_from or 2 * lo
        if not 4 <= lo <= hi <= self.size:
            raise ConfigError(f"swap.mfim id_from/id_to must satisfy 4 <= id_from <= id_to <= {self.size} (this "
                              f"generator's side), got {lo}, {hi}")
        self.id_range = (lo, hi)

    def align_source(self, source: SourceFace) -> Tensor:
        """(3, R, R) the source photo in the FFHQ crop."""
        m = self.crop.frame_to_crop(source.landmarks[None].float().cpu()).to(self.device)
        return warp_to_crop(source.image[None].float().to(self.device), m, self.size)[0].clamp(0, 1)

    @torch.no_grad()
    def prepare(self, sources: list[SourceFace]) -> MFIMIdentity:
        if not sources:
            raise ConfigError("the mfim core needs at least one source photo")
        cfg = self.config
        for name in ("mix_shape_source", "mix_texture_source"):
            if (v := getattr(cfg, name)) is not None and v >= len(sources):
                raise ConfigError(f"swap.mfim.{name} is {v} but there are {len(sources)} source photo(s)")
        codes = self.model.encode(torch.stack([self.align_source(s) for s in sources])).styles
        styles = id_source_styles(codes, self.model.layer_res, self.local_from, cfg.mix_shape_source,
                                  cfg.mix_texture_source)
        embs = [s.embedding for s in sources if s.embedding is not None]
        emb = F.normalize(torch.stack(embs).float().mean(0), dim=0) if embs else None
        return MFIMIdentity(codes={k: v.cpu() for k, v in codes.items()},
                            styles={k: v.cpu() for k, v in styles.items()}, embedding=emb)

    @torch.no_grad()
    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        if not isinstance(identity, MFIMIdentity):
            raise TypeError(f"the mfim core needs its own prepared identity, got {type(identity).__name__}")
        dev = batch.target_crops.device
        model = self.model.to(dev)
        source = {k: v.to(dev) for k, v in identity.styles.items()}
        outs = []
        for i in range(0, len(batch.target_crops), self.config.batch_size):
            target = model.encode(batch.target_crops[i:i + self.config.batch_size].float().clamp(0, 1))
            codes = model.transfer(source, target, self.config.mix_weight, self.id_range)
            outs.append(from_unit(model.decode(codes)))
        crops = torch.cat(outs) if outs else batch.target_crops
        alpha = border_alpha(self.size, self.config.feather, dev).expand(crops.shape[0], 1, -1, -1)
        return SwapResult(crops=crops, alpha=alpha.contiguous(), driven_landmarks=batch.target_landmarks)


def build_mfim(config: MFIMCoreConfig, context) -> MFIMCore:
    """The registry's builder (ModelError, exit 4, for a missing or unusable checkpoint)."""
    return MFIMCore(config, device=context.device)
