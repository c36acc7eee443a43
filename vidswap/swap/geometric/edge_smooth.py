"""Anti-aliasing of the relit render along the mesh's foreshortened edges.

The relit render is rasterised at one sample a pixel. Where the face turns away from the camera -- the nose's wings
seen from above or from the side, the jaw of a turned head -- a triangle seen nearly edge-on lies beside one seen
face-on, the texture and the shading jump across their shared edge, and the edge was drawn as a staircase of whole
pixels (pexels_clip looking down: the outline of each nose wing in steps one plate pixel high, crawling as the
head moves). Rendering at twice the size smooths it for +30-40 ms a frame and +600 MB (measured on pexels_clip x
astronaut, 120 frames). Here only the pixels along those edges are smoothed: the mesh edges beside a triangle whose
area on screen, against its area on the canonical face, is under a share (``RelightParams.steep_edges``) of the
frame's median ratio (seen edge-on, or folded over), drawn :data:`BAND_WIDTH` pixels wide and blurred there by a
Gaussian of sigma :data:`SMOOTH_SIGMA` pixels over what the render covers (~100 pixels a frame on pexels_clip).

Shapes: meshes (B, V, 2+) pixels; triangles (T, 3); edges (E, 2); renders (B, C, H, W); masks (B, 1, H, W).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch import Tensor

from vidswap.appearance.lighting import normalized_blur
from vidswap.composite.filters import gaussian_blur, support_window

__all__ = ["BAND_WIDTH", "SMOOTH_SIGMA", "mesh_edges", "triangle_areas", "steep_edges", "edge_band",
           "smooth_steep_edges"]

#: the width (render pixels) of the band drawn along each steep edge
BAND_WIDTH = 3
#: the blur (render pixels) within the band: about what a pixel's footprint spreads a hard edge over
SMOOTH_SIGMA = 0.7


def mesh_edges(triangles: Tensor) -> tuple[Tensor, Tensor]:
    """The interior edges of a triangle mesh (T, 3): (E, 2) vertex pairs (the smaller index first, sorted) and (E, 2)
    the two triangles each is shared by. Border edges (one triangle) are left out: the render's alpha softens the
    face's outline."""
    t = triangles.detach().cpu().numpy().astype(np.int64)
    pairs = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
    owner = np.tile(np.arange(len(t)), 3)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    pairs, owner = pairs[order], owner[order]
    shared = np.nonzero(np.all(pairs[1:] == pairs[:-1], axis=1))[0]
    return torch.as_tensor(pairs[shared]), torch.as_tensor(np.stack([owner[shared], owner[shared + 1]], 1))


def triangle_areas(points: Tensor, triangles: Tensor) -> Tensor:
    """Signed areas (..., T) of the triangles (T, 3) of ``points`` (..., V, 2+) in their x, y plane (positive when
    the corners run counter-clockwise with y up)."""
    p = points[..., triangles, :2]
    a, b, c = p[..., 0, :], p[..., 1, :], p[..., 2, :]
    return 0.5 * ((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (c[..., 0] - a[..., 0]) * (b[..., 1] - a[..., 1]))


def steep_edges(verts: Tensor, triangles: Tensor, adjacent: Tensor, reference: Tensor, ratio: float) -> Tensor:
    """(B, E) which edges lie beside a triangle seen edge-on or folded over: its area in ``verts`` (B, V, 2+) over
    its ``reference`` area (T,) (the canonical face's, same orientation) is under ``ratio`` x the frame's median of
    that ratio (the median's sign makes either winding face-on). ``adjacent`` (E, 2) from :func:`mesh_edges`."""
    scale = triangle_areas(verts.float(), triangles) / reference.to(verts.device, torch.float32)
    median = scale.median(dim=1, keepdim=True).values
    scale = scale / torch.where(median.abs() < 1e-12, torch.full_like(median, 1e-12), median)
    return scale[:, adjacent.to(verts.device)].amin(-1) < ratio


def edge_band(verts: Tensor, edges: Tensor, selected: Tensor, size: tuple[int, int],
              width: int = BAND_WIDTH) -> Tensor:
    """The ``selected`` (B, E) ``edges`` (E, 2) of each frame's mesh ``verts`` (B, V, 2+) drawn ``width`` pixels wide
    on (H, W) (OpenCV, sub-pixel ends): (B, 1, H, W) float in {0, 1}, on ``verts``' device."""
    H, W = int(size[0]), int(size[1])
    band = np.zeros((verts.shape[0], H, W), np.uint8)
    xy = np.round(verts[..., :2].detach().double().cpu().numpy() * 16).astype(np.int64)
    pairs = edges.cpu().numpy()
    chosen = selected.cpu().numpy()
    for b in range(len(band)):
        ends = xy[b][pairs[chosen[b]]]  # (K, 2, 2)
        ends = ends[np.all(np.abs(ends) < 2 ** 30, axis=(1, 2))].astype(np.int32)
        if len(ends):
            cv2.polylines(band[b], list(ends.reshape(-1, 2, 1, 2)), False, 1, int(width), cv2.LINE_8, 4)
    return torch.from_numpy(band).to(verts.device, torch.float32)[:, None]


def smooth_steep_edges(rgb: Tensor, cover: Tensor, band: Tensor, sigma: float = SMOOTH_SIGMA) -> Tensor:
    """``rgb`` (B, C, H, W) with the pixels of ``band`` (B, 1, H, W) replaced by its Gaussian blur (sigma pixels)
    over what ``cover`` (B, 1, H, W) marks (band and cover multiply the step: a band of 1 on a covered pixel is
    the blur), in place (returned); elsewhere ``rgb`` untouched. Each frame is blurred over the box of its band
    grown by twice the blur's reach alone (a frame's values do not depend on the batch)."""
    reach = 2 * (math.ceil(3.0 * sigma) + 1)
    for b in range(rgb.shape[0]):
        window = support_window(band[b:b + 1], reach)
        if window is None:
            continue
        rows, cols = window
        box, seen = rgb[b:b + 1, :, rows, cols], cover[b:b + 1, :, rows, cols]
        if bool((seen >= 1.0).all()):  # the usual case: the band lies inside what the render covers
            smooth = gaussian_blur(box, sigma)
        else:
            smooth, _ = normalized_blur(box, seen, sigma)
        on = band[b:b + 1, :, rows, cols] * seen
        box.add_(on * (smooth - box))
    return rgb
