"""Lossless conversion between plate pixels (numpy, any bit depth) and the compositor's float tensors.

The compositor works on float32 tensors ``(B, C, H, W)`` whose value 1.0 is the integer format's white
(uint8 255, uint16 65535); float plates (EXR, float16/float32) are taken as they are, values above 1 and below 0
included. The conversions are exact for every untouched pixel:

* uint8:   ``x = u / 255`` in float32, back with ``round(x * 255)``  (all 256 codes round-trip),
* uint16:  ``x = u / 65535`` in float32, back with ``round(x * 65535)`` (all 65536 codes round-trip),
* float16: widened to float32 (exact), narrowed back (exact for values that came from float16),
* float32: copied.
"""

from __future__ import annotations

import numpy as np
import torch

from vidswap.errors import InputError

#: Integer formats and the code value that maps to 1.0.
INT_SCALE: dict[np.dtype, float] = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
FLOAT_TYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def to_float(image: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """Convert a plate image (or a stack of them) to a float32 tensor in channels-first layout.

    Args:
        image: ``(H, W, C)`` or ``(N, H, W, C)`` numpy array, dtype uint8, uint16, float16, float32 (float64 is
            narrowed to float32).
        device: where the tensor goes (default CPU).

    Returns:
        ``(C, H, W)`` or ``(N, C, H, W)`` float32 tensor; integer codes scaled to [0, 1], floats unchanged.

    Raises:
        InputError: unsupported dtype or shape.
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (3, 4):
        raise InputError(
            f"expected an image array of shape HxWxC or NxHxWxC, got {getattr(image, 'shape', type(image))}"
        )
    dt = image.dtype
    if dt not in INT_SCALE and dt not in FLOAT_TYPES:
        raise InputError(f"unsupported pixel type {dt}: use 8-bit, 16-bit, half or float images")
    if dt == np.uint16:  # torch has no arithmetic on uint16
        image = image.astype(np.int32)
    src = torch.from_numpy(np.ascontiguousarray(image))
    src = src.permute(2, 0, 1) if src.ndim == 3 else src.permute(0, 3, 1, 2)
    # one pass into channels-first float32 (a fresh tensor: never a view of the caller's array)
    t = torch.empty(src.shape, dtype=torch.float32)
    t.copy_(src)
    if dt in INT_SCALE:
        t.div_(INT_SCALE[dt])
    return t.to(device) if device is not None else t


def from_float(tensor: torch.Tensor, dtype: np.dtype | type | str) -> np.ndarray:
    """Convert a float tensor back to plate pixels of ``dtype``.

    Args:
        tensor: ``(C, H, W)`` or ``(B, C, H, W)`` float tensor (any device).
        dtype: uint8, uint16 (NaN -> 0, values clipped to [0, 1] and rounded half-to-even), float16 or float32
            (values kept as they are, so a float plate's untouched pixels, NaN included, come back bit-exact).

    Returns:
        ``(H, W, C)`` or ``(B, H, W, C)`` numpy array of ``dtype``.
    """
    dt = np.dtype(dtype)
    if tensor.ndim not in (3, 4):
        raise InputError(f"expected a (C,H,W) or (B,C,H,W) tensor, got shape {tuple(tensor.shape)}")
    t = tensor.detach().to("cpu", torch.float32)
    t = t.permute(1, 2, 0) if t.ndim == 3 else t.permute(0, 2, 3, 1)
    if dt in INT_SCALE:
        scale = np.float32(INT_SCALE[dt])
        t = torch.nan_to_num(t, nan=0.0).clamp_(0.0, 1.0).mul_(float(scale)).round_()  # one new tensor
        return t.numpy().astype(dt)
    if dt in FLOAT_TYPES:
        return t.numpy().astype(dt)
    raise InputError(f"unsupported pixel type {dt}: use 8-bit, 16-bit, half or float images")
