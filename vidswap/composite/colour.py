"""Colour matching of the swapped face to the plate: Reinhard LAB statistics transfer and histogram matching.

The statistics are split from their application so the pipeline can smooth them over a track's frames before
applying them (colour that is re-estimated independently per frame "pumps")::

    src = masked_lab_stats(render, mask)          # (T, 3), (T, 3)
    dst = masked_lab_stats(target_crop, mask)
    src, dst = smooth_stats(pack_stats(*src)), smooth_stats(pack_stats(*dst))
    render = apply_stats_transfer(render, src, dst, mask)

Images are ``(B, 3, H, W)`` float RGB (sRGB-encoded, [0, 1] for display-referred plates; values above 1 are
carried through when ``clamp_max`` is None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidswap.composite import lab as fast_lab

Stats = tuple[torch.Tensor, torch.Tensor] | torch.Tensor


@dataclass(frozen=True)
class ColourParams:
    """Colour match settings.

    Attributes:
        method: ``"reinhard"`` (LAB mean/std), ``"histogram"`` (per-channel LAB CDF matching) or ``"none"``.
        strength: 0 keeps the render's colours, 1 applies the full match.
        max_std_ratio: the per-channel std gain is limited to ``[1 / r, r]`` (a flat or tiny sample must not
            blow the contrast up).
        max_chroma_ratio: the a* and b* std gains are at most this as well (None: ``max_std_ratio`` alone).
        smooth_sigma: temporal Gaussian sigma (frames) for :func:`smooth_stats` in final renders.
        ema_alpha: causal EMA weight of the current frame for previews.
    """

    method: str = "reinhard"
    strength: float = 1.0
    max_std_ratio: float = 3.0
    max_chroma_ratio: float | None = None
    smooth_sigma: float = 3.0
    ema_alpha: float = 0.2


def _as_pair(stats: Stats) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(stats, torch.Tensor):
        return stats[..., :3], stats[..., 3:6]
    return stats


def _item(t: torch.Tensor | None, i: int, batch: int) -> torch.Tensor | None:
    """Item ``i`` of a per-item tensor (leading dim ``batch``) kept 4-d/2-d; a broadcast one as it is."""
    return t[i:i + 1] if t is not None and t.ndim > 1 and t.shape[0] == batch else t


def pack_stats(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(B, 3), (B, 3) -> (B, 6)`` (means then stds), the layout :func:`smooth_stats` works on."""
    return torch.cat([mean, std], dim=-1)


def unpack_stats(stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 6) -> (mean (B, 3), std (B, 3))``."""
    return stats[..., :3], stats[..., 3:6]


def masked_lab_stats(
    images: torch.Tensor, masks: torch.Tensor, eps: float = 1e-6, lab: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask-weighted mean and standard deviation of the LAB channels.

    Args:
        images: ``(B, 3, H, W)`` RGB.
        masks: ``(B, 1, H, W)`` weights (soft masks weight their pixels).
        eps: guards an empty mask (mean 0, std 0 are returned for it).
        lab: ``(B, 3, H, W)`` the images' L*a*b* when the caller has it (:func:`fast_lab.rgb_to_lab`), so the
            colour match converts its render once for the statistics and the transfer.

    Returns:
        ``mean (B, 3)``, ``std (B, 3)`` in L*, a*, b* units (population std).
    """
    if images.shape[0] > 1:  # one image at a time: LAB's temporaries follow one crop, not the batch
        b = images.shape[0]
        parts = [masked_lab_stats(images[i:i + 1], _item(masks, i, b), eps, _item(lab, i, b)) for i in range(b)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    lab = fast_lab.rgb_to_lab(images) if lab is None else lab
    w = masks.to(lab.dtype)
    total = w.sum(dim=(2, 3)).clamp(min=eps)  # (B, 1)
    mean = (lab * w).sum(dim=(2, 3)) / total
    var = (((lab - mean[:, :, None, None]) ** 2) * w).sum(dim=(2, 3)) / total
    return mean, var.clamp(min=0.0).sqrt()


def apply_stats_transfer(
    image: torch.Tensor,
    src_stats: Stats,
    dst_stats: Stats,
    mask: torch.Tensor | None = None,
    strength: float = 1.0,
    max_std_ratio: float | None = 3.0,
    clamp_max: float | None = 1.0,
    lab: torch.Tensor | None = None,
    keep_l: torch.Tensor | None = None,
    keep_base: torch.Tensor | None = None,
    max_chroma_ratio: float | None = None,
) -> torch.Tensor:
    """Reinhard transfer in LAB: ``lab' = (lab - src_mean) * dst_std / src_std + dst_mean``.

    Args:
        image: ``(B, 3, H, W)`` RGB whose colours are moved.
        src_stats: ``(mean, std)`` of ``image`` (or a packed ``(B, 6)``), e.g. temporally smoothed.
        dst_stats: the statistics to reach (the plate's), same layout.
        mask: ``(B, 1, H, W)``; pixels where it is 0 are returned unchanged (bit-exact). The change is not
            faded by soft mask values: compositing alpha does that.
        strength: blend between original (0) and transferred (1) LAB.
        max_std_ratio: limit of the std gain per channel (None: unlimited).
        max_chroma_ratio: the a* and b* std gains' upper limit besides (None: none).
        clamp_max: RGB upper clamp (None keeps values above 1 for scene-referred float plates). Negative
            values are always clamped to 0.
        lab: ``(B, 3, H, W)`` the image's L*a*b* when the caller has it (see :func:`masked_lab_stats`).
        keep_l: ``(B, 1, H, W)`` in [0, 1]: where the L* gain moves towards 1 (the image's own lightness
            contrast kept about the matched mean): ``L' = (L - src_mean) * (g + keep_l * (1 - g)) + dst_mean``
            with ``g`` the (strength-blended) L* gain; a* and b* as without it
            (:mod:`~vidswap.composite.contrast`).
        keep_base: ``(B, 1, H, W)`` with ``keep_l``: the lightness whose deviation from ``src_mean`` the kept gain
            acts on in place of ``L`` (a blurred ``L``: only that band's contrast is kept).

    Returns:
        ``(B, 3, H, W)``.
    """
    sm, ss = _as_pair(src_stats)
    dm, ds = _as_pair(dst_stats)
    if image.shape[0] > 1:  # one image at a time (each is transferred on its own): temporaries of one crop
        b = image.shape[0]
        return torch.cat([apply_stats_transfer(image[i:i + 1], (_item(sm, i, b), _item(ss, i, b)),
                                               (_item(dm, i, b), _item(ds, i, b)), _item(mask, i, b), strength,
                                               max_std_ratio, clamp_max, _item(lab, i, b), _item(keep_l, i, b),
                                               _item(keep_base, i, b), max_chroma_ratio)
                          for i in range(b)])
    lab = fast_lab.rgb_to_lab(image) if lab is None else lab
    gain = ds / ss.clamp(min=1e-6)
    if max_std_ratio is not None:
        gain = gain.clamp(1.0 / max_std_ratio, max_std_ratio)
    if max_chroma_ratio is not None:
        gain = torch.cat([gain[..., :1], gain[..., 1:].clamp(max=max_chroma_ratio)], -1)
    # (lab - sm) * gain + dm, blended with lab by strength, is one per-channel affine of lab
    offset = dm - sm * gain
    if strength != 1.0:
        gain, offset = 1.0 + strength * (gain - 1.0), strength * offset
    gain, offset = gain.expand(lab.shape[0], 3).to(lab), offset.expand(lab.shape[0], 3).to(lab)
    if keep_l is None:
        return _finish(fast_lab.lab_affine(lab, gain, offset), image, mask, clamp_max)
    moved = lab * gain[:, :, None, None] + offset[:, :, None, None]
    # L' + keep * (1 - g) * (L - src_mean): the L* gain moved towards 1 about the matched mean
    base = lab[:, :1] if keep_base is None else keep_base.to(lab)
    lift = (1.0 - gain[:, 0, None, None, None]) * (base - sm[..., 0].reshape(-1, 1, 1, 1).to(lab))
    moved[:, :1] += keep_l.to(lab) * lift
    return _finish(fast_lab.lab_to_rgb(moved), image, mask, clamp_max)


def _finish(rgb: torch.Tensor, image: torch.Tensor, mask: torch.Tensor | None, clamp_max: float | None,
            clip: bool = True) -> torch.Tensor:
    """Colour-matched RGB ``(B, C, H, W)`` back from LAB: with ``clip``, negatives clipped and values above
    ``clamp_max`` (when given); the original ``image`` kept where ``mask`` is 0."""
    out = rgb
    if clip:
        out = out.clamp(min=0.0)
        if clamp_max is not None:
            out = out.clamp(max=clamp_max)
    if mask is not None:
        out = torch.where(mask > 0, out, image)
    return out


def reinhard_transfer(
    image: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, params: ColourParams = ColourParams()
) -> torch.Tensor:
    """One-shot Reinhard transfer of ``image`` towards ``reference`` using both images' stats inside ``mask``.

    Args:
        image: ``(B, 3, H, W)`` the render.
        reference: ``(B, 3, H, W)`` the plate crop.
        mask: ``(B, 1, H, W)`` where to measure and apply.

    Returns:
        ``(B, 3, H, W)``.
    """
    return apply_stats_transfer(
        image,
        masked_lab_stats(image, mask),
        masked_lab_stats(reference, mask),
        mask,
        params.strength,
        params.max_std_ratio,
        max_chroma_ratio=params.max_chroma_ratio,
    )


def _match_rows(x: torch.Tensor, xm: torch.Tensor, r: torch.Tensor, rm: torch.Tensor) -> torch.Tensor:
    """Map each row of ``x (R, N)`` through its CDF (over ``xm``) onto the quantiles of ``r (R, M)`` (over ``rm``).

    Entries outside ``xm`` get meaningless values (the caller keeps their originals)."""
    big = torch.finfo(x.dtype).max
    xs, order = torch.sort(torch.where(xm, x, torch.full_like(x, big)), dim=1, stable=True)
    rs = torch.sort(torch.where(rm, r, torch.full_like(r, big)), dim=1).values
    n = xm.sum(dim=1, keepdim=True)
    m = rm.sum(dim=1, keepdim=True)
    # Mid-rank of every value's tie group, from the sorted rows (no search): group start by a running max of
    # the start indices, group end by a reversed running min of the end indices.
    j = torch.arange(xs.shape[1], device=x.device).expand_as(xs)
    new = torch.ones_like(xs, dtype=torch.bool)
    new[:, 1:] = xs[:, 1:] != xs[:, :-1]
    last = torch.ones_like(new)
    last[:, :-1] = new[:, 1:]
    start = torch.cummax(torch.where(new, j, torch.zeros_like(j)), dim=1).values
    end = torch.cummin(torch.where(last, j, torch.full_like(j, xs.shape[1])).flip(1), dim=1).values.flip(1)
    mid = torch.empty_like(xs)
    mid.scatter_(1, order, (start + end).to(x.dtype) / 2.0)
    pos = torch.minimum(mid, (n - 1).clamp(min=0).to(x.dtype))
    q = pos / (n - 1).clamp(min=1).to(x.dtype)
    rpos = q * (m - 1).clamp(min=0).to(x.dtype)
    i0 = rpos.floor().long()
    i1 = torch.minimum(i0 + 1, (m - 1).clamp(min=0))
    f = rpos - i0.to(x.dtype)
    out = rs.gather(1, i0) * (1.0 - f) + rs.gather(1, i1) * f
    ok = (n > 0) & (m > 0)
    return torch.where(ok, out, x)


def histogram_match(
    image: torch.Tensor,
    reference: torch.Tensor,
    image_mask: torch.Tensor | None = None,
    reference_mask: torch.Tensor | None = None,
    space: str = "lab",
    clamp_max: float | None = 1.0,
) -> torch.Tensor:
    """Per-channel histogram (CDF) matching inside masks.

    Each channel value of ``image`` is replaced by the ``reference`` quantile at its rank among the masked
    ``image`` pixels (ties share their mid-rank; quantiles are linearly interpolated). With equal sample counts
    and distinct values the matched pixels take exactly the reference's values.

    Args:
        image: ``(B, 3, H, W)``.
        reference: ``(B, 3, H', W')``.
        image_mask: ``(B, 1, H, W)``; pixels > 0 are matched (and are the samples), the others are returned
            unchanged.
        reference_mask: ``(B, 1, H', W')``; samples are pixels > 0.
        space: ``"lab"`` or ``"rgb"``.
        clamp_max: RGB upper clamp after LAB matching (None: keep values above 1).

    Returns:
        ``(B, 3, H, W)``.
    """
    if space not in ("lab", "rgb"):
        raise ValueError(f"space must be 'lab' or 'rgb', got {space!r}")
    b, c, h, w = image.shape
    x = fast_lab.rgb_to_lab(image) if space == "lab" else image
    r = fast_lab.rgb_to_lab(reference) if space == "lab" else reference
    xm = torch.ones_like(image[:, :1], dtype=torch.bool) if image_mask is None else image_mask > 0
    rm = torch.ones_like(reference[:, :1], dtype=torch.bool) if reference_mask is None else reference_mask > 0
    rows_x = x.reshape(b * c, -1)
    rows_r = r.reshape(b * c, -1)
    mx = xm.expand(-1, c, -1, -1).reshape(b * c, -1)
    mr = rm.expand(-1, c, -1, -1).reshape(b * c, -1)
    matched = _match_rows(rows_x, mx, rows_r, mr).reshape(b, c, h, w)
    if space == "lab":
        return _finish(fast_lab.lab_to_rgb(matched), image, image_mask, clamp_max)
    return _finish(matched, image, image_mask, None, clip=False)


def smooth_stats(
    stats: torch.Tensor,
    sigma: float = 3.0,
    mode: str = "gaussian",
    window: int = 5,
    alpha: float = 0.2,
    initial: torch.Tensor | None = None,
) -> torch.Tensor:
    """Smooth one track's colour statistics over time so colour does not pump.

    Args:
        stats: ``(T, D)`` per-frame statistics in frame order (``D = 6`` for :func:`pack_stats`).
        sigma: ``gaussian``: zero-phase Gaussian, sigma in frames, edges replicated.
        mode: ``"gaussian"``, ``"median"`` (zero-phase running median over ``window`` frames, robust to a
            frame with a bad mask) or ``"ema"`` (causal, for previews).
        window: ``median`` window length in frames (odd).
        alpha: ``ema`` weight of the current frame in (0, 1].
        initial: ``(D,)`` ``ema`` state carried from the previous chunk (default: the first frame).

    Returns:
        ``(T, D)``.
    """
    t, d = stats.shape
    if t == 0:
        return stats.clone()
    if mode == "gaussian":
        if sigma <= 0:
            return stats.clone()
        rad = int(math.ceil(3.0 * sigma))
        k = torch.arange(-rad, rad + 1, device=stats.device, dtype=stats.dtype)
        k = torch.exp(-0.5 * (k / sigma) ** 2)
        k = (k / k.sum())[None, None, :].expand(d, 1, -1)
        x = stats.T[None]  # (1, D, T)
        x = F.pad(x, (rad, rad), mode="replicate")
        return F.conv1d(x, k, groups=d)[0].T.contiguous()
    if mode == "median":
        half = max(0, int(window) // 2)
        if half == 0:
            return stats.clone()
        x = F.pad(stats.T[None], (half, half), mode="replicate")[0]  # (D, T + 2h)
        return x.unfold(1, 2 * half + 1, 1).median(dim=-1).values.T.contiguous()
    if mode == "ema":
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        out = torch.empty_like(stats)
        prev = stats[0] if initial is None else initial.to(stats)
        for i in range(t):
            prev = alpha * stats[i] + (1.0 - alpha) * prev
            out[i] = prev
        return out
    raise ValueError(f"mode must be 'gaussian', 'median' or 'ema', got {mode!r}")
