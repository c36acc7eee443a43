"""A face lost for longer than the tracker bridges comes back as a new track; ``largest`` and ``reference`` choose
the person, every track of it (:func:`vidswap.faces.targets.same_person_groups`). Exact groups on synthetic
tracks; on the head scan turned 85 degrees to each side, whose face the analysis loses in profile, the default
run swaps both of its tracks (before: only the first, 7 of 48 frames)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from vidswap.config import load_config
from vidswap.errors import ConfigError
from vidswap.faces.targets import same_person_groups, select_targets


@dataclass
class FakeTrack:
    """What target selection reads of a track."""

    id: int
    frames: np.ndarray
    area: float
    embedding: np.ndarray | None
    shot: int = 0

    @property
    def mean_area(self) -> float:
        return self.area


def track(tid: int, first: int, last: int, area: float, emb, shot: int = 0) -> FakeTrack:
    return FakeTrack(tid, np.arange(first, last + 1), area, None if emb is None else np.asarray(emb, float), shot)


def unit(*v: float) -> np.ndarray:
    x = np.asarray(v, float)
    return x / np.linalg.norm(x)


A, B = unit(1, 0, 0, 0), unit(0, 1, 0, 0)
A2 = unit(1, 0, 0.6, 0)  # A seen turned: cosine 0.857 to A


def test_a_face_lost_and_found_again_is_one_person():
    """The actor's face (tracks 0 and 2, apart in time) and another person on screen throughout (1): ``largest``
    picks track 0, the largest, and with it track 2; a reference like A does too; B alone is B. With
    ``same_person`` 1 each track stands alone, as before."""
    tracks = [track(0, 0, 16, 900.0, A), track(1, 0, 119, 400.0, B), track(2, 42, 119, 700.0, A2)]
    assert same_person_groups(tracks, 0.5) == [[0, 2], [1]]
    assert select_targets(tracks, "largest", same_person=0.5) == [0, 2]
    assert select_targets(tracks, "largest") == [0, 2]  # the job's default, 0.5
    assert select_targets(tracks, "largest", same_person=1.0) == [0]
    assert select_targets(tracks, "reference", reference_embedding=A) == [0, 2]
    assert select_targets(tracks, "reference", reference_embedding=B) == [1]
    assert select_targets(tracks, "index", index=2) == [2]  # a track the user names is that track alone
    assert select_targets(tracks, "all") == [0, 1, 2]
    # the similarity must reach the level: 0.857 joins at 0.85, not at 0.86
    assert same_person_groups(tracks, 0.85) == [[0, 2], [1]]
    assert same_person_groups(tracks, 0.86) == [[0], [1], [2]]


def test_tracks_on_screen_together_are_never_one_person():
    """Two tracks that share a frame (the last of one is the first of the other) stay apart whatever their
    embeddings; a track without an embedding stays alone; shots are grouped separately."""
    tracks = [track(0, 0, 20, 900.0, A), track(1, 20, 40, 800.0, A), track(2, 50, 60, 800.0, None)]
    assert same_person_groups(tracks, 0.5) == [[0], [1], [2]]
    assert select_targets(tracks, "largest") == [0]
    other_shot = [track(0, 0, 20, 900.0, A), track(1, 30, 40, 100.0, A, shot=1)]
    assert select_targets(other_shot, "largest") == [0, 1]  # each shot's largest: each is its shot's only track


def test_the_most_similar_tracks_join_first():
    """Track 2 (between 0 and 1 in time) is like both; 0 and 1 overlap, so they cannot both join it: 2 joins the
    one it is more like (1, cosine 0.95 against 0.80), and 0 stays alone."""
    e2 = unit(1, 0, 0, 0)
    e0 = unit(0.8, 0.6, 0, 0)  # cosine 0.8 to e2
    e1 = unit(0.95, 0, np.sqrt(1 - 0.95 ** 2), 0)  # cosine 0.95 to e2
    tracks = [track(0, 0, 30, 500.0, e0), track(1, 10, 40, 500.0, e1), track(2, 50, 80, 500.0, e2)]
    assert same_person_groups(tracks, 0.5) == [[0], [1, 2]]
    # a group's embedding is its tracks' frame-weighted mean: a fourth track like that mean joins the group
    mean = unit(*(31 * e1 + 31 * e2))
    tracks.append(track(3, 90, 99, 500.0, mean))
    assert same_person_groups(tracks, 0.99) == [[0], [1], [2], [3]]  # 1 and 2 alone: cosine 0.95
    assert same_person_groups(tracks, 0.5) == [[0], [1, 2, 3]]


def test_the_setting_is_checked():
    assert load_config().target.same_person == 0.5
    for bad in (0.0, -0.2, 1.5):
        with pytest.raises(ConfigError, match="same_person"):
            load_config(overrides={"target": {"same_person": bad}})


def test_a_head_that_turns_to_profile_and_back_is_swapped_on_both_sides_of_the_turn(media, tmp_path):
    """The head scan swinging 85 degrees to each side over 48 frames: in profile (frames 7-16) the analysis loses
    the face for longer than the tracker bridges, so the shot has two tracks of the one man (their embeddings
    0.75 alike). The default run swaps both (38 frames); choosing the largest track alone swapped 7."""
    import av
    from click.testing import CliRunner

    import turning_head as th
    from vidswap.cli import main
    from vidswap.faces.tracksfile import ShotAnalysis

    clip, _ = th.turning_head_clip(frames=48, out=tmp_path / "turn.mp4", yaw=85.0)
    out = tmp_path / "swap.mkv"
    run = CliRunner().invoke(main, ["run", str(clip), "-s", str(media("astronaut")), "-o", str(out), "-q"])
    assert run.exit_code == 0, run.output
    analysis = ShotAnalysis.load(tmp_path / "swap.vidswap" / "tracks.npz")
    spans = [(int(t.frames[0]), int(t.frames[-1])) for t in analysis.tracks]
    assert len(spans) == 2 and spans[0][1] < spans[1][0], spans
    assert select_targets(analysis.tracks, "largest", same_person=1.0) == [0]  # the track alone: the first
    swapped = sum(e - s + 1 for s, e in spans)
    assert f"swapped {swapped} frames; passed through untouched: {spans[0][1] + 1}-{spans[1][0] - 1}" in run.output

    def frames(path):
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)]

    changed = [float(np.abs(r - p).max()) for r, p in zip(frames(out), frames(clip))]
    assert all(changed[n] > 40 for n in range(spans[1][0], spans[1][1] + 1, 4)), np.round(changed)
    # each track alone (target.same_person 1), the job as it was: the face after the turn is left as it is
    alone = tmp_path / "alone.yaml"
    alone.write_text("target:\n  same_person: 1.0\n")
    run = CliRunner().invoke(main, ["run", str(clip), "-s", str(media("astronaut")), "-o", str(tmp_path / "alone.mkv"),
                                    "--config", str(alone), "-q"])
    assert run.exit_code == 0, run.output
    assert f"swapped {spans[0][1] + 1} frames; passed through untouched: {spans[0][1] + 1}-47" in run.output
