"""The source's eyewear in texture space: rings of dark ridge around the eyes are found and refilled from the skin;
plain skin, or arcs above the eyes only (brows, lid creases), give an empty mask; real photos: Grace Hopper's
glasses are found, the astronaut and portrait_m7 (no glasses) get nothing."""

from __future__ import annotations

import math

import pytest
import torch

from vidswap.appearance.encoding import luminance
from vidswap.appearance.eyewear import (EyewearParams, black_tophat, eyewear_frame, eyewear_zones, find_eyewear,
                                        inner_creases, remove_eyewear, ring_cover, soften_eyewear)
from vidswap.appearance.source import build_source_albedo, source_masks
from vidswap.appearance.texture import texture_confidence
from vidswap.appearance.texture_space import build_texture_space, region_masks
from vidswap.composite.convert import to_float
from vidswap.faces.align import MeshCrop, face_height, transform_landmarks, warp_to_crop
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology
from vidswap.io import read_image
from vidswap.swap.geometric.core import GeometricSwapCore
from vidswap.swap.geometric.relit import source_texture_size

U = 128


@pytest.fixture(scope="module")
def masks():
    topo = load_topology()
    space = build_texture_space(canonical_face(), torch.as_tensor(topo.triangles), U)
    return source_masks(space, region_masks(space, topo.regions))


def skin_field(masks, seed: int = 0) -> torch.Tensor:
    """(1, 3, U, U) a skin detail layer: 1 with a little fine noise (+-2 %), a warm tint, over the face."""
    g = torch.Generator().manual_seed(seed)
    noise = 1.0 + 0.02 * (torch.rand(1, 1, U, U, generator=g) * 2 - 1)
    return noise * torch.tensor([1.02, 1.0, 0.97]).view(1, 3, 1, 1)


def eye_frame(mask: torch.Tensor) -> tuple[float, float, float]:
    ys, xs = torch.nonzero(mask[0, 0] > 0.5, as_tuple=True)
    return float(xs.float().mean()), float(ys.float().mean()), float(xs.max() - xs.min()) / 2.0


def ring(masks, rx: float = 1.8, ry: float = 1.5, width: float = 1.2, upper_only: bool = False,
         lower_only: bool = False) -> torch.Tensor:
    """(1, 1, U, U) bool: an elliptical band ``width`` texels wide around each eye (radii in eye half-widths,
    centred half a half-width below the eye), optionally only its upper half (an arc like a brow or lid crease) or
    its lower part (a lower lid's crease or bag)."""
    ys = torch.arange(U).float().view(U, 1)
    xs = torch.arange(U).float().view(1, U)
    out = torch.zeros(U, U, dtype=torch.bool)
    for side in ("left_eye", "right_eye"):
        cx, cy, w = eye_frame(masks[side])
        zy = cy + 0.5 * w
        r = (((xs - cx) / (rx * w)) ** 2 + ((ys - zy) / (ry * w)) ** 2).sqrt()
        band = (r - 1.0).abs() * min(rx, ry) * w <= width / 2
        if upper_only:
            band &= ys < zy - 0.6 * ry * w
        if lower_only:
            band &= ys > zy
        out |= band
    return out[None, None]


def test_black_tophat_reads_a_thin_dark_line_and_nothing_on_flat():
    v = torch.ones(1, 1, 21, 21)
    assert float(black_tophat(v, 3).abs().max()) == 0.0
    v[..., 10, :] = 0.4  # a one-texel dark line, 60 % below its surroundings
    th = black_tophat(v, 2)
    assert float(th[..., 10, :].min()) == pytest.approx(0.6, abs=1e-6)
    assert float(th[..., :9, :].abs().max()) == 0.0


def test_black_tophat_closing_is_the_square_pools():
    """The square dilation and erosion (OpenCV's on the CPU, the torch passes elsewhere) are the 2-D square pools'
    values exactly, the border replicated; the top-hat closes with them."""
    import torch.nn.functional as F

    from vidswap.composite.filters import dilate, erode

    g = torch.Generator().manual_seed(4)
    v = torch.rand(2, 1, 37, 29, generator=g) + 0.1
    for r in (1, 2, 5, 20):
        k = 2 * r + 1
        pooled = F.max_pool2d(F.pad(v, (r,) * 4, mode="replicate"), k, 1)
        closing = -F.max_pool2d(-F.pad(pooled, (r,) * 4, mode="replicate"), k, 1)
        for opencv in (True, False):
            grown = dilate(v, r, shape="square", opencv=opencv)
            assert torch.equal(grown, pooled)
            assert torch.equal(erode(grown, r, shape="square", opencv=opencv), closing)
        assert torch.equal(black_tophat(v, r), ((closing - v) / closing).clamp(0.0, 1.0))


def test_large_parts_are_8_connected():
    """A diagonal line is one 8-connected part; parts smaller than the area go."""
    from vidswap.appearance.eyewear import _large_parts

    mask = torch.zeros(1, 1, 12, 12)
    for i in range(6):
        mask[0, 0, i, i] = 1.0  # 6 texels touching at corners
    mask[0, 0, 9:11, 2:4] = 1.0  # a 2 x 2 block: 4 texels
    assert torch.equal(_large_parts(mask, 5), (mask * (torch.arange(12)[:, None] < 6)).float())
    assert torch.equal(_large_parts(mask, 4), mask)
    assert float(_large_parts(mask, 7).sum()) == 0.0 and float(_large_parts(torch.zeros(1, 1, 4, 4), 1).sum()) == 0.0


def test_ring_cover_counts_quadrants():
    """A full circle crosses every sector; its upper half crosses the 'above' quadrant and half of each side's."""
    n = 41
    ys, xs = torch.meshgrid(torch.arange(n).float(), torch.arange(n).float(), indexing="ij")
    angle, radius = torch.atan2(ys - 20, xs - 20)[None, None], ((xs - 20) ** 2 + (ys - 20) ** 2).sqrt()[None, None] / 18
    circle = ((radius * 18 - 15).abs() <= 1.0).float()
    zone = torch.ones_like(circle)
    assert ring_cover(circle, angle, radius, zone, 24, nose_right=True).tolist() == [1.0, 1.0, 1.0, 1.0]
    upper = circle * (ys < 20).float()[None, None]
    cover = ring_cover(upper, angle, radius, zone, 24, nose_right=True)
    assert cover[0] == 1.0 and cover[1] == 0.0 and cover[2] == pytest.approx(0.5) and cover[3] == pytest.approx(0.5)


def test_a_ring_of_dark_ridge_is_found_and_removed(masks):
    """Dark rims (40 % of the skin) around both eyes and a lens glint: found on both eyes in all four quadrants; the
    mask holds every rim texel off the brows and nothing far from the rims; after removal the rims are skin again
    (within 6 %), the skin away from them is untouched, and the glint is compressed."""
    skin = skin_field(masks)
    rims = ring(masks)
    weight = masks["face"]
    detail = torch.where(rims, skin * 0.4, skin)
    cx, cy, w = eye_frame(masks["left_eye"])
    gy, gx = int(round(cy + 0.5 * w + 0.9 * 1.5 * w * 0.5)), int(round(cx))  # inside the lens, below the eye
    detail[..., gy - 1:gy + 2, gx - 1:gx + 2] *= 1.5
    found = find_eyewear(detail, weight, masks)
    assert found.found and bool((found.cover == 1.0).all())
    off_brows = rims & (masks["brows"] < 0.5)
    assert int(off_brows.sum()) > 150
    assert float(found.mask[off_brows].min()) > 0.9
    far = torch.nn.functional.max_pool2d(rims.float(), 9, 1, 4) < 0.5
    assert float(found.mask[far].max()) == 0.0
    out = remove_eyewear(detail, weight, found)
    lum = luminance(out)
    assert float((lum[off_brows] - 1.0).abs().max()) < 0.06
    away = (far & (found.lens < 1e-6)).expand(1, 3, U, U)
    assert torch.allclose(out[away], detail[away], rtol=1e-6, atol=0.0)  # untouched (to float rounding)
    assert float(lum[..., gy, gx]) < 1.0 + 0.5 * 0.3 + 0.03 < float(luminance(detail)[..., gy, gx])


def test_soften_takes_out_that_fraction_of_the_frame(masks):
    """``soften``: the removal masks scaled; 0 leaves the detail as it is, 1 is the full removal, 0.5 leaves the rims
    half way between their own darkness and the skin; nothing found is returned as it is."""
    skin = skin_field(masks)
    rims = ring(masks)
    weight = masks["face"]
    detail = torch.where(rims, skin * 0.4, skin)
    found = find_eyewear(detail, weight, masks)
    half = soften_eyewear(found, 0.5)
    assert half.found and torch.equal(half.mask, found.mask * 0.5) and torch.equal(half.lens, found.lens * 0.5)
    torch.testing.assert_close(remove_eyewear(detail, weight, soften_eyewear(found, 0.0)), detail)
    torch.testing.assert_close(remove_eyewear(detail, weight, soften_eyewear(found, 1.0)),
                               remove_eyewear(detail, weight, found))
    off_brows = rims & (masks["brows"] < 0.5)  # every one of these is > 0.9 in the mask (the test above)
    lum = luminance(remove_eyewear(detail, weight, half))[off_brows]
    assert 0.6 < float(lum.min()) and float(lum.max()) < 0.8  # ~ (0.4 + 1) / 2
    nothing = find_eyewear(skin, weight, masks)
    assert soften_eyewear(nothing, 0.5) is nothing


def test_inner_creases_are_the_ridges_inside_the_outermost_one_below_the_eye():
    """On a polar grid: a rim (radius 30 texels of 36), a crease below the eye inside it (radius 15) and an arc above
    the eye at the crease's radius. Exactly the crease is inner; where the rim has a gap, the crease there is the
    outermost ridge of its sectors and is not."""
    n = 81
    ys, xs = torch.meshgrid(torch.arange(n).float(), torch.arange(n).float(), indexing="ij")
    dist = ((xs - 40) ** 2 + (ys - 40) ** 2).sqrt()
    angle, radius = torch.atan2(ys - 40, xs - 40)[None, None], (dist / 36)[None, None]
    below = torch.sin(angle) > 0.35
    rim = ((dist - 30).abs() <= 1.0)[None, None]
    crease = ((dist - 15).abs() <= 1.0)[None, None] & below
    above = ((dist - 15).abs() <= 1.0)[None, None] & (torch.sin(angle) < -0.35)
    core = (rim | crease | above).float()
    assert torch.equal(inner_creases(core, angle, radius, 0.1, 0.35, 72), crease)
    gap = (angle > 1.0) & (angle < 2.1)  # the rim's lower middle missing (about 60 degrees)
    inner = inner_creases((rim & ~gap | crease | above).float(), angle, radius, 0.1, 0.35, 72)
    deep = (angle > 1.2) & (angle < 1.9)  # sectors whose neighbours are inside the gap too
    assert not bool(inner[crease & deep].any()) and bool(inner[crease & ~gap].all())


def test_the_frame_itself_leaves_the_lower_lids_creases_and_the_brows(masks):
    """Rims around both eyes with a lid crease inside each lens below the eye and darkened brows: the frame mask
    holds the rims (off the grown brows), not the creases nor the brows; no glasses, no frame."""
    skin = skin_field(masks)
    rims = ring(masks)
    creases = ring(masks, rx=1.8, ry=0.6, width=1.5, lower_only=True)  # meets the rim at the lens's sides
    brows = masks["brows"] > 0.5
    detail = torch.where(rims | creases | brows, skin * 0.4, skin)
    frame = eyewear_frame(detail, masks["face"], masks)
    assert frame is not None and frame.shape == (1, 1, U, U)
    params = EyewearParams()
    clear = torch.nn.functional.max_pool2d(brows.float(), 7, 1, 3) > 0.5  # the brows grown by ~3 texels
    assert params.rim_brow_clear * U < 2.5
    on_rims = rims & ~clear
    assert int(on_rims.sum()) > 150 and float(frame[on_rims].min()) > 0.9
    near_rim = torch.nn.functional.max_pool2d(rims.float(), 5, 1, 2) > 0.5
    zones = eyewear_zones(masks)
    below = torch.zeros_like(rims)
    for side in ("left", "right"):  # well below each eye (the test's rim_below is 0.35)
        below |= (torch.sin(zones[f"angle_{side}"]) > 0.6) & (zones[f"radius_{side}"] <= 1.0)
    lids = creases & ~near_rim & below
    assert int(lids.sum()) > 30
    assert float(frame[lids].max()) < 0.1
    inner_brows = brows & ~(torch.nn.functional.max_pool2d(rims.float(), 9, 1, 4) > 0.5)
    assert float(frame[inner_brows].max()) < 0.1
    assert eyewear_frame(torch.where(ring(masks, upper_only=True), skin * 0.4, skin), masks["face"], masks) is None


def test_plain_skin_and_arcs_above_the_eyes_give_an_empty_mask(masks):
    """Plain skin, and dark arcs over the upper half of each eye only (brows, lid creases): no glasses, an empty
    mask, the detail returned unchanged."""
    skin = skin_field(masks, seed=1)
    arcs = torch.where(ring(masks, upper_only=True), skin * 0.4, skin)
    for detail in (skin, arcs):
        found = find_eyewear(detail, masks["face"], masks)
        assert not found.found
        assert float(found.mask.abs().max()) == 0.0 and float(found.lens.abs().max()) == 0.0
        assert torch.equal(remove_eyewear(detail, masks["face"], found), detail)
    assert float(find_eyewear(arcs, masks["face"], masks).cover[:, 1].max()) == 0.0  # nothing crosses below


def test_zones_stay_off_the_eye_openings(masks):
    zones = eyewear_zones(masks, EyewearParams())
    assert float((zones["rings"] * masks["eyes"]).max()) == 0.0
    assert float((zones["temples"] * masks["eyes"]).max()) == 0.0
    assert float(zones["rings"].sum()) > 0 and float(zones["temples"].sum()) > 0
    assert math.isclose(float(zones["radius_left"].min()), 0.0, abs_tol=0.1)


@pytest.mark.parametrize("name, glasses", [("grace_hopper", True), ("astronaut", False), ("portrait_m7", False)])
def test_real_photos(media, detector, mesh, name, glasses):
    """The source albedo as the relit core builds it (crop sized to the photo): Grace Hopper's glasses are found
    (rims around both eyes), the astronaut's and portrait_m7's faces (no glasses) get an empty mask."""
    img = read_image(media(name))
    lms = torch.from_numpy(mesh([img], [detector([img])[0]])[0][0].points).float()[None]
    core = GeometricSwapCore()
    size = source_texture_size(float(face_height(lms)[0]))
    crop = MeshCrop(size=32 * math.ceil(1.5 * size / 32), margin=core.config.texture_margin)
    m = crop.frame_to_crop(lms)
    crops = warp_to_crop(to_float(img)[None], m, crop.size)
    lm = transform_landmarks(lms, m)
    space, smasks = core.relit.space(size)
    vis = texture_confidence(lm, space.triangles, image_size=tuple(crops.shape[-2:]))
    albedo = build_source_albedo(space, crops, lm, smasks, visibility=vis)
    found = find_eyewear(albedo.detail, albedo.weight, smasks)
    frame = eyewear_frame(albedo.detail, albedo.weight, smasks)
    assert found.found == glasses and (frame is not None) == glasses
    if glasses:  # the frame itself is part of what the removal refills
        assert float(found.mask.mean()) > 0.02
        assert 0.5 * float(found.mask.mean()) < float(frame.mean()) < float(found.mask.mean())
    else:
        assert float(found.mask.abs().max()) == 0.0


def test_the_setting_is_checked_and_reaches_the_renderer():
    from vidswap.swap.geometric.core import GeometricSwapConfig

    with pytest.raises(ValueError, match="source_eyewear"):
        GeometricSwapConfig(source_eyewear="off")
    assert GeometricSwapCore().relit.eyewear == "keep"
    assert GeometricSwapCore(GeometricSwapConfig(source_eyewear="keep")).relit.eyewear == "keep"
    assert GeometricSwapCore(GeometricSwapConfig(source_eyewear="remove")).relit.eyewear == "remove"


def test_borrow_detail_takes_the_other_views_detail_on_the_sources_tone():
    from vidswap.appearance.eyewear import borrow_detail
    from vidswap.appearance.lighting import normalized_blur
    U, band = 64, 0.05
    gen = torch.Generator().manual_seed(3)
    tone = torch.tensor([0.9, 0.7, 0.6]).view(1, 3, 1, 1)
    detail = tone * (1.0 + 0.1 * torch.rand(1, 3, U, U, generator=gen))
    weight = torch.ones(1, 1, U, U)
    region = torch.zeros(1, 1, U, U)
    region[..., 20:44, 16:48] = 1.0
    region[..., 18:20, 16:48] = 0.5  # a feathered edge
    other = torch.full((1, 3, U, U), 0.5) * (1.0 + 0.2 * torch.rand(1, 1, U, U, generator=gen))
    other[..., 28:31, 20:44] *= 0.3  # a brow the source does not show
    other_weight = torch.ones(1, 1, U, U)
    out = borrow_detail(detail, weight, region, other, other_weight, band)
    assert torch.equal(out[region.expand_as(out) == 0], detail[region.expand_as(detail) == 0])  # exactly unchanged
    low, _ = normalized_blur(detail, weight, band * U)
    lum = luminance(other)
    high = lum / normalized_blur(lum, other_weight, band * U)[0]
    inside = region[0, 0] == 1
    expected = (low * high)[0][:, inside]
    torch.testing.assert_close(out[0][:, inside], expected, rtol=1e-5, atol=1e-6)
    assert float(out[0, 1, 29, 30] / low[0, 1, 29, 30]) < 0.45  # the other view's brow is there, ...
    torch.testing.assert_close(out[0, 0][inside] / out[0, 1][inside], low[0, 0][inside] / low[0, 1][inside])
    # ... on the source's colour; the other view's own level does not matter; an unseen other view lends nothing
    torch.testing.assert_close(borrow_detail(detail, weight, region, 3.0 * other, other_weight, band), out)
    none = borrow_detail(detail, weight, region, other, torch.zeros_like(other_weight), band)
    torch.testing.assert_close(none[0][:, inside], low[0][:, inside])
