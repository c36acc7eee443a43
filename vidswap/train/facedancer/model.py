"""The FaceDancer generator and discriminator (Rosberg et al., "FaceDancer: Pose- and Occlusion-Aware High
Fidelity Face Swapping"), as a trainable model.

Generator ``G(X_t, z_id) -> X_c`` (:class:`FaceDancerGenerator`):

* **encoder**: a 3x3 stem at S, then residual down-sampling blocks "with gradually increasing number of
  filters" (:class:`~vidswap.swap.generator.ResDown`): resolutions S, S/2, ..., S/2^(L-1), widths
  ``config.channels``; every resolution's feature is a skip ``z_a``;
* **mapping network** M: 4 fully connected layers, leaky ReLU after all but the last, ``z_id -> w_id``;
* **decoder**: residual blocks with AdaIN identity injection (:class:`AdaINBlock`, the AdaIN scale/bias
  from ``w_id``), from the bottleneck back up to S; at each resolution the skip is fused by
  **AFFA** (``h' = h·m + (1 - m)·z_a``, :class:`~vidswap.swap.generator.AFFA`), a **concatenation** (then a 1x1
  convolution back to the width), or not at all. The paper's configuration C (its best ID retrieval, Table 1) is
  the default: concat at 256, AFFA at 128, 64, 32; configuration D adds AFFA at 16 and 8
  (:meth:`FaceDancerConfig.paper`).
* **output**: leaky ReLU, 3x3 convolution to RGB, tanh; images are [0, 1] at the interface (``2x - 1`` inside).

Discriminator (:class:`Discriminator`): StarGAN-v2's (which HifiFace reuses) without the multi-task heads: a 3x3
conv, ``log2(S) - 2`` residual down-sampling blocks (widths doubling from ``2^14 / S`` up to 512), leaky ReLU,
a 4x4 valid convolution, leaky ReLU, a 1x1 convolution to one logit per image.

Widths: the paper gives the filter counts only in its Fig. 2 (not in the text the project has); the default
``(64, 128, 256, 512, 512, 512)`` for 256..8 follows the StarGAN-v2 / HifiFace encoder it builds on. Smaller
widths (``channels``) make the tiny test / CPU models.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidswap.errors import ConfigError
from vidswap.swap.generator import AFFA, MappingNetwork, ResDown, ResUpAdaIN

__all__ = ["FaceDancerConfig", "FaceDancerGenerator", "Discriminator", "AdaINBlock", "SKIP_KINDS"]

SKIP_KINDS = ("affa", "concat", "none")
_SLOPE = 0.2


@dataclass(frozen=True)
class FaceDancerConfig:
    """Architecture of the generator and discriminator.

    Attributes:
        size: image side S (a power of two >= 16; the paper: 256).
        channels: encoder widths at S, S/2, ..., one per resolution (its length L sets the depth; bottleneck at
            S / 2^(L-1)).
        skips: the fusion of each resolution's skip, same order as ``channels``: "affa", "concat" or "none".
        bottleneck_blocks: AdaIN residual blocks at the bottleneck.
        id_dim: identity vector size (SFace 128; an ArcFace R50 512).
        style_dim: mapped identity w_id size.
        mapping_layers: fully connected layers of M (the paper: 4; 0 = no mapping network, configuration E).
        disc_channels: the discriminator's first width (StarGAN-v2: 2^14 / S) and its cap.
    """

    size: int = 256
    channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512)
    skips: tuple[str, ...] = ("concat", "affa", "affa", "affa", "none", "none")
    bottleneck_blocks: int = 2
    id_dim: int = 128
    style_dim: int = 512
    mapping_layers: int = 4
    disc_channels: tuple[int, int] = (64, 512)

    def __post_init__(self) -> None:
        if self.size < 16 or self.size & (self.size - 1):
            raise ConfigError(f"model.size must be a power of two >= 16, got {self.size}")
        if len(self.channels) < 2 or len(self.skips) != len(self.channels):
            raise ConfigError(f"model.channels ({len(self.channels)}) and model.skips ({len(self.skips)}) need one "
                              f"entry per resolution, at least 2")
        if self.size >> (len(self.channels) - 1) < 2:
            raise ConfigError(f"model.channels has {len(self.channels)} resolutions: too deep for size {self.size}")
        bad = [s for s in self.skips if s not in SKIP_KINDS]
        if bad:
            raise ConfigError(f"model.skips: unknown kinds {bad}; choose from {', '.join(SKIP_KINDS)}")

    @classmethod
    def paper(cls, variant: str = "C", **overrides) -> "FaceDancerConfig":
        """The paper's configurations at 256: "C" (concat 256, AFFA 128/64/32) or "D" (C + AFFA at 16 and 8),
        "E" (D without mapping network)."""
        skips = {"C": ("concat", "affa", "affa", "affa", "none", "none"),
                 "D": ("concat", "affa", "affa", "affa", "affa", "affa"),
                 "E": ("concat", "affa", "affa", "affa", "affa", "affa")}
        if variant not in skips:
            raise ConfigError(f"unknown FaceDancer configuration {variant!r}; choose C, D or E")
        base = {"skips": skips[variant], "mapping_layers": 0 if variant == "E" else 4}
        base.update(overrides)
        return cls(**base)

    def resolutions(self) -> list[int]:
        """Side of each encoder level, S first."""
        return [self.size >> i for i in range(len(self.channels))]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FaceDancerConfig":
        raw = json.loads(text)
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ConfigError(f"unknown FaceDancer model keys {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


class AdaINBlock(ResUpAdaIN):
    """Decoder residual block: 1x1 channel change, bilinear up-sampling by 2 (optional), two 3x3 convolutions each
    followed by AdaIN (identity injection) and leaky ReLU, identity shortcut, sum / sqrt(2). The convolutions
    have no bias: instance normalisation removes any per-channel constant, so a bias there would have an exactly
    zero gradient and Adam would turn its rounding noise into weight changes."""

    def __init__(self, cin: int, cout: int, style_dim: int, up: bool = True):
        super().__init__(cin, cout, style_dim, up=up, convs=2, bias=False)


class _Fuse(nn.Module):
    """One skip fusion: AFFA, concatenation + 1x1 convolution, or none."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        self.kind = kind
        if kind == "affa":
            self.op = AFFA(channels)
        elif kind == "concat":
            self.op = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        if self.kind == "affa":
            return self.op(h, z)
        if self.kind == "concat":
            return self.op(torch.cat([h, z], 1))
        return h


class FaceDancerGenerator(nn.Module):
    """``forward(target, id_vec) -> swapped``: target (B, 3, S, S) in [0, 1], id_vec (B, id_dim) (normalised
    inside) -> (B, 3, S, S) in [0, 1]."""

    def __init__(self, config: FaceDancerConfig | None = None):
        super().__init__()
        self.config = cfg = config or FaceDancerConfig()
        ch = cfg.channels
        if cfg.mapping_layers > 0:
            self.mapping = MappingNetwork(cfg.id_dim, cfg.style_dim, cfg.mapping_layers)
            style_dim = cfg.style_dim
        else:
            self.mapping = None
            style_dim = cfg.id_dim
        self.stem = nn.Conv2d(3, ch[0], 3, padding=1)
        self.down = nn.ModuleList([ResDown(ch[i - 1], ch[i]) for i in range(1, len(ch))])
        self.mid = nn.ModuleList([AdaINBlock(ch[-1], ch[-1], style_dim, up=False)
                                  for _ in range(cfg.bottleneck_blocks)])
        self.up = nn.ModuleList([AdaINBlock(ch[i], ch[i - 1], style_dim) for i in range(len(ch) - 1, 0, -1)])
        self.fuse = nn.ModuleList([_Fuse(kind, c) for kind, c in zip(cfg.skips, ch)])
        self.head = nn.Conv2d(ch[0], 3, 3, padding=1)

    def style(self, id_vec: Tensor) -> Tensor:
        """w_id (B, style_dim) of identity vectors (B, id_dim)."""
        if self.mapping is None:
            return F.normalize(id_vec.float(), dim=-1, eps=1e-12)
        return self.mapping(id_vec)

    def encode(self, target: Tensor) -> list[Tensor]:
        """The skip features z_a, S first: list of (B, channels[i], S/2^i, S/2^i)."""
        x = self.stem(target * 2.0 - 1.0)
        skips = [x]
        for block in self.down:
            x = block(x)
            skips.append(x)
        return skips

    def forward(self, target: Tensor, id_vec: Tensor) -> Tensor:
        w = self.style(id_vec)
        skips = self.encode(target)
        h = skips[-1]
        for block in self.mid:
            h = block(h, w)
        n = len(skips)
        h = self.fuse[n - 1](h, skips[n - 1])
        for k, block in enumerate(self.up):
            level = n - 2 - k
            h = self.fuse[level](block(h, w), skips[level])
        return (torch.tanh(self.head(F.leaky_relu(h, _SLOPE))) + 1.0) * 0.5

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class _DiscBlock(nn.Module):
    """StarGAN-v2 discriminator residual block (no normalisation): leaky ReLU, 3x3, avg-pool, leaky ReLU, 3x3;
    1x1 learned shortcut when the width changes; sum / sqrt(2)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, padding=1)
        self.conv2 = nn.Conv2d(cin, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        s = x if self.skip is None else self.skip(x)
        s = F.avg_pool2d(s, 2)
        h = self.conv1(F.leaky_relu(x, _SLOPE))
        h = F.avg_pool2d(h, 2)
        h = self.conv2(F.leaky_relu(h, _SLOPE))
        return (s + h) / math.sqrt(2.0)


class Discriminator(nn.Module):
    """``forward(images) -> (B,)`` logits; images (B, 3, S, S) in [0, 1]. Down-sampled to 4x4 by
    ``log2(S) - 2`` blocks, then a 4x4 valid convolution (1x1) and a 1x1 convolution to one logit."""

    def __init__(self, config: FaceDancerConfig | None = None):
        super().__init__()
        cfg = config or FaceDancerConfig()
        first, cap = cfg.disc_channels
        repeats = int(math.log2(cfg.size)) - 2
        blocks: list[nn.Module] = [nn.Conv2d(3, first, 3, padding=1)]
        c = first
        for _ in range(repeats):
            nxt = min(c * 2, cap)
            blocks.append(_DiscBlock(c, nxt))
            c = nxt
        blocks += [nn.LeakyReLU(_SLOPE), nn.Conv2d(c, c, 4), nn.LeakyReLU(_SLOPE), nn.Conv2d(c, 1, 1)]
        self.net = nn.Sequential(*blocks)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images * 2.0 - 1.0).reshape(images.shape[0])
