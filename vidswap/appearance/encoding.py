"""The sRGB transfer function (IEC 61966-2-1) in torch: shading arithmetic happens on linear values.

The swap core sees display-referred pictures (video, or EXR plates converted to the sRGB-encoded working space by
OCIO, :mod:`vidswap.io.colour`); ratios of encoded code values are wrong in the shadows, so every product and
quotient of the relit render is taken on these linear values and encoded back at the end.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from vidswap.composite.lab import positive_pow

__all__ = ["srgb_to_linear", "linear_to_srgb", "srgb_to_linear_within", "linear_to_srgb_drawn", "luminance",
           "toward_luminance"]

# line(knee) - curve(knee) of each direction (float32 curve values, as the tensors compute them)
_SHIFT_TO_LINEAR = 0.04045 / 12.92 - float(
    positive_pow(torch.tensor(0.04045).add(0.055).div(1.055), 2.4))
_SHIFT_TO_SRGB = 0.0031308 * 12.92 - float(
    positive_pow(torch.tensor(0.0031308), 1 / 2.4).mul(1.055).sub(0.055))


def srgb_to_linear(x: Tensor) -> Tensor:
    """sRGB-encoded values in [0, 1] -> linear (any shape; values outside [0, 1] are clamped first)."""
    x = x.clamp(0.0, 1.0)
    # where(x <= knee, line, curve) without the mask and select: the curve above the knee plus the line's part
    # below it, shifted by the ~2e-9 the two miss each other at the knee (so the line's values are exact)
    curve = positive_pow(x.clamp(min=0.04045).add_(0.055).div_(1.055), 2.4)
    return curve.add_(x.clamp(max=0.04045).sub_(0.04045).div_(12.92).add_(_SHIFT_TO_LINEAR))


def linear_to_srgb(x: Tensor) -> Tensor:
    """Linear values -> sRGB-encoded in [0, 1] (clamped)."""
    x = x.clamp(0.0, 1.0)
    # as srgb_to_linear: the curve above the knee plus the line below it, shifted by the ~1e-6 they miss at the knee
    curve = positive_pow(x.clamp(min=0.0031308), 1 / 2.4).mul_(1.055).sub_(0.055)
    return curve.add_(x.clamp(max=0.0031308).sub_(0.0031308).mul_(12.92).add_(_SHIFT_TO_SRGB))


#: the encoding of linear 0 as :func:`linear_to_srgb` computes it (0.0 in float32: the knee's shift cancels the line's
#: offset exactly; computed, not assumed)
_SRGB_OF_ZERO = float(linear_to_srgb(torch.zeros(64))[0])


def srgb_to_linear_within(x: Tensor, rows: slice, cols: slice) -> Tensor:
    """:func:`srgb_to_linear` of ``x`` (..., H, W) over the box ``rows`` x ``cols`` alone, 0 elsewhere: for a reader
    that never looks outside it (an unwrap's bilinear samples of a face in its crop: a face covers ~40% of it)."""
    out = torch.zeros_like(x)
    out[..., rows, cols] = srgb_to_linear(x[..., rows, cols])
    return out


def linear_to_srgb_drawn(x: Tensor, drawn: Tensor) -> Tensor:
    """:func:`linear_to_srgb` of a render ``x`` (B, C, H, W) that is 0 outside what it drew: converted over the box
    of the pixels ``drawn`` (B, 1, H, W) marks (> 0) in any frame, the encoding of 0 everywhere else. The same values
    as :func:`linear_to_srgb` of the whole, bit for bit (elementwise), for the face's part of the crop's cost."""
    marked = (drawn[:, 0] > 0).any(0)  # (H, W)
    rows, cols = torch.nonzero(marked.any(1))[:, 0], torch.nonzero(marked.any(0))[:, 0]
    out = torch.full_like(x, _SRGB_OF_ZERO)
    if rows.numel():
        box = (..., slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        out[box] = linear_to_srgb(x[box])
    return out


def luminance(x: Tensor) -> Tensor:
    """Rec.709 luminance of linear RGB: (B, 3, ...) -> (B, 1, ...)."""
    return 0.2126 * x[:, 0:1] + 0.7152 * x[:, 1:2] + 0.0722 * x[:, 2:3]


def toward_luminance(x: Tensor, target: Callable[[Tensor], Tensor], amount: Tensor | float) -> Tensor:
    """``x``'s first three channels (linear RGB) scaled, colour ratios kept, so that their luminance ``L`` (floored
    at 1e-6) goes to ``target(L)`` by ``amount`` (0: unchanged, 1: fully; a gain ``1 + (target(L) / L - 1) x
    amount``); further channels (a weight) pass as they are. (B, C>=3, ...), amount broadcastable to (B, 1, ...) ->
    (B, C, ...)."""
    rgb = x[:, :3]
    lum = luminance(rgb).clamp(min=1e-6)
    gain = 1.0 + (target(lum) / lum - 1.0) * amount
    return torch.cat([rgb * gain, x[:, 3:]], 1)
