"""Per-region swap (``composite.regions``): which parts of the face take the swapped render, which keep the plate.

The face is split into five parts that partition it (the masks of
:func:`~vidswap.composite.masks.face_regions`, rasterised from the tracked mesh in crop space):

* ``eyes``, ``brows``, ``mouth`` -- the grown feature contours,
* ``nose`` -- the nose contour,
* ``skin`` -- the rest of the face (the face minus the four above; when ``nose`` is not selected the nose is not
  taken with the skin).

``face`` names all five. Selecting all five (or ``face``) is the whole-face swap, computed exactly as before
(:func:`region_alpha` returns the face alpha of :func:`~vidswap.composite.masks.feather_mask` unchanged).

A subset is the union of its parts, softened across the part boundaries by a Gaussian ramp centred on the
boundary (:func:`soften_selection`: reach ``MaskParams.feature_grow`` x face size, or ``composite.region_feather``),
then multiplied into the face alpha. The features are grown by the same length, so a selected feature is fully the
render inside its own (ungrown) contour and a kept one is fully the plate inside its contour; the ramp lies in the
grown band around it. The masks follow the tracked (smoothed) landmarks, so the selection is as steady as the face
mask; no state is carried between frames, so farm chunks stay bit-identical to a single pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import torch

from vidswap.composite.filters import gaussian_blur, per_item
from vidswap.composite.masks import SWAP_REGIONS, MaskParams, face_regions, feather_mask, subtract, union
from vidswap.sections import REGION_NAMES, check_regions  # noqa: F401 - declared there (torch-free)


def covers_face(names: Sequence[str]) -> bool:
    """Whether the selection is the whole face (``face``, or all five parts)."""
    return "face" in names or set(SWAP_REGIONS) <= set(names)


def selection_mask(regions: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """The union of the selected parts, unsoftened.

    Args:
        regions: :func:`~vidswap.composite.masks.face_regions` output (``face, eyes, brows, nose, mouth, skin``
            masks ``(B, 1, H, W)``).
        names: a checked selection (:func:`check_regions`).

    Returns:
        ``(B, 1, H, W)`` in [0, 1]; the face mask itself when the selection covers the face.
    """
    sel = check_regions(names)
    if covers_face(sel):
        return regions["face"]
    parts = []
    for name in SWAP_REGIONS:
        if name not in sel:
            continue
        if name == "skin" and "nose" not in sel:
            parts.append(subtract(regions["skin"], regions["nose"]))
        else:
            parts.append(regions[name])
    return union(*parts)


def soften_selection(selection: torch.Tensor, size: torch.Tensor | float, reach: float) -> torch.Tensor:
    """Ramp a selection across its boundary: a separable Gaussian of radius ``r = floor(round(reach * size) /
    sqrt 2)`` (sigma ``r / 2``, truncated at ``r``). Its square window fits in the octagon of radius
    ``round(reach * size)`` the features are grown by, so the selection is unchanged wherever the boundary is
    farther than that growth (inside a feature's own contour).

    Args:
        selection: ``(B, 1, H, W)``.
        size: ``(B,)`` face sizes in pixels (or a scalar).
        reach: ramp radius as a fraction of the face size.

    Returns:
        ``(B, 1, H, W)``.
    """
    grow = torch.round(per_item(size, selection.shape[0], selection.device) * reach)
    radius = torch.floor(grow / math.sqrt(2.0) + 1e-6)
    return gaussian_blur(selection, radius / 2.0, radius)


def region_alpha(regions: Mapping[str, torch.Tensor], names: Sequence[str], params: MaskParams,
                 reach: float | None = None, landmarks: torch.Tensor | None = None,
                 loops: Mapping | None = None) -> torch.Tensor:
    """The compositor's region alpha for a selection (module doc).

    Args:
        regions: :func:`~vidswap.composite.masks.face_regions` output, with ``size`` ``(B,)``.
        names: the selection.
        params: erosion and feather of the face alpha; ``feature_grow`` the features' growth and the ramp's reach.
        reach: another growth and reach for the selection (``composite.region_feather``); the parts are then
            rasterised again from ``landmarks`` ``(B, 478, 2 or 3)`` and ``loops`` (``MeshTopology.regions``).

    Returns:
        ``(B, 1, H, W)`` alpha in [0, 1]: the face alpha times the softened selection (the face alpha itself for
        a whole-face selection).
    """
    sel = check_regions(names)
    fs = regions["size"]
    face = feather_mask(regions["face"], fs, params.erosion, params.feather)
    if covers_face(sel):
        return face
    if reach is not None and reach != params.feature_grow:
        if landmarks is None or loops is None:
            raise ValueError("a selection reach other than the features' growth needs the landmarks and loops")
        params = replace(params, feature_grow=reach)
        regions = face_regions(landmarks, loops, tuple(regions["face"].shape[-2:]), params)
    return face * soften_selection(selection_mask(regions, sel), fs, params.feature_grow)


def region_classes(landmarks: torch.Tensor, loops: Mapping, size: tuple[int, int], names: Sequence[str],
                   params: MaskParams = MaskParams()) -> torch.Tensor:
    """Two soft classes for region-wise synthesis (the e4s-pti core's per-region codes): kept and swapped.

    Args:
        landmarks: ``(B, 478, 2 or 3)`` crop pixels.
        loops: ``MeshTopology.regions``.
        size: ``(H, W)`` of the masks.
        names: the selection (``composite.regions``).
        params: feature growth (the ramp), antialiasing.

    Returns:
        ``(B, 2, H, W)``: channel 0 the kept part (outside the face, and the unselected parts), channel 1 the
        softened selection; they sum to one.
    """
    fr = face_regions(landmarks, loops, size, params)
    sel = soften_selection(selection_mask(fr, names), fr["size"], params.feature_grow)
    return torch.cat([1.0 - sel, sel], dim=1)
