"""A hand that is there from a shot's first frame but found only later is followed back to where it is first seen
(``HandParams.backtrack``, :mod:`vidswap.hands.backtrack`): scripted models with exact frame lists, and the sample
clip cut to open on an annotated frame with the actress's hand over her eye and nose."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from test_hands_motion import NoPalms
from test_occlusion_hands import BAND, annotations, fill
from vidswap.faces.topology import load_topology
from vidswap.hands.backtrack import backtrack_hands
from vidswap.hands.motion import MotionParams
from vidswap.hands.track import HandParams, HandTracker

FACE = [np.array([30.0, 10.0, 70.0, 50.0])]


def frame(n: int) -> np.ndarray:
    """The scripted models read the frame's number from its pixels."""
    return np.full((120, 100, 3), n, np.uint8)


def push_all(presence, params, cut_at=None):
    """A tracker fed every frame (the pose landmarker proposes the hand; no palm is ever found), reset before
    ``cut_at``; returns the tracker (not finished) and its models."""
    models = NoPalms(presence)
    tracker = HandTracker(models.palms, models.landmarker, params, models)
    for n in range(len(presence)):
        if n == cut_at:
            tracker.reset()
        tracker.push(n, frame(n), FACE)
    return tracker, models


def params(**kw) -> HandParams:
    """The scripted tests' settings; the cadence alone decides when the detectors look (no look at the shot's
    start, which ``test_a_hand_on_a_shots_first_frame_is_looked_for_there`` pins)."""
    kw = {"skip_still": 0.0, "idle_detect_every": 4, "pose_every": 8, "backfill": 3, "look_at_start": False,
          "motion": MotionParams(bridge=0, coast=0), **kw}
    return HandParams(**kw)


def reader(calls: list):
    def read(numbers):
        calls.append(list(numbers))
        return [(n, frame(n)) for n in numbers]
    return read


def test_a_hand_there_from_the_first_frame_is_followed_back_to_it():
    """The hand is there on every frame; the pose landmarker first runs on frame 7 and finds it, the backfill
    walks the 3 kept frames back to 4; backtracking reads frames 3..0 again (nearest first, in runs of 2: [2, 3]
    then [0, 1]) and the hand starts on frame 0. Without it, on frame 4."""
    presence = [0.95] * 12
    tracker, models = push_all(presence, params())
    assert tracker.late_starts() == [(0, [3, 2, 1, 0])]
    calls: list = []
    assert backtrack_hands(tracker, reader(calls), run=2) == 4
    assert calls == [[2, 3], [0, 1]]
    np.testing.assert_array_equal(tracker.finish().frames, np.arange(12))
    assert models.pose_calls == [7]

    off, _ = push_all(presence, params(backtrack=0))
    assert off.late_starts() == []
    assert backtrack_hands(off, reader([])) == 0
    np.testing.assert_array_equal(off.finish().frames, np.arange(4, 12))


def test_backtrack_stops_at_the_shots_start_where_the_landmarker_lets_go_and_within_its_reach():
    """A cut before frame 2: the hand's shot starts there (frames 3, 2 only). Presence 0.1 on frame 1: the walk
    stops at 2 (and nothing more is read after the run that stopped it). ``backtrack`` 2: two frames further."""
    presence = [0.95] * 12
    cut, _ = push_all(presence, params(), cut_at=2)
    assert cut.late_starts() == [(0, [3, 2])]
    backtrack_hands(cut, reader([]))
    np.testing.assert_array_equal(cut.finish().frames, np.arange(2, 12))

    lets_go, _ = push_all([0.95, 0.1] + [0.95] * 10, params())
    calls: list = []
    backtrack_hands(lets_go, reader(calls), run=2)
    assert calls == [[2, 3], [0, 1]]
    np.testing.assert_array_equal(lets_go.finish().frames, np.arange(2, 12))
    assert lets_go.late_starts() == []  # done: nothing left to follow

    near, _ = push_all(presence, params(backtrack=2))
    assert near.late_starts() == [(0, [3, 2])]
    backtrack_hands(near, reader([]))
    np.testing.assert_array_equal(near.finish().frames, np.arange(2, 12))


def test_a_hand_found_within_the_kept_frames_is_not_late():
    """The hand appears on frame 5 and is found on 7: the backfill lets go on frame 4, so there is nothing before
    it to read again."""
    tracker, _ = push_all([0.1] * 5 + [0.95] * 7, params(backfill=6))
    assert tracker.late_starts() == []
    np.testing.assert_array_equal(tracker.finish().frames, np.arange(5, 12))


def test_analysis_cache_key_covers_backtrack(monkeypatch):
    import vidswap.faces.analysis_key as keyed  # where the key reads HandParams
    from vidswap.faces.analyze import AnalysisConfig, SmoothingConfig, analysis_key

    def key():
        return analysis_key("clip", [0, 1, 2], AnalysisConfig(), SmoothingConfig(), {"m": "0"})

    base = key()
    monkeypatch.setattr(keyed, "HandParams", lambda: HandParams(backtrack=0))
    assert key() != base


# ------------------------------------------------------------------------------------------------ real footage

def analysed_and_rendered(clip, source, out, first, last, rendered):
    """A job over frames ``first``-``last`` of the clip: its analysis and the frames ``rendered`` (plate, result)."""
    from vidswap.config import load_config
    from vidswap.io import probe, read_frames
    from vidswap.pipeline import StageTimer, build_render
    from vidswap.shot import plan_shot

    cfg = load_config(overrides={"input": str(clip), "sources": [str(source)], "frames": f"{first}-{last}",
                                 "output": {"path": str(out)}})
    setup = build_render(cfg, plan_shot(cfg), StageTimer(), None, [])
    with read_frames(probe(clip), range(first, max(rendered) + 1)) as stream:
        frames = [f for f in stream if f.number in rendered]
    return setup.analysis, {f.number: (f.image, r.image) for f, r in zip(frames, setup.stage(list(frames)))}


def drawn_inside_face(analysis, polys, n: int, shape) -> np.ndarray:
    """(H, W) bool: the annotated hand (its outline's band left out) inside the face track's oval on frame ``n``."""
    kernel = np.ones((2 * BAND + 1, 2 * BAND + 1), np.uint8)
    drawn = cv2.erode(fill(polys, shape).astype(np.uint8), kernel) > 0
    face = analysis.tracks[0]
    oval = np.asarray(load_topology().regions["face_oval"])
    return fill([face.smoothed[face.index_of(n)][oval, :2]], shape) & drawn


def untouched(pair, mask: np.ndarray) -> float:
    """The share of ``mask``'s pixels the swap left within 2 code values of the plate: (plate, result) images."""
    plate, result = (im.astype(int) for im in pair)
    return float(1.0 - (np.abs(result - plate).max(-1)[mask] > 2).mean())


def test_a_shot_opening_on_a_hand_over_the_face_keeps_the_hand(media, tmp_path, monkeypatch):
    """The sample clip cut to open on frame 118, where the actress's hand lies over her eye and nose (annotated):
    palm detection and the pose landmarker first find the hand on frame 133, and the few kept frames reach back
    to 127; followed back, it is there from frame 118 on,
    and the drawn hand's pixels inside the face stay the plate's (>= 95 %, as on the whole stretch's annotated
    frames). Without the backtrack the swap paints over the hand on frame 118."""
    clip, source = media("pexels_clip"), media("grace_hopper")
    ann = annotations()
    analysis, frames = analysed_and_rendered(clip, source, tmp_path / "on" / "o.####.png", 118, 133, [118])
    assert analysis.hands.frames.min() == 118
    assert all(len(analysis.hands.at(n)) == 1 for n in range(118, 134))
    assert analysis.hands.presence.min() >= HandParams().keep

    inside = drawn_inside_face(analysis, ann[118], 118, frames[118][0].shape[:2])
    assert inside.sum() > 1500
    assert untouched(frames[118], inside) >= 0.95

    # the same cut without following hands back (a key of its own: no analysis is shared between the two)
    import vidswap.faces.analysis_key as keyed
    import vidswap.faces.analyze as analyze

    off = functools.partial(HandParams, backtrack=0, look_at_start=False)  # found on its first frame otherwise
    monkeypatch.setattr(keyed, "HandParams", off)
    monkeypatch.setattr(analyze, "HandParams", off)
    late, frames = analysed_and_rendered(clip, source, tmp_path / "off" / "o.####.png", 118, 133, [118])
    assert late.hands.frames.min() > 120 and len(late.hands.at(118)) == 0
    assert untouched(frames[118], inside) < 0.7  # painted over


# ---------------------------------------------------------------------------------------- the search over the face

class OverTheFace(NoPalms):
    """The scripted hand, which neither palm detection nor the pose landmarker finds; the hand landmarker reads it
    at ``first`` in the search's regions over :data:`FACE` (64 px: 1.6 x the box's height) and at ``then`` in any
    other region (one from its own landmarks)."""

    def __init__(self, n, first, then):
        super().__init__([0.95] * n)
        self.first, self.then = first, then

    def hand_rois(self, frame, face_box):
        from vidswap.faces.landmarks import Rois
        self.pose_calls.append(int(frame[0, 0, 0]))
        return Rois(np.zeros((0, 2)), np.zeros(0), np.zeros(0))

    def landmarker(self, frames, index, rois, black_border=False):
        out = super().landmarker(frames, index, rois, black_border)
        out.presence[:] = np.where(np.abs(np.asarray(rois.size) - 64.0) < 1e-6, self.first, self.then)
        return out


def face_tracker(n, first, then, **kw):
    models = OverTheFace(n, first, then)
    tracker = HandTracker(models.palms, models.landmarker, params(**{"face_search_every": 1, **kw}), models)
    for f in range(n):
        tracker.push(f, frame(f), FACE)
    backtrack_hands(tracker, reader([]))
    return tracker.finish(), models


def test_a_hand_over_the_face_that_no_detector_finds_is_found_by_the_search_over_the_face():
    """The pose landmarker (frame 7) proposes nothing; the search over the face reads 0.3, then 0.95 from the hand's
    own landmarks: one hand (not one per region), from frame 0 (backfilled and followed back). Off: no hand."""
    hands, models = face_tracker(12, 0.3, 0.95)
    np.testing.assert_array_equal(hands.frames, np.arange(12))
    assert len(set(hands.ids.tolist())) == 1
    assert models.pose_calls == [7]
    off, _ = face_tracker(12, 0.3, 0.95, face_search=False)
    assert len(off) == 0


def test_a_weak_reading_over_the_face_that_does_not_firm_up_is_no_hand():
    """First readings under ``face_search_first`` are not followed up; one that stays under ``accept`` once read
    from its own landmarks is dropped: the face itself is never taken for a hand."""
    assert len(face_tracker(24, 0.1, 0.95)[0]) == 0
    assert len(face_tracker(24, 0.3, 0.6)[0]) == 0


def test_face_search_regions():
    from vidswap.hands.regions import face_search_rois

    rois = face_search_rois(np.array([30.0, 10.0, 70.0, 50.0]), 0.25, 1.6)
    np.testing.assert_allclose(rois.center, [[50.0, 40.0]] * 3)
    np.testing.assert_allclose(rois.size, [64.0] * 3)
    np.testing.assert_allclose(rois.angle, [0.0, 0.5, -0.5])


def test_a_shot_opening_on_a_hand_over_the_mouth_that_no_detector_finds(media, tmp_path, monkeypatch):
    """The sample clip cut to open on frame 188 (annotated), the hand over the mouth, fingers up, the arm below the
    frame: palm detection and the pose landmarker find no hand in the whole cut (188-215); the search over the face
    finds it on its first run (frame 211) and, followed back, the hand is there from frame 188, its drawn pixels inside the face as untouched as the whole stretch's
    analysis leaves them there (0.913; from frame 56: 0.906, the hand's edge over the lips is the hardest part of
    the annotations). Without the search the swap paints over it."""
    clip, source = media("pexels_clip"), media("grace_hopper")
    polys = annotations()[188]
    analysis, frames = analysed_and_rendered(clip, source, tmp_path / "on" / "o.####.png", 188, 215, [188])
    assert analysis.hands.frames.min() == 188 and all(len(analysis.hands.at(n)) == 1 for n in range(188, 216))
    inside = drawn_inside_face(analysis, polys, 188, frames[188][0].shape[:2])
    assert inside.sum() > 1500
    assert untouched(frames[188], inside) >= 0.89

    import vidswap.faces.analysis_key as keyed
    import vidswap.faces.analyze as analyze

    off = functools.partial(HandParams, face_search=False)
    monkeypatch.setattr(keyed, "HandParams", off)
    monkeypatch.setattr(analyze, "HandParams", off)
    missed, frames = analysed_and_rendered(clip, source, tmp_path / "off" / "o.####.png", 188, 215, [188])
    assert len(missed.hands) == 0
    assert untouched(frames[188], inside) < 0.7
