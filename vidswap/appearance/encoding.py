"""The sRGB transfer function (IEC 61966-2-1) in torch: shading arithmetic happens on linear values.

The swap core sees display-referred pictures (video, or EXR plates converted to the sRGB-encoded working space by
OCIO, :mod:`vidswap.io.colour`); ratios of encoded code values are wrong in the shadows, so every product and
quotient of the relit render is taken on these linear values and encoded back at the end.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["srgb_to_linear", "linear_to_srgb", "luminance"]


def srgb_to_linear(x: Tensor) -> Tensor:
    """sRGB-encoded values in [0, 1] -> linear (any shape; values outside [0, 1] are clamped first)."""
    x = x.clamp(0.0, 1.0)
    # where(x <= knee, line, curve) without the mask and select: the curve above the knee plus the line's part
    # below it (the two meet at the knee to ~1e-9)
    return x.clamp(min=0.04045).add_(0.055).div_(1.055).pow_(2.4).add_(x.clamp(max=0.04045).sub_(0.04045).div_(12.92))


def linear_to_srgb(x: Tensor) -> Tensor:
    """Linear values -> sRGB-encoded in [0, 1] (clamped)."""
    x = x.clamp(0.0, 1.0)
    # as srgb_to_linear: the curve above the knee plus the line below it (they meet at the knee to ~1e-6)
    curve = x.clamp(min=0.0031308).pow_(1 / 2.4).mul_(1.055).sub_(0.055)
    return curve.add_(x.clamp(max=0.0031308).sub_(0.0031308).mul_(12.92))


def luminance(x: Tensor) -> Tensor:
    """Rec.709 luminance of linear RGB: (B, 3, ...) -> (B, 1, ...)."""
    return 0.2126 * x[:, 0:1] + 0.7152 * x[:, 1:2] + 0.0722 * x[:, 2:3]
