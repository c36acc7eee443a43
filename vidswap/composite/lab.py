"""sRGB <-> CIE L*a*b* (D65) with fewer full-size passes than kornia's, for the colour match's crop-size work.

The same formulas and constants as ``kornia.color.rgb_to_lab`` / ``lab_to_rgb`` (so results agree to float
rounding, ~1e-5 in L*a*b* units and ~1e-6 in RGB): the white point is folded into the XYZ matrices and the
L*a*b* rows into one 3x3 product, and :func:`lab_affine` maps the render's encoded values through a per-channel
L*a*b* affine (the Reinhard transfer) without materialising L*a*b* twice.

Images are ``(B, 3, H, W)`` float sRGB-encoded RGB; L*a*b* tensors the same shape in L*, a*, b* units.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rgb_to_lab", "lab_to_rgb", "lab_affine", "rgb_to_f", "f_to_rgb", "lightness_f", "positive_pow"]

_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
_XYZ_TO_RGB = ((3.2404813432005266, -1.5371515162713185, -0.4985363261688878),
               (-0.9692549499965682, 1.8759900014898907, 0.0415559265582928),
               (0.0556466391351772, -0.2040413383665112, 1.0573110696453443))
_WHITE = (0.95047, 1.0, 1.08883)
# f = (fx, fy, fz) -> (L*, a*, b*) = _F_TO_LAB @ f + (-16, 0, 0)
_F_TO_LAB = ((0.0, 116.0, 0.0), (500.0, -500.0, 0.0), (0.0, 200.0, -200.0))


def _mix(m: Tensor, x: Tensor) -> Tensor:
    """``(3, 3) @ (B, 3, H, W)`` over the channel axis."""
    return torch.einsum("ij,bjhw->bihw", m, x)


def _consts(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    kw = {"dtype": torch.float64}
    white = torch.tensor(_WHITE, **kw)
    to_xyzn = torch.tensor(_RGB_TO_XYZ, **kw) / white[:, None]  # rows divided by the white point
    from_xyzn = torch.tensor(_XYZ_TO_RGB, **kw) * white[None, :]  # columns times the white point
    f_to_lab = torch.tensor(_F_TO_LAB, **kw)
    return tuple(t.to(device=x.device, dtype=x.dtype) for t in (to_xyzn, from_xyzn, f_to_lab))


def positive_pow(x: Tensor, p: float) -> Tensor:
    """``x ** p`` of positive float ``x``, in place, as ``exp(p * log(x))``: torch's ``pow_`` with a float exponent
    takes ~3x the time on CPU (float32, one thread, 1M elements: 3.7-4.0 ms against 1.2 ms), and the power curves
    of the colour conversions were the render's largest single cost at 1080p. The same values to float rounding:
    within 3e-6 relative of float64 ``pow`` on [0.001, 1.26] for the exponents used here (``pow_``: 7e-7)."""
    return x.log_().mul_(p).exp_()


def _piecewise(x: Tensor, knee: float, curve, slope: float, overwrite: bool = False) -> Tensor:
    """``curve(x)`` above ``knee``, the straight segment ``curve(knee) + slope * (x - knee)`` below it.

    Each of the four pieces below meets its curve at the knee (to ~1e-7, the standards' rounding), so this is
    their ``where(x > knee, curve, line)`` without the boolean mask and the select, the costly full-size passes.
    ``overwrite``: ``x`` is the caller's temporary, and the line is computed in its place (one full-size tensor
    fewer allocated; the same values).
    """
    above = x.clamp(min=knee)
    below = (x.clamp_(max=knee) if overwrite else x.clamp(max=knee)).sub_(knee).mul_(slope)
    return curve(above).add_(below)


def _srgb_decode(x: Tensor) -> Tensor:
    return _piecewise(x, 0.04045, lambda v: positive_pow(v.add_(0.055).div_(1.055), 2.4), 1.0 / 12.92)


def _srgb_encode(lin: Tensor) -> Tensor:  # overwrites lin
    return _piecewise(lin, 0.0031308, lambda v: positive_pow(v, 1 / 2.4).mul_(1.055).sub_(0.055), 12.92, True)


def _f_of_xyz(xyzn: Tensor) -> Tensor:  # overwrites xyzn
    return _piecewise(xyzn, 0.008856, lambda v: positive_pow(v, 1 / 3.0), 7.787, True)


def _xyz_of_f(f: Tensor) -> Tensor:  # overwrites f
    return _piecewise(f, 0.2068966, lambda v: v * v * v, 1.0 / 7.787, True)


def rgb_to_f(image: Tensor) -> Tensor:
    """``(B, 3, H, W)`` sRGB in [0, 1] -> (fx, fy, fz), the CIE cube-root terms of X/Xn, Y/Yn, Z/Zn (D65):
    L* = 116 fy - 16, a* = 500 (fx - fy), b* = 200 (fy - fz)."""
    to_xyzn, _, _ = _consts(image)
    return _f_of_xyz(_mix(to_xyzn, _srgb_decode(image)))


def lightness_f(image: Tensor) -> Tensor:
    """``(B, 3, H, W)`` sRGB in [0, 1] -> ``(B, 1, H, W)`` fy alone (L* = 116 fy - 16), as :func:`rgb_to_f`'s."""
    to_xyzn, _, _ = _consts(image)
    return _f_of_xyz(_mix(to_xyzn[1:2], _srgb_decode(image)))


def f_to_rgb(f: Tensor) -> Tensor:
    """(fx, fy, fz) -> ``(B, 3, H, W)`` sRGB, unclipped (the inverse of :func:`rgb_to_f`; overwrites ``f``)."""
    _, from_xyzn, _ = _consts(f)
    f[:, 2].clamp_(min=0.0)  # kornia: colour data out of range, Z < 0
    return _srgb_encode(_mix(from_xyzn, _xyz_of_f(f)))


def rgb_to_lab(image: Tensor) -> Tensor:
    """``(B, 3, H, W)`` sRGB in [0, 1] -> L*a*b* (D65), as ``kornia.color.rgb_to_lab``."""
    _, _, f_to_lab = _consts(image)
    lab = _mix(f_to_lab, rgb_to_f(image))
    lab[:, 0] -= 16.0
    return lab


def lab_to_rgb(lab: Tensor) -> Tensor:
    """L*a*b* -> ``(B, 3, H, W)`` sRGB, unclipped, as ``kornia.color.lab_to_rgb(lab, clip=False)``."""
    _, _, f_to_lab = _consts(lab)
    shifted = lab.clone()
    shifted[:, 0] += 16.0
    return f_to_rgb(_mix(torch.linalg.inv(f_to_lab.double()).to(lab.dtype), shifted))


def lab_affine(lab: Tensor, gain: Tensor, offset: Tensor) -> Tensor:
    """sRGB of ``lab * gain + offset`` per channel, from the image's L*a*b* ``lab``.

    Args:
        lab: ``(B, 3, H, W)`` L*a*b* of the image (from :func:`rgb_to_lab`).
        gain: ``(B, 3)`` per-channel gain.
        offset: ``(B, 3)`` per-channel offset, in L*a*b* units.

    Returns:
        ``(B, 3, H, W)`` sRGB, unclipped (kornia's ``lab_to_rgb(..., clip=False)`` of the moved L*a*b*).
    """
    _, _, f_to_lab = _consts(lab)
    lab_to_f = torch.linalg.inv(f_to_lab.double()).to(lab.dtype)
    # f = lab_to_f @ (gain * lab + offset + (16, 0, 0)): one (B, 3, 3) product plus a per-item constant.
    shift = offset.clone()
    shift[:, 0] += 16.0
    m = lab_to_f[None] * gain[:, None, :]  # (B, 3, 3)
    c = shift @ lab_to_f.T  # (B, 3)
    f = torch.einsum("bij,bjhw->bihw", m, lab).add_(c[:, :, None, None])
    return f_to_rgb(f)
