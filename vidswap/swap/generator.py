"""A small FaceDancer-style refinement generator on top of the geometric swap, and its refiner adapter.

The generator refines what :class:`vidswap.swap.geometric.core.GeometricSwapCore` renders (the source texture on the driven
mesh) into a face crop that fits the plate (lighting, shading, seams), conditioned on the source identity:

* **encoder** over 7 channels ``[target crop, render, render alpha]`` (U-Net, residual blocks, average-pool
  down-sampling); skip features at S, S/2, S/4, S/8, bottleneck at S/16 (S = crop side: 128, 256, 512 ...);
* **identity**: the 128-d SFace embedding through a mapping MLP (4 linear layers, leaky ReLU between them;
  FaceDancer's mapping network) into a style vector ``w``; every decoder residual block is modulated by AdaIN
  (per-channel scale and bias from ``w``);
* **skips**: AFFA gating at S/8, S/4, S/2 (FaceDancer config C: a learned mask ``m`` from the concatenated
  features, ``h' = h·m + (1 - m)·z``), plain concatenation at the top resolution S;
* **output**: a residual on the render with a **zero-initialised gain** γ (IDATT's ``F̂ = γ F + F_t``):
  ``crop = render + γ_rgb · Δ_rgb`` and ``alpha = clamp(render_alpha + γ_a · Δ_a, 0, 1)``. An untrained generator
  therefore returns the render and its alpha exactly (bit for bit), so switching it on can never make a result
  worse than the swap core alone; per-clip tuning (:mod:`vidswap.train.tune`) moves γ away from zero.

Target-face low-pass: inside the face region (the render's alpha and the plate's face oval, dilated) the target
crop is replaced by a low-passed copy (``lowpass``: S/16-px blocks by default) before encoding. The generator
still sees the plate's lighting and colour there, and everything outside the face sharp (hair, occluders, the
seam), but not the plate actor's identity-bearing detail: per-clip tuning trains on self-reenactment pairs whose
ground truth *is* the target crop, and a sharp target input would teach the generator to copy it (undoing the
swap at inference).

Weights are stored as safetensors only (:func:`save_generator`, :func:`load_generator`); the architecture
(:class:`GeneratorConfig`) travels in the file's metadata.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from vidswap.errors import ModelError
from vidswap.faces.topology import load_topology
from vidswap.swap.base import SourceIdentity, SwapBatch, SwapResult
from vidswap.appearance.raster import fill_polygons

__all__ = [
    "GeneratorConfig",
    "SwapGenerator",
    "AdaIN",
    "AFFA",
    "MappingNetwork",
    "face_region",
    "lowpass_face",
    "save_generator",
    "load_generator",
    "GeneratorRefiner",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 1
_SLOPE = 0.2  # leaky ReLU slope


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`SwapGenerator`.

    Attributes:
        channels: feature channels at S, S/2, S/4, S/8 (the bottleneck at S/16 keeps the last).
        bottleneck_blocks: AdaIN residual blocks at S/16.
        id_dim: identity embedding size (SFace: 128).
        style_dim: mapped identity (style) vector size.
        mapping_layers: linear layers of the mapping network.
        lowpass: the face interior of the target crop is low-passed to S/lowpass blocks before encoding (0: off).
        region_grow: dilation of the face region for the low-pass, fraction of S.
    """

    channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    bottleneck_blocks: int = 1
    id_dim: int = 128
    style_dim: int = 256
    mapping_layers: int = 4
    lowpass: int = 16
    region_grow: float = 1.0 / 32.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GeneratorConfig":
        raw = json.loads(text)
        names = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in names}
        return cls(**kw)


# ---------------------------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------------------------

def _conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class MappingNetwork(nn.Module):
    """Identity embedding (B, id_dim) -> style vector w (B, style_dim): linear layers, leaky ReLU between them."""

    def __init__(self, id_dim: int, style_dim: int, layers: int = 4):
        super().__init__()
        mods: list[nn.Module] = []
        d = id_dim
        for k in range(layers):
            mods.append(nn.Linear(d, style_dim))
            if k < layers - 1:
                mods.append(nn.LeakyReLU(_SLOPE))
            d = style_dim
        self.net = nn.Sequential(*mods)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(F.normalize(z.float(), dim=-1, eps=1e-12))


class AdaIN(nn.Module):
    """Adaptive instance normalisation: ``y = σ_w · (h - μ(h)) / σ(h) + μ_w`` per sample and channel.

    ``(σ_w, μ_w)`` come from the style vector by a linear layer (σ_w = 1 + scale, so a zero-initialised layer
    starts as plain instance normalisation). The output's per-channel spatial mean is μ_w and its (biased)
    standard deviation |σ_w| (up to ``eps``).
    """

    def __init__(self, channels: int, style_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.affine = nn.Linear(style_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    @staticmethod
    def apply_style(h: Tensor, scale: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
        """Normalise ``h`` (B, C, H, W) per sample and channel, then ``scale`` (B, C) and shift by ``bias`` (B, C)."""
        mu = h.mean(dim=(2, 3), keepdim=True)
        var = h.var(dim=(2, 3), keepdim=True, unbiased=False)
        return (h - mu) * torch.rsqrt(var + eps) * scale[:, :, None, None] + bias[:, :, None, None]

    def style(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """(scale σ_w, bias μ_w), each (B, C), of a style vector (B, style_dim)."""
        s, b = self.affine(w).chunk(2, dim=1)
        return 1.0 + s, b

    def forward(self, h: Tensor, w: Tensor) -> Tensor:
        scale, bias = self.style(w)
        return self.apply_style(h, scale, bias, self.eps)


class AFFA(nn.Module):
    """Adaptive Feature Fusion Attention (FaceDancer): a learned per-channel, per-pixel gate between the decoder's
    identity-conditioned features ``h`` and the encoder skip ``z``: ``h' = h·m + (1 - m)·z``,
    ``m = sigmoid(conv(concat(h, z)))``."""

    def __init__(self, channels: int):
        super().__init__()
        mid = max(channels // 2, 8)
        self.reduce = nn.Conv2d(2 * channels, mid, 1)
        self.mask = _conv(mid, channels, 3)

    @staticmethod
    def fuse(h: Tensor, z: Tensor, m: Tensor) -> Tensor:
        """The gating equation ``h·m + (1 - m)·z``."""
        return h * m + (1.0 - m) * z

    def gate(self, h: Tensor, z: Tensor) -> Tensor:
        """The attention mask m in [0, 1], same shape as h."""
        return torch.sigmoid(self.mask(F.leaky_relu(self.reduce(torch.cat([h, z], 1)), _SLOPE)))

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        return self.fuse(h, z, self.gate(h, z))


class ResDown(nn.Module):
    """Encoder residual block: average-pool by 2, ``convs`` 3x3 convs with leaky ReLU, 1x1 (or identity) skip."""

    def __init__(self, cin: int, cout: int, convs: int = 2):
        super().__init__()
        self.convs = nn.ModuleList([_conv(cin if k == 0 else cout, cout) for k in range(convs)])
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(x, 2)
        h = x
        for conv in self.convs:
            h = conv(F.leaky_relu(h, _SLOPE))
        return (h + self.skip(x)) * (1.0 / math.sqrt(2.0))


class ResUpAdaIN(nn.Module):
    """Decoder residual block: 1x1 channel change at the low resolution, bilinear up-sampling by 2 (optional),
    ``convs`` 3x3 convolutions each followed by AdaIN and leaky ReLU, identity skip around them. ``bias``: whether
    those convolutions have a bias (AdaIN's instance normalisation removes it anyway)."""

    def __init__(self, cin: int, cout: int, style_dim: int, up: bool = True, convs: int = 2, bias: bool = True):
        super().__init__()
        self.up = up
        self.proj = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.convs = nn.ModuleList([_conv(cout, cout, bias=bias) for _ in range(convs)])
        self.norms = nn.ModuleList([AdaIN(cout, style_dim) for _ in range(convs)])

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = self.proj(x)
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = F.leaky_relu(norm(conv(h), w), _SLOPE)
        return (h + x) * (1.0 / math.sqrt(2.0))


# ---------------------------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------------------------

def face_region(target_landmarks: Tensor | None, render_alpha: Tensor, face_loop: Tensor | Sequence[int] | None,
                grow: float = 1.0 / 32.0) -> Tensor:
    """Where the target's face is hidden from the encoder: render alpha ∪ the plate's face oval, dilated.

    Args:
        target_landmarks: (B, 478, 2+) crop pixels, or None (render alpha only).
        render_alpha: (B, 1, S, S).
        face_loop: landmark index loop of the face oval (``topology.regions['face_oval']``), or None.
        grow: dilation as a fraction of S.

    Returns:
        (B, 1, S, S) soft mask in [0, 1].
    """
    H, W = render_alpha.shape[-2:]
    region = (render_alpha > 0).float()
    if target_landmarks is not None and face_loop is not None:

        loop = torch.as_tensor(face_loop, dtype=torch.long, device=render_alpha.device)
        oval = fill_polygons(target_landmarks.to(render_alpha.device).float(), [loop], (H, W))[:, None].float()
        region = torch.maximum(region, oval)
    r = max(1, int(round(grow * W)))
    region = F.max_pool2d(region, 2 * r + 1, 1, r)
    return F.avg_pool2d(region, 2 * r + 1, 1, r, count_include_pad=False)


def lowpass_face(target: Tensor, region: Tensor, blocks: int) -> Tensor:
    """Replace the target crop inside ``region`` by a low-pass (area down-sampling to ``S/blocks``, bilinear up)."""
    if blocks <= 0:
        return target
    H, W = target.shape[-2:]
    low_size = (max(1, H // blocks), max(1, W // blocks))
    low = F.interpolate(F.adaptive_avg_pool2d(target, low_size), size=(H, W), mode="bilinear", align_corners=False)
    return target * (1.0 - region) + low * region


# ---------------------------------------------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------------------------------------------

class SwapGenerator(nn.Module):
    """FaceDancer-style U-Net refining a geometric render (see the module doc). Fully convolutional: any crop side
    that is a multiple of 16 (128, 256, 512 ...).

    ``forward(target, render, render_alpha, embedding, region=None) -> (crop, alpha)``.
    """

    def __init__(self, config: GeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        c0, c1, c2, c3 = cfg.channels
        self.mapping = MappingNetwork(cfg.id_dim, cfg.style_dim, cfg.mapping_layers)
        self.stem = _conv(7, c0)
        self.e1 = ResDown(c0, c1)
        self.e2 = ResDown(c1, c2)
        self.e3 = ResDown(c2, c3)
        self.e4 = ResDown(c3, c3, convs=1)
        self.mid = nn.ModuleList([ResUpAdaIN(c3, c3, cfg.style_dim, up=False, convs=1)
                                  for _ in range(cfg.bottleneck_blocks)])
        self.d3 = ResUpAdaIN(c3, c3, cfg.style_dim)
        self.a3 = AFFA(c3)
        self.d2 = ResUpAdaIN(c3, c2, cfg.style_dim)
        self.a2 = AFFA(c2)
        self.d1 = ResUpAdaIN(c2, c1, cfg.style_dim)
        self.a1 = AFFA(c1)
        self.d0 = ResUpAdaIN(c1, c0, cfg.style_dim, convs=1)
        self.top = nn.Conv2d(2 * c0, c0, 1)  # concatenation fusion at the top resolution (1x1: the head is 3x3)
        self.head = _conv(c0, 4)
        #: γ: gains of the RGB and mask residuals, zero-initialised (the untrained generator is the identity)
        self.gain = nn.Parameter(torch.zeros(4))
        nn.init.normal_(self.head.weight, std=1e-2)
        nn.init.zeros_(self.head.bias)

    @property
    def is_identity(self) -> bool:
        """True while every gain is exactly zero (the output is the render, unchanged)."""
        return bool((self.gain.detach() == 0).all())

    def encode_inputs(self, target: Tensor, render: Tensor, render_alpha: Tensor, region: Tensor | None) -> Tensor:
        if region is not None and self.config.lowpass > 0:
            target = lowpass_face(target, region.to(target.dtype), self.config.lowpass)
        return torch.cat([target, render, render_alpha], 1)

    def residual(self, target: Tensor, render: Tensor, render_alpha: Tensor, embedding: Tensor,
                 region: Tensor | None = None) -> Tensor:
        """The raw residual Δ (B, 4, S, S) before the gains."""
        S = target.shape[-1]
        if target.shape[-2] % 16 or S % 16:
            raise ValueError(f"crop sides must be multiples of 16, got {tuple(target.shape[-2:])}")
        x = self.encode_inputs(target, render, render_alpha, region)
        emb = embedding.to(device=x.device, dtype=torch.float32)
        if emb.dim() == 1:
            emb = emb[None].expand(x.shape[0], -1)
        w = self.mapping(emb)
        z0 = F.leaky_relu(self.stem(x), _SLOPE)  # S
        z1 = self.e1(z0)  # S/2
        z2 = self.e2(z1)  # S/4
        z3 = self.e3(z2)  # S/8
        h = self.e4(z3)  # S/16
        for blk in self.mid:
            h = blk(h, w)
        h = self.a3(self.d3(h, w), z3)
        h = self.a2(self.d2(h, w), z2)
        h = self.a1(self.d1(h, w), z1)
        h = self.d0(h, w)
        h = F.leaky_relu(self.top(torch.cat([h, z0], 1)), _SLOPE)
        return self.head(h)

    def forward(self, target: Tensor, render: Tensor, render_alpha: Tensor, embedding: Tensor,
                region: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Refine a render.

        Args:
            target: (B, 3, S, S) aligned target crops.
            render: (B, 3, S, S) the swap core's crops.
            render_alpha: (B, 1, S, S) its alpha in [0, 1].
            embedding: (B, id_dim) or (id_dim,) source identity embedding (normalised here).
            region: (B, 1, S, S) the face region whose target pixels are low-passed (:func:`face_region`), or None.

        Returns:
            crop (B, 3, S, S) = render + γ_rgb·Δ_rgb and alpha (B, 1, S, S) = clamp(render_alpha + γ_a·Δ_a, 0, 1);
            exactly (render, render_alpha) while γ = 0.
        """
        delta = self.residual(target, render, render_alpha, embedding, region)
        g = self.gain.to(delta.dtype)
        crop = render + g[:3].view(1, 3, 1, 1) * delta[:, :3].to(render.dtype)
        alpha = torch.clamp(render_alpha + g[3] * delta[:, 3:4].to(render_alpha.dtype), 0.0, 1.0)
        return crop, alpha

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------------------------------------------------
# safetensors I/O
# ---------------------------------------------------------------------------------------------------------------

def save_generator(generator: SwapGenerator, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the weights as safetensors (atomically: the file is complete or absent); config in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in generator.state_dict().items()}
    meta = {"format": "vidswap.swap_generator", "version": str(FORMAT_VERSION),
            "config": generator.config.to_json()}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a generator file."""
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> SwapGenerator:
    """Build the generator described by a safetensors file's metadata and load its weights (strict)."""
    path = Path(path)
    try:
        meta = read_metadata(path)
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"cannot read generator weights {path}: {exc}") from None
    if meta.get("format") != "vidswap.swap_generator":
        raise ModelError(f"{path} is not a vidswap generator file (format {meta.get('format')!r})")
    gen = SwapGenerator(GeneratorConfig.from_json(meta["config"]))
    try:
        gen.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"generator weights {path} do not match their config: {exc}") from None
    return gen.to(device)


# ---------------------------------------------------------------------------------------------------------------
# the refiner: the generator on the render stage's core results
# ---------------------------------------------------------------------------------------------------------------

class GeneratorRefiner:
    """A :class:`~vidswap.swap.base.Refiner` running a (tuned) generator on the swap core's result.

    Runs under ``torch.no_grad`` in batches of ``batch_size`` (autocast bf16/fp16 on CUDA), conditioned on the
    source identity's SFace embedding (``embedding``, default ``identity.embedding``). An identity generator
    (all gains zero) returns the result object unchanged.

    Args:
        generator: a (tuned) :class:`SwapGenerator`.
        device: where it runs (default: the generator's device).
        batch_size: crops per forward pass.
        face_loop: face-oval landmark loop for :func:`face_region` (default: from the mesh topology).
        embedding: override of the source embedding.
    """

    def __init__(self, generator: SwapGenerator, device: str | torch.device | None = None, batch_size: int = 8,
                 face_loop: Sequence[int] | Tensor | None = None, embedding: Tensor | None = None,
                 autocast: bool = True):
        self.device = torch.device(device) if device is not None else next(generator.parameters()).device
        self.generator = generator.to(self.device).eval()
        self.batch_size = max(1, int(batch_size))
        if face_loop is None:
            face_loop = load_topology().regions["face_oval"]
        self.face_loop = torch.as_tensor(face_loop, dtype=torch.long)
        self.embedding = embedding
        self.autocast = autocast

    def source_embedding(self, identity: SourceIdentity) -> Tensor:
        """(D,) the embedding the generator is conditioned on."""
        embedding = self.embedding if self.embedding is not None else identity.embedding
        if embedding is None:
            raise ValueError("the generator refiner needs the source's SFace embedding (SourceIdentity.embedding)")
        return embedding.to(self.device, torch.float32).reshape(-1)

    def __call__(self, track_id: int, batch: SwapBatch, result: SwapResult, identity: SourceIdentity) -> SwapResult:
        if self.generator.is_identity:
            return result
        emb = self.source_embedding(identity)
        crops, alphas = [], []
        dev = self.device
        use_amp = self.autocast and dev.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        with torch.no_grad():
            for s in range(0, batch.target_crops.shape[0], self.batch_size):
                sl = slice(s, s + self.batch_size)
                tgt = batch.target_crops[sl].to(dev, torch.float32)
                ren = result.crops[sl].to(dev, torch.float32)
                alp = result.alpha[sl].to(dev, torch.float32)
                region = face_region(batch.target_landmarks[sl].to(dev), alp, self.face_loop.to(dev),
                                     self.generator.config.region_grow)
                with torch.autocast(device_type="cuda", dtype=amp_dtype, enabled=use_amp):
                    delta = self.generator.residual(tgt, ren, alp, emb, region)
                g = self.generator.gain.float()
                crops.append(ren + g[:3].view(1, 3, 1, 1) * delta[:, :3].float())
                alphas.append(torch.clamp(alp + g[3] * delta[:, 3:4].float(), 0.0, 1.0))
        out = torch.cat(crops).to(device=result.crops.device, dtype=result.crops.dtype)
        alpha = torch.cat(alphas).to(device=result.alpha.device, dtype=result.alpha.dtype)
        return SwapResult(crops=out, alpha=alpha, driven_landmarks=result.driven_landmarks,
                          confidence=result.confidence)
