"""A hand the search over the face finds is followed there (``HandParams.search_follow``,
``search_follow_frames``): scripted models whose landmarker reads the hand in the search's regions and not from its
own landmarks, as over a face cut by the frame's edge; and the sample clip cut to its right 220 columns, the face
half out of the frame, where the hand over it was painted over on every annotated frame."""

from __future__ import annotations

import functools

import numpy as np

from test_hands_backtrack import FACE, analysed_and_rendered, drawn_inside_face, frame, params, reader, untouched
from test_hands_motion import NoPalms, ScriptedModels
from test_occlusion_hands import annotations
from vidswap.hands.backtrack import backtrack_hands
from vidswap.hands.track import HandParams, HandTracker

N = 20


class Regions(NoPalms):
    """The scripted hand: no palm, no pose region; the landmarker reads ``search[n]`` on frame ``n`` in the
    search's regions over :data:`FACE` (64 px) and ``own[n]`` in any other region (one from its landmarks)."""

    def __init__(self, search, own):
        super().__init__(np.zeros(len(search)))
        self.search, self.own = np.asarray(search, np.float32), np.asarray(own, np.float32)

    def hand_rois(self, frame, face_box):
        from vidswap.faces.landmarks import Rois
        self.pose_calls.append(int(frame[0, 0, 0]))
        return Rois(np.zeros((0, 2)), np.zeros(0), np.zeros(0))

    def landmarker(self, frames, index, rois, black_border=False):
        out = ScriptedModels.landmarker(self, frames, index, rois, black_border)
        n = int(frames[index[0]][0, 0, 0])
        out.presence[:] = np.where(np.abs(np.asarray(rois.size) - 64.0) < 1e-6, self.search[n], self.own[n])
        return out


def tracked(search, own, back=False, **kw):
    """The scripted hand tracked over the frames (the search with every pose call), and with ``back`` followed back
    (:func:`~vidswap.hands.backtrack.backtrack_hands`)."""
    models = Regions(search, own)
    tracker = HandTracker(models.palms, models.landmarker, params(**{"face_search_every": 1, **kw}), models)
    for n in range(len(search)):
        tracker.push(n, frame(n), FACE)
    if back:
        backtrack_hands(tracker, reader([]))
    return tracker.finish()


def test_a_hand_its_own_landmarks_lose_is_followed_over_the_face():
    """The search (with the pose call on frame 7) reads the hand at 0.9, its own landmarks' region at 0.1: found on
    7 and followed in the search's regions to the end, and back over the faces of the 3 kept frames (to 4), and
    followed back further, to frame 0. Off: dropped on 8, one frame seen, no hand."""
    hands = tracked([0.9] * N, [0.1] * N)
    np.testing.assert_array_equal(hands.frames, np.arange(4, N))
    assert set(hands.ids.tolist()) == {0}
    np.testing.assert_array_equal(tracked([0.9] * N, [0.1] * N, back=True).frames, np.arange(N))
    assert len(tracked([0.9] * N, [0.1] * N, search_follow=False)) == 0
    assert len(tracked([0.9] * N, [0.1] * N, back=True, search_follow=False)) == 0


def test_a_search_reading_that_reached_accept_is_kept_when_its_own_landmarks_read_less():
    """First reading 0.9 in the search's regions, 0.6 from its own landmarks (a tracked hand's level, under
    ``accept``): the hand is kept from frame 7 (and the backfill's 3 kept frames before it, which read 0.6 too).
    Off: the last reading decides, and 0.6 is no hand."""
    np.testing.assert_array_equal(tracked([0.9] * N, [0.6] * N).frames, np.arange(4, N))
    assert len(tracked([0.9] * N, [0.6] * N, search_follow=False)) == 0


def test_a_weak_first_reading_is_looked_at_again_on_the_next_frames():
    """The search on frame 7 reads 0.3 (a hand, not yet firm); from frame 9 the hand reads 0.9 in the search's
    regions and 0.95 from its own landmarks. Looked at again on the following frames, it is found on 9; waiting
    for the next search (frame 15, with the pose call) it starts on 12 (the backfill's 3 kept frames)."""
    search = [0.0] * 7 + [0.3, 0.3] + [0.9] * (N - 9)
    own = [0.1] * 9 + [0.95] * (N - 9)
    np.testing.assert_array_equal(tracked(search, own, backtrack=0).frames, np.arange(9, N))
    np.testing.assert_array_equal(tracked(search, own, backtrack=0, search_follow_frames=0).frames, np.arange(12, N))
    # the search's runs: with the pose calls (7, 15) only, on a face whose regions read under face_search_first;
    # a reading of 0.3 that never firms up is looked at on the 8 frames after each (8-14 and 16-19)
    for reading, runs in ((0.1, [7, 15]), (0.3, list(range(7, N)))):
        models = Regions([reading] * N, [0.1] * N)
        tracker = HandTracker(models.palms, models.landmarker, params(face_search_every=1), models)
        calls = []
        search = tracker._search_faces
        tracker._search_faces = lambda *a: calls.append(len(tracker._pushed)) or search(*a)
        for n in range(N):
            tracker.push(n, frame(n), FACE)
        assert calls == runs and models.pose_calls == [7, 15]


def test_a_lost_hand_the_search_found_is_found_again_there_with_its_id():
    """Found by the search on frame 7 and tracked from its own landmarks (0.95; backfilled to 4) to 9; on 10-11
    nothing reads it; from 12 only the search's regions do (0.9). Looked for again every 4th frame (11, 15), in the
    search's regions too, it is found on 15 with its id and followed back there to 12, where the regions first read
    it again (no motion bridge here: the gap 10-11 stays). Off: the relock reads its own region only, and the hand
    ends on 9."""
    search = [0.9] * 10 + [0.1, 0.1] + [0.9] * (N - 12)
    own = [0.95] * 10 + [0.1] * (N - 10)
    hands = tracked(search, own)
    np.testing.assert_array_equal(hands.frames, list(range(4, 10)) + list(range(12, N)))
    assert set(hands.ids.tolist()) == {0}
    np.testing.assert_array_equal(tracked(search, own, search_follow=False).frames, np.arange(4, 10))


def test_a_hand_over_a_face_cut_by_the_frames_edge(media, tmp_path, monkeypatch):
    """The sample clip's frames 56-119 cut to their right 220 columns: the face half out of the frame, the hand over
    its mouth and nose from frame 58, palm and wrist outside. Neither detector finds it; the search's regions read
    it at 0.8-0.97 on most frames, its own landmarks' region at 0.03-0.3. Looked at again after a weak reading,
    found on 79, followed over the face and back to 76, the annotated hand's pixels inside the face on frames 76,
    90, 96 and 118 stay the plate's (measured 0.97 / 0.98 / 0.82 / 0.79); without, the hand is found on one
    search's frames and lost at once, and the swap paints over it there (0.33 / 0.30 / 0.04 / 0.06, measured inside
    the face as this analysis places it). Frame 104 was kept without too (a periodic search found it there)."""
    import av

    clip = tmp_path / "half.mkv"
    with av.open(str(media("pexels_clip"))) as src, av.open(str(clip), "w") as dst:
        rate = src.streams.video[0].average_rate
        out = dst.add_stream("ffv1", rate=rate)
        out.width, out.height, out.pix_fmt = 220, 360, "yuv444p"
        for n, f in enumerate(src.decode(video=0)):
            if n > 119:
                break
            if n >= 56:
                for packet in out.encode(av.VideoFrame.from_ndarray(
                        np.ascontiguousarray(f.to_ndarray(format="rgb24")[:, 420:]), format="rgb24")):
                    dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    shown = [76, 90, 96, 104, 118]
    ann = {n: [p - [420.0, 0.0] for p in annotations()[n]] for n in shown}  # in the cut's columns
    source = media("grace_hopper")
    analysis, frames = analysed_and_rendered(clip, source, tmp_path / "on" / "o.####.png", 0, 63,
                                             [n - 56 for n in shown])
    kept = []
    for n in shown:
        inside = drawn_inside_face(analysis, ann[n], n - 56, frames[n - 56][0].shape[:2])
        assert inside.sum() > 300, n
        kept.append(untouched(frames[n - 56], inside))
    assert analysis.hands.frames.min() <= 76 - 56 and analysis.hands.frames.max() == 63
    followed = [kept[shown.index(n)] for n in (76, 90, 96, 118)]
    assert min(followed) >= 0.75 and np.mean(followed) >= 0.85, np.round(kept, 3)

    import vidswap.faces.analysis_key as keyed
    import vidswap.faces.analyze as analyze

    off = functools.partial(HandParams, search_follow=False, search_follow_frames=0)
    monkeypatch.setattr(keyed, "HandParams", off)
    monkeypatch.setattr(analyze, "HandParams", off)
    _, frames = analysed_and_rendered(clip, source, tmp_path / "off" / "o.####.png", 0, 63, [n - 56 for n in shown])
    painted = [untouched(frames[n - 56], drawn_inside_face(analysis, ann[n], n - 56, frames[n - 56][0].shape[:2]))
               for n in shown]
    assert max(painted[shown.index(n)] for n in (76, 90, 96, 118)) < 0.35, np.round(painted, 3)
