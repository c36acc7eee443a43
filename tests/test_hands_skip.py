"""The hands' cost cut without changing what they mean: the landmarker skipping frames while the hands are nearly
still (``HandParams.skip_still``; the skipped frame is the mean of the readings either side), the matte drawing each
hand shape once, and the face motion's hand test only near the hand. Scripted models, exact answers."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from test_hands import synthetic_hand
from vidswap.faces.motion import clear_of
from vidswap.hands.landmarks import HandLandmarks
from vidswap.hands.motion import MotionParams
from vidswap.hands.mask import rasterize_first_and_all, rasterize_hands
from vidswap.hands.palm import Palms
from vidswap.hands.track import HandParams, HandTracker


class Moving:
    """One hand whose centre moves ``speed`` px a frame to the right (frame ``n``'s pixel value is ``n``); presence
    ``presence[n]``; the landmarker's calls are counted per frame."""

    def __init__(self, speed: float, presence):
        self.speed, self.presence, self.calls = speed, np.asarray(presence, np.float32), []

    def hand(self, n: int) -> np.ndarray:
        return synthetic_hand(50 + self.speed * n, 60, 20).astype(np.float32)

    def palms(self, frame):
        h = self.hand(int(frame[0, 0, 0]))
        kps = np.zeros((1, 7, 2), np.float32)
        kps[0, 0], kps[0, 2] = h[0, :2], h[9, :2]
        return Palms(np.array([[h[:, 0].mean(), 70.0, 30.0, 30.0]], np.float32), kps, np.array([0.9], np.float32))

    def landmarker(self, frames, index, rois, black_border=False):
        n = int(frames[index[0]][0, 0, 0])
        self.calls.append(n)
        k = len(rois)
        return HandLandmarks(np.repeat(self.hand(n)[None], k, 0), np.full(k, self.presence[n], np.float32),
                             np.ones(k, np.float32))


def track(speed, presence, params, numbers=None, cut=None):
    models = Moving(speed, presence)
    params = dataclasses.replace(params, look_at_start=False)  # the cadence alone: found on frame 1, backfilled
    tracker = HandTracker(models.palms, models.landmarker, params)
    for n in (range(len(presence)) if numbers is None else numbers):
        if n == cut:
            tracker.reset()
        tracker.push(n, np.full((120, 160, 3), n, np.uint8))
    return tracker.finish(), models.calls


def test_a_slow_hand_is_read_every_other_frame_and_its_track_is_unchanged():
    """0.5 px a frame (hand size 20: 0.025 a frame) under ``skip_still`` 0.1: the hand is found on frame 1 (two
    passes) and tracked back to 0; frame 2 is read (the new hand's motion is unknown), then every other frame; the
    skipped frames' mean of the readings either side is exact for a hand moving in a line, so the smoothed tracks
    equal those of reading every frame (at the same smoothing sigma)."""
    presence = [0.95] * 17  # the last frame (16) is read
    every, calls_every = track(0.5, presence, HandParams(skip_still=0.0))
    skip, calls_skip = track(0.5, presence, HandParams(skip_still=0.1, skip_sigma=1.0))  # as smooth_sigma
    assert calls_every == [1, 1, 0] + list(range(2, 17))
    assert calls_skip == [1, 1, 0] + list(range(2, 17, 2))
    np.testing.assert_array_equal(skip.frames, every.frames)
    np.testing.assert_allclose(skip.points, every.points, atol=1e-4)
    np.testing.assert_allclose(skip.presence, every.presence, rtol=1e-6)
    # unsmoothed, the skipped frames are exactly where the hand was; skip_sigma smooths only a hand with skips
    raw, _ = track(0.5, presence, HandParams(skip_still=0.1, skip_sigma=0.0))
    np.testing.assert_allclose(raw.points[:, 0, :2], [[50 + 0.5 * n, 80] for n in range(17)], atol=1e-5)
    skipped, _ = track(0.5, presence, HandParams(skip_still=0.1, skip_sigma=0.0, smooth_sigma=3.0))
    np.testing.assert_array_equal(skipped.points, raw.points)
    read, _ = track(0.5, presence, HandParams(skip_still=0.0, skip_sigma=0.0, smooth_sigma=3.0))  # no skips: smooth_sigma
    assert np.abs(read.points[-1, 0, 0] - raw.points[-1, 0, 0]) > 0.1  # the one-sided window at the end lags


def test_no_skip_for_a_fast_hand_across_a_gap_or_after_a_cut():
    presence = [0.95] * 16
    _, fast = track(4.0, presence, HandParams(skip_still=0.1))  # 0.2 hand sizes a frame
    assert fast == [1, 1, 0] + list(range(2, 16))
    _, sparse = track(0.5, presence, HandParams(skip_still=0.1), numbers=range(0, 16, 2))  # frames 2 apart
    assert sparse == [2, 2, 0] + list(range(4, 16, 2))
    hands, cut = track(0.5, presence, HandParams(skip_still=0.1), cut=6)
    # 5 skipped; the cut before 6 ends the tracks (5 keeps 4's reading); 6 finds the hand again (two passes)
    assert cut == [1, 1, 0, 2, 4, 6, 6, 7, 9, 11, 13, 15]
    np.testing.assert_array_equal(hands.frames, np.arange(16))
    assert len(set(hands.ids[:6].tolist())) == 1 and hands.ids[6] != hands.ids[5]


def test_the_skipped_frame_keeps_the_previous_reading_when_the_hand_is_lost_next():
    """Presence drops on frame 6 after 5 was skipped: 5 keeps frame 4's reading (not a mean with a lost hand)."""
    presence = [0.95] * 6 + [0.1] * 4
    hands, calls = track(0.5, presence, HandParams(skip_still=0.1, relock_frames=0, skip_sigma=0.0,
                                                   motion=MotionParams(bridge=0, coast=0)))
    assert calls == [1, 1, 0, 2, 4, 6, 6, 8]  # 6: read and lost; the palms found on 6 and 8 not confirmed (0.1)
    np.testing.assert_array_equal(hands.frames, np.arange(6))
    np.testing.assert_allclose(hands.at(5)[0], synthetic_hand(52, 60, 20), atol=1e-5)  # frame 4's hand


def test_rasterize_first_and_all_is_both_rasterisations_bit_for_bit():
    rng = np.random.default_rng(1)
    base = synthetic_hand(60, 50, 18)
    shapes = np.stack([base] + [base + np.r_[rng.normal(0, 3, 2), 0.0] for _ in range(2)])
    first, union = rasterize_first_and_all(shapes, 100, 120)
    assert np.array_equal(first, rasterize_hands(shapes[:1], 100, 120))
    assert np.array_equal(union, rasterize_hands(shapes, 100, 120))
    assert union.sum() > first.sum() > 0


def test_clear_of_matches_the_point_polygon_test_on_every_point():
    rng = np.random.default_rng(0)
    for _ in range(50):
        pts = rng.uniform(0, 100, (60, 2))
        outlines = [cv2.convexHull(rng.uniform(0, 100, (8, 2)).astype(np.float32)) for _ in range(2)]
        margin = float(rng.uniform(0, 10))
        want = np.ones(len(pts), bool)
        for o in outlines:
            want &= np.array([cv2.pointPolygonTest(o, (float(x), float(y)), True) for x, y in pts]) < -margin
        assert np.array_equal(clear_of(pts, outlines, margin), want)
