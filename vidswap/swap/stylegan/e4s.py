"""E4S (Liu et al., "Fine-Grained Face Swapping via Regional GAN Inversion"): regional GAN inversion (RGI) on our
StyleGAN2 generator.

* Regions. The paper parses faces into 12 classes with a pretrained BiSeNet face parser; no face parser ships in
  any package registry, so the regions here come from the FFHQ crop's five keypoints (:func:`region_masks`):
  soft ellipses for ``brows``, ``eyes``, ``nose``, ``mouth`` and the face (``skin`` is the face minus the
  features), and ``rest`` (hair, neck, background: everything outside the face). The same function cuts the
  training crops and the render's crops, so the masks the encoder learned on are the ones it sees at render time.
  The names are those of ``composite.regions`` (:data:`REGIONS`).
* :class:`RegionalEncoder` -- the paper's F_phi: a residual backbone (the paper: a multi-scale encoder; here basic
  residual blocks, GroupNorm so that DDP equals one process), and for every stage ``i`` and region ``j`` the
  average of the stage's features inside the region's mask at that stage's side, ``v_ij``; per region an MLP of
  ``[v_1j; ...; v_Nj]`` gives the region's W+ code (``num_ws x w_dim``, offsets from the generator's mean W, so
  training starts at the average face). The regional latent space is ``W^{r+}``: (B, C, num_ws, w_dim).
* Mask-guided generation (:meth:`E4S.decode`): at each of the first ``masked_layers`` W+ layers (the paper:
  K = 13 of 18) every region's code modulates the layer's convolution and the results are summed under the
  region masks at the layer's resolution (:func:`~vidswap.swap.stylegan.regional.regional_synthesize`); the
  later layers use one code, the mask-area-weighted mean of the regions' codes (the paper leaves those layers
  "standard" without saying which code feeds them).
* Swap (:meth:`E4S.mix`): the source's codes for the selected face regions, the target's for the others (and
  for ``rest``), rendered on the target's masks. The paper's reenactment (FaceVid2Vid) of the source to the
  target pose, and its re-colouring and inpainting networks, are not here: the target's mask shape is kept and
  the compositor does the paste-back.
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
from vidswap.swap.stylegan.megafs import ResBlock, _norm
from vidswap.swap.stylegan.regional import masks_at, regional_synthesize

__all__ = ["REGIONS", "FACE_REGIONS", "E4SConfig", "RegionalEncoder", "E4S", "region_masks", "region_select",
           "pool_regions", "mask_guided_synthesize"]

#: the region classes, in the order of the mask channels and the codes' region axis
REGIONS = ("rest", "skin", "brows", "eyes", "nose", "mouth")
#: the face parts ``composite.regions`` can select (``face``: all of them)
FACE_REGIONS = REGIONS[1:]


@dataclass(frozen=True)
class E4SConfig:
    """The regional encoder's sizes (``model:`` of an E4S train.yaml).

    input_size: encoder input side (crops are resized to it). stem / widths / depths: the stride-2 stem's width,
    the residual stages' widths and blocks per stage (every stage after the first halves the side; each stage's
    output is one scale of the multi-scale pooling). hidden: the per-region MLPs' hidden width. masked_layers:
    the W+ layers that take per-region codes (the paper's K = 13 of 18; None: all). groups: GroupNorm groups.
    softness: the region ellipses' edge width (fraction of each ellipse's radius).
    """

    input_size: int = 256
    stem: int = 32
    widths: tuple[int, ...] = (64, 128, 256, 512)
    depths: tuple[int, ...] = (2, 2, 2, 2)
    hidden: int = 512
    masked_layers: int | None = None
    groups: int = 8
    softness: float = 0.15

    def __post_init__(self) -> None:
        s = self.input_size
        if s < 16 or s & (s - 1):
            raise ConfigError(f"model.input_size must be a power of two >= 16, got {s}")
        if not self.widths or len(self.widths) != len(self.depths):
            raise ConfigError(f"model.widths and model.depths need the same length >= 1, got {list(self.widths)}, "
                              f"{list(self.depths)}")
        if s // 2 ** len(self.widths) < 1:
            raise ConfigError(f"model.input_size {s} is too small for {len(self.widths)} stages")
        if min(self.widths) < 1 or min(self.depths) < 1 or self.stem < 1 or self.hidden < 1 or self.groups < 1:
            raise ConfigError("model widths, depths, stem, hidden and groups must be >= 1")
        if self.masked_layers is not None and self.masked_layers < 1:
            raise ConfigError(f"model.masked_layers must be >= 1 (or null: all), got {self.masked_layers}")
        if not 0 < self.softness <= 1:
            raise ConfigError(f"model.softness must be in (0, 1], got {self.softness}")

    def check_generator(self, gen: StyleGANConfig) -> None:
        """ConfigError when ``masked_layers`` exceeds the generator's W+ layers."""
        if self.masked_layers is not None and self.masked_layers > gen.num_ws:
            raise ConfigError(f"model.masked_layers is {self.masked_layers} but the generator has only "
                              f"{gen.num_ws} W+ layers")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "E4SConfig":
        raw = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def _ellipse(grid: Tensor, centre: Tensor, axis_u: Tensor, ru: Tensor, rv: Tensor, softness: float) -> Tensor:
    """Soft ellipse masks. grid (H, W, 2) pixel centres; centre (B, 2); axis_u (B, 2) unit vector of the first
    semi-axis ``ru`` (B,), the second ``rv`` (B,) perpendicular -> (B, H, W) in [0, 1], 0.5 on the ellipse."""
    d = grid[None] - centre[:, None, None]
    axis_v = torch.stack([-axis_u[:, 1], axis_u[:, 0]], -1)
    a = (d * axis_u[:, None, None]).sum(-1) / ru[:, None, None]
    b = (d * axis_v[:, None, None]).sum(-1) / rv[:, None, None]
    r = torch.sqrt(a * a + b * b + 1e-12)
    return torch.sigmoid((1.0 - r) / softness)


def region_masks(kps: Tensor, size: int, softness: float = 0.15) -> Tensor:
    """(B, 5, 2) keypoints in crop pixels (eye centres image-left first, nose tip, mouth corners) -> (B, 6, size,
    size) soft region masks in :data:`REGIONS` order that sum to one at every pixel.

    Geometry (d the eye distance, e the eye-to-mouth distance, along the face's own axes): the face an ellipse
    from above the brows to below the chin (half-width 0.95 d, half-height 1.3 e, centred 0.45 e below the eyes);
    eyes 0.3 d x 0.17 d at each eye; brows 0.36 d x 0.13 d, 0.42 e above each eye; the nose 0.24 d wide down to
    just below the tip; the mouth the corners' half-distance + 0.15 d wide, 0.25 d high. Features are taken in
    the order mouth, eyes, brows, nose (each keeps what the earlier ones left), all within the face; skin is the
    face's remainder and rest everything outside it.
    """
    kps = kps.float()
    dev = kps.device
    eye_l, eye_r, nose, m_l, m_r = kps.unbind(1)
    across = eye_r - eye_l
    d = across.norm(dim=-1).clamp_min(1.0)
    eyes_c, mouth_c = (eye_l + eye_r) / 2, (m_l + m_r) / 2
    down = mouth_c - eyes_c
    e = down.norm(dim=-1).clamp_min(1.0)
    u_down = down / e[:, None]
    u_across = torch.stack([u_down[:, 1], -u_down[:, 0]], -1)  # down turned a quarter: image right for an upright face
    ys, xs = torch.meshgrid(torch.arange(size, device=dev, dtype=torch.float32) + 0.5,
                            torch.arange(size, device=dev, dtype=torch.float32) + 0.5, indexing="ij")
    grid = torch.stack([xs, ys], -1)

    def ell(c, ru, rv):
        return _ellipse(grid, c, u_across, ru, rv, softness)

    face = ell(eyes_c + 0.45 * e[:, None] * u_down, 0.95 * d, 1.3 * e)
    eyes = torch.maximum(ell(eye_l, 0.3 * d, 0.17 * d), ell(eye_r, 0.3 * d, 0.17 * d))
    up = -0.42 * e[:, None] * u_down
    brows = torch.maximum(ell(eye_l + up, 0.36 * d, 0.13 * d), ell(eye_r + up, 0.36 * d, 0.13 * d))
    tip = nose - eyes_c
    nose_m = ell(eyes_c + 0.6 * tip, 0.24 * d, 0.5 * tip.norm(dim=-1).clamp_min(1.0) + 0.08 * d)
    half_mouth = (m_r - m_l).norm(dim=-1) / 2
    mouth = ell(mouth_c, half_mouth + 0.15 * d, 0.25 * d)
    left = face
    parts = {}
    for name, m in (("mouth", mouth), ("eyes", eyes), ("brows", brows), ("nose", nose_m)):
        parts[name] = left * m
        left = left * (1.0 - m)
    parts["skin"], parts["rest"] = left, 1.0 - face
    return torch.stack([parts[name] for name in REGIONS], 1)


def region_select(names) -> tuple[bool, ...]:
    """Which :data:`REGIONS` take the source's code for a ``composite.regions`` selection (None or ``face``: all
    face parts; ``rest`` never)."""
    if names is None or "face" in names:
        return tuple(r != "rest" for r in REGIONS)
    unknown = sorted(set(names) - set(FACE_REGIONS))
    if unknown:
        raise ConfigError(f"unknown face region(s) {', '.join(unknown)}; choose from {', '.join(FACE_REGIONS)}")
    return tuple(r in names for r in REGIONS)


def pool_regions(features: Tensor, masks: Tensor) -> Tensor:
    """Average of ``features`` (B, F, h, w) inside each soft mask of ``masks`` (B, C, R, R) resampled to h ->
    (B, C, F). A region with no area pools to zeros."""
    m = masks_at(masks, features.shape[-1]).to(features.dtype)
    area = m.flatten(2).sum(-1)  # (B, C)
    total = torch.einsum("bchw,bfhw->bcf", m, features)
    return total / area.clamp_min(1e-6)[..., None]


def mask_guided_synthesize(gen: StyleGAN2Generator, codes: Tensor, masks: Tensor, masked_layers: int) -> Tensor:
    """Render W^{r+} codes (B, C, L, D) on masks (B, C, R, R) with ``gen`` -> (B, 3, R_gen, R_gen) in [-1, 1]:
    per-region modulation at the first ``masked_layers`` W+ layers, the mask-area-weighted mean code after."""
    k = masked_layers
    if k < codes.shape[2]:
        area = masks.flatten(2).mean(-1)
        area = area / area.sum(1, keepdim=True).clamp_min(1e-8)  # (B, C)
        mean = torch.einsum("bc,bcld->bld", area.to(codes.dtype), codes[:, :, k:])
        codes = torch.cat([codes[:, :, :k], mean[:, None].expand(-1, codes.shape[1], -1, -1)], 2)
    return regional_synthesize(gen, codes, masks)


class RegionalEncoder(nn.Module):
    """(B, 3, S, S) image in [-1, 1] and (B, C, R, R) masks -> (B, C, num_ws, w_dim) W+ code offsets per region."""

    def __init__(self, cfg: E4SConfig, gen: StyleGANConfig, regions: int = len(REGIONS)):
        super().__init__()
        cfg.check_generator(gen)
        self.cfg, self.num_ws, self.w_dim = cfg, gen.num_ws, gen.w_dim
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem, 3, 2, 1, bias=False), _norm(cfg.stem, cfg.groups),
                                  nn.LeakyReLU(0.2))
        stages, cin = [], cfg.stem
        for i, (width, depth) in enumerate(zip(cfg.widths, cfg.depths)):
            stages.append(nn.Sequential(*[ResBlock(cin if j == 0 else width, width, 2 if (j == 0 and i > 0) else 1,
                                                   cfg.groups) for j in range(depth)]))
            cin = width
        self.stages = nn.ModuleList(stages)
        fin, out = sum(cfg.widths), gen.num_ws * gen.w_dim
        # one MLP per region: [v_1j; ...; v_Nj] -> hidden -> num_ws x w_dim
        self.w1 = nn.Parameter(torch.randn(regions, fin, cfg.hidden) / math.sqrt(fin))
        self.b1 = nn.Parameter(torch.zeros(regions, cfg.hidden))
        self.w2 = nn.Parameter(torch.randn(regions, cfg.hidden, out) * (0.01 / math.sqrt(cfg.hidden)))
        self.b2 = nn.Parameter(torch.zeros(regions, out))

    def forward(self, x: Tensor, masks: Tensor) -> Tensor:
        if masks.shape[1] != self.w1.shape[0]:
            raise ValueError(f"the encoder has {self.w1.shape[0]} regions, masks have {masks.shape[1]}")
        y, pooled = self.stem(x), []
        for stage in self.stages:
            y = stage(y)
            pooled.append(pool_regions(y, masks))
        v = torch.cat(pooled, -1)  # (B, C, sum widths)
        h = F.leaky_relu(torch.einsum("bcf,cfh->bch", v, self.w1) + self.b1, 0.2)
        codes = torch.einsum("bch,cho->bco", h, self.w2) + self.b2
        return codes.reshape(x.shape[0], -1, self.num_ws, self.w_dim)


class E4S(nn.Module):
    """Regional encoder + the (optionally fine-tuned) generator. Images are [0, 1] (B, 3, R, R) FFHQ crops, masks
    (B, C, R', R') from :func:`region_masks`."""

    def __init__(self, cfg: E4SConfig, generator: StyleGAN2Generator):
        super().__init__()
        cfg.check_generator(generator.cfg)
        self.cfg = cfg
        self.encoder = RegionalEncoder(cfg, generator.cfg)
        self.generator = generator.requires_grad_(False).eval()
        with torch.no_grad():
            from vidswap.swap.stylegan.inversion import mean_w

            w_avg = mean_w(generator)
        self.register_buffer("w_avg", w_avg.clone())

    @property
    def masked_layers(self) -> int:
        return self.generator.num_ws if self.cfg.masked_layers is None else self.cfg.masked_layers

    def masks(self, kps: Tensor, size: int | None = None) -> Tensor:
        """(B, 5, 2) keypoints in crop pixels at the generator's side -> (B, C, size, size) region masks."""
        res = self.generator.cfg.resolution
        size = size or res
        return region_masks(kps * (size / res), size, self.cfg.softness)

    def encode(self, images: Tensor, masks: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1], masks (B, C, R, R) -> W^{r+} codes (B, C, num_ws, w_dim)."""
        s = self.cfg.input_size
        x = images if images.shape[-1] == s else F.interpolate(images, size=(s, s), mode="bilinear",
                                                                 align_corners=False, antialias=True)
        return self.w_avg + self.encoder(x * 2.0 - 1.0, masks)

    def decode(self, codes: Tensor, masks: Tensor) -> Tensor:
        """W^{r+} codes (B, C, L, D) on masks (B, C, R, R) -> (B, 3, R_gen, R_gen) in [-1, 1] (unclamped,
        differentiable). Layers from ``masked_layers`` on take the mask-area-weighted mean of the regions' codes."""
        return mask_guided_synthesize(self.generator, codes, masks, self.masked_layers)

    @staticmethod
    def mix(source: Tensor, target: Tensor, select: tuple[bool, ...]) -> Tensor:
        """The swapped codes: ``source`` ((C, L, D) or (B, C, L, D)) where ``select`` is true, ``target`` (B, C, L,
        D) elsewhere."""
        pick = torch.tensor(select, device=target.device)[None, :, None, None]
        return torch.where(pick, source.expand_as(target).to(target.dtype), target)
