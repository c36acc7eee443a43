"""Blending a foreground into a background: feathered alpha, Laplacian multi-band, Poisson (OpenCV).

All torch functions take ``(B, C, H, W)`` float tensors and a ``(B, 1, H, W)`` mask in [0, 1] and keep
the background *bit-exact* where the mask is 0.

The pyramids follow OpenCV's ``pyrDown`` / ``pyrUp`` exactly (5-tap binomial kernel, reflect-101 borders,
``ceil(n / 2)`` sizes), so any image size works and a NumPy/OpenCV reference gives the same numbers.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidswap.errors import InputError

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def alpha_blend(fg: torch.Tensor, bg: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``bg + alpha * (fg - bg)``, exactly ``bg`` where alpha is 0 and exactly ``fg`` where it is 1.

    Args:
        fg: ``(B, C, H, W)``.
        bg: ``(B, C, H, W)``.
        alpha: ``(B, 1, H, W)`` in [0, 1].

    Returns:
        ``(B, C, H, W)``.
    """
    return torch.lerp(bg, fg, alpha.to(bg.dtype).expand_as(bg))


def _blur5(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Separable 5-tap binomial blur, reflect-101 border; each 1-D pass is multiplied by ``scale``."""
    k = [v * scale / 16.0 for v in _BINOMIAL]
    h, w = x.shape[-2:]
    # Shifted multiply-adds (symmetric taps paired): faster than a grouped convolution on CPU.
    y = F.pad(x, (0, 0, 2, 2), mode="reflect")
    acc = y[..., 2 : h + 2, :] * k[2] + (y[..., 1 : h + 1, :] + y[..., 3 : h + 3, :]) * k[1]
    acc = acc + (y[..., 0:h, :] + y[..., 4 : h + 4, :]) * k[0]
    y = F.pad(acc, (2, 2, 0, 0), mode="reflect")
    acc = y[..., 2 : w + 2] * k[2] + (y[..., 1 : w + 1] + y[..., 3 : w + 3]) * k[1]
    return acc + (y[..., 0:w] + y[..., 4 : w + 4]) * k[0]


def _reflect_ok(x: torch.Tensor) -> torch.Tensor:
    """Reflect padding by 2 needs sides >= 3; tiny levels are replicate-padded up to 3 pixels first."""
    h, w = x.shape[-2:]
    if h >= 3 and w >= 3:
        return x
    return F.pad(x, (0, max(0, 3 - w), 0, max(0, 3 - h)), mode="replicate")


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """One Gaussian pyramid step, like ``cv2.pyrDown``.

    Args:
        x: ``(B, C, H, W)``.

    Returns:
        ``(B, C, ceil(H / 2), ceil(W / 2))``.
    """
    h, w = x.shape[-2:]
    y = _blur5(_reflect_ok(x), 1.0)
    return y[..., : h : 2, : w : 2]


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One expand step, like ``cv2.pyrUp(x, dstsize=size)``: zero insertion then the 5-tap kernel times 4.

    Args:
        x: ``(B, C, h, w)``.
        size: ``(H, W)`` with ``H`` in ``{2h - 1, 2h}`` and ``W`` in ``{2w - 1, 2w}``.

    Returns:
        ``(B, C, H, W)``.
    """
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    y = _blur5(_reflect_ok(up), 2.0)  # 2 per axis: 4 in all, the zero-insertion gain
    return y[..., : size[0], : size[1]]


def gaussian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` images, full resolution first."""
    pyr = [x]
    for _ in range(levels - 1):
        pyr.append(pyr_down(pyr[-1]))
    return pyr


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels ``g[i] - pyr_up(g[i + 1])`` and the low-pass residual last (``levels`` images)."""
    g = gaussian_pyramid(x, levels)
    bands = [g[i] - pyr_up(g[i + 1], g[i].shape[-2:]) for i in range(levels - 1)]
    return [*bands, g[-1]]


def collapse_pyramid(pyr: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of :func:`laplacian_pyramid`."""
    acc = pyr[-1]
    for band in reversed(pyr[:-1]):
        acc = pyr_up(acc, band.shape[-2:]) + band
    return acc


def max_levels(size: tuple[int, int], min_side: int = 8) -> int:
    """Most pyramid levels whose coarsest image still has a side of at least ``min_side`` pixels."""
    side = max(1, min(size))
    return max(1, int(math.floor(math.log2(max(side / min_side, 1.0)))) + 1)


def laplacian_delta(fg: torch.Tensor, bg: torch.Tensor, mask: torch.Tensor, levels: int) -> torch.Tensor:
    """The change a multi-band blend makes to ``bg``: ``collapse(G(mask) * L(fg - bg))``.

    Because the pyramids are linear this equals ``collapse(G(m) L(fg) + (1 - G(m)) L(bg)) - bg`` but it is
    exactly 0 where ``fg == bg`` and needs one pyramid instead of two.

    Args:
        fg, bg: ``(B, C, H, W)``.
        mask: ``(B, 1, H, W)``.
        levels: number of pyramid levels (1 = plain alpha blend).

    Returns:
        ``(B, C, H, W)``.
    """
    levels = max(1, min(int(levels), max_levels(tuple(bg.shape[-2:]), 1)))
    lap = laplacian_pyramid(fg - bg, levels)
    gm = gaussian_pyramid(mask.to(bg.dtype), levels)
    return collapse_pyramid([m * band for m, band in zip(gm, lap)])


def laplacian_blend(fg: torch.Tensor, bg: torch.Tensor, mask: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Burt-Adelson multi-band blend: low frequencies cross the seam over a wide band, detail over a narrow one.

    Args:
        fg: ``(B, C, H, W)`` foreground.
        bg: ``(B, C, H, W)`` background.
        mask: ``(B, 1, H, W)`` foreground weight in [0, 1].
        levels: pyramid levels including the low-pass residual; 1 is :func:`alpha_blend`. Clipped to what the
            image size allows.

    Returns:
        ``(B, C, H, W)``; equal to ``bg`` wherever ``fg == bg``.
    """
    if levels <= 1:
        return alpha_blend(fg, bg, mask)
    return bg + laplacian_delta(fg, bg, mask, levels)


# ------------------------------------------------------------------------------------------------ Poisson

_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _to_u8(img: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(img.astype(np.float64) * (255.0 / scale)), 0, 255).astype(np.uint8)


def poisson_blend(fg: np.ndarray, bg: np.ndarray, mask: np.ndarray, mixed: bool = False) -> np.ndarray:
    """Poisson (gradient-domain) clone of ``fg`` into ``bg`` inside ``mask`` with ``cv2.seamlessClone``.

    ``fg`` and ``bg`` are aligned (same size, same coordinates). OpenCV clones 8-bit images only; for 16-bit and
    float images the Poisson *correction* (``clone(fg8) - fg8``, a smooth membrane) is computed in 8 bits and
    added to the full-precision ``fg``, so the face keeps its bit depth.

    Args:
        fg: ``(H, W, 3)`` uint8, uint16 or float in [0, 1].
        bg: ``(H, W, 3)`` same dtype.
        mask: ``(H, W)`` any dtype; nonzero = clone region. Its outer 2-pixel frame is ignored (OpenCV needs
            a border).
        mixed: ``cv2.MIXED_CLONE`` (keeps the stronger of both gradients) instead of ``NORMAL_CLONE``.

    Returns:
        ``(H, W, 3)`` of ``bg``'s dtype; exactly ``bg`` outside the mask.
    """
    if fg.shape != bg.shape or fg.ndim != 3 or fg.shape[2] != 3 or mask.shape != fg.shape[:2]:
        raise InputError(f"poisson_blend: fg {fg.shape}, bg {bg.shape} and mask {mask.shape} must match (HxWx3)")
    h, w = mask.shape
    m = np.zeros((h, w), np.uint8)
    m[2 : h - 2, 2 : w - 2] = (mask[2 : h - 2, 2 : w - 2] != 0) * 255
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        return bg.copy()
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    # seamlessClone centres the mask's bounding box at p (integer halves), so this keeps fg and bg aligned.
    center = (int(x0 + (x1 - x0 + 1) // 2), int(y0 + (y1 - y0 + 1) // 2))
    flag = cv2.MIXED_CLONE if mixed else cv2.NORMAL_CLONE
    dt = np.dtype(bg.dtype)
    scale = _INT_MAX.get(dt, 1.0)
    fg8, bg8 = _to_u8(fg, scale), _to_u8(bg, scale)
    inside = (m > 0)[:, :, None]
    cloned = cv2.seamlessClone(fg8, bg8, m.copy(), center, flag)  # OpenCV 5 writes into the mask it is given
    if dt == np.uint8:
        return np.where(inside, cloned, bg)
    corr = (cloned.astype(np.float64) - fg8.astype(np.float64)) * (scale / 255.0)
    out = fg.astype(np.float64) + corr
    if dt in _INT_MAX:
        out = np.clip(np.rint(out), 0, scale)
    return np.where(inside, out.astype(dt), bg)
