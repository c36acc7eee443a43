"""StyleGAN2 building blocks: equalised-lr dense layers, modulated convolution, FIR resampling.

Facts from Karras et al. 2020 ("Analyzing and Improving the Image Quality of StyleGAN", sec. 2.2: weight
modulation and demodulation) and the public layout of NVIDIA's stylegan2-ada-pytorch checkpoints (parameter and
buffer names, the [1, 3, 3, 1] resampling filter, the gains). Our own implementation: every op is plain torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)
LRELU_SLOPE = 0.2


def resample_filter() -> torch.Tensor:
    """The separable [1, 3, 3, 1] binomial filter as a normalised 2-D kernel: [4, 4], sums to 1."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


def fir_filter(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int, int, int], gain: float = 1.0
               ) -> torch.Tensor:
    """Pad and filter every channel with one 2-D FIR kernel (correlation with the flipped kernel, i.e. convolution).

    x: [B, C, H, W]; kernel: [kh, kw]; pad: (left, right, top, bottom) -> [B, C, H + top + bottom - kh + 1, ...].
    """
    channels = x.shape[1]
    x = F.pad(x, pad)
    weight = (kernel.flip([0, 1]) * gain).to(x.dtype)[None, None].repeat(channels, 1, 1, 1)
    return F.conv2d(x, weight, groups=channels)


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """2x upsampling by zero insertion then the FIR kernel with gain 4 (the skip path of the toRGB outputs).

    x: [B, C, H, W] -> [B, C, 2H, 2W].
    """
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    kh = kernel.shape[0]
    lo, hi = (kh + 1) // 2, (kh - 2) // 2
    return fir_filter(up, kernel, (lo, hi, lo, hi), gain=4.0)


def bias_act(x: torch.Tensor, bias: torch.Tensor, lrelu: bool, clamp: float | None = None) -> torch.Tensor:
    """Add a per-channel bias, then leaky ReLU (slope 0.2, gain sqrt 2) or identity, then clamp.

    x: [B, C, ...]; bias: [C].
    """
    x = x + bias.reshape(1, -1, *([1] * (x.ndim - 2))).to(x.dtype)
    if lrelu:
        x = F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     up: bool = False, kernel: torch.Tensor | None = None) -> torch.Tensor:
    """Convolution whose weights are scaled per sample by ``styles`` (modulation), then normalised per output
    channel to unit L2 norm (demodulation): w'_{oik} = s_i w_{oik}, w''_{oik} = w'_{oik} / sqrt(sum_ik w'^2 + 1e-8).

    x: [B, I, H, W]; weight: [O, I, k, k]; styles: [B, I] -> [B, O, H, W] ('same' padding), or [B, O, 2H, 2W] with
    ``up`` (transposed convolution at stride 2 followed by the FIR ``kernel`` with gain 4, as NVIDIA's layers do).
    """
    b, i, h, w = x.shape
    o, _, kh, kw = weight.shape
    wts = weight[None].to(x.dtype) * styles[:, None, :, None, None]  # [B, O, I, k, k]
    if demodulate:
        wts = wts * (wts.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    x = x.reshape(1, b * i, h, w)
    if not up:
        y = F.conv2d(x, wts.reshape(b * o, i, kh, kw), padding=kh // 2, groups=b)
    else:
        if kernel is None:
            raise ValueError("up-sampling modulated convolution needs the FIR kernel")
        wts = wts.transpose(1, 2).reshape(b * i, o, kh, kw)
        y = F.conv_transpose2d(x, wts, stride=2, groups=b)  # [1, B*O, 2H + k - 2, 2W + k - 2]
        fk = kernel.shape[0]
        lo = (fk + 1) // 2 + kh // 2 - (kh - 1)
        hi = (fk - 2) // 2 + kh // 2 - (kh - 2)
        y = fir_filter(y, kernel, (lo, hi, lo, hi), gain=4.0)
    return y.reshape(b, o, y.shape[2], y.shape[3])


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: y = x (W * lr / sqrt(in))^T + b * lr. x: [B, in] -> [B, out]."""

    def __init__(self, in_features: int, out_features: int, lrelu: bool = False, bias_init: float = 0.0,
                 lr_multiplier: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)) / lr_multiplier)
        self.lrelu = lrelu
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight.to(x.dtype) * self.weight_gain)
        return bias_act(y, self.bias * self.bias_gain, self.lrelu)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up), per-pixel noise, bias and leaky ReLU.

    Its style is ``affine(w)``: [B, in_channels]; ``forward`` takes the style itself so S-space edits can be injected.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 conv_clamp: float | None = None):
        super().__init__()
        self.up = up
        self.resolution = resolution
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", resample_filter())

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise_mode: str = "const",
                generator: torch.Generator | None = None) -> torch.Tensor:
        """x: [B, I, r/2 or r, ...]; style: [B, I] -> [B, O, r, r]."""
        y = modulated_conv2d(x, self.weight, style, demodulate=True, up=self.up, kernel=self.resample_filter)
        if noise_mode == "random":
            noise = torch.randn(y.shape[0], 1, self.resolution, self.resolution, generator=generator,
                                device=y.device, dtype=y.dtype)
            y = y + noise * self.noise_strength
        elif noise_mode == "const":
            y = y + self.noise_const.to(y.dtype) * self.noise_strength
        elif noise_mode != "none":
            raise ValueError(f"noise_mode must be random, const or none, not {noise_mode!r}")
        return bias_act(y, self.bias, lrelu=True, clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation. x: [B, I, r, r], style [B, I] -> [B, C, r, r]."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        y = modulated_conv2d(x, self.weight, style * self.weight_gain, demodulate=False)
        return bias_act(y, self.bias, lrelu=False, clamp=self.conv_clamp)
