"""The source photo's eyewear, found and removed (``swap.geometric.source_eyewear: remove``) or softened (``soften``)
in texture space.

Glasses painted on a moving face are a prop, not identity: their rims stay flat while the plate's lids and brows
move under them (the judge reads the rim above closed lids as open eyes), and their temples run out to the face's
sides where the swap's outline cuts them. No face parser is available offline, so the frames are found by what
they are in the de-lit detail layer (:func:`~vidswap.appearance.source.build_source_albedo`, 1 on average over the
skin):

* **ridges**: a thin dark line is what a morphological closing (a grey-level max then min filter) fills in: the
  black top-hat ``(closing - L) / closing`` of the luminance detail ``L``, at a few widths (fractions of the
  texture side), is above ``depth`` on a rim and near 0 on flat skin;
* **where**: an elliptical zone around each eye (the lens and its rim; the two zones meet over the nose bridge), and
  a band at the eyes' height out to the face's sides (the temples);
* **verified by shape**: rims are rings. Around each eye the zone is split into angular sectors; a sector counts
  when a ridge crosses it. Glasses are found only when, on both eyes, each of the four quadrants (above, below,
  towards the nose, towards the ear) has at least ``quadrant_cover`` of its sectors crossed: brows and lid creases
  make arcs above the eye and wrinkles make lines below, but not closed rings; a face without glasses gets an
  empty mask.

Opaque lenses (sunglasses) hide the eyes' surround altogether: :func:`dark_lenses` finds them in the photo's
unwrapped texture (most of both eyes' zones far darker than the skin), and the source albedo leaves them out like a
hand or a fringe (:func:`~vidswap.appearance.source.build_source_albedo`): the plate's own eyes, lids and surround
show there.

Removal: the ridge texels (grown a little, softened) are refilled from the surrounding skin -- a normalised blur of
the detail outside the mask (the skin's low-pass) -- and inside the lenses the brighter-than-skin detail (glints
and the lens's sheen) is compressed. Everything is in linear light, in texture space, once per source.

Shapes: detail (1, 3, U, U) linear; masks (1, 1, U, U) float in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from vidswap.appearance.encoding import luminance
from vidswap.appearance.lighting import normalized_blur
from vidswap.composite.filters import dilate, erode, gaussian_blur

__all__ = ["EyewearParams", "Eyewear", "black_tophat", "eyewear_zones", "ring_cover", "find_eyewear",
           "inner_creases", "eyewear_frame", "remove_eyewear", "soften_eyewear", "borrow_region", "borrow_detail",
           "dark_lenses", "LensZones", "lens_cover"]

_EPS = 1e-6


@dataclass(frozen=True)
class EyewearParams:
    """Settings of the eyewear detector and its removal; lengths in eye half-widths ``w`` (the eye mask's) or
    fractions of the texture side ``U``.

    Attributes:
        widths: half-widths of the closing (fractions of U) whose top-hats are combined (max): the thinnest
            metal rim to a thick plastic one.
        depth: a texel whose top-hat is above this (a ridge at least this much darker than its closing) is a ridge.
        zone_rx, zone_ry: radii (in w) of the elliptical zone around each eye where rims and lenses can be ...
        zone_drop: ... centred this far (in w) below the eye's centre (lenses reach lower than the brows).
        lash: the eye opening grown by this (in w) is not part of the zone (lash line, lid crease).
        temple_up, temple_down: the temples' band spans these distances (in w) above and below the eyes' centre.
        sectors: angular sectors around each eye for the ring test.
        quadrant_cover: fraction of each quadrant's sectors a ridge must cross on both eyes.
        grow: the ridge mask is grown by this (fraction of U) and softened by as much.
        fill_sigma: sigma (fraction of U) of the skin's low-pass that refills the mask (doubled where the mask
            is too wide for it to reach).
        lens_keep: fraction of the brighter-than-skin detail kept inside the lenses (glints, the lens's sheen).
        min_part: connected parts of the ridges smaller than this (fraction of U^2) are not the frame (creases).
        brow_keep: how much of the brows' texels is kept out of the removal. 0: a rim lying on the brows goes
            (what was kept at 1 on Grace Hopper's photo showed as a dark rim-shaped smudge at the brow's inner end;
            the fill there takes the brow hair and skin around it); 1: the brow mask is never touched.
        borrow_band: sigma (fraction of U) splitting the low band (the source's tone, kept) from the high band (brows,
            lid creases, skin texture) that the removed texels borrow from another view (:func:`borrow_detail`).
        borrow_feather: the borrowed region (rims, temples and lenses) is softened by this (fraction of U).
        borrow_lens: how much of the lenses' interior borrows (0: the rims and temples only; the source's skin seen
            through the lenses keeps its own detail).
        soften: with ``source_eyewear: soften``, the fraction of the frame's contrast (rims, temples) and of the
            lenses' glints and tint that is taken out (:func:`soften_eyewear`): the glasses stay, lighter.
        rim_band, rim_below: the frame itself (:func:`eyewear_frame`): below each eye (where the sine of a texel's
            angle about the zone's centre exceeds ``rim_below``) a ridge more than ``rim_band`` (elliptical radius
            units) inside the outermost ridge of its angular sector is the eye's own crease or bag seen through the
            lens, not the rim below it.
        rim_sectors: angular sectors of that outermost-ridge test.
        rim_brow_clear: the brows grown by this (fraction of U) are never the frame (a brow's inner end touching
            a browline bar is hair and skin).
    """

    widths: tuple[float, ...] = (0.008, 0.016)
    depth: float = 0.3
    zone_rx: float = 2.5
    zone_ry: float = 2.4
    zone_drop: float = 0.5
    lash: float = 0.25
    temple_up: float = 1.6
    temple_down: float = 0.6
    sectors: int = 24
    quadrant_cover: float = 0.5
    grow: float = 0.006
    fill_sigma: float = 0.016
    lens_keep: float = 0.3
    min_part: float = 0.002
    brow_keep: float = 0.0
    borrow_band: float = 0.015
    borrow_feather: float = 0.006
    borrow_lens: float = 1.0
    soften: float = 0.5
    rim_band: float = 0.1
    rim_below: float = 0.35
    rim_sectors: int = 48
    rim_brow_clear: float = 0.015


@dataclass
class Eyewear:
    """What :func:`find_eyewear` found.

    found: whether the ring test passed (glasses on the face).
    mask: (1, 1, U, U) the rims and temples to remove (soft; zero when not found).
    lens: (1, 1, U, U) inside the rims, off the eye openings (soft; zero when not found).
    cover: (2, 4) fraction of each quadrant's sectors (above, below, nose side, ear side) a ridge crosses, per eye
        (the subject's left, right).
    """

    found: bool
    mask: Tensor
    lens: Tensor
    cover: Tensor


def black_tophat(values: Tensor, radius: int) -> Tensor:
    """Relative black top-hat ``(closing - v) / closing`` (a square closing of half-width ``radius`` texels),
    clamped to [0, 1]: (B, 1, H, W) -> the same. Thin dark lines narrower than the square are near 1 - v/skin."""
    if radius < 1:
        return torch.zeros_like(values)
    # the square's dilation then erosion; filters' border (beyond it -inf / +inf) gives the replicated border's values
    closing = erode(dilate(values, radius, shape="square"), radius, shape="square")
    return ((closing - values) / closing.clamp(min=_EPS)).clamp(0.0, 1.0)


def _eye_frame(eye: Tensor) -> tuple[float, float, float]:
    """(centre x, centre y, half-width) of a (1, 1, U, U) eye mask, in texels."""
    m = eye[0, 0] > 0.5
    ys, xs = torch.nonzero(m, as_tuple=True)
    return float(xs.float().mean()), float(ys.float().mean()), float(xs.max() - xs.min()) / 2.0


def eyewear_zones(masks: dict[str, Tensor], params: EyewearParams = EyewearParams()) -> dict[str, Tensor]:
    """Where eyewear can be, from the texture space's region masks (``face``, ``left_eye``, ``right_eye``):
    ``rings`` (1, 1, U, U) the elliptical zones around both eyes (off the grown eye openings), ``temples`` the band
    at the eyes' height outside them, both inside the face; and per eye ``angle_<side>``, ``radius_<side>``
    (1, 1, U, U): each texel's angle about that eye's zone centre (radians, 0 towards +x, y down) and its elliptical
    radius (1 on the zone's edge)."""
    face = masks["face"]
    U = face.shape[-1]
    ys = torch.arange(U, dtype=torch.float32, device=face.device).view(1, 1, U, 1).expand(1, 1, U, U)
    xs = torch.arange(U, dtype=torch.float32, device=face.device).view(1, 1, 1, U).expand(1, 1, U, U)
    out: dict[str, Tensor] = {}
    rings = torch.zeros_like(face)
    rows = torch.zeros_like(face)
    for side in ("left", "right"):
        eye = masks[f"{side}_eye"]
        cx, cy, w = _eye_frame(eye)
        zy = cy + params.zone_drop * w
        dx, dy = (xs - cx) / (params.zone_rx * w), (ys - zy) / (params.zone_ry * w)
        radius = (dx * dx + dy * dy).sqrt()
        out[f"angle_{side}"] = torch.atan2(ys - zy, xs - cx)
        out[f"radius_{side}"] = radius
        opening = dilate(eye, params.lash * w)
        rings = torch.maximum(rings, (radius <= 1.0).float() * (1.0 - opening))
        rows = torch.maximum(rows, ((ys >= cy - params.temple_up * w) & (ys <= cy + params.temple_down * w)).float())
    out["rings"] = rings * face
    out["temples"] = rows * (1.0 - (rings > 0).float()) * face * (1.0 - dilate(masks["eyes"], params.lash * 4))
    return out


def ring_cover(ridges: Tensor, angle: Tensor, radius: Tensor, zone: Tensor, sectors: int, nose_right: bool
               ) -> Tensor:
    """Fraction of each quadrant's angular sectors (above, below, nose side, ear side) that a ridge crosses within
    the zone: (1, 1, U, U) ridges (bool/float), angles, radii, zone -> (4,). ``nose_right``: the nose is at +x."""
    hit = (ridges > 0.5) & (zone > 0.5) & (radius <= 1.0)
    step = 2.0 * math.pi / sectors
    index = ((angle + math.pi) / step).long().clamp(0, sectors - 1)
    crossed = torch.zeros(sectors, dtype=torch.bool, device=ridges.device)
    crossed[index[hit].unique()] = True
    centre = (torch.arange(sectors, device=ridges.device).float() + 0.5) * step - math.pi  # sector mid-angles
    c, s = torch.cos(centre), torch.sin(centre)
    quads = [s < -0.7071, s > 0.7071, (c > 0.7071) if nose_right else (c < -0.7071),
             (c < -0.7071) if nose_right else (c > 0.7071)]  # y down: above is sin < 0
    return torch.stack([crossed[q].float().mean() if bool(q.any()) else torch.tensor(0.0) for q in quads])


def _large_parts(mask: Tensor, min_area: float) -> Tensor:
    """The 8-connected parts of a (1, 1, H, W) binary mask with at least ``min_area`` texels (a frame is one long
    connected line; the creases and pores the top-hat also picks up are short)."""
    binary = (mask[0, 0] > 0.5).cpu().numpy().astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # label 0: what is not in the mask
    return torch.from_numpy(keep[labels].astype(np.float32)).to(mask)[None, None]


def _ridges(detail: Tensor, weight: Tensor, masks: dict[str, Tensor], params: EyewearParams
            ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """The ridges of a detail layer ((1, 1, U, U) 0/1), the eyewear zones, and the ring test's cover (2, 4)."""
    U = detail.shape[-1]
    lum = luminance(detail).clamp(min=_EPS)
    lum = lum * weight + (1.0 - weight)  # unseen texels read as plain skin
    tophat = torch.stack([black_tophat(lum, max(1, round(r * U))) for r in params.widths]).amax(0)
    ridges = (tophat > params.depth).float()
    zones = eyewear_zones(masks, params)
    covers = []
    for side in ("left", "right"):
        cx = _eye_frame(masks[f"{side}_eye"])[0]
        covers.append(ring_cover(ridges, zones[f"angle_{side}"], zones[f"radius_{side}"], zones["rings"],
                                 params.sectors, nose_right=cx < U / 2.0))
    return ridges, zones, torch.stack(covers)


def _frame_core(ridges: Tensor, zones: dict[str, Tensor], params: EyewearParams) -> Tensor:
    """The ridges in the rings and temples that form large connected parts: (1, 1, U, U) 0/1."""
    U = ridges.shape[-1]
    return _large_parts(ridges * (zones["rings"] + zones["temples"]).clamp(0.0, 1.0), params.min_part * U * U)


def find_eyewear(detail: Tensor, weight: Tensor, masks: dict[str, Tensor],
                 params: EyewearParams = EyewearParams()) -> Eyewear:
    """Glasses in a source albedo detail layer (see the module docstring): (1, 3, U, U) linear detail, (1, 1, U, U)
    weight (what the photos saw), region masks at U -> :class:`Eyewear`."""
    U = detail.shape[-1]
    ridges, zones, cover = _ridges(detail, weight, masks, params)
    found = bool((cover >= params.quadrant_cover).all())
    zero = torch.zeros_like(ridges)
    if not found:
        return Eyewear(found=False, mask=zero, lens=zero, cover=cover)
    grow = params.grow * U
    core = _frame_core(ridges, zones, params) * (1.0 - masks["brows"] * params.brow_keep)
    mask = gaussian_blur(dilate(core, grow), grow).clamp(0.0, 1.0) * masks["face"]
    inside = torch.zeros_like(ridges)
    for side in ("left", "right"):
        inside = torch.maximum(inside, (zones[f"radius_{side}"] <= 1.0).float())
    lens = (inside * zones["rings"] * (1.0 - mask)).clamp(0.0, 1.0)
    return Eyewear(found=True, mask=mask, lens=gaussian_blur(lens, grow), cover=cover)


def inner_creases(core: Tensor, angle: Tensor, radius: Tensor, band: float, below: float, sectors: int) -> Tensor:
    """Ridges below an eye that lie inside the rim: (1, 1, U, U) 0/1 ridges, angles and elliptical radii about the
    eye's zone centre (:func:`eyewear_zones`) -> (1, 1, U, U) bool, the ridge texels below the eye (``sin(angle) >
    below``, y down) more than ``band`` inside the outermost ridge texel (largest radius) of their angular sector
    and its two neighbours (``sectors`` around the circle)."""
    low = (core > 0.5) & (radius <= 1.0) & (torch.sin(angle) > below)
    index = ((angle + math.pi) / (2.0 * math.pi / sectors)).long().clamp(0, sectors - 1)
    outermost = torch.zeros(sectors, dtype=radius.dtype, device=radius.device)
    outermost = outermost.scatter_reduce(0, index[low], radius[low], "amax")
    # with each sector's neighbours: near the centre a sector is narrower than a texel and may hold no rim texel
    outermost = torch.stack([outermost.roll(1), outermost, outermost.roll(-1)]).amax(0)
    return low & (radius < outermost[index] - band)


def eyewear_frame(detail: Tensor, weight: Tensor, masks: dict[str, Tensor],
                  params: EyewearParams = EyewearParams()) -> Tensor | None:
    """Where the glasses' frame itself lies -- rims, bridge and temples -- in one photo's detail layer, whose colour
    the de-lighting keeps rather than edits as skin's (``source_eyewear: keep``): (1, 3, U, U) linear
    detail, (1, 1, U, U) weight -> (1, 1, U, U) in [0, 1] (grown and softened by ``grow``), or None when the ring
    test finds no glasses.

    Narrower than :func:`find_eyewear`'s mask (everything the removal refills): the creases and bags of the lower
    lids that meet a rim from inside the lens stay the face's (:func:`inner_creases`), and so do the brows (grown by
    ``rim_brow_clear``): on Grace Hopper's photo both were taken with the frame and kept their reddened shadow's
    colour as red smears inside the lenses and above the bar."""
    ridges, zones, cover = _ridges(detail, weight, masks, params)
    if not bool((cover >= params.quadrant_cover).all()):
        return None
    U = detail.shape[-1]
    core = _frame_core(ridges, zones, params)
    for side in ("left", "right"):
        inner = inner_creases(core, zones[f"angle_{side}"], zones[f"radius_{side}"], params.rim_band,
                              params.rim_below, params.rim_sectors)
        core = core * (~inner).float()
    core = core * (1.0 - dilate((masks["brows"] > 0.5).float(), params.rim_brow_clear * U))
    grow = params.grow * U
    return gaussian_blur(dilate(core, grow), grow).clamp(0.0, 1.0) * masks["face"]


def remove_eyewear(detail: Tensor, weight: Tensor, eyewear: Eyewear, params: EyewearParams = EyewearParams()
                   ) -> Tensor:
    """The detail with the eyewear removed: rims and temples refilled from the surrounding skin's low-pass, and the
    brighter-than-skin detail and the tint (chroma relative to the skin) in the lenses reduced to ``lens_keep``.
    (1, 3, U, U) -> the same; unchanged when nothing was found."""
    if not eyewear.found:
        return detail
    U = detail.shape[-1]
    outside = weight * (1.0 - eyewear.mask).clamp(0.0, 1.0) ** 4
    fill, reach = normalized_blur(detail, outside, max(params.fill_sigma * U, 0.5))
    wide, wide_reach = normalized_blur(detail, outside, max(2.0 * params.fill_sigma * U, 0.5))
    fill = torch.where(reach > 0.05, fill, torch.where(wide_reach > 1e-3, wide, torch.ones_like(fill)))
    out = detail * (1.0 - eyewear.mask) + fill * eyewear.mask
    lum = luminance(out).clamp(min=_EPS)
    bright = (lum - 1.0).clamp(min=0.0)
    cut = (1.0 - params.lens_keep) * eyewear.lens
    target = lum - bright * cut
    chroma = 1.0 + (out / lum - 1.0) * (1.0 - cut)  # the lens's tint relative to the skin goes with its sheen
    return target * chroma


def soften_eyewear(eyewear: Eyewear, amount: float) -> Eyewear:
    """The found eyewear with its removal masks scaled by ``amount`` in [0, 1]: :func:`remove_eyewear` then takes out
    that fraction of the rims' and temples' darkness and of the lenses' glints and tint (``source_eyewear:
    soften``: the glasses stay, at ``1 - amount`` of their contrast). Nothing found: returned as it is."""
    if not eyewear.found:
        return eyewear
    k = float(min(max(amount, 0.0), 1.0))
    return Eyewear(found=True, mask=eyewear.mask * k, lens=eyewear.lens * k, cover=eyewear.cover)


def borrow_region(eyewear: Eyewear, params: EyewearParams = EyewearParams()) -> Tensor:
    """Where the source does not show its own face: the removed rims and temples and the lenses, feathered by
    ``borrow_feather``: (1, 1, U, U) in [0, 1] (zero when nothing was found)."""
    region = torch.maximum(eyewear.mask, eyewear.lens * params.borrow_lens)
    if not eyewear.found:
        return region
    U = region.shape[-1]
    return torch.maximum(region, gaussian_blur(region, params.borrow_feather * U)).clamp(0.0, 1.0)


def borrow_detail(detail: Tensor, weight: Tensor, region: Tensor, other: Tensor, other_weight: Tensor,
                  band: float) -> Tensor:
    """Texels the source does not show take their detail from another view (issue 12: each texel from the photos
    that see it best): inside ``region`` the result is the source's low band (its skin's tone and colour, a
    normalised blur of sigma ``band * U`` over what the source saw) times the other view's high band (its luminance
    over its own low band: brows, lid creases, skin texture), blended by ``region``; outside it the detail is
    returned exactly. Where the other view saw little (``other_weight`` below 0.5) its high band fades to 1.

    detail (1, 3, U, U) linear, weight (1, 1, U, U) what the source saw, region (1, 1, U, U) in [0, 1],
    other (1, 3, U, U) the other view's albedo (any scale), other_weight (1, 1, U, U) -> (1, 3, U, U).
    """
    sigma = max(band * detail.shape[-1], 0.5)
    low, _ = normalized_blur(detail, weight, sigma)
    lum = luminance(other).clamp(min=_EPS)
    other_low, reach = normalized_blur(lum, other_weight, sigma)
    trust = (other_weight / 0.5).clamp(0.0, 1.0) * (reach > 0.05).float()
    high = 1.0 + (lum / other_low.clamp(min=_EPS) - 1.0) * trust
    blended = detail * (1.0 - region) + low * high * region
    return torch.where(region > 0, blended, detail)


@dataclass(frozen=True)
class LensZones:
    """Where :func:`lens_cover` looks, for one texture space (made once per size: :meth:`of`): ``zones`` (2, 1, U, U)
    each eye's zone (:func:`eyewear_zones`' ellipse, off the eye opening), ``where`` (1, 1, U, U) the zones, the eye
    openings and the temples' band (what a cover may take), ``skin`` (1, 1, U, U) the inner skin (the reference)."""

    zones: Tensor
    where: Tensor
    skin: Tensor

    @classmethod
    def of(cls, masks: dict[str, Tensor], params: EyewearParams = EyewearParams()) -> "LensZones":
        z = eyewear_zones(masks, params)
        zones = torch.cat([(z[f"radius_{side}"] <= 1.0).float() * (z["rings"] > 0.5).float()
                           for side in ("left", "right")])
        where = (z["rings"] + z["temples"] + dilate(masks["eyes"], params.lash * 4)).clamp(0.0, 1.0)
        return cls(zones, where, (masks["inner_skin"] > 0.5).float())

    def to(self, device: torch.device | str) -> "LensZones":
        return LensZones(self.zones.to(device), self.where.to(device), self.skin.to(device))


def lens_cover(texture: Tensor, weight: Tensor, zones: LensZones, level: float = 0.3, share: float = 0.5,
               grow: float = 0.06, soften: float = 0.03) -> Tensor | None:
    """Opaque lenses over unwrapped faces: (K, 3, U, U) linear light (not de-lit) and their (K, 1, U, U) weights
    -> (K, 1, U, U) cover in [0, 1] (0 on the faces that wear none), or None when none does.

    A texel is dark where its luminance is under ``level`` x the median over the face's inner skin. A face wears
    opaque lenses when at least ``share`` of each eye's zone is dark; its cover is then the dark texels of the
    zones, the eye openings and the temples' band, grown by ``grow`` x U (over the frame's paler edge and its
    shadow) and softened by ``soften`` x U."""
    K, U = texture.shape[0], texture.shape[-1]
    lum = luminance(texture)
    seen = (weight > 0.5).float()
    skin = (zones.skin * seen).reshape(K, -1) > 0
    flat = lum.reshape(K, -1)  # each face's lower median over its skin (the smallest value where it has none)
    reference = torch.stack([f[m].median() if bool(m.any()) else f.min() for f, m in zip(flat, skin)]).view(K, 1, 1, 1)
    dark = (lum < level * reference).float() * seen
    zone = zones.zones[None] * seen[:, None]  # (K, 2, 1, U, U)
    wears = ((dark[:, None] * zone).sum((2, 3, 4)) >= share * zone.sum((2, 3, 4)).clamp(min=1.0)).all(1)
    if not bool(wears.any()):
        return None
    lens = dilate(dark * zones.where * wears.view(K, 1, 1, 1).float(), grow * U)
    return gaussian_blur(lens, soften * U).clamp(0.0, 1.0)


def dark_lenses(texture: Tensor, weight: Tensor, masks: dict[str, Tensor], level: float = 0.3, share: float = 0.5,
                grow: float = 0.06, soften: float = 0.03,
                params: EyewearParams = EyewearParams()) -> Tensor | None:
    """Opaque lenses over the photos' eyes: :func:`lens_cover` of (K, 3, U, U) unwrapped photos (linear light, not
    de-lit) and their (K, 1, U, U) weights in the zones of ``masks`` -> (K, 1, U, U) cover in [0, 1], or None when
    no photo wears them. Measured, the dark share of the left / right zones: the sunglasses of multi_face.jpg's man
    0.82 / 0.88; without them 0.00-0.20 (multi_face.jpg's largest face 0.17 / 0.20, grace_hopper's clear glasses
    0.12 / 0.16)."""
    return lens_cover(texture, weight, LensZones.of(masks, params), level, share, grow, soften)
