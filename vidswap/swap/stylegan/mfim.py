"""MFIM (Na et al., "MFIM: Megapixel Facial Identity Manipulation"): a facial attribute encoder to S-space style
codes plus spatial style maps, identity transfer and ID mixing by S-space code routing, generation through our
frozen StyleGAN2.

* :class:`MFIMEncoder` -- "hierarchical latent maps like pSp": a residual backbone (the paper does not give it;
  MegaFS's :class:`~vidswap.swap.stylegan.megafs.ResBlock` s at configurable widths and depths), an FPN over its
  last three stages, then
  - one map-to-code (M2C) block per S-space layer (26 at 1024 px: every conv and toRGB): repeated stride-2
    conv/norm/LeakyReLU to 1 x 1, then linear to that layer's style length; predicted as an offset from the
    generator's mean style (``affine(w_avg)``), so an untrained encoder starts at the average face;
  - one map-to-map (M2M) block per conv layer up to ``map_max`` px: 3x3 conv, LeakyReLU, 3x3 conv to one channel
    on the pyramid level of the layer's side (bilinear-resized to it): the style map, fed to the generator **in
    place of that layer's noise input** (the paper). Its strength is a learned per-layer gain, initialised to the
    generator's own noise strength (StyleGAN's noise inputs are single-channel maps times a learned scalar).
* Code routing (:func:`mix_styles`): the target's codes at the coarse blocks (4 to 16 px at 1024: pose, overall
  structure), the source's at blocks of ``id_from`` px and finer (32 to 1024 px: face shape, eyes, nose, lips),
  the target's style maps everywhere.
* ID mixing (:func:`id_source_styles`): several source photos, the "global" ID codes (blocks below
  ``local_from``; paper: 32 px) from one, the "local" ones (``local_from`` and finer; paper 64 to 1024 px) from
  another; no extra training.
* :func:`synthesize_with_maps` -- the frozen generator rendering S-space styles with style maps as noise.

Images are (B, 3, R, R) in [0, 1]; the generator renders [-1, 1].
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
from vidswap.swap.stylegan.layers import bias_act, modulated_conv2d, upsample2d
from vidswap.swap.stylegan.megafs import MapToCode, ResBlock, _norm

__all__ = ["MFIMConfig", "StyleCodes", "MFIMEncoder", "MFIM", "layer_resolutions", "mix_styles",
           "id_source_styles", "synthesize_with_maps"]


@dataclass(frozen=True)
class MFIMConfig:
    """Encoder sizes and the code routing (``model:`` of an MFIM train.yaml).

    input_size: encoder input side (the paper: 256). stem, widths, depths: backbone (residual stages; the paper:
    "like pSp", i.e. an IR-SE50). fpn: pyramid channels. groups: GroupNorm groups (per-sample statistics, so DDP
    equals one process). map_max: conv layers up to this side get a style map (0: none, the paper's ablation A).
    id_from: first block side whose style codes come from the source (paper: 32).
    """

    input_size: int = 256
    stem: int = 32
    widths: tuple[int, ...] = (64, 128, 256, 512)
    depths: tuple[int, ...] = (2, 2, 2, 2)
    fpn: int = 256
    groups: int = 8
    map_max: int = 64
    id_from: int = 32

    def __post_init__(self) -> None:
        s = self.input_size
        if s < 32 or s & (s - 1):
            raise ConfigError(f"model.input_size must be a power of two >= 32, got {s}")
        if len(self.widths) < 3 or len(self.widths) != len(self.depths):
            raise ConfigError(f"model.widths and model.depths need the same length >= 3, got {list(self.widths)}, "
                              f"{list(self.depths)}")
        if min(self.widths) < 1 or min(self.depths) < 1 or self.fpn < 1 or self.stem < 1 or self.groups < 1:
            raise ConfigError("model widths, depths, fpn, stem and groups must be >= 1")
        if self.map_max < 0:
            raise ConfigError(f"model.map_max must be >= 0, got {self.map_max}")
        if self.id_from < 8 or self.id_from & (self.id_from - 1):
            raise ConfigError(f"model.id_from must be a block side (power of two >= 8), got {self.id_from}")

    def check_generator(self, gen: StyleGANConfig) -> None:
        """ConfigError unless both the target (coarse) and the source (id) blocks exist."""
        if self.id_from > gen.resolution:
            raise ConfigError(f"model.id_from is {self.id_from} px but the generator is {gen.resolution} px; MFIM "
                              f"needs at least one identity block")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "MFIMConfig":
        raw = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


@dataclass
class StyleCodes:
    """``styles``: S-space {layer: (B, C_layer)}; ``maps``: style maps {conv layer: (B, 1, r, r)}."""

    styles: dict[str, Tensor]
    maps: dict[str, Tensor]


def layer_resolutions(gen: StyleGAN2Generator) -> dict[str, int]:
    """S-space layer name -> its block's side ('b4.conv1' -> 4, 'b32.torgb' -> 32), in synthesis order."""
    return {name: int(name.split(".")[0][1:]) for name in gen.synthesis.layer_ws_index()}


def mix_styles(target: dict[str, Tensor], source: dict[str, Tensor], layer_res: dict[str, int],
               id_range: tuple[int, int], weight: float = 1.0) -> dict[str, Tensor]:
    """MFIM's code routing: the ``target``'s styles (B, C) except at layers whose block side is in
    ``[id_range[0], id_range[1]]``, which take the ``source``'s ((C,) or (B, C)); ``weight`` blends them there
    (1: the source's code exactly, 0: the target's, else target + weight (source - target))."""
    lo, hi = id_range
    out = {}
    for name, tgt in target.items():
        if not lo <= layer_res[name] <= hi or weight == 0.0:
            out[name] = tgt
            continue
        src = source[name].to(tgt.dtype).expand_as(tgt)
        out[name] = src.clone() if weight == 1.0 else tgt.lerp(src, weight)
    return out


def id_source_styles(codes: dict[str, Tensor], layer_res: dict[str, int], local_from: int,
                     shape_source: int | None = None, texture_source: int | None = None) -> dict[str, Tensor]:
    """The identity codes {layer: (C,)} of P source photos' styles {layer: (P, C)}: the photos' mean, except that
    layers below ``local_from`` px (the global ID codes: face shape) take photo ``shape_source``'s and layers of
    ``local_from`` px and finer (the local ID codes: eyes, nose, lips, skin) photo ``texture_source``'s when set
    (MFIM's ID mixing)."""
    out = {}
    for name, c in codes.items():
        pick = shape_source if layer_res[name] < local_from else texture_source
        out[name] = c.mean(0) if pick is None else c[pick].clone()
    return out


def synthesize_with_maps(gen: StyleGAN2Generator, styles: dict[str, Tensor], maps: dict[str, Tensor],
                         gains: dict[str, Tensor]) -> Tensor:
    """S-space styles -> (B, C, R, R) in [-1, 1]; at conv layers in ``maps`` the style map (B, 1, r, r) times
    ``gains[layer]`` replaces the noise input, elsewhere the generator's constant noise (noise_mode 'const')."""
    x = img = None
    for res, block in gen.synthesis.blocks():
        if block.in_channels == 0:
            x = block.const.unsqueeze(0).expand(styles[f"b{res}.conv1"].shape[0], -1, -1, -1)
        for name in block.layer_names[:-1]:
            layer, key = getattr(block, name), f"b{res}.{name}"
            y = modulated_conv2d(x, layer.weight, styles[key], demodulate=True, up=layer.up,
                                 kernel=layer.resample_filter)
            if key in maps:
                y = y + maps[key].to(y.dtype) * gains[key]
            else:
                y = y + layer.noise_const.to(y.dtype) * layer.noise_strength
            x = bias_act(y, layer.bias, lrelu=True, clamp=layer.conv_clamp)
        rgb = block.torgb(x, styles[f"b{res}.torgb"])
        img = rgb if img is None else upsample2d(img, block.resample_filter) + rgb
    return img


class MapToMap(nn.Module):
    """(B, F, s, s) pyramid level -> (B, 1, r, r) style map: conv3x3, LeakyReLU, conv3x3 to 1 channel, resize."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.side = side
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, 1, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        if y.shape[-1] != self.side:
            y = F.interpolate(y, size=(self.side, self.side), mode="bilinear", align_corners=False)
        return y


class MFIMEncoder(nn.Module):
    """(B, 3, S, S) in [-1, 1] -> (style offsets {layer: (B, C)}, style maps {conv layer: (B, 1, r, r)})."""

    def __init__(self, cfg: MFIMConfig, gen: StyleGAN2Generator):
        super().__init__()
        cfg.check_generator(gen.cfg)
        self.cfg = cfg
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem, 3, 2, 1, bias=False), _norm(cfg.stem, cfg.groups),
                                  nn.LeakyReLU(0.2))
        stages, cin = [], cfg.stem
        for i, (width, depth) in enumerate(zip(cfg.widths, cfg.depths)):
            stages.append(nn.Sequential(*[ResBlock(cin if j == 0 else width, width, 2 if (j == 0 and i > 0) else 1,
                                                   cfg.groups) for j in range(depth)]))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList([nn.Conv2d(w, cfg.fpn, 1) for w in cfg.widths[-3:]])  # large, middle, small
        small = cfg.input_size // 2 ** len(cfg.widths)
        self.sides = (small * 4, small * 2, small)
        res = layer_resolutions(gen)
        shapes = gen.synthesis.style_shapes
        self.code_names = list(res)
        self.code_levels = [self.level_of(res[n]) for n in self.code_names]
        self.m2c = nn.ModuleList([MapToCode(cfg.fpn, self.sides[lvl], shapes[n], cfg.groups)
                                  for n, lvl in zip(self.code_names, self.code_levels)])
        self.map_names = [n for n in self.code_names if not n.endswith("torgb") and res[n] <= cfg.map_max]
        self.map_levels = [self.map_level_of(res[n]) for n in self.map_names]
        self.m2m = nn.ModuleList([MapToMap(cfg.fpn, res[n]) for n in self.map_names])
        strength = [float(gen.synthesis.get_submodule(n).noise_strength.detach()) for n in self.map_names]
        self.map_gain = nn.Parameter(torch.tensor(strength, dtype=torch.float32))

    @staticmethod
    def level_of(res: int) -> int:
        """Pyramid level of a block's codes, as pSp: <= 8 px the smallest (2), <= 32 px the middle (1), else 0."""
        return 2 if res <= 8 else 1 if res <= 32 else 0

    def map_level_of(self, res: int) -> int:
        """The pyramid level whose side is nearest to ``res`` (log scale; ties to the larger level)."""
        return min(range(3), key=lambda lvl: (abs(math.log2(self.sides[lvl] / res)), lvl))

    def gains(self) -> dict[str, Tensor]:
        return {n: self.map_gain[i] for i, n in enumerate(self.map_names)}

    def forward(self, x: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        feats, y = [], self.stem(x)
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        c3, c4, c5 = feats[-3:]
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest")
        p3 = self.lateral[0](c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        pyr = (p3, p4, p5)
        codes = {n: head(pyr[lvl]) for n, head, lvl in zip(self.code_names, self.m2c, self.code_levels)}
        maps = {n: head(pyr[lvl]) for n, head, lvl in zip(self.map_names, self.m2m, self.map_levels)}
        return codes, maps


class MFIM(nn.Module):
    """Encoder + the frozen generator. ``encode`` / ``decode`` / ``swap`` on [0, 1] crops in the FFHQ alignment."""

    def __init__(self, cfg: MFIMConfig, generator: StyleGAN2Generator):
        super().__init__()
        self.cfg = cfg
        self.encoder = MFIMEncoder(cfg, generator)
        self.generator = generator.requires_grad_(False).eval()
        self.layer_res = layer_resolutions(generator)
        with torch.no_grad():
            from vidswap.swap.stylegan.inversion import mean_w

            s_avg = generator.synthesis.ws_to_styles(generator.broadcast(mean_w(generator)[None]))
        self.register_buffer("s_avg", torch.cat([s_avg[n][0] for n in self.layer_res]).clone())

    def train(self, mode: bool = True) -> "MFIM":
        super().train(mode)
        self.generator.eval()  # frozen
        return self

    def mean_styles(self) -> dict[str, Tensor]:
        """The generator's mean style per layer {layer: (C,)} (the encoder's offsets start from it)."""
        sizes = [self.generator.synthesis.style_shapes[n] for n in self.layer_res]
        return dict(zip(self.layer_res, torch.split(self.s_avg, sizes)))

    @property
    def id_range(self) -> tuple[int, int]:
        """Block sides whose codes the source gives: [id_from, resolution]."""
        return self.cfg.id_from, self.generator.cfg.resolution

    def encode(self, images: Tensor) -> StyleCodes:
        """(B, 3, H, W) in [0, 1] -> style codes and maps (resized to ``input_size`` first)."""
        s = self.cfg.input_size
        x = images if images.shape[-1] == s else F.interpolate(images, size=(s, s), mode="bilinear",
                                                                 align_corners=False, antialias=True)
        offsets, maps = self.encoder(x * 2.0 - 1.0)
        mean = self.mean_styles()
        return StyleCodes({n: mean[n] + d for n, d in offsets.items()}, maps)

    def decode(self, codes: StyleCodes) -> Tensor:
        """Style codes and maps -> (B, 3, R, R) in [-1, 1] (unclamped, differentiable)."""
        return synthesize_with_maps(self.generator, codes.styles, codes.maps, self.encoder.gains())

    def transfer(self, source: dict[str, Tensor], target: StyleCodes, weight: float = 1.0,
                 id_range: tuple[int, int] | None = None) -> StyleCodes:
        """The swap's codes: the target's coarse codes and style maps, the ``source`` styles ((C,) or (B, C) per
        layer) at the identity blocks."""
        styles = mix_styles(target.styles, source, self.layer_res, id_range or self.id_range, weight)
        return StyleCodes(styles, target.maps)

    def swap(self, source: Tensor, target: Tensor) -> Tensor:
        """(B, 3, R, R) [0, 1] source and target crops -> the swap (B, 3, R, R) in [-1, 1]."""
        return self.decode(self.transfer(self.encode(source).styles, self.encode(target)))
