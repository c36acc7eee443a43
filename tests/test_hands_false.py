"""No false hands: the analyze pass (palm detection, and the pose landmarker near every face found) finds no hand in
real clips without one, and the hand tracker exactly one hand in the sample clip's occluded stretch (every frame of
every clip in the media cache)."""

from __future__ import annotations

import pytest

from media_helpers import read_frames

CLIPS = ("single_face_clip", "face_noface_clip", "noface_face_clip", "no_face_clip", "carphone_clip")


@pytest.fixture(scope="module")
def track(model):
    from vidswap.hands.landmarks import HandLandmarker
    from vidswap.hands.palm import PalmDetector
    from vidswap.hands.track import HandTracker

    palms = PalmDetector.from_path(model("palm_detection"), 2)
    landmarker = HandLandmarker.from_path(model("hand_landmark"), 2)

    def run(frames, numbers):
        tracker = HandTracker(palms, landmarker)
        for n, im in zip(numbers, frames):
            tracker.push(n, im)
        return tracker.finish()

    return run


@pytest.fixture(scope="module")
def analyze():
    from vidswap.faces.analyze import AnalysisConfig, AnalysisModels, FrameAnalyzer

    cfg = AnalysisConfig()
    models = AnalysisModels.load(cfg, 2)
    assert models.hands is not None and models.hands[2] is not None  # the pose path is exercised

    def run(frames):
        analyzer = FrameAnalyzer(models, cfg)
        for s in range(0, len(frames), 8):
            analyzer.push(list(range(s, min(s + 8, len(frames)))), frames[s:s + 8])
        faces = sum(len(o) for o in analyzer.observations)
        return analyzer._hands.finish(), len(analyzer._hands.rows), faces

    return run


@pytest.mark.parametrize("name", CLIPS)
def test_no_hand_in_clips_without_one(media, analyze, name):
    frames = read_frames(media(name))
    assert len(frames) > 30
    hands, raw_rows, faces = analyze(frames)
    assert len(hands) == 0, f"{len(hands)} false hand rows in {name}"
    assert raw_rows == 0, f"{raw_rows} hand rows before the min_frames filter in {name}"
    if name != "no_face_clip":
        assert faces > 0  # faces were found, so the pose landmarker looked for hands


def test_sample_clip_one_hand_only_while_it_covers_the_face(media, track):
    frames = read_frames(media("pexels_clip"))
    hands = track(frames, range(len(frames)))
    frames_with = set(hands.frames.tolist())
    assert all(50 <= n <= 235 for n in frames_with)  # nothing before the hand comes up or after it leaves
    assert all(len(hands.at(n)) == 1 for n in frames_with)
    assert len(frames_with) >= 160  # held through the stretch (58-229), not just where the palm is seen
