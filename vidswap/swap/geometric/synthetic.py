"""Synthetic meshes and textures for tests and benchmarks of the swap renderer (no face data needed)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["grid_mesh", "uv_sphere", "face_cap", "face_cap_mirror", "rotation_y", "test_texture"]


def grid_mesh(n: int, height: int, width: int, *, jitter: float = 0.0, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A regular n x n cell grid of triangles spanning the pixel centres ``[0, W-1] x [0, H-1]``.

    Vertices may be jittered by up to ``jitter`` (< 0.5) of a cell; border vertices only slide along the edge.

    Returns:
        verts (V, 3) with z = 0, triangles (2 n^2, 3) int64.
    """
    ys, xs = torch.meshgrid(torch.linspace(0, height - 1, n + 1), torch.linspace(0, width - 1, n + 1),
                            indexing="ij")
    if jitter > 0:
        g = torch.Generator().manual_seed(seed)
        cy = (height - 1) / n
        cx = (width - 1) / n
        jx = (torch.rand(n + 1, n + 1, generator=g) - 0.5) * 2 * jitter * cx
        jy = (torch.rand(n + 1, n + 1, generator=g) - 0.5) * 2 * jitter * cy
        xs = xs + jx
        ys = ys + jy
        xs[:, 0], xs[:, -1] = 0.0, width - 1.0  # the border stays on the image edge
        ys[0, :], ys[-1, :] = 0.0, height - 1.0
    v = torch.stack([xs, ys, torch.zeros_like(xs)], -1).reshape(-1, 3)
    idx = torch.arange((n + 1) * (n + 1)).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    tri = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    return v, tri


def uv_sphere(rings: int = 16, segments: int = 32) -> tuple[Tensor, Tensor, Tensor]:
    """A closed unit sphere (latitude-longitude tessellation), with longitude 0 facing the camera (-z).

    Returns:
        verts (V, 3), triangles (T, 3) int64, lonlat (V, 2) radians (longitude in (-pi, pi], seam at the back;
        latitude in [-pi/2, pi/2], +y down).
    """
    pts, ll = [], []
    pts.append((0.0, -1.0, 0.0))
    ll.append((0.0, -math.pi / 2))
    for r in range(1, rings):
        lat = -math.pi / 2 + math.pi * r / rings
        for k in range(segments + 1):  # duplicated seam column (k = segments) so the uv does not wrap
            lon = -math.pi + 2 * math.pi * k / segments
            pts.append((math.cos(lat) * math.sin(lon), math.sin(lat), -math.cos(lat) * math.cos(lon)))
            ll.append((lon, lat))
    pts.append((0.0, 1.0, 0.0))
    ll.append((0.0, math.pi / 2))
    verts = torch.tensor(pts, dtype=torch.float32)
    lonlat = torch.tensor(ll, dtype=torch.float32)
    S1 = segments + 1
    tris = []
    for k in range(segments):
        tris.append((0, 1 + k, 1 + k + 1))
    for r in range(rings - 2):
        a0 = 1 + r * S1
        b0 = 1 + (r + 1) * S1
        for k in range(segments):
            tris.append((a0 + k, b0 + k, b0 + k + 1))
            tris.append((a0 + k, b0 + k + 1, a0 + k + 1))
    last = len(pts) - 1
    a0 = 1 + (rings - 2) * S1
    for k in range(segments):
        tris.append((a0 + k, last, a0 + k + 1))
    return verts, torch.tensor(tris, dtype=torch.long), lonlat


def face_cap(rings: int = 15, segments: int = 32) -> tuple[Tensor, Tensor]:
    """A face-like open mesh: a patch of an ellipsoid (x half-width 0.75, height 1, depth 0.6) facing -z.

    Rings are spaced more densely in the middle, like the landmark mesh. With the defaults V = 481 (>= 478, so
    MediaPipe-sized index sets fit) and T = 928 (the MediaPipe mesh has 852).

    Returns:
        verts (V, 3) canonical-frame points (x right, y down, z away from the camera), triangles (T, 3).
    """
    pts = [torch.tensor([0.0, 0.0, -0.6])]
    for r in range(1, rings + 1):
        theta = 1.25 * (r / rings) ** 1.3  # polar angle from the view axis, up to ~72 degrees
        for k in range(segments):
            phi = 2 * math.pi * k / segments
            pts.append(torch.tensor([0.75 * math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi),
                                     -0.6 * math.cos(theta)]))
    verts = torch.stack(pts)
    tris = []
    for k in range(segments):
        tris.append((0, 1 + k, 1 + (k + 1) % segments))
    for r in range(1, rings):
        a0 = 1 + (r - 1) * segments
        b0 = 1 + r * segments
        for k in range(segments):
            k1 = (k + 1) % segments
            tris.append((a0 + k, b0 + k, b0 + k1))
            tris.append((a0 + k, b0 + k1, a0 + k1))
    return verts, torch.tensor(tris, dtype=torch.long)


def face_cap_mirror(rings: int = 15, segments: int = 32) -> Tensor:
    """Left/right (x -> -x) partner of every :func:`face_cap` vertex: (V,) int64 (segments must be even)."""
    idx = [0]
    for r in range(rings):
        for k in range(segments):
            idx.append(1 + r * segments + (segments // 2 - k) % segments)
    return torch.tensor(idx, dtype=torch.long)


def rotation_y(deg: float) -> Tensor:
    """(3, 3) rotation about the y axis (yaw), right-handed, for column vectors."""
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])


def test_texture(height: int, width: int) -> Tensor:
    """(1, 3, H, W) smooth colour gradient plus an 8-px checker in [0, 1]."""
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    checker = ((torch.div(xx, 8, rounding_mode="floor") + torch.div(yy, 8, rounding_mode="floor")) % 2)
    img = torch.stack([0.1 + 0.8 * xx / max(width - 1, 1), 0.1 + 0.8 * yy / max(height - 1, 1),
                       0.25 + 0.5 * checker])
    return img[None]


test_texture.__test__ = False  # not a pytest test
