"""The swap-core plug-in interface and the geometric (reenactment + texture render) swap core.

A swap core turns aligned target face crops plus a prepared source identity into swapped face crops with an
alpha. Every core implements :class:`SwapCore` (``prepare`` once per source identity, ``swap`` per batch of
crops), so learned swappers plug in beside :class:`GeometricSwapCore` without the pipeline changing.

Coordinates: crops are square, ``S`` pixels, pixel centres at integer coordinates; landmarks are (478, 3)
MediaPipe-layout points in the crop's pixels with z in the same pixel scale (smaller z = closer). Pose fields
follow :mod:`vidswap.faces.pose`: ``x = s · R · (x_c + δ) + t`` maps the canonical frame to crop pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.swap.reenact import (
    INNER_REGIONS,
    canonical_from_landmarks,
    combine_sources,
    driven_geometry,
    hole_triangles,
    inner_loops,
    inner_mask,
    mix_shape,
)
from vidswap.swap.render import render_texture, texture_confidence

__all__ = [
    "SourceFace",
    "SourceIdentity",
    "SwapBatch",
    "SwapResult",
    "SwapCore",
    "GeometricSwapConfig",
    "GeometricSwapCore",
    "crop_frame_from_landmarks",
    "transform_landmarks",
    "warp_to_crop",
    "EYE_CORNERS",
]

#: (outer, inner) eye-corner landmarks of the subject's right eye (image left) and left eye (image right)
EYE_CORNERS: tuple[tuple[int, int], tuple[int, int]] = ((33, 133), (263, 362))
#: height of the canonical face mesh in units of its RMS radius (vidswap.faces.pose canonical frame: ~3.26)
FACE_HEIGHT_RMS = 3.3


# ---------------------------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class SourceFace:
    """One source photo as the analysis stages describe it.

    Attributes:
        image: (3, H, W) float tensor (any range; the render copies values through).
        landmarks: (478, 3) in the image's pixels.
        x_c_obs: (478, 3) the observation in the canonical frame (``Pose.x_c_obs``).
        yaw, pitch, roll: head pose in degrees (:mod:`vidswap.faces.pose` convention).
        embedding: (D,) identity embedding, or None.
        expression: (478, 3) expression offset δ of this photo if known (canonical units), else None.
    """

    image: Tensor
    landmarks: Tensor
    x_c_obs: Tensor
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    embedding: Tensor | None = None
    expression: Tensor | None = None


@dataclass
class SourceIdentity:
    """A prepared source identity (output of :meth:`SwapCore.prepare`).

    Attributes:
        images: (K, 3, H, W) the source photos as aligned texture crops.
        landmarks: (K, 478, 3) landmarks in those crops' pixels.
        canonical: (478, 3) the identity's shape in the canonical frame.
        texture_index: which of the K photos textures the swap.
        embedding: (D,) mean identity embedding (L2-normalised), or None.
        vertex_confidence: (K, 478) per-landmark texture confidence of each photo (self-occlusion, facing),
            or None (then everything counts as visible).
        texture_validity: (K, 1, H, W) in [0, 1]: 0 where the photo's forehead is covered (a fringe of hair),
            so the render leaves the plate's own forehead there; None: all valid.
    """

    images: Tensor
    landmarks: Tensor
    canonical: Tensor
    texture_index: int = 0
    embedding: Tensor | None = None
    vertex_confidence: Tensor | None = None
    texture_validity: Tensor | None = None


@dataclass
class SwapBatch:
    """B aligned target face crops and their analysis.

    Attributes:
        target_crops: (B, 3, S, S) aligned target crops.
        target_landmarks: (B, 478, 3) in crop pixels.
        s: (B,), R: (B, 3, 3), t: (B, 3): pose, canonical -> crop pixels.
        expression: (B, 478, 3) expression offsets δ (canonical units).
        confidence: (B,) landmark / track confidence in [0, 1].
    """

    target_crops: Tensor
    target_landmarks: Tensor
    s: Tensor
    R: Tensor
    t: Tensor
    expression: Tensor
    confidence: Tensor


@dataclass
class SwapResult:
    """Swapped crops.

    Attributes:
        crops: (B, 3, S, S) swapped face crops (the rendered source face; undefined where alpha is 0).
        alpha: (B, 1, S, S) in [0, 1]: where the crop replaces the plate (holes at the inner regions when the
            plate's eyes and mouth are kept).
        driven_landmarks: (B, 478, 3) the swapped face's landmarks in crop pixels.
        confidence: (B, 1, S, S) texture confidence (low where the source photo did not see the surface), or None.
    """

    crops: Tensor
    alpha: Tensor
    driven_landmarks: Tensor
    confidence: Tensor | None = None


@runtime_checkable
class SwapCore(Protocol):
    """What every swap core implements."""

    def prepare(self, sources: list[SourceFace]) -> SourceIdentity:
        """Turn one or more source photos of one actor into a reusable identity (once per job)."""
        ...

    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        """Swap a batch of aligned target crops (batched on the torch device of the batch / config)."""
        ...


# ---------------------------------------------------------------------------------------------------------------
# crop frames
# ---------------------------------------------------------------------------------------------------------------

def crop_frame_from_landmarks(
    landmarks: Tensor,
    size: int,
    margin: float = 0.2,
    *,
    eye_corners: tuple[Sequence[int], Sequence[int]] = EYE_CORNERS,
) -> Tensor:
    """Similarity frame -> crop for aligned face crops: eye line horizontal, face centred, pose-stable scale.

    * rotation: the line from the image-left eye (mean of ``eye_corners[0]``) to the other eye becomes +x;
    * centre: the mean of the 468 mesh points (the canonical origin) lands on the crop centre ``(S-1)/2``;
    * scale: from the 3D RMS radius of the mesh, which does not change with head rotation, so the crop does not
      zoom when the head turns: the face height (``FACE_HEIGHT_RMS`` radii) times ``1 + 2 * margin`` fills ``S``.

    Args:
        landmarks: (B, N, 3) frame pixels (N = 478 or 468; z in pixel scale).
        size: crop side S.
        margin: extra border on each side as a fraction of the face height.
        eye_corners: landmark indices of the two eyes.

    Returns:
        (B, 2, 3) float32 affine matrices frame -> crop (OpenCV ``warpAffine`` convention).
    """
    x = landmarks.float()
    mesh = x[:, :468, :3]
    centre = mesh.mean(1)  # (B, 3)
    rms = ((mesh - centre[:, None]) ** 2).sum(-1).mean(-1).sqrt().clamp(min=1e-6)
    eye_a = x[:, list(eye_corners[0]), :2].mean(1)
    eye_b = x[:, list(eye_corners[1]), :2].mean(1)
    d = eye_b - eye_a
    ang = torch.atan2(d[:, 1], d[:, 0])
    k = size / (FACE_HEIGHT_RMS * rms * (1.0 + 2.0 * margin))
    c, s = torch.cos(ang) * k, torch.sin(ang) * k
    A = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], 1)  # k * R(-ang)
    b = (size - 1) / 2.0 - torch.einsum("bij,bj->bi", A, centre[:, :2])
    return torch.cat([A, b[..., None]], -1)


def transform_landmarks(points: Tensor, affine: Tensor) -> Tensor:
    """Apply (..., 2, 3) similarity matrices to (..., N, 2 or 3) points.

    x, y are mapped by the affine; z (if present) is multiplied by the matrix's scale ``sqrt(|det A|)`` so that
    depth stays in the same pixel scale as x and y.
    """
    A = affine[..., :2].to(points.dtype)
    b = affine[..., 2].to(points.dtype)
    xy = points[..., :2] @ A.transpose(-1, -2) + b[..., None, :]
    if points.shape[-1] == 2:
        return xy
    scale = torch.linalg.det(A).abs().sqrt()
    return torch.cat([xy, points[..., 2:] * scale[..., None, None]], -1)


def warp_to_crop(images: Tensor, affine: Tensor, size: int | tuple[int, int],
                 padding_mode: str = "border") -> Tensor:
    """Affine crops (kornia ``warp_affine``, pixel centres at integer coordinates) with anti-aliasing.

    When the crop shrinks the image by more than 2x, the image is first halved with 2x2 box filters (and the
    matrices adjusted) until it does not, so small crops of big photos do not alias.

    Args:
        images: (B, C, H, W) float.
        affine: (B, 2, 3) image -> crop.
        size: crop side or (h, w).

    Returns:
        (B, C, h, w).
    """
    from kornia.geometry.transform import warp_affine

    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    m = affine.to(device=images.device, dtype=torch.float32).clone()
    img = images.float()
    while True:
        scale = float(torch.linalg.det(m[:, :, :2]).abs().sqrt().max())
        if scale >= 0.5 or min(img.shape[-2:]) < 4:
            break
        img = F.avg_pool2d(img, 2, ceil_mode=True)
        # a pixel x of the halved image is at 2x + 0.5 in the previous one
        m[:, :, 2] = m[:, :, 2] + 0.5 * m[:, :, :2].sum(-1)
        m[:, :, :2] = m[:, :, :2] * 2.0
    out = warp_affine(img, m, (h, w), mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return out.to(images.dtype)


# ---------------------------------------------------------------------------------------------------------------
# the geometric swap core
# ---------------------------------------------------------------------------------------------------------------

FOREHEAD_REGIONS = {"face_oval", "left_eye", "right_eye", "left_brow", "right_brow", "nose", "lips_outer"}


def forehead_validity(images: Tensor, landmarks: Tensor, regions, ramp: float = 0.04, keep_below: float = 2.5,
                      drop_above: float = 4.0) -> Tensor:
    """Where a source photo's forehead texture can be used: (K, 3, H, W) crops + (K, 478, 3) landmarks ->
    (K, 1, H, W) in [0, 1].

    A fringe of hair over the forehead would be painted onto the plate as a brown band. The skin-colour
    occlusion test of the compositor (:func:`~vidswap.composite.masks.occlusion_visibility`, skin model fitted
    on the photo's own cheeks and nose) marks what is not skin; only the part above the brows counts (glasses,
    beards and make-up below them belong to the identity), fading in over ``ramp`` x the face size. A still
    photo has no temporal noise, so the test is stricter than on the plate (``keep_below``/``drop_above``
    Mahalanobis distances, no extra luma slack).
    """
    from vidswap.composite.compositor import CompositeParams, build_masks
    from vidswap.composite.masks import OcclusionParams

    params = CompositeParams(occlusion=OcclusionParams(keep_below=keep_below, drop_above=drop_above,
                                                       luma_slack=1.0))
    masks = build_masks(images.clamp(0.0, 1.0), landmarks, regions, params)
    brows = np.concatenate([np.asarray(regions["left_brow"]), np.asarray(regions["right_brow"])])
    top = landmarks[:, torch.as_tensor(brows, device=landmarks.device), 1].amin(dim=1)  # (K,) brow tops
    rows = torch.arange(images.shape[-2], device=images.device, dtype=torch.float32)
    width = (ramp * masks.size).clamp(min=1.0)
    above = ((top[:, None] - rows[None]) / width[:, None]).clamp(0.0, 1.0)  # (K, H): 1 above the brows
    return 1.0 - (1.0 - masks.visibility) * above[:, None, :, None]


@dataclass(frozen=True)
class GeometricSwapConfig:
    """Settings of :class:`GeometricSwapCore`.

    Attributes:
        shape: whose face shape: ``source``, ``target`` or ``blend`` (:func:`vidswap.swap.reenact.mix_shape`).
        shape_weight: with ``blend``, the weight of the source shape.
        inner: ``target`` keeps the plate's eye interiors and mouth interior (holes in the alpha), ``source``
            renders the source photo's own (the mesh holes are closed with fan triangles).
        inner_contour: with ``inner: target``, which eye/mouth outlines cut the holes: the ``driven`` ones, the
            plate's (``target``) or their ``union`` (shows all of the plate's eye; where the outlines differ
            the plate's lid shows rather than a static copy of the source's eye).
        inner_grow: hole dilation in pixels at crop size 256 (scaled with the crop).
        inner_feather: hole softening (Gaussian sigma) in pixels at crop size 256.
        crop_size: side of the aligned crops the pipeline makes (the render follows the batch's crops).
        texture_size: side of the aligned source texture crops made by ``prepare`` (None: 1.25 x crop_size,
            rounded to 32 -- a little denser than the output, so sampling it neither blurs nor aliases).
        texture_margin: margin of those crops (fraction of the face height per side).
        supersample: render at this factor and box-filter (1 = 1-px alpha feather only).
        mirror_fill: take texture hidden in the source photo from the mirrored side of the face.
        source_occlusion: leave out what covers the source photo's forehead (hair: a skin-colour test above the
            brows, :func:`forehead_validity`); the plate's forehead shows there instead.
        neutralize_source: subtract the source photos' own expression (``SourceFace.expression``) from their
            shapes.
        mix_shape_source, mix_texture_source, mix_weight: identity mixing (MFIM-style) across the source photos
            of two people: the face shape from photo ``mix_shape_source`` (blended with the texture photo's own
            shape: ``mix_weight`` 1 = all of the shape source), the texture (skin, eyes, brows, mouth) from
            photo ``mix_texture_source``. None: the photos are one person, combined by ``combine_sources``.
        device: torch device for ``prepare``'s outputs (None: the sources' device); ``swap`` runs on the
            batch's device.
    """

    shape: Literal["source", "target", "blend"] = "source"
    shape_weight: float = 0.5
    inner: Literal["target", "source"] = "target"
    inner_contour: Literal["union", "driven", "target"] = "union"
    inner_grow: float = 1.0
    inner_feather: float = 1.0
    crop_size: int = 256
    texture_size: int | None = None
    texture_margin: float = 0.25
    supersample: int = 1
    mirror_fill: bool = True
    source_occlusion: bool = True
    neutralize_source: bool = False
    mix_shape_source: int | None = None
    mix_texture_source: int | None = None
    mix_weight: float = 1.0
    device: str | None = None

    @classmethod
    def from_config(cls, swap_config: Any, **overrides: Any) -> "GeometricSwapConfig":
        """From the job config's ``swap`` section (``vidswap.config.SwapConfig``) plus keyword overrides."""
        names = {f for f in cls.__dataclass_fields__}
        kw = {n: getattr(swap_config, n) for n in names if hasattr(swap_config, n)}
        kw.update(overrides)
        return cls(**kw)


def mixed_identity(shapes: Tensor, shape_source: int | None, texture_source: int | None, weight: float,
                   default_texture: int) -> tuple[Tensor, int]:
    """Identity mixing: ``(K, V, 3)`` canonical shapes -> (shape, texture index).

    The shape is ``weight · shapes[shape_source] + (1 - weight) · shapes[texture]``; the texture photo is
    ``texture_source`` (default ``default_texture``). Out-of-range indices are a ValueError.
    """
    k = shapes.shape[0]
    texture = default_texture if texture_source is None else int(texture_source)
    shape = texture if shape_source is None else int(shape_source)
    for name, idx in (("mix_shape_source", shape), ("mix_texture_source", texture)):
        if not 0 <= idx < k:
            raise ValueError(f"{name} {idx} is out of range: {k} source photo(s)")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"mix_weight must be in [0, 1], got {weight}")
    return weight * shapes[shape] + (1.0 - weight) * shapes[texture], texture


class GeometricSwapCore:
    """Reenact the source's 3D landmark mesh with the target's pose and expression and render the source photo's
    texture on it (:func:`vidswap.swap.render.render_texture`). No learned weights; deterministic.

    Args:
        config: :class:`GeometricSwapConfig`.
        topology: object with ``triangles`` (T, 3), ``regions`` (name -> index loop) and ``mirror`` (478,)
            (a :class:`vidswap.faces.topology.MeshTopology`); default :func:`vidswap.faces.topology.load_topology`.
    """

    def __init__(self, config: GeometricSwapConfig | None = None, topology: Any = None):
        self.config = config or GeometricSwapConfig()
        if self.config.shape not in ("source", "target", "blend"):
            raise ValueError(f"shape must be source, target or blend, got {self.config.shape!r}")
        if self.config.inner not in ("target", "source"):
            raise ValueError(f"inner must be target or source, got {self.config.inner!r}")
        if topology is None:
            from vidswap.faces.topology import load_topology

            topology = load_topology()
        self.topology_regions = topology.regions
        self.triangles = torch.as_tensor(topology.triangles, dtype=torch.long)
        self.regions = {k: torch.as_tensor(v, dtype=torch.long) for k, v in topology.regions.items()}
        self.mirror = torch.as_tensor(topology.mirror, dtype=torch.long)
        self.loops = inner_loops(self.regions, INNER_REGIONS)
        # with inner: source the eye and mouth openings are rendered too
        self.render_triangles = self.triangles if self.config.inner == "target" else \
            torch.cat([self.triangles, hole_triangles(self.loops)], 0)

    # -- prepare ------------------------------------------------------------------------------------------------
    def prepare(self, sources: list[SourceFace]) -> SourceIdentity:
        if not sources:
            raise ValueError("prepare: no source faces")
        cfg = self.config
        device = torch.device(cfg.device) if cfg.device else sources[0].image.device
        T = cfg.texture_size or max(32, int(round(1.25 * cfg.crop_size / 32)) * 32)
        crops, lms, shapes = [], [], []
        for src in sources:
            img = src.image.to(device)
            lm = src.landmarks.to(device=device, dtype=torch.float32)
            m = crop_frame_from_landmarks(lm[None], T, cfg.texture_margin)
            crops.append(warp_to_crop(img[None].float(), m, T)[0])
            lms.append(transform_landmarks(lm[None], m)[0])
            shape = src.x_c_obs.to(device=device, dtype=torch.float32)
            if cfg.neutralize_source and src.expression is not None:
                shape = shape - src.expression.to(device=device, dtype=torch.float32)
            shapes.append(shape)
        images = torch.stack(crops)
        landmarks = torch.stack(lms)
        energy = None
        if all(s.expression is not None for s in sources) and not cfg.neutralize_source:
            energy = torch.stack([(s.expression.to(device).float() ** 2).sum(-1).mean() for s in sources])
        canonical, best = combine_sources(torch.stack(shapes), [s.yaw for s in sources],
                                          [s.pitch for s in sources], energy)
        if cfg.mix_shape_source is not None or cfg.mix_texture_source is not None:
            canonical, best = mixed_identity(torch.stack(shapes), cfg.mix_shape_source, cfg.mix_texture_source,
                                             cfg.mix_weight, best)
        vconf = texture_confidence(landmarks, self.render_triangles.to(device), image_size=(T, T))
        # (a topology without the face regions, e.g. a reduced test mesh, has no forehead to test)
        validity = forehead_validity(images, landmarks, self.topology_regions) \
            if cfg.source_occlusion and FOREHEAD_REGIONS <= set(self.topology_regions) else None
        emb = None
        embs = [s.embedding for s in sources if s.embedding is not None]
        if embs:
            e = torch.stack([F.normalize(torch.as_tensor(x, dtype=torch.float32).reshape(-1), dim=0) for x in embs])
            emb = F.normalize(e.mean(0), dim=0).to(device)
        return SourceIdentity(images=images, landmarks=landmarks, canonical=canonical, texture_index=best,
                              embedding=emb, vertex_confidence=vconf, texture_validity=validity)

    # -- swap ---------------------------------------------------------------------------------------------------
    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        cfg = self.config
        device = batch.target_crops.device
        S = int(batch.target_crops.shape[-1])
        H = int(batch.target_crops.shape[-2])
        s = batch.s.to(device=device, dtype=torch.float32)
        R = batch.R.to(device=device, dtype=torch.float32)
        t = batch.t.to(device=device, dtype=torch.float32)
        delta = batch.expression.to(device=device, dtype=torch.float32)
        tgt_lm = batch.target_landmarks.to(device=device, dtype=torch.float32)

        src_c = identity.canonical.to(device=device, dtype=torch.float32)[None]
        if cfg.shape == "source":
            x_c = src_c
        else:
            tgt_c = canonical_from_landmarks(tgt_lm, s, R, t) - delta
            x_c = mix_shape(src_c, tgt_c, cfg.shape, cfg.shape_weight)
        driven = driven_geometry(x_c, delta, s, R, t)

        k = identity.texture_index
        tex = identity.images[k:k + 1].to(device)
        if identity.texture_validity is not None:  # rendered as a 4th channel: it follows the texture exactly
            tex = torch.cat([tex, identity.texture_validity[k:k + 1].to(device=device, dtype=tex.dtype)], 1)
        uv = identity.landmarks[k:k + 1].to(device)
        vconf = None if identity.vertex_confidence is None else identity.vertex_confidence[k:k + 1].to(device)
        tri = self.render_triangles.to(device)
        crops, alpha, conf = render_texture(
            tex, uv, driven, tri, (H, S), mirror=self.mirror.to(device) if cfg.mirror_fill else None,
            vertex_confidence=vconf, supersample=cfg.supersample, return_confidence=True)
        if identity.texture_validity is not None:
            crops, alpha = crops[:, :3], alpha * crops[:, 3:4].clamp(0.0, 1.0)

        if cfg.inner == "target":
            px = S / 256.0
            loops = [lp.to(device) for lp in self.loops]
            kw = dict(grow=cfg.inner_grow * px, feather=cfg.inner_feather * px)
            if cfg.inner_contour == "driven":
                hole = inner_mask(driven, loops, (H, S), **kw)
            elif cfg.inner_contour == "target":
                hole = inner_mask(tgt_lm, loops, (H, S), **kw)
            else:  # union: both outlines filled in one pass
                V = driven.shape[1]
                both = torch.cat([driven[..., :2], tgt_lm[..., :2]], 1)
                hole = inner_mask(both, loops + [lp + V for lp in loops], (H, S), **kw)
            alpha = alpha * (1.0 - hole)
        return SwapResult(crops=crops.to(batch.target_crops.dtype), alpha=alpha, driven_landmarks=driven,
                          confidence=conf)
