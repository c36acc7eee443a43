"""The encoder-free StyleGAN swap core (``swap.core: e4s-pti``): inversion + pivotal tuning, no trained encoder.

Config::

    swap:
      core: e4s-pti
      e4s-pti: {checkpoint: ffhq1024.safetensors}

(or ``vidswap run --swap-core e4s-pti --checkpoint FILE``). The checkpoint is a StyleGAN2 generator converted by
``vidswap models convert-stylegan``; nothing else is needed. The core

* asks for FFHQ crops at the generator's resolution (:class:`~vidswap.swap.stylegan.align.FFHQCrop`);
* inverts every source photo to W+ (``source_steps`` of :func:`~vidswap.swap.stylegan.inversion.invert`) and,
  per target frame, the target crop (``steps``) with the checkpoint's generator (the pivots);
* mixes the codes layer by layer (:func:`mix_codes`): the target's at the coarse layers (pose, face outline) and
  the fine ones (colour, light), the source's at the identity layers ``[id_start, id_stop)``, blended by
  ``mix_weight``; with two source photos, ``mix_shape_source`` gives the lower half of the identity layers and
  ``mix_texture_source`` the upper half (MFIM's identity mixing across layers, the settings the geometric core
  names alike);
* synthesises the mixed codes with the generator -- the per-clip PTI-tuned copy when ``tune.enabled``
  (:mod:`vidswap.train.stylegan_pti`, a tune-pass step whose weights are cached in the job folder; a render pass
  only loads them) -- and hands the crop back to the compositor with a feathered border alpha;
* with ``composite.regions`` a part of the face, synthesises per-region codes (E4S's mask-guided generator,
  :mod:`~vidswap.swap.stylegan.regional`): the mixed code inside the selected regions, the target's pivot
  elsewhere, so the swapped parts are rendered in the plate's own face (the compositor then cuts them out).

Slow by design: every frame is an optimisation (``steps`` forward + backward passes of the generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.composite.regions import covers_face, region_classes
from vidswap.errors import ConfigError, ModelError
from vidswap.faces.align import warp_to_crop
from vidswap.swap.base import SourceFace, SourceIdentity, SwapBatch, SwapCore, SwapResult
from vidswap.swap.facedancer import border_alpha
from vidswap.swap.stylegan.align import FFHQCrop
from vidswap.swap.stylegan.generator import StyleGAN2Generator
from vidswap.swap.stylegan.importer import load_generator
from vidswap.swap.stylegan.inversion import InversionParams, from_unit, invert, mean_w, synthesize
from vidswap.swap.stylegan.regional import regional_synthesize

__all__ = ["E4SPTIConfig", "E4SPTICore", "E4SPTIIdentity", "build_e4s_pti", "default_id_layers", "mix_codes"]


@dataclass(frozen=True)
class E4SPTIConfig:
    """``swap.e4s-pti``.

    checkpoint: converted StyleGAN2 safetensors (required). resolution: the generator's side it must have (None:
    any). steps / source_steps / lr: W+ optimisation per target frame / per source photo. w_l2, w_l1,
    w_multiscale: reconstruction loss weights. id_start, id_stop: the W+ layers that take the source's code (None:
    :func:`default_id_layers`). mix_weight: 1 = the source's code at those layers, 0 = the target's.
    mix_shape_source / mix_texture_source: source photo indices for the lower / upper identity layers.
    feather: alpha border ramp (fraction of the crop side)."""

    checkpoint: str | None = None
    resolution: int | None = None
    steps: int = 100
    source_steps: int = 300
    lr: float = 0.05
    w_l2: float = 1.0
    w_l1: float = 0.5
    w_multiscale: float = 0.5
    id_start: int | None = None
    id_stop: int | None = None
    mix_weight: float = 1.0
    mix_shape_source: int | None = None
    mix_texture_source: int | None = None
    feather: float = 0.08

    def __post_init__(self) -> None:
        if self.steps < 0 or self.source_steps < 0:
            raise ConfigError(f"swap.e4s-pti steps and source_steps must be >= 0, got {self.steps}, "
                              f"{self.source_steps}")
        if self.lr <= 0:
            raise ConfigError(f"swap.e4s-pti.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.mix_weight <= 1.0:
            raise ConfigError(f"swap.e4s-pti.mix_weight must be in [0, 1], got {self.mix_weight}")
        if not 0 <= self.feather < 0.5:
            raise ConfigError(f"swap.e4s-pti.feather must be in [0, 0.5), got {self.feather}")
        for name in ("mix_shape_source", "mix_texture_source"):
            if (v := getattr(self, name)) is not None and v < 0:
                raise ConfigError(f"swap.e4s-pti.{name} must be a source photo index >= 0, got {v}")

    def inversion(self, source: bool = False) -> InversionParams:
        """The W+ optimisation settings for target frames (or source photos)."""
        return InversionParams(steps=self.source_steps if source else self.steps, lr=self.lr, w_l2=self.w_l2,
                               w_l1=self.w_l1, w_multiscale=self.w_multiscale)


def default_id_layers(num_ws: int) -> tuple[int, int]:
    """The identity layers when not configured: from the 16 px block's first conv (W+ index 3) up to index 9
    (the 64 px block; 18-layer FFHQ 1024: [3, 9)), leaving at least the last 3 (fine colour/light) to the target."""
    return 3, max(4, min(9, num_ws - 3))


def mix_codes(target: Tensor, source: Tensor, id_layers: tuple[int, int], weight: float = 1.0) -> Tensor:
    """W+ codes (B, L, D): ``target``'s except at layers ``[start, stop)``, where ``source`` ((L, D) or (B, L, D))
    is blended in: target + weight · (source - target)."""
    start, stop = id_layers
    out = target.clone()
    src = source.expand_as(target) if source.ndim == 2 else source
    out[:, start:stop] = target[:, start:stop].lerp(src[:, start:stop].to(target.dtype), weight)
    return out


@dataclass(kw_only=True)
class E4SPTIIdentity(SourceIdentity):
    """``codes``: (P, L, D) each source photo's W+; ``ws``: (L, D) the source code used at the identity layers."""

    codes: Tensor
    ws: Tensor


class E4SPTICore(SwapCore):
    """See the module doc."""

    name = "e4s-pti"
    needs = frozenset({"image", "landmarks", "embedding"})

    def __init__(self, config: E4SPTIConfig, device: torch.device | str = "cpu",
                 regions: tuple[str, ...] | None = None, loops: dict | None = None):
        """``regions``: ``composite.regions`` (None or the whole face: one code per frame); a part of the face
        needs the mesh's region ``loops`` (``MeshTopology.regions``) for per-region codes."""
        self.regions = None if regions is None or covers_face(regions) else tuple(regions)
        if self.regions is not None and loops is None:
            raise ValueError("per-region codes need the mesh topology's region loops")
        self.loops = loops
        if not config.checkpoint:
            raise ConfigError("swap.core e4s-pti needs a StyleGAN2 checkpoint: swap.e4s-pti.checkpoint (or "
                              "--checkpoint; convert NVIDIA's pickle with `vidswap models convert-stylegan`)")
        self.config = config
        self.device = torch.device(device)
        #: the checkpoint's generator: it inverts (the pivots), and renders when there is no tuned copy
        self.base: StyleGAN2Generator = load_generator(config.checkpoint, config.resolution).to(self.device).eval()
        self.base.requires_grad_(False)
        with torch.no_grad():  # a generator that never tracked its mean W gets it once here, not at every inversion
            self.base.mapping.w_avg.copy_(mean_w(self.base))
        self.generator: StyleGAN2Generator = self.base
        num_ws = self.base.num_ws
        start, stop = default_id_layers(num_ws)
        self.id_layers = (start if config.id_start is None else config.id_start,
                          stop if config.id_stop is None else config.id_stop)
        if not 0 <= self.id_layers[0] < self.id_layers[1] <= num_ws:
            raise ConfigError(f"swap.e4s-pti id_start/id_stop must satisfy 0 <= start < stop <= {num_ws} (this "
                              f"generator's W+ layers), got {self.id_layers}")
        self.size = self.base.cfg.resolution
        self.crop = FFHQCrop(size=self.size)

    def use_generator(self, generator: torch.nn.Module) -> None:
        """Render with ``generator`` from now on (the per-clip PTI-tuned copy)."""
        self.generator = generator.to(self.device).eval().requires_grad_(False)

    def align_source(self, source: SourceFace) -> Tensor:
        """(3, R, R) the source photo in the FFHQ crop."""
        m = self.crop.frame_to_crop(source.landmarks[None].float().cpu()).to(self.device)
        return warp_to_crop(source.image[None].float().to(self.device), m, self.size)[0].clamp(0, 1)

    def invert_targets(self, crops: Tensor) -> Tensor:
        """(B, L, D) the pivots of (B, 3, R, R) target crops (the checkpoint's generator)."""
        return invert(self.base, crops.float().clamp(0, 1), self.config.inversion())

    def prepare(self, sources: list[SourceFace]) -> E4SPTIIdentity:
        if not sources:
            raise ConfigError("the e4s-pti core needs at least one source photo")
        cfg = self.config
        for name in ("mix_shape_source", "mix_texture_source"):
            if (v := getattr(cfg, name)) is not None and v >= len(sources):
                raise ConfigError(f"swap.e4s-pti.{name} is {v} but there are {len(sources)} source photo(s)")
        crops = torch.stack([self.align_source(s) for s in sources])
        codes = invert(self.base, crops, cfg.inversion(source=True))
        ws = codes.mean(0)
        start, stop = self.id_layers
        mid = (start + stop + 1) // 2
        if cfg.mix_shape_source is not None:
            ws[start:mid] = codes[cfg.mix_shape_source, start:mid]
        if cfg.mix_texture_source is not None:
            ws[mid:stop] = codes[cfg.mix_texture_source, mid:stop]
        embs = [s.embedding for s in sources if s.embedding is not None]
        emb = F.normalize(torch.stack(embs).float().mean(0), dim=0) if embs else None
        return E4SPTIIdentity(codes=codes.cpu(), ws=ws.cpu(), embedding=emb)

    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        if not isinstance(identity, E4SPTIIdentity):
            raise TypeError(f"the e4s-pti core needs its own prepared identity, got {type(identity).__name__}")
        dev = batch.target_crops.device
        self.base.to(dev)
        pivots = self.invert_targets(batch.target_crops)
        mixed = mix_codes(pivots, identity.ws.to(dev), self.id_layers, self.config.mix_weight)
        gen = self.generator.to(dev)
        with torch.no_grad():  # one crop at a time, as the inversion: batched kernels differ in the last bits, and
            # a farm chunk boundary may split a batch anywhere
            if self.regions is None:
                crops = from_unit(torch.cat([synthesize(gen, code[None]) for code in mixed]))
            else:  # E4S: the swapped code inside the selected regions, the target's own outside
                classes = region_classes(batch.target_landmarks.float(), self.loops, (self.size, self.size),
                                         self.regions).to(dev)
                crops = from_unit(torch.cat([
                    regional_synthesize(gen, torch.stack([pivot, code])[None], classes[i:i + 1])
                    for i, (pivot, code) in enumerate(zip(pivots, mixed))]))
        alpha = border_alpha(self.size, self.config.feather, dev).expand(crops.shape[0], 1, -1, -1)
        return SwapResult(crops=crops, alpha=alpha.contiguous(), driven_landmarks=batch.target_landmarks)


def build_e4s_pti(config: E4SPTIConfig, context) -> E4SPTICore:
    """The registry's builder (ModelError, exit 4, for a missing or unusable checkpoint)."""
    if config.checkpoint and not Path(config.checkpoint).is_file():
        raise ModelError(f"swap.e4s-pti.checkpoint {config.checkpoint} does not exist")
    regions = getattr(context, "regions", None)
    loops = context.topology.regions if regions is not None and not covers_face(regions) else None
    return E4SPTICore(config, device=context.device, regions=regions, loops=loops)
