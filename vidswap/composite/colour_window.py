"""The Reinhard colour match of a swapped face, computed only over the crop window that paste-back reads.

Paste-back uses a crop's colours only where its alpha is above 0 and at the bilinear taps next to those pixels
(and, when the face shrinks onto the plate, within the anti-alias blur's reach). The render's L*a*b*, its
statistics and the transfer are per-pixel or masked sums, so computing them over each face's window -- the
bounding box of its paste alpha and its statistics mask, grown by one pixel -- gives the pasted plate of the
whole-crop computation (the statistics' sums differ only in float rounding order). Outside the window the
returned crop keeps the render's own colours. The kept contrast's base (a Gaussian blur of the render's L*,
:mod:`~vidswap.composite.contrast`) reads around each pixel: its windows are grown by the blur's radius
(:func:`blur_reach`, :func:`grow_windows`), so inside the paste's window the base is the whole crop's.

Windows are per face and depend on that face alone, so a frame's result does not depend on which faces share
its batch (farm chunks equal a single pass).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vidswap.composite.colour import apply_stats_transfer, masked_lab_stats, pack_stats
from vidswap.composite.filters import per_item, support_window
from vidswap.composite.lab import rgb_to_lab

Window = tuple[slice, slice]


def crop_windows(reach: torch.Tensor, whole: Sequence[bool], margin: int = 1) -> list[Window | None]:
    """Per face the crop window its colour match is needed in.

    Args:
        reach: ``(B, 1, h, w)`` where the crop's colours are used (> 0): the paste alpha and statistics mask.
        whole: per face, True to take the whole crop (e.g. the paste blurs the crop before warping).
        margin: pixels added on every side (1: the bilinear taps of the paste's warp).

    Returns:
        per face ``(rows, cols)`` slices, or None when ``reach`` is 0 everywhere in that crop.
    """
    h, w = reach.shape[-2:]
    return [(slice(0, h), slice(0, w)) if whole[i] else support_window(reach[i:i + 1], margin)
            for i in range(reach.shape[0])]


def grow_windows(windows: Sequence[Window | None], margins: Sequence[int], size: tuple[int, int]
                 ) -> list[Window | None]:
    """Each window grown by its face's ``margin`` pixels on every side, clipped to the crop ``size (h, w)``."""
    out: list[Window | None] = []
    for win, m in zip(windows, margins):
        out.append(None if win is None else (slice(max(win[0].start - m, 0), min(win[0].stop + m, size[0])),
                                             slice(max(win[1].start - m, 0), min(win[1].stop + m, size[1]))))
    return out


def blur_reach(face_size: torch.Tensor, band: float) -> list[int]:
    """Per face the pixels :func:`~vidswap.composite.contrast.contrast_base`'s blur reads around a pixel: its
    truncation radius ``ceil(3 sigma)``, ``sigma = band * face size`` (``face_size (B,)`` pixels), as
    :func:`~vidswap.composite.filters.gaussian_blur` computes it. A window grown by it (or reaching the crop's
    border, where the blur replicates the same edge) gives the whole crop's base inside the original window."""
    if band <= 0:
        return [0] * face_size.shape[0]
    s = per_item(face_size * band, face_size.shape[0], face_size.device)
    return [int(v) for v in torch.ceil(3.0 * s).long().tolist()]


def window_lab_stats(render: torch.Tensor, stats_mask: torch.Tensor, windows: Sequence[Window | None]
                     ) -> tuple[list[torch.Tensor | None], torch.Tensor]:
    """The render's L*a*b* in each window and its masked statistics.

    Args:
        render: ``(B, 3, h, w)`` sRGB.
        stats_mask: ``(B, 1, h, w)`` statistics weights (0 outside the window).
        windows: from :func:`crop_windows`.

    Returns:
        per face the ``(1, 3, wh, ww)`` L*a*b* of its window (None for an empty window) and the packed
        statistics ``(B, 6)`` (means then stds; zeros for an empty window, as an empty mask gives).
    """
    labs, stats = [], []
    for i, win in enumerate(windows):
        if win is None:
            labs.append(None)
            stats.append(torch.zeros(1, 6, dtype=render.dtype, device=render.device))
            continue
        cut = render[i:i + 1, :, win[0], win[1]]
        lab = rgb_to_lab(cut)
        labs.append(lab)
        stats.append(pack_stats(*masked_lab_stats(cut, stats_mask[i:i + 1, :, win[0], win[1]], lab=lab)))
    return labs, torch.cat(stats)


def transfer_in_windows(render: torch.Tensor, labs: Sequence[torch.Tensor | None], windows: Sequence[Window | None],
                        src: torch.Tensor, dst: torch.Tensor, strength: float, max_std_ratio: float | None,
                        keep_l: torch.Tensor | None = None,
                        keep_base: Sequence[torch.Tensor | None] | None = None,
                        max_chroma_ratio: float | None = None) -> torch.Tensor:
    """:func:`~vidswap.composite.colour.apply_stats_transfer` of each face in its window.

    Args:
        render: ``(B, 3, h, w)``.
        labs, windows: from :func:`window_lab_stats` / :func:`crop_windows`.
        src, dst: ``(B, 6)`` packed statistics of the render and the ones to reach.
        strength, max_std_ratio, max_chroma_ratio: as :func:`~vidswap.composite.colour.apply_stats_transfer`.
        keep_l: ``(B, 1, h, w)`` over the whole crop, or None: as
            :func:`~vidswap.composite.colour.apply_stats_transfer`, cut to each window.
        keep_base: per face its ``(1, 1, wh, ww)`` base over its window (None for an empty window), or None: as
            :func:`~vidswap.composite.colour.apply_stats_transfer`.

    Returns:
        ``(B, 3, h, w)``: the transferred colours in each window, the render's outside.
    """
    out = render.clone()
    for i, win in enumerate(windows):
        if win is None:
            continue
        cut = render[i:i + 1, :, win[0], win[1]]
        kl = None if keep_l is None else keep_l[i:i + 1, :, win[0], win[1]]
        kb = None if keep_base is None else keep_base[i]
        out[i:i + 1, :, win[0], win[1]] = apply_stats_transfer(cut, src[i:i + 1], dst[i:i + 1], None, strength,
                                                               max_std_ratio, lab=labs[i], keep_l=kl, keep_base=kb,
                                                               max_chroma_ratio=max_chroma_ratio)
    return out
