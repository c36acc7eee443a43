"""2D similarity alignment of faces to a template, batched crops and their inverse (for paste-back).

Matrices are ``(..., 2, 3)`` affine maps from *frame* pixels to *crop* pixels (OpenCV ``warpAffine``
convention: pixel centres at integer coordinates), so ``crop = warp(frame, M)`` and a crop point ``p``
maps back to the frame by ``invert_affine(M)``.

All functions accept numpy arrays or torch tensors and return the same kind (``warp_crops`` is torch only).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vidswap.errors import InputError

Array = np.ndarray | torch.Tensor

#: The ArcFace / InsightFace five-point template for 112x112 crops (eyes, nose tip, mouth corners; the
#: image-left eye first). SFace and inswapper use the same points.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def arcface_template(size: int = 112) -> np.ndarray:
    """The ArcFace five-point template for a square crop of ``size`` pixels.

    Sizes that are multiples of 112 scale the template; other sizes (128, 256, ...) follow InsightFace's
    convention: scale by ``size / 128`` and shift x by ``8 * size / 128`` (the 112 template sits centred in
    a 128 crop). Returns (5, 2) float32.
    """
    if size % 112 == 0:
        return ARCFACE_TEMPLATE_112 * np.float32(size / 112)
    ratio = size / 128.0
    out = ARCFACE_TEMPLATE_112 * np.float32(ratio)
    out[:, 0] += np.float32(8.0 * ratio)
    return out


def _is_torch(x: Array) -> bool:
    return isinstance(x, torch.Tensor)


def similarity_transform(src: Array, dst: Array, weights: Array | None = None) -> Array:
    """Least-squares 2D similarity (rotation, uniform scale, translation; no reflection) mapping src to dst.

    Closed form of Umeyama's method in 2D: with centred points, ``a = Σ w (s·d) / Σ w |s|²`` and
    ``b = Σ w (s × d) / Σ w |s|²`` give ``[[a, -b], [b, a]]``.

    Args:
        src: (..., N, 2) points (e.g. detected keypoints in frame pixels), N >= 2.
        dst: (N, 2) or (..., N, 2) target points (e.g. ``arcface_template(112)``).
        weights: optional (N,) or (..., N) non-negative weights per point.

    Returns:
        (..., 2, 3) float32 matrices M with ``dst ≈ M[:, :2] @ src + M[:, 2]``.
    """
    torch_mode = _is_torch(src)
    if torch_mode:
        dst = torch.as_tensor(dst, dtype=src.dtype, device=src.device)
        w = torch.ones(src.shape[:-1], dtype=src.dtype, device=src.device) if weights is None else \
            torch.as_tensor(weights, dtype=src.dtype, device=src.device).expand(src.shape[:-1])
    else:
        src = np.asarray(src, dtype=np.float64)
        dst = np.asarray(dst, dtype=np.float64)
        w = np.ones(src.shape[:-1]) if weights is None else \
            np.broadcast_to(np.asarray(weights, dtype=np.float64), src.shape[:-1])
    w = w[..., None]
    wsum = w.sum(-2, keepdims=True)
    mu_s = (w * src).sum(-2, keepdims=True) / wsum
    mu_d = (w * dst).sum(-2, keepdims=True) / wsum
    s = src - mu_s
    d = dst - mu_d
    var = (w[..., 0] * (s ** 2).sum(-1)).sum(-1)
    a = (w[..., 0] * (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1])).sum(-1) / var
    b = (w[..., 0] * (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0])).sum(-1) / var
    ms, md = mu_s[..., 0, :], mu_d[..., 0, :]
    tx = md[..., 0] - (a * ms[..., 0] - b * ms[..., 1])
    ty = md[..., 1] - (b * ms[..., 0] + a * ms[..., 1])
    rows = [a, -b, tx, b, a, ty]
    if torch_mode:
        return torch.stack(rows, -1).reshape(*a.shape, 2, 3)
    return np.stack(rows, -1).reshape(*a.shape, 2, 3).astype(np.float32)


def estimate_alignment(kps: Array, size: int = 112, template: Array | None = None) -> Array:
    """Frame->crop matrices aligning five-point keypoints to the ArcFace template of a ``size`` crop.

    Args:
        kps: (..., 5, 2) keypoints in frame pixels (order as in ``vidswap.faces.types``).
        size: crop side in pixels.
        template: (5, 2) points in crop pixels; default ``arcface_template(size)``.

    Returns:
        (..., 2, 3) matrices.
    """
    tpl = arcface_template(size) if template is None else template
    return similarity_transform(kps, tpl)


def invert_affine(m: Array) -> Array:
    """Inverse of (..., 2, 3) affine matrices (crop->frame for paste-back). Same kind and shape."""
    if _is_torch(m):
        lin = m[..., :2]
        inv = torch.linalg.inv(lin)
        t = -(inv @ m[..., 2:])
        return torch.cat([inv, t], -1)
    m64 = np.asarray(m, dtype=np.float64)
    inv = np.linalg.inv(m64[..., :2])
    t = -(inv @ m64[..., 2:])
    return np.concatenate([inv, t], -1).astype(np.float32)


def transform_points(m: Array, pts: Array) -> Array:
    """Apply (..., 2, 3) matrices to (..., N, 2) points -> (..., N, 2)."""
    return pts @ m[..., :2].swapaxes(-1, -2) + m[..., None, :, 2] if not _is_torch(m) else \
        pts @ m[..., :2].transpose(-1, -2) + m[..., None, :, 2]


def warp_crops(images: torch.Tensor, matrices: Array, size: int | tuple[int, int],
               index: Sequence[int] | torch.Tensor | None = None, mode: str = "bilinear",
               padding_mode: str = "zeros") -> torch.Tensor:
    """Batched affine crops with kornia.

    Args:
        images: (B, C, H, W) float tensor (frames).
        matrices: (N, 2, 3) frame->crop matrices (numpy or torch).
        size: crop side, or (height, width).
        index: (N,) which image each crop comes from; default ``range(N)`` (then N must equal B).
        mode: ``bilinear`` or ``nearest``.
        padding_mode: ``zeros``, ``border`` or ``reflection`` for samples outside the frame.

    Returns:
        (N, C, h, w) crops, same dtype and device as ``images``. Matches ``cv2.warpAffine`` sampling
        (pixel centres at integer coordinates).
    """
    from kornia.geometry.transform import warp_affine

    h, w = (size, size) if isinstance(size, int) else size
    m = torch.as_tensor(matrices, dtype=images.dtype, device=images.device)
    if m.ndim == 2:
        m = m[None]
    if index is not None:
        idx = torch.as_tensor(index, dtype=torch.long, device=images.device)
        src = images if (len(idx) == images.shape[0] and bool((idx == torch.arange(len(idx),
                                                                                   device=idx.device)).all())) \
            else images.index_select(0, idx)
    else:
        src = images
    if src.shape[0] != m.shape[0]:
        raise ValueError(f"warp_crops: {src.shape[0]} images for {m.shape[0]} matrices; pass index=")
    return warp_affine(src, m, (h, w), mode=mode, padding_mode=padding_mode, align_corners=True)


def as_rgb8(frame: np.ndarray) -> np.ndarray:
    """An HxWx3 RGB frame as uint8 for the analysis models (which all take 8-bit input).

    uint8 passes through unchanged; uint16 (10/12/16-bit plates scaled to 16 bits) is shifted down; float is
    taken as [0, 1] and clipped. An RGBA frame drops its alpha. Raises InputError for other shapes.
    """
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"expected an HxWx3 RGB frame, got an array of shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise InputError(f"unsupported frame dtype {arr.dtype}; expected uint8, uint16 or float")


def images_to_tensor(images: Sequence[np.ndarray], device: str | torch.device = "cpu") -> torch.Tensor:
    """HxWx3 uint8 RGB frames (same size) -> (B, 3, H, W) float32 in [0, 1]."""
    arr = np.stack([np.asarray(im) for im in images])
    t = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2)
    return t.float().div_(255.0)
