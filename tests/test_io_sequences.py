"""vidswap.io image sequences: patterns, frame numbers kept, EXR half exact, PNG 16-bit, TIFF, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from test_io_support import video_pts

from vidswap.errors import InputError
from vidswap.io import EncodeSettings, Frame, open_sink, probe, read_frames
from vidswap.io.sequences import SequencePattern, sequence_label, write_image_file


@pytest.fixture(scope="module")
def real_frames(media):
    """Ten real 176x144 frames (uint8 RGB) from the carphone clip."""
    info = probe(media("carphone_clip"))
    with read_frames(info, range(0, 10)) as frames:
        return [f.image for f in frames]


def _write_sequence(directory, pattern, images, first, fmt="png"):
    parsed = SequencePattern.parse(directory / pattern)
    for i, image in enumerate(images):
        write_image_file(parsed.path(first + i), image, fmt)


def _read(info, numbers=None):
    with read_frames(info, numbers) as frames:
        return list(frames)


def test_png_sequence_keeps_1001_numbering_and_16_bit(real_frames, tmp_path):
    _write_sequence(tmp_path, "plate.####.png", real_frames, 1001)
    info = probe(tmp_path / "plate.####.png")
    assert (info.kind, info.first_frame, info.frame_count) == ("sequence", 1001, 10)
    assert (info.width, info.height, info.time_base, info.to_dict()["fps"]) == (176, 144, None, "24/1")
    assert info.frame_numbers == range(1001, 1011) and info.pattern.endswith("plate.1001-1010#.png")
    assert info.bit_depth == 16  # PNGs written by vidswap are 16-bit
    frames = _read(info, range(1003, 1009, 2))
    assert [f.number for f in frames] == [1003, 1005, 1007] and all(f.pts is None for f in frames)
    assert all(f.image.dtype == np.uint16 for f in frames)
    assert np.array_equal(frames[0].image, real_frames[2].astype(np.uint16) * 257)

    out = tmp_path / "out" / "comp.%04d.png"
    with read_frames(info) as stream, open_sink(out, info, EncodeSettings("png")) as sink:
        for frame in stream:
            sink.write(frame)
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == [f"comp.{n}.png" for n in range(1001, 1011)]
    back = probe(out)
    assert back.first_frame == 1001 and back.bit_depth == 16
    assert np.array_equal(_read(back, range(1010, 1011))[0].image, real_frames[9].astype(np.uint16) * 257)


def test_exr_half_round_trip_is_exact(real_frames, tmp_path):
    halves = [(img.astype(np.float32) / 255.0 * 1.7 - 0.2).astype(np.float16) for img in real_frames[:4]]
    for i, h in enumerate(halves):  # scene-linear values incl. negatives and > 1 survive
        write_image_file(tmp_path / f"plate.{1001 + i:04d}.exr", h.astype(np.float32), "exr")
    info = probe(tmp_path / "plate.1001-1004#.exr")
    assert (info.codec, info.pix_fmt, info.bit_depth, info.frame_numbers) == ("exr", "rgbf16", 16, range(1001, 1005))
    frames = _read(info)
    assert all(f.image.dtype == np.float32 for f in frames)
    assert all(np.array_equal(f.image, h.astype(np.float32)) for f, h in zip(frames, halves))

    with read_frames(info) as stream, open_sink(tmp_path / "out" / "comp.####.exr", info, EncodeSettings("exr")) as sink:
        for frame in stream:
            sink.write(frame)
    again = _read(probe(tmp_path / "out" / "comp.####.exr"))
    assert [f.number for f in again] == [1001, 1002, 1003, 1004]
    assert all(np.array_equal(a.image, h.astype(np.float32)) for a, h in zip(again, halves))


def test_tiff_keeps_depth(real_frames, tmp_path):
    src = [img.astype(np.uint16) * 257 + 3 for img in real_frames[:3]]
    _write_sequence(tmp_path, "plate.@@@.tif", src, 7, fmt="tiff")
    assert sorted(os.listdir(tmp_path)) == ["plate.007.tif", "plate.008.tif", "plate.009.tif"]
    seq = probe(tmp_path / "plate.@@@.tif")
    assert (seq.first_frame, seq.frame_count, seq.bit_depth) == (7, 3, 16)
    assert all(np.array_equal(f.image, s) for f, s in zip(_read(seq), src))


def test_patterns_and_missing_frames(real_frames, tmp_path):
    _write_sequence(tmp_path, "p.####.png", real_frames[:5], 1001)
    for pattern in ("p.%04d.png", "p.####.png", "p.#.png", "p.$F4.png", "p.1001-1005#.png"):
        assert probe(tmp_path / pattern).frame_numbers == range(1001, 1006), pattern
    assert probe(tmp_path / "p.1002-1003#.png").frame_numbers == range(1002, 1004)
    with pytest.raises(InputError, match="no frames"):
        probe(tmp_path / "p.@@@@@.png")  # wrong padding (p.01001.png): strict
    with pytest.raises(InputError, match="missing 1 frame"):
        probe(tmp_path / "p.1001-1006#.png")
    (tmp_path / "p.1003.png").unlink()
    with pytest.raises(InputError, match="1003"):
        probe(tmp_path / "p.####.png")


def test_video_to_sequence_and_sequence_to_video(media, tmp_path):
    clip = probe(media("carphone_clip"))
    tiffs = tmp_path / "seq" / "f.####.tif"
    with read_frames(clip, range(5, 9)) as stream, open_sink(tiffs, clip, EncodeSettings("tiff")) as sink:
        for frame in stream:
            sink.write(frame)
    assert sorted(os.listdir(tmp_path / "seq")) == [f"f.{n:04d}.tif" for n in range(5, 9)]
    seq = probe(tmp_path / "seq" / "f.####.tif")
    with read_frames(seq) as stream, open_sink(tmp_path / "back.mov", seq, EncodeSettings("prores_hq")) as sink:
        for frame in stream:
            sink.write(frame)
    back = probe(tmp_path / "back.mov")
    assert back.frame_count == 4 and back.fps == seq.fps == 24
    assert len(video_pts(tmp_path / "back.mov")) == 4


def test_failing_sequence_write_leaves_nothing(real_frames, tmp_path):
    _write_sequence(tmp_path, "in.####.png", real_frames[:4], 1001)
    info = probe(tmp_path / "in.####.png")
    out_dir = tmp_path / "renders"
    out_dir.mkdir()
    (out_dir / "comp.0999.png").write_bytes(b"another chunk's frame")
    with pytest.raises(KeyboardInterrupt):
        with read_frames(info) as stream, open_sink(out_dir / "comp.####.png", info) as sink:
            for frame in stream:
                sink.write(frame)
                if frame.number == 1002:
                    raise KeyboardInterrupt
    assert sorted(os.listdir(out_dir)) == ["comp.0999.png"]  # other chunk untouched, nothing half-done


def test_sequence_output_errors(real_frames, tmp_path):
    _write_sequence(tmp_path, "in.####.png", real_frames[:2], 1)
    info = probe(tmp_path / "in.####.png")
    with pytest.raises(InputError, match="overwrite the input"):
        open_sink(tmp_path / "in.%04d.png", info).__enter__()
    with pytest.raises(InputError, match="agree"):
        open_sink(tmp_path / "out.####.png", info, EncodeSettings("exr")).__enter__()
    with pytest.raises(InputError, match="placeholder"):
        open_sink(tmp_path / "out.png", info).__enter__()
    with pytest.raises(ValueError, match="twice"):
        with open_sink(tmp_path / "o.####.png", info) as sink:
            sink.write(Frame(1, None, None, real_frames[0]))
            sink.write(Frame(1, None, None, real_frames[0]))
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".vidswap-tmp-*"))


def test_probe_prints_a_sequence_as_hashes_and_its_range(tmp_path):
    images = [np.full((4, 6, 3), 10 * i, np.uint8) for i in range(24)]
    _write_sequence(tmp_path, "pl.####.png", images, 1001)
    for pattern in ["pl.####.png", "pl.%04d.png", "pl.1001-1024#.png", "pl.@@@@.png"]:
        assert sequence_label(probe(str(tmp_path / pattern)).pattern) == (str(tmp_path / "pl.####.png"), "1001-1024")
    shown = subprocess.run([sys.executable, "-m", "vidswap.cli", "probe", str(tmp_path / "pl.%04d.png")],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert f"pattern: {tmp_path / 'pl.####.png'} 1001-1024" in shown.stdout  # not fileseq's lone "#"


def test_sequence_label_keeps_other_paddings():
    assert sequence_label("/s/w.1-3@@@@@@.exr") == ("/s/w.######.exr", "1-3")
    assert sequence_label("/s/w.%03d.exr") == ("/s/w.###.exr", "")
