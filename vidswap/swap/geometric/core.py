"""The geometric swap core: reenact the source's 3D landmark mesh with the target's pose and expression and render
the source photo's texture on it. No learned weights; deterministic. Registered as ``geometric`` (the default).

Its crop is the mesh crop (:class:`~vidswap.faces.align.MeshCrop`: eye line level, pose-stable scale); its
identity (:class:`GeometricIdentity`) holds aligned texture crops of the source photos, their landmarks and the
identity's canonical shape. Conventions: :mod:`vidswap.swap.base`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.appearance.relight import PlateLight, RelightParams
from vidswap.appearance.skin_tone import SkinToneParams
from vidswap.appearance.source import AlbedoParams
from vidswap.appearance.track import TrackAppearance
from vidswap.faces.pose import canonical_face
from vidswap.faces.align import MeshCrop, face_height, transform_landmarks
from vidswap.faces.topology import MeshTopology, load_topology
from vidswap.faces.tracksfile import TrackAnalysis
from vidswap.swap.base import SourceFace, SourceIdentity, SwapBatch, SwapCore, SwapResult
from vidswap.appearance.texture import render_texture, texture_confidence
from vidswap.swap.geometric.brow_rest import brow_region_weights, rest_brows
from vidswap.swap.geometric.plate_creases import frame_creases, frame_folds
from vidswap.swap.geometric.mouth_rest import (mouth_opening, mouth_region_weights, open_mouth_amount, rest_mouth,
                                               smile_amount)
from vidswap.swap.geometric.reenact import (INNER_REGIONS, canonical_from_landmarks, combine_sources, driven_geometry,
                                            hole_triangles, inner_loops, inner_mask, mix_shape)
from vidswap.swap.geometric.source_validity import crop_source, lens_cover, photo_validity
from vidswap.swap.geometric.relit import (RelitRenderer, auto_crop_size, downsize_albedo, eye_openness, render_side,
                                          source_texture_size)

__all__ = ["GeometricIdentity", "GeometricSwapConfig", "GeometricSwapCore", "mixed_identity"]


@dataclass(kw_only=True)
class GeometricIdentity(SourceIdentity):
    """The geometric core's prepared identity.

    Attributes:
        images: (K, 3, T, T) the source photos as aligned texture crops.
        landmarks: (K, 478, 3) landmarks in those crops' pixels.
        canonical: (478, 3) the identity's shape in the canonical frame.
        texture_index: which of the K photos textures the swap.
        vertex_confidence: (K, 478) per-landmark texture confidence of each photo (self-occlusion, facing),
            or None (then everything counts as visible).
        texture_validity: (K, 1, T, T) in [0, 1]: 0 where the photo's forehead is covered (a fringe of hair),
            so the render leaves the plate's own forehead there; None: all valid.
        albedo: (1, 4, U, U) with ``appearance: relit``: the photos' de-lit albedo detail in texture space and how
            much of each texel is the source's (:mod:`vidswap.swap.geometric.relit`); None otherwise. Before
            :meth:`for_target`, a fifth channel where the photos' removed eyewear hid the face (the track fills it).
        eye_openness: (2,) with ``appearance: relit``: the photos' mean eye openness (lid gap / eye width, the
            subject's left and right eye): a plate eye closing below it shows its own lids.
        edge_blur: (1,) with ``appearance: relit``: the photos' sharpness, the blur of the edges around their faces
            as a fraction of the face height (NaN when unknown): the render is blurred to the plate's.
        plate_light: the target track's light (set by :meth:`GeometricSwapCore.for_target`), or None.
        render_size: (crop side, render side) set with ``plate_light`` when the track's plate is soft enough to
            render its crops smaller (``render_sigma``; ``albedo`` is then the downsized one), or None.
        embedding: (inherited) (D,) mean SFace embedding (L2-normalised), or None.
    """

    images: Tensor
    landmarks: Tensor
    canonical: Tensor
    texture_index: int = 0
    vertex_confidence: Tensor | None = None
    texture_validity: Tensor | None = None
    albedo: Tensor | None = None
    eye_openness: Tensor | None = None
    edge_blur: Tensor | None = None
    plate_light: PlateLight | None = None
    render_size: tuple[int, int] | None = None


#: regions the relit appearance reads (the driven mesh's follow weights, masks, the edges around the face)
RELIT_REGIONS = {"face_oval", "lips_outer", "lips_inner", "left_eye", "right_eye", "left_brow", "right_brow"}


@dataclass(frozen=True)
class GeometricSwapConfig:
    """Settings of :class:`GeometricSwapCore`.

    Attributes:
        appearance: ``relit`` (default): the source's de-lit albedo under the plate's own light, per frame, with
            the plate's lip and eye contours (:mod:`vidswap.swap.geometric.relit`); ``texture``: the source photo's
            texture as it is (colour-matched by the compositor), the core's behaviour before relighting.
        shape: whose face shape: ``source``, ``target`` or ``blend`` (:func:`vidswap.swap.geometric.reenact.mix_shape`).
        shape_weight: with ``blend``, the weight of the source shape.
        inner: ``target`` keeps the plate's eye interiors and mouth interior (holes in the alpha), ``source``
            renders the source photo's own (the mesh holes are closed with fan triangles).
        inner_contour: with ``inner: target``, which eye/mouth outlines cut the holes: the ``driven`` ones, the
            plate's (``target``) or their ``union`` (shows all of the plate's eye; where the outlines differ
            the plate's lid shows rather than a static copy of the source's eye).
        inner_grow: hole dilation in pixels at crop size 256 (scaled with the crop).
        inner_feather: hole softening (Gaussian sigma) in pixels at crop size 256.
        crop_size: side of the aligned target crops: ``auto`` (default) renders each track at the plate's
            resolution of its face (its median face height with the margins, a multiple of 32 in [256, 1024]), or
            a fixed multiple of 32 in [64, 1024].
        crop_max: the largest side ``auto`` picks (a multiple of 32 in [256, 1024]; the preview preset caps it to
            render close-ups cheaply).
        crop_margin: border of the target crops on each side, as a fraction of the face height.
        render_sigma: with ``appearance: relit``, draw the render of a track whose plate is soft (its measured
            edge blur, from the analysis) at the smallest side (a multiple of 32, >= 128) where that blur still
            spans this many render pixels, and upsample it to the crop (detail the plate does not hold is not
            rendered; only when that saves at least a quarter of the side); 0: always at the crop's side.
        texture_size: side of the aligned source texture crops made by ``prepare`` (None: 1.25 x crop_size,
            rounded to 32, 256 for ``auto`` -- a little denser than the output, so sampling it neither blurs nor
            aliases).
        texture_margin: margin of those crops (fraction of the face height per side).
        supersample: render at this factor and box-filter (1 = 1-px alpha feather only).
        mirror_fill: take texture hidden in the source photo from the mirrored side of the face.
        source_occlusion: leave out what covers the source photo's face: hair over its forehead and temples (a
            skin-colour test above the brows, :func:`~.source_validity.forehead_validity`), hands (the photo's
            ``occlusion``, found by the source analysis) and opaque lenses (sunglasses,
            :func:`~vidswap.appearance.eyewear.dark_lenses`); the relit albedo takes those texels from the mirrored
            side or leaves the plate's skin, the texture render (also the relit core's on a track the analysis has
            no appearance model for) the plate.
        neutralize_source: subtract the source photos' own expression (``SourceFace.expression``) from their
            shapes, where the caller gives one (the CLI's source analysis does not: see ``relit_mouth_rest``).
        source_eyewear: with ``appearance: relit``, ``keep`` (default) paints the source photos' glasses on as
            they are; ``soften`` at half their contrast (rims and temples half refilled from the skin around them,
            lens glints and tint halved: the eval's landmark judge reads a full-contrast rim as open lids; on the
            sheets the glasses then look ghosted, hence not the default); ``remove`` takes them (rims, temples, lens glints and tint) out of the source albedo
            (:mod:`vidswap.appearance.eyewear`; a face without glasses is left as it is), the texels they hid taking
            the plate track's own fine detail. ``remove`` costs 0.05-0.06 ArcFace similarity to a photo that wears
            them (benchmarks/RESULTS.md, brows-s11 and the lead's s11 section); ``soften`` 0-0.015 (eyes-s12).
        relit_brows: with ``appearance: relit``, how much of the plate track's brow detail (on the source's tone) a
            source with faint brows takes, in proportion to how faint they are against the plate actor's (none
            when the source's brows are at least 0.6 x as dark, nor under a frame of glasses): the plate's frown and
            closing eyes show in its brows (:class:`~vidswap.appearance.relight.RelightParams` ``brow_borrow``). 0
            (default): off -- at 1 it meets the eye goal on pexels_clip x astronaut but costs 0.06 ArcFace on the
            other astronaut pairs (benchmarks/RESULTS.md, eyes-s12).
        relit_mouth_rest: with ``appearance: relit``, the reach (canonical units from the inner lip contour) over
            which a source photo with its lips apart (a smile with teeth, an open mouth) takes the plate track's
            neutral shape instead of its own, in proportion to how far apart they are
            (:mod:`vidswap.swap.geometric.mouth_rest`): the photo's expression is not added to the plate's. A photo
            with closed lips keeps its shape exactly. 0: off.
        relit_mouth_corners: with ``appearance: relit``, for such a photo whose open mouth is a smile, the width
            (fraction of the texture side) of the ring of skin around the mouth whose parts beside the corners take
            the source's own skin tone around them (a smile's corner creases). 0: off.
        relit_smile_folds: likewise, the width (fraction of the texture side) of the band along the nasolabial
            folds, from beside the nose's wings down past the mouth's corners, that takes the skin tone around it
            (:func:`~vidswap.swap.geometric.mouth_rest.fold_region`: the folds a smile deepens). 0: off.
        relit_brow_rest: with ``appearance: relit``, for a source photo that frowns (brows lowered and drawn
            together), how far (0-1) its brows and the skin between them go over to the plate track's rest
            (:mod:`vidswap.swap.geometric.brow_rest`): one photo cannot tell a frown from its person's brows, so
            the user says. 0 (default): the photo's brows as they are.
        relit_plate_creases: with ``appearance: relit``, how much of the plate's own furrows on the forehead and
            between the brows the render takes, on frames whose brows have moved from the track's neutral
            (:mod:`vidswap.swap.geometric.plate_creases`): the relit light is too broad to carry them, so a
            frowning or crying plate gave a calm face. 0.5 (default): at half their depth -- at full depth the
            plate actor's own furrows made the face read as the actor's (README). 0: off.
        relit_plate_folds: likewise, how much of the plate's own nasolabial folds (from beside the nose's wings
            down past the mouth's corners) the render takes, on frames whose mouth corners have moved from the
            track's neutral (a smile, a cry, speech): without them a grin or a cry sat on a calm face. 0.5
            (default): at half their depth, as the creases. 0: off.
        relit_plate_lips: with ``appearance: relit``, how much of the plate's own lips the render takes under the
            source's lip colour (:mod:`vidswap.swap.geometric.plate_lips`): their border where the plate draws it,
            their gloss and lines, so the photo's lipstick, highlights and teeth do not smear over them. 0: off.
        relit_stretch: with ``appearance: relit``, how much more squarely a turned plate may show a vertex than
            the photos saw it before their detail fades to plain skin (gone at twice it; :mod:`.view_stretch`). 0: off.
        mix_shape_source, mix_texture_source, mix_weight: identity mixing (MFIM-style) across the source photos
            of two people: the face shape from photo ``mix_shape_source`` (blended with the texture photo's own
            shape: ``mix_weight`` 1 = all of the shape source), the texture (skin, eyes, brows, mouth) from
            photo ``mix_texture_source``. None: the photos are one person, combined by ``combine_sources``.
    """

    appearance: Literal["relit", "texture"] = "relit"
    shape: Literal["source", "target", "blend"] = "source"
    shape_weight: float = 0.5
    inner: Literal["target", "source"] = "target"
    inner_contour: Literal["union", "driven", "target"] = "union"
    inner_grow: float = 1.0
    inner_feather: float = 1.0
    crop_size: int | Literal["auto"] = "auto"
    crop_max: int = 1024
    crop_margin: float = 0.2
    render_sigma: float = 2.0
    texture_size: int | None = None
    texture_margin: float = 0.25
    supersample: int = 1
    mirror_fill: bool = True
    source_occlusion: bool = True
    neutralize_source: bool = False
    mix_shape_source: int | None = None
    mix_texture_source: int | None = None
    mix_weight: float = 1.0
    relit_outline: float = 0.0
    relit_outline_match: float = 0.0
    relit_outline_detail: float = 0.095  # the relit ArcFace / the hand stretch's flicker balance (README, lead s14)
    relit_skin_tone: Literal["gain", "none"] = "none"
    source_eyewear: Literal["remove", "keep", "soften"] = "keep"
    relit_brows: float = 0.0
    relit_mouth_rest: float = 0.8
    relit_mouth_corners: float = 0.06
    relit_smile_folds: float = 0.025
    relit_brow_rest: float = 0.0
    relit_plate_creases: float = 0.5
    relit_plate_folds: float = 0.5
    relit_plate_lips: float = 1.0
    relit_stretch: float = 1.5

    def __post_init__(self) -> None:
        for key, value, allowed in (("appearance", self.appearance, ("relit", "texture")),
                                    ("shape", self.shape, ("source", "target", "blend")),
                                    ("inner", self.inner, ("target", "source")),
                                    ("inner_contour", self.inner_contour, ("union", "driven", "target")),
                                    ("relit_skin_tone", self.relit_skin_tone, ("gain", "none")),
                                    ("source_eyewear", self.source_eyewear, ("remove", "keep", "soften"))):
            if value not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
        if self.crop_size != "auto" and (not isinstance(self.crop_size, int) or self.crop_size % 32
                                         or not 64 <= self.crop_size <= 1024):
            raise ValueError(f"crop_size must be auto or a multiple of 32 in [64, 1024], got {self.crop_size!r}")
        if not isinstance(self.crop_max, int) or self.crop_max % 32 or not DEFAULT_CROP <= self.crop_max <= 1024:
            raise ValueError(f"crop_max must be a multiple of 32 in [{DEFAULT_CROP}, 1024], got {self.crop_max!r}")
        texture_side = "fraction of the texture side"
        for key, top, unit in (("render_sigma", 8.0, "render pixels; 0 = off"), ("mix_weight", 1.0, ""),
                               ("relit_outline_detail", 0.5, texture_side), ("relit_outline_match", 0.5, texture_side),
                               ("relit_mouth_rest", 2.0, "canonical units; 0 = off"),
                               ("relit_mouth_corners", 0.25, texture_side + "; 0 = off"),
                               ("relit_smile_folds", 0.1, texture_side + "; 0 = off"),
                               ("relit_brow_rest", 1.0, "0 = off"),
                               ("relit_plate_creases", 1.0, "0 = off"),
                               ("relit_plate_folds", 1.0, "0 = off"),
                               ("relit_plate_lips", 1.0, "0 = off"),
                               ("relit_stretch", 4.0, "0 = off"),
                               ("relit_outline", 0.25, texture_side)):
            value = getattr(self, key)
            if not 0.0 <= value <= top:
                raise ValueError(f"{key} must be in [0, {top:g}]{f' ({unit})' if unit else ''}, got {value}")

    @property
    def base_crop_size(self) -> int:
        """The crop side when no track is known (and the texture crops' reference): 256 for ``auto``."""
        return DEFAULT_CROP if self.crop_size == "auto" else int(self.crop_size)


#: the crop side of ``crop_size: auto`` when no track is known, and its smallest per-track side
DEFAULT_CROP = 256


def default_texture_size(crop_size: int) -> int:
    """Side of the source texture crops: 1.25 x the target crop, rounded to 32 (a little denser than the output,
    so sampling it neither blurs nor aliases)."""
    return max(32, int(round(1.25 * crop_size / 32)) * 32)


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


class GeometricSwapCore(SwapCore):
    """Reenact the source's 3D landmark mesh with the target's pose and expression and render the source photo's
    texture on it (:func:`vidswap.appearance.raster.render_texture`). No learned weights; deterministic.

    Args:
        config: :class:`GeometricSwapConfig`.
        topology: object with ``triangles`` (T, 3), ``regions`` (name -> index loop) and ``mirror`` (478,)
            (a :class:`vidswap.faces.topology.MeshTopology`); default :func:`vidswap.faces.topology.load_topology`.
        device: torch device of ``prepare``'s outputs (None: the sources' device); ``swap`` runs on the batch's
            device.
    """

    name = "geometric"
    needs = frozenset({"image", "landmarks", "pose", "embedding", "expression"})

    def __init__(self, config: GeometricSwapConfig | None = None, topology: MeshTopology | None = None,
                 device: torch.device | str | None = None):
        self.config = config or GeometricSwapConfig()
        self.device = torch.device(device) if device is not None else None
        self.crop = MeshCrop(size=self.config.base_crop_size, margin=self.config.crop_margin)
        if topology is None:
            topology = load_topology()
        if self.config.appearance == "relit" and not RELIT_REGIONS <= set(topology.regions):
            raise ValueError(f"appearance relit needs the face mesh's regions {sorted(RELIT_REGIONS)}; this topology "
                             f"has {sorted(topology.regions)} (use appearance: texture)")
        self.relit = (RelitRenderer(topology, relight=RelightParams(outline=self.config.relit_outline,
                                                                    outline_match=self.config.relit_outline_match,
                                                                    outline_detail=self.config.relit_outline_detail,
                                                                    brow_borrow=self.config.relit_brows),
                                    skin_tone=SkinToneParams(method=self.config.relit_skin_tone),
                                    albedo=AlbedoParams(leave_out_lenses=self.config.source_occlusion),
                                    eyewear=self.config.source_eyewear)
                      if self.config.appearance == "relit" else None)
        self.topology_regions = topology.regions
        self.mouth_weights = mouth_region_weights(canonical_face(), topology.regions["lips_inner"],
                                                  self.config.relit_mouth_rest) if self.relit is not None else None
        self.triangles = torch.as_tensor(topology.triangles, dtype=torch.long)
        self.regions = {k: torch.as_tensor(v, dtype=torch.long) for k, v in topology.regions.items()}
        self.brow_weights = None if self.relit is None else brow_region_weights(  # (a reduced test mesh: no brows)
            canonical_face(), torch.cat([self.regions["left_brow"], self.regions["right_brow"]]),
            torch.cat([self.regions["left_eye"], self.regions["right_eye"]]))
        self.mirror = torch.as_tensor(topology.mirror, dtype=torch.long)
        self.loops = inner_loops(self.regions, INNER_REGIONS)
        # with inner: source the eye and mouth openings are rendered too
        self.render_triangles = self.triangles if self.config.inner == "target" else \
            torch.cat([self.triangles, hole_triangles(self.loops)], 0)

    # -- prepare ------------------------------------------------------------------------------------------------
    def prepare(self, sources: list[SourceFace]) -> GeometricIdentity:
        if not sources:
            raise ValueError("prepare: no source faces")
        cfg = self.config
        device = self.device or sources[0].image.device
        texture = MeshCrop(size=cfg.texture_size or default_texture_size(cfg.base_crop_size),
                           margin=cfg.texture_margin)
        T = texture.size
        crops, covers, lms, shapes = [], [], [], []
        for src in sources:
            lm = src.landmarks.to(device=device, dtype=torch.float32)
            m = texture.frame_to_crop(lm[None])
            crop, covered = crop_source(src, m, T, device)
            crops.append(crop)
            covers.append(covered)
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
        covered = torch.stack(covers)
        if cfg.source_occlusion and RELIT_REGIONS <= set(self.topology_regions):
            # for the texture render: the texture appearance's, and the relit one's on a track without a model
            lenses = lens_cover(images, landmarks, self.triangles, self.topology_regions)
            covered = covered if lenses is None else torch.maximum(covered, lenses)
        validity = photo_validity(images, landmarks, covered, self.topology_regions) if cfg.source_occlusion else None
        emb = None
        embs = [s.embedding for s in sources if s.embedding is not None]
        if embs:
            e = torch.stack([F.normalize(torch.as_tensor(x, dtype=torch.float32).reshape(-1), dim=0) for x in embs])
            emb = F.normalize(e.mean(0), dim=0).to(device)
        albedo = eyes = blur = None
        if self.relit is not None:
            albedo, blur = self._relit_albedo(sources, device)
            eyes = eye_openness(torch.stack([s.landmarks.to(device).float() for s in sources])).mean(0)
        return GeometricIdentity(images=images, landmarks=landmarks, canonical=canonical, texture_index=best,
                                 embedding=emb, vertex_confidence=vconf, texture_validity=validity, albedo=albedo,
                                 eye_openness=eyes, edge_blur=blur)

    def _relit_albedo(self, sources: list[SourceFace], device: torch.device) -> tuple[Tensor, Tensor]:
        """The relit albedo of the photos (from crops sized to their resolution; see :mod:`.relit`) and their
        edge blur relative to the face height."""
        lms = torch.stack([s.landmarks.to(device=device, dtype=torch.float32) for s in sources])
        heights = face_height(lms)
        U = source_texture_size(float(heights.max()))
        crop = MeshCrop(size=32 * math.ceil(1.5 * U / 32), margin=self.config.texture_margin)
        m = crop.frame_to_crop(lms)
        crops, covered = (torch.stack(c) for c in zip(*(crop_source(s, m[k:k + 1], crop.size, device)
                                                         for k, s in enumerate(sources))))
        landmarks = transform_landmarks(lms, m)
        validity = photo_validity(crops, landmarks, covered, self.topology_regions) \
            if self.config.source_occlusion else None
        return self.relit.source_albedo(crops, landmarks, validity, heights)

    # -- per target ---------------------------------------------------------------------------------------------
    def crop_for(self, track: TrackAnalysis) -> MeshCrop:
        """``crop_size: auto``: the track's median face height at the plate's resolution; else the fixed crop."""
        if self.config.crop_size != "auto" or not len(track.smoothed):
            return self.crop
        height = float(face_height(torch.from_numpy(track.smoothed)).median())
        return MeshCrop(size=auto_crop_size(height, self.config.crop_margin, lo=DEFAULT_CROP, hi=self.config.crop_max),
                        margin=self.config.crop_margin)

    def for_target(self, identity: GeometricIdentity, track: TrackAnalysis) -> GeometricIdentity:
        """With ``appearance: relit``, the identity with the track's light (tracks the analysis has no appearance
        model for -- too little of the face seen -- render with the plain texture) and, for a source photo with
        its lips apart, the mouth region of its shape at the track's rest (:meth:`_mouth_at_rest`); with
        ``relit_brow_rest``, its brows too (:mod:`.brow_rest`)."""
        model = TrackAppearance.from_arrays(track.appearance)
        if self.relit is None or identity.albedo is None or model is None:
            return identity
        shape, lips = identity.canonical.float(), self.regions["lips_inner"]
        identity = self._mouth_at_rest(identity, track, float(open_mouth_amount(mouth_opening(shape, lips))))
        identity = self._brows_at_rest(identity, track)
        device = identity.albedo.device
        pick = np.linspace(0, len(track.smoothed) - 1, min(16, len(track.smoothed))).round().astype(int)
        landmarks = torch.from_numpy(track.smoothed[pick])
        albedo = self.relit.track_albedo(identity.albedo, model, landmarks)
        albedo = self.relit.corners_at_rest(albedo, float(smile_amount(shape, lips)), self.config.relit_mouth_corners,
                                            self.config.relit_smile_folds)
        albedo = self.relit.glabella_at_rest(albedo, model, landmarks, self.config.relit_brow_rest)
        crop = self.crop_for(track).size  # the plate's blur in its crops (face height = side / (1 + 2 margin))
        sigma = float(np.asarray(model.edge_blur, np.float64).reshape(-1)[0]) * crop / (1 + 2 * self.config.crop_margin)
        side = render_side(crop, sigma, self.config.render_sigma)
        size = None
        if side < crop:
            albedo, size = downsize_albedo(albedo, side / crop), (crop, side)
        return replace(identity, albedo=albedo, plate_light=self.relit.plate_light(model, device), render_size=size)

    def _mouth_at_rest(self, identity: GeometricIdentity, track: TrackAnalysis, amount: float) -> GeometricIdentity:
        """The identity whose shape, within ``relit_mouth_rest`` of the lips, goes over to the track's neutral shape
        by ``amount``, how far the source's lips are apart (:mod:`.mouth_rest`); the identity itself at 0."""
        shape = identity.canonical
        neutral = torch.as_tensor(np.asarray(track.neutral), dtype=shape.dtype, device=shape.device)
        rested = rest_mouth(shape, neutral, self.mouth_weights.to(shape.device), amount)
        return identity if rested is shape else replace(identity, canonical=rested)

    def _brows_at_rest(self, identity: GeometricIdentity, track: TrackAnalysis) -> GeometricIdentity:
        """The identity whose brows take the form of the track's neutral ones by ``relit_brow_rest``
        (:func:`~.brow_rest.rest_brows`); the identity itself at 0."""
        amount, shape = self.config.relit_brow_rest, identity.canonical
        if amount <= 0:
            return identity
        neutral = torch.as_tensor(np.asarray(track.neutral), dtype=shape.dtype, device=shape.device)
        return replace(identity, canonical=rest_brows(shape, neutral, self.brow_weights.to(shape.device), amount,
                                                      self.regions["left_brow"], self.regions["right_brow"]))

    # -- swap ---------------------------------------------------------------------------------------------------
    def swap(self, batch: SwapBatch, identity: GeometricIdentity) -> SwapResult:
        if self.relit is not None and identity.albedo is not None and identity.plate_light is not None:
            return self._swap_relit(batch, identity)
        return self._swap_texture(batch, identity)

    def _driven(self, batch: SwapBatch, identity: GeometricIdentity) -> Tensor:
        """The driven mesh: the identity's shape (mixed per ``shape``) with the target's pose and expression."""
        cfg = self.config
        device = batch.target_crops.device
        s = batch.s.to(device=device, dtype=torch.float32)
        R = batch.R.to(device=device, dtype=torch.float32)
        t = batch.t.to(device=device, dtype=torch.float32)
        delta = batch.expression.to(device=device, dtype=torch.float32)
        src_c = identity.canonical.to(device=device, dtype=torch.float32)[None]
        if cfg.shape == "source":
            x_c = src_c
        else:
            tgt_lm = batch.target_landmarks.to(device=device, dtype=torch.float32)
            tgt_c = canonical_from_landmarks(tgt_lm, s, R, t) - delta
            x_c = mix_shape(src_c, tgt_c, cfg.shape, cfg.shape_weight)
        return driven_geometry(x_c, delta, s, R, t)

    def _swap_relit(self, batch: SwapBatch, identity: GeometricIdentity) -> SwapResult:
        device = batch.target_crops.device
        S, H = int(batch.target_crops.shape[-1]), int(batch.target_crops.shape[-2])
        tgt_lm = batch.target_landmarks.to(device=device, dtype=torch.float32)
        driven = self.relit.driven(self._driven(batch, identity), tgt_lm)
        expression = batch.expression.to(device)
        creases = frame_creases(expression, self.regions, self.config.relit_plate_creases)
        folds = frame_folds(expression, self.config.relit_plate_folds)
        crops, alpha = self.relit.render(identity.albedo.to(device), identity.plate_light, batch.target_crops,
                                         tgt_lm, driven, batch.frame_to_crop, identity.eye_openness,
                                         identity.edge_blur, side=self._render_side(identity, S, H),
                                         occluder=batch.occluder, creases=creases, folds=folds,
                                         source_landmarks=identity.landmarks, stretch=self.config.relit_stretch,
                                         lips=self.config.relit_plate_lips)
        px = S / 256.0
        hole = inner_mask(tgt_lm, [lp.to(device) for lp in self.loops], (H, S),
                          grow=self.config.inner_grow * px, feather=self.config.inner_feather * px, outline=True)
        return SwapResult(crops=crops.to(batch.target_crops.dtype), alpha=alpha * (1.0 - hole),
                          driven_landmarks=driven)

    @staticmethod
    def _render_side(identity: GeometricIdentity, S: int, H: int) -> int | None:
        """The relit render's side for a batch of (H, S) crops: the track's chosen side when the crops are the size
        it was chosen for (else None: at the crop's size, with the albedo at whatever size it has)."""
        size = identity.render_size
        return size[1] if size is not None and size[0] == S == H else None

    def _swap_texture(self, batch: SwapBatch, identity: GeometricIdentity) -> SwapResult:
        cfg = self.config
        device = batch.target_crops.device
        S = int(batch.target_crops.shape[-1])
        H = int(batch.target_crops.shape[-2])
        tgt_lm = batch.target_landmarks.to(device=device, dtype=torch.float32)
        driven = self._driven(batch, identity)

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
