"""Pass-through without the RGB round trip (issue 19): decoded pictures go to the encoder as they are.

Real footage: frames 0-11 of the sample clip through `vidswap run --passthrough` with lossless H.264 (crf 0): the
output's decoded YUV planes are the input's, bit for bit (the RGB round trip -- still taken when something looks
at the pixels -- cannot do that: its chroma is resampled twice), and the timing and audio are kept as before.
"""

from __future__ import annotations

import av
import numpy as np

from vidswap import pipeline
from vidswap.config import load_config
from vidswap.io import probe


def yuv_planes(path, count: int) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as c:
        for k, frame in enumerate(c.decode(video=0)):
            if k >= count:
                break
            out.append(np.concatenate([np.frombuffer(bytes(p), np.uint8) for p in frame.planes]))
    return out


def run(clip, out, overrides=None):
    cfg = load_config(overrides={"input": str(clip), "frames": "0-11", "swap": {"core": "passthrough"},
                                 "output": {"path": str(out), "crf": 0}, **(overrides or {})})
    return pipeline.run(cfg)


def test_passthrough_copies_the_decoded_pictures_bit_for_bit(media, tmp_path):
    clip = media("pexels_clip")
    summary = run(clip, tmp_path / "direct.mp4")
    assert summary.frames_written == 12
    direct = yuv_planes(tmp_path / "direct.mp4", 12)
    source = yuv_planes(clip, 12)
    assert len(direct) == 12 and all(np.array_equal(a, b) for a, b in zip(direct, source))
    # the RGB path (forced by a contact sheet, which looks at the pixels) is not lossless: the test can tell
    pipeline.run(load_config(overrides={"input": str(clip), "frames": "0-11", "swap": {"core": "passthrough"},
                                        "output": {"path": str(tmp_path / "rgb.mp4"), "crf": 0}}),
                 contact_sheet=tmp_path / "sheet.png")
    rgb = yuv_planes(tmp_path / "rgb.mp4", 12)
    assert not all(np.array_equal(a, b) for a, b in zip(rgb, source))
    # (4:2:0 chroma up- and down-sampled: up to ~11 code values at colour edges, well under 1 on average)
    assert np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(rgb, source)]) < 1.0
    a, b = probe(tmp_path / "direct.mp4"), probe(tmp_path / "rgb.mp4")
    assert (a.frame_count, a.fps, len(a.audio)) == (b.frame_count, b.fps, len(b.audio)) == (12, probe(clip).fps, 1)
