"""The background frame writer: frames arrive in order, the worker's errors surface in the caller."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vidswap.io.background import background_writer
from vidswap.io.frames import Frame


class ListSink:
    def __init__(self, fail_at: int | None = None):
        self.frames: list[Frame] = []
        self.threads: set[str] = set()
        self.fail_at = fail_at

    @property
    def frames_written(self) -> int:
        return len(self.frames)

    def write(self, frame: Frame) -> None:
        self.threads.add(threading.current_thread().name)
        if frame.number == self.fail_at:
            raise ValueError(f"disk full at {frame.number}")
        self.frames.append(frame)


def frame(n: int) -> Frame:
    return Frame(n, n, None, np.full((2, 2, 3), n, np.uint8))


def test_frames_are_written_in_order_on_the_worker_after_prepare():
    sink = ListSink()
    with background_writer(sink, prepare=lambda f: Frame(f.number, f.pts, "x", f.image * 2), depth=2) as w:
        for n in range(20):
            w.write(frame(n))
    assert [f.number for f in sink.frames] == list(range(20))
    assert all(f.timecode == "x" and int(f.image[0, 0, 0]) == 2 * f.number for f in sink.frames)
    assert sink.threads == {"vidswap-write"} and w.frames_written == 20 and w.busy > 0


def test_a_worker_error_is_raised_in_the_caller_and_nothing_after_it_is_written():
    sink = ListSink(fail_at=3)
    with pytest.raises(ValueError, match="disk full at 3"):
        with background_writer(sink, depth=2) as w:
            for n in range(50):
                w.write(frame(n))
    assert [f.number for f in sink.frames] == [0, 1, 2]


def test_a_caller_error_stops_the_worker():
    sink = ListSink()
    with pytest.raises(KeyboardInterrupt):
        with background_writer(sink, depth=2) as w:
            w.write(frame(0))
            raise KeyboardInterrupt
    assert not any(t.name == "vidswap-write" and t.is_alive() for t in threading.enumerate())
