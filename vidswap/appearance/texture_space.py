"""Texture space of the face mesh: one UV layout shared by every frame of a track and every source photo.

A face seen in any image (a plate frame, a source photo) is resampled ("unwrapped") into the same square texture
through its landmarks, so per-texel statistics over time and across photos are simple array operations, and a
texture is rendered back onto any posed mesh. The layout is a cylindrical projection of the canonical face about
a vertical axis behind it (:func:`cylindrical_uv`): the cheeks keep about a third of the texel density of the
front instead of the ~2% a frontal projection leaves them, and it is left/right symmetric (mirror fill is a flip).

Conventions: texel centres at integer coordinates (``align_corners=True``), textures ``(B, C, U, U)``; mesh
vertices ``(B, V, 3)`` in image pixels with z in the same scale (smaller z = nearer), as everywhere in vidswap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.appearance.raster import fill_polygons, rasterize
from vidswap.appearance.texture import render_texture

__all__ = [
    "TextureSpace",
    "cylindrical_uv",
    "build_texture_space",
    "vertex_normals",
    "texel_values",
    "channel_length",
    "texel_normals",
    "unwrap",
    "render_from_texture",
    "region_masks",
    "mirror_texture",
]

#: depth of the cylinder axis behind the canonical face, in canonical units (RMS face radius 1; the nose tip is at
#: z = -0.64, the face-oval sides at z ~ 1.2). Chosen for the least texel-area distortion over the mesh.
AXIS_DEPTH = 1.6


@dataclass(frozen=True)
class TextureSpace:
    """A UV layout of the face mesh at one texture size, with its rasterisation cached.

    Attributes:
        uv: (V, 2) texel position (x, y) of every mesh vertex, pixel centres at integers, within [0, size - 1].
        triangles: (T, 3) int64 faces the layout covers.
        size: texture side U.
        texel_triangle: (U, U) int64 triangle covering each texel, -1 outside the layout.
        texel_bary: (U, U, 3) float32 barycentric weights of that triangle's corners (0 outside).
    """

    uv: Tensor
    triangles: Tensor
    size: int
    texel_triangle: Tensor
    texel_bary: Tensor

    @property
    def covered(self) -> Tensor:
        """(1, 1, U, U) float: 1 on texels inside the layout."""
        return (self.texel_triangle >= 0).float()[None, None]

    def to(self, device: torch.device | str) -> "TextureSpace":
        return TextureSpace(self.uv.to(device), self.triangles.to(device), self.size,
                            self.texel_triangle.to(device), self.texel_bary.to(device))


def cylindrical_uv(canonical: Tensor, axis_depth: float = AXIS_DEPTH) -> Tensor:
    """Unnormalised cylindrical coordinates of canonical points: (V, 3) -> (V, 2) ``(rho * theta, y)``.

    ``theta = atan2(x, axis_depth - z)`` is the angle about a vertical axis at depth ``axis_depth`` and
    ``rho`` the median distance of the mesh from that axis, so both coordinates are in canonical length units.
    """
    c = canonical.float()
    depth = axis_depth - c[:, 2]
    theta = torch.atan2(c[:, 0], depth)
    rho = depth[: min(468, len(depth))].median()
    return torch.stack([theta * rho, c[:, 1]], 1)


def build_texture_space(canonical: Tensor, triangles: Tensor, size: int, margin: float = 0.02,
                        axis_depth: float = AXIS_DEPTH) -> TextureSpace:
    """The layout of ``canonical`` (V, 3) fitted into a ``size`` texture with ``margin`` (fraction) on each side,
    aspect kept, centred: the symmetry plane x = 0 of the canonical face maps to the centre column."""
    tri = torch.as_tensor(triangles, dtype=torch.long)
    flat = cylindrical_uv(torch.as_tensor(canonical), axis_depth)
    used = torch.unique(tri)
    lo, hi = flat[used].amin(0), flat[used].amax(0)
    half_w = torch.maximum(hi[0].abs(), lo[0].abs())  # symmetric about u = 0
    extent = torch.maximum(2 * half_w, hi[1] - lo[1])
    scale = (size - 1) * (1 - 2 * margin) / extent
    centre = torch.stack([torch.zeros(()), (hi[1] + lo[1]) / 2])
    uv = (flat - centre) * scale + (size - 1) / 2.0
    verts = torch.cat([uv, torch.zeros(len(uv), 1)], 1)[None]
    tid, bary = rasterize(verts, tri, (size, size))
    return TextureSpace(uv=uv, triangles=tri, size=int(size), texel_triangle=tid[0], texel_bary=bary[0])


def vertex_normals(verts: Tensor, triangles: Tensor) -> Tensor:
    """Area-weighted unit vertex normals: (B, V, 3) -> (B, V, 3).

    With the topology's orientation (counter-clockwise on screen, :mod:`vidswap.faces.topology`) they point
    toward the camera (negative z) on a frontal face. Vertices in no triangle get (0, 0, -1).
    """
    tri = triangles.to(device=verts.device, dtype=torch.long)
    v = verts.float()
    a, b, c = v[:, tri[:, 0]], v[:, tri[:, 1]], v[:, tri[:, 2]]
    n = torch.cross(b - a, c - a, dim=-1)  # (B, T, 3), length = 2 x area
    acc = torch.zeros_like(v)
    for k in range(3):
        acc.index_add_(1, tri[:, k], n)
    length = acc.norm(dim=-1, keepdim=True)
    default = torch.tensor([0.0, 0.0, -1.0], device=v.device).expand_as(acc)
    return torch.where(length > 1e-12, acc / length.clamp(min=1e-12), default)


def texel_normals(space: TextureSpace, verts: Tensor) -> Tensor:
    """Unit surface normals over the layout from posed meshes: (B, V, 3) -> (B, 3, U, U) (0 outside the layout).

    In the coordinates of ``verts``: pass plate-pixel landmarks for plate (camera) normals, whatever crop the
    texture came from, so lighting stays fixed to the camera when the head rolls.
    """
    n = texel_values(space, vertex_normals(verts, space.triangles))
    return n / channel_length(n).clamp(min=1e-6)


def channel_length(x: Tensor) -> Tensor:
    """(B, C, ...) -> (B, 1, ...) the Euclidean length over the channel axis, as the square root of the summed
    squares: torch's ``norm(dim=1)`` on CPU takes 13-40x the time for the same value to float rounding (26.7 ms
    against 0.6 ms for (4, 3, 256, 256), one thread)."""
    return x.square().sum(dim=1, keepdim=True).sqrt()


def texel_values(space: TextureSpace, values: Tensor) -> Tensor:
    """Per-vertex values interpolated over the layout: (B, V, C) -> (B, C, U, U) (0 outside the layout)."""
    tid = space.texel_triangle.to(values.device)
    bary = space.texel_bary.to(device=values.device, dtype=values.dtype)
    corners = space.triangles.to(values.device)[tid.clamp(min=0)]  # (U, U, 3)
    v = values[:, corners]  # (B, U, U, 3, C)
    out = (v * bary[None, ..., None]).sum(-2)
    out = out * (tid >= 0)[None, ..., None].to(values.dtype)
    return out.permute(0, 3, 1, 2).contiguous()


def unwrap(space: TextureSpace, images: Tensor, landmarks: Tensor,
           visibility: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Resample faces into texture space.

    Args:
        space: the layout.
        images: (B, C, H, W) float images.
        landmarks: (B, V, 2+) mesh vertices in those images' pixels.
        visibility: (B, V) per-vertex weight in [0, 1] (e.g. :func:`vidswap.swap.render.texture_confidence`:
            facing, self-occlusion, inside the image), or None (all visible).

    Returns:
        texture: (B, C, U, U) bilinear samples (0 outside the layout).
        weight: (B, 1, U, U) interpolated visibility x inside-the-layout x inside-the-image.
    """
    B, C, H, W = images.shape
    per_vertex = landmarks[..., :2].float()
    if visibility is not None:  # interpolated with the positions: one gather (channel by channel, the same values)
        per_vertex = torch.cat([per_vertex, visibility.float()[..., None]], -1)
    values = texel_values(space, per_vertex)  # (B, 2 or 3, U, U)
    pos = values[:, :2]
    grid = torch.stack([pos[:, 0] * (2.0 / max(W - 1, 1)) - 1.0, pos[:, 1] * (2.0 / max(H - 1, 1)) - 1.0], -1)
    tex = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    inside = ((pos[:, 0] >= -0.5) & (pos[:, 0] <= W - 0.5) & (pos[:, 1] >= -0.5) & (pos[:, 1] <= H - 0.5))
    covered = space.covered.to(images.device)
    weight = covered * inside[:, None].float()
    if visibility is not None:
        weight = weight * values[:, 2:3].clamp(0.0, 1.0)
    return tex * covered, weight


def render_from_texture(space: TextureSpace, texture: Tensor, verts: Tensor, size: tuple[int, int], *,
                        vertex_gain: Tensor | None = None, texture_gain: Tensor | None = None,
                        vertex_keep: Tensor | None = None, supersample: int = 1) -> tuple[Tensor, Tensor]:
    """Render a texture-space image onto posed meshes: (B or 1, C, U, U) + (B, V, 3) -> crop (B, C, H, W) and
    coverage alpha (B, 1, H, W) (z-buffered; :func:`vidswap.appearance.texture.render_texture`). ``vertex_gain``
    (B, V, K): per-vertex factors interpolated over the mesh and multiplied into the first K channels;
    ``texture_gain`` (B or 1, K, u, u): factors over the same layout at any side, sampled at the same surface points
    and multiplied likewise; ``vertex_keep`` (B, V): the share of those channels' departure from 1 each vertex
    keeps (see :func:`~vidswap.appearance.texture.render_texture`)."""
    uv = space.uv.to(device=verts.device)[None]
    return render_texture(texture, uv, verts, space.triangles, size, vertex_gain=vertex_gain,
                          texture_gain=texture_gain, vertex_keep=vertex_keep, supersample=supersample)


def region_masks(space: TextureSpace, regions: Mapping[str, np.ndarray | Sequence[int]]) -> dict[str, Tensor]:
    """Face regions in texture space, (1, 1, U, U) float each: ``face`` (inside the oval), ``lips`` (outer minus
    inner contour), ``mouth`` (inside the outer lip contour), ``eyes`` (and ``left_eye``, ``right_eye``: the
    subject's), ``brows``, ``nose``, ``skin`` (face minus eyes, brows and mouth)."""
    uv = space.uv[None]
    size = (space.size, space.size)

    def fill(*names: str) -> Tensor:
        loops = [torch.as_tensor(np.asarray(regions[n]), dtype=torch.long) for n in names if n in regions]
        return fill_polygons(uv, loops, size).float()[:, None] if loops else torch.zeros(1, 1, *size)

    face = fill("face_oval") * space.covered
    mouth = fill("lips_outer")
    inner = fill("lips_inner")
    eyes = fill("left_eye", "right_eye")
    left_eye, right_eye = fill("left_eye"), fill("right_eye")
    brows = fill("left_brow", "right_brow")
    nose = fill("nose")
    lips = (mouth - inner).clamp(0, 1)
    skin = (face - eyes - brows - mouth).clamp(0, 1)
    return {"face": face, "lips": lips, "mouth": mouth, "eyes": eyes, "left_eye": left_eye, "right_eye": right_eye,
            "brows": brows, "nose": nose, "skin": skin}


def mirror_texture(texture: Tensor) -> Tensor:
    """The left/right mirrored texture: the layout is symmetric about its centre column, so a flip."""
    return torch.flip(texture, dims=(-1,))
