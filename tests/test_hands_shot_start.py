"""A shot's first analysed frame is looked at for hands (``HandParams.look_at_start``): scripted models with exact
frame lists, and jobs of one and two frames of the sample clip whose annotated hand over the face longer jobs keep.

Before, the pose landmarker first looked on a shot's 8th frame and the search over the face on its 24th, and a hand
seen on fewer than ``min_frames`` (3) frames was dropped: ``vidswap run --frames 118`` (or ``98-102``) painted the
face over the hand that a job over the whole stretch keeps."""

from __future__ import annotations

import numpy as np

from test_hands_backtrack import FACE, analysed_and_rendered, drawn_inside_face, frame, untouched
from test_hands_motion import NoPalms, ScriptedModels
from test_occlusion_hands import annotations
from vidswap.hands.motion import MotionParams, smooth_series
from vidswap.hands.track import HandParams, HandTracker


def params(**kw) -> HandParams:
    return HandParams(**{"skip_still": 0.0, "idle_detect_every": 4, "pose_every": 8, "backfill": 3,
                         "motion": MotionParams(bridge=0, coast=0), **kw})


def pushed(models, n, cut_at=None, **kw):
    """The scripted models' tracker over ``n`` frames with the face box (reset before ``cut_at``), finished."""
    tracker = HandTracker(models.palms, models.landmarker, params(**kw),
                          models if hasattr(models, "hand_rois") else None)
    for f in range(n):
        if f == cut_at:
            tracker.reset()
        tracker.push(f, frame(f), FACE)
    return tracker.finish()


def test_a_hand_on_a_shots_first_frame_is_looked_for_there():
    """A hand the palm detector misses, there from frame 0: the pose landmarker looks on frame 0 and finds it;
    off, it first looks on frame 7 (the cadence), and the hand starts there (the backfill reaches back to 4)."""
    models = NoPalms([0.95] * 12)
    np.testing.assert_array_equal(pushed(models, 12).frames, np.arange(12))
    assert models.pose_calls == [0]
    late = NoPalms([0.95] * 12)
    np.testing.assert_array_equal(pushed(late, 12, look_at_start=False, backtrack=0).frames, np.arange(4, 12))
    assert late.pose_calls == [7]


def test_the_look_at_a_shots_start_keeps_the_cadence():
    """No hand (presence 0.1): the pose landmarker looks on frame 0 and then on 7 and 15, as without the first look;
    a cut before frame 10 adds a look there and leaves the cadence (15) as it was."""
    models = NoPalms([0.1] * 20)
    assert len(pushed(models, 20)) == 0
    assert models.pose_calls == [0, 7, 15]
    cut = NoPalms([0.1] * 20)
    pushed(cut, 20, cut_at=10)
    assert cut.pose_calls == [0, 7, 10, 15]


def test_a_hand_on_every_frame_of_a_short_analysis_is_kept():
    """``min_frames`` 3: a palm-detected hand seen on both frames of a two-frame analysis, or on the two frames of
    a shot cut after frame 3, is kept; seen on two frames of a longer shot it is a spurious detection, as before."""
    two = pushed(ScriptedModels([0.95] * 2), 2)
    np.testing.assert_array_equal(two.frames, [0, 1])
    assert len(pushed(ScriptedModels([0.95] * 2), 2, look_at_start=False)) == 0
    tail = pushed(ScriptedModels([0.1] * 4 + [0.95] * 2), 6, cut_at=4)
    np.testing.assert_array_equal(tail.frames, [4, 5])
    assert len(pushed(ScriptedModels([0.1] * 4 + [0.95] * 2 + [0.1] * 4), 10)) == 0


def test_smooth_series_of_fewer_points_than_its_kernel_reaches():
    """Two readings, sigma 1 (reach 3): each is the Gaussian-weighted mean of both (weights 1 and exp(-1/2))."""
    pts = np.array([[0.0, 2.0], [1.0, 6.0]], np.float32)
    w = np.exp(-0.5)
    want = np.array([(pts[0] + w * pts[1]) / (1 + w), (w * pts[0] + pts[1]) / (1 + w)], np.float32)
    np.testing.assert_allclose(smooth_series(pts, 1.0), want, rtol=1e-6)
    np.testing.assert_array_equal(smooth_series(pts[:1], 1.0), pts[:1])


def test_jobs_of_one_and_two_frames_keep_the_hand_over_the_face(media, tmp_path, monkeypatch):
    """The sample clip's annotated frames: 118 (the hand over her eye and nose, which the pose landmarker finds)
    rendered alone, and 188-189 (the hand over her mouth, its back to the camera, which only the search over the
    face finds): the drawn hand's pixels inside the face stay the plate's as in the longer jobs of
    ``test_hands_backtrack`` (>= 0.95 and >= 0.89). Without the look at the shot's start both are painted over."""
    import functools

    import vidswap.faces.analysis_key as keyed
    import vidswap.faces.analyze as analyze

    clip, source = media("pexels_clip"), media("grace_hopper")
    ann = annotations()
    for first, last, least in ((118, 118, 0.95), (188, 189, 0.89)):
        analysis, frames = analysed_and_rendered(clip, source, tmp_path / f"{first}" / "o.####.png", first, last,
                                                 [first])
        assert all(len(analysis.hands.at(n)) == 1 for n in range(first, last + 1))
        inside = drawn_inside_face(analysis, ann[first], first, frames[first][0].shape[:2])
        assert inside.sum() > 1500
        kept = untouched(frames[first], inside)
        print(f"frames {first}-{last}: the hand untouched {kept:.3f}")
        assert kept >= least, first

    off = functools.partial(HandParams, look_at_start=False)  # a key of its own: no analysis shared
    monkeypatch.setattr(keyed, "HandParams", off)
    monkeypatch.setattr(analyze, "HandParams", off)
    for first, last in ((118, 118), (188, 189)):
        analysis, frames = analysed_and_rendered(clip, source, tmp_path / f"off{first}" / "o.####.png", first, last,
                                                 [first])
        inside = drawn_inside_face(analysis, ann[first], first, frames[first][0].shape[:2])
        painted = untouched(frames[first], inside)
        print(f"frames {first}-{last}, no look at the start: the hand untouched {painted:.3f}")
        assert len(analysis.hands) == 0 and painted < 0.7
