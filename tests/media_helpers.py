"""Small helpers shared by tests that need decoded real frames (through the project's own reader)."""

from __future__ import annotations

import av
import numpy as np

from vidswap.io import probe
from vidswap.io import read_frames as _read_frames
from vidswap.io import read_image as _read_image


def read_frames(path, step: int = 1, limit: int | None = None) -> list[np.ndarray]:
    """Every ``step``-th decoded frame (HxWx3 RGB) among the first ``limit`` frames of a clip."""
    info = probe(path)
    stop = info.frame_numbers.stop if limit is None else min(info.frame_numbers.stop, info.frame_numbers.start + limit)
    with _read_frames(info, range(info.frame_numbers.start, stop, step)) as frames:
        return [f.image for f in frames]


def read_image(path) -> np.ndarray:
    """A still image as HxWx3 RGB."""
    return _read_image(path)


def assert_first_frames_timing_and_audio(clip, out, count: int) -> None:
    """``out`` holds ``count`` frames timed like the first ``count`` of ``clip`` (relative to the first, 1 ms), and
    one audio stream."""
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        ta = [f.time for f in a.decode(video=0)][:count]
        tb = [f.time for f in b.decode(video=0)]
    assert len(tb) == count and np.allclose(np.array(tb) - tb[0], np.array(ta) - ta[0], atol=1e-3)
    assert len(probe(out).audio) == 1
