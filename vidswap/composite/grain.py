"""Film grain / sensor noise: measure it on the plate around the face, re-apply matching grain to the swap.

A generated face is clean; pasted into a grainy plate it reads as a sticker. The plate's grain is measured in a
ring just outside the face (high-pass residual: robust per-channel std, cross-channel correlation and spatial
correlation, expressed as the blur radius of a Gaussian-filtered white noise) and the same kind of noise is
synthesised, deterministically from a seed, and added where the face was pasted.

Noise is drawn on the CPU from a seeded ``torch.Generator`` and moved to the images' device, so CPU and CUDA
render nodes produce the same grain for the same frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from kornia.geometry.transform import warp_affine

from vidswap.composite.filters import dilate, gaussian_blur, gaussian_kernels, in_window, per_item
from vidswap.composite.roi import plate_rois

_SIGMA_GRID = tuple(float(s) for s in np.round(np.arange(0.0, 3.01, 0.25), 2))


@dataclass(frozen=True)
class GrainParams:
    """Grain measurement and synthesis settings.

    Attributes:
        highpass_sigma: the residual is ``image - gaussian(image, highpass_sigma)`` (pixels).
        trim: residuals further than ``trim`` robust stds from the median are texture, not grain.
        ring_inner: the measuring ring starts this fraction of the face size outside the face mask ...
        ring_outer: ... and ends here.
        strength: 1 matches the plate's grain.
        auto_range: ``composite.grain: auto``: a track's measured grain (:func:`track_grain`) is applied from none
            at a grain share (:mod:`vidswap.appearance.plate_noise`) of ``auto_range[0]`` to all of it at
            ``auto_range[1]``, and a track without a measurement gets none; None: all of it, and a track without
            one gets each frame's ring measure (:func:`measure_plate_grain`).
    """

    highpass_sigma: float = 1.5
    trim: float = 3.0
    ring_inner: float = 0.03
    ring_outer: float = 0.2
    strength: float = 1.0
    auto_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class GrainStats:
    """Measured grain of a batch of plates.

    Attributes:
        std: ``(B, 3)`` grain std per channel, plate units.
        corr: ``(B, 3, 3)`` cross-channel correlation.
        sigma: ``(B,)`` spatial correlation as a Gaussian blur sigma of white noise (pixels; 0 = white).
        valid: ``(B,)`` enough ring pixels to trust the measurement (invalid items get no grain).
    """

    std: torch.Tensor
    corr: torch.Tensor
    sigma: torch.Tensor
    valid: torch.Tensor


def select_items(stats: GrainStats, index: list[int]) -> GrainStats:
    """The stats of batch items ``index``."""
    i = torch.as_tensor(index, dtype=torch.long, device=stats.std.device)
    return GrainStats(stats.std[i], stats.corr[i], stats.sigma[i], stats.valid[i])


def grain_seed(base: int, frame: int, track: int = 0) -> int:
    """A stable 63-bit seed for ``(job seed, frame index, track id)`` (SplitMix64; not Python's ``hash``)."""
    mask = (1 << 64) - 1
    x = 0
    for v in (base, frame, track):
        x = (x ^ (int(v) & mask)) & mask
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        x = z ^ (z >> 31)
    return x >> 1


def highpass(image: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """``image - gaussian(image, sigma)``: ``(B, C, H, W) -> (B, C, H, W)``."""
    return image - gaussian_blur(image, sigma)


def _lag1(r: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Lag-1 autocorrelation of ``r (B, C, H, W)`` over pixel pairs both inside ``w (B, 1, H, W)`` -> ``(B, C)``."""
    wh = w[..., :, 1:] * w[..., :, :-1]
    wv = w[..., 1:, :] * w[..., :-1, :]
    num = (r[..., :, 1:] * r[..., :, :-1] * wh).sum(dim=(2, 3)) + (r[..., 1:, :] * r[..., :-1, :] * wv).sum(dim=(2, 3))
    den = (r[..., :, 1:] ** 2 * wh).sum(dim=(2, 3)) + (r[..., 1:, :] ** 2 * wv).sum(dim=(2, 3))
    return num / den.clamp(min=1e-20)


@functools.lru_cache(maxsize=8)
def _response_table(highpass_sigma: float) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """For each grain sigma on the grid: (lag-1 correlation, std gain) of unit grain after the high-pass.

    Simulated once with the same synthesis and high-pass as used on plates (fixed seed), so measurement and
    re-application agree by construction.
    """
    gen = torch.Generator().manual_seed(1234)
    white = torch.randn(1, 1, 320, 320, generator=gen, dtype=torch.float32)
    rhos, gains = [], []
    for s in _SIGMA_GRID:
        g = _unit_grain(white, torch.tensor([s]))
        r = highpass(g, highpass_sigma)[..., 16:-16, 16:-16]
        w = torch.ones_like(r)
        rhos.append(float(_lag1(r, w)[0, 0]))
        gains.append(float(r.std() / g[..., 16:-16, 16:-16].std()))
    return _SIGMA_GRID, tuple(rhos), tuple(gains)


def _unit_grain(white: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur white noise ``(B, C, H, W)`` by per-item ``sigma (B,)`` and rescale to unit variance."""
    radius = torch.ceil(3.0 * sigma)
    if float(radius.max()) == 0.0:
        return white
    k = gaussian_kernels(sigma.to(white.device), radius.to(white.device))  # (B, K)
    g = gaussian_blur(white, sigma.to(white.device), radius.to(white.device))
    norm = (k**2).sum(dim=1)  # std of the 2-D separable blur of unit white noise
    return g / norm.view(-1, 1, 1, 1).to(g.dtype)


def _interp(x: torch.Tensor, xs: tuple[float, ...], ys: tuple[float, ...]) -> torch.Tensor:
    """Piecewise-linear ``y(x)`` over increasing ``xs`` (clamped at the ends)."""
    xt = torch.tensor(xs, dtype=x.dtype, device=x.device)
    yt = torch.tensor(ys, dtype=x.dtype, device=x.device)
    xc = x.clamp(xt[0], xt[-1])
    i = torch.searchsorted(xt, xc.contiguous()).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xt[i - 1], xt[i], yt[i - 1], yt[i]
    f = (xc - x0) / (x1 - x0).clamp(min=1e-12)
    return y0 + f * (y1 - y0)


def residual_statistics(r: torch.Tensor, region: torch.Tensor, trim: float = 3.0
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Robust statistics of a high-pass residual inside a region.

    Args:
        r: ``(B, C, H, W)`` residual (e.g. :func:`highpass` of a plate).
        region: ``(B, 1, H, W)``; pixels > 0.5 are measured.
        trim: residuals further than ``trim`` robust stds (1.4826 MAD) from the median, in any channel, are left
            out (texture, edges), as are their pairs in the correlations.

    Returns:
        ``(std (B, C), corr (B, C, C), rho (B,), n (B,))``: the robust std per channel, the cross-channel correlation
        and the lag-1 spatial autocorrelation (mean over channels) of the kept residuals, and how many region pixels
        there were.
    """
    b, c = r.shape[:2]
    w = (region > 0.5).to(r.dtype)
    n = w.sum(dim=(1, 2, 3))
    rows = r.reshape(b * c, -1)
    inside = (w.expand(-1, c, -1, -1).reshape(b * c, -1) > 0.5)
    med, mad = torch.zeros(b * c, 1, dtype=r.dtype, device=r.device), torch.zeros(b * c, dtype=r.dtype, device=r.device)
    for i in range(b * c):  # the lower median of the region's values and of their deviations (order statistics)
        values = rows[i][inside[i]]
        if values.numel():
            k = (values.numel() - 1) // 2 + 1
            med[i, 0] = values.kthvalue(k).values
            mad[i] = (values - med[i, 0]).abs().kthvalue(k).values
    s_res = (1.4826 * mad).reshape(b, c)
    keep = ((r - med.reshape(b, c, 1, 1)).abs() < trim * s_res[:, :, None, None].clamp(min=1e-12)).all(
        dim=1, keepdim=True
    )
    wk = w * keep.to(r.dtype)
    nk = wk.sum(dim=(1, 2, 3)).clamp(min=1.0)
    flat = (r * wk).reshape(b, c, -1)
    mean = flat.sum(dim=2) / nk[:, None]
    xc = (r.reshape(b, c, -1) - mean[:, :, None]) * wk.reshape(b, 1, -1)
    cov = xc @ xc.transpose(1, 2) / nk[:, None, None]
    d = torch.diagonal(cov, dim1=1, dim2=2).clamp(min=1e-20).sqrt()
    corr = (cov / (d[:, :, None] * d[:, None, :])).clamp(-1.0, 1.0)
    eye = torch.eye(c, device=r.device, dtype=r.dtype)
    corr = corr * (1 - eye) + eye
    rho = _lag1(r, wk).mean(dim=1)
    return s_res, corr, rho, n


def grain_from_residual(std: torch.Tensor, corr: torch.Tensor, rho: torch.Tensor, valid: torch.Tensor,
                        highpass_sigma: float = 1.5) -> GrainStats:
    """The grain whose :func:`highpass` residual has robust std ``std (B, C)`` and lag-1 autocorrelation ``rho
    (B,)``: its blur sigma read off the simulated response table, its std the residual's over the high-pass's gain
    at that sigma. ``corr (B, C, C)`` and ``valid (B,)`` pass through."""
    grid, rhos, gains = _response_table(float(highpass_sigma))
    sigma = _interp(rho, rhos, grid)
    gain = _interp(sigma, grid, gains)
    return GrainStats(std=std / gain[:, None].clamp(min=1e-6), corr=corr, sigma=sigma, valid=valid)


def measure_grain(image: torch.Tensor, region: torch.Tensor, params: GrainParams = GrainParams()) -> GrainStats:
    """Measure the grain of ``image`` inside ``region`` (a ring around the face, at plate resolution).

    Args:
        image: ``(B, 3, H, W)`` plate pixels (not resampled: resampling changes grain).
        region: ``(B, 1, H, W)``; pixels > 0.5 are measured.

    Returns:
        :class:`GrainStats`.
    """
    r = highpass(image.to(torch.float32), params.highpass_sigma)
    std, corr, rho, n = residual_statistics(r, region, params.trim)
    return grain_from_residual(std, corr, rho, n >= 256, params.highpass_sigma)


def synthesize_grain(stats: GrainStats, size: tuple[int, int], seeds: list[int]) -> torch.Tensor:
    """Grain matching ``stats``, one deterministic field per seed.

    Args:
        stats: :class:`GrainStats` of B items.
        size: ``(H, W)``.
        seeds: B integer seeds.

    Returns:
        ``(B, 3, H, W)`` zero-mean grain on ``stats.std``'s device.
    """
    b = stats.std.shape[0]
    c = stats.std.shape[1]
    h, w = int(size[0]), int(size[1])
    white = torch.stack(
        [torch.randn(c, h, w, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float32) for s in seeds]
    ).to(stats.std.device)
    unit = _unit_grain(white, stats.sigma.to(torch.float32))
    chol = torch.linalg.cholesky(stats.corr.to(torch.float32) + 1e-5 * torch.eye(c, device=unit.device))
    mixed = torch.einsum("bij,bjhw->bihw", chol, unit)
    return mixed * stats.std[:, :, None, None].to(torch.float32) * stats.valid.view(b, 1, 1, 1).to(torch.float32)


def apply_grain(
    image: torch.Tensor, alpha: torch.Tensor, stats: GrainStats, seeds: list[int], strength: float = 1.0
) -> torch.Tensor:
    """Add grain to the pasted face.

    The blended pixel already carries ``(1 - alpha)`` of the plate's own grain, so the added grain is weighted by
    ``sqrt(alpha * (2 - alpha))`` to bring the total variance back to the plate's. Exactly ``image`` where alpha
    is 0.

    Args:
        image: ``(B, 3, H, W)`` composited plate (or plate ROI).
        alpha: ``(B, 1, H, W)`` the face's alpha at the same resolution.
        stats: grain to match.
        seeds: one per item.
        strength: scale of the added grain.

    Returns:
        ``(B, 3, H, W)``.
    """
    a = alpha.to(torch.float32).clamp(0.0, 1.0)
    weight = strength * torch.sqrt(a * (2.0 - a))
    noise = synthesize_grain(stats, tuple(image.shape[-2:]), seeds)
    out = image + (weight * noise).to(image.dtype)
    return torch.where(a > 0, out, image)


def ring_mask(face: torch.Tensor, size: torch.Tensor | float, inner: float = 0.03, outer: float = 0.2) -> torch.Tensor:
    """Binary ring ``(B, 1, H, W)`` from ``inner`` to ``outer`` face sizes outside the face mask."""
    b = face.shape[0]
    fs = per_item(size, b, face.device)
    m = (face > 0).to(torch.float32)
    r_out, r_in = torch.round(fs * outer), torch.round(fs * inner)
    reach = int(r_out.max()) + 1 if b else 1
    return in_window(m, reach, lambda x: dilate(x, r_out) * (1.0 - dilate(x, r_in)))


def measure_plate_grain(
    plate: torch.Tensor,
    ring_crop: torch.Tensor,
    crop_to_plate: torch.Tensor,
    params: GrainParams = GrainParams(),
) -> GrainStats:
    """Measure grain on the full-resolution plate under a ring drawn in crop space.

    The ring is warped to the plate (nearest: it is a selection, not an image) and only its region of the plate
    is high-passed, so the cost follows the face size.

    Args:
        plate: ``(B, 3, H, W)``.
        ring_crop: ``(B, 1, h, w)`` e.g. :func:`ring_mask` of the crop-space face mask.
        crop_to_plate: ``(B, 2, 3)``.

    Returns:
        :class:`GrainStats`.
    """
    b, c, hp, wp = plate.shape
    m = crop_to_plate.to(plate.device, torch.float32)
    margin = int(np.ceil(3 * params.highpass_sigma)) + 2
    tops, (rh, rw) = plate_rois(ring_crop, m, (hp, wp), margin)
    if rh == 0:
        z = torch.zeros(b, c, device=plate.device)
        return GrainStats(z, torch.eye(c, device=plate.device).expand(b, c, c).clone(), z[:, 0], z[:, 0] > 1)
    xy = [(0, 0) if t is None else t for t in tops]
    shift = torch.zeros(b, 2, 3, device=plate.device)
    shift[:, 0, 2] = torch.tensor([-t[0] for t in xy], dtype=torch.float32)
    shift[:, 1, 2] = torch.tensor([-t[1] for t in xy], dtype=torch.float32)
    ring_src = ring_crop.to(plate.device, torch.float32)
    ring = warp_affine(ring_src, m + shift, (rh, rw), mode="nearest", align_corners=True)
    ring = ring * torch.tensor([t is not None for t in tops], device=plate.device, dtype=torch.float32).view(b, 1, 1, 1)
    roi = torch.stack([plate[i, :, y : y + rh, x : x + rw] for i, (x, y) in enumerate(xy)])
    return measure_grain(roi, ring, params)


#: a track's grain as the analysis stores it in its appearance model (:class:`StoredGrain`): name -> length
TRACK_FIELDS = {"grain_std": 3, "grain_corr": 3, "grain_sigma": 1, "grain_share": 1}


@dataclass(frozen=True)
class StoredGrain:
    """A track's grain as the analysis stored it (:func:`~vidswap.appearance.plate_noise.track_noise`): ``std``
    (3,) per channel, full scale; ``corr`` (3,) the rg, rb, gb correlations; ``sigma`` its size (pixels);
    ``share`` the share of the face's fine detail that changes from frame to frame."""

    std: np.ndarray
    corr: np.ndarray
    sigma: float
    share: float

    @classmethod
    def read(cls, appearance: dict[str, np.ndarray] | None) -> "StoredGrain | None":
        """From a track's appearance arrays; None where it has no reading (NaN, or a tracks file from before)."""
        app = appearance or {}
        arrays = [np.asarray(app.get(k, np.full(n, np.nan)), np.float64).reshape(-1) for k, n in TRACK_FIELDS.items()]
        if any(a.size != n or not np.isfinite(a).all() for a, n in zip(arrays, TRACK_FIELDS.values())):
            return None
        return cls(arrays[0], arrays[1], float(arrays[2][0]), float(arrays[3][0]))

    def scale(self, params: GrainParams) -> float:
        """The share of it a render adds: 1, or the ramp of ``params.auto_range`` over the grain share."""
        if params.auto_range is None:
            return 1.0
        lo, hi = params.auto_range
        return float(np.clip((self.share - lo) / max(hi - lo, 1e-12), 0.0, 1.0))


def track_grain(appearance: dict[str, np.ndarray] | None, params: GrainParams) -> GrainStats | None:
    """The grain a track's frames get, from its appearance model's measurement (:class:`StoredGrain`): one
    :class:`GrainStats` item, its std scaled by :meth:`StoredGrain.scale`; None where the track has no
    measurement, or the scale is 0."""
    stored = StoredGrain.read(appearance)
    scale = 0.0 if stored is None else stored.scale(params)
    if scale <= 0.0:
        return None
    corr = torch.eye(3, dtype=torch.float32)
    for (i, j), v in zip(((0, 1), (0, 2), (1, 2)), stored.corr):
        corr[i, j] = corr[j, i] = float(np.clip(v, -1.0, 1.0))
    values, vectors = torch.linalg.eigh(corr)  # medians of pairwise correlations: made a valid correlation matrix
    corr = vectors @ torch.diag(values.clamp(min=1e-3)) @ vectors.T
    d = torch.diagonal(corr).sqrt()
    corr = corr / (d[:, None] * d[None, :])
    return GrainStats(std=torch.tensor(stored.std * scale, dtype=torch.float32)[None], corr=corr[None],
                      sigma=torch.tensor([float(np.clip(stored.sigma, _SIGMA_GRID[0], _SIGMA_GRID[-1]))]),
                      valid=torch.ones(1, dtype=torch.bool))
