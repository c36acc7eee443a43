"""Where a source photo's texture can be used: not where hair or a hand covers the face.

A fringe of hair over the forehead, hair over the temples, or a hand laid on the face would otherwise be unwrapped
as the person's skin and painted onto the plate. Both tests give a per-pixel validity of the photo's aligned crop,
(K, 1, H, W) in [0, 1]; the geometric core leaves the invalid texels out (the relit albedo fills them from the
mirrored side or leaves the plate's skin; the texture render makes them transparent). Opaque sunglasses are found in
texture space (:func:`~vidswap.appearance.eyewear.dark_lenses`): by the relit albedo itself, and for the texture
appearance by :func:`lens_cover`, which renders them back into the crops.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vidswap.appearance.encoding import srgb_to_linear
from vidswap.appearance.eyewear import dark_lenses
from vidswap.appearance.source import source_masks
from vidswap.appearance.texture import texture_confidence
from vidswap.appearance.texture_space import build_texture_space, region_masks, render_from_texture, unwrap
from vidswap.composite.compositor import CompositeParams, build_masks
from vidswap.composite.filters import gaussian_blur, smoothstep
from vidswap.composite.occlusion import OcclusionParams
from vidswap.faces.align import warp_to_crop
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import LIP_CORNERS_OUTER as LIP_CORNERS
from vidswap.swap.base import SourceFace

__all__ = ["FOREHEAD_REGIONS", "forehead_validity", "crop_source", "photo_validity", "lens_cover", "grey_photos",
           "texture_visibility"]

#: regions the forehead test reads
FOREHEAD_REGIONS = {"face_oval", "left_eye", "right_eye", "left_brow", "right_brow", "nose", "lips_outer"}


def forehead_validity(images: Tensor, landmarks: Tensor, regions, ramp: float = 0.04, keep_below: float = 2.5,
                      drop_above: float = 4.0, sides: float = 0.2) -> Tensor:
    """Where a source photo's texture can be used, as far as hair goes: (K, 3, H, W) crops + (K, 478, 3) landmarks
    -> (K, 1, H, W) in [0, 1].

    A fringe of hair over the forehead, or hair hanging over the temples and the sides of the cheeks, would be
    painted onto the plate as brown bands. The skin-colour occlusion test of the compositor
    (:func:`~vidswap.composite.occlusion.occlusion_visibility`, skin model fitted on the photo's own cheeks and
    nose) marks what is not skin; it counts only where hair goes: above the brows, and in the outer ``sides`` of
    the face's width above the mouth corners (glasses, beards and make-up elsewhere belong to the identity),
    fading in over ``ramp`` x the face size. A still photo has no temporal noise, so the test is stricter than on
    the plate (``keep_below``/``drop_above`` Mahalanobis distances, no extra luma slack, and no second light's
    skin: on grace_hopper's strongly shaded portrait the plate's two-light test split the skin in two, which would
    widen this stricter test where nothing calls for it). A black-and-white photo
    has no colour to tell a fringe from skin by (the astronaut in grey: the test kept most of hers, painted as a
    dark band across the plate's forehead); there the strands' texture is used as well
    (:func:`texture_visibility`). The crops are aligned (eye line level), so "above" and "outer" are rows and
    columns.
    """
    params = CompositeParams(occlusion=OcclusionParams(keep_below=keep_below, drop_above=drop_above,
                                                       luma_slack=1.0, second_share=0.0))
    masks = build_masks(images.clamp(0.0, 1.0), landmarks, regions, params)
    visibility = masks.visibility
    grey = grey_photos(images, masks.face)
    if bool(grey.any()):  # no colour to tell hair from skin by: its strands' texture does
        texture = texture_visibility(images, masks.stats, masks.size)
        visibility = torch.where(grey.view(-1, 1, 1, 1), torch.minimum(visibility, texture), visibility)
    idx = lambda *names: torch.as_tensor(np.concatenate([np.asarray(regions[n]) for n in names]),  # noqa: E731
                                         device=landmarks.device)
    top = landmarks[:, idx("left_brow", "right_brow"), 1].amin(dim=1)  # (K,) brow tops
    mouth = landmarks[:, list(LIP_CORNERS), 1].amin(dim=1)  # (K,) the higher mouth corner
    oval = landmarks[:, idx("face_oval"), 0]
    centre, half = (oval.amax(1) + oval.amin(1)) / 2, (oval.amax(1) - oval.amin(1)) / 2
    rows = torch.arange(images.shape[-2], device=images.device, dtype=torch.float32)
    cols = torch.arange(images.shape[-1], device=images.device, dtype=torch.float32)
    width = (ramp * masks.size).clamp(min=1.0)
    above = ((top[:, None] - rows[None]) / width[:, None]).clamp(0.0, 1.0)  # (K, H): 1 above the brows
    outer = (((cols[None] - centre[:, None]).abs() - (1.0 - sides) * half[:, None]) / width[:, None]).clamp(0, 1)
    upper = ((mouth[:, None] - rows[None]) / width[:, None]).clamp(0.0, 1.0)  # (K, H): 1 above the mouth
    prone = torch.maximum(above[:, :, None], upper[:, :, None] * outer[:, None, :])  # (K, H, W)
    return 1.0 - (1.0 - visibility) * prone[:, None]


def grey_photos(images: Tensor, face: Tensor, spread: float = 2.0 / 255.0) -> Tensor:
    """(K,) which of the (K, 3, H, W) photos are black and white: over their (K, 1, H, W) face masks the channels'
    spread (max - min) stays under ``spread`` at the 99th percentile."""
    gap = (images.amax(1, keepdim=True) - images.amin(1, keepdim=True))
    out = []
    for k in range(len(images)):
        inside = gap[k][face[k] > 0.5]
        out.append(bool(len(inside)) and float(inside.quantile(0.99)) < spread)
    return torch.tensor(out, dtype=torch.bool, device=images.device)


def texture_visibility(images: Tensor, skin: Tensor, face_size: Tensor, fine: float = 0.006, window: float = 0.02,
                       ratio: tuple[float, float] = (2.0, 3.0)) -> Tensor:
    """Where a photo is smooth as skin, in [0, 1]: (K, 3, H, W) photos, (K, 1, H, W) skin sample (cheeks, nose),
    (K,) face sizes in pixels -> (K, 1, H, W). The local contrast of the fine band (sigma ``fine`` x the face size)
    over a ``window`` x the face size, relative to the local mean, is hair where it is ``ratio`` times the skin
    sample's median (0 above the second, 1 below the first; smoothstep)."""
    lum = images.mean(1, keepdim=True)
    high = lum - gaussian_blur(lum, (fine * face_size).clamp(min=0.5))
    sigma = (window * face_size).clamp(min=1.0)
    energy = gaussian_blur(high * high, sigma).clamp(min=0.0).sqrt() / (gaussian_blur(lum, sigma) + 0.05)
    out = []
    for k in range(len(images)):
        sample = energy[k][skin[k] > 0.5]
        reference = float(sample.median()) if len(sample) else float(energy[k].median())
        out.append(1.0 - smoothstep((energy[k] / max(reference, 1e-6) - ratio[0]) / (ratio[1] - ratio[0])))
    return torch.stack(out)


def crop_source(source: SourceFace, affine: Tensor, size: int, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """A source photo's aligned crop and what covers it there: (3, size, size) and (1, size, size) (its
    ``occlusion`` warped the same way; zeros when it has none). ``affine``: (1, 2, 3) photo -> crop."""
    image = source.image.to(device)[None].float()
    if source.occlusion is None:
        crop = warp_to_crop(image, affine, size)[0]
        return crop, crop.new_zeros(1, *crop.shape[1:])
    both = torch.cat([image, source.occlusion.to(device=device, dtype=image.dtype)[None, None]], 1)
    crop = warp_to_crop(both, affine, size)[0]
    return crop[:3], crop[3:4].clamp(0.0, 1.0)


def photo_validity(crops: Tensor, landmarks: Tensor, covered: Tensor, regions) -> Tensor | None:
    """(K, 1, H, W) where the aligned crops (K, 3, H, W) with landmarks (K, V, 3) can be used: the hair test
    (:func:`forehead_validity`, when ``regions`` has the face regions it reads) times ``1 - covered`` (K, 1, H, W)
    (hands); None when the hair test does not apply (a topology without those regions, e.g. a reduced test mesh)
    and no hand covers the crops."""
    valid = forehead_validity(crops, landmarks, regions) if FOREHEAD_REGIONS <= set(regions) else None
    if bool((covered > 0).any()):
        free = 1.0 - covered
        valid = free if valid is None else valid * free
    return valid


def lens_cover(crops: Tensor, landmarks: Tensor, triangles: Tensor, regions, size: int = 128) -> Tensor | None:
    """(K, 1, H, W) what opaque lenses (sunglasses) cover in the aligned crops (K, 3, H, W) sRGB with landmarks
    (K, V, 3), or None when no photo wears them: the crops unwrapped into a ``size`` texture space of the mesh
    (``triangles``, ``regions``), :func:`~vidswap.appearance.eyewear.dark_lenses` there, its cover rendered back
    onto each photo's mesh. For the texture appearance, whose validity is in the crops' pixels."""
    triangles = torch.as_tensor(triangles, dtype=torch.long)
    space = build_texture_space(canonical_face(), triangles, size).to(crops.device)
    masks = {k: v.to(crops.device) for k, v in source_masks(space, region_masks(space, regions)).items()}
    seen = texture_confidence(landmarks, space.triangles, image_size=tuple(crops.shape[-2:]))
    texture, weight = unwrap(space, srgb_to_linear(crops.clamp(0.0, 1.0)), landmarks, seen)
    cover = dark_lenses(texture, weight, masks)
    if cover is None:
        return None
    rendered, _ = render_from_texture(space, cover, landmarks, tuple(crops.shape[-2:]))
    return rendered.clamp(0.0, 1.0)
