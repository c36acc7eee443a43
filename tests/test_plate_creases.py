"""The plate's expression creases on the relit face (vidswap.swap.geometric.plate_creases): exact pieces and the
relit render with and without them."""

import math

import pytest
import torch

from vidswap.appearance.encoding import linear_to_srgb
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology
from vidswap.swap.geometric.core import GeometricSwapConfig
from vidswap.composite.filters import gaussian_blur
from vidswap.swap.geometric.mouth_rest import fold_region
from vidswap.swap.geometric.plate_creases import (FEATURE_SOFT, FOLD_PREFILTER, FOLD_ZONE_WIDTH, MOUTH_MOTION,
                                                  apply_creases, vertex_motion, crease_gate, crease_layer, crease_zone,
                                                  fold_zone, frame_creases, frame_folds, groove_depth_near,
                                                  mouth_motion, plate_features, soft_deadband, take_creases,
                                                  crease_reaches)
from vidswap.swap.geometric.relit import RelitRenderer


@pytest.fixture(scope="module")
def renderer():
    return RelitRenderer(load_topology())


def test_crease_zone_is_the_forehead_and_the_skin_between_the_brows(renderer):
    """On the mesh's masks (U = 128): nothing on the brows or eyes or below the middle between the brows' lowest
    and the eyes' top row; the skin between the brows and the forehead above them are in it (the forehead's top
    fades with the forehead fade); a topology without brows has none."""
    _, masks = renderer.space(128)
    zone = crease_zone(masks, soft=0.0)
    brow_rows = torch.nonzero(masks["brows"][0, 0].amax(1) > 0.5)[:, 0]
    eye_rows = torch.nonzero(masks["eyes"][0, 0].amax(1) > 0.5)[:, 0]
    limit = (float(brow_rows.max()) + float(eye_rows.min())) / 2
    assert float(zone[..., math.ceil(limit):, :].max()) == 0.0
    assert float((zone * masks["brows"]).max()) == 0.0 and float((zone * masks["eyes"]).max()) == 0.0
    brow_cols = torch.nonzero(masks["brows"][0, 0].amax(0) > 0.5)[:, 0]
    mid = (int(brow_cols.min()) + int(brow_cols.max())) // 2  # between the brows, at their rows
    assert float(zone[0, 0, int(brow_rows.float().mean()), mid]) > 0.99
    assert float(zone[0, 0, int(brow_rows.min()) - 8, mid]) > 0.99  # the forehead above them
    assert float(crease_zone({**masks, "brows": torch.zeros_like(masks["brows"])}).abs().max()) == 0.0


def test_vertex_motion_of_the_brows_and_the_gate_exact():
    """The mean length of the brows' offsets: (0.03, 0.04, 0) on two of four brow vertices, zero on the other two
    and elsewhere -> 0.025; the gate is 0 up to 0.01, 0.5 at 0.02, 1 from 0.03."""
    expression = torch.zeros(2, 10, 3)
    expression[1, 2] = torch.tensor([0.03, 0.04, 0.0])
    expression[1, 5] = torch.tensor([0.0, -0.05, 0.0])
    expression[1, 9] = torch.tensor([1.0, 1.0, 1.0])  # not a brow vertex
    motion = vertex_motion(expression, [2, 5, 6, 7])
    assert torch.allclose(motion, torch.tensor([0.0, 0.025]))
    assert torch.allclose(crease_gate(torch.tensor([0.0, 0.01, 0.02, 0.03, 0.2])),
                          torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_frame_creases_scale_the_gate_and_need_brows():
    """The frames' share is the option's amount times the gate of their brows' motion; none at amount 0 or on a
    mesh without brows."""
    regions = {"left_brow": torch.tensor([0, 1]), "right_brow": torch.tensor([2, 3])}
    expression = torch.zeros(2, 5, 3)
    expression[1, :4, 0] = 0.02  # every brow vertex 0.02 to the side: motion 0.02, gate 0.5
    assert torch.allclose(frame_creases(expression, regions, 0.6), torch.tensor([0.0, 0.3]))
    assert frame_creases(expression, regions, 0.0) is None
    assert frame_creases(expression, {"left_brow": torch.tensor([0])}, 1.0) is None


def test_soft_deadband_exact():
    """``x^3 / (x^2 + d^2)``: 0 at 0, half of ``d`` at ``d``, 0.9 x at 3 ``d``, odd."""
    d = 0.02
    x = torch.tensor([0.0, d, 3 * d, -3 * d, -d])
    assert torch.allclose(soft_deadband(x, d), torch.tensor([0.0, d / 2, 2.7 * d, -2.7 * d, -d / 2]), atol=1e-9)


def test_groove_depth_near_grows_the_depth():
    """The depth of a groove (0.05 on column 30) grown by ``near`` x the face height (here 4 px) and softened by half
    that: over 0.95 x 0.05 on and next to the groove, 0 beyond the growth and the blur's reach (4 + 6 px); no
    groove, none."""
    depth = torch.zeros(2, 1, 9, 64)
    depth[0, :, :, 30] = 0.05
    near = groove_depth_near(depth, torch.tensor([400.0, 400.0]), near=0.01)
    assert float(near[0, 0, 4, 29:32].min()) > 0.95 * 0.05 and float(near.max()) <= 0.05 + 1e-7
    assert float(near[0, 0, :, :20].max()) == 0.0 and float(near[0, 0, :, 41:].max()) == 0.0
    assert float(near[1].abs().max()) == 0.0


def _furrow(value: float) -> torch.Tensor:
    lin = torch.full((1, 3, 64, 64), 0.3)
    lin[..., 30:32] = value
    return linear_to_srgb(lin)


def test_crease_layer_takes_a_fold_its_groove_and_lit_sides_and_not_flat_skin():
    """A flat crop has no creases; a furrow two pixels wide, a third darker (linear grey) than the skin, under a blur
    of 8 px (0.02 of a 400 px face): its groove keeps at least 0.8 of log(2/3), the skin beside it (brighter than
    the blur) is its lit side, a few hundredths and at most half the groove's depth; far from it, nothing."""
    heights = torch.tensor([400.0])
    assert float(crease_layer(_furrow(0.3), heights).abs().max()) < 1e-9
    layer = crease_layer(_furrow(0.2), heights)
    assert float(layer[..., 30:32].max()) < 0.8 * math.log(0.2 / 0.3)
    sides = torch.cat([layer[..., 26:30], layer[..., 32:36]], -1)
    assert 0.01 < float(sides.min()) and float(sides.max()) < min(0.05, -0.5 * float(layer[..., 30:32].min()))
    assert float(layer[..., :4].abs().max()) < 1e-9 and float(layer[..., 60:].abs().max()) < 1e-9


def test_crease_layer_no_lone_highlight_and_no_halo_beside_the_plates_features():
    """A bright line with no groove near it (a highlight) is not taken: 0 on it; beside a dark brow that the skin
    mask leaves out, the skin is measured against skin alone and reads nothing, where against the whole crop it
    reads bright."""
    heights = torch.tensor([400.0])
    assert float(crease_layer(_furrow(0.45), heights)[..., 30:32].abs().max()) == 0.0
    brow = torch.full((1, 3, 64, 64), 0.3)
    brow[..., 24:40] = 0.05
    crops = linear_to_srgb(brow)
    skin = torch.ones(1, 1, 64, 64)
    skin[..., 22:42] = 0.0
    beside = (..., slice(None), slice(42, 48))
    assert float(crease_layer(crops, heights, skin)[beside].abs().max()) < 1e-6
    assert float(crease_layer(crops, heights)[beside].max()) > 0.02 or \
        float(crease_layer(crops, heights)[..., 20:24].max()) > 0.02


def test_apply_creases_exact():
    """On the linear render: weight 0 leaves the face exactly; a layer of log(1/2) at weight 1 halves it."""
    face = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    layer = torch.full((1, 1, 8, 8), math.log(0.5))
    weight = torch.zeros(1, 1, 8, 8)
    weight[..., :4] = 1.0
    out = apply_creases(face, layer, weight)
    assert torch.equal(out[..., 4:], face[..., 4:])
    assert torch.allclose(out[..., :4], face[..., :4] * 0.5, atol=1e-7)


def test_plate_features_cover_the_plates_brows_and_eyes(renderer):
    """The brows' and eyes' loops of a face 100 px across, filled and grown by 0.03 of its height."""
    topo = load_topology()
    lm = (canonical_face().float() * 50 + 64)[None]
    loops = [torch.as_tensor(topo.regions[k]) for k in ("left_brow", "right_brow", "left_eye", "right_eye")]
    feats = plate_features(lm, loops, (128, 128), torch.tensor([100.0]))
    for k in (105, 334, 33, 263):  # a brow vertex and an eye corner on each side (MediaPipe)
        x, y = lm[0, k, :2].round().long().tolist()
        assert float(feats[0, 0, y, x]) == 1.0
    assert float(feats[0, 0, int(lm[0, 1, 1]), int(lm[0, 1, 0])]) == 0.0  # the nose tip


@pytest.mark.parametrize("prefilter", [0.0, FOLD_PREFILTER])
def test_take_creases_over_the_weights_box_is_the_whole_crop_computation(prefilter):
    """Worked out frame by frame over the box where the weight is above 0 (plus everything's reach,
    :func:`crease_reaches`), the result is the whole-crop one: the layer of the whole crops over each frame's skin
    (off its features, grown by its own face height), applied by the weight and the skin's fade, with or without
    the folds' prefilter. It writes into the face it is given."""
    topo = load_topology()
    g = torch.Generator().manual_seed(3)
    B, S = 2, 160
    lm = (canonical_face().float() * 60 + 80)[None].expand(B, -1, -1).contiguous()
    crops = torch.rand(B, 3, S, S, generator=g) * 0.6 + 0.2
    face = torch.rand(B, 3, S, S, generator=g) * 0.6 + 0.2
    weight = torch.zeros(B, 1, S, S)
    weight[0, :, 20:60, 40:120] = 0.7
    weight[1, :, 30:50, 50:110] = 1.0
    loops = [torch.as_tensor(topo.regions[k]) for k in ("left_brow", "right_brow", "left_eye", "right_eye")]
    heights = torch.tensor([150.0, 170.0])
    crops[:, :, 60:64] *= 0.5  # a furrow along the box's edge, whose lit side reaches into it
    out = take_creases(face.clone(), crops, weight, heights, lm, loops, prefilter=prefilter)
    skin = 1.0 - torch.cat([plate_features(lm[b:b + 1], loops, (S, S), heights[b:b + 1]) for b in range(B)])
    fade = gaussian_blur(skin, FEATURE_SOFT * heights) * skin
    whole = apply_creases(face, crease_layer(crops, heights, skin, prefilter=prefilter), weight * fade)
    assert torch.allclose(out, whole, atol=1e-6)
    assert torch.equal(out[..., 60:, :], face[..., 60:, :])
    kept = face.clone()
    assert take_creases(kept, crops, torch.zeros_like(weight), heights, lm, loops) is kept
    assert torch.equal(kept, face)


def _light(renderer, size=64):
    from vidswap.appearance.relight import plate_light

    space, masks = renderer.space(size)
    return plate_light({"mean": torch.full((1, 3, size, size), 0.3), "weight": space.covered,
                        "broad": torch.ones(1, 3, size, size),
                        "lighting": torch.tensor([[[1.0 / 0.2820948] + [0.0] * 8]]),  # SH shading 1
                        "edge_blur": torch.tensor([[float("nan")]])}, masks)


def _without_and_with(renderer, crops: torch.Tensor, lm: torch.Tensor, gate: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The relit render of one frame (a plain albedo, the flat test light) without the plate's lines and with
    ``gate`` (``creases`` or ``folds``) at 1; checked on the way: the gate at 0 renders bit for bit as without it,
    and the alpha is the same either way."""
    args = (torch.ones(1, 4, 128, 128), _light(renderer), crops, lm, lm,
            torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]), torch.tensor([0.3, 0.3]))
    plain, alpha = renderer.render(*args)
    zero, zero_alpha = renderer.render(*args, **{gate: torch.zeros(1)})
    assert torch.equal(plain, zero) and torch.equal(alpha, zero_alpha)
    lined, lined_alpha = renderer.render(*args, **{gate: torch.ones(1)})
    assert torch.equal(lined_alpha, alpha)
    return plain, lined


def test_crease_reaches_exact():
    """The pixels each step reads around a result pixel for a 200-px face, a pixel more each: the grooves' growth
    6 and its blur ceil(3 x 3) = 9; the reference blur ceil(3 x 4) = 12; the folds' prefilter ceil(3 x 1.2) = 4;
    the features' growth 6; the fade's blur 6. Tiny faces floor each sigma at 0.5 and the growth at 1."""
    r = crease_reaches(200.0, prefilter=FOLD_PREFILTER)
    assert (r.groove, r.reference, r.prefilter, r.features, r.fade) == (16, 13, 5, 7, 7)
    assert crease_reaches(200.0).prefilter == 0
    tiny = crease_reaches(10.0, prefilter=FOLD_PREFILTER)
    assert (tiny.groove, tiny.reference, tiny.prefilter, tiny.features, tiny.fade) == (4, 3, 3, 2, 3)


def test_the_relit_render_takes_the_plates_glabella_furrow(renderer):
    """A plate crop with a dark vertical furrow between the brows: with ``creases`` 1 the render is darker along
    it, lighter (less so) on the skin just beside it (a fold's lit sides), and exactly as without elsewhere than
    the crease zone; ``creases`` None and 0 give the same render bit for
    bit; the furrow's own crop otherwise does not reach the render (its light is the track's)."""
    lm = (canonical_face().float() * 50 + 64)[None]
    crops = torch.full((1, 3, 128, 128), 0.55)
    gx = int(round(float(lm[0, 9, 0])))  # MediaPipe 9: between the brows
    gy = int(round(float(lm[0, 9, 1])))
    crops[..., gy - 6:gy + 2, gx - 1:gx + 1] = 0.35
    plain, creased = _without_and_with(renderer, crops, lm, "creases")
    assert float((plain - creased)[0, :, gy - 4:gy, gx - 1:gx + 1].min()) > 0.05  # the furrow, darker
    changed = (plain != creased).any(1)[0]
    rows = torch.nonzero(changed.any(1))[:, 0]
    assert int(rows.max()) < int(lm[0, 1, 1])  # nothing at or below the nose tip
    lit = (creased - plain).amax(1)[0]  # the fold's lit sides: beside the furrow only, fainter than it
    cols = torch.nonzero((lit > 0).any(0))[:, 0]
    assert int(cols.min()) >= gx - 12 and int(cols.max()) <= gx + 12
    assert 0.0 < float(lit.max()) < 0.5 * float((plain - creased).max())


def test_each_frames_render_is_its_own_whatever_the_batch(renderer):
    """Farm chunks batch frames differently from one pass: three frames with creases 0, 0.5 and 1 rendered as one
    batch give each frame bit for bit what it gives alone (and a batch without creases, all 0, what it gives with
    them off)."""
    g = torch.Generator().manual_seed(7)
    lm = (canonical_face().float() * 50 + 64)[None]
    lms = torch.cat([lm, lm + 1.5, lm - 1.0])
    crops = torch.rand(3, 3, 128, 128, generator=g) * 0.5 + 0.25
    light = _light(renderer)
    albedo = torch.ones(1, 4, 128, 128)
    eye = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    gates = torch.tensor([0.0, 0.5, 1.0])
    folds = gates.flip(0)
    batch, batch_alpha = renderer.render(albedo, light, crops, lms, lms, eye.expand(3, -1, -1),
                                         torch.tensor([0.3, 0.3]), creases=gates, folds=folds)
    for b in range(3):
        one, one_alpha = renderer.render(albedo, light, crops[b:b + 1], lms[b:b + 1], lms[b:b + 1], eye,
                                         torch.tensor([0.3, 0.3]), creases=gates[b:b + 1], folds=folds[b:b + 1])
        assert torch.equal(one, batch[b:b + 1]) and torch.equal(one_alpha, batch_alpha[b:b + 1])
    off, _ = renderer.render(albedo, light, crops, lms, lms, eye.expand(3, -1, -1), torch.tensor([0.3, 0.3]))
    zero, _ = renderer.render(albedo, light, crops, lms, lms, eye.expand(3, -1, -1), torch.tensor([0.3, 0.3]),
                              creases=torch.zeros(3), folds=torch.zeros(3))
    assert torch.equal(off, zero)
    assert not torch.equal(batch[2:], off[2:])  # the third frame took its creases


def test_the_option_is_range_checked():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="relit_plate_creases must be in"):
            GeometricSwapConfig(relit_plate_creases=bad)
    assert GeometricSwapConfig().relit_plate_creases == 0.5


def test_mouth_motion_and_frame_folds_exact():
    """The mean length of the offsets at the mouth's corners (MediaPipe 61, 291): (0.03, 0.04, 0) at one, 0 at the
    other -> 0.025; the folds' gate is 0 up to 0.03 of it, 1 from 0.10, times the amount; None at amount 0."""
    expression = torch.zeros(3, 478, 3)
    expression[1, 61] = torch.tensor([0.03, 0.04, 0.0])
    expression[2, [61, 291]] = torch.tensor([0.0, 0.2, 0.0])
    expression[:, 13] = 1.0  # not a corner
    assert torch.allclose(mouth_motion(expression), torch.tensor([0.0, 0.025, 0.2]))
    assert MOUTH_MOTION == (0.03, 0.10)
    assert torch.allclose(frame_folds(expression, 0.5), torch.tensor([0.0, 0.0, 0.5]))
    mid = torch.zeros(1, 478, 3)
    mid[0, [61, 291], 0] = 0.065  # halfway: smoothstep 0.5
    assert torch.allclose(frame_folds(mid, 1.0), torch.tensor([0.5]))
    assert frame_folds(expression, 0.0) is None


def test_fold_zone_lies_beside_the_mouth_off_the_lips(renderer):
    """The folds' zone is the mouth-rest fold band at the zone's width: none in the mouth (its softened edge at most
    reaches over the lips' rim) or on the forehead, all of it beside the mouth."""
    _, masks = renderer.space(128)
    zone = fold_zone(masks)
    assert torch.equal(zone, fold_region(masks["mouth"], masks["nose"], masks["skin"], FOLD_ZONE_WIDTH))
    assert torch.equal(masks["fold_zone"], zone)
    mouth = masks["mouth"][0, 0] > 0.99
    rows, cols = torch.nonzero(mouth.any(1))[:, 0], torch.nonzero(mouth.any(0))[:, 0]
    centre = (int(rows.float().mean()), int(cols.float().mean()))
    assert float(zone[0, 0][centre]) == 0.0 and float(zone[0, 0][mouth].max()) < 0.5
    assert float(zone[..., :40, :].max()) == 0.0 and float(zone.max()) > 0.99


def test_the_prefilter_reads_a_broad_fold_and_not_stubble():
    """Stubble (single dark pixels every 4 px, half as bright) reads as grooves without the prefilter and hardly
    with it (0.006 of a 400 px face: 2.4 px); a fold 8 px wide, a third darker, keeps 0.85 of the depth it reads
    without it."""
    heights = torch.tensor([400.0])
    lin = torch.full((1, 3, 64, 64), 0.3)
    lin[..., 2::4, 2::4] = 0.15
    stubble = linear_to_srgb(lin)
    assert float(crease_layer(stubble, heights).min()) < 0.5 * math.log(0.5)
    assert float(crease_layer(stubble, heights, prefilter=FOLD_PREFILTER).min()) > -0.02
    lin = torch.full((1, 3, 64, 64), 0.3)
    lin[..., 28:36] = 0.2
    fold = crease_layer(linear_to_srgb(lin), heights, prefilter=FOLD_PREFILTER)
    unfiltered = crease_layer(linear_to_srgb(lin), heights)
    assert float(fold[..., 31:33].max()) < 0.85 * float(unfiltered[..., 31:33].min()) < 0.0


def test_the_relit_render_takes_the_plates_fold_beside_the_mouth(renderer):
    """A plate crop with a dark fold from beside the nose's wing past the mouth's corner: with ``folds`` 1 the
    render is darker along it, nothing changes on the forehead; ``folds`` None and 0 give the same render bit for
    bit."""
    lm = (canonical_face().float() * 50 + 64)[None]
    crops = torch.full((1, 3, 128, 128), 0.55)
    wing, corner = lm[0, 129, :2], lm[0, 61, :2]  # MediaPipe 129: the left wing of the nose; 61: a mouth corner
    for t in torch.linspace(0.0, 1.0, 40):
        x, y = (wing + t * (corner - wing) + torch.tensor([-3.0, 0.0])).round().long().tolist()
        crops[..., y - 1:y + 2, x - 1:x + 2] = 0.35
    plain, folded = _without_and_with(renderer, crops, lm, "folds")
    assert float((plain - folded).max()) > 0.03  # the fold, darker
    changed = (plain != folded).any(1)[0]
    rows = torch.nonzero(changed.any(1))[:, 0]
    assert int(rows.min()) > int(lm[0, 9, 1])  # nothing up between the brows


def test_the_folds_option_is_range_checked():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="relit_plate_folds must be in"):
            GeometricSwapConfig(relit_plate_folds=bad)
    assert GeometricSwapConfig().relit_plate_folds == 0.5
