"""The writer's region-only re-encode (vidswap.io.region_write): the decoded plate outside the box the render
changed, a whole-frame conversion's values inside it."""

from __future__ import annotations

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation, VideoReformatter

from vidswap.io import avutil
from vidswap.io.frames import Frame
from vidswap.io.region_write import GRID, MARGIN, conversion_box, merge_region, mergeable, picture_planes, union_box


def _convert(image: np.ndarray, sws: VideoReformatter) -> av.VideoFrame:
    """What the writer does with a whole RGB frame (VideoSink._picture, 8-bit, BT.709)."""
    return sws.reformat(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24"),
                        width=image.shape[1], height=image.shape[0], format="yuv420p",
                        interpolation=Interpolation.BICUBIC, dst_colorspace=avutil.sws_matrix("bt709"))


def _picture(w: int, h: int, seed: int) -> av.VideoFrame:
    """A decoded-like yuv420p picture: smooth shading plus noise, super-whites and super-blacks included."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    luma = (128 + 110 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0, 6, (h, w))).clip(0, 255)
    chroma = (128 + rng.normal(0, 20, (h // 2 * 2, w // 2))).clip(0, 255)
    return av.VideoFrame.from_ndarray(np.concatenate([luma, chroma.reshape(h // 2, w)]).astype(np.uint8),
                                      format="yuv420p")


def test_boxes():
    assert union_box((0, 0, 0, 0), (3, 4, 9, 10)) == (3, 4, 9, 10)
    assert union_box((3, 4, 9, 10), (1, 6, 5, 12)) == (1, 4, 9, 12)
    assert union_box(None, (1, 1, 2, 2)) is None and union_box((1, 1, 2, 2), None) is None
    assert conversion_box((0, 0, 0, 0), 64, 48) is None
    # odd corners grow to even ones; the converted box is MARGIN more, snapped out to the GRID, clipped
    inner, outer = conversion_box((101, 37, 203, 91), 320, 240)
    assert inner == (100, 36, 204, 92)
    assert outer == ((100 - MARGIN) // GRID * GRID, (36 - MARGIN) // GRID * GRID,
                     -(-(204 + MARGIN) // GRID) * GRID, -(-(92 + MARGIN) // GRID) * GRID) == (64, 0, 224, 128)
    assert conversion_box((1, 1, 319, 239), 320, 240) == ((0, 0, 320, 240), (0, 0, 320, 240))


@pytest.mark.parametrize("box", [(150, 60, 301, 171), (0, 0, 90, 50), (250, 150, 320, 240), (0, 0, 320, 240)])
def test_merge_keeps_the_plate_outside_and_a_whole_conversion_inside(box):
    w, h = 320, 240
    picture = _picture(w, h, seed=box[0])
    image = avutil.RgbConverter(False, "bt709")(picture)
    rng = np.random.default_rng(1)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3))  # the render's paste
    merged = merge_region(picture, image, box, lambda part: _convert(part, VideoReformatter()))
    whole = picture_planes(_convert(image, VideoReformatter()))
    (ix0, iy0, ix1, iy1), _ = conversion_box(box, w, h)
    for k, (got, plate, full) in enumerate(zip(picture_planes(merged), picture_planes(picture), whole)):
        s = 1 if k == 0 else 2
        inside = np.zeros(got.shape, bool)
        inside[iy0 // s:iy1 // s, ix0 // s:ix1 // s] = True
        assert np.array_equal(got[inside], full[inside]), k  # a whole-frame conversion's values, bit for bit
        assert np.array_equal(got[~inside], plate[~inside]), k  # the decoded plate's own codes
        if k == 0 and (~inside).any():  # what the whole-frame round trip did to the plate there
            assert np.abs(full[~inside].astype(int) - plate[~inside]).max() >= 2


def test_mergeable_only_for_8bit_420_pictures_of_the_output_size():
    picture = _picture(64, 48, seed=0)
    image = avutil.RgbConverter(False, None)(picture)
    frame = Frame(0, 0, None, image, picture=picture, changed=(0, 0, 0, 0))
    assert mergeable(frame, (64, 48), "yuv420p")
    assert not mergeable(frame, (64, 48), "yuv422p10le")  # ProRes: through RGB as before
    assert not mergeable(frame, (32, 24), "yuv420p")  # scaled output
    assert not mergeable(Frame(0, 0, None, image, picture=picture), (64, 48), "yuv420p")  # changed unknown
    assert not mergeable(Frame(0, 0, None, image[:, :32].copy(), picture=picture, changed=(0, 0, 0, 0)),
                         (64, 48), "yuv420p")  # a decorated (side-by-side) image
    assert not mergeable(Frame(0, 0, None, image.astype(np.uint16), picture=picture, changed=(0, 0, 0, 0)),
                         (64, 48), "yuv420p")


def test_the_writer_encodes_the_plate_outside_the_changed_box(media, tmp_path):
    """VideoSink, lossless H.264 (crf 0) so the decoded output is the encoder's input: a rendered frame carrying its
    decoded picture and ``changed`` box is the plate's own codes outside the box, a whole-frame conversion's
    inside; without the box (``changed`` None) the whole frame goes through RGB and the plate moves."""
    from vidswap.io import EncodeSettings, open_sink, probe, read_numbers
    from vidswap.io.writers import VideoSink

    info = probe(media("pexels_clip"))
    with read_numbers(info, [0, 1], keep_picture=True) as frames:
        frames = list(frames)
    box = (200, 60, 421, 301)
    for f in frames:
        f.image[box[1]:box[3], box[0]:box[2]] //= 2  # the render's paste
    lossless = EncodeSettings(crf=0, preset="ultrafast")
    outputs = {}
    for name, changed in (("box", box), ("unknown", None)):
        with open_sink(tmp_path / f"{name}.mp4", info, lossless) as sink:
            assert isinstance(sink, VideoSink)
            for f in frames:
                sink.write(Frame(f.number, f.pts, None, f.image, f.duration, picture=f.picture, changed=changed))
        with av.open(str(tmp_path / f"{name}.mp4")) as c:
            outputs[name] = [picture_planes(p) for p in c.decode(video=0)]
    (x0, y0, x1, y1), _ = conversion_box(box, info.width, info.height)
    for f, got, whole in zip(frames, outputs["box"], outputs["unknown"]):
        for k, (g, plate, w) in enumerate(zip(got, picture_planes(f.picture), whole)):
            s = 1 if k == 0 else 2
            inside = np.zeros(g.shape, bool)
            inside[y0 // s:y1 // s, x0 // s:x1 // s] = True
            assert np.array_equal(g[~inside], plate[~inside]) and np.array_equal(g[inside], w[inside]), k
        assert not np.array_equal(whole[0], picture_planes(f.picture)[0])  # the round trip the box avoids
