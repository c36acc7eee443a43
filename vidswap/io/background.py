"""Writing frames from a worker thread: the encoder (x264 releases the GIL while it works) runs while the caller
renders the next batch, instead of after it.

Frames are handed over through a bounded queue (``depth`` frames: the memory bound), written in order, and the
worker's first error is raised in the caller on its next ``write`` or on ``close``. An exception in the caller
(KeyboardInterrupt included) stops the worker without writing what is still queued.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vidswap.io.frames import Frame
from vidswap.io.writers import FrameSink

_END = object()


class BackgroundWriter:
    """A :class:`~vidswap.io.writers.FrameSink` that writes into ``sink`` from a worker thread.

    sink:    where the frames go (its ``write`` runs on the worker only).
    prepare: applied to each frame on the worker before it is written (e.g. resizing to the output size).
    depth:   frames waiting at most (the caller blocks when the queue is full).
    busy:    seconds the worker spent preparing and writing (the overlapped encode time).
    """

    def __init__(self, sink: FrameSink, prepare: Callable[[Frame], Frame] | None = None, depth: int = 4):
        self.sink = sink
        self.prepare = prepare
        self.busy = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vidswap-write", daemon=True)
        self._thread.start()

    @property
    def frames_written(self) -> int:
        return self.sink.frames_written

    def _run(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is _END or self._stop.is_set():
                return
            if self._error is not None:
                continue  # drain until the caller notices
            start = time.perf_counter()
            try:
                self.sink.write(self.prepare(frame) if self.prepare is not None else frame)
            except BaseException as exc:  # handed to the caller's thread, raised there
                self._error = exc
            self.busy += time.perf_counter() - start

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def write(self, frame: Frame) -> None:
        """Queue one frame (blocks while ``depth`` frames wait); raises the worker's error, if any."""
        self._raise()
        while True:
            try:
                self._queue.put(frame, timeout=0.5)
                return
            except queue.Full:
                self._raise()
                if not self._thread.is_alive():
                    raise RuntimeError("the frame writer stopped") from None

    def close(self) -> None:
        """Write everything queued, stop the worker, raise its error if it had one."""
        self._queue.put(_END)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop the worker without writing what is queued."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(_END)
        self._thread.join()


@contextmanager
def background_writer(sink: FrameSink, prepare: Callable[[Frame], Frame] | None = None,
                      depth: int = 4) -> Iterator[BackgroundWriter]:
    """A :class:`BackgroundWriter` around ``sink``: on normal exit every queued frame is written (before the
    caller's ``open_sink`` finishes the file); on an exception the worker stops and the exception propagates."""
    writer = BackgroundWriter(sink, prepare, depth)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.close()
