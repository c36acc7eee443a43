"""MAttFace / IDATT ("IDentity transfer based on ATTention"): cross-attention identity transfer on pSp features,
generation through our frozen StyleGAN2, and the paper's two-stage feature blending.

The paper's parts (see docs/training.md and README "swap.core: idatt" for what differs):

* :class:`FeaturePyramid` -- Φ_E^feat, the pSp backbone: image (B, 3, S, S) -> coarse F_c (B, w0, S/4, S/4),
  medium F_m (B, w1, S/8, S/8), fine F_f (B, w2, S/16, S/16) (the paper: 128 / 256 / 512 channels at S = 256).
  Here residual blocks (MegaFS's :class:`~vidswap.swap.stylegan.megafs.ResBlock`) with GroupNorm.
* :class:`LatentHead` -- Φ_E^lat, pSp's map2style: a top-down pyramid over (F_c, F_m, F_f) and one lateral
  mapping network per W+ code; the first ``coarse_codes`` from the fine (smallest) map, the next
  ``medium_codes`` from the medium one, the rest from the coarse one (pSp's 3 / 4 / 11 split at 1024 px). Codes
  are offsets from the generator's mean W.
* :class:`IdentityAttention` -- the IDATT block at one level (Eqs. 4-5, SANet-style): Q = conv(F_t),
  K = conv(F_s), V = conv(F_s), each C / ``reduction`` channels; F_st = softmax(Q K^T) V (no temperature, as
  Eq. 4); F^_t = gamma out(F_st) + F_t with gamma a learned scalar initialised to 0. The paper leaves open how the
  C/4-channel output returns to C channels: here a 1x1 conv ``out``. ``heads`` > 1 splits the C/4 channels
  (the paper: one). Several source photos are several sets of keys: their maps side by side (:func:`source_keys`).
* :class:`FeatureBlender` -- the two-stage post-processing (Sec. 3.2): the first pass's generator block features
  (the "side image") and a target encoder's features of the same shapes are merged per resolution by the mask
  (the side image's inside the inner face, the target's outside), and a decoder turns them into the final face.
  The paper gives no layers, mask or losses: here the decoder predicts a correction to the mask-blended pixels
  (its last conv zero-initialised, so an untrained blender is a pixel blend), and the mask is a soft ellipse from
  the five keypoints (:func:`inner_face_mask`; no face parser ships in any registry package).
* :class:`IDATT` -- all of it plus the frozen generator.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidswap.errors import ConfigError
from vidswap.swap.stylegan.generator import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.megafs import MapToCode, ResBlock, _norm

__all__ = ["LEVELS", "IDATTConfig", "FeaturePyramid", "LatentHead", "IdentityAttention", "FeatureBlender",
           "IDATT", "inner_face_mask", "source_keys"]

LEVELS = ("coarse", "medium", "fine")


@dataclass(frozen=True)
class IDATTConfig:
    """Sizes of the trainable parts (``model:`` of an IDATT train.yaml); defaults are a reduced-width paper layout.

    input_size: encoder input side (the paper: 256). stem: width of the stride-2 stem. widths: channels of
        F_c, F_m, F_f (paper 128 / 256 / 512). depths: residual blocks per level. fpn: pyramid channels of the
        latent head (pSp: 512). coarse_codes / medium_codes: W+ codes from the fine / medium map (pSp: 3 / 4).
    attention_levels: where IDATT fuses source into target (the paper's best: all three). reduction: Q/K/V
        channel reduction (paper 4). heads: attention heads (paper 1).
    blend_from: the blending stage works on the generator blocks from this resolution up. blend_width: channel
        cap of the target encoder and decoder. mask_feather: soft edge of the inner-face ellipse (relative).
    groups: GroupNorm groups.
    """

    input_size: int = 256
    stem: int = 32
    widths: tuple[int, ...] = (128, 256, 512)
    depths: tuple[int, ...] = (2, 2, 2)
    fpn: int = 256
    coarse_codes: int = 3
    medium_codes: int = 4
    attention_levels: tuple[str, ...] = LEVELS
    reduction: int = 4
    heads: int = 1
    blend_from: int = 32
    blend_width: int = 64
    mask_feather: float = 0.15
    groups: int = 8

    def __post_init__(self) -> None:
        s = self.input_size
        if s < 32 or s & (s - 1):
            raise ConfigError(f"model.input_size must be a power of two >= 32, got {s}")
        if len(self.widths) != 3 or len(self.depths) != 3:
            raise ConfigError(f"model.widths and model.depths need 3 values (coarse, medium, fine), got "
                              f"{list(self.widths)}, {list(self.depths)}")
        if min(self.widths) < 1 or min(self.depths) < 1 or min(self.fpn, self.stem, self.blend_width) < 1:
            raise ConfigError("model widths, depths, fpn, stem and blend_width must be >= 1")
        bad = [lv for lv in self.attention_levels if lv not in LEVELS]
        if bad or len(set(self.attention_levels)) != len(self.attention_levels):
            raise ConfigError(f"model.attention_levels must be distinct names of {', '.join(LEVELS)}, got "
                              f"{list(self.attention_levels)}")
        if self.reduction < 1 or self.heads < 1:
            raise ConfigError("model.reduction and model.heads must be >= 1")
        for lv, w in zip(LEVELS, self.widths):
            if lv in self.attention_levels and (w % self.reduction or (w // self.reduction) % self.heads):
                raise ConfigError(f"model.widths: the {lv} width {w} must divide by reduction ({self.reduction}) "
                                  f"and the result by heads ({self.heads})")
        if self.coarse_codes < 1 or self.medium_codes < 0:
            raise ConfigError("model.coarse_codes must be >= 1 and medium_codes >= 0")
        if not 0 < self.mask_feather < 1:
            raise ConfigError(f"model.mask_feather must be in (0, 1), got {self.mask_feather}")

    def check_generator(self, gen: StyleGANConfig) -> None:
        """ConfigError unless the code split and the blending resolution fit the generator."""
        if self.coarse_codes + self.medium_codes > gen.num_ws:
            raise ConfigError(f"model.coarse_codes + medium_codes is {self.coarse_codes + self.medium_codes} but "
                              f"the generator has only {gen.num_ws} W+ codes")
        if not 4 <= self.blend_from <= gen.resolution or self.blend_from & (self.blend_from - 1):
            raise ConfigError(f"model.blend_from must be a power of two from 4 to the generator's "
                              f"{gen.resolution}, got {self.blend_from}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "IDATTConfig":
        raw = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


class FeaturePyramid(nn.Module):
    """Φ_E^feat: (B, 3, S, S) in [-1, 1] -> [F_c (B, w0, S/4, S/4), F_m (B, w1, S/8, S/8), F_f (B, w2, S/16,
    S/16)]."""

    def __init__(self, cfg: IDATTConfig):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem, 3, 2, 1, bias=False), _norm(cfg.stem, cfg.groups),
                                  nn.LeakyReLU(0.2))
        stages, cin = [], cfg.stem
        for width, depth in zip(cfg.widths, cfg.depths):
            stages.append(nn.Sequential(*[ResBlock(cin if j == 0 else width, width, 2 if j == 0 else 1, cfg.groups)
                                          for j in range(depth)]))
            cin = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats, y = [], self.stem(x)
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        return feats


class LatentHead(nn.Module):
    """Φ_E^lat: [F_c, F_m, F_f] -> W+ code offsets (B, num_ws, w_dim) (pSp's pyramid and map2style)."""

    def __init__(self, cfg: IDATTConfig, gen: StyleGANConfig):
        super().__init__()
        cfg.check_generator(gen)
        self.lateral = nn.ModuleList([nn.Conv2d(w, cfg.fpn, 1) for w in cfg.widths])
        side = cfg.input_size // 16  # the fine map's side
        sides = (side * 4, side * 2, side)  # coarse, medium, fine
        self.levels = [2 if i < cfg.coarse_codes else 1 if i < cfg.coarse_codes + cfg.medium_codes else 0
                       for i in range(gen.num_ws)]
        self.heads = nn.ModuleList([MapToCode(cfg.fpn, sides[lv], gen.w_dim, cfg.groups) for lv in self.levels])

    def forward(self, feats: list[Tensor]) -> Tensor:
        fc, fm, ff = feats
        p_f = self.lateral[2](ff)
        p_m = self.lateral[1](fm) + F.interpolate(p_f, size=fm.shape[-2:], mode="bilinear", align_corners=False)
        p_c = self.lateral[0](fc) + F.interpolate(p_m, size=fc.shape[-2:], mode="bilinear", align_corners=False)
        pyramid = (p_c, p_m, p_f)
        return torch.stack([head(pyramid[lv]) for head, lv in zip(self.heads, self.levels)], 1)


def source_keys(maps: Tensor) -> Tensor:
    """(N, C, h, w) feature maps of N source photos -> (1, C, h, N w): side by side, one key set (attention does
    not depend on the order of its keys, so this is N photos' keys together)."""
    return maps.permute(1, 2, 0, 3).reshape(1, maps.shape[1], maps.shape[2], -1)


class IdentityAttention(nn.Module):
    """IDATT at one level: target (B, C, H, W), source (B, C, h, w) -> (B, C, H, W) (Eqs. 4-5; module doc)."""

    def __init__(self, channels: int, reduction: int = 4, heads: int = 1):
        super().__init__()
        inner = channels // reduction
        self.heads = heads
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, inner, 1)
        self.out = nn.Conv2d(inner, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, target: Tensor, source: Tensor) -> Tensor:
        """(B, H W, h w) per head, stacked as (B, heads, H W, h w): M = softmax(Q K^T) over the source
        positions."""
        b, h = target.shape[0], self.heads
        q = self.query(target).flatten(2).reshape(b, h, -1, target.shape[-2] * target.shape[-1])
        k = self.key(source).flatten(2).reshape(b, h, -1, source.shape[-2] * source.shape[-1])
        return torch.softmax(q.transpose(-1, -2) @ k, dim=-1)

    def forward(self, target: Tensor, source: Tensor) -> Tensor:
        b, c, hh, ww = target.shape
        m = self.attention(target, source)  # (B, heads, HW, hw)
        v = self.value(source).flatten(2).reshape(b, self.heads, -1, source.shape[-2] * source.shape[-1])
        fst = (m @ v.transpose(-1, -2)).transpose(-1, -2).reshape(b, -1, hh, ww)  # (B, C/r, H, W)
        return self.gamma * self.out(fst) + target


def inner_face_mask(kps: Tensor, size: int, feather: float = 0.15) -> Tensor:
    """(B, 5, 2) keypoints (eyes, nose, mouth corners; crop pixels) -> (B, 1, size, size) soft inner-face mask
    in [0, 1]: an ellipse along the eye line, centred between eyes and mouth (shifted 0.1 eye-to-mouth down),
    half-axes 0.95 |eye_r - eye_l| across and 1.05 |eye-to-mouth| along; ``feather`` the relative soft edge."""
    kps = kps.float()
    eye_avg, mouth_avg = (kps[:, 0] + kps[:, 1]) / 2, (kps[:, 3] + kps[:, 4]) / 2
    across = kps[:, 1] - kps[:, 0]
    e2m = mouth_avg - eye_avg
    centre = (eye_avg + mouth_avg) / 2 + 0.1 * e2m
    u = across / across.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    v = torch.stack([-u[:, 1], u[:, 0]], -1)
    rx = (0.95 * across.norm(dim=-1)).clamp_min(1.0)
    ry = (1.05 * e2m.norm(dim=-1)).clamp_min(1.0)
    coords = torch.arange(size, dtype=torch.float32, device=kps.device) + 0.5
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    p = torch.stack([gx, gy], -1)[None] - centre[:, None, None]  # (B, S, S, 2)
    du = (p * u[:, None, None]).sum(-1) / rx[:, None, None]
    dv = (p * v[:, None, None]).sum(-1) / ry[:, None, None]
    dist = (du.square() + dv.square()).sqrt()
    return torch.sigmoid((1.0 - dist) / feather)[:, None]


class FeatureBlender(nn.Module):
    """The second stage: side features {res: (B, C_r, r, r)}, side image and target image (B, 3, R, R) in
    [-1, 1], mask (B, 1, R, R) -> final image (B, 3, R, R)."""

    def __init__(self, cfg: IDATTConfig, gen: StyleGANConfig):
        super().__init__()
        cfg.check_generator(gen)
        self.resolutions = [r for r in gen.block_resolutions if r >= cfg.blend_from]
        ch = {r: gen.channels(r) for r in self.resolutions}
        width = {r: min(cfg.blend_width, ch[r]) for r in self.resolutions}
        top = self.resolutions[-1]
        self.enc_in = nn.Conv2d(3, ch[top], 3, 1, 1)  # the target encoder, R -> blend_from
        self.enc_down = nn.ModuleDict({str(r): nn.Conv2d(ch[2 * r], ch[r], 3, 2, 1) for r in self.resolutions[:-1]})
        self.dec = nn.ModuleDict()
        prev = 0
        for r in self.resolutions:  # the decoder, blend_from -> R
            self.dec[str(r)] = nn.Conv2d(prev + ch[r], width[r], 3, 1, 1)
            prev = width[r]
        self.to_rgb = nn.Conv2d(prev, 3, 1)
        nn.init.zeros_(self.to_rgb.weight)
        nn.init.zeros_(self.to_rgb.bias)

    def target_features(self, target: Tensor) -> dict[int, Tensor]:
        """(B, 3, R, R) in [-1, 1] -> {res: (B, C_res, res, res)} for the blending resolutions."""
        top = self.resolutions[-1]
        x = F.leaky_relu(self.enc_in(target), 0.2)
        feats = {top: x}
        for r in reversed(self.resolutions[:-1]):
            x = F.leaky_relu(self.enc_down[str(r)](x), 0.2)
            feats[r] = x
        return feats

    def forward(self, side_feats: dict[int, Tensor], side: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        tfeats = self.target_features(target)
        x = None
        for r in self.resolutions:
            m = F.interpolate(mask, size=(r, r), mode="bilinear", align_corners=False, antialias=r < mask.shape[-1])
            merged = m * side_feats[r] + (1 - m) * tfeats[r]  # the Mask Blending Module
            if x is not None:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                merged = torch.cat([x, merged], 1)
            x = F.leaky_relu(self.dec[str(r)](merged), 0.2)
        return mask * side + (1 - mask) * target + self.to_rgb(x)


class IDATT(nn.Module):
    """Feature pyramid + IDATT + latent head + blender on the frozen generator. Images are [0, 1]
    (B, 3, R, R) crops in the FFHQ alignment."""

    def __init__(self, cfg: IDATTConfig, generator: StyleGAN2Generator):
        super().__init__()
        cfg.check_generator(generator.cfg)
        self.cfg = cfg
        self.features = FeaturePyramid(cfg)
        self.latent = LatentHead(cfg, generator.cfg)
        self.attn = nn.ModuleDict({lv: IdentityAttention(w, cfg.reduction, cfg.heads)
                                   for lv, w in zip(LEVELS, cfg.widths) if lv in cfg.attention_levels})
        self.blend = FeatureBlender(cfg, generator.cfg)
        self.generator = generator.requires_grad_(False).eval()
        with torch.no_grad():
            from vidswap.swap.stylegan.inversion import mean_w

            w_avg = mean_w(generator)
        self.register_buffer("w_avg", w_avg.clone())

    def train(self, mode: bool = True) -> "IDATT":
        super().train(mode)
        self.generator.eval()  # frozen
        return self

    def encode_features(self, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) in [0, 1] -> [F_c, F_m, F_f] (resized to ``input_size`` first)."""
        s = self.cfg.input_size
        x = images if images.shape[-1] == s else F.interpolate(images, size=(s, s), mode="bilinear",
                                                                 align_corners=False, antialias=True)
        return self.features(x * 2.0 - 1.0)

    def transfer(self, source: list[Tensor], target: list[Tensor]) -> list[Tensor]:
        """IDATT at the configured levels: target features attend to the source's; other levels stay the
        target's. Source maps (B or 1, C, h, w) each."""
        out = []
        for lv, ft, fs in zip(LEVELS, target, source):
            if lv in self.attn:
                out.append(self.attn[lv](ft, fs.expand(ft.shape[0], -1, -1, -1)))
            else:
                out.append(ft)
        return out

    def codes(self, feats: list[Tensor]) -> Tensor:
        """Features -> W+ codes (B, num_ws, w_dim)."""
        return self.w_avg + self.latent(feats)

    def side(self, ws: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
        """W+ -> (the generator's image (B, 3, R, R) in [-1, 1], its block features {res: (B, C, res, res)} at the
        blending resolutions)."""
        syn = self.generator.synthesis
        styles = syn.ws_to_styles(ws)
        x = img = None
        feats = {}
        for res, block in syn.blocks():
            x, img = block(x, img, {n: styles[f"b{res}.{n}"] for n in block.layer_names}, "const", None)
            if res >= self.cfg.blend_from:
                feats[res] = x
        return img, feats

    def final(self, side_img: Tensor, side_feats: dict[int, Tensor], target: Tensor, kps: Tensor) -> Tensor:
        """The second stage: target (B, 3, R, R) in [0, 1] with keypoints (B, 5, 2) in its pixels -> the final
        face in [-1, 1]."""
        mask = inner_face_mask(kps, target.shape[-1], self.cfg.mask_feather)
        return self.blend(side_feats, side_img, target * 2.0 - 1.0, mask)

    def swap(self, source: Tensor, target: Tensor, kps: Tensor | None = None) -> Tensor:
        """(B or 1, 3, R, R) source and (B, 3, R, R) target crops in [0, 1] -> the swap in [-1, 1]: the first
        pass only when ``kps`` is None, else blended with the target (keypoints (B, 5, 2) in crop pixels)."""
        ws = self.codes(self.transfer(self.encode_features(source), self.encode_features(target)))
        img, feats = self.side(ws)
        return img if kps is None else self.final(img, feats, target, kps)
