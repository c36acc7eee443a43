"""The source photo's detail where the plate sees the face far more squarely than the photo did.

A source photo is usually frontal: it sees the sides of the face -- the cheeks toward the ears, the temples, a
spectacle frame's arms -- at a grazing angle, squeezed into a few pixels. When the plate turns its head those texels
face the camera and the relit render stretches them over many pixels: grace_hopper's glasses' arms became broad
light bands across the near cheek of the turning head scan at 45 degrees (samples/turning_head.py).

Per vertex and frame, the *stretch* is how much more squarely the plate's driven mesh faces its camera than the
photo's mesh faced the photo's: ``facing_plate / facing_photo``, facing being the cosine between the vertex normal
and the view axis. A photo's texels are taken from the better of a vertex and its mirror image (the relit albedo
fills what one side of the face hides from the other side, :func:`~vidswap.appearance.source.mirror_fill`), and
over several photos from the best one. Where the stretch passes ``limit`` the source's detail fades to plain skin
(the detail layer's 1: the plate's light on the source's skin tone), fully at twice ``limit`` (smoothstep): the
render interpolates each vertex's :func:`detail_keep` over the driven mesh and fades the sampled detail by it pixel
by pixel (:func:`~vidswap.appearance.texture.render_texture`'s ``vertex_keep``). A plate that faces its camera
as the photo faced its own stretches nothing: its render is the same to the last bit (the slight turns of filmed
plates fade a few vertices at the photo's silhouette).

Shapes: meshes (B, V, 3) in image pixels (x right, y down, z away from the camera: a frontal face's normals
point to negative z), per-vertex values (B, V).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidswap.appearance.texture_space import vertex_normals
from vidswap.composite.filters import smoothstep

__all__ = ["STRETCH_LIMIT", "vertex_facing", "photo_facing", "detail_keep"]

#: the stretch from which the source's detail starts to fade (it is gone at twice this)
STRETCH_LIMIT = 1.5
#: the least facing a photo's vertex is credited with (a vertex at the photo's silhouette or behind it)
_MIN_FACING = 0.05


def vertex_facing(verts: Tensor, triangles: Tensor) -> Tensor:
    """How squarely each vertex faces the camera: the cosine between its normal and the view axis, 0 for a
    vertex seen edge-on or from behind. (B, V, 3) -> (B, V) in [0, 1]."""
    return (-vertex_normals(verts, triangles)[..., 2]).clamp(min=0.0, max=1.0)


def photo_facing(landmarks: Tensor, triangles: Tensor, mirror: Tensor) -> Tensor:
    """How squarely the source photos saw each vertex or its mirror image, the best over the photos: landmarks
    (K, V, 3) in the photos' (crop) pixels, ``mirror`` (V,) each vertex's mirror image -> (V,) in [0, 1]."""
    facing = vertex_facing(landmarks.float(), triangles)
    facing = torch.maximum(facing, facing[:, mirror.to(facing.device)])
    return facing.amax(0)


def detail_keep(plate_facing: Tensor, source_facing: Tensor, limit: float = STRETCH_LIMIT) -> Tensor:
    """How much of the source's detail each vertex keeps: 1 up to a stretch (``plate_facing / source_facing``,
    (B, V) over (V,)) of ``limit``, 0 from twice ``limit`` (smoothstep). -> (B, V); all 1 for ``limit`` <= 0."""
    if limit <= 0:
        return torch.ones_like(plate_facing)
    stretch = plate_facing / source_facing.to(plate_facing).clamp(min=_MIN_FACING)[None]
    return 1.0 - smoothstep((stretch - limit) / limit)
