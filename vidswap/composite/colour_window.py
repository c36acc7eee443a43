"""The Reinhard colour match of a swapped face, computed only over the crop window that paste-back reads.

Paste-back uses a crop's colours only where its alpha is above 0 and at the bilinear taps next to those pixels
(and, when the face shrinks onto the plate, within the anti-alias blur's reach). The render's L*a*b*, its
statistics and the transfer are per-pixel or masked sums, so computing them over each face's window -- the
bounding box of its paste alpha and its statistics mask, grown by one pixel -- gives the pasted plate of the
whole-crop computation (the statistics' sums differ only in float rounding order). Outside the window the
returned crop keeps the render's own colours.

Windows are per face and depend on that face alone, so a frame's result does not depend on which faces share
its batch (farm chunks equal a single pass).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vidswap.composite.colour import apply_stats_transfer, masked_lab_stats, pack_stats
from vidswap.composite.filters import support_window
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
                        keep_l: torch.Tensor | None = None, keep_base: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`~vidswap.composite.colour.apply_stats_transfer` of each face in its window.

    Args:
        render: ``(B, 3, h, w)``.
        labs, windows: from :func:`window_lab_stats` / :func:`crop_windows`.
        src, dst: ``(B, 6)`` packed statistics of the render and the ones to reach.
        strength, max_std_ratio: as :func:`~vidswap.composite.colour.apply_stats_transfer`.
        keep_l, keep_base: ``(B, 1, h, w)`` over the whole crop, or None: as
            :func:`~vidswap.composite.colour.apply_stats_transfer`, cut to each window.

    Returns:
        ``(B, 3, h, w)``: the transferred colours in each window, the render's outside.
    """
    out = render.clone()
    for i, win in enumerate(windows):
        if win is None:
            continue
        cut = render[i:i + 1, :, win[0], win[1]]
        kl = None if keep_l is None else keep_l[i:i + 1, :, win[0], win[1]]
        kb = None if keep_base is None else keep_base[i:i + 1, :, win[0], win[1]]
        out[i:i + 1, :, win[0], win[1]] = apply_stats_transfer(cut, src[i:i + 1], dst[i:i + 1], None, strength,
                                                               max_std_ratio, lab=labs[i], keep_l=kl, keep_base=kb)
    return out
