"""The plate's own lips under the source's lip colour, on the relit render.

The relit lips were the source photo's texture: resampled from a photo whose face is often a third of the plate
face's size, with the photo's own specular highlights, lipstick as painted and its mouth's teeth at the inner
contour. On the plate they showed as blotches of pink and white on the lower lip and a rim of lip colour along
the border wherever the photo's lip contour and its mesh disagree by a pixel -- a smear, though the lips' shape is
the plate's (the driven mesh follows its lip contours, :func:`~vidswap.appearance.relight.follow_weights`).

Here, per frame, over the plate's lips (its outer lip contour less the inner, from the landmarks) and a band of
skin around them (:func:`lip_regions`):

* **colour** (:func:`lip_colour`): the plate's chroma (linear RGB over luminance) projected on its own skin ->
  lips axis -- from the mean over a ring of skin around the mouth to the mean over the lips' core -- gives how
  much each pixel is lip (0 skin, 1 lip); the render's chroma there becomes its own ring's mean plus that much of
  its own lips-minus-ring difference. The lips' border, where the plate draws it, in the source's skin and lip
  colours; no photo blotches inside. Faded out where the plate's lips hardly differ from its skin (a grey or
  heavily graded plate, :data:`AXIS_RAMP`): the render keeps its own colour there.
* **surface** (:func:`lip_surface`): the render's log luminance within the lips loses its own detail against its
  blur over the lips (sigma :data:`SURFACE_SIGMA` of the face height) and takes the plate's: the lips' gloss,
  lines and shading as the plate lights them; their overall tone against the skin stays the source's. Taken whole
  :data:`SURFACE_INSET` in from the lips' border (the plate's landmark contour lands a pixel or two off its lip's
  edge, on skin or on the shadow under the lower lip: taken there, that drew a dark lip liner).

On a small face (:data:`FACE_PIXELS`: under ~100 plate pixels tall) neither the photo's blotches nor the plate's lip
detail span a plate pixel, and the layer only cost the judge's likeness to the photo (carphone_clip, a 58-px face,
x portrait_m7: ArcFace -0.010); it fades out there (:func:`face_weight`).

What is in front of the face (``occluder``) is left out of the means and left as rendered. Applied to the finished
crop (sRGB, after the blur match and the upsample), frame by frame over the box around its lips alone, so the
plate's detail is neither blurred again nor resampled.

Shapes: crops and renders (B, 3, H, W) sRGB-encoded in [0, 1]; masks (B, 1, h, w); landmarks (B, 478, 3) crop
pixels; face heights (B,) crop pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidswap.appearance.encoding import linear_to_srgb, luminance, srgb_to_linear
from vidswap.appearance.lighting import normalized_blur
from vidswap.appearance.raster import fill_loops
from vidswap.composite.filters import dilate, gaussian_blur, smoothstep

__all__ = ["LIP_BAND", "CORE_INSET", "RING", "SURFACE_SIGMA", "SURFACE_INSET", "AXIS_RAMP", "LIP_RANGE", "FACE_PIXELS",
           "face_weight", "lip_box", "lip_regions",
           "masked_mean", "lip_colour", "lip_surface", "take_lips"]

#: how far around the plate's outer lip contour (x the face height) the colour is mapped: the lips' border and the
#: skin next to it, where a photo's lip colour ran over
LIP_BAND = 0.025
#: the lips' core, whose mean is the lips' colour: the lips less this much (x the face height) inside their border
CORE_INSET = 0.01
#: the ring of skin whose mean is the skin's colour: from RING[0] to RING[1] x the face height outside the lips
RING = (0.035, 0.055)
#: the blur (x the face height) the lips' surface detail is taken against: the plate's gloss and lines, not the
#: lips' overall tone
SURFACE_SIGMA = 0.03
#: how far in from the lips' border and the mouth's opening (x the face height) the surface detail is taken whole
SURFACE_INSET = 0.015
#: the plate's skin -> lips chroma difference (length in linear RGB / luminance) over which the colour map fades in:
#: the test clips' lips differ from their skin by 0.23 (a pale-lipped stock clip) to 0.75 (webcams)
AXIS_RAMP = (0.02, 0.05)
#: the face height in the plate's own pixels from which the layer fades in, and at which it is whole
FACE_PIXELS = (64.0, 128.0)
#: how far the projection may go beyond skin (0) and lips (1)
LIP_RANGE = (-0.2, 1.3)
_EPS = 1e-4


def face_weight(plate_heights: Tensor) -> Tensor:
    """How much of the layer frames whose faces are ``plate_heights`` (B,) plate pixels tall take: 0 up to
    FACE_PIXELS[0], 1 from FACE_PIXELS[1], a smoothstep between. (B,) -> (B,)."""
    return smoothstep((plate_heights - FACE_PIXELS[0]) / (FACE_PIXELS[1] - FACE_PIXELS[0]))


def lip_box(landmarks: Tensor, loop: Tensor, reach: Tensor, size: tuple[int, int]) -> tuple[slice, slice]:
    """The box (rows, columns) holding the lip contour ``loop`` of every frame of ``landmarks`` (B, 478, 2+) grown
    by ``reach`` (B,) pixels, clipped to ``size`` (H, W); one box for the batch (:func:`take_lips` asks per frame)."""
    pts = landmarks[:, loop, :2]
    r = reach.to(pts)[:, None]
    lo = (pts - r[..., None]).amin((0, 1)).floor().clamp(min=0)
    hi = (pts + r[..., None]).amax((0, 1)).ceil() + 1
    x0, y0 = int(lo[0]), int(lo[1])
    x1, y1 = min(int(hi[0]), size[1]), min(int(hi[1]), size[0])
    return slice(y0, max(y1, y0 + 1)), slice(x0, max(x1, x0 + 1))


def lip_regions(landmarks: Tensor, outer: Tensor, inner: Tensor, size: tuple[int, int], height: float,
                band: float = LIP_BAND) -> dict[str, Tensor]:
    """The masks of :func:`lip_colour` and :func:`lip_surface`, (B, 1, H, W) each, from the landmarks (B, 478, 2+)
    in the masks' pixels, the outer and inner lip contours (index loops) and the face height (pixels):

    * ``lips``: inside the outer contour, outside the inner one (hard, :func:`~vidswap.appearance.raster.fill_loops`);
    * ``core``: ``lips`` at least :data:`CORE_INSET` x the height inside their border;
    * ``ring``: skin :data:`RING` x the height outside the outer contour;
    * ``band``: the outer contour grown by ``band`` x the height, softened by half as much, 0 inside the inner
      contour -- where the colour is mapped.
    """
    mouth, opening = fill_loops(landmarks, [outer], size), fill_loops(landmarks, [inner], size)
    lips = (mouth - opening).clamp(0.0, 1.0)
    core = lips * (1.0 - dilate(1.0 - mouth, CORE_INSET * height)) * (1.0 - dilate(opening, CORE_INSET * height))
    ring = (dilate(mouth, RING[1] * height) - dilate(mouth, RING[0] * height)).clamp(0.0, 1.0)
    grown = dilate(mouth, band * height)
    return {"lips": lips, "core": core, "ring": ring,
            "band": (gaussian_blur(grown, 0.5 * band * height) * grown * (1.0 - opening)).clamp(0.0, 1.0)}


def masked_mean(x: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """The mean of ``x`` (B, C, H, W) weighted by ``weight`` (B, 1, H, W) per frame, and the weight's sum:
    (B, C, 1, 1), (B, 1, 1, 1). 0 where the weight is all 0."""
    total = weight.sum((2, 3), keepdim=True)
    return (x * weight).sum((2, 3), keepdim=True) / total.clamp(min=_EPS), total


def lip_colour(render: Tensor, plate: Tensor, regions: dict[str, Tensor], visible: Tensor) -> Tensor:
    """The render's chroma over ``regions["band"]`` mapped from the plate's skin -> lips axis (module docstring).

    render, plate: (B, 3, H, W) linear; visible (B, 1, H, W) in [0, 1], 1 = the face seen (not occluded).
    Returns the linear render (B, 3, H, W) with its luminance kept."""
    lum_r, lum_p = luminance(render).clamp(min=_EPS), luminance(plate).clamp(min=_EPS)
    chroma_r, chroma_p = render / lum_r, plate / lum_p
    core, ring = regions["core"] * visible, regions["ring"] * visible
    plate_lips, n_core = masked_mean(chroma_p, core)
    plate_skin, n_ring = masked_mean(chroma_p, ring)
    own_lips, _ = masked_mean(chroma_r, core)
    own_skin, _ = masked_mean(chroma_r, ring)
    axis = plate_lips - plate_skin
    length = axis.square().sum(1, keepdim=True)
    t = ((chroma_p - plate_skin) * axis).sum(1, keepdim=True) / length.clamp(min=_EPS)
    t = t.clamp(*LIP_RANGE)
    gate = smoothstep((length.sqrt() - AXIS_RAMP[0]) / (AXIS_RAMP[1] - AXIS_RAMP[0]))
    gate = gate * (n_core > 0.5).float() * (n_ring > 0.5).float()
    w = regions["band"] * visible * gate
    mapped = own_skin + t * (own_lips - own_skin)
    return lum_r * (chroma_r + w * (mapped - chroma_r))


def lip_surface(render: Tensor, plate: Tensor, lips: Tensor, sigma: float, inset: float, visible: Tensor) -> Tensor:
    """The render's log luminance detail within ``lips`` (B, 1, H, W) against its blur over the lips (``sigma``
    pixels) replaced by the plate's, weighted by ``visible`` and by the lips ``inset`` pixels in from their border
    and the mouth's opening, softened by half as much: the plate's lip border, where its landmarks' contour lands
    on the skin beside the lip or the shadow under it, would draw a dark line. render, plate: (B, 3, H, W) linear
    -> (B, 3, H, W) linear."""
    logs = torch.log(torch.cat([luminance(render), luminance(plate)], 1).clamp(min=_EPS))  # render, plate
    detail = logs - normalized_blur(logs, lips, sigma)[0]
    inner = lips * (1.0 - dilate(1.0 - lips, inset))
    w = gaussian_blur(inner, 0.5 * inset) * lips * visible
    return render * torch.exp((w * (detail[:, 1:] - detail[:, :1])).clamp(-1.0, 1.0))


def take_lips(face: Tensor, crops: Tensor, landmarks: Tensor, heights: Tensor, outer: Tensor, inner: Tensor,
              amount: Tensor, occluder: Tensor | None = None) -> Tensor:
    """The finished relit crop ``face`` (B, 3, H, W) sRGB with the plate's lips (:func:`lip_colour`, then
    :func:`lip_surface`), blended by ``amount`` (B,) in [0, 1], written into ``face`` in place (returned; all 0:
    untouched). ``crops`` the plate's (B, 3, H, W) sRGB, ``landmarks`` (B, 478, 3) and ``heights`` (B,) in crop
    pixels, ``outer`` / ``inner`` the lip contours' index loops, ``occluder`` (B, 1, H, W) or None.

    Each frame is worked over its own box around its lips (:func:`lip_box`), on its own: a frame gives the same
    values bit for bit in any batch (farm chunks), and outside its box exactly ``face``'s."""
    if not bool((amount > 0).any()):
        return face
    H, W = face.shape[-2:]
    for b in torch.nonzero(amount > 0)[:, 0].tolist():
        height = float(heights[b])
        reach = height * (RING[1] + 0.01)  # the ring, and the band with its blur; the surface reads the lips alone
        rows, cols = lip_box(landmarks[b:b + 1], outer, torch.tensor([reach]), (H, W))
        shift = torch.tensor([cols.start, rows.start], dtype=landmarks.dtype, device=landmarks.device)
        regions = lip_regions(landmarks[b:b + 1, :, :2] - shift, outer, inner,
                              (rows.stop - rows.start, cols.stop - cols.start), height)
        visible = (torch.ones_like(regions["lips"]) if occluder is None
                   else 1.0 - occluder[b:b + 1, :, rows, cols].to(face).clamp(0.0, 1.0))
        box = face[b:b + 1, :, rows, cols]
        plate = srgb_to_linear(crops[b:b + 1, :, rows, cols].to(face))
        lips = lip_colour(srgb_to_linear(box), plate, regions, visible)
        lips = lip_surface(lips, plate, regions["lips"], SURFACE_SIGMA * height, SURFACE_INSET * height, visible)
        box.add_(float(amount[b]) * (linear_to_srgb(lips) - box))
    return face
