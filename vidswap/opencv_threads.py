"""OpenCV's thread pool, narrowed for a block of small-image work.

OpenCV splits each call's rows over its pool (by default one thread per core). On the crops the hand matte works on
(a hand's box, ~100-250 px a side) the split saves no wall time and the idle workers' active wait costs CPU time:
the sample clip's hand mattes took 11.7 ms CPU / 8.6 ms wall a hand frame on OpenCV's two threads against 8.4 / 8.4
on one, the same mattes bit for bit (2-core Intel Xeon, interleaved in one process; benchmarks/RESULTS.md, lead
s20). :func:`opencv_threads` runs a block on fewer threads and gives the pool back as it was.

The setting is OpenCV's, process-wide: a call another thread makes meanwhile runs on the narrowed pool too. That
changes its speed, not its result (OpenCV's parallel loops split work by rows; each output pixel is computed the
same way on any split).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import cv2

__all__ = ["opencv_threads"]


@contextmanager
def opencv_threads(count: int) -> Iterator[None]:
    """Run the block with OpenCV on ``count`` threads (1: the calling thread only); the previous count is restored
    after, also when the block raises. Re-sizing the pool costs ~0.1-0.3 ms: wrap a batch's work, not each call."""
    before = cv2.getNumThreads()
    if before == count:
        yield
        return
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)
