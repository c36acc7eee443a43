"""The analyze pass on real clips: one track through a clip without cuts, a new track after a cut, the tracks
file round trip, per-track colour statistics, smoothing that does not move a still frame."""

from __future__ import annotations

import numpy as np
import pytest

from vidswap.config import SmoothingConfig, load_config
from vidswap.errors import ConfigError
from vidswap.faces.analyze import AnalysisModels, FrameAnalyzer, smooth_track_stats
from vidswap.faces.topology import load_topology
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.io import probe, read_frames
from vidswap.composite.plate_stats import plate_skin_stats


@pytest.fixture(scope="module")
def models():
    return AnalysisModels.load(load_config().analysis)


def frames_of(path, numbers):
    with read_frames(probe(path), numbers) as frames:
        return [f.image for f in frames]


def analyse(models, images, fps=30.0, stats=False, background=True, failing=False, colour_every=1, seen=None):
    cfg = load_config(overrides={"analysis": {"colour_every": colour_every}}).analysis
    fn = None
    if stats:
        regions = load_topology().regions

        def fn(image, points):
            if seen is not None:
                seen.append(len(image))
            return plate_skin_stats(image, points, regions)
    if failing:
        fn = broken_after_one_batch()
    analyzer = FrameAnalyzer(models, cfg, stats_fn=fn, background=background)
    for start in range(0, len(images), 8):
        batch = images[start:start + 8]
        analyzer.push(list(range(start, start + len(batch))), batch)
    return analyzer.finish(fps, SmoothingConfig(), {"key": "test"})


def broken_after_one_batch():
    """A colour-statistics pass that fails on its second batch."""
    calls = []

    def stats(image, points):
        if calls:
            raise ValueError("stats failed")
        calls.append(1)
        return [np.zeros((len(p), 6), np.float32) for p in points]

    return stats


def test_one_track_through_a_clip_without_cuts(media, models):
    result = analyse(models, frames_of(media("single_face_clip"), range(0, 72, 2)), fps=15.0, stats=True)
    assert result.header["cuts"] == []
    assert len(result.tracks) == 1
    track = result.tracks[0]
    assert len(track.frames) == 36 and not track.interpolated.any()
    assert track.colour.shape == (36, 6) and np.isfinite(track.colour).all()
    # L (lightness) of skin: a plausible face, and steady: the smoothed statistics barely move frame to frame
    assert 30 < track.colour[:, 0].mean() < 90
    assert np.abs(np.diff(track.colour[:, 0])).max() < 1.0


def test_colour_statistics_of_every_nth_frame_are_interpolated(media, models):
    """``analysis.colour_every: 4`` (previews): the statistics of frames 0, 4, 8, ... only (one face, no new one
    after the first frame); the frames between are interpolated and smoothed like misses, close to every frame's."""
    images = frames_of(media("single_face_clip"), range(0, 72, 2))
    every, sampled = [], []
    full = analyse(models, images, fps=15.0, stats=True, seen=every).tracks[0].colour
    quarter = analyse(models, images, fps=15.0, stats=True, colour_every=4, seen=sampled).tracks[0].colour
    assert sum(every) == 36 and sum(sampled) == 9  # frames 0, 4, ..., 32
    assert quarter.shape == (36, 6) and np.isfinite(quarter).all()
    assert np.abs(quarter - full).max(0)[:3].max() < 1.0  # L*a*b* means within 1 unit of every frame's
    with pytest.raises(ConfigError, match="colour_every"):
        load_config(overrides={"analysis": {"colour_every": 0}})


def test_a_cut_starts_a_new_track(media, models):
    a = frames_of(media("single_face_clip"), range(0, 16))
    b = frames_of(media("pexels_clip"), range(100, 116))
    result = analyse(models, a + b)
    assert result.header["cuts"] == [16]
    assert len(result.tracks) == 2
    first, second = sorted(result.tracks, key=lambda t: t.frames[0])
    assert (first.frames[0], first.frames[-1]) == (0, 15) and (second.frames[0], second.frames[-1]) == (16, 31)
    assert first.shot != second.shot
    # different people: their mean identities are far apart
    assert float(first.embedding @ second.embedding) < 0.3


def test_tracks_file_round_trip(media, models, tmp_path):
    result = analyse(models, frames_of(media("single_face_clip"), range(0, 24)), stats=True)
    path = tmp_path / "job" / "tracks.npz"
    result.save(path)
    back = ShotAnalysis.load(path)
    assert back.header["cuts"] == result.header["cuts"] and back.header["key"] == "test"
    for t, u in zip(result.tracks, back.tracks):
        for name in t.ARRAYS:
            assert np.array_equal(getattr(t, name), getattr(u, name)), name
    assert [p.name for p in path.parent.iterdir()] == ["tracks.npz"]  # atomic: no temporary left


def test_colour_statistics_on_the_worker_thread_give_the_same_tracks(media, models):
    images = frames_of(media("single_face_clip"), range(0, 24))
    worker, inline = (analyse(models, images, stats=True, background=b) for b in (True, False))
    assert len(worker.tracks) == len(inline.tracks) == 1
    for name in worker.tracks[0].ARRAYS:
        assert np.array_equal(getattr(worker.tracks[0], name), getattr(inline.tracks[0], name)), name


def test_an_error_on_the_worker_thread_reaches_the_caller(media, models):
    with pytest.raises(ValueError, match="stats failed"):
        analyse(models, frames_of(media("single_face_clip"), range(0, 24)), failing=True)


def test_smooth_track_stats_fills_gaps_and_is_zero_phase():
    stats = np.zeros((21, 2))
    stats[:, 0] = 10.0
    stats[:, 1] = np.arange(21)
    stats[5] = np.nan
    out = smooth_track_stats(stats, sigma=2.0)
    assert np.allclose(out[:, 0], 10.0)  # a constant stays exactly constant
    assert np.allclose(out[8:-8, 1], np.arange(21)[8:-8], atol=1e-6)  # a ramp is not delayed (zero phase)
    assert smooth_track_stats(np.full((4, 6), np.nan)).shape == (0, 6)
