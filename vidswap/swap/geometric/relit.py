"""The geometric core's relit appearance (``swap.geometric.appearance: relit``, the default): the source's de-lit
albedo under the plate's own light, per frame, in linear light (:mod:`vidswap.appearance.relight`).

* ``prepare``: the source photos' albedo detail in texture space (:func:`~vidswap.appearance.source.
  build_source_albedo`), its size following the photos' resolution;
* ``for_target``: the target track's light from its appearance model in the analysis (:class:`PlateLight`);
* ``swap``: the driven mesh follows the plate's lip and eye contours (:func:`~vidswap.appearance.relight.
  follow_weights`); the frame is unwrapped for its temporal ratio; the relit texture is rendered with the SH shading
  of the driven mesh per vertex; the alpha is the coverage, minus the plate's eye and mouth openings and any opaque
  sunglasses it wears, times how much of each texel the source photos saw.

Every frame's render depends only on the analysis and that frame (farm chunks stay bit-identical).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.appearance.encoding import linear_to_srgb_drawn, luminance
from vidswap.appearance.eyewear import (EyewearParams, LensZones, borrow_detail, borrow_region, find_eyewear,
                                      lens_cover, remove_eyewear, soften_eyewear)
from vidswap.appearance.sharpness import RESAMPLING_BLUR, match_blur, relative_edge_blur
from vidswap.appearance.lighting import normalized_blur, sh_shading
from vidswap.appearance.relight import (PlateLight, RelightParams, feature_free_skin, follow_weights, lid_glints,
                                        outline_fade, outline_gain, outline_smooth, plate_light,
                                        resize_texture, temporal_ratio, vertex_shading)
from vidswap.appearance.skin_tone import SkinToneParams, skin_tone_gain
from vidswap.appearance.source import AlbedoParams, build_source_albedo, source_masks
from vidswap.appearance.texture import texture_confidence
from vidswap.composite.filters import dilate, gaussian_blur, smoothstep
from vidswap.appearance.texture_space import (TextureSpace, build_texture_space, region_masks, render_from_texture,
                                              texel_normals)
from vidswap.appearance.track import TrackAppearance, unwrap_frames
from vidswap.faces.align import face_height, invert_affine, transform_landmarks
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import MeshTopology
from vidswap.swap.geometric.brow_rest import glabella_region
from vidswap.swap.geometric.edge_smooth import edge_band, mesh_edges, smooth_steep_edges, steep_edges, triangle_areas
from vidswap.swap.geometric.mouth_rest import corner_region, fold_region
from vidswap.swap.geometric.plate_creases import FOLD_PREFILTER, crease_zone, fold_zone, take_creases
from vidswap.swap.geometric.plate_lips import face_weight, take_lips
from vidswap.swap.geometric.view_stretch import detail_keep, photo_facing, vertex_facing

__all__ = ["RelitRenderer", "source_texture_size", "auto_crop_size", "render_side", "downsize_albedo", "eye_openness",
           "lid_closing", "brow_region", "brow_contrast", "faint_brows", "UPSAMPLE_BLUR"]

#: the unwrap of a frame for its temporal ratio reads a crop at most this many times the track texture's side
#: (larger crops are box-filtered down first, so the ratio does not alias)
_UNWRAP_CROP_FACTOR = 2


def source_texture_size(height: float, lo: int = 256, hi: int = 1024) -> int:
    """Side of the source albedo texture for a photo whose face is ``height`` pixels tall: the next power of two
    (the detail the photo holds), within [lo, hi]."""
    return int(min(hi, max(lo, 2 ** math.ceil(math.log2(max(height, 1.0))))))


def auto_crop_size(height: float, margin: float, lo: int = 256, hi: int = 1024) -> int:
    """Crop side that renders a face at the plate's resolution: the face height (pixels) with its margins, rounded
    up to a multiple of 32, within [lo, hi]."""
    side = height * (1.0 + 2.0 * margin)
    return int(min(hi, max(lo, 32 * math.ceil(side / 32.0))))


#: blur (render pixels) of the bilinear upsample from the render's side to the crop's: a triangle filter one render
#: pixel wide on each side, variance 1/6
UPSAMPLE_BLUR = math.sqrt(1.0 / 6.0)


def render_side(crop: int, plate_sigma: float, min_sigma: float, lo: int = 128) -> int:
    """Side at which the relit render of a crop of side ``crop`` is drawn when the plate's edge blur there is
    ``plate_sigma`` crop pixels: the smallest multiple of 32 at which that blur still spans ``min_sigma`` render
    pixels (detail finer than the plate holds is not rendered), within [min(lo, crop), crop]. ``crop`` when the
    blur is unknown (NaN), at most ``min_sigma``, ``min_sigma`` <= 0 (off), or when the smaller side would save
    less than a quarter of the side (not worth resampling the render)."""
    if not math.isfinite(plate_sigma) or min_sigma <= 0 or plate_sigma <= min_sigma:
        return int(crop)
    side = max(min(lo, crop), 32 * math.ceil(crop * min_sigma / plate_sigma / 32.0))
    return int(side) if 4 * side <= 3 * crop else int(crop)


def downsize_albedo(albedo: Tensor, scale: float) -> Tensor:
    """The albedo texture (1, C, U, U) for a render ``scale`` (< 1) times the crop: side ``32 * ceil(U * scale /
    32)`` (unchanged when that is not smaller), Gaussian prefiltered (sigma ``0.5 * sqrt(f^2 - 1)`` texels for a
    reduction by f) so the smaller render samples it without aliasing; texel centres kept (:func:`resize_texture`)."""
    U = albedo.shape[-1]
    side = 32 * math.ceil(U * scale / 32.0)
    if side >= U:
        return albedo
    f = (U - 1) / (side - 1)
    return resize_texture(gaussian_blur(albedo, 0.5 * math.sqrt(f * f - 1.0)), side)


#: per eye (the subject's left, then right): outer and inner corner, upper-lid and lower-lid points (MediaPipe)
_EYES = (((263, 362), (386, 385, 387), (374, 380, 373)), ((33, 133), (159, 158, 160), (145, 153, 144)))


def brow_region(brows: Tensor, grow: float) -> Tensor:
    """The brows' texels and the skin within ``grow`` (fraction of the texture side) of them, softened by as much:
    (1, 1, U, U) -> (1, 1, U, U) in [0, 1]."""
    U = brows.shape[-1]
    return gaussian_blur(dilate(brows, grow * U), grow * U).clamp(0.0, 1.0)


def brow_contrast(albedo: Tensor, weight: Tensor, brows: Tensor, skin: Tensor) -> float:
    """How much darker the brows are than the skin around them: 1 - median luminance over the brows / median over
    the skin 0.01-0.03 of the texture side from them, both where ``weight`` > 0.5 (0: no brows to see, ~0.6-0.8:
    dark brows). (1, 3, U, U) linear, (1, 1, U, U) x3 -> float; NaN when either part was not seen."""
    U = albedo.shape[-1]
    lum = luminance(albedo)
    seen = weight > 0.5
    ring = ((dilate(brows, 0.03 * U) - dilate(brows, 0.01 * U)) > 0.5) & (skin > 0.5) & seen
    inside = (brows > 0.5) & seen
    if not bool(ring.any()) or not bool(inside.any()):
        return float("nan")
    return float(1.0 - lum[inside].median() / lum[ring].median().clamp(min=1e-6))


def faint_brows(source: float, track: float, lo: float, hi: float) -> float:
    """How faint the source's brows are against the plate actor's, in [0, 1]: 1 while the source's brow contrast
    is at most ``lo`` x the track's, 0 from ``hi`` x (smoothstep); 0 when either is unknown or the track's <= 0."""
    if not (math.isfinite(source) and math.isfinite(track)) or track <= 0:
        return 0.0
    x = min(max((hi - source / track) / (hi - lo), 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def eye_openness(landmarks: Tensor) -> Tensor:
    """Lid gap over eye width per eye (the subject's left, right): (B, 478, 2+) -> (B, 2). ~0.3 open, < 0.1 closed."""
    out = []
    for (outer, inner), upper, lower in _EYES:
        width = (landmarks[:, outer, :2] - landmarks[:, inner, :2]).norm(dim=-1).clamp(min=1e-6)
        gap = (landmarks[:, list(upper), :2] - landmarks[:, list(lower), :2]).norm(dim=-1).mean(-1)
        out.append(gap / width)
    return torch.stack(out, -1)


def lid_closing(target_openness: Tensor, source_openness: Tensor, start: float = 0.65, full: float = 0.35) -> Tensor:
    """How far each plate eye has closed relative to the source's open eye, in [0, 1]: 0 while the plate's
    openness is above ``start`` x the source's, 1 below ``full`` x (smoothstep). (B, 2), (2,) -> (B, 2)."""
    return smoothstep((start - target_openness / source_openness.clamp(min=1e-3)) / (start - full))


#: sigma (fraction of the texture side) of the skin tone around a smiling photo's mouth corners and folds
#: (:meth:`RelitRenderer.corners_at_rest`), and of that around a frowning photo's skin between the brows, which the
#: track's fine detail above it replaces (:meth:`RelitRenderer.rest_detail`)
CORNER_BAND = 0.03


def to_render_pixels(points: Tensor, k: float) -> Tensor:
    """Crop-pixel points (B, V, 3) in a render drawn at ``k`` x the crop's side: pixel centres x go to
    ``(x + 0.5) k - 0.5``, depth scales with them."""
    return torch.cat([(points[..., :2] + 0.5) * k - 0.5, points[..., 2:] * k], -1)


def tone_fill(detail: Tensor, weight: Tensor, region: Tensor, band: float) -> Tensor:
    """Inside ``region`` (1, 1, U, U) in [0, 1], the detail (1, 3, U, U) becomes its own tone around the region (a
    normalised blur of sigma ``band`` x U over the texels outside it, weighted by ``weight`` (1, 1, U, U)), blended
    by ``region``; outside it, the detail exactly. -> (1, 3, U, U)."""
    low, _ = normalized_blur(detail, weight * (1.0 - region), max(band * detail.shape[-1], 0.5))
    return torch.where(region > 0, detail * (1.0 - region) + low * region, detail)


@dataclass
class RelitRenderer:
    """Per-core state of the relit appearance: texture spaces, masks and the driven mesh's follow weights."""

    topology: MeshTopology
    relight: RelightParams = RelightParams()
    albedo: AlbedoParams = AlbedoParams()
    skin_tone: SkinToneParams = SkinToneParams()
    eyewear: str = "keep"
    eyewear_params: EyewearParams = EyewearParams()

    def __post_init__(self) -> None:
        self._spaces: dict[int, tuple[TextureSpace, dict[str, Tensor]]] = {}
        self._lenses: dict[int, LensZones] = {}
        self._feature_loops = [torch.as_tensor(self.topology.regions[name], dtype=torch.long)
                               for name in ("left_brow", "right_brow", "left_eye", "right_eye")
                               if name in self.topology.regions]
        self._fold_loops = self._feature_loops + [torch.as_tensor(self.topology.regions[name], dtype=torch.long)
                                                  for name in ("lips_outer",) if name in self.topology.regions]
        self._lip_loops = (tuple(torch.as_tensor(self.topology.regions[name], dtype=torch.long)
                                 for name in ("lips_outer", "lips_inner"))
                           if {"lips_outer", "lips_inner"} <= set(self.topology.regions) else None)
        self.triangles = torch.as_tensor(self.topology.triangles, dtype=torch.long)
        self._edges, self._edge_triangles = mesh_edges(self.triangles)
        self._canonical_areas = triangle_areas(canonical_face().float(), self.triangles)
        self.mirror = torch.as_tensor(self.topology.mirror, dtype=torch.long)
        self.oval = torch.as_tensor(self.topology.regions["face_oval"], dtype=torch.long)
        self.follow = follow_weights(canonical_face(), self.topology.regions, self.relight.lips_reach,
                                     self.relight.eyes_reach)

    def space(self, size: int, device: torch.device | str = "cpu") -> tuple[TextureSpace, dict[str, Tensor]]:
        """The texture space of side ``size`` and its masks (built once per size): :func:`source_masks` and where
        the plate's creases and folds are taken, ``crease_zone`` and ``fold_zone`` (:mod:`.plate_creases`)."""
        if size not in self._spaces:
            space = build_texture_space(canonical_face(), self.triangles, size)
            masks = source_masks(space, region_masks(space, self.topology.regions))
            self._spaces[size] = (space, {**masks, "crease_zone": crease_zone(masks), "fold_zone": fold_zone(masks)})
        space, masks = self._spaces[size]
        return space.to(device), {k: v.to(device) for k, v in masks.items()}

    # -- prepare ------------------------------------------------------------------------------------------------
    def source_albedo(self, crops: Tensor, landmarks: Tensor, validity: Tensor | None,
                      face_heights: Tensor) -> tuple[Tensor, Tensor]:
        """(1, 4, U, U) the fused source albedo detail and its weight (the render's alpha) from the aligned texture
        crops of the photos, (K, 3, T, T) + (K, 478, 3) crop pixels; ``face_heights`` (K,) in the photos' own
        pixels set the texture's size. Also (1,) the photos' edge blur relative to the face height (median).
        When eyewear was removed, a fifth channel carries where the source does not show its face (the removed
        rims and the lenses, :func:`~vidswap.appearance.eyewear.borrow_region`): :meth:`track_albedo` takes those
        texels' detail from the track's own appearance model and drops it. With ``brow_borrow`` > 0 and no glasses
        found, a zero fifth channel and a sixth, the brows' band (:func:`brow_region`), which :meth:`track_albedo`
        weighs by how faint the source's brows are against the track's (:func:`faint_brows`)."""
        U = source_texture_size(float(face_heights.max()))
        space, masks = self.space(U, crops.device)
        vis = texture_confidence(landmarks, space.triangles, image_size=tuple(crops.shape[-2:]))
        albedo = build_source_albedo(space, crops, landmarks, masks, visibility=vis, validity=validity,
                                     params=self.albedo,
                                     glasses=self.eyewear_params if self.eyewear == "keep" else None)
        unseen = None
        brows = self.relight.brow_borrow > 0
        found = (find_eyewear(albedo.detail, albedo.weight, masks, self.eyewear_params)
                 if self.eyewear != "keep" or brows else None)
        if self.eyewear == "remove":  # the source's glasses are a prop, not identity (:mod:`..eyewear`)
            albedo.detail = remove_eyewear(albedo.detail, albedo.weight, found, self.eyewear_params)
            unseen = borrow_region(found, self.eyewear_params) if found.found else None
        elif self.eyewear == "soften" and found.found:  # kept, lighter: the judge reads the rims as lids
            albedo.detail = remove_eyewear(albedo.detail, albedo.weight,
                                           soften_eyewear(found, self.eyewear_params.soften), self.eyewear_params)
        if unseen is None and brows and not found.found:  # brows the track may lend detail to (no frame over them)
            unseen = torch.cat([torch.zeros_like(albedo.weight),
                                brow_region(masks["brows"], self.relight.brow_borrow_grow)], 1)
        weight = albedo.weight * outline_fade(masks["face"], self.relight.outline)  # the plate's outline shows
        blur = relative_edge_blur(crops, landmarks, self.oval.to(crops.device), face_height(landmarks))
        detail = outline_smooth(albedo.detail, masks["skin"], masks["face"], self.relight.outline_detail,
                                self.relight.outline_sigma)  # the outline crosses no glasses rim or wrinkle
        if self.relight.lid_glint_slope != 1.0:  # no photo glints on the lids that bend with the plate's
            lids = (masks["lid_left"] + masks["lid_right"]).clamp(0.0, 1.0)
            detail = lid_glints(detail, lids, self.relight.lid_glint_knee, self.relight.lid_glint_slope)
        extra = [] if unseen is None else [unseen]
        return torch.cat([detail, weight, *extra], 1), blur.nanmedian()[None]

    def plate_light(self, model: TrackAppearance, device: torch.device | str) -> PlateLight:
        """The render-time light of a track from its appearance model."""
        _, masks = self.space(model.mean.shape[-1], device)
        return plate_light(model.tensors(device), masks, self.relight)

    def track_albedo(self, albedo: Tensor, model: TrackAppearance, landmarks: Tensor) -> Tensor:
        """The source albedo for one track, the same on every frame: times the per-channel skin-tone gain
        (:func:`~vidswap.appearance.skin_tone.skin_tone_gain`: the source's skin under the track's light brought to
        the track's own skin) and, with ``outline_match``, the :func:`outline_gain` that makes the render meet the
        track's own appearance along the face's outline.

        With a fifth channel (the texels the source does not show, behind its removed eyewear), those texels
        first take their detail from the track's own de-lit appearance (``mean / light``), on the source's tone
        (:func:`~vidswap.appearance.eyewear.borrow_detail`), and the channel is dropped.

        albedo (1, 4 or 5, U, U) from :meth:`source_albedo`; landmarks (N, 478, 3) the track's plate-pixel meshes
        (evenly spread frames: their mean texel normals take the track's SH light) -> (1, 4, U, U)."""
        borrow = albedo.shape[1] > 4
        if not borrow and self.relight.outline_match <= 0 and self.skin_tone.method == "none":
            return albedo
        device = albedo.device
        tensors = model.tensors(device)
        u = tensors["mean"].shape[-1]
        _, masks = self.space(u, device)
        light = self._track_light(tensors, landmarks)
        if borrow:
            U = albedo.shape[-1]
            own = resize_texture(tensors["mean"] / light, U)
            region = albedo[:, 4:5]
            if albedo.shape[1] > 5:  # the brows, in proportion to how faint the source's are against the track's
                _, at_u = self.space(U, device)
                faint = faint_brows(brow_contrast(albedo[:, :3], albedo[:, 3:4], at_u["brows"], at_u["skin"]),
                                    brow_contrast(tensors["mean"], tensors["weight"], masks["brows"], masks["skin"]),
                                    *self.relight.brow_faint)
                region = torch.maximum(region, albedo[:, 5:6] * (faint * self.relight.brow_borrow))
            detail = borrow_detail(albedo[:, :3], albedo[:, 3:4], region, own,
                                   resize_texture(tensors["weight"], U), self.eyewear_params.borrow_band)
            albedo = torch.cat([detail, albedo[:, 3:4]], 1)
            if self.relight.outline_match <= 0 and self.skin_tone.method == "none":
                return albedo
        expected = resize_texture(albedo[:, :3], u) * light
        tone = skin_tone_gain(expected, tensors["mean"], tensors["weight"], light,
                              feature_free_skin(masks, self.relight.feature_margin), self.skin_tone)
        gain = tone * outline_gain(expected * tone, tensors["mean"], tensors["weight"], masks["face"], masks["skin"],
                                   self.relight.outline_match, self.relight.outline_sigma,
                                   self.relight.outline_gain_range)
        return torch.cat([albedo[:, :3] * resize_texture(gain, albedo.shape[-1]), albedo[:, 3:]], 1)

    def _track_light(self, tensors: dict[str, Tensor], landmarks: Tensor) -> Tensor:
        """(1, 3, u, u) the track's light on its own face: its broad light times its SH light on the mean texel
        normals of ``landmarks`` (N, 478, 3), so ``mean / light`` is the track's own de-lit appearance."""
        space, _ = self.space(tensors["mean"].shape[-1], tensors["mean"].device)
        normals = texel_normals(space, landmarks.to(tensors["mean"].device).float()).mean(0, keepdim=True)
        normals = normals / normals.norm(dim=1, keepdim=True).clamp(min=1e-6)
        return tensors["broad"] * sh_shading(normals, tensors["lighting"]).clamp(min=1e-3)

    def corners_at_rest(self, albedo: Tensor, amount: float, ring: float, folds: float) -> Tensor:
        """The albedo whose skin beside the mouth's corners (:func:`~.mouth_rest.corner_region`, ``ring`` x U) and
        along the nasolabial folds (:func:`~.mouth_rest.fold_region`, ``folds`` x U wide) takes, by ``amount``, the
        source's own skin tone around it (:func:`tone_fill`): a smiling photo's corner creases and folds are its
        smile, not its skin. Not the track's detail, as between the brows: beside the mouth that is the plate
        actor's stubble and his own folds. (1, 4, U, U) -> (1, 4, U, U); the albedo itself for ``amount`` 0 or both
        widths 0."""
        if amount <= 0.0 or (ring <= 0.0 and folds <= 0.0):
            return albedo
        _, masks = self.space(albedo.shape[-1], albedo.device)
        region = torch.maximum(corner_region(masks["mouth"], masks["skin"], ring),
                               fold_region(masks["mouth"], masks["nose"], masks["skin"], folds)) * amount
        return torch.cat([tone_fill(albedo[:, :3], albedo[:, 3:4], region, CORNER_BAND), albedo[:, 3:]], 1)

    def glabella_at_rest(self, albedo: Tensor, model: TrackAppearance, landmarks: Tensor, amount: float) -> Tensor:
        """The albedo whose skin between the brows (:func:`~.brow_rest.glabella_region`) takes, by ``amount``, the
        skin tone around it times the track's own fine detail (:meth:`rest_detail`): a frowning photo's creases
        there are its frown. (1, 4, U, U) -> (1, 4, U, U); the albedo itself for ``amount`` 0."""
        if amount <= 0.0:
            return albedo
        _, masks = self.space(albedo.shape[-1], albedo.device)
        return self.rest_detail(albedo, model, landmarks, glabella_region(masks["brows"], masks["skin"]) * amount)

    def rest_detail(self, albedo: Tensor, model: TrackAppearance, landmarks: Tensor, region: Tensor) -> Tensor:
        """Inside ``region`` (1, 1, U, U) in [0, 1], the albedo's detail becomes its skin tone around the region
        times the track's own fine detail (:func:`~vidswap.appearance.eyewear.borrow_detail` at band 0.03, the
        tone taken from outside the region); outside it, the albedo exactly. (1, 4, U, U) -> (1, 4, U, U)."""
        tensors = model.tensors(albedo.device)
        U = albedo.shape[-1]
        own = resize_texture(tensors["mean"] / self._track_light(tensors, landmarks), U)
        weight = albedo[:, 3:4]
        detail = borrow_detail(albedo[:, :3], weight * (1.0 - region), region, own,
                               resize_texture(tensors["weight"], U), CORNER_BAND)
        return torch.cat([detail, albedo[:, 3:]], 1)

    # -- swap ---------------------------------------------------------------------------------------------------
    def _shading_mesh(self, driven: Tensor, target_landmarks: Tensor) -> Tensor:
        """The mesh whose normals take the plate's SH light: the plate's own surface (its shading carried over
        point by point, like a ratio image) blended with the driven mesh by ``shading_from_plate``."""
        w = self.relight.shading_from_plate
        return target_landmarks * w + driven * (1.0 - w) if w > 0 else driven

    def driven(self, driven: Tensor, target_landmarks: Tensor) -> Tensor:
        """The driven mesh following the plate's lip and eye contours: (B, 478, 3) crop pixels."""
        w = self.follow.to(driven)[None, :, None]
        return w * driven + (1.0 - w) * target_landmarks

    def frame_ratio(self, light: PlateLight, crops: Tensor, landmarks: Tensor,
                    occluder: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The frames' temporal ratio (B, 3, u, u) from the aligned plate crops (B, 3, S, S) and landmarks;
        ``occluder`` (B, 1, S, S) in [0, 1] (a hand in front of the face) is kept out of the frames' light, and
        so are opaque sunglasses, whose cover (B, 1, u, u) is returned with it (None: no frame shows any;
        :func:`~vidswap.appearance.eyewear.lens_cover`)."""
        u = light.broad.shape[-1]
        factor = max(1, crops.shape[-1] // (_UNWRAP_CROP_FACTOR * u))
        clear = None if occluder is None else 1.0 - occluder.to(crops).clamp(0.0, 1.0)
        if factor > 1:  # box-filter down; pixel centres move from x to (x + 0.5) / f - 0.5
            crops = F.avg_pool2d(crops, factor)
            clear = None if clear is None else F.avg_pool2d(clear, factor)
            landmarks = torch.cat([(landmarks[..., :2] + 0.5) / factor - 0.5, landmarks[..., 2:] / factor], -1)
        space, _ = self.space(u, crops.device)
        frame, weight = unwrap_frames(space, crops, landmarks, clear)
        lenses = lens_cover(frame, weight, self.lens_zones(u, crops.device))
        if lenses is not None:
            weight = weight * (1.0 - lenses)
        return temporal_ratio(light, frame, weight, self.relight), lenses

    def lens_zones(self, size: int, device: torch.device | str = "cpu") -> LensZones:
        """Where the plate's opaque sunglasses are looked for in the texture space of side ``size`` (made once)."""
        if size not in self._lenses:
            self._lenses[size] = LensZones.of(self.space(size)[1])
        return self._lenses[size].to(device)

    def render(self, albedo: Tensor, light: PlateLight, crops: Tensor, target_landmarks: Tensor, driven: Tensor,
               frame_to_crop: Tensor, source_eyes: Tensor, source_blur: Tensor | None = None,
               side: int | None = None, occluder: Tensor | None = None,
               creases: Tensor | None = None, source_landmarks: Tensor | None = None,
               stretch: float = 0.0, folds: Tensor | None = None, lips: float = 0.0) -> tuple[Tensor, Tensor]:
        """Relit render of a batch: (B, 3, S, S) sRGB-encoded crops and (B, 1, S, S) alpha = coverage x the source's
        texel weight, less the lids of plate eyes that close (blinks and closed eyes are the plate's own; the caller
        cuts the eye and mouth openings) and less the plate's opaque sunglasses (:meth:`frame_ratio`).

        Args:
            albedo: (1, 4, U, U) from :meth:`source_albedo`.
            light: the target track's :class:`PlateLight`.
            crops: (B, 3, S, S) the plate's aligned crops; target_landmarks (B, 478, 3) in crop pixels.
            driven: (B, 478, 3) the driven mesh in crop pixels (already following the plate's contours).
            frame_to_crop: (B, 2, 3) the crops' alignment (normals are taken in plate coordinates).
            source_eyes: (2,) the source photos' eye openness (:func:`eye_openness`).
            source_blur: (1,) the photos' edge blur relative to the face height; with the plate's (the light's
                ``edge_blur``) the render is blurred to the plate's sharpness (None or NaN: left as rendered).
            side: draw the render at this side (< S, square crops only: rasterise, texture, shading, sRGB and the
                blur match with what the upsample leaves of it) and upsample it and its alpha bilinearly to S
                (:func:`render_side`; ``albedo`` then :func:`downsize_albedo`'d to match). None or S: at S.
            occluder: (B, 1, S, S) what is in front of the face (1 = occluder; tracked hands, a user's matte),
                kept out of the frames' temporal ratio (:meth:`frame_ratio`), or None.
            creases: (B,) how much of the plate's own creases on the forehead and between the brows each frame
                takes (:mod:`.plate_creases`), or None (none).
            folds: (B,) likewise, how much of the plate's nasolabial folds (:func:`~.plate_creases.fold_zone`,
                read through :data:`~.plate_creases.FOLD_PREFILTER`), or None (none).
            source_landmarks, stretch: (K, 478, 3) the source photos' meshes (in their pixels) and the stretch from
                which their detail fades to plain skin where the driven mesh faces the plate's camera more squarely
                than the photos saw it (:mod:`.view_stretch`); None or 0: the detail as it is.
            lips: how much (0-1) of the plate's own lips the finished crop takes under the source's lip colour
                (:mod:`.plate_lips`: their border, gloss and lines; faded out on faces under ~100 plate pixels
                tall); 0: the render's lips as they are.
        """
        albedo = albedo[:, :4]  # a source albedo not yet through :meth:`track_albedo` may carry a fifth channel
        keep = None
        if source_landmarks is not None and stretch > 0:
            facing = photo_facing(source_landmarks.to(driven), self.triangles, self.mirror)
            keep = detail_keep(vertex_facing(driven, self.triangles), facing, stretch)
            keep = None if bool((keep >= 1.0).all()) else keep
        ratio, lenses = self.frame_ratio(light, crops, target_landmarks, occluder)
        space, masks = self.space(albedo.shape[-1], driven.device)
        lids = torch.cat([masks["lid_left"], masks["lid_right"]], 1)
        lines = [(zone, gate, prefilter, loops) for zone, gate, prefilter, loops in
                 ((masks["crease_zone"], creases, 0.0, self._feature_loops),
                  (masks["fold_zone"], folds, FOLD_PREFILTER, self._fold_loops))
                 if gate is not None and bool((gate > 0).any())]
        if lines:  # a channel each from the seventh: where the plate's creases and folds go
            lids = torch.cat([lids] + [zone for zone, _, _, _ in lines], 1)
        texture = torch.cat([albedo, lids], 1)  # the track's: the frames' light is sampled with it, at its own size
        crop_to_frame = torch.as_tensor(invert_affine(frame_to_crop), dtype=torch.float32, device=driven.device)
        shade = vertex_shading(transform_landmarks(self._shading_mesh(driven, target_landmarks), crop_to_frame),
                               self.triangles, light.lighting)
        S, H = crops.shape[-1], crops.shape[-2]
        n = S if side is None or side >= S or H != S else int(side)
        k = n / S  # crop pixel centres x map to (x + 0.5) k - 0.5 in the render
        drawn = driven if n == S else to_render_pixels(driven, k)
        rendered, cover = render_from_texture(space, texture, drawn, (n if n < S else H, n), vertex_gain=shade,
                                              texture_gain=light.broad * ratio, vertex_keep=keep)
        if self.relight.steep_edges > 0:  # no staircases where the face turns away (:mod:`.edge_smooth`)
            steep = steep_edges(drawn, self.triangles, self._edge_triangles, self._canonical_areas,
                                self.relight.steep_edges)
            band = edge_band(drawn, self._edges, steep, tuple(rendered.shape[-2:]))
            smooth_steep_edges(rendered[:, :3], cover, band)  # in place
        closing = lid_closing(eye_openness(target_landmarks), source_eyes.to(driven), self.relight.lid_close_start,
                              self.relight.lid_close_full)  # (B, 2)
        lid = (rendered[:, 4:6] * closing[:, :, None, None]).sum(1, keepdim=True).clamp(0.0, 1.0)
        alpha = cover * rendered[:, 3:4].clamp(0.0, 1.0) * (1.0 - lid)
        if lenses is not None:  # the plate's sunglasses stay in front: their cover drawn on the plate's own mesh
            plate_mesh = target_landmarks if n == S else to_render_pixels(target_landmarks, k)
            worn, on = render_from_texture(self.space(lenses.shape[-1], driven.device)[0], lenses, plate_mesh,
                                           tuple(alpha.shape[-2:]))
            alpha = alpha * (1.0 - (worn * on).clamp(0.0, 1.0))
        heights = face_height(target_landmarks)  # the face's size in crop pixels
        height = heights * k  # in render pixels
        for c, (_, gate, prefilter, loops) in enumerate(lines):  # into the render's channels, in place
            self._with_creases(rendered[:, :3], rendered[:, 6 + c:7 + c].clamp(0.0, 1.0) * cover, crops,
                               target_landmarks if n == S else to_render_pixels(target_landmarks, k), height,
                               gate, occluder, prefilter, loops)
        face = linear_to_srgb_drawn(rendered[:, :3], cover)  # the render is 0 where it covers nothing
        if source_blur is not None:
            own = (source_blur.to(face) * height) ** 2 + RESAMPLING_BLUR ** 2
            plate = light.edge_blur.to(face) * height
            if n < S:  # the texture's prefilter is part of the render's blur; the upsample's of the plate's
                own = own + RESAMPLING_BLUR ** 2
                plate = (plate * plate - UPSAMPLE_BLUR ** 2).clamp(min=0.0).sqrt()
            face = match_blur(face, own.sqrt(), plate)
        if n < S:
            up = F.interpolate(torch.cat([face, alpha], 1), size=(S, S), mode="bilinear", align_corners=False)
            face, alpha = up[:, :3], up[:, 3:].clamp(0.0, 1.0)
        if lips > 0 and self._lip_loops is not None:  # on the finished crop: the plate's lip detail as it is
            scale = torch.linalg.det(torch.as_tensor(frame_to_crop, dtype=torch.float64)[:, :, :2]).abs().sqrt()
            amount = lips * face_weight(heights / scale.to(heights))
            face = take_lips(face, crops, target_landmarks, heights, *self._lip_loops, amount, occluder)
        return face, alpha

    def _with_creases(self, rgb: Tensor, zone: Tensor, crops: Tensor, landmarks: Tensor, heights: Tensor,
                      creases: Tensor, occluder: Tensor | None, prefilter: float, loops: Sequence[Tensor]) -> Tensor:
        """The linear render (B, 3, h, w) at the render's side with the plate's creases or folds
        (:mod:`.plate_creases`) multiplied in, in place: the crops (and the occluder) box-filtered to the render's
        pixels, weighted by the rendered ``zone`` (B, 1, h, w), the frames' ``creases`` (B,) and what is not
        occluded, read through ``prefilter`` off the plate's features ``loops`` (landmark index loops).
        ``landmarks`` (B, 478, 3) and face ``heights`` (B,) in the render's pixels."""
        n = rgb.shape[-1]
        if n < crops.shape[-1]:
            crops = F.interpolate(crops, size=(n, n), mode="area")
            occluder = None if occluder is None else F.interpolate(occluder.to(zone), size=(n, n), mode="area")
        weight = zone * creases.to(zone)[:, None, None, None]
        if occluder is not None:
            weight = weight * (1.0 - occluder.to(weight).clamp(0.0, 1.0))
        return take_creases(rgb, crops, weight, heights, landmarks, loops, prefilter=prefilter)
