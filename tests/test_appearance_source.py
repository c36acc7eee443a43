"""Source albedo: fusion of several photos per texel, masks, the detail layer, the full build on a real photo."""

from __future__ import annotations

import pytest
import torch

from vidswap.appearance.encoding import luminance
from vidswap.appearance.source import (AlbedoParams, beside_cover, build_source_albedo, detail_layer,
                                       fuse_textures, lift_dark, limit_chroma, source_masks)
from vidswap.appearance.texture_space import (build_texture_space, region_masks, render_from_texture, texel_normals,
                                              unwrap)
from vidswap.composite.convert import to_float
from vidswap.faces.pose import canonical_face, matrix_from_euler
from vidswap.faces.topology import load_topology
from vidswap.appearance.texture import texture_confidence


@pytest.fixture(scope="module")
def topo():
    return load_topology()


@pytest.fixture(scope="module")
def space(topo):
    return build_texture_space(canonical_face(), torch.as_tensor(topo.triangles), 128)


@pytest.fixture(scope="module")
def masks(space, topo):
    return source_masks(space, region_masks(space, topo.regions))


def photo(space, yaw: float, colour) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic photo of the canonical face turned by ``yaw`` with a flat albedo ``colour``."""
    R = matrix_from_euler(torch.tensor([yaw]), torch.tensor([0.0]), torch.tensor([0.0]))[0]
    verts = (canonical_face().float() @ R.T * 60 + torch.tensor([100.0, 110.0, 0.0]))[None]
    tex = torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, space.size, space.size)
    image, _ = render_from_texture(space, tex, verts, (220, 200))
    return image, verts


def test_fusion_takes_each_texel_from_the_better_view(space, masks):
    """Photo A turned one way (red), photo B the other way (blue): every texel of the cheek A sees head-on comes
    from A, every texel of the other cheek from B; along the midline, where both see equally, they average."""
    img_a, v_a = photo(space, 40.0, (0.8, 0.1, 0.1))
    img_b, v_b = photo(space, -40.0, (0.1, 0.1, 0.8))
    imgs, verts = torch.cat([img_a, img_b]), torch.cat([v_a, v_b])
    vis = texture_confidence(verts, space.triangles, image_size=(220, 200))
    tex, w = unwrap(space, imgs, verts, vis)
    fused, best = fuse_textures(tex, w, power=4.0)
    U = space.size
    # texels both photos sampled cleanly (inside their renders), so A's share of a texel reads off its red
    clean = ((tex[0, 0] - 0.8).abs() < 0.01) & ((tex[1, 2] - 0.8).abs() < 0.01)
    share_a = (fused[0, 0] - 0.1) / 0.7
    a_better = clean & (w[0, 0] > 0.8) & (w[1, 0] < 0.4)
    b_better = clean & (w[1, 0] > 0.8) & (w[0, 0] < 0.4)
    assert int(a_better.sum()) > 200 and int(b_better.sum()) > 200
    # each view's share is w^4 / sum w^4: at twice the weight, at least 94% of the texel
    expected = w[0, 0] ** 4 / (w[0, 0] ** 4 + w[1, 0] ** 4)
    seen = clean & (w[0, 0] + w[1, 0] > 0.2)
    assert float((share_a - expected)[seen].abs().max()) < 0.01
    assert float(share_a[a_better].min()) > 0.94 and float(share_a[b_better].max()) < 0.06
    # the two sides are on opposite sides of the layout's centre column
    cols_a = torch.nonzero(a_better)[:, 1].float().mean()
    cols_b = torch.nonzero(b_better)[:, 1].float().mean()
    assert (cols_a - (U - 1) / 2) * (cols_b - (U - 1) / 2) < 0
    # where both see alike (the midline), the texel is their mix
    even = clean & ((w[0, 0] - w[1, 0]).abs() < 0.02) & (w[0, 0] > 0.5)
    assert int(even.sum()) > 20 and float((share_a[even] - 0.5).abs().max()) < 0.05
    assert torch.equal(best, w.amax(0, keepdim=True))


def test_fusion_of_equal_views_is_their_mean():
    tex = torch.stack([torch.full((3, 4, 4), 0.2), torch.full((3, 4, 4), 0.6)])
    w = torch.full((2, 1, 4, 4), 0.7)
    fused, _ = fuse_textures(tex, w)
    assert torch.allclose(fused, torch.full((1, 3, 4, 4), 0.4))


def test_source_masks(masks, space):
    for name in ("skin", "inner_skin", "lip_line", "eye_surround", "forehead_fade"):
        m = masks[name]
        assert m.shape == (1, 1, space.size, space.size) and float(m.min()) >= 0 and float(m.max()) <= 1
    # the lip line lies in the lips, the eye surround in the skin, the inner skin inside the skin
    assert float((masks["lip_line"] * (1 - masks["lips"])).sum()) == 0
    assert float((masks["eye_surround"] * (1 - masks["skin"])).sum()) == 0
    assert float((masks["inner_skin"] * (1 - masks["skin"])).sum()) == 0
    assert 0 < float(masks["lip_line"].sum()) < float(masks["lips"].sum())
    # the fade is 1 on the lower face and 0 at the top of the forehead
    fade = masks["forehead_fade"][0, 0]
    assert float(fade[-20:].min()) == 1.0 and float(fade[:int(space.uv[:, 1].min()) + 2].max()) == 0.0


def test_detail_layer_of_a_flat_face_is_one(space, masks):
    """A face of one colour under known smooth light: its detail layer is 1 wherever it is well seen (light and
    colour are all the plate's business)."""
    img, verts = photo(space, 10.0, (0.5, 0.35, 0.3))
    vis = texture_confidence(verts, space.triangles, image_size=(220, 200))
    tex, w = unwrap(space, img, verts, vis)
    normals = texel_normals(space, verts)
    detail = detail_layer(space, tex, w, normals, masks)
    sel = (w > 0.9)[0, 0] & (masks["inner_skin"][0, 0] > 0.5)
    assert int(sel.sum()) > 1000
    assert float((detail[0][:, sel] - 1).abs().max()) < 0.02


def test_build_source_albedo_on_a_real_photo(media, detector, mesh, space, masks):
    """The astronaut portrait: detail averages ~1 over the skin, the lips keep their colour relative to the skin
    (redder), the weight is 0 at the top of the forehead (faded) and high on the cheeks."""
    from vidswap.io import read_image

    img = read_image(media("astronaut"))
    dets = detector([img])[0]
    lm = torch.from_numpy(mesh([img], [dets])[0][0].points)[None]
    vis = texture_confidence(lm, space.triangles, image_size=img.shape[:2])
    albedo = build_source_albedo(space, to_float(img)[None], lm, masks, visibility=vis, params=AlbedoParams())
    skin = (masks["inner_skin"] * albedo.weight)[0, 0] > 0.9
    lum = luminance(albedo.detail)[0, 0]
    assert float(lum[skin].mean()) == pytest.approx(1.0, abs=0.05)
    lips = (masks["lips"] * (1 - masks["lip_line"]))[0, 0] > 0.5
    red = albedo.detail[0, 0] / albedo.detail[0, 1].clamp(min=1e-3)
    assert float(red[lips].median()) > float(red[skin].median()) * 1.1
    assert float(albedo.weight[0, 0][: int(space.uv[:, 1].min()) + 2].max()) == 0.0
    assert float(albedo.weight[0, 0][skin].mean()) > 0.95


def _creased_photo(space, masks):
    """The flat face of :func:`photo` with a dark, reddish crease (a wrinkle under hard light) down one cheek."""
    U = space.size
    img, verts = photo(space, 0.0, (0.5, 0.35, 0.3))
    _, seen = unwrap(space, img, verts, texture_confidence(verts, space.triangles, image_size=(220, 200)))
    cheek = (masks["inner_skin"][0, 0] > 0.5) & (masks["mouth_folds"][0, 0] < 0.01) & \
            (masks["eye_surround"][0, 0] < 0.01) & (masks["lips"][0, 0] < 0.01) & (seen[0, 0] > 0.95)
    col = int(cheek[:, : U // 2].sum(0).argmax())
    line = torch.zeros(U, U, dtype=torch.bool)
    line[:, col:col + 2] = cheek[:, col:col + 2]
    tex = torch.tensor((0.5, 0.35, 0.3)).view(1, 3, 1, 1).repeat(1, 1, U, U)
    tex[0][:, line] = torch.tensor((0.3, 0.12, 0.1)).view(3, 1)  # 0.5x as bright, redder than the skin
    R = matrix_from_euler(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]))[0]
    verts = (canonical_face().float() @ R.T * 60 + torch.tensor([100.0, 110.0, 0.0]))[None]
    image, _ = render_from_texture(space, tex, verts, (220, 200))
    return image, verts, line


def test_creases_are_compressed_and_lose_their_shadow_colour(space, masks):
    """A crease darker than the dark knee keeps its place but loses part of its depth, and the reddening of its
    shadow goes with the darkening (on the skin; lips and brows are not touched by either edit). The chroma limit,
    which would take most of the shadow's colour by itself, is off on both sides."""
    img, verts, line = _creased_photo(space, masks)
    vis = texture_confidence(verts, space.triangles, image_size=(220, 200))
    tex, w = unwrap(space, img, verts, vis)
    normals = texel_normals(space, verts)
    off = AlbedoParams(dark_slope=1.0, crease_chroma=0.0, chroma_limit=0.0)
    sel = line & (w[0, 0] > 0.9)
    assert int(sel.sum()) > 20
    depth, redness = {}, {}
    for name, params in (("off", off), ("on", AlbedoParams(chroma_limit=0.0))):
        detail = detail_layer(space, tex, w, normals, masks, params)
        lum = luminance(detail)[0, 0]
        depth[name] = float(1.0 - lum[sel].mean())
        redness[name] = float((detail[0, 0] / detail[0, 1])[sel].mean() - 1.0)
    assert depth["off"] > 0.3  # the crease is there to compress
    assert depth["on"] < 0.95 * depth["off"]  # measured 0.547 -> 0.494
    assert depth["on"] > 0.8 * depth["off"]  # still a crease: identity detail is not erased
    assert redness["off"] > 0.2
    assert redness["on"] < 0.65 * redness["off"]  # measured 0.245 -> 0.129


def test_soft_knee_exact():
    from vidswap.appearance.source import soft_knee

    v = torch.tensor([0.5, 1.0, 1.2, 1.6, 2.2])
    assert torch.allclose(soft_knee(v, 1.2, 0.5), torch.tensor([0.5, 1.0, 1.2, 1.4, 1.7]))
    assert torch.equal(soft_knee(v, 1.2, 1.0), v)


def test_nose_highlight_is_compressed_more_than_a_cheek_highlight(space, masks):
    """A flash highlight on the photo's nose is the photo's light: the nose knee compresses it; the same highlight on
    the cheek (sheen that carries identity) keeps the milder knee of the rest of the face."""
    U = space.size
    R = matrix_from_euler(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]))[0]
    verts = (canonical_face().float() @ R.T * 60 + torch.tensor([100.0, 110.0, 0.0]))[None]
    normals = texel_normals(space, verts)
    nose = masks["nose"][0, 0] > 0.5
    ys, xs = torch.nonzero(nose, as_tuple=True)
    ny, nx = int(ys.float().mean()), int(xs.float().mean())
    cheek = (masks["inner_skin"][0, 0] > 0.5) & (masks["eye_surround"][0, 0] < 0.01) & \
        (masks["mouth_folds"][0, 0] < 0.01) & (torch.arange(U)[None, :] < nx - U // 6)
    cys, cxs = torch.nonzero(cheek, as_tuple=True)
    k = int(((cys - ny).abs() + (cxs - (nx - U // 4)).abs()).argmin())
    cy, cx = int(cys[k]), int(cxs[k])
    tex = torch.tensor((0.5, 0.35, 0.3)).view(1, 3, 1, 1).repeat(1, 1, U, U)
    for y, x in ((ny, nx), (cy, cx)):
        tex[0, :, y - 1:y + 2, x - 1:x + 2] *= 1.8  # a 3x3 highlight, 1.8x the skin
    w = masks["face"].clone()
    peak = {}
    for name, params in (("off", AlbedoParams(nose_slope=1.0)), ("on", AlbedoParams())):
        lum = luminance(detail_layer(space, tex, w, normals, masks, params))[0, 0]
        peak[name] = (float(lum[ny, nx]), float(lum[cy, cx]))
    assert peak["off"][0] > 1.2  # there is a highlight to compress
    assert peak["on"][0] < peak["off"][0] - 0.1  # the nose's: compressed
    assert peak["on"][1] == pytest.approx(peak["off"][1], abs=0.01)  # the cheek's: as it was


def test_a_glasses_frame_keeps_its_colour(space, masks):
    """An amber frame around the eyes (darker than the skin and orange): edited as skin, its colour is damped toward
    the skin's; given as ``frames`` with ``frame_keep`` 1, it keeps its own colour (to the chroma blur); 0.7 lies
    between. Its luminance is edited as the skin's either way, and away from the frame the layer is the same up to
    the skin-mean normalisation (one factor per channel)."""
    from vidswap.composite.filters import dilate

    R = matrix_from_euler(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]))[0]
    verts = (canonical_face().float() @ R.T * 60 + torch.tensor([100.0, 110.0, 0.0]))[None]
    normals = texel_normals(space, verts)
    eyes = masks["eyes"]
    band = ((dilate(eyes, 5) > 0.5) & ~(dilate(eyes, 2) > 0.5)).float()
    skin = torch.tensor((0.5, 0.35, 0.3)).view(1, 3, 1, 1)
    amber = torch.tensor((0.8, 0.5, 0.25)).view(1, 3, 1, 1)  # x the skin: darker and orange
    tex = skin * (1.0 + (amber - 1.0) * band)
    w = masks["face"].clone()
    core = ((dilate(eyes, 4) > 0.5) & ~(dilate(eyes, 3) > 0.5))[0, 0] & (w[0, 0] > 0.99)
    far = ~(dilate(band, 10) > 0.5)[0, 0] & (masks["inner_skin"][0, 0] > 0.99)
    assert int(core.sum()) > 40 and int(far.sum()) > 1000
    want = amber / luminance(amber)  # the frame's chroma relative to the skin
    out = {}
    for name, keep, frames in (("skin", 0.7, None), ("0.7", 0.7, band), ("1", 1.0, band)):
        detail = detail_layer(space, tex, w, normals, masks, AlbedoParams(frame_keep=keep), glasses_frame=frames)
        lum = luminance(detail)
        chroma = (detail / lum)[0][:, core].mean(1)
        out[name] = (detail, float((chroma - want.view(3)).abs().max()),
                     float(lum[0, 0][core].mean() / lum[0, 0][far].mean()))
    base = out["skin"][0]
    for name in ("0.7", "1"):
        ratio = out[name][0][0][:, far] / base[0][:, far]
        assert float((ratio - ratio.mean(1, keepdim=True)).abs().max()) < 1e-5  # one factor away from the frame
        assert out[name][2] == pytest.approx(out["skin"][2], rel=1e-4)  # the frame's depth edited as the skin's
    assert out["1"][1] < 0.05 < out["0.7"][1] < out["skin"][1]  # measured 0.035 / 0.27 / 0.50


def test_brow_band_is_covered_where_a_fringe_hid_the_forehead(space, masks):
    """A fringe hides the photo's forehead down to its brows: the render still covers the band just above the
    brows (plain skin under the plate's light, weight 1) so the plate's own brows cannot show above the source's;
    the top of the forehead stays the plate's."""
    U = space.size
    img, verts = photo(space, 0.0, (0.5, 0.35, 0.3))
    brow_rows = torch.nonzero(masks["brows"][0, 0].amax(1) > 0.5)[:, 0]
    validity = torch.ones(1, 1, *img.shape[-2:])
    top_y = float(verts[0, :, 1].min())
    brow_y = float(verts[0, [70, 63, 105, 66, 107, 300, 293, 334, 296, 336], 1].min())  # the brows' upper edge
    validity[..., : int(brow_y) - 1, :] = 0.0
    assert brow_y - top_y > 20  # there is a forehead to hide
    vis = texture_confidence(verts, space.triangles, image_size=tuple(img.shape[-2:]))
    without = {k: v for k, v in masks.items() if k != "brow_band"}
    a = build_source_albedo(space, img, verts, masks, visibility=vis, validity=validity)
    b = build_source_albedo(space, img, verts, without, visibility=vis, validity=validity)
    above = int(brow_rows.min()) - int(0.03 * U)  # 0.03 U above the brows
    cols = masks["brows"][0, 0, int(brow_rows.min()) + 1] > 0.5
    assert float(b.weight[0, 0, above][cols].max()) < 0.5  # the fringe took the band out ...
    assert float(a.weight[0, 0, above][cols].min()) > 0.99  # ... the brow band puts it back
    assert torch.allclose(a.detail[0, :, above][:, cols], torch.ones(3, int(cols.sum())), atol=0.05)  # plain skin
    top = int(space.uv[:, 1].min()) + 2
    assert float(a.weight[0, 0, :top].max()) == 0.0  # the forehead's top stays the plate's
    assert "brow_band" in masks and float(masks["brow_band"].max()) == pytest.approx(1.0, abs=1e-3)


def test_a_flash_lit_smile_does_not_turn_into_glowing_albedo(media, detector, mesh, space, masks):
    """single_face.jpg, a broad smile under a flash: the nine-band fit puts the lids, the nose's base and the mouth's
    corners far below the face's mean light while the photo shows them lit. Divided by that (the old floor, 0.08 of
    the mean) the skin's detail reaches several times the skin's, which renders as glowing patches; with the
    default floor (0.6) it stays near the skin's range."""
    from vidswap.io import read_image

    img = read_image(media("single_face_image"))
    dets = detector([img])[0]
    lm = torch.from_numpy(mesh([img], [dets])[0][0].points)[None]  # its one face
    vis = texture_confidence(lm, space.triangles, image_size=img.shape[:2])
    def p99(params):
        albedo = build_source_albedo(space, to_float(img)[None], lm, masks, visibility=vis, params=params)
        skin = (masks["skin"] * albedo.weight)[0, 0] > 0.5
        return float(torch.quantile(luminance(albedo.detail)[0, 0][skin], 0.99))

    assert AlbedoParams().min_shading == 0.6
    assert p99(AlbedoParams(min_shading=0.08)) > 2.5  # measured 3.76
    assert p99(AlbedoParams()) < 1.8  # measured 1.53


def test_limit_chroma_exact():
    """Each channel's deviation d from 1 becomes 0.05 tanh(d / 0.05), then the chroma is scaled to its luminance
    before: (1.2, 0.95, 0.9) -> (1.04997, 0.96192, 0.95180) x (0.2126 x 1.2 + 0.7152 x 0.95 + 0.0722 x 0.9) /
    (its own luminance); limit 0 returns the chroma itself."""
    chroma = torch.tensor([1.2, 0.95, 0.9]).view(1, 3, 1, 1)
    limited = 1.0 + 0.05 * torch.tanh((chroma - 1.0) / 0.05)
    assert torch.allclose(limited.flatten(), torch.tensor([1.04997, 0.96192, 0.95180]), atol=1e-5)
    expected = limited * (luminance(chroma) / luminance(limited))
    assert torch.allclose(limit_chroma(chroma, 0.05), expected, atol=1e-7)
    assert torch.allclose(luminance(limit_chroma(chroma, 0.05)), luminance(chroma), atol=1e-6)
    assert limit_chroma(chroma, 0.0) is chroma


def test_a_low_resolution_photos_colour_blotches_are_limited_on_the_skin(media, detector, mesh, space, masks):
    """single_face.jpg, a small warm JPEG face: its skin's detail is red by more than 0.12 at the 95th percentile
    without the chroma limit (measured 0.148), near the limit with it (measured 0.068); the lips keep their
    colour (their red over green changes by one factor over all of them: the albedo's colour balance, which the
    skin sets, not the lips' own variation)."""
    from vidswap.io import read_image

    img = read_image(media("single_face_image"))
    dets = detector([img])[0]
    lm = torch.from_numpy(mesh([img], [dets])[0][0].points)[None]
    vis = texture_confidence(lm, space.triangles, image_size=img.shape[:2])
    red, lips = {}, {}
    for limit in (0.0, 0.05):
        albedo = build_source_albedo(space, to_float(img)[None], lm, masks, visibility=vis,
                                     params=AlbedoParams(chroma_limit=limit))
        d = albedo.detail[0]
        skin = (masks["skin"] * albedo.weight)[0, 0] > 0.5
        on_lips = (masks["lips"] * albedo.weight)[0, 0] > 0.5
        red[limit] = float(torch.quantile((d[0] / luminance(albedo.detail)[0, 0])[skin] - 1.0, 0.95))
        lips[limit] = (d[0] / d[1])[on_lips]
    assert red[0.0] > 0.12 and red[0.05] < 0.08, red
    factor = lips[0.05] / lips[0.0]
    assert float(factor.std()) < 1e-4 and abs(float(factor.mean()) - 1.0) < 0.01


def test_beside_cover_marks_the_forehead_skin_next_to_what_covers_it():
    """Exact geometry on a 64-texel square face: rows 0-9 covered, brows over rows 30-33 and columns 10-53. Within
    the reach (0.04 x 64 = 2.6 texels, dilated then blurred) of the cover, the skin is marked; the cover itself,
    the brows' surround (within 0.015 x 64 = 1 texel, softly to 0.035 x 64 = 2.2), everything from the brows'
    lowest row down, and a face that nothing covers, are not."""
    U = 64
    face = torch.ones(1, 1, U, U)
    brows = torch.zeros(1, 1, U, U)
    brows[..., 30:34, 10:54] = 1.0
    valid = torch.ones(1, 1, U, U)
    valid[..., :10, :] = 0.0
    band = beside_cover(valid, {"face": face, "brows": brows}, 0.04)
    assert band.shape == (1, 1, U, U)
    assert float(band[..., :10, :].abs().max()) == 0.0  # the cover itself
    assert float(band[..., 33:, :].abs().max()) == 0.0  # the brows' lowest row and below
    assert float(band[..., 10, 32]) > 0.95  # the skin right under the cover
    assert float(band[..., 20:, :].max()) < 1e-3  # beyond the reach
    assert float(beside_cover(torch.ones_like(valid), {"face": face, "brows": brows}, 0.04).abs().max()) == 0.0
    # a cover down to the brows: their own texels and their surround stay unmarked
    valid[..., :29, :] = 0.0
    band = beside_cover(valid, {"face": face, "brows": brows}, 0.04)
    assert float(band[..., 30:34, 10:54].max()) < 1e-6
    assert float(band[..., 28, 32]) == 0.0  # covered
    assert float(band[..., 29, 32]) < 1e-3  # beside the cover, next to the brows
    assert float(band[..., 29, 2]) > 0.95  # beside the cover, 8 texels from the brows' ends


def test_lift_dark_raises_only_what_is_darker_than_the_skin():
    detail = torch.tensor([[0.5, 0.25, 0.25], [1.2, 1.2, 1.2], [0.8, 0.8, 0.8]]).T.reshape(1, 3, 1, 3)
    detail = torch.cat([detail, torch.full((1, 1, 1, 3), 0.7)], 1)  # a 4th channel passes through
    full = lift_dark(detail, torch.ones(1, 1, 1, 3))
    assert torch.allclose(luminance(full[:, :3])[0, 0, 0, [0, 2]], torch.ones(2), atol=1e-6)  # raised to the skin
    assert torch.allclose(full[0, :3, 0, 0] / full[0, 0, 0, 0], torch.tensor([1.0, 0.5, 0.5]))  # colour kept
    assert torch.equal(full[:, :, :, 1], detail[:, :, :, 1])  # brighter: unchanged
    assert torch.equal(full[:, 3], detail[:, 3])
    assert torch.equal(lift_dark(detail, torch.zeros(1, 1, 1, 3)), detail)
    half = lift_dark(detail, torch.full((1, 1, 1, 3), 0.5))
    assert float(luminance(half[:, :3])[0, 0, 0, 2]) == pytest.approx(0.9, abs=1e-6)  # 0.8 x (1 + 0.25 / 2)


def test_a_fringes_shadow_is_lifted_and_the_brows_kept(space, masks):
    """A photo whose fringe hides the forehead above a row 0.06 U over the brows, with the fringe's shadow (0.7 of
    the skin) in the 0.02 U of skin under it, and dark brows (0.4): the shadow's texels become skin (detail
    luminance within 0.03 of 1; 0.75 or darker with ``cover_shadow: 0``), the brows are the same either way."""
    U = space.size
    rows = torch.arange(U).view(1, 1, U, 1).float()
    brow_top = float(torch.nonzero(masks["brows"][0, 0].amax(1) > 0.5)[0, 0])
    edge = brow_top - 0.06 * U
    shadow = ((rows >= edge) & (rows < edge + 0.02 * U)).float().expand(1, 1, U, U)
    skin = torch.tensor((0.5, 0.35, 0.3)).view(1, 3, 1, 1)
    tex = skin * (1.0 - 0.6 * masks["brows"]) * (1.0 - 0.3 * shadow)
    covered = (rows < edge).float().expand(1, 1, U, U)
    R = matrix_from_euler(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]))[0]
    verts = (canonical_face().float() @ R.T * 60 + torch.tensor([100.0, 110.0, 0.0]))[None]
    rendered, _ = render_from_texture(space, torch.cat([tex, 1.0 - covered], 1), verts, (220, 200))
    img, validity = rendered[:, :3], rendered[:, 3:4].clamp(0.0, 1.0)
    vis = texture_confidence(verts, space.triangles, image_size=tuple(img.shape[-2:]))
    on = build_source_albedo(space, img, verts, masks, visibility=vis, validity=validity)
    off = build_source_albedo(space, img, verts, masks, visibility=vis, validity=validity,
                              params=AlbedoParams(cover_shadow=0.0))
    cols = masks["brows"][0, 0].amax(0) > 0.5
    band = (shadow[0, 0] > 0.5) & cols[None] & (on.weight[0, 0] > 0.99) & (masks["face"][0, 0] > 0.5)
    band &= rows[0, 0] >= edge + 0.5 * params_margin(U)
    assert int(band.sum()) > 20
    assert float(luminance(off.detail)[0, 0][band].median()) < 0.75
    assert float((luminance(on.detail)[0, 0][band] - 1.0).abs().median()) < 0.05  # measured 0.965
    brows = masks["brows"][0, 0] > 0.5
    assert torch.allclose(on.detail[..., brows], off.detail[..., brows], atol=1e-3)


def params_margin(U: int) -> float:
    """Texels the validity's erosion takes off the covered region's edge (``AlbedoParams.validity_margin``)."""
    return AlbedoParams().validity_margin * U
