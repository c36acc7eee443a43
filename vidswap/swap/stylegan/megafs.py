"""MegaFS (Zhu et al., "One Shot Face Swapping on Megapixels"): the HieRFE encoder to W++ codes, the Face
Transfer Module, generation through our frozen StyleGAN2.

W++ (the paper): the generator's constant input ``C`` [B, channels(4), 4, 4] plus the W+ codes [B, L, D], split
into ``L^low`` (the first ``low_codes``, 4 in the paper) and ``L^high`` (the rest, 14 at 1024 px). ``C`` and
``L^low`` carry the topology (pose, outline), ``L^high`` the semantics (identity among them).

* :class:`HieREncoder` -- a residual backbone (the paper: ResNet50; here basic residual blocks with configurable
  widths and depths), an FPN over its last three stages, and one lateral mapping network per W+ code (repeated
  stride-2 conv, norm, LeakyReLU until 1 x 1, then linear to ``w_dim``). The low codes come from the smallest
  pyramid level, the next ``mid_codes`` from the middle one, the rest from the largest; ``C`` from the last
  backbone stage. Codes are predicted as offsets from the generator's mean W, ``C`` as an offset from its learned
  constant (the paper does not say; both start the encoder at the generator's average face). Normalisation is
  GroupNorm, not the paper's BatchNorm: per-sample statistics make two DDP processes equal one process.
* :class:`FaceTransferModule` -- one :class:`TransferBlock` per high code, each ``cells`` (paper: 3)
  :class:`TransferCell` s: ``l_c = [l_s, l_t]``, ``l_s <- tanh(K2(l_c)) + sigmoid(K1(l_c)) * l_s`` and the same
  with its own K1, K2 for ``l_t``; then ``l_s2t = sigmoid(w) l_t + (1 - sigmoid(w)) l_s`` with a trainable
  ``w`` in R^D.
* :class:`MegaFS` -- both plus the frozen generator: ``encode``, ``decode``, ``swap`` (the generator gets
  ``C_t``, ``L_t^low`` and ``L_s2t``; the source's ``C`` and low codes are discarded).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidswap.errors import ConfigError
from vidswap.swap.stylegan.generator import StyleGAN2Generator, StyleGANConfig

__all__ = ["MegaFSConfig", "HieREncoder", "TransferCell", "TransferBlock", "FaceTransferModule", "MegaFS",
           "WPlusPlus"]


@dataclass(frozen=True)
class MegaFSConfig:
    """Encoder and FTM sizes (``model:`` of a MegaFS train.yaml). Defaults are a reduced-width paper layout.

    input_size: encoder input side (crops are resized to it; the paper does not state it).
    widths / depths: backbone stage widths and residual blocks per stage (the paper: ResNet50, 256/512/1024/2048
        bottleneck widths, depths 3/4/6/3). stem: the stride-2 stem's width.
    fpn: pyramid channels (the paper: 512). low_codes: codes from the smallest level (paper 4, with C the
        target's topology). mid_codes: codes from the middle level. cells: transfer cells per FTM block (paper 3).
    groups: GroupNorm groups (clipped to divide each width).
    """

    input_size: int = 256
    stem: int = 32
    widths: tuple[int, ...] = (64, 128, 256, 512)
    depths: tuple[int, ...] = (2, 2, 2, 2)
    fpn: int = 256
    low_codes: int = 4
    mid_codes: int = 4
    cells: int = 3
    groups: int = 8

    def __post_init__(self) -> None:
        s = self.input_size
        if s < 32 or s & (s - 1):
            raise ConfigError(f"model.input_size must be a power of two >= 32, got {s}")
        if len(self.widths) < 3 or len(self.widths) != len(self.depths):
            raise ConfigError(f"model.widths and model.depths need the same length >= 3, got {list(self.widths)}, "
                              f"{list(self.depths)}")
        if min(self.widths) < 1 or min(self.depths) < 1 or self.fpn < 1 or self.stem < 1 or self.cells < 1:
            raise ConfigError("model widths, depths, fpn, stem and cells must be >= 1")
        if self.low_codes < 1 or self.mid_codes < 0:
            raise ConfigError(f"model.low_codes must be >= 1 and mid_codes >= 0, got {self.low_codes}, "
                              f"{self.mid_codes}")

    def check_generator(self, gen: StyleGANConfig) -> None:
        """ConfigError unless the W+ split fits the generator (at least one high code)."""
        if self.low_codes >= gen.num_ws:
            raise ConfigError(f"model.low_codes is {self.low_codes} but the generator has only {gen.num_ws} W+ "
                              f"codes; MegaFS needs at least one high code")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "MegaFSConfig":
        raw = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


@dataclass
class WPlusPlus:
    """W++ codes: ``const`` (B, C4, 4, 4) and ``ws`` (B, L, D)."""

    const: Tensor
    ws: Tensor


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    """Basic residual block: (B, I, H, W) -> (B, O, H/stride, W/stride)."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = _norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = _norm(cout, groups)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout, groups))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(self.norm1(self.conv1(x)), 0.2)
        return F.leaky_relu(self.norm2(self.conv2(y)) + self.skip(x), 0.2)


class MapToCode(nn.Module):
    """A lateral mapping network: (B, C, s, s) -> (B, D) through log2(s) stride-2 conv/norm/LeakyReLU steps."""

    def __init__(self, channels: int, side: int, w_dim: int, groups: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(side))):
            layers += [nn.Conv2d(channels, channels, 3, 2, 1), _norm(channels, groups), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers)
        self.linear = nn.Linear(channels, w_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.convs(x).flatten(1))


class HieREncoder(nn.Module):
    """(B, 3, S, S) image in [-1, 1] at ``input_size`` -> (const offset (B, C4, 4, 4), code offsets (B, L, D))."""

    def __init__(self, cfg: MegaFSConfig, gen: StyleGANConfig):
        super().__init__()
        cfg.check_generator(gen)
        self.cfg, self.num_ws = cfg, gen.num_ws
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem, 3, 2, 1, bias=False), _norm(cfg.stem, cfg.groups),
                                  nn.LeakyReLU(0.2))
        stages, cin = [], cfg.stem
        for i, (width, depth) in enumerate(zip(cfg.widths, cfg.depths)):
            blocks = [ResBlock(cin if j == 0 else width, width, 2 if (j == 0 and i > 0) else 1, cfg.groups)
                      for j in range(depth)]
            stages.append(nn.Sequential(*blocks))
            cin = width
        self.stages = nn.ModuleList(stages)
        top = cfg.widths[-3:]
        self.lateral = nn.ModuleList([nn.Conv2d(w, cfg.fpn, 1) for w in top])  # large, middle, small
        n = len(cfg.widths)
        small = cfg.input_size // 2 ** n  # the last stage's side
        sides = (small * 4, small * 2, small)
        self.levels = self.code_levels(gen.num_ws)
        self.heads = nn.ModuleList([MapToCode(cfg.fpn, sides[lvl], gen.w_dim, cfg.groups) for lvl in self.levels])
        self.to_const = nn.Conv2d(cfg.widths[-1], gen.channels(4), 1)
        nn.init.zeros_(self.to_const.weight)
        nn.init.zeros_(self.to_const.bias)

    def code_levels(self, num_ws: int) -> list[int]:
        """Pyramid level of each W+ code: 2 (smallest) for the low codes, 1 for the next ``mid_codes``, else 0."""
        c = self.cfg
        return [2 if i < c.low_codes else 1 if i < c.low_codes + c.mid_codes else 0 for i in range(num_ws)]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = []
        y = self.stem(x)
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        c3, c4, c5 = feats[-3:]
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest")
        p3 = self.lateral[0](c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        pyramid = (p3, p4, p5)
        codes = torch.stack([head(pyramid[lvl]) for head, lvl in zip(self.heads, self.levels)], 1)
        const = self.to_const(F.adaptive_avg_pool2d(c5, 4))
        return const, codes


class TransferCell(nn.Module):
    """(l_s, l_t) each (B, D) -> refined (l_s, l_t): ``T2(l_c, T1(l_c, l))`` with ``T1(a, b) = sigmoid(K1 a) b``
    and ``T2(a, b) = tanh(K2 a) + b``, separate K1, K2 for the source and the target path."""

    def __init__(self, dim: int):
        super().__init__()
        self.k1_s, self.k2_s = nn.Linear(2 * dim, dim), nn.Linear(2 * dim, dim)
        self.k1_t, self.k2_t = nn.Linear(2 * dim, dim), nn.Linear(2 * dim, dim)

    def forward(self, ls: Tensor, lt: Tensor) -> tuple[Tensor, Tensor]:
        lc = torch.cat([ls, lt], -1)
        return (torch.tanh(self.k2_s(lc)) + torch.sigmoid(self.k1_s(lc)) * ls,
                torch.tanh(self.k2_t(lc)) + torch.sigmoid(self.k1_t(lc)) * lt)


class TransferBlock(nn.Module):
    """One high code: ``cells`` transfer cells, then ``sigmoid(w) l_t + (1 - sigmoid(w)) l_s`` -> (B, D)."""

    def __init__(self, dim: int, cells: int):
        super().__init__()
        self.cells = nn.ModuleList([TransferCell(dim) for _ in range(cells)])
        self.omega = nn.Parameter(torch.zeros(dim))

    def forward(self, ls: Tensor, lt: Tensor) -> Tensor:
        for cell in self.cells:
            ls, lt = cell(ls, lt)
        gate = torch.sigmoid(self.omega)
        return gate * lt + (1.0 - gate) * ls


class FaceTransferModule(nn.Module):
    """W+ of source and target (B, L, D) -> the swapped W+ (B, L, D): the target's low codes, a transfer block's
    output at every high code."""

    def __init__(self, cfg: MegaFSConfig, gen: StyleGANConfig):
        super().__init__()
        cfg.check_generator(gen)
        self.low = cfg.low_codes
        self.blocks = nn.ModuleList([TransferBlock(gen.w_dim, cfg.cells) for _ in range(gen.num_ws - cfg.low_codes)])

    def forward(self, ws_s: Tensor, ws_t: Tensor) -> Tensor:
        high = [blk(ws_s[:, self.low + i], ws_t[:, self.low + i]) for i, blk in enumerate(self.blocks)]
        return torch.cat([ws_t[:, : self.low], torch.stack(high, 1)], 1)


class MegaFS(nn.Module):
    """Encoder + FTM + the frozen generator. Images are [0, 1] (B, 3, R, R) crops in the FFHQ alignment."""

    def __init__(self, cfg: MegaFSConfig, generator: StyleGAN2Generator):
        super().__init__()
        self.cfg = cfg
        self.encoder = HieREncoder(cfg, generator.cfg)
        self.ftm = FaceTransferModule(cfg, generator.cfg)
        self.generator = generator.requires_grad_(False).eval()
        with torch.no_grad():
            from vidswap.swap.stylegan.inversion import mean_w

            w_avg = mean_w(generator)
        self.register_buffer("w_avg", w_avg.clone())

    def train(self, mode: bool = True) -> "MegaFS":
        super().train(mode)
        self.generator.eval()  # frozen
        return self

    def encode(self, images: Tensor) -> WPlusPlus:
        """(B, 3, H, W) in [0, 1] -> W++ codes (resized to ``input_size`` first)."""
        s = self.cfg.input_size
        x = images if images.shape[-1] == s else F.interpolate(images, size=(s, s), mode="bilinear",
                                                                 align_corners=False, antialias=True)
        d_const, d_ws = self.encoder(x * 2.0 - 1.0)
        const = self.generator.synthesis.b4.const.unsqueeze(0) + d_const
        return WPlusPlus(const=const, ws=self.w_avg + d_ws)

    def decode(self, codes: WPlusPlus) -> Tensor:
        """W++ -> (B, 3, R, R) in the generator's [-1, 1] (unclamped, differentiable)."""
        return self.generator.synthesis(codes.ws, noise_mode="const", const=codes.const)

    def transfer(self, source: WPlusPlus, target: WPlusPlus) -> WPlusPlus:
        """The swapped W++: the target's C and low codes, the FTM's high codes."""
        return WPlusPlus(const=target.const, ws=self.ftm(source.ws.expand_as(target.ws), target.ws))

    def swap(self, source: Tensor, target: Tensor) -> Tensor:
        """(B, 3, R, R) [0, 1] source and target crops -> the swap, (B, 3, R, R) in [-1, 1]."""
        return self.decode(self.transfer(self.encode(source), self.encode(target)))
