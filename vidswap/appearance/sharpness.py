"""Match a render's sharpness to the plate's: a source photo is usually sharper (and its JPEG noise crisper) than
a video plate, and a face sharper than the picture around it reads as pasted -- and shimmers as it moves.

Sharpness is measured as the mean absolute response of a band-pass (difference of Gaussians, ``sigma`` and
``2 sigma``) of the luminance over a face mask: a mid band, so the plate's grain (the finest band, re-applied by the
compositor's grain match) does not count as detail. The render is blurred by the Gaussian whose result has the
plate's band energy: the energies of a few blur levels are measured and the level is interpolated between them
(a continuous sigma, so it does not jump from frame to frame). A render softer than the plate is left as it is.

Shapes: images (B, 3, H, W) linear or encoded (the same for both), masks (B, 1, H, W).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidswap.appearance.encoding import luminance
from vidswap.composite.filters import gaussian_blur

__all__ = ["band_energy", "matching_blur", "match_sharpness"]

#: blur levels (pixels at the crop's scale) among which the matching sigma is interpolated
LEVELS = (0.0, 0.75, 1.5, 2.5)
_EPS = 1e-8


def band_energy(images: Tensor, mask: Tensor, sigma: float = 1.0) -> Tensor:
    """Mean |DoG(sigma, 2 sigma)| of the luminance over ``mask``: (B, 3, H, W), (B, 1, H, W) -> (B,)."""
    lum = luminance(images)
    band = gaussian_blur(lum, sigma) - gaussian_blur(lum, 2.0 * sigma)
    return (band.abs() * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp(min=_EPS)


def matching_blur(render: Tensor, plate: Tensor, mask: Tensor, sigma: float = 1.0) -> Tensor:
    """The Gaussian blur (B,) pixels that gives ``render`` the band energy of ``plate`` over ``mask`` (0 when the
    render is not sharper; at most the last level)."""
    target = band_energy(plate, mask, sigma)
    energies = torch.stack([band_energy(render if s == 0 else gaussian_blur(render, s), mask, sigma)
                            for s in LEVELS], 1)  # (B, L), decreasing with the blur
    levels = torch.tensor(LEVELS, device=render.device, dtype=render.dtype)
    out = torch.zeros(render.shape[0], device=render.device, dtype=render.dtype)
    for i in range(len(LEVELS) - 1):
        e0, e1 = energies[:, i], energies[:, i + 1]
        t = ((e0 - target) / (e0 - e1).clamp(min=_EPS)).clamp(0.0, 1.0)
        inside = (target < e0) & (target >= e1)
        out = torch.where(inside, levels[i] + t * (levels[i + 1] - levels[i]), out)
    return torch.where(target < energies[:, -1], levels[-1], out)


def match_sharpness(render: Tensor, plate: Tensor, mask: Tensor, sigma: float = 1.0) -> Tensor:
    """``render`` blurred to the plate's sharpness over ``mask`` (see :func:`matching_blur`)."""
    blur = matching_blur(render, plate, mask, sigma)
    if float(blur.max()) <= 0.0:
        return render
    return torch.where(blur[:, None, None, None] > 0, gaussian_blur(render, blur.clamp(min=1e-3)), render)
