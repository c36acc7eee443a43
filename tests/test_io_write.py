"""vidswap.io video writing on real media: timing frame for frame (CFR and VFR), audio packets bit-exact,
timecode, 10-bit ProRes precision, lossless FFV1, colour tags, and atomic failure behaviour."""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction

import numpy as np
import pytest
from test_io_support import audio_packets, make_prores10, make_rotated, make_tone_clip, video_pts, yuv_planes

from vidswap.errors import ConfigError, InputError, MediaError
from vidswap.io import EncodeSettings, Frame, open_sink, output_kind, probe, read_frames

FAST = EncodeSettings("h264", crf=18, preset="ultrafast")


@pytest.fixture(scope="module")
def clips(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("io_write")
    pexels = media("pexels_clip")
    return {"tone": make_tone_clip(pexels, root / "tone.mov"), "p10": make_prores10(pexels, root / "p10.mov"),
            "vfr": media("face_noface_clip"), "carphone": media("carphone_clip")}


def transcode(src, out, settings=FAST, numbers=None, size=None):
    info = probe(src)
    with read_frames(info, numbers) as frames, open_sink(out, info, settings, size) as sink:
        for frame in frames:
            sink.write(frame)
    assert sink.frames_written == len(numbers or info.frame_numbers)
    return info, probe(out)


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".vidswap-tmp-"))


# ------------------------------------------------------------------------------------------------ timing


def test_cfr_timing_audio_and_timecode_carried(clips, tmp_path):
    out = tmp_path / "out.mov"
    src_info, info = transcode(clips["tone"], out)
    assert video_pts(out) == video_pts(clips["tone"])
    assert (info.frame_count, info.time_base, info.fps, info.vfr) == (48, src_info.time_base, src_info.fps, False)
    assert info.timecode == "01:00:00:00"
    assert [(a.codec, a.sample_rate, a.language) for a in info.audio] == [
        (a.codec, a.sample_rate, a.language) for a in src_info.audio]
    for track in (0, 1):
        source = audio_packets(clips["tone"], track)
        written = audio_packets(out, track)
        assert written == source[: len(written)]  # pts, duration and bytes identical
        assert len(source) - len(written) <= 1  # trimmed to the video's end (the tone runs longer)
    import av

    with av.open(str(out)) as container:
        assert container.streams.audio[1].metadata.get("handler_name") == "Commentary"


def test_vfr_timing_kept_frame_for_frame(clips, tmp_path):
    out = tmp_path / "vfr.mov"
    src_info, info = transcode(clips["vfr"], out)
    src_pts, out_pts = video_pts(clips["vfr"]), video_pts(out)
    assert len(set(np.diff(src_pts))) > 1
    assert out_pts == src_pts
    assert info.vfr and info.time_base == src_info.time_base and info.frame_count == 169
    assert info.duration == pytest.approx(src_info.duration, abs=1e-6)  # last frame's duration kept too
    assert audio_packets(out) == audio_packets(clips["vfr"])  # music track: every packet, bit-exact
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (
        "bt709", "bt709", "bt709", "tv")


def test_subset_starts_at_its_timecode_with_trimmed_audio(clips, tmp_path):
    out = tmp_path / "sub.mov"
    src_info, info = transcode(clips["tone"], out, numbers=range(10, 40))
    assert info.frame_count == 30 and info.timecode == "01:00:00:10"
    shift = 10 * 1001  # output starts where the input starts
    assert video_pts(out) == [p - shift for p in video_pts(clips["tone"])[10:40]]
    start, end = Fraction(10 * 1001, 24000), Fraction(40 * 1001, 24000)
    for track, rate in ((0, 48000), (1, 44100)):
        source = audio_packets(clips["tone"], track)
        covering = [(pts, dur, data) for pts, dur, data in source
                    if Fraction(pts, rate) < end and Fraction(pts + dur, rate) > start]
        moved = round(start * rate)
        assert audio_packets(out, track) == [(pts - moved, dur, data) for pts, dur, data in covering]


def test_late_subset_seeks_audio_exactly(clips, media, tmp_path):
    """Frames 300-329 (12.5 s in): the audio reader seeks, and still copies exactly the covering packets."""
    pexels = media("pexels_clip")
    out = tmp_path / "late.mov"
    _, info = transcode(pexels, out, numbers=range(300, 330))
    assert info.frame_count == 30 and video_pts(out) == [i * 1001 for i in range(30)]
    start, end = Fraction(300 * 1001, 24000), Fraction(330 * 1001, 24000)
    covering = [(pts, dur, data) for pts, dur, data in audio_packets(pexels)
                if Fraction(pts, 48000) < end and Fraction(pts + dur, 48000) > start]
    moved = round(start * 48000)
    assert audio_packets(out) == [(pts - moved, dur, data) for pts, dur, data in covering]


def test_no_audio_in_no_audio_out(clips, tmp_path):
    out = tmp_path / "car.mp4"
    _, info = transcode(clips["carphone"], out, numbers=range(0, 20))
    assert info.audio == () and info.frame_count == 20 and info.timecode is None


def test_rotated_input_is_written_upright(media, tmp_path):
    rotated = make_rotated(media("pexels_clip"), tmp_path / "rot.mp4", 90)
    src_info, info = transcode(rotated, tmp_path / "upright.mkv", EncodeSettings("ffv1"))
    assert (info.rotation, info.width, info.height) == (0, 360, 640)
    with read_frames(src_info) as a, read_frames(info) as b:
        assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))


def test_resize_on_write(clips, tmp_path):
    out = tmp_path / "small.mp4"
    _, info = transcode(clips["tone"], out, numbers=range(0, 5), size=(320, 180))
    assert (info.width, info.height, info.frame_count) == (320, 180, 5)


# ----------------------------------------------------------------------------------------- bit depth / codecs


def test_prores_hq_keeps_ten_bit_precision(clips, tmp_path):
    out = tmp_path / "p10_out.mov"
    src_info, info = transcode(clips["p10"], out, EncodeSettings("prores_hq"))
    assert (info.codec, info.pix_fmt, info.bit_depth, info.timecode) == ("prores", "yuv422p10le", 10, "01:00:00:00")
    assert video_pts(out) == video_pts(clips["p10"])
    source, written = yuv_planes(clips["p10"]), yuv_planes(out)
    luma = np.concatenate([np.abs(a[0] - b[0]).ravel() for a, b in zip(source, written)])
    chroma = np.concatenate([np.abs(a[i] - b[i]).ravel() for a, b in zip(source, written) for i in (1, 2)])
    assert (luma <= 2).mean() > 0.98 and luma.mean() < 0.7  # within 1-2 10-bit code values
    assert (chroma <= 2).mean() > 0.98
    # An 8-bit bottleneck would be off by ~1-2 codes nearly everywhere; here most samples are exact.
    eight_bit = np.concatenate([np.abs(a[0] - np.round(a[0] / 4) * 4).ravel() for a in source])
    assert (luma == 0).mean() > 1.5 * (eight_bit == 0).mean()
    _, counts = np.unique(written[0][0] & 3, return_counts=True)
    assert len(counts) == 4 and counts.min() / counts.sum() > 0.15


def test_prores_4444(clips, tmp_path):
    out = tmp_path / "p4444.mov"
    _, info = transcode(clips["p10"], out, EncodeSettings("prores_4444"), numbers=range(0, 3))
    assert (info.codec, info.frame_count) == ("prores", 3)
    assert info.pix_fmt.startswith("yuv444p1") and info.bit_depth >= 10  # FFmpeg decodes 4444 as 12-bit


@pytest.mark.parametrize("name", ["carphone", "p10"])
def test_ffv1_is_lossless_for_the_frames_given(clips, tmp_path, name):
    out = tmp_path / f"{name}.mkv"
    src_info, info = transcode(clips[name], out, EncodeSettings("ffv1"), numbers=range(0, 6))
    with read_frames(src_info, range(0, 6)) as a, read_frames(info) as b:
        pairs = list(zip(a, b))
    assert len(pairs) == 6
    assert all(x.image.dtype == y.image.dtype and np.array_equal(x.image, y.image) for x, y in pairs)


def test_uint16_and_float_frames_encode(clips, tmp_path):
    info = probe(clips["carphone"])
    settings = EncodeSettings("prores_hq")
    with read_frames(info, range(0, 4)) as frames, open_sink(tmp_path / "f.mov", info, settings) as sink:
        for frame in frames:
            image = frame.image
            frame.image = image.astype(np.float32) / 255.0 if frame.number % 2 else image.astype(np.uint16) * 257
            sink.write(frame)
    assert probe(tmp_path / "f.mov").frame_count == 4


# ------------------------------------------------------------------------------------------- bad outputs


def test_failing_write_leaves_nothing(clips, tmp_path):
    info = probe(clips["tone"])
    final = tmp_path / "out.mov"
    with pytest.raises(RuntimeError, match="render failed"):
        with read_frames(info) as frames, open_sink(final, info, FAST) as sink:
            for frame in frames:
                sink.write(frame)
                if frame.number == 5:
                    raise RuntimeError("render failed")
    assert not final.exists() and os.listdir(tmp_path) == []


def test_keyboard_interrupt_leaves_nothing_and_existing_output_survives(clips, tmp_path):
    info = probe(clips["carphone"])
    final = tmp_path / "out.mp4"
    final.write_bytes(b"previous good render")
    with pytest.raises(KeyboardInterrupt):
        with read_frames(info) as frames, open_sink(final, info, FAST) as sink:
            for frame in frames:
                sink.write(frame)
                if frame.number == 3:
                    raise KeyboardInterrupt
    assert final.read_bytes() == b"previous good render" and _leftovers(tmp_path) == []


def test_zero_frames_is_a_media_error_and_leaves_nothing(clips, tmp_path):
    info = probe(clips["carphone"])
    with pytest.raises(MediaError, match="no frames"):
        with open_sink(tmp_path / "empty.mp4", info, FAST):
            pass
    assert os.listdir(tmp_path) == []


def test_unwritable_output_dir_is_an_input_error_before_work(clips, tmp_path):
    info = probe(clips["carphone"])
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(InputError, match="not writable"):
        open_sink(blocker / "out.mp4", info, FAST).__enter__()
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="not writable"):
            open_sink(locked / "out.mp4", info, FAST).__enter__()


def test_missing_output_directories_are_created(clips, tmp_path):
    out = tmp_path / "shot010" / "v003" / "car.mp4"
    _, info = transcode(clips["carphone"], out, numbers=range(0, 3))
    assert info.frame_count == 3 and _leftovers(out.parent) == []


def test_output_over_input_is_refused_and_input_untouched(clips, tmp_path):
    src = tmp_path / "plate.mp4"
    src.write_bytes(clips["carphone"].read_bytes())
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    info = probe(src)
    with pytest.raises(InputError, match="overwrite the input"):
        open_sink(src, info, FAST).__enter__()
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest


def test_codec_container_and_settings_checks(clips, tmp_path):
    info = probe(clips["tone"])
    with pytest.raises(InputError, match=r"cannot hold the video \(prores\); write .mov or .mkv instead"):
        open_sink(tmp_path / "x.mp4", info, EncodeSettings("prores_hq")).__enter__()
    with pytest.raises(InputError, match="output type"):
        open_sink(tmp_path / "x.avi", info, FAST).__enter__()
    with pytest.raises(ConfigError):
        EncodeSettings("h265")
    with pytest.raises(ConfigError):
        EncodeSettings(crf=99)
    assert _leftovers(tmp_path) == [] and os.listdir(tmp_path) == []
    assert output_kind("a.mov") == "video" and output_kind("a.####.exr") == "sequence"


def test_odd_size_h264_is_padded_not_resampled(clips, tmp_path):
    """H.264 needs even sizes: a 175x144 picture is encoded at 176x144 with its last column repeated; the
    picture itself is not scaled (its columns stay where they were)."""
    info = probe(clips["carphone"])
    with read_frames(info, range(0, 4)) as frames:
        images = [f.image[:, :175] for f in frames]
    with open_sink(tmp_path / "odd.mp4", info, EncodeSettings(codec="h264", crf=0, preset="ultrafast"),
                   size=(175, 144)) as sink:
        for n, image in enumerate(images):
            sink.write(Frame(n, None, None, image))
    out = probe(tmp_path / "odd.mp4")
    assert (out.width, out.height) == (176, 144)
    with read_frames(out) as frames:
        decoded = [f.image.astype(np.int16) for f in frames]
    for got, want in zip(decoded, images, strict=True):
        assert np.abs(got[:, :175] - want).mean() < 3.0  # 4:2:0 chroma at crf 0; resampling would shift edges
        assert np.abs(got[:, 175] - want[:, 174]).mean() < 3.0


def test_wrong_frame_shape_is_rejected(clips, tmp_path):
    info = probe(clips["carphone"])
    with pytest.raises(ValueError):
        with open_sink(tmp_path / "bad.mp4", info, FAST) as sink:
            sink.write(Frame(0, 0, None, np.zeros((144, 176), np.uint8)))
    assert os.listdir(tmp_path) == []
