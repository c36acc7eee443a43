"""The E4S swap core (``swap.core: e4s``) and its checkpoint reader.

Config::

    swap:
      core: e4s
      e4s: {checkpoint: runs/e4s/checkpoints/last.safetensors}
    composite:
      regions: [eyes, nose]        # optional: which face parts take the source's codes (default: the whole face)

(or ``vidswap run --swap-core e4s --checkpoint FILE``). The checkpoint is a ``vidswap train`` E4S file
(``format = vidswap.e4s.train``): the regional encoder (``E.*``) and the generator it was trained with (``S.*``,
fine-tuned when the run tuned it), so one file is all a render needs. The core

* asks for FFHQ crops at the generator's resolution (:class:`~vidswap.swap.stylegan.align.FFHQCrop`);
* cuts every source photo in that crop, encodes it on its own region masks and averages the photos' per-region
  codes (the source identity);
* per target crop: region masks from the crop's keypoints, the target's per-region codes, the source's codes for
  the face parts ``composite.regions`` selects (all five by default), rendered by the mask-guided generator on the
  target's masks, handed back with a feathered border alpha (the compositor cuts the selected parts out as for
  every core);
* with ``tune.enabled`` renders with the per-clip PTI-tuned generator (:mod:`vidswap.train.e4s_tune`, the paper's
  video fine-tuning: the clip's frames reproduced from their own regional codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.errors import ConfigError
from vidswap.faces.align import kps5_from_landmarks, warp_to_crop
from vidswap.models.checkpoint_file import read_tagged_checkpoint
from vidswap.swap.base import SourceFace, SourceIdentity, SwapBatch, SwapCore, SwapResult
from vidswap.swap.facedancer import border_alpha
from vidswap.swap.stylegan.align import FFHQCrop
from vidswap.swap.stylegan.e4s import E4S, E4SConfig, region_select
from vidswap.swap.stylegan.generator import StyleGAN2Generator
from vidswap.swap.stylegan.inversion import from_unit
from vidswap.swap.stylegan.recorded import build_recorded, load_prefixed, recorded_configs, recorded_generator

__all__ = ["TRAIN_FORMAT", "E4SCoreConfig", "E4SCore", "E4SIdentity", "read_e4s", "load_e4s",
           "build_e4s"]

TRAIN_FORMAT = "vidswap.e4s.train"


def read_e4s(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of an E4S checkpoint; ModelError (exit 4) when missing, unreadable or not one."""
    return read_tagged_checkpoint(path, (TRAIN_FORMAT,), "E4S checkpoint", "vidswap E4S",
                                  "`vidswap train` with an E4S train.yaml (method: e4s)")


def load_e4s(path: str | Path, resolution: int | None = None) -> tuple[E4S, dict[str, str]]:
    """(E4S model in eval mode, metadata) from a checkpoint; ``resolution`` (when given) must be the
    generator's."""
    path = Path(path)
    tensors, meta = read_e4s(path)
    cfg, gcfg = recorded_configs(meta, path, "E4S", E4SConfig)
    gen = recorded_generator(gcfg, path, resolution)
    load_prefixed(gen, tensors, "S", path, "E4S")
    model = build_recorded("E4S", path, lambda: E4S(cfg, gen))
    load_prefixed(model.encoder, tensors, "E", path, "E4S")
    if "w_avg" in tensors:
        model.w_avg.copy_(tensors["w_avg"])
    return model.eval(), meta


@dataclass(frozen=True)
class E4SCoreConfig:
    """``swap.e4s``: checkpoint (required), resolution the generator must have (None: any), batch_size (crops per
    encoder + generator pass), feather (alpha border ramp, fraction of the crop side).

    ``batch_size`` 1 (default) renders each crop on its own, so a frame's result does not depend on which frames
    share its render batch and farm chunks are bit-identical to one pass (larger passes differ by float rounding).
    """

    checkpoint: str | None = None
    resolution: int | None = None
    batch_size: int = 1
    feather: float = 0.08

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"swap.e4s.batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.feather < 0.5:
            raise ConfigError(f"swap.e4s.feather must be in [0, 0.5), got {self.feather}")


@dataclass(kw_only=True)
class E4SIdentity(SourceIdentity):
    """``codes`` (C, L, D): the source photos' mean per-region W+ codes."""

    codes: Tensor


class E4SCore(SwapCore):
    """See the module doc."""

    name = "e4s"
    needs = frozenset({"image", "landmarks", "embedding"})

    def __init__(self, config: E4SCoreConfig, device: torch.device | str = "cpu",
                 regions: tuple[str, ...] | None = None):
        """``regions``: ``composite.regions`` (None: the whole face)."""
        if not config.checkpoint:
            raise ConfigError("swap.core e4s needs a trained E4S checkpoint: swap.e4s.checkpoint (or --checkpoint; "
                              "train one with `vidswap train --config` an E4S train.yaml)")
        self.config = config
        self.select = region_select(regions)
        self.device = torch.device(device)
        self.model, self.meta = load_e4s(config.checkpoint, config.resolution)
        self.model.to(self.device).requires_grad_(False)
        #: the checkpoint's generator; :meth:`use_generator` swaps in the per-clip tuned copy
        self.base: StyleGAN2Generator = self.model.generator
        self.size = self.base.cfg.resolution
        self.crop = FFHQCrop(size=self.size)

    def use_generator(self, generator: torch.nn.Module) -> None:
        """Render with ``generator`` from now on (the per-clip PTI-tuned copy)."""
        self.model.generator = generator.to(self.device).eval().requires_grad_(False)

    def crop_masks(self, landmarks: Tensor) -> Tensor:
        """(B, N, 2 or 3) dense landmarks in crop pixels -> (B, C, R, R) region masks."""
        return self.model.masks(kps5_from_landmarks(landmarks.float()))

    def align_source(self, source: SourceFace) -> tuple[Tensor, Tensor]:
        """((3, R, R) the source photo in the FFHQ crop, (C, R, R) its region masks)."""
        m = self.crop.frame_to_crop(source.landmarks[None].float().cpu())
        lm = source.landmarks[None, :, :2].float().cpu()
        lm_crop = lm @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]
        crop = warp_to_crop(source.image[None].float().to(self.device), m.to(self.device), self.size)[0]
        return crop.clamp(0, 1), self.crop_masks(lm_crop)[0].to(self.device)

    def codes(self, crops: Tensor, masks: Tensor) -> Tensor:
        """(B, C, L, D) per-region codes of (B, 3, R, R) crops, one crop per encoder pass (``batch_size``)."""
        n = self.config.batch_size
        return torch.cat([self.model.encode(crops[i:i + n], masks[i:i + n]) for i in range(0, len(crops), n)])

    @torch.no_grad()
    def prepare(self, sources: list[SourceFace]) -> E4SIdentity:
        if not sources:
            raise ConfigError("the e4s core needs at least one source photo")
        crops, masks = zip(*(self.align_source(s) for s in sources))
        codes = self.codes(torch.stack(crops), torch.stack(masks))
        embs = [s.embedding for s in sources if s.embedding is not None]
        emb = F.normalize(torch.stack(embs).float().mean(0), dim=0) if embs else None
        return E4SIdentity(codes=codes.mean(0).cpu(), embedding=emb)

    @torch.no_grad()
    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        if not isinstance(identity, E4SIdentity):
            raise TypeError(f"the e4s core needs its own prepared identity, got {type(identity).__name__}")
        dev = batch.target_crops.device
        model = self.model.to(dev)
        crops, masks = batch.target_crops.float().clamp(0, 1), self.crop_masks(batch.target_landmarks).to(dev)
        outs, n = [], self.config.batch_size
        for i in range(0, len(crops), n):
            target = model.encode(crops[i:i + n], masks[i:i + n])
            mixed = model.mix(identity.codes.to(dev), target, self.select)
            outs.append(from_unit(model.decode(mixed, masks[i:i + n])))
        out = torch.cat(outs) if outs else batch.target_crops
        alpha = border_alpha(self.size, self.config.feather, dev).expand(out.shape[0], 1, -1, -1)
        return SwapResult(crops=out, alpha=alpha.contiguous(), driven_landmarks=batch.target_landmarks)


def build_e4s(config: E4SCoreConfig, context) -> E4SCore:
    """The registry's builder (ModelError, exit 4, for a missing or unusable checkpoint)."""
    return E4SCore(config, device=context.device, regions=getattr(context, "regions", None))
