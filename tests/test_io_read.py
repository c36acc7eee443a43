"""vidswap.io probing and reading on real media: exact counts, pts, VFR, rotation, bit depth, bounded memory."""

from __future__ import annotations

import json
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
from test_io_support import ffmpeg_rgb, make_prores10, make_rotated, make_tone_clip, video_pts

from vidswap.errors import InputError
from vidswap.io import Frame, RandomAccess, probe, read_frames, read_image


@pytest.fixture(scope="module")
def clips(media, tmp_path_factory):
    root = tmp_path_factory.mktemp("io_read")
    pexels = media("pexels_clip")
    return {
        "pexels": pexels,
        "vfr": media("face_noface_clip"),
        "editlist": media("no_face_clip"),
        "tone": make_tone_clip(pexels, root / "tone.mov"),
        "p10": make_prores10(pexels, root / "p10.mov"),
        "rot90": make_rotated(pexels, root / "rot90.mp4", 90),
        "rot270": make_rotated(pexels, root / "rot270.mp4", 270),
    }


def _read_all(info, numbers=None, prefetch=8) -> list[Frame]:
    with read_frames(info, numbers, prefetch=prefetch) as frames:
        return list(frames)


# ------------------------------------------------------------------------------------------------- probe


def test_probe_cfr_clip(clips):
    info = probe(clips["pexels"])
    assert (info.kind, info.width, info.height, info.codec) == ("video", 640, 360, "h264")
    assert info.frame_count == 472 and info.frame_numbers == range(0, 472)
    assert info.fps == Fraction(24000, 1001) and not info.vfr
    assert info.time_base == Fraction(1, 24000)
    assert (info.pix_fmt, info.bit_depth, info.rotation) == ("yuv420p", 8, 0)
    assert info.color_range == "tv" and info.colorspace == "smpte170m"
    assert [(a.codec, a.sample_rate, a.channels) for a in info.audio] == [("aac", 48000, 2)]
    assert info.duration == pytest.approx(472 * 1001 / 24000, abs=0.01)
    json.dumps(info.to_dict())  # JSON-able
    assert info.to_dict()["fps"] == "24000/1001"


def test_probe_detects_vfr_from_pts(clips):
    info = probe(clips["vfr"])
    pts = video_pts(clips["vfr"])
    assert len(set(np.diff(pts))) > 1  # the real file is VFR
    assert info.vfr and info.frame_count == len(pts) == 169
    assert info.codec == "hevc" and info.color_primaries == "bt709"


def test_probe_timecode_languages_and_depth(clips):
    tone = probe(clips["tone"])
    assert tone.timecode == "01:00:00:00"
    assert [(a.codec, a.sample_rate, a.language) for a in tone.audio] == [("aac", 48000, "eng"), ("aac", 44100, "fra")]
    p10 = probe(clips["p10"])
    assert (p10.codec, p10.pix_fmt, p10.bit_depth, p10.frame_count) == ("prores", "yuv422p10le", 10, 12)


def test_probe_frame_count_excludes_edit_list_frames(media):
    """no_face.mp4 has 3 edit-list-discarded packets: the container says 98, decoding gives 95."""
    info = probe(media("no_face_clip"))
    assert info.frame_count == len(video_pts(media("no_face_clip"))) == 95


def test_probe_rotation_gives_display_size(clips):
    info = probe(clips["rot90"])
    assert (info.rotation, info.width, info.height) == (90, 360, 640)


def test_probe_still_image(media):
    info = probe(media("astronaut"))
    assert (info.kind, info.width, info.height, info.frame_count, info.bit_depth) == ("image", 512, 512, 1, 8)


# ------------------------------------------------------------------------------------------------ errors


def test_missing_corrupt_and_empty_inputs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        probe(tmp_path / "nope.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="corrupt.mp4"):
        probe(corrupt)
    empty = tmp_path / "empty.mov"
    empty.touch()
    with pytest.raises(InputError, match="empty"):
        probe(empty)
    with pytest.raises(InputError, match="not a file"):
        probe(tmp_path)


def test_truncated_clip_is_an_input_error(clips, tmp_path):
    data = clips["pexels"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError):
        probe(cut)


def test_audio_only_file_is_an_input_error(clips, tmp_path):
    from test_io_support import ffmpeg

    audio = tmp_path / "audio.m4a"
    ffmpeg("-i", clips["tone"], "-vn", "-map", "0:a:0", "-c", "copy", audio)
    with pytest.raises(InputError, match="no video stream"):
        probe(audio)


def test_range_outside_the_clip_is_an_input_error(clips):
    info = probe(clips["p10"])
    with pytest.raises(InputError, match="outside"):
        with read_frames(info, range(5, 20)):
            pass


def test_read_image_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "face.jpg")
    bad = tmp_path / "face.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(bad)
    with pytest.raises(InputError, match="not a still image"):
        read_image(tmp_path / "face.mp4")


def test_read_image_takes_web_photos(tmp_path):
    """A source portrait saved from the web as WebP (lossless here) or BMP reads as the RGB it holds."""
    import cv2

    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    for ext, params in ((".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".bmp", [])):
        path = tmp_path / f"face{ext}"
        assert cv2.imwrite(str(path), rgb[..., ::-1], params)
        assert np.array_equal(read_image(path), rgb)


# --------------------------------------------------------------------------------------------- streaming


def test_read_all_frames_numbers_pts_and_pixels(clips):
    info = probe(clips["tone"])
    frames = _read_all(info)
    assert [f.number for f in frames] == list(range(info.frame_count))
    assert [f.pts for f in frames] == video_pts(clips["tone"])
    assert all(f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8 for f in frames)
    reference = ffmpeg_rgb(clips["tone"], 3, 640, 360)  # FFmpeg's own conversion, same tags
    assert all(np.array_equal(frames[i].image, reference[i]) for i in range(3))
    assert frames[0].timecode == "01:00:00:00" and frames[30].timecode == "01:00:01:06"
    assert all(f.duration == 1001 for f in frames[:-1])


def test_vfr_pts_are_kept(clips):
    info = probe(clips["vfr"])
    frames = _read_all(info, range(0, info.frame_count, 4))
    all_pts = video_pts(clips["vfr"])
    assert [f.pts for f in frames] == all_pts[::4]


@pytest.mark.parametrize("name", ["tone", "vfr", "editlist"])
def test_subset_with_step_seeks_to_the_same_frames(clips, name):
    info = probe(clips[name])
    wanted = range(10, 46, 3) if name == "tone" else range(40, 90, 7)  # the longer clips seek past keyframes
    subset = _read_all(info, wanted)
    assert [f.number for f in subset] == list(wanted)
    everything = {f.number: f for f in _read_all(info, range(0, wanted.stop))}
    for frame in subset:
        assert frame.pts == everything[frame.number].pts
        assert np.array_equal(frame.image, everything[frame.number].image)


def test_late_subset_of_long_clip(clips):
    info = probe(clips["pexels"])
    frames = _read_all(info, range(400, 472, 30))
    assert [(f.number, f.pts) for f in frames] == [(400, 400400), (430, 430430), (460, 460460)]


def test_ten_bit_source_decodes_to_uint16_with_ten_bit_precision(clips):
    info = probe(clips["p10"])
    frames = _read_all(info)
    image = frames[0].image
    assert image.dtype == np.uint16 and image.shape == (180, 320, 3)
    assert image.max() > 255 * 200  # full 16-bit range, not 0..1023
    assert (image % 257 != 0).mean() > 0.9  # not 8-bit values scaled by 257
    ten = np.round(image.astype(np.float64) * 1023 / 65535).astype(int)
    _, counts = np.unique(ten & 3, return_counts=True)
    assert len(counts) == 4 and counts.min() / counts.sum() > 0.15  # low 2 bits of 10-bit codes all used
    assert frames[5].timecode == "01:00:00:05"


@pytest.mark.parametrize("name,degrees", [("rot90", 90), ("rot270", 270)])
def test_rotation_is_applied(clips, name, degrees):
    info = probe(clips[name])
    frames = _read_all(info)
    reference = ffmpeg_rgb(clips[name], 2, 360, 640)  # ffmpeg autorotates
    assert frames[0].image.shape == (640, 360, 3)
    assert np.array_equal(frames[0].image, reference[0]) and np.array_equal(frames[1].image, reference[1])


# ------------------------------------------------------------------------------------- threads and memory


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("vidswap-read-")]


def test_prefetch_queue_is_bounded(clips):
    info = probe(clips["pexels"])
    with read_frames(info, range(0, 40), prefetch=3) as frames:
        consumed = 0
        for _ in frames:
            consumed += 1
            time.sleep(0.01)  # slow consumer: the producer must wait, not pile up frames
            assert frames.queued <= 3
        assert consumed == 40
        assert frames.high_water == 3  # it filled up to the bound ...
    assert frames.high_water <= 3  # ... and never beyond


def test_early_stop_ends_the_thread(clips):
    info = probe(clips["pexels"])
    with read_frames(info, prefetch=4) as frames:
        for frame in frames:
            if frame.number == 5:
                break
        thread = frames.thread
    assert not thread.is_alive()
    assert not _reader_threads()


def test_consumer_exception_ends_the_thread(clips):
    info = probe(clips["pexels"])
    with pytest.raises(ZeroDivisionError):
        with read_frames(info, prefetch=2) as frames:
            for frame in frames:
                1 / (frame.number - 3)
    assert not frames.thread.is_alive()
    assert not _reader_threads()


def test_producer_error_reaches_the_consumer(tmp_path, media):
    from vidswap.errors import MediaError
    from vidswap.io.sequences import write_image_file

    image = read_image(media("astronaut"))
    for n in (1, 2, 3):
        write_image_file(tmp_path / f"p.{n:04d}.png", image, "png")
    info = probe(tmp_path / "p.####.png")
    (tmp_path / "p.0002.png").unlink()  # vanishes after probing
    with pytest.raises(MediaError, match="frame 2"):
        _read_all(info)
    assert not _reader_threads()


# ------------------------------------------------------------------------------------ random access, stills


def test_random_access_matches_streaming(clips):
    for name in ("tone", "vfr", "rot90"):
        info = probe(clips[name])
        access = RandomAccess(clips[name])
        assert len(access) == info.frame_count
        streamed = _read_all(info, range(3, 4))[0].image
        assert np.array_equal(access.get(3), streamed)
    with pytest.raises(InputError, match="outside"):
        access.get(len(access))


def test_read_image_jpg_and_png(media):
    jpg = read_image(media("single_face_image"))
    png = read_image(media("astronaut"))
    assert jpg.dtype == np.uint8 and jpg.shape == (562, 572, 3)
    assert png.dtype == np.uint8 and png.shape == (512, 512, 3)
    info = probe(media("astronaut"))
    frames = _read_all(info)
    assert len(frames) == 1 and frames[0].number == 0 and np.array_equal(frames[0].image, png)


@pytest.mark.parametrize("name", ["pexels", "rot90", "p10"])
def test_shrunk_reads_are_the_resized_frames_within_rounding(clips, name):
    """read_numbers(size=...) of a video shrinks in the RGB conversion (swscale area): the upright picture at the
    asked size and dtype, within a few code values of the full-size frames resized with resize_image."""
    from vidswap.io.frames import resize_image
    from vidswap.io.readers import read_numbers

    info = probe(clips[name])
    w, h = info.width // 2, info.height // 2  # the display size (rotation applied)
    with read_frames(info, range(0, 3), shrink_to=(w, h)) as frames:  # no resize after it
        small = [f.image for f in frames]
    with read_numbers(info, [0, 1, 2], size=(w, h)) as frames:
        assert all(np.array_equal(f.image, s) for f, s in zip(frames, small))
    full = _read_all(info, range(0, 3))
    scale = 257 if full[0].image.dtype == np.uint16 else 1
    for s, f in zip(small, full):
        ref = resize_image(f.image, (w, h))
        assert s.shape == ref.shape == (h, w, 3) and s.dtype == f.image.dtype
        d = np.abs(s.astype(np.int64) - ref.astype(np.int64)) / scale
        assert d.mean() < 1.5 and np.percentile(d, 99) <= 6


@pytest.mark.parametrize("name", ["pexels", "rot90"])
def test_kept_pictures_come_with_their_rgb_and_an_empty_changed_box(clips, name):
    """read_numbers(keep_picture=True) (the render pass): every frame carries its decoded picture, the same RGB
    image as a plain read and ``changed`` (0, 0, 0, 0); with ``size`` no picture is kept (the writer can then only
    convert the whole frame)."""
    from vidswap.io import avutil
    from vidswap.io.readers import read_numbers

    info = probe(clips[name])
    plain = _read_all(info, range(0, 3))
    with read_numbers(info, [0, 1, 2], keep_picture=True) as frames:
        kept = list(frames)
    for k, p in zip(kept, plain):
        assert k.picture is not None and k.changed == (0, 0, 0, 0) and np.array_equal(k.image, p.image)
        assert np.array_equal(avutil.RgbConverter(False, info.colorspace)(k.picture), p.image)
    with read_numbers(info, [0, 1], size=(info.width // 2, info.height // 2), keep_picture=True) as frames:
        assert all(f.picture is None and f.changed is None for f in frames)
