"""A hand carried across the landmarker's misses: the plan of carried frames and their presence, the Kalman/RTS
carry of the landmarks, the region where a hand lost at the frame's edge is looked for again, and the tracker's
hysteresis on a scripted presence sequence (exact answers); then the real models on the sample clip's hand raised
from below a cut frame edge."""

from __future__ import annotations

import numpy as np
import pytest

from test_hands import synthetic_hand
from vidswap.hands.mask import HandMaskParams, hand_matte
from vidswap.hands.motion import MotionParams, carry_hand, carry_plan, centroid
from vidswap.hands.palm import Palms
from vidswap.hands.landmarks import HandLandmarks
from vidswap.hands.regions import edge_roi
from vidswap.hands.track import HandParams, HandTracker


def test_carry_plan_bridges_short_gaps_coasts_and_decays():
    p = MotionParams(bridge=3, coast=2, decay=0.5, floor=0.2)
    frames = np.array([0, 1, 2, 5, 6, 10])
    presence = np.array([0.9, 0.9, 0.8, 1.0, 0.6, 0.9])
    got_f, got_p = carry_plan(frames, presence, p, last_frame=11)
    # 3, 4: nearest seen 2 / 5; 7: from 6; 8: a tie, the earlier (6) at distance 2 -> 0.15 < floor: left out;
    # 9: from 10; 11: coasted from 10, 12 past the shot's last frame
    np.testing.assert_array_equal(got_f, [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11])
    np.testing.assert_allclose(got_p, [0.9, 0.9, 0.8, 0.4, 0.5, 1.0, 0.6, 0.3, 0.45, 0.9, 0.45], rtol=1e-6)
    f, _ = carry_plan(np.array([0, 5]), np.array([1.0, 1.0]), p)  # a gap of 4 > bridge: not filled
    np.testing.assert_array_equal(f, [0, 5, 6, 7])
    f, pr = carry_plan(np.array([0, 5]), np.array([1.0, 1.0]), MotionParams(bridge=0, coast=0))
    np.testing.assert_array_equal(f, [0, 5])


def test_carry_hand_at_rest_blends_the_shapes_at_the_gap_ends():
    a = synthetic_hand(50, 60, 20)
    b = a.copy()
    b[8, :2] += (6.0, -3.0)  # the index tip moves; the centroid is put back where it was
    b[:, :2] += centroid(a) - centroid(b)
    frames = np.array([0, 1, 5, 6])
    pts = np.stack([a, a, b, b]).astype(np.float32)
    p = MotionParams(bridge=4, coast=1, decay=0.5, floor=0.0)
    f, q, pr, carried = carry_hand(frames, pts, np.ones(4), p)
    np.testing.assert_array_equal(f, [0, 1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(carried, [False, False, True, True, True, False, False, True])
    np.testing.assert_array_equal(q[[0, 1, 5, 6]], pts)  # seen frames keep their landmarks
    for n, t in ((2, 0.25), (3, 0.5), (4, 0.75)):  # at rest: the filter stays on the centroid exactly
        np.testing.assert_allclose(q[n], (1 - t) * a + t * b, atol=1e-4)
    np.testing.assert_allclose(q[7], b, atol=1e-4)  # coasted: the last shape
    np.testing.assert_allclose(pr, [1, 1, 0.5, 0.25, 0.5, 1, 1, 0.5], rtol=1e-6)


def test_carry_hand_follows_a_moving_hand_across_the_gap():
    a = synthetic_hand(50, 60, 20)
    frames = np.array([0, 1, 2, 3, 4, 8, 9, 10, 11, 12])
    pts = np.stack([a + [5.0 * n, 0.0, 0.0] for n in frames]).astype(np.float32)  # 5 px / frame to the right
    f, q, _, carried = carry_hand(frames, pts, np.ones(len(frames)), MotionParams(bridge=5, coast=0))
    np.testing.assert_array_equal(f, np.arange(13))
    x = centroid(q)[:, 0] - centroid(a)[0]
    assert (np.diff(x[4:9]) > 0).all()  # moves on through the gap
    np.testing.assert_allclose(x[5:8], [25.0, 30.0, 35.0], atol=2.0)  # near the straight line the hand took
    np.testing.assert_allclose(centroid(q)[:, 1], centroid(a)[1], atol=1e-3)


def test_edge_roi_on_the_edge_the_hand_left_by():
    w, h = 100, 80
    hand = synthetic_hand(50, 70, 20)  # wrist at y = 90: past the bottom edge
    roi = edge_roi(hand, w, h, 60.0, 0.0)
    np.testing.assert_allclose(roi.center, [[centroid(hand)[0], 79.0]])
    np.testing.assert_allclose(roi.size, [60.0])
    np.testing.assert_allclose(roi.angle, [0.0], atol=1e-12)  # fingers up, into the picture
    right = synthetic_hand(50, 40, 10)
    right[:, 0] += 52.0  # reaches x = 108
    roi = edge_roi(right, w, h, 30.0, 0.0)
    np.testing.assert_allclose(roi.center, [[99.0, centroid(right)[1]]])
    np.testing.assert_allclose(roi.angle, [-np.pi / 2])  # fingers pointing left, into the picture
    inside = synthetic_hand(50, 40, 10)  # x 44..56, y 36..50
    assert edge_roi(inside, w, h, 30.0, 0.0) is None
    assert edge_roi(inside, w, h, 30.0, 3.0) is not None  # grown by 3 hand sizes it reaches an edge


class ScriptedModels:
    """A palm detector and a hand landmarker that see one fixed hand; the landmarker's presence on frame ``n`` (the
    frame's pixel value) is ``presence[n]`` wherever it is asked to look."""

    def __init__(self, presence):
        self.presence = np.asarray(presence, np.float32)
        self.hand = synthetic_hand(50, 60, 20).astype(np.float32)

    def palms(self, frame):
        kps = np.zeros((1, 7, 2), np.float32)
        kps[0, 0], kps[0, 2] = self.hand[0, :2], self.hand[9, :2]
        return Palms(np.array([[50.0, 70.0, 30.0, 30.0]], np.float32), kps, np.array([0.9], np.float32))

    def landmarker(self, frames, index, rois, black_border=False):
        pr = self.presence[int(frames[index[0]][0, 0, 0])]
        n = len(rois)
        return HandLandmarks(np.repeat(self.hand[None], n, 0), np.full(n, pr, np.float32), np.ones(n, np.float32))


def run_scripted(presence, params):
    models = ScriptedModels(presence)
    tracker = HandTracker(models.palms, models.landmarker, params)
    for n in range(len(presence)):
        tracker.push(n, np.full((120, 100, 3), n, np.uint8))
    return tracker.finish()


def test_a_hand_that_flickers_out_keeps_its_id_and_its_mask():
    """Presence 0.95 on frames 0-4 and 8-15, 0.1 on 5-7: the hand is dropped on 5, looked for again where it was
    (every 2nd frame: 5, 7, 9), found on 9 with its id, tracked back to 8; the gap 5-7 is bridged with a presence
    decayed from the nearest seen frame (6: a tie, from 4). Without relocking and bridging it is two hands with a
    gap, and the mask drops out there."""
    presence = [0.95] * 5 + [0.1] * 3 + [0.95] * 8
    hands = run_scripted(presence, HandParams(skip_still=0.0, idle_detect_every=2))
    np.testing.assert_array_equal(hands.frames, np.arange(16))
    np.testing.assert_array_equal(hands.ids, np.zeros(16))
    p95 = np.float32(0.95)
    np.testing.assert_allclose(hands.presence, [p95] * 5 + [p95 * 0.85, p95 * 0.85 ** 2, p95 * 0.85] + [p95] * 8,
                               rtol=1e-6)
    np.testing.assert_allclose(hands.at(6)[0], synthetic_hand(50, 60, 20), atol=1e-4)  # at rest: where it was
    shape = HandMaskParams(colour=None, sweep=0.0)
    plate = np.zeros((120, 100, 3), np.uint8)
    area = [hand_matte(hands.at(n), plate, shape).sum() for n in range(16)]
    assert min(area) == max(area) > 0  # no pop

    bare = run_scripted(presence, HandParams(skip_still=0.0, idle_detect_every=2, relock_frames=0,
                                             motion=MotionParams(bridge=0, coast=0)))
    np.testing.assert_array_equal(bare.frames, [0, 1, 2, 3, 4] + list(range(8, 16)))
    np.testing.assert_array_equal(bare.ids, [0] * 5 + [1] * 8)


def test_a_hand_that_leaves_is_coasted_a_few_frames_only():
    presence = [0.95] * 6 + [0.1] * 10
    hands = run_scripted(presence, HandParams(skip_still=0.0, motion=MotionParams(coast=3, decay=0.5, floor=0.2)))
    # coasted 6, 7 (0.475, 0.2375); 8 would be 0.119 < floor
    np.testing.assert_array_equal(hands.frames, np.arange(8))
    np.testing.assert_allclose(hands.presence[6:], [0.95 * 0.5, 0.95 * 0.25], rtol=1e-6)


def test_shot_cut_ends_the_coast():
    models = ScriptedModels([0.95] * 6 + [0.1] * 10)
    tracker = HandTracker(models.palms, models.landmarker, HandParams(skip_still=0.0))
    for n in range(16):
        if n == 7:
            tracker.reset()
        tracker.push(n, np.full((120, 100, 3), n, np.uint8))
    assert set(tracker.finish().frames.tolist()) == set(range(7))  # coasted to 6, not into the next shot


def test_analysis_cache_key_covers_the_motion_and_relock_settings(monkeypatch):
    import vidswap.faces.analysis_key as keyed  # where the key reads HandParams
    from vidswap.faces.analyze import AnalysisConfig, SmoothingConfig, analysis_key

    def key():
        return analysis_key("clip", [0, 1, 2], AnalysisConfig(), SmoothingConfig(), {"m": "0"})

    base = key()
    assert key() == base
    for changed in (HandParams(motion=MotionParams(bridge=5)), HandParams(relock_frames=10),
                    HandParams(relock_black=False), HandParams(edge_scale=1.2), HandParams(skip_still=0.05)):
        monkeypatch.setattr(keyed, "HandParams", lambda c=changed: c)
        assert key() != base


class NoPalms(ScriptedModels):
    """The scripted hand, which the palm detector never finds (a hand entering from the frame's edge) and the pose
    landmarker proposes wherever it is asked (one region over the hand); the pose calls are counted."""

    def __init__(self, presence):
        super().__init__(presence)
        self.pose_calls: list[int] = []

    def palms(self, frame):
        return Palms(np.zeros((0, 4), np.float32), np.zeros((0, 7, 2), np.float32), np.zeros(0, np.float32))

    def hand_rois(self, frame, face_box):
        from vidswap.faces.landmarks import Rois
        self.pose_calls.append(int(frame[0, 0, 0]))
        return Rois(np.array([[50.0, 60.0]]), np.array([60.0]), np.array([0.0]))


def test_sparse_detection_is_backfilled_to_the_hands_first_frame():
    """Palm detection every 4th frame with no hand tracked (frames 3, 7, ...): the hand that appears on frame 5 is
    found on 7 and tracked backwards to 5 (presence 0.1 on 4 stops it), so it starts where it appears; without the
    backfill it starts on 7."""
    presence = [0.1] * 5 + [0.95] * 7
    params = HandParams(skip_still=0.0, idle_detect_every=4, motion=MotionParams(bridge=0, coast=0))
    np.testing.assert_array_equal(run_scripted(presence, params).frames, np.arange(5, 12))
    late = run_scripted(presence, HandParams(skip_still=0.0, idle_detect_every=4, backfill=0,
                                             motion=MotionParams(bridge=0, coast=0)))
    np.testing.assert_array_equal(late.frames, np.arange(7, 12))


def test_sparse_pose_is_backfilled_to_the_hands_first_frame():
    """A hand the palm detector misses, the pose landmarker asked every 8th frame (7, 15): the hand that appears on
    frame 8 is found on 15 and tracked back through the 7 kept frames to 8; pose runs on no frame with a hand."""
    presence = [0.1] * 8 + [0.95] * 10
    models = NoPalms(presence)
    params = HandParams(skip_still=0.0, idle_detect_every=4, pose_every=8, backfill=8, look_at_start=False,
                        motion=MotionParams(bridge=0, coast=0))
    tracker = HandTracker(models.palms, models.landmarker, params, models)
    for n in range(len(presence)):
        tracker.push(n, np.full((120, 100, 3), n, np.uint8), [np.array([30.0, 10.0, 70.0, 50.0])])
    np.testing.assert_array_equal(tracker.finish().frames, np.arange(8, 18))
    assert models.pose_calls == [7, 15]


def test_analysis_cache_key_covers_the_detection_cadence_and_the_landmark_model(monkeypatch):
    """The cadence settings and the landmarker's registry name are in the key, and the landmarker named is the one
    whose hash the analysis records."""
    import vidswap.faces.analysis_key as keyed  # where the key reads HandParams
    from vidswap.faces.analyze import AnalysisConfig, SmoothingConfig, analysis_key, analysis_model_names

    def key():
        return analysis_key("clip", [0, 1, 2], AnalysisConfig(), SmoothingConfig(), {"m": "0"})

    base = key()
    assert analysis_model_names(True)[-1] == HandParams().landmark_model
    for changed in (HandParams(idle_detect_every=4), HandParams(pose_every=4), HandParams(redetect_every=6),
                    HandParams(backfill=8), HandParams(landmark_model="hand_landmark_lite")):
        monkeypatch.setattr(keyed, "HandParams", lambda c=changed: c)
        assert key() != base
    assert analysis_model_names(True)[-1] == "hand_landmark_lite"
    assert "hand_landmark_lite" not in analysis_model_names(False)
