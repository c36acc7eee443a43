"""The StyleGAN2 generator (mapping + synthesis, 'skip' outputs) with W, W+ and S-space access.

One generator serves every StyleGAN-family core. Module and parameter names follow NVIDIA's stylegan2-ada-pytorch
``G_ema`` (``mapping.fc0.weight``, ``synthesis.b4.conv1.affine.weight``, ...), so an imported state dict loads by
name (see :mod:`vidswap.swap.stylegan.importer`).

Latent spaces (B = batch):
* Z: [B, z_dim] normal samples; the mapping network turns them into
* W: [B, w_dim]; broadcast over the layers it becomes
* W+: [B, num_ws, w_dim], one code per layer input (``num_ws = 2 log2(resolution) - 2``);
* S: per layer, the style vector after that layer's affine: ``{layer name: [B, in_channels]}``
  (``SynthesisNetwork.style_shapes``), which edits can change before synthesis.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from vidswap.swap.stylegan.layers import FullyConnectedLayer, SynthesisLayer, ToRGBLayer, resample_filter, upsample2d

NOISE_MODES = ("random", "const", "none")


@dataclass(frozen=True)
class StyleGANConfig:
    """Architecture of one generator. FFHQ 1024 is the default; channels per resolution r are
    ``min(channel_base // r, channel_max)``."""

    resolution: int = 1024
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    img_channels: int = 3
    conv_clamp: float | None = None

    def __post_init__(self):
        r = self.resolution
        if r < 8 or r > 2048 or r & (r - 1):
            raise ValueError(f"StyleGAN resolution must be a power of two from 8 to 2048, not {r}")
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "img_channels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"StyleGAN {name} must be positive, not {getattr(self, name)}")

    @property
    def block_resolutions(self) -> list[int]:
        """[4, 8, ..., resolution]."""
        return [2 ** i for i in range(2, int(math.log2(self.resolution)) + 1)]

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    @property
    def num_ws(self) -> int:
        """W+ codes: one per convolution plus the last toRGB (each block's toRGB shares the next conv's code)."""
        return 2 * int(math.log2(self.resolution)) - 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "StyleGANConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown StyleGAN config keys: {', '.join(unknown)}")
        return cls(**values)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x: [B, D] scaled to unit mean square per row."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z [B, z_dim] -> w [B, w_dim]; keeps ``w_avg`` (the running mean of w) for truncation."""

    def __init__(self, cfg: StyleGANConfig):
        super().__init__()
        self.num_layers = cfg.mapping_layers
        features = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        for idx in range(cfg.mapping_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], lrelu=True, lr_multiplier=cfg.mapping_lr)
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = normalize_2nd_moment(z)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        return x

    def truncate(self, ws: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
        """Pull ws [B, num_ws, w_dim] towards ``w_avg``: w_avg + psi (w - w_avg) on the first ``cutoff`` layers."""
        if psi == 1.0:
            return ws
        stop = ws.shape[1] if cutoff is None else cutoff
        out = ws.clone()
        out[:, :stop] = self.w_avg.to(ws.dtype).lerp(ws[:, :stop], psi)
        return out


class SynthesisBlock(nn.Module):
    """One resolution: (const input | 2x-up conv0), conv1, toRGB added to the upsampled image so far."""

    def __init__(self, in_channels: int, out_channels: int, res: int, cfg: StyleGANConfig):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = res
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, res, res))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, cfg.w_dim, res, up=True, conv_clamp=cfg.conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, cfg.w_dim, res, conv_clamp=cfg.conv_clamp)
        self.torgb = ToRGBLayer(out_channels, cfg.img_channels, cfg.w_dim, conv_clamp=cfg.conv_clamp)
        self.register_buffer("resample_filter", resample_filter())
        self.num_conv = 1 if in_channels == 0 else 2

    @property
    def layer_names(self) -> list[str]:
        return (["conv1"] if self.in_channels == 0 else ["conv0", "conv1"]) + ["torgb"]

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, styles: dict[str, torch.Tensor],
                noise_mode: str, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, I, r/2, r/2] (the first block: None for its learned constant, or [B, O, 4, 4] in its place);
        img: [B, C, r/2, r/2] or None -> ([B, O, r, r], [B, C, r, r])."""
        if self.in_channels == 0:
            if x is None:
                batch = styles["conv1"].shape[0]
                x = self.const.unsqueeze(0).expand(batch, -1, -1, -1).to(styles["conv1"].dtype)
        else:
            x = self.conv0(x, styles["conv0"], noise_mode, generator)
        x = self.conv1(x, styles["conv1"], noise_mode, generator)
        rgb = self.torgb(x, styles["torgb"])
        img = rgb if img is None else upsample2d(img, self.resample_filter) + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    """W+ codes [B, num_ws, w_dim] -> image [B, img_channels, resolution, resolution] (about [-1, 1])."""

    def __init__(self, cfg: StyleGANConfig):
        super().__init__()
        self.cfg = cfg
        self.block_resolutions = cfg.block_resolutions
        for res in self.block_resolutions:
            in_ch = cfg.channels(res // 2) if res > 4 else 0
            setattr(self, f"b{res}", SynthesisBlock(in_ch, cfg.channels(res), res, cfg))

    def blocks(self) -> list[tuple[int, SynthesisBlock]]:
        return [(res, getattr(self, f"b{res}")) for res in self.block_resolutions]

    def layer_ws_index(self) -> dict[str, int]:
        """Which W+ code feeds each layer's affine: 'b8.conv0' -> 1, ...; a block's toRGB uses the next conv's."""
        index, w_idx = {}, 0
        for res, block in self.blocks():
            for offset, name in enumerate(block.layer_names):
                index[f"b{res}.{name}"] = w_idx + offset
            w_idx += block.num_conv
        return index

    @property
    def style_shapes(self) -> dict[str, int]:
        """S-space layout: layer name -> style length (the layer's input channels)."""
        return {name: self.get_submodule(name).affine.weight.shape[0] for name in self.layer_ws_index()}

    def ws_to_styles(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """W+ [B, num_ws, w_dim] -> S-space {layer: [B, in_channels]}."""
        if ws.ndim != 3 or ws.shape[1] != self.cfg.num_ws:
            raise ValueError(f"W+ codes must be [B, {self.cfg.num_ws}, {self.cfg.w_dim}], got {list(ws.shape)}")
        return {name: self.get_submodule(name).affine(ws[:, idx]) for name, idx in self.layer_ws_index().items()}

    def synthesize(self, styles: dict[str, torch.Tensor], noise_mode: str = "const",
                   generator: torch.Generator | None = None, const: torch.Tensor | None = None) -> torch.Tensor:
        """S-space styles -> image [B, C, R, R]; ``const`` [B, channels(4), 4, 4] replaces the learned constant
        input (MegaFS's W++ space), None keeps it."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, not {noise_mode!r}")
        missing = sorted(set(self.layer_ws_index()) - set(styles))
        if missing:
            raise ValueError(f"styles missing for layers: {', '.join(missing)}")
        x, img = const, None
        for res, block in self.blocks():
            own = {name: styles[f"b{res}.{name}"] for name in block.layer_names}
            x, img = block(x, img, own, noise_mode, generator)
        return img

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", generator: torch.Generator | None = None,
                const: torch.Tensor | None = None) -> torch.Tensor:
        return self.synthesize(self.ws_to_styles(ws), noise_mode, generator, const)


class StyleGAN2Generator(nn.Module):
    """Mapping + synthesis. ``forward(z)`` samples; ``synthesis(ws)`` renders W+ codes."""

    def __init__(self, cfg: StyleGANConfig | None = None):
        super().__init__()
        self.cfg = cfg or StyleGANConfig()
        self.mapping = MappingNetwork(self.cfg)
        self.synthesis = SynthesisNetwork(self.cfg)

    @property
    def num_ws(self) -> int:
        return self.cfg.num_ws

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """W [B, w_dim] -> W+ [B, num_ws, w_dim] (the same code at every layer)."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def map(self, z: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
        """z [B, z_dim] -> truncated W+ [B, num_ws, w_dim]."""
        return self.mapping.truncate(self.broadcast(self.mapping(z)), psi, cutoff)

    def forward(self, z: torch.Tensor, psi: float = 1.0, cutoff: int | None = None, noise_mode: str = "const",
                generator: torch.Generator | None = None) -> torch.Tensor:
        """z [B, z_dim] -> image [B, C, R, R]."""
        return self.synthesis(self.map(z, psi, cutoff), noise_mode, generator)
