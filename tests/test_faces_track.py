"""Face tracker (assignment, gap bridging, track splits), shot cuts (faces.cuts), target selection (faces.targets)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import build_canonical  # tools/build_canonical.py (conftest puts tools/ on sys.path)
from vidswap.errors import UsageError
from vidswap.faces.cuts import CutDetector, detect_cuts
from vidswap.faces.pose import canonical_face
from vidswap.faces.targets import select_targets
from vidswap.faces.track import Observation, Tracker, TrackerParams, box_iou, min_cost_pairs, track_faces
from vidswap.models.registry import model_path

CANON = canonical_face().numpy().astype(np.float64)


def _face(cx: float, cy: float, size: float, shape: np.ndarray = CANON, emb: np.ndarray | None = None,
          conf: float = 0.9) -> Observation:
    """A synthetic face: the canonical landmarks scaled to ``size`` px per unit at (cx, cy), box = bounds."""
    lm = shape * size + np.array([cx, cy, 0.0])
    box = np.concatenate([lm[:, :2].min(0), lm[:, :2].max(0)]).astype(np.float32)
    return Observation(box=box, landmarks=lm.astype(np.float32), embedding=emb, confidence=conf)


def _unit(rng: np.random.Generator, d: int = 128) -> np.ndarray:
    v = rng.normal(size=d)
    return v / np.linalg.norm(v)


def test_crossing_faces_keep_ids():
    """Two people walk past each other; while the front face hides the rear one (boxes overlapping more than
    half) only the front one is detected. Both keep their ids and the rear face's gap is bridged."""
    rng = np.random.default_rng(0)
    emb_a, emb_b = _unit(rng), _unit(rng)
    other_shape = CANON * np.array([1.08, 0.95, 1.0])  # a different face shape
    frames, hidden = [], []
    for k in range(40):
        xa, xb = 100 + 10 * k, 500 - 10 * k
        a = _face(xa, 200, 50, emb=emb_a + rng.normal(0, 0.02, 128))
        b = _face(xb, 205, 50, other_shape, emb=emb_b + rng.normal(0, 0.02, 128))
        overlap = box_iou(a.box[None], b.box[None])[0, 0]
        obs = [b, a] if k % 2 else [a, b]  # detector order is arbitrary
        if overlap > 0.5:
            obs = [a]  # b is behind a
            hidden.append(k)
        frames.append(obs)
    assert len(hidden) >= 2
    tracks = track_faces(frames, params=TrackerParams(max_gap=8))
    assert len(tracks) == 2
    ta, tb = tracks
    assert np.array_equal(ta.frames, np.arange(40)) and np.array_equal(tb.frames, np.arange(40))
    centre = lambda t: (t.boxes[:, 0] + t.boxes[:, 2]) / 2  # noqa: E731
    assert np.all(np.diff(centre(ta)) > 0) and np.all(np.diff(centre(tb)) < 0)  # each id kept its direction
    assert not ta.interpolated.any()
    assert np.array_equal(np.flatnonzero(tb.interpolated), hidden)
    assert float(ta.embedding @ emb_a) > 0.99 and float(tb.embedding @ emb_b) > 0.99


def test_crossing_by_motion_alone():
    """Boxes only (no landmarks, no identity): constant-velocity prediction carries both tracks through the
    crossing."""
    frames = []
    for k in range(30):
        a = Observation(box=np.array([50 + 12 * k, 100 + 2 * k, 150 + 12 * k, 200 + 2 * k], np.float32))
        b = Observation(box=np.array([400 - 12 * k, 130 - 1 * k, 500 - 12 * k, 230 - 1 * k], np.float32))
        frames.append([b, a] if k % 3 else [a, b])
    tracks = track_faces(frames)
    assert len(tracks) == 2
    for t in tracks:
        dx = np.diff(t.boxes[:, 0])
        assert np.allclose(dx, dx[0])  # never jumped to the other face
    assert tracks[0].landmarks is None and tracks[0].embeddings is None


def test_three_frame_miss_is_bridged_exactly_linearly():
    rng = np.random.default_rng(1)
    emb = _unit(rng)
    frames = []
    for k in range(20):
        # non-linear motion and a growing face, so interpolation is distinguishable from the truth
        cx, cy, size = 200 + 3 * k + 0.4 * k * k, 150 + 8 * np.sin(k / 3), 40 + k
        frames.append([] if k in (10, 11, 12) else [_face(cx, cy, size, emb=emb, conf=0.8)])
    (t,) = track_faces(frames, params=TrackerParams(max_gap=3))
    assert np.array_equal(t.frames, np.arange(20))
    assert np.array_equal(np.flatnonzero(t.interpolated), [10, 11, 12])
    for k, w in zip((10, 11, 12), (0.25, 0.5, 0.75)):
        np.testing.assert_allclose(t.boxes[k], (1 - w) * t.boxes[9] + w * t.boxes[13], rtol=0, atol=1e-4)
        np.testing.assert_allclose(t.landmarks[k], (1 - w) * t.landmarks[9].astype(np.float64)
                                   + w * t.landmarks[13].astype(np.float64), rtol=0, atol=1e-4)
    assert np.all(t.confidences[[10, 11, 12]] == 0) and np.all(t.confidences[t.interpolated == 0] == 0.8)
    assert np.isnan(t.embeddings[10:13]).all() and np.isfinite(t.embeddings[:10]).all()
    assert t.landmarks.shape == (20, 478, 3) and t.landmarks.dtype == np.float32


@pytest.mark.parametrize("gap,expected", [(8, 1), (9, 2)])
def test_miss_longer_than_max_gap_splits_the_track(gap, expected):
    frames = [[] if 10 <= k < 10 + gap else [_face(300, 200, 50)] for k in range(30)]
    tracks = track_faces(frames, params=TrackerParams(max_gap=8))
    assert len(tracks) == expected
    if expected == 2:
        assert tracks[0].frames[-1] == 9 and tracks[1].frames[0] == 10 + gap
        assert not tracks[0].interpolated.any() and not tracks[1].interpolated.any()
    else:
        assert tracks[0].interpolated.sum() == gap


def test_gating_new_face_far_away_and_identity_mismatch():
    rng = np.random.default_rng(2)
    e1, e2 = _unit(rng), _unit(rng)
    # same place, different person (e.g. a cutaway without a visual cut detected): identity gate splits
    frames = [[_face(300, 200, 50, emb=e1)] for _ in range(5)] + [[_face(302, 201, 50, emb=e2)] for _ in range(5)]
    assert len(track_faces(frames)) == 2
    # a face appearing far away is a new track, the first one goes on
    frames = [[_face(100, 200, 50)] for _ in range(5)] + [[_face(100, 200, 50), _face(500, 200, 50)]] * 3
    tracks = track_faces(frames)
    assert [len(t) for t in tracks] == [8, 3]


@pytest.fixture(scope="module")
def two_shots(media):
    """12 frames of pexels_clip, then 12 of single_face_clip shifted so that its face sits where the first
    clip's face was (a cut that box overlap alone would not notice), with YuNet boxes."""
    a = build_canonical.read_video_frames(media("pexels_clip"), 12)
    b = build_canonical.read_video_frames(media("single_face_clip"), 12)
    det = cv2.FaceDetectorYN.create(str(model_path("yunet")), "", (640, 360), 0.6)

    def box(frame):
        _, faces = det.detect(np.ascontiguousarray(frame[..., ::-1]))
        x, y, w, h = faces[np.argmax(faces[:, 2] * faces[:, 3]), :4]
        return np.array([x, y, x + w, y + h], np.float32)

    ca, cb = box(a[0]), box(b[0])
    dx = int(round((ca[0] + ca[2]) / 2 - (cb[0] + cb[2]) / 2))
    b = [np.roll(f, dx, axis=1) for f in b]
    frames = a + b
    return frames, [[Observation(box=box(f), confidence=0.9)] for f in frames]


def test_cut_detected_and_starts_new_track(two_shots):
    frames, observations = two_shots
    assert detect_cuts(frames) == [12]
    det = CutDetector()
    flags = [det.push(f) for f in frames]
    d = np.array(det.differences)
    print(f"\ncut score {d[12]:.3f}; within shots max {np.delete(d, 12)[1:].max():.3f}")
    assert flags.index(True) == 12 and sum(flags) == 1
    assert d[12] > 10 * np.median(d[1:])
    # without the cut the overlapping boxes would be linked into one track ...
    assert box_iou(observations[11][0].box[None], observations[12][0].box[None])[0, 0] > 0.3
    assert len(track_faces(observations)) == 1
    # ... with it, the second shot starts a new track
    tracks = track_faces(observations, cuts=detect_cuts(frames))
    assert [(t.frames[0], t.frames[-1], t.shot) for t in tracks] == [(0, 11, 0), (12, 23, 1)]
    # thumbnails are enough, and float frames work the same
    thumbs = [cv2.resize(f, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32) / 255 for f in frames]
    assert detect_cuts(thumbs) == [12]


def test_no_cut_on_static_noise_or_fades():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (36, 64, 3)).astype(np.float64)
    static = [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(20)]
    assert detect_cuts(static) == []
    fade = [(base * (1 - k / 15)).astype(np.uint8) for k in range(16)]  # fade to black over 15 frames
    assert detect_cuts(fade) == []
    hard = static[:10] + [np.full_like(static[0], 30)] * 10
    assert detect_cuts(hard) == [10]


def test_a_camera_flash_is_not_a_cut_but_a_one_frame_black_between_shots_is():
    rng = np.random.default_rng(4)
    base = rng.integers(20, 140, (36, 64, 3)).astype(np.float64)
    shot = [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(20)]
    flashed = list(shot)
    flashed[8] = np.clip(shot[8].astype(np.float64) * 1.8, 0, 255).astype(np.uint8)  # one frame, 1.8x brighter
    detector = CutDetector()
    flags = [detector.push(f, number=1001 + i) for i, f in enumerate(flashed)]
    assert flags[8] and detector.cuts == []  # provisional at the flash, withdrawn a frame later
    assert detect_cuts(flashed) == []
    other = np.full_like(shot[0], 200)
    black_between = shot[:8] + [np.zeros_like(shot[0])] + [other] * 8
    assert detect_cuts(black_between) == [8, 9]  # the black frame and the new shot both start shots
    assert detect_cuts(shot[:8] + [other]) == [8]  # a cut at the last frame stays


def _track(tid, first, n, size, emb=None, shot=0):
    frames = [[_face(300 + tid * 400, 200, size, emb=emb)] for _ in range(n)]
    (t,) = track_faces(frames, frames=range(first, first + n))
    t.id, t.shot = tid, shot
    return t


def test_select_targets():
    rng = np.random.default_rng(4)
    e = [_unit(rng) for _ in range(4)]
    tracks = [_track(0, 0, 10, 40, e[0]), _track(1, 5, 10, 60, e[1]), _track(2, 2, 10, 50, e[2]),
              _track(3, 30, 5, 30, e[3], shot=1)]
    assert select_targets(tracks, "largest") == [1, 3]  # per shot
    assert select_targets(tracks[:3], "largest") == [1]
    assert select_targets(tracks, "all") == [0, 1, 2, 3]
    assert select_targets(tracks, "index", index=0) == [0]
    assert select_targets(tracks, "index", index=1) == [2]  # by first appearance: frames 0, 2, 5, 30
    assert select_targets(tracks, "reference", reference_embedding=e[2] + rng.normal(0, 0.05, 128)) == [2]
    assert select_targets(tracks, "reference", reference_embedding=_unit(rng)) == []
    assert select_targets([], "largest") == []
    for kwargs in ({"mode": "index"}, {"mode": "index", "index": 9}, {"mode": "reference"}, {"mode": "biggest"}):
        with pytest.raises(UsageError):
            select_targets(tracks, **kwargs)


def test_streaming_api_and_records():
    from vidswap.faces.types import Detection, FaceLandmarks, FaceObservation

    tr = Tracker(TrackerParams(max_gap=2))
    lm = (CANON * 50 + [300, 200, 0]).astype(np.float32)
    fo = FaceObservation(frame=0, landmarks=FaceLandmarks(points=lm, kps5=np.zeros((5, 2), np.float32),
                                                          confidence=0.97))
    obs = Observation.from_face_observation(fo)
    assert obs.confidence == pytest.approx(0.97) and obs.box.shape == (4,)
    det_only = Observation.from_face_observation(
        FaceObservation(frame=0, detection=Detection(box=np.array([1, 2, 3, 4], np.float32),
                                                     kps=np.zeros((5, 2), np.float32), score=0.5)))
    assert det_only.landmarks is None and det_only.confidence == 0.5
    assert tr.update(0, [obs]) == [0]
    assert tr.update(1, [obs]) == [0]
    tr.update(5, [])  # 3 frames unseen > max_gap 2: closed
    done = tr.pop_finished()
    assert [t.id for t in done] == [0] and len(done[0]) == 2
    assert tr.update(6, [obs]) == [1]
    with pytest.raises(UsageError):
        tr.update(6, [obs])
    assert [t.id for t in tr.finish()] == [1]


def test_min_cost_pairs_of_one_row_or_column_are_the_solvers():
    """A single row or column (a one-face shot's every frame) is paired without scipy.optimize: the same pairs as
    linear_sum_assignment, ties (the gate's equal 1e6 costs) to the first; other shapes and non-finite costs go
    to the solver (its answer, its error)."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(3)
    for k in range(400):
        n = int(rng.integers(1, 6))
        cost = rng.integers(0, 3, size=(1, n) if k % 2 else (n, 1)).astype(np.float64)
        cost[cost == 2] = 1e6
        got, want = min_cost_pairs(cost), linear_sum_assignment(cost)
        assert all(np.array_equal(g, w) for g, w in zip(got, want)), cost
    square = rng.random((3, 4))
    assert all(np.array_equal(g, w) for g, w in zip(min_cost_pairs(square), linear_sum_assignment(square)))
    with pytest.raises(ValueError):
        min_cost_pairs(np.array([[np.nan, 1.0]]))
