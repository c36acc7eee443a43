"""Small batched filters the compositor shares: per-item Gaussian blur and per-item morphology, and the smoothstep
ramp the masks and weights are shaped with.

Face sizes differ between the items of a batch, so radii are given per item as ``(B,)`` tensors (or floats).
Kernels are truncated exactly at the item's radius, so a blur never reaches further than it says: a mask
eroded by ``r`` and blurred with radius ``r`` stays exactly zero outside the original mask.

The blur is OpenCV's separable filter on float CPU tensors (per plane, kornia's kernel: 4-10x kornia's speed on one
thread, equal to it up to ~3e-7; relspeed-s14; the taps rounded to sum to exactly 1, so a mask's interior stays
exactly 1 and a mask stays in [0, 1]) and kornia's ``gaussian_blur2d`` elsewhere (GPU, autograd; per-item sigma,
items grouped by truncation radius), which measured 3-14x faster on CPU than the shifted multiply-adds this module
had, equal to 4e-7 (``benchmarks/bench_filters_kornia.py``, RESULTS.md). Erosion and dilation stay here: they cost
O(log r) tensor operations by doubling, where kornia's morphology is O(r^2) per pixel (4-60x slower at the
compositor's radii) for the same result, bit for bit, with the same structuring element and border. On float CPU
tensors without gradient the same structuring element is applied by OpenCV instead, one plane and one part of the
element at a time (:func:`_morph_opencv`): min and max are exact, so the result is the same bit for bit, at 4-6x
less time on one thread (576-px plane: 0.4-2.0 ms against 1.9-8.7 ms for radii 1-30; lead s21).
"""

from __future__ import annotations

import cv2
import numpy as np
import kornia
import torch
import torch.nn.functional as F

Radius = torch.Tensor | float | int


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    """``3x^2 - 2x^3`` of ``x`` clamped to [0, 1]: 0 up to 0, 1 from 1, flat at both ends (any shape, its dtype)."""
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def per_item(value: Radius, batch: int, device: torch.device) -> torch.Tensor:
    """Broadcast a scalar or ``(B,)`` radius/sigma to a float32 ``(B,)`` tensor on ``device``."""
    t = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ValueError(f"expected a scalar or {batch} values, got {t.numel()}")
    return t.clamp(min=0.0)


def gaussian_kernels(sigma: torch.Tensor, radius: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels, one per item, truncated at each item's radius.

    Args:
        sigma: ``(B,)`` standard deviations in pixels (0 gives a unit impulse).
        radius: ``(B,)`` integer truncation radii in pixels (taps with ``|t| > radius`` are 0).

    Returns:
        ``(B, 2 R + 1)`` kernels with ``R = max(radius)``, each summing to 1.
    """
    r = radius.round().long()
    rmax = int(r.max().item()) if r.numel() else 0
    t = torch.arange(-rmax, rmax + 1, device=sigma.device, dtype=dtype)
    s = sigma.to(dtype).clamp(min=1e-6)[:, None]
    k = torch.exp(-0.5 * (t[None, :] / s) ** 2)
    k = torch.where(t.abs()[None, :] <= r[:, None].to(dtype), k, torch.zeros_like(k))
    impulse = (t == 0).to(dtype)[None, :].expand_as(k)
    k = torch.where((sigma <= 1e-6)[:, None] | (r[:, None] == 0), impulse, k)
    return k / k.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: Radius, radius: Radius | None = None, opencv: bool = True) -> torch.Tensor:
    """Gaussian blur with a per-item sigma and truncation radius (replicate border): OpenCV's separable filter for
    float CPU tensors without gradient (:func:`_blur_opencv`), kornia otherwise or with ``opencv=False``.

    Args:
        x: ``(B, C, H, W)``.
        sigma: scalar or ``(B,)`` standard deviation in pixels (0: the item is returned as it is).
        radius: scalar or ``(B,)`` truncation radius in pixels (default ``ceil(3 sigma)``).
        opencv: False: always kornia (its float rounding, for a caller whose output is thresholded).

    Returns:
        ``(B, C, H, W)``, same dtype and device.
    """
    b = x.shape[0]
    s = per_item(sigma, b, x.device)
    r = torch.ceil(3.0 * s) if radius is None else per_item(radius, b, x.device).round()
    r = torch.where(s <= 1e-6, torch.zeros_like(r), r).long().tolist()
    if max(r, default=0) == 0:
        return x
    if opencv and _on_opencv(x):
        return _blur_opencv(x, s.tolist(), r)
    out = x.clone()
    for value in sorted(set(r) - {0}):  # the items of one track share their radius: usually one group
        idx = [i for i, v in enumerate(r) if v == value]
        size = 2 * value + 1
        sig = s[idx, None].expand(-1, 2).to(x.dtype)
        blurred = kornia.filters.gaussian_blur2d(x[idx], (size, size), sig, border_type="replicate")
        if len(idx) == b:
            return blurred
        out[idx] = blurred
    return out


def _on_opencv(x: torch.Tensor) -> bool:
    """Whether :func:`gaussian_blur`, :func:`erode` and :func:`dilate` run on OpenCV: float CPU tensors no gradient
    flows through."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not (
        x.requires_grad and torch.is_grad_enabled())


def _blur_opencv(x: torch.Tensor, sigma: list[float], radius: list[int]) -> torch.Tensor:
    """:func:`gaussian_blur` on the CPU: OpenCV's separable filter per plane with kornia's kernel (the same taps,
    replicate border; equal to kornia up to float rounding, ~3e-7) at 4-10x kornia's speed on one thread
    (relspeed-s14). (B, C, H, W) float32/64, per-item sigma and radius -> (B, C, H, W), a new tensor."""
    src = x.detach().contiguous()
    out = src.clone()
    planes, dst = src.numpy(), out.numpy()
    depth = cv2.CV_32F if x.dtype == torch.float32 else cv2.CV_64F
    for b, (s, r) in enumerate(zip(sigma, radius)):
        if r == 0:
            continue
        k = _exact_sum_kernel(s, r, x.dtype)
        for c in range(planes.shape[1]):
            cv2.sepFilter2D(planes[b, c], depth, k, k, dst=dst[b, c], borderType=cv2.BORDER_REPLICATE)
    return out


def _exact_sum_kernel(sigma: float, radius: int, dtype: torch.dtype) -> np.ndarray:
    """kornia's Gaussian taps (``exp(-t^2 / (2 sigma^2))`` normalised, t in [-radius, radius]) rounded to
    multiples of 2^-m (m = 24 for float32, 52 for float64; the centre tap takes the remainder) so they sum to
    exactly 1 and every partial sum is exact in ``dtype``: a constant 1 blurs to exactly 1 and values in [0, 1] stay
    in [0, 1] whatever order OpenCV adds them in (masks keep their full-strength interior bit for bit). The rounding
    moves a tap by at most 2^-(m+1). Returns (2 radius + 1,) float32/64."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-t * t / (2.0 * sigma * sigma))
    m = 24 if dtype == torch.float32 else 52
    q = np.rint(k / k.sum() * 2.0 ** m)
    q[radius] += 2.0 ** m - q.sum()
    return (q / 2.0 ** m).astype(np.float32 if dtype == torch.float32 else np.float64)


_INF = float("inf")


def _fold(m: torch.Tensor, sy: int, sx: int, op) -> torch.Tensor:
    """``out[y, x] = op(m[y, x], m[y + sy, x + sx])`` where that neighbour exists, ``m[y, x]`` elsewhere (what
    ``op`` with the fill value gives there): one copy and one in-place ``op`` on views, no padded temporary."""
    h, w = m.shape[-2:]
    out = m.clone()
    ys, xs = slice(max(0, -sy), h - max(0, sy)), slice(max(0, -sx), w - max(0, sx))
    yn, xn = slice(max(0, sy), h - max(0, -sy)), slice(max(0, sx), w - max(0, -sx))
    view = out[..., ys, xs]
    op(view, m[..., yn, xn], out=view)
    return out


def _line(x: torch.Tensor, half: int, dy: int, dx: int, dilate: bool) -> torch.Tensor:
    """Min (max) over the segment ``{t * (dy, dx) : |t| <= half}`` in O(log half) steps (doubling)."""
    if half <= 0:
        return x
    op = torch.maximum if dilate else torch.minimum
    fill = -_INF if dilate else _INF
    h, w = x.shape[-2:]
    py, px = half * abs(dy), half * abs(dx)
    m = F.pad(x, (px, px, py, py), value=fill)  # windows that start outside the image need their values
    n = 2 * half + 1
    span = 1
    while span * 2 <= n:  # m[i] = op over [i, i + 2 * span - 1] along the line
        m = _fold(m, span * dy, span * dx, op)
        span *= 2

    def at(t: int) -> torch.Tensor:  # m at image position + t steps along the line
        oy, ox = py + t * dy, px + t * dx
        return m[..., oy : oy + h, ox : ox + w]

    return op(at(-half), at(half - span + 1))


def _octagon(x: torch.Tensor, r: int, dilate: bool) -> torch.Tensor:
    """Erode/dilate by an octagon of radius ``r``: a square of half-size ``a`` (Minkowski) plus a diamond of
    radius ``r - a``, with ``a = round(0.414 r)`` so that the axis and the diagonal reach are both about ``r``.
    The diamond is two diagonal segments (which cover the even lattice points) plus one or two cross steps."""
    if r <= 0:
        return x
    a, half, crosses = _octagon_steps(r)
    h, w = x.shape[-2:]
    # The steps compose exactly only if their intermediate results exist beyond the border too.
    y = F.pad(x, (r, r, r, r), value=-_INF if dilate else _INF)
    y = _line(_line(y, a, 1, 0, dilate), a, 0, 1, dilate)
    y = _line(_line(y, half, 1, 1, dilate), half, 1, -1, dilate)
    op = torch.maximum if dilate else torch.minimum
    for _ in range(crosses):
        y = op(_line(y, 1, 1, 0, dilate), _line(y, 1, 0, 1, dilate))
    return y[..., r : r + h, r : r + w]


def _octagon_steps(r: int) -> tuple[int, int, int]:
    """The parts of :func:`_octagon`'s element of radius ``r`` >= 1, shared by its torch and OpenCV paths:
    ``(a, half, crosses)``, the square's half-size ``a = round(0.414 r)``, the two diagonal segments' half-length
    ``(d - 1) // 2`` and the number of 3x3 cross steps (1 or 2) that complete the diamond of radius ``d = r - a``
    (none when ``d`` is 0)."""
    a = int(round(0.41421356 * r))
    d = r - a
    if d <= 0:
        return a, 0, 0
    half = (d - 1) // 2
    return a, half, d - 2 * half


def _square(x: torch.Tensor, r: int, dilate: bool) -> torch.Tensor:
    return _line(_line(x, r, 1, 0, dilate), r, 0, 1, dilate)


def _octagon_parts(r: int) -> list[np.ndarray]:
    """The structuring elements whose Minkowski sum is :func:`_octagon`'s of radius ``r`` >= 1, as OpenCV kernels
    (uint8, centred), from :func:`_octagon_steps`: the square, the two diagonal segments and the 3x3 crosses."""
    a, half, crosses = _octagon_steps(r)
    parts = [np.ones((2 * a + 1, 2 * a + 1), np.uint8)] if a > 0 else []
    if half > 0:
        diagonal = np.eye(2 * half + 1, dtype=np.uint8)
        parts += [diagonal, np.ascontiguousarray(diagonal[:, ::-1])]
    return parts + [cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))] * crosses


def _morph_opencv(mask: torch.Tensor, radii: list[int], dilate: bool, shape: str) -> torch.Tensor:
    """:func:`_morph` on float CPU tensors by OpenCV's ``erode`` / ``dilate``, per plane: the square in one call
    (OpenCV's border counts as +inf for erosion, -inf for dilation, as here); the octagon part by part on the plane
    padded by ``r`` with that value (the parts compose exactly only where their intermediate results exist beyond
    the border too, as in :func:`_octagon`). Every element here is symmetric about its centre, so OpenCV's
    convention (no reflection) is the same element. The same values as the torch path bit for bit (NaN aside:
    OpenCV's min and max do not propagate it)."""
    src = mask.detach().contiguous()
    out = src.clone()
    planes, dst = src.numpy(), out.numpy()
    op = cv2.dilate if dilate else cv2.erode
    fill = -_INF if dilate else _INF
    h, w = planes.shape[-2:]
    for b, r in enumerate(radii):
        if r <= 0:
            continue
        if shape == "square":
            kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
            for c in range(planes.shape[1]):
                op(planes[b, c], kernel, dst=dst[b, c])
            continue
        parts = _octagon_parts(r)
        for c in range(planes.shape[1]):
            y = cv2.copyMakeBorder(planes[b, c], r, r, r, r, cv2.BORDER_CONSTANT, value=fill)
            for kernel in parts:
                y = op(y, kernel)
            dst[b, c] = y[r:r + h, r:r + w]
    return out


def _morph(mask: torch.Tensor, radius: Radius, dilate: bool, shape: str, opencv: bool = True) -> torch.Tensor:
    if shape not in ("octagon", "square"):
        raise ValueError(f"shape must be 'octagon' or 'square', got {shape!r}")
    fn = _octagon if shape == "octagon" else _square
    b = mask.shape[0]
    r = per_item(radius, b, mask.device).round().long().tolist()
    if not r:
        return mask
    if opencv and _on_opencv(mask) and min(mask.shape[-2:], default=0) > 0:
        return _morph_opencv(mask, r, dilate, shape)
    out = torch.empty_like(mask)
    for value in sorted(set(r)):  # items of one track share their radius: usually one group
        idx = [i for i, v in enumerate(r) if v == value]
        if len(idx) == b:
            return fn(mask, value, dilate)
        out[idx] = fn(mask[idx], value, dilate)
    return out


def erode(mask: torch.Tensor, radius: Radius, shape: str = "octagon", opencv: bool = True) -> torch.Tensor:
    """Grey-level erosion (local minimum) with an octagonal element of per-item radius.

    The octagon approximates a disc of radius ``radius`` pixels (rounded); ``shape="square"`` uses the
    ``(2 r + 1)`` square instead. Either costs O(log radius) tensor operations. The image border does not
    erode: pixels beyond it count as +inf.

    Args:
        mask: ``(B, C, H, W)`` soft or binary mask.
        radius: scalar or ``(B,)`` radius in pixels.
        shape: ``"octagon"`` or ``"square"``.
        opencv: False: always the torch operations (float CPU tensors without gradient otherwise go to OpenCV, the
            same result bit for bit).

    Returns:
        ``(B, C, H, W)``.
    """
    return _morph(mask, radius, False, shape, opencv)


def dilate(mask: torch.Tensor, radius: Radius, shape: str = "octagon", opencv: bool = True) -> torch.Tensor:
    """Grey-level dilation (local maximum); the counterpart of :func:`erode`.

    Args:
        mask: ``(B, C, H, W)``.
        radius: scalar or ``(B,)`` radius in pixels.
        shape: ``"octagon"`` or ``"square"``.
        opencv: as :func:`erode`'s.

    Returns:
        ``(B, C, H, W)``.
    """
    return _morph(mask, radius, True, shape, opencv)


def support_window(mask: torch.Tensor, margin: int) -> tuple[slice, slice] | None:
    """Bounding rows/columns of ``mask > 0`` over the whole batch, grown by ``margin`` and clipped.

    Args:
        mask: ``(B, C, H, W)``.
        margin: pixels added on every side.

    Returns:
        ``(rows, cols)`` slices, or None for an all-zero mask.

    On CPU tensors of a NumPy dtype the test runs in NumPy (the same comparisons and reductions: 4-7x less time,
    e.g. 1.1 ms against 7.1 for (4, 1, 1024, 1024) on one thread; the compositor asks ~13 times a face, lead s21).
    """
    h, w = mask.shape[-2:]
    if mask.device.type == "cpu" and mask.dtype in (torch.float32, torch.float64, torch.float16, torch.uint8,
                                                    torch.bool):
        inside = np.asarray(mask.detach().numpy() > 0).reshape(-1, h, w).any(axis=0)  # (H, W)
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        if len(rows) == 0:
            return None
    else:
        nz = (mask > 0).any(dim=0).any(dim=0)  # (H, W)
        rows = torch.nonzero(nz.any(dim=1)).flatten()
        if rows.numel() == 0:
            return None
        cols = torch.nonzero(nz.any(dim=0)).flatten()
    r0, r1 = max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, h)
    c0, c1 = max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, w)
    return slice(r0, r1), slice(c0, c1)


def in_window(mask: torch.Tensor, margin: int, fn, *others: torch.Tensor) -> torch.Tensor:
    """Run ``fn(mask_window, *others_window)`` only over the support of ``mask`` grown by ``margin``.

    For filters whose output is 0 wherever the input is 0 farther than ``margin`` away (erosion, dilation or
    blur of reach <= margin), this gives the full-frame result for the cost of the face's bounding box.

    Args:
        mask: ``(B, C, H, W)``.
        margin: the filter's reach in pixels (+1 so the window border stays 0).
        fn: ``(B, C, h, w) -> (B, C, h, w)``.
        others: more ``(B, *, H, W)`` tensors cut to the same window.

    Returns:
        ``(B, C, H, W)``: ``fn``'s result in the window, 0 elsewhere.
    """
    out = torch.zeros_like(mask)
    win = support_window(mask, margin)
    if win is not None:
        out[..., win[0], win[1]] = fn(mask[..., win[0], win[1]], *(o[..., win[0], win[1]] for o in others))
    return out


def below(x: torch.Tensor, step: int, fn, pad: str = "constant") -> torch.Tensor:
    """``fn`` computed on ``x`` box-filtered down by ``step`` and upsampled back bilinearly (pixel centres aligned):
    ``x`` is padded on the bottom/right to a multiple of ``step`` (zeros, or ``pad="replicate"``), averaged over
    ``step x step`` blocks, passed to ``fn``, and the upsampled result cut to ``x``'s size. ``step`` 1: ``fn(x)``.

    Args:
        x: ``(B, C, H, W)``.
        step: integer factor >= 1.
        fn: ``(B, C, ceil(H / step), ceil(W / step)) -> (B, C', same)``.
        pad: ``F.pad`` mode for the partial last block.

    Returns:
        ``(B, C', H, W)``.
    """
    if step == 1:
        return fn(x)
    h, w = x.shape[-2:]
    small = F.avg_pool2d(F.pad(x, (0, -w % step, 0, -h % step), mode=pad), step)
    return F.interpolate(fn(small), scale_factor=step, mode="bilinear", align_corners=False)[..., :h, :w]
