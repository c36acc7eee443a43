"""Hand detection, tracking and the hand mask: exact synthetic geometry, and the real models on the sample clip."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from media_helpers import read_frames
from vidswap.composite.occlusion import mattes_to_crop
from vidswap.hands.colour import ColourSplitParams, Gaussian, Mixture, colour_split, edge_aware_smooth
from vidswap.hands.landmarks import fingers_up_angle, rois_from_hand_landmarks, rois_from_palms
from vidswap.hands.mask import (HandMaskParams, box_filter, convex_hull, guided_filter, hand_distance, hand_matte,
                                hand_size, matte_size, polygon_distance, rasterize_hands, segment_distance)
from vidswap.hands.palm import Letterbox, decode_palms, palm_anchors, weighted_nms
from vidswap.hands.pose import person_roi, rois_from_body_keypoints
from vidswap.hands.motion import smooth_series
from vidswap.hands.track import HandTracks
from vidswap.hands.types import swept_shapes


def synthetic_hand(cx: float = 50.0, cy: float = 60.0, s: float = 20.0) -> np.ndarray:
    """(21, 3) an upright open hand: wrist at (cx, cy + s), MCPs on a line at cy, fingers straight up."""
    pts = np.zeros((21, 3))
    pts[0, :2] = (cx, cy + s)
    pts[1:5, :2] = [(cx - 0.6 * s, cy + 0.7 * s - 0.3 * s * k) for k in range(4)]
    for f, x in enumerate((-0.3, 0.0, 0.3, 0.6)):
        base = 5 + 4 * f
        pts[base:base + 4, :2] = [(cx + x * s, cy - 0.4 * s * k) for k in range(4)]
    return pts


# ---------------------------------------------------------------------------------------------------- palm decoding

def test_palm_anchors_layout():
    a = palm_anchors()
    assert a.shape == (2016, 2)
    np.testing.assert_allclose(a[0], [0.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(a[1], a[0])  # two anchors per stride-8 cell
    np.testing.assert_allclose(a[2], [1.5 / 24, 0.5 / 24])  # then the next column
    np.testing.assert_allclose(a[1152], [0.5 / 12, 0.5 / 12])  # six per stride-16 cell after 24*24*2
    np.testing.assert_allclose(a[1157], a[1152])
    np.testing.assert_allclose(a[1158], [1.5 / 12, 0.5 / 12])


def test_decode_palms_one_anchor():
    anchors = palm_anchors()
    raw = np.zeros((2016, 18), np.float32)
    logits = np.full(2016, -10.0, np.float32)
    raw[1160] = [19.2, -9.6, 48, 96] + [1.92, 3.84] * 7
    logits[1160] = 2.0
    boxes, kps, scores = decode_palms(raw, logits, anchors, 0.5)
    assert boxes.shape == (1, 4) and kps.shape == (1, 7, 2)
    np.testing.assert_allclose(boxes[0], [anchors[1160, 0] + 0.1, anchors[1160, 1] - 0.05, 0.25, 0.5], atol=1e-6)
    np.testing.assert_allclose(kps[0, 3], anchors[1160] + [0.01, 0.02], atol=1e-6)
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-2.0))])


def test_weighted_nms_merges_overlaps_and_keeps_separate():
    boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.52, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]])
    kps = np.zeros((3, 7, 2))
    kps[1] += 1.0
    scores = np.array([0.9, 0.6, 0.7])
    b, k, s = weighted_nms(boxes, kps, scores, 0.3)
    assert len(s) == 2 and s[0] == 0.9 and s[1] == 0.7
    np.testing.assert_allclose(b[0, 0], (0.5 * 0.9 + 0.52 * 0.6) / 1.5)
    np.testing.assert_allclose(k[0, 0, 0], 0.6 / 1.5)
    np.testing.assert_allclose(b[1], boxes[2])


def test_letterbox_maps_back_to_frame_pixels():
    lb = Letterbox.fit(640, 360)
    assert lb.scale == 0.3 and lb.pad == (0.0, 42.0)
    # the continuous point (x, y) in frame corners -> normalised input -> back (pixel centre convention: -0.5)
    xy = np.array([[100.5, 200.5]])
    norm = (xy * lb.scale + lb.pad) / 192
    np.testing.assert_allclose(lb.to_frame(norm), [[100.0, 200.0]])
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[:, :320] = 255
    img = lb.image(frame)
    assert img.shape == (192, 192, 3) and img[:42].max() == 0 and img[150:].max() == 0
    assert img[100, 10].min() == 1.0 and img[100, 180].max() == 0.0


# ---------------------------------------------------------------------------------------------------------- ROIs

def test_fingers_up_angle():
    assert fingers_up_angle(np.array([[0.0, 10.0]]), np.array([[0.0, 0.0]]))[0] == pytest.approx(0.0)
    # fingers pointing to the image right: the crop's x axis points down the image
    assert fingers_up_angle(np.array([[0.0, 0.0]]), np.array([[10.0, 0.0]]))[0] == pytest.approx(np.pi / 2)


def test_rois_from_palms_shift_scale():
    boxes = np.array([[100.0, 100.0, 40.0, 50.0]])
    kps = np.zeros((1, 7, 2))
    kps[0, 0], kps[0, 2] = (100, 120), (100, 90)  # upright
    r = rois_from_palms(boxes, kps)
    np.testing.assert_allclose(r.center[0], [100.0, 75.0])  # 0.5 x height towards the fingers
    assert r.size[0] == pytest.approx(130.0) and r.angle[0] == pytest.approx(0.0)


def test_rois_from_hand_landmarks_rotate_with_the_hand():
    pts = synthetic_hand()
    r0 = rois_from_hand_landmarks(pts[None])
    assert r0.angle[0] == pytest.approx(0.0, abs=1e-9)
    c = np.array([50.0, 60.0])
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])  # 90 degrees
    turned = pts.copy()
    turned[:, :2] = (pts[:, :2] - c) @ rot.T + c
    r1 = rois_from_hand_landmarks(turned[None])
    assert r1.angle[0] == pytest.approx(np.pi / 2)
    assert r1.size[0] == pytest.approx(r0.size[0])
    np.testing.assert_allclose(r1.center[0] - c, rot @ (r0.center[0] - c), atol=1e-9)


# -------------------------------------------------------------------------------------------------- mask geometry

def test_segment_and_polygon_distance_exact():
    a, b = np.array([0.0, 0.0]), np.array([10.0, 0.0])
    px = np.array([[5.0, 3.0], [-3.0, 4.0], [13.0, 0.0]])
    np.testing.assert_allclose(segment_distance(px, a, b), [3.0, 5.0, 3.0])
    square = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0], [2.0, 2.0], [4.0, 2.0]])
    hull = convex_hull(square)
    assert len(hull) == 4  # interior and collinear points dropped
    q = np.array([[2.0, 2.0], [6.0, 2.0], [7.0, 8.0], [0.0, 0.0]])
    np.testing.assert_allclose(polygon_distance(q, hull), [0.0, 2.0, 5.0, 0.0])


def test_matte_size_caps_the_wrist_distance_by_the_fingers():
    pts = synthetic_hand(s=20.0)  # proximal phalanges (MCP -> PIP) 8 px
    assert matte_size(pts) == pytest.approx(1.32 * 8.0)
    far = pts.copy()
    far[0, 1] += 60.0  # a wrist guessed far below the frame: the wrist distance grows, the matte's size does not
    assert hand_size(far) == pytest.approx(80.0)
    assert matte_size(far) == pytest.approx(1.32 * 8.0)
    one = pts.copy()
    one[6, 1] -= 12.0  # one long phalanx (20 px) moves the median of 8, 8, 8, 20 not at all; two move it to 14
    assert matte_size(one) == pytest.approx(1.32 * 8.0)
    one[10, 1] -= 12.0
    assert matte_size(one) == pytest.approx(1.32 * 14.0)
    near = pts.copy()
    near[0, 1] = 65.0  # a palm foreshortened to 5 px (fingers read longer): the smaller, the wrist distance
    assert matte_size(near) == pytest.approx(5.0)
    flat = pts.copy()
    flat[5:, :2] = (50.0, 60.0)  # every finger collapsed onto the middle MCP: the wrist distance
    assert matte_size(flat) == pytest.approx(20.0)


def test_hand_distance_is_union_of_hull_and_capsules():
    pts = synthetic_hand()
    p = HandMaskParams(grow=0.0, tip_pull=0.0, finger_radius=(0.16, 0.13, 0.13, 0.12, 0.11))
    assert hand_size(pts) == pytest.approx(20.0)
    s = matte_size(pts)  # the proximal phalanges' 8 px x 1.32
    assert s == pytest.approx(1.32 * 8.0)
    tip = pts[8, :2]  # index tip: a capsule end, radius 0.13 * s
    np.testing.assert_allclose(hand_distance(np.array([tip + [0, -5.0]]), pts, p), [5.0 - 0.13 * s])
    np.testing.assert_allclose(hand_distance(np.array([[50.0, 70.0]]), pts, p), [0.0])  # inside the palm
    grown = HandMaskParams(grow=0.1, tip_pull=0.0, finger_radius=p.finger_radius)
    np.testing.assert_allclose(hand_distance(np.array([tip + [0, -5.0]]), pts, grown), [5.0 - 0.23 * s])
    # the tip capsule pulled back by one radius: the distance beyond the tip grows by that radius
    pulled = HandMaskParams(grow=0.0, tip_pull=1.0, finger_radius=p.finger_radius)
    np.testing.assert_allclose(hand_distance(np.array([tip + [0, -5.0]]), pts, pulled), [5.0])
    # webs fill between neighbouring fingers up to the PIP joints
    mid = (pts[6, :2] + pts[10, :2]) / 2 + [0.0, 0.0]
    webbed = HandMaskParams(grow=0.0, tip_pull=0.0, finger_radius=(0.01,) * 5, webs=True)
    bare = HandMaskParams(grow=0.0, tip_pull=0.0, finger_radius=(0.01,) * 5, webs=False)
    assert hand_distance(mid[None], pts, webbed)[0] == 0.0 and hand_distance(mid[None], pts, bare)[0] > 2.0


def test_rasterized_hand_matches_distance_field():
    pts = synthetic_hand(60, 70, 25)
    m = rasterize_hands(pts[None], 120, 120)
    ys, xs = np.mgrid[0:120, 0:120]
    d = hand_distance(np.stack([xs, ys], -1).astype(float), pts)
    assert (m[d < -1.5] > 0.99).all()  # inside: covered
    assert (m[d > 1.5] < 0.01).mean() > 0.999  # outside: empty (but for a pixel or so at the hull's corners)
    assert (d <= -1).sum() <= (m > 0.5).sum() <= (d <= 1).sum()  # the edge within a pixel of the exact one
    assert rasterize_hands(np.zeros((0, 21, 3)), 10, 10).max() == 0.0


def test_box_and_guided_filter():
    x = np.arange(25, dtype=float).reshape(5, 5)
    np.testing.assert_allclose(box_filter(x, 1)[2, 2], x[1:4, 1:4].mean())
    np.testing.assert_allclose(box_filter(x, 1)[0, 0], x[:2, :2].mean())  # window clipped at the border
    guide = np.zeros((20, 20))
    guide[:, 10:] = 1.0
    src = np.zeros((20, 20))
    src[:, 8:] = 1.0  # mask edge two pixels off the picture's edge
    out = guided_filter(guide, src, 3, 1e-4)
    assert out[10, 10] > 0.99 and out[10, 7] < 0.5  # the step moves onto the guide's edge
    assert out[10, 10] - out[10, 9] > 0.3 > out[10, 8] - out[10, 7]
    np.testing.assert_allclose(guided_filter(guide, np.full((20, 20), 0.7), 3, 1e-3), 0.7)


def test_edge_aware_smooth_keeps_the_guides_edges_and_averages_flat_regions():
    p = np.zeros((24, 24), np.float32)
    p[:, 12:] = 1.0
    p[5, 5] = 1.0  # a speck
    # a flat guide: the local model has no slope (a = 0), so the result is the mean of the window means
    flat = edge_aware_smooth(p, np.full((24, 24), 0.5, np.float32), 2, 1e-3)
    k = cv2.boxFilter(cv2.boxFilter(p, -1, (5, 5), borderType=cv2.BORDER_REPLICATE), -1, (5, 5),
                      borderType=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(flat, k, atol=1e-6)
    # the guide has the decision's edge: it stays a step, where the flat guide spreads it over 8 columns
    guide = np.zeros((24, 24), np.float32)
    guide[:, 12:] = 1.0
    sharp = edge_aware_smooth(p, guide, 2, 1e-4)
    assert sharp[12, 11] < 0.01 and sharp[12, 12] > 0.99
    assert flat[12, 11] > 0.3 and flat[12, 12] < 0.7
    assert sharp[5, 5] < 0.1  # the speck on a flat part of the guide is averaged away
    # every 2nd pixel fitted: the same step, the shape of the input, values in [0, 1]
    fast = edge_aware_smooth(p, guide, 2, 1e-4, step=2)
    assert fast.shape == p.shape and fast.dtype == np.float32 and 0.0 <= fast.min() and fast.max() <= 1.0
    assert fast[12, 10] < 0.05 and fast[12, 13] > 0.95


def test_hand_matte_in_its_box_equals_the_whole_frame_raster():
    pts = synthetic_hand(60, 70, 25)
    plate = np.full((140, 200, 3), 90, np.uint8)
    shape_only = HandMaskParams(colour=None)
    np.testing.assert_array_equal(hand_matte(pts[None], plate, shape_only), rasterize_hands(pts[None], 140, 200,
                                                                                           shape_only))
    edge = synthetic_hand(5, 20, 25)  # partly outside the frame: the box is clipped
    np.testing.assert_array_equal(hand_matte(edge[None], plate, shape_only), rasterize_hands(edge[None], 140, 200,
                                                                                            shape_only))


def test_colour_split_drops_face_coloured_band_and_keeps_hand_colour():
    h = w = 80
    lab = np.zeros((h, w, 3), np.float32)
    lab[...] = (45.0, 12.0, 14.0)  # the face behind: darker
    lab[20:60, 25:55] = (70.0, 18.0, 20.0)  # the hand: a 40x30 block, lighter and pinker
    rng = np.random.default_rng(0)
    lab += rng.normal(0, 1.0, lab.shape).astype(np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[14:66, 19:61] = 1.0  # the landmark shape over-covers by 6 px on every side
    params = ColourSplitParams(inner=0.2, outer=0.1, ring=0.2, blur=0.0, guide_radius=0.0)
    out = colour_split(mask, lab, 40.0, params)
    assert (out[22:58, 27:53] > 0.99).all()  # the hand, core and band, is kept
    over = np.zeros((h, w), bool)
    over[14:66, 19:61] = True
    over[20:60, 25:55] = False
    assert (out[over] < 0.01).all()  # the face the shape over-covered is given back
    assert (out[:10] == 0).all() and (out[:, 70:] == 0).all()  # beyond the band: never hand
    # too little to fit a model: the mask comes back unchanged
    tiny = np.zeros((h, w), np.float32)
    tiny[40, 40] = 1.0
    np.testing.assert_array_equal(colour_split(tiny, lab, 40.0, params), tiny)


def test_colour_split_core_from_the_own_shape_leaves_the_sweep_to_colour():
    h = w = 80
    lab = np.zeros((h, w, 3), np.float32)
    lab[...] = (45.0, 12.0, 14.0)  # the face
    lab[20:60, 25:55] = (70.0, 18.0, 20.0)  # the hand
    lab += np.random.default_rng(0).normal(0, 1.0, lab.shape).astype(np.float32)
    own = np.zeros((h, w), np.float32)
    own[20:60, 25:55] = 1.0
    swept = own.copy()
    swept[20:60, 25:70] = 1.0  # the shape interpolated towards a neighbour frame: 15 px of face to the right
    params = ColourSplitParams(inner=0.2, outer=0.1, ring=0.2, blur=0.0, guide_radius=0.0)
    forced = colour_split(swept, lab, 40.0, params)
    assert (forced[30:50, 55:60] == 1.0).all()  # without core_from the sweep's deep face pixels are core
    out = colour_split(swept, lab, 40.0, params, core_from=own)
    assert (out[30:50, 58:70] < 0.01).all()  # with it, colour gives that face back
    assert (out[30:50, 25:47] == 1.0).all()  # the own shape's core stays hand
    np.testing.assert_array_equal(colour_split(swept, lab, 40.0, params, core_from=swept), forced)


def test_colour_split_releases_the_cores_edge_over_lip_coloured_lips_only():
    """The landmark shape reaches 14 px too high, over the face's lips: its core's top layer (``lips_depth``: 16 px)
    over the lips is decided by the hand's colour against the lips seen beside the hand; lip-coloured pixels go
    back to the face, a skin-coloured finger over the lips stays hand, and nothing changes without the lips."""
    h, w = 100, 120
    lab = np.zeros((h, w, 3), np.float32)
    lab[...] = (65.0, 14.0, 16.0)  # the face's skin: the hand's colour (a finger and a cheek cannot be told apart)
    lab[20:44, 10:110] = (45.0, 40.0, 20.0)  # the lips: a red band across the picture
    lab[44:90, 30:90] = (66.0, 15.0, 17.0)  # the hand, below the lips ...
    lab[36:44, 70:90] = (66.0, 15.0, 17.0)  # ... with one finger up over them
    lab += np.random.default_rng(2).normal(0, 1.0, lab.shape).astype(np.float32)
    mask = np.zeros((h, w), np.float32)
    mask[30:90, 30:90] = 1.0  # the landmark shape: 14 px too high on the left, over the lips
    lips = np.zeros((h, w), np.uint8)
    lips[20:44, 10:110] = 1
    params = ColourSplitParams(inner=0.05, outer=0.05, ring=0.2, blur=0.0, guide_radius=0.0, lips_depth=0.4,
                               lips_margin=1.0)
    forced = colour_split(mask, lab, 40.0, params)
    assert (forced[33:42, 35:65] == 1.0).all()  # without the lips: the core over the lips is hand
    out = colour_split(mask, lab, 40.0, params, lips=lips)
    assert (out[33:42, 35:65] < 0.01).all()  # the lip-coloured top of the core goes back to the face
    assert (out[36:44, 73:87] > 0.99).all()  # the finger over the lips stays hand
    assert (out[50:85, 35:85] == 1.0).all()  # the core below the lips is untouched
    off = replace(params, lips_depth=0.0)
    np.testing.assert_array_equal(colour_split(mask, lab, 40.0, off, lips=lips), forced)


def test_mixture_separates_two_clusters():
    rng = np.random.default_rng(1)
    a = rng.normal((30, 0, 0), 1.0, (300, 3))
    b = rng.normal((70, 20, 20), 1.0, (300, 3))
    mix = Mixture.fit(np.concatenate([a, b]), 2, (1.0, 1.0, 1.0), 4000)
    single = Gaussian.fit(np.concatenate([a, b]), (1.0, 1.0, 1.0), 4000)
    mid = np.array([[50.0, 10.0, 10.0]])
    assert len(mix.parts) == 2
    assert mix.loglik(a[:1])[0] > mix.loglik(mid)[0] + 20  # the gap between the clusters is unlikely ...
    assert single.loglik(a[:1])[0] < single.loglik(mid)[0]  # ... unlike for one Gaussian over both


# ----------------------------------------------------------------------------------------------------- tracks

def test_smooth_series_keeps_constants_and_lines():
    t = np.arange(10, dtype=float)
    np.testing.assert_allclose(smooth_series(np.full((10, 2), 3.0), 1.0), 3.0)
    lin = np.stack([t, 2 * t], 1)
    np.testing.assert_allclose(smooth_series(lin, 1.0)[3:7], lin[3:7], atol=1e-9)  # interior of a line kept


def test_hand_tracks_arrays_round_trip():
    tr = HandTracks(np.array([3, 3, 4]), np.array([0, 1, 0], np.int32),
                    np.arange(189, dtype=np.float32).reshape(3, 21, 3), np.array([0.9, 0.8, 0.7], np.float32))
    back = HandTracks.from_arrays(tr.to_arrays())
    for n in HandTracks.ARRAYS:
        np.testing.assert_array_equal(getattr(back, n), getattr(tr, n))
    assert back.at(3).shape == (2, 21, 3) and back.at(5).shape == (0, 21, 3)
    assert len(HandTracks.from_arrays({})) == 0


def test_hand_tracks_around_gathers_the_neighbouring_frames():
    pts = np.arange(4 * 63, dtype=np.float32).reshape(4, 21, 3)
    tr = HandTracks(np.array([3, 4, 5, 7]), np.zeros(4, np.int32), pts, np.ones(4, np.float32))
    np.testing.assert_array_equal(tr.around(4, 1), pts[:3])
    np.testing.assert_array_equal(tr.around(6, 1), pts[[2, 3]])
    np.testing.assert_array_equal(tr.around(4, 0), tr.at(4))
    assert tr.around(10, 1).shape == (0, 21, 3)


def test_swept_shapes_interpolate_towards_the_neighbours():
    pts = np.zeros((3, 21, 3), np.float32)
    pts[:, :, 0] = np.array([0.0, 10.0, 30.0])[:, None]  # x per row; frames 3, 4, 6
    frames = np.array([3, 4, 6])
    got = swept_shapes(frames, pts, 4, 0.5)
    np.testing.assert_array_equal(got[:, 0, 0], [5.0, 10.0, 15.0])  # half way to 3; a quarter of the way to 6
    np.testing.assert_array_equal(swept_shapes(frames, pts, 3, 0.5)[:, 0, 0], [0.0, 0.0, 5.0])  # first row
    np.testing.assert_array_equal(swept_shapes(frames, pts, 6, 4.0)[:, 0, 0], [10.0, 30.0, 30.0])  # at most all


def test_hand_tracks_swept_per_hand():
    pts = np.zeros((4, 21, 3), np.float32)
    pts[:, :, 1] = np.array([0.0, 100.0, 4.0, 200.0])[:, None]  # y per row
    tr = HandTracks(np.array([3, 3, 4, 5]), np.array([0, 1, 0, 1], np.int32), pts, np.ones(4, np.float32))
    got = tr.swept(4, 0.5)
    assert got.shape == (1, 3, 21, 3)
    np.testing.assert_array_equal(got[0, :, 0, 1], [2.0, 4.0, 4.0])  # hand 0 only: hand 1 is not in frame 4
    np.testing.assert_array_equal(tr.swept(3, 0.0), tr.at(3)[:, None])
    assert tr.swept(9, 0.5).shape == (0, 3, 21, 3)


def test_hand_matte_of_swept_shapes_is_their_union():
    a, b = synthetic_hand(60, 70, 25), synthetic_hand(90, 70, 25)
    plate = np.full((140, 200, 3), 90, np.uint8)
    shape_only = HandMaskParams(colour=None)
    union = np.maximum(rasterize_hands(a[None], 140, 200, shape_only), rasterize_hands(b[None], 140, 200, shape_only))
    got = hand_matte(np.stack([a, a, b])[None], plate, shape_only)
    assert (got >= union).all()  # one canvas: where two anti-aliased edges overlap they add up
    assert (got[union == 1.0] == 1.0).all() and (got[union == 0.0] == 0.0).all()
    np.testing.assert_array_equal(hand_matte(a[None, None], plate), hand_matte(a[None], plate))
    still = np.stack([a + 0.9, a, a - 0.9])[None]  # no landmark moves a pixel: the frame's own shape alone
    np.testing.assert_array_equal(hand_matte(still, plate), hand_matte(a[None], plate))


def test_mattes_to_crop_moves_and_scales_exactly():
    matte = np.zeros((20, 30), np.float32)
    matte[5, 7] = 1.0
    shift = np.array([[[1.0, 0.0, -2.0], [0.0, 1.0, -3.0]], [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    out = mattes_to_crop([matte, matte], shift, (16, 24))
    assert out.shape == (2, 16, 24)
    assert out[0, 2, 5] == 1.0 and out[0].sum() == 1.0  # (7, 5) -> (5, 2)
    assert out[1, 10, 14] == 1.0  # x2 about the origin: (7, 5) -> (14, 10), bilinear in between
    np.testing.assert_allclose(out[1, 10, 13], 0.5, atol=1 / 32)
    none = mattes_to_crop([None, matte], shift, (16, 24))
    assert none[0].max() == 0.0 and none[1].sum() == out[1].sum()
    assert mattes_to_crop([None, None], shift, (16, 24)) is None


# ------------------------------------------------------------------------------------------------ real models

@pytest.fixture(scope="module")
def tracker(model):
    from vidswap.hands.landmarks import HandLandmarker
    from vidswap.hands.palm import PalmDetector
    from vidswap.hands.track import HandTracker

    return lambda: HandTracker(PalmDetector.from_path(model("palm_detection"), 2),
                               HandLandmarker.from_path(model("hand_landmark"), 2))


def test_hand_tracked_over_the_face_on_the_sample_clip(media, tracker):
    """The actress's hand covers her mouth and nose from about frame 60 to 225: found and held across frames where
    the palm detector alone fails; none in the first frames (no hand)."""
    frames = read_frames(media("pexels_clip"), limit=140)
    tr = tracker()
    counts = {n: len(tr.push(n, frames[n])) for n in list(range(0, 12)) + list(range(90, 140))}
    assert all(counts[n] == 0 for n in range(12))
    assert all(counts[n] == 1 for n in range(92, 140))
    hands = tr.finish()
    pts = hands.at(120)[0]
    # the hand lies over the lower face: fingertips above the wrist, inside the frame's face area
    assert pts[12, 1] < pts[9, 1] < pts[0, 1] and 250 < pts[12, 0] < 480 and 120 < pts[12, 1] < 300
    assert hands.presence.min() >= tr.params.keep


# ------------------------------------------------------------------------------------------- hands seen by the pose

def test_person_roi_from_the_face_box():
    roi = person_roi(np.array([100.0, 50.0, 160.0, 130.0]), down=1.0, scale=4.0)
    np.testing.assert_allclose(roi.center, [[130.0, 170.0]])  # one face height (80) below the face's centre
    np.testing.assert_allclose(roi.size, [320.0])
    np.testing.assert_allclose(roi.angle, [0.0])


def test_rois_from_body_keypoints_centre_and_rotation():
    # wrist below the knuckles: fingers up, no rotation; knuckle estimate (2 index + pinky) / 3
    pts = np.array([[[30.0, 100.0], [36.0, 70.0], [24.0, 70.0]],  # wrist, pinky, index
                    [[100.0, 30.0], [70.0, 36.0], [70.0, 24.0]]])  # wrist to the right: fingers point left
    rois = rois_from_body_keypoints(pts, 50.0)
    np.testing.assert_allclose(rois.center, [[28.0, 70.0], [70.0, 28.0]])
    np.testing.assert_allclose(rois.size, [50.0, 50.0])
    np.testing.assert_allclose(rois.angle[0], 0.0, atol=0.2)
    for k in range(2):  # the crop's "up" (-y axis) points from the wrist to the knuckles
        up = -np.array([-np.sin(rois.angle[k]), np.cos(rois.angle[k])])
        d = rois.center[k] - pts[k, 0]
        assert up @ d / np.linalg.norm(d) > 0.999


@pytest.fixture(scope="module")
def stretch(media):
    """The sample clip's occluded stretch, frames 56-231."""
    frames = read_frames(media("pexels_clip"), limit=232)
    return {n: frames[n] for n in range(56, 232)}


@pytest.fixture(scope="module")
def edge_clip(stretch):
    """The stretch with the bottom 60 rows cut off: the hand enters from the frame edge with its wrist outside the
    picture, and the palm detector misses it on every frame; on 79-153 about half the hand is below the cut."""
    return {n: np.ascontiguousarray(im[:300]) for n, im in stretch.items()}


def test_palm_detection_alone_misses_the_hand_entering_from_the_edge(edge_clip, tracker):
    tr = tracker()
    for n, im in edge_clip.items():
        tr.push(n, im)
    assert len(tr.finish()) == 0


def test_hand_entering_from_the_edge_is_held_throughout(edge_clip, stretch, model):
    """Through the analyze pass (faces found, the pose landmarker near each face, a dropped hand looked for again
    on the frame's edge): the hand is found from its first frames and held, as one hand, on every frame of 79-153
    (half of it below the cut; before the re-detection at the edge and the motion model, none of them), where the
    hand shape drawn from its landmarks covers at least 70% of the shape the landmarker reads in the uncut frame
    from the same region (cut likewise; measured 76-98% on 100-140), and spills at most 30% outside it (11-27%)."""
    from vidswap.faces.analyze import AnalysisConfig, AnalysisModels, FrameAnalyzer
    from vidswap.hands.landmarks import HandLandmarker, rois_from_hand_landmarks

    cfg = AnalysisConfig()
    analyzer = FrameAnalyzer(AnalysisModels.load(cfg, 2), cfg)
    numbers = sorted(edge_clip)
    for s in range(0, len(numbers), 8):
        batch = numbers[s:s + 8]
        analyzer.push(batch, [edge_clip[n] for n in batch])
    hands = analyzer._hands.finish()
    got = sorted(set(hands.frames.tolist()))
    assert got[0] <= 70 and got[-1] <= 232
    assert set(range(79, 154)) <= set(got)
    assert all(len(hands.at(n)) == 1 for n in got) and len(set(hands.ids.tolist())) == 1
    landmarker = HandLandmarker.from_path(model("hand_landmark"), 2)
    for n in (100, 110, 120, 130, 140):
        pts = hands.at(n)[0]
        uncut = landmarker([stretch[n]], [0], rois_from_hand_landmarks(pts[None]))
        assert uncut.presence[0] > 0.8
        # the hand's shape drawn from the cut frame's landmarks covers that from the uncut frame's, cut likewise
        seen = rasterize_hands(uncut.points, 360, 640)[:300] > 0.5
        drawn = rasterize_hands(pts[None], 300, 640) > 0.5
        assert (drawn & seen).sum() >= 0.7 * seen.sum() and (drawn & ~seen).sum() <= 0.3 * drawn.sum()


def _painted_hand_plate(pts: np.ndarray, height: int, width: int) -> np.ndarray:
    """A face-coloured, noisy plate with a lighter, pinker hand painted where a slimmer hand shape lies (the landmark
    shape over-covers it, so the colour split has an edge to find)."""
    rng = np.random.default_rng(3)
    plate = np.empty((height, width, 3), np.float32)
    plate[...] = (150, 110, 95)
    slim = rasterize_hands(pts[None], height, width, HandMaskParams(colour=None, finger_radius=(0.2, 0.16, 0.16,
                                                                                               0.15, 0.14)))
    plate += slim[..., None] * (np.array([225, 170, 160], np.float32) - plate)
    plate += rng.normal(0, 3.0, plate.shape)
    return np.clip(plate, 0, 255).astype(np.uint8)


def test_hand_under_the_work_size_is_matted_at_the_plates_resolution():
    pts = synthetic_hand(100, 90, 40)
    plate = _painted_hand_plate(pts, 180, 200)
    np.testing.assert_array_equal(hand_matte(pts[None], plate, HandMaskParams(work_size=160.0)),
                                  hand_matte(pts[None], plate, HandMaskParams(work_size=0.0)))


def test_large_hand_is_matted_on_its_shrunk_box_as_at_full_resolution():
    """A hand of 200 px matted at 100 px (``work_size``) and brought back up: the same hand as matted at the plate's
    resolution, its edge within a pixel or two."""
    pts = synthetic_hand(320, 250, 200)
    plate = _painted_hand_plate(pts, 520, 640)
    shrunk = hand_matte(pts[None], plate, HandMaskParams(work_size=100.0))
    full = hand_matte(pts[None], plate, HandMaskParams(work_size=0.0))
    a, b = shrunk > 0.5, full > 0.5
    assert b.sum() > 40000 and (a & b).sum() / (a | b).sum() > 0.98
    assert np.abs(shrunk - full)[a | b].mean() < 0.03
    support = cv2.dilate((full > 0.02).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert (shrunk[~support] < 0.05).all()  # no soft tail beyond the full matte's reach (4 px: 2 shrunk pixels)
