"""The IDATT swap core (``swap.core: idatt``, MAttFace) and its checkpoint reader.

Config::

    swap:
      core: idatt
      idatt: {checkpoint: runs/idatt/checkpoints/last.safetensors}

(or ``vidswap run --swap-core idatt --checkpoint FILE``). The checkpoint is a ``vidswap train`` IDATT file
(``format = vidswap.idatt.train``): the trainable parts (``I.*``: feature pyramid, IDATT blocks, latent head,
blender, mean W) and the frozen StyleGAN2 they were trained with (``S.*``), so one file is all a render needs.
The core

* asks for FFHQ crops at the generator's resolution (:class:`~vidswap.swap.stylegan.align.FFHQCrop`);
* encodes every source photo to its feature pyramid; several photos are several key sets of the attention
  (:func:`~vidswap.swap.stylegan.idatt.source_keys`), not an average;
* per batch of target crops: target features attend to the source's, the latent head gives W+, the generator
  renders the first pass; when the checkpoint trained the blending stage (and ``two_stage`` is on) the blender
  merges it with the target outside the inner face (mask from the target's keypoints); the crops go back with a
  feathered border alpha to the compositor.
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
from vidswap.swap.stylegan.idatt import IDATT, IDATTConfig, source_keys
from vidswap.swap.stylegan.inversion import from_unit
from vidswap.swap.stylegan.recorded import build_recorded, load_prefixed, recorded_configs, recorded_generator

__all__ = ["TRAIN_FORMAT", "IDATTCoreConfig", "IDATTCore", "IDATTIdentity", "read_idatt", "load_idatt_weights",
           "load_idatt", "blend_trained", "build_idatt"]

TRAIN_FORMAT = "vidswap.idatt.train"


def read_idatt(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of an IDATT checkpoint; ModelError (exit 4) when missing, unreadable or not one."""
    return read_tagged_checkpoint(path, (TRAIN_FORMAT,), "IDATT checkpoint", "IDATT",
                                  "`vidswap train` with an IDATT train.yaml (method: idatt)")


def load_idatt_weights(model: IDATT, tensors: dict[str, Tensor], path: Path) -> None:
    """The ``S.*`` generator and ``I.*`` trainable tensors into ``model`` (strict); ModelError on a mismatch."""
    load_prefixed(model.generator, tensors, "S", path, "IDATT")
    own = {k: v for k, v in tensors.items() if k.startswith("I.")}
    own.update({f"I.generator.{k}": v for k, v in model.generator.state_dict().items()})
    load_prefixed(model, own, "I", path, "IDATT")


def blend_trained(meta: dict[str, str]) -> bool:
    """Whether the checkpoint's run reached the blending stage (step past encoder_steps + idatt_steps)."""
    try:
        return int(meta["step"]) > int(meta["encoder_steps"]) + int(meta["idatt_steps"])
    except (KeyError, ValueError):
        return False


def load_idatt(path: str | Path, resolution: int | None = None) -> tuple[IDATT, dict[str, str]]:
    """(IDATT model in eval mode, metadata); ``resolution`` (when given) must be the generator's."""
    path = Path(path)
    tensors, meta = read_idatt(path)
    cfg, gcfg = recorded_configs(meta, path, "IDATT", IDATTConfig)
    gen = recorded_generator(gcfg, path, resolution)
    model = build_recorded("IDATT", path, lambda: IDATT(cfg, gen))
    load_idatt_weights(model, tensors, path)
    return model.eval(), meta


@dataclass(frozen=True)
class IDATTCoreConfig:
    """``swap.idatt``: checkpoint (required), resolution the generator must have (None: any), batch_size (crops
    per pass), two_stage (blend with the target when the checkpoint trained that stage), feather (alpha border
    ramp, fraction of the crop side).

    ``batch_size`` 1 (default) renders each crop on its own, so a frame's result does not depend on which frames
    share its pass and farm chunks are bit-identical to one pass (larger passes differ by float rounding).
    """

    checkpoint: str | None = None
    resolution: int | None = None
    batch_size: int = 1
    two_stage: bool = True
    feather: float = 0.08

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"swap.idatt.batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.feather < 0.5:
            raise ConfigError(f"swap.idatt.feather must be in [0, 0.5), got {self.feather}")


@dataclass(kw_only=True)
class IDATTIdentity(SourceIdentity):
    """``features``: the source photos' [F_c, F_m, F_f] as one key set each level, (1, C, h, N w)."""

    features: list[Tensor]


class IDATTCore(SwapCore):
    """See the module doc."""

    name = "idatt"
    needs = frozenset({"image", "landmarks", "embedding"})

    def __init__(self, config: IDATTCoreConfig, device: torch.device | str = "cpu"):
        if not config.checkpoint:
            raise ConfigError("swap.core idatt needs a trained IDATT checkpoint: swap.idatt.checkpoint (or "
                              "--checkpoint; train one with `vidswap train --config` an IDATT train.yaml)")
        self.config = config
        self.device = torch.device(device)
        self.model, self.meta = load_idatt(config.checkpoint, config.resolution)
        self.model.to(self.device).requires_grad_(False)
        self.size = self.model.generator.cfg.resolution
        self.crop = FFHQCrop(size=self.size)
        self.two_stage = config.two_stage and blend_trained(self.meta)

    def align_source(self, source: SourceFace) -> Tensor:
        """(3, R, R) the source photo in the FFHQ crop."""
        m = self.crop.frame_to_crop(source.landmarks[None].float().cpu()).to(self.device)
        return warp_to_crop(source.image[None].float().to(self.device), m, self.size)[0].clamp(0, 1)

    @torch.no_grad()
    def prepare(self, sources: list[SourceFace]) -> IDATTIdentity:
        if not sources:
            raise ConfigError("the idatt core needs at least one source photo")
        feats = [self.model.encode_features(self.align_source(s)[None]) for s in sources]
        keys = [source_keys(torch.cat([f[i] for f in feats])).cpu() for i in range(3)]
        embs = [s.embedding for s in sources if s.embedding is not None]
        emb = F.normalize(torch.stack(embs).float().mean(0), dim=0) if embs else None
        return IDATTIdentity(features=keys, embedding=emb)

    @torch.no_grad()
    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        if not isinstance(identity, IDATTIdentity):
            raise TypeError(f"the idatt core needs its own prepared identity, got {type(identity).__name__}")
        dev = batch.target_crops.device
        model = self.model.to(dev)
        source = [f.to(dev) for f in identity.features]
        outs, n = [], self.config.batch_size
        for i in range(0, len(batch.target_crops), n):
            target = batch.target_crops[i:i + n].float().clamp(0, 1)
            ws = model.codes(model.transfer(source, model.encode_features(target)))
            img, feats = model.side(ws)
            if self.two_stage:
                kps = kps5_from_landmarks(batch.target_landmarks[i:i + n].float())[..., :2]
                img = model.final(img, feats, target, kps.to(dev))
            outs.append(from_unit(img))
        crops = torch.cat(outs) if outs else batch.target_crops
        alpha = border_alpha(self.size, self.config.feather, dev).expand(crops.shape[0], 1, -1, -1)
        return SwapResult(crops=crops, alpha=alpha.contiguous(), driven_landmarks=batch.target_landmarks)


def build_idatt(config: IDATTCoreConfig, context) -> IDATTCore:
    """The registry's builder (ModelError, exit 4, for a missing or unusable checkpoint)."""
    return IDATTCore(config, device=context.device)
