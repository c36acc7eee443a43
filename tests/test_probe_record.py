"""The input's probe recorded in the job folder (``vidswap/probe_record.py``): the record gives back the probe
exactly, is ignored for another path, a changed input or a damaged record, and ``plan_shot(recorded=True)`` takes it
without reading the plate; sequences are not recorded."""

from __future__ import annotations

import json
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import vidswap.probe_record as probe_record
from vidswap.config import load_config
from vidswap.io import MediaInfo, probe
from vidswap.io.media import AudioTrack
from vidswap.probe_record import PROBE_RECORD, record_probe, recorded_probe
from vidswap.shot import plan_shot


@pytest.fixture
def clip(tmp_path) -> Path:
    """A 12-frame 64x48 FFV1 clip at 30000/1001 with a 48 kHz stereo AAC track."""
    path = tmp_path / "plate.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=Fraction(30000, 1001))
        video.width, video.height, video.pix_fmt = 64, 48, "bgr0"
        audio = out.add_stream("aac", rate=48000, layout="stereo")
        for k in range(12):
            image = np.full((48, 64, 3), 20 * k, np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode())
        samples = np.zeros((2, 1024), np.float32)
        for k in range(10):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, 1024 * k
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return path


def test_media_info_round_trips_through_its_dict():
    info = MediaInfo(path=Path("/plates/a.mov"), kind="video", width=1920, height=1080, frame_count=100,
                     first_frame=0, fps=Fraction(24000, 1001), vfr=False, time_base=Fraction(1, 24000),
                     duration=4.1708, codec="prores", pix_fmt="yuv422p10le", bit_depth=10, color_primaries="bt709",
                     color_trc="bt709", colorspace="bt709", color_range="tv", timecode="01:00:00:00", rotation=0,
                     audio=(AudioTrack(1, "pcm_s24le", 48000, 2, "eng"),), pattern=None)
    assert MediaInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    with pytest.raises(KeyError):
        MediaInfo.from_dict({"path": "/x"})


def test_record_gives_back_the_probe(clip, tmp_path):
    info = probe(clip)
    assert info.audio and info.fps == Fraction(30000, 1001) and info.frame_count == 12
    job = tmp_path / "out.vidswap"
    assert record_probe(job, info) == job / PROBE_RECORD
    assert recorded_probe(job, clip) == info
    assert recorded_probe(job, str(clip)) == info
    assert recorded_probe(job, tmp_path / "other.mkv") is None  # another input
    assert recorded_probe(tmp_path / "elsewhere", clip) is None  # no record


def test_record_is_ignored_when_the_input_changes(clip, tmp_path):
    job = tmp_path / "out.vidswap"
    record_probe(job, probe(clip))
    st = clip.stat()
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))  # touched: re-exported in place
    assert recorded_probe(job, clip) is None
    record_probe(job, probe(clip))
    with open(clip, "ab") as fh:  # grown (a render still writing it, a re-export)
        fh.write(b"\0" * 16)
    assert recorded_probe(job, clip) is None
    clip.unlink()
    assert recorded_probe(job, clip) is None


@pytest.mark.parametrize("damage", ["truncated", "version", "not_info"])
def test_damaged_record_is_ignored(clip, tmp_path, damage):
    job = tmp_path / "out.vidswap"
    path = record_probe(job, probe(clip))
    record = json.loads(path.read_text())
    if damage == "truncated":
        path.write_text(path.read_text()[:40])
    elif damage == "version":
        path.write_text(json.dumps(dict(record, version=0)))
    else:
        path.write_text(json.dumps(dict(record, info={"path": str(clip)})))
    assert recorded_probe(job, clip) is None


def test_sequences_and_stills_are_not_recorded(tmp_path):
    info = MediaInfo(path=Path("/plates/a.####.exr"), kind="sequence", width=8, height=8, frame_count=3,
                     first_frame=1001, fps=Fraction(24), vfr=False, time_base=None, duration=0.125, codec="exr",
                     pix_fmt="rgbf32le", bit_depth=32, color_primaries=None, color_trc=None, colorspace=None,
                     color_range=None, timecode=None, rotation=0, audio=(), pattern="a.1001-1003#.exr")
    assert record_probe(tmp_path, info) is None
    assert not (tmp_path / PROBE_RECORD).exists()


def test_plan_takes_the_record_without_reading_the_plate(clip, tmp_path, monkeypatch):
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {clip}\nframes: 2-9\noutput: {{path: {tmp_path / 'out.mp4'}}}\n")
    cfg = load_config(shot=shot)
    fresh = plan_shot(cfg)
    record_probe(fresh.job_dir, fresh.info)
    calls = []
    monkeypatch.setattr(probe_record, "probe", lambda path: calls.append(path) or probe(path))
    planned = plan_shot(cfg, recorded=True)
    assert planned.info == fresh.info and planned.numbers == fresh.numbers == list(range(2, 10)) and calls == []
    (fresh.job_dir / PROBE_RECORD).unlink()
    assert plan_shot(cfg, recorded=True).info == fresh.info and len(calls) == 1  # no record: probed


def test_settled_input_is_fingerprinted_once_per_process(clip, monkeypatch):
    """The probe record's check and the analysis's check read a settled plate once; a write is seen at once, and a
    file changed within the settle time (a coarse clock's "racy" window) is read on every call."""
    import vidswap.faces.tracksfile as tracksfile

    reads = []
    original = tracksfile._hash_files
    monkeypatch.setattr(tracksfile, "_hash_files", lambda files, chunk: reads.append(files) or original(files, chunk))
    tracksfile._file_fingerprint.cache_clear()
    first = tracksfile.input_fingerprint(clip)
    assert tracksfile.input_fingerprint(clip) == first and len(reads) == 2  # just written: read every time
    monkeypatch.setattr(tracksfile, "SETTLE_NS", -1)  # settled
    assert tracksfile.input_fingerprint(clip) == first and tracksfile.input_fingerprint(Path(str(clip))) == first
    assert len(reads) == 3  # read once more, then taken from the cache
    before = clip.stat()
    time.sleep(0.05)  # past the filesystem clock's tick, so the write moves the ctime
    with open(clip, "r+b") as fh:  # the same size, another first byte, the old mtime put back
        head = fh.read(1)
        fh.seek(0)
        fh.write(bytes([head[0] ^ 0xFF]))
    os.utime(clip, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert clip.stat().st_ctime_ns != before.st_ctime_ns
    assert tracksfile.input_fingerprint(clip) != first and len(reads) == 4
    tracksfile._file_fingerprint.cache_clear()
