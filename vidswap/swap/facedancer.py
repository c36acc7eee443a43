"""The FaceDancer swap core (``swap.core: facedancer``): a generator trained by ``vidswap train``.

Config::

    swap:
      core: facedancer
      facedancer: {checkpoint: runs/fd/export.safetensors}

(or ``vidswap run --swap-core facedancer --checkpoint FILE``). The checkpoint is an inference file from ``vidswap
train export`` or a training state (its generator is used). The core

* asks for ArcFace-template crops at the model's side S (:meth:`TemplateCrop.arcface`, the training alignment);
* prepares the source identity with the encoder the model was trained with (SFace unless the checkpoint names
  another ONNX file): every source photo aligned the same way, the identity vectors averaged and normalised
  (``id_vec``); ``embedding`` is the SFace one, as for every core;
* swaps in batches of ``batch_size`` crops on the batch's device; alpha is 1 over the crop with a ``feather``
  ramp at its border: the compositor multiplies its face-region, occlusion and confidence masks in, as for every
  core. With ``tune.enabled`` the generator itself is fine-tuned on the clip (pivotal tuning,
  :mod:`vidswap.train.facedancer.clip_tune`), not a refiner on its output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidswap.errors import ConfigError
from vidswap.faces.align import TemplateCrop, arcface_template, estimate_alignment, kps5_from_landmarks, warp_to_crop
from vidswap.swap.base import SourceFace, SourceIdentity, SwapBatch, SwapCore, SwapResult

__all__ = ["FaceDancerCoreConfig", "FaceDancerIdentity", "FaceDancerCore", "build_facedancer", "border_alpha"]


@dataclass(frozen=True)
class FaceDancerCoreConfig:
    """``swap.facedancer``: the checkpoint (required), crops per generator call, alpha border ramp (fraction of
    the crop side)."""

    checkpoint: str | None = None
    batch_size: int = 8
    feather: float = 0.08

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"swap.facedancer.batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.feather < 0.5:
            raise ConfigError(f"swap.facedancer.feather must be in [0, 0.5), got {self.feather}")


@dataclass(kw_only=True)
class FaceDancerIdentity(SourceIdentity):
    """``id_vec``: (D,) the source's unit identity vector in the model's encoder space."""

    id_vec: torch.Tensor


def border_alpha(size: int, feather: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 1, size, size): 1 inside, a linear ramp to 0 over ``feather · size`` pixels at each border."""
    if feather <= 0:
        return torch.ones(1, 1, size, size, device=device)
    ramp = max(1.0, feather * size)
    pos = torch.arange(size, dtype=torch.float32, device=device)
    edge = torch.minimum(pos + 0.5, size - 0.5 - pos) / ramp
    a = edge.clamp(0, 1)
    return (a[:, None] * a[None, :])[None, None]


class FaceDancerCore(SwapCore):
    """See the module doc."""

    name = "facedancer"
    needs = frozenset({"image", "landmarks"})

    def __init__(self, config: FaceDancerCoreConfig, device: torch.device | str = "cpu"):
        from vidswap.train.facedancer.checkpoint import identity_of, load_generator
        from vidswap.train.facedancer.identity import IdentityNet

        if not config.checkpoint:
            raise ConfigError("swap.core facedancer needs a checkpoint: swap.facedancer.checkpoint (or --checkpoint)")
        self.config = config
        self.device = torch.device(device)
        self.generator, meta = load_generator(config.checkpoint, self.device)
        self.generator.requires_grad_(False)
        onnx, mean, std = identity_of(meta)
        self.identity_net = IdentityNet.load(onnx, mean, std).to(self.device)
        #: SFace for the common ``SourceIdentity.embedding`` (refiners and the tune pass condition on it)
        self.sface_net = self.identity_net if onnx is None else IdentityNet.load().to(self.device)
        if self.identity_net.dim != self.generator.config.id_dim:
            raise ConfigError(f"{config.checkpoint}: the model takes {self.generator.config.id_dim}-d identities "
                              f"but the identity encoder gives {self.identity_net.dim}-d")
        self.size = self.generator.config.size
        self.crop = TemplateCrop.arcface(self.size)

    def use_generator(self, generator: torch.nn.Module) -> None:
        """Render with ``generator`` from now on (the per-clip tuned copy, :mod:`vidswap.train.facedancer.clip_tune`)."""
        self.generator = generator.to(self.device).eval().requires_grad_(False)

    def align_source(self, source: SourceFace) -> torch.Tensor:
        """(3, S, S) the source photo in the training alignment (ArcFace template at S)."""
        kps = kps5_from_landmarks(source.landmarks[None].float().cpu()).numpy()
        m = estimate_alignment(kps, self.size, arcface_template(self.size)).astype(np.float32)
        img = source.image[None].float().to(self.device)
        return warp_to_crop(img, torch.from_numpy(m).to(self.device), self.size)[0].clamp(0, 1)

    @torch.no_grad()
    def prepare(self, sources: list[SourceFace]) -> FaceDancerIdentity:
        if not sources:
            raise ConfigError("the facedancer core needs at least one source photo")
        crops = torch.stack([self.align_source(s) for s in sources])
        vec = F.normalize(self.identity_net(crops).mean(0), dim=0)
        sface = vec if self.sface_net is self.identity_net else F.normalize(self.sface_net(crops).mean(0), dim=0)
        return FaceDancerIdentity(id_vec=vec.cpu(), embedding=sface.cpu())

    @torch.no_grad()
    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        if not isinstance(identity, FaceDancerIdentity):
            raise TypeError(f"the facedancer core needs its own prepared identity, got {type(identity).__name__}")
        dev = batch.target_crops.device
        gen = self.generator.to(dev)
        z = identity.id_vec.to(dev)[None]
        outs = []
        for i in range(0, len(batch), self.config.batch_size):
            x = batch.target_crops[i:i + self.config.batch_size].float().clamp(0, 1)
            outs.append(gen(x, z.expand(x.shape[0], -1)))
        crops = torch.cat(outs) if outs else batch.target_crops
        alpha = border_alpha(crops.shape[-1], self.config.feather, dev).expand(crops.shape[0], 1, -1, -1)
        return SwapResult(crops=crops, alpha=alpha.contiguous(), driven_landmarks=batch.target_landmarks)


def build_facedancer(config: FaceDancerCoreConfig, context) -> FaceDancerCore:
    """The registry's builder."""
    if config.checkpoint and not Path(config.checkpoint).is_file():
        from vidswap.errors import ModelError

        raise ModelError(f"swap.facedancer.checkpoint {config.checkpoint} does not exist")
    return FaceDancerCore(config, device=context.device)
