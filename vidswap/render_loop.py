"""The render pass's read -> process loop, and the render threads that keep both cores of a machine busy.

A frame's render depends only on the shot's analysis and that frame (farm chunks are bit-identical to one pass), so
consecutive batches can be rendered at the same time: with ``render_threads`` 2, batch k+1 renders on a second
thread while batch k finishes on the first. torch, numpy and OpenCV release the GIL inside their kernels, which is
where the render spends its time. The results are handed on in frame order; the pictures are the same as with one
thread, bit for bit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from vidswap.io import Frame, MediaInfo, read_numbers
from vidswap.io.colour import ColourPipeline
from vidswap.memory import (batch_frames, frame_bytes, heap_threshold, picture_bytes, queue_depth, release_free_heap,
                            steady_heap)
from vidswap.timing import Progress, StageTimer, batches

T = TypeVar("T")
R = TypeVar("R")

#: Render threads ``render_threads: auto`` uses at most (measured: 1080p, 2 cores; see README).
AUTO_RENDER_THREADS = 2


def ordered_map(fn: Callable[[T], R], items: Iterator[T], threads: int) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` for every item, in the order of ``items``, with ``fn`` running on up to ``threads``
    worker threads at once (1: in the caller's thread, nothing started).

    At most ``threads`` items are taken from ``items`` ahead of the one being yielded (the memory bound). An
    exception in ``fn`` is raised in the caller when its item's turn comes; when the caller stops early (an
    exception, a closed generator), the items not yet started are dropped and the workers are not waited for.
    """
    if threads <= 1:
        for item in items:
            yield item, fn(item)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="vidswap-render")
    pending: deque[tuple[T, Future]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= threads:
                item, future = pending.popleft()
                yield item, future.result()
        while pending:
            item, future = pending.popleft()
            yield item, future.result()
    finally:
        pool.shutdown(wait=not pending, cancel_futures=True)


def render_threads(setting: int | str, device: str, ordered_sinks: bool, usable_cores: int) -> int:
    """How many threads the render pass uses.

    Args:
        setting: the job's ``render_threads``: a count, or ``"auto"`` (``min(2, usable_cores)`` on the CPU, 1 on a
            GPU, where one thread already keeps the device busy).
        device: ``"cpu"`` or ``"cuda"`` (the resolved device).
        ordered_sinks: the stage hands each face to sinks that expect frame order (debug strips, face patches,
            matte sequences, scene-linear layers): always 1 thread.
        usable_cores: the cores this process may run on.
    """
    if ordered_sinks:
        return 1
    if setting == "auto":
        return 1 if device != "cpu" else max(1, min(AUTO_RENDER_THREADS, usable_cores))
    return max(1, int(setting))


def keeps_pictures(info: MediaInfo, size: tuple[int, int] | None, colour: ColourPipeline | None, asked: bool) -> bool:
    """Whether the render pass's frames keep their decoded pictures (:mod:`vidswap.io.region_write`): where asked
    for, of an 8-bit video read at its own size with no colour pipeline."""
    return asked and colour is None and info.kind == "video" and size is None and info.bit_depth <= 8


def frames_in_flight(batch_size: int, info: MediaInfo, size: tuple[int, int] | None,
                     colour: ColourPipeline | None = None, pictures: bool = False) -> int:
    """Frames the reader's queue and the writer's queue each hold at most (:func:`vidswap.memory.queue_depth`):
    fewer as the plate grows, never more than ``max(4, batch_size)``; ``size``: the working size, if not the
    plate's; ``colour``, ``pictures``: as :func:`keeps_pictures`, whose decoded pictures count in the budget too
    (:func:`vidswap.memory.picture_bytes`)."""
    w, h = size or (info.width, info.height)
    extra = picture_bytes(w, h) if keeps_pictures(info, size, colour, pictures) else 0
    return queue_depth(batch_size, frame_bytes(w, h, info.bit_depth) + extra)


def processed_batches(batch_size: int, info: MediaInfo, numbers: list[int],
                      processor: Callable[[list[Frame]], list[Frame]], timer: StageTimer,
                      progress: Progress | None = None, colour: ColourPipeline | None = None,
                      size: tuple[int, int] | None = None, label: str = "render", rgb: bool = True,
                      threads: int = 1, keep_pictures: bool = False) -> Iterator[tuple[list[Frame], list[Frame]]]:
    """The render pass's read -> process loop: yields ``(plates, results)`` per batch of ``numbers`` and reports
    ``progress(label, done, total)`` once the caller has taken each batch. ``colour``: a linear plate's OCIO
    pipeline, to hand the processor display-referred frames; ``size``: the working size the frames are read at
    (:attr:`~vidswap.shot.ShotPlan.work_size`); ``label``: the pass's name in the progress report (``render``,
    ``overlay``); ``threads``: batches processed at once (:func:`ordered_map`; the timer's ``swap`` is then the
    time the loop waited for a result, not the render's work); ``keep_pictures``: the frames also carry their
    decoded pictures where :func:`keeps_pictures` (:func:`~vidswap.io.read_frames`' ``keep_picture``)."""
    done = 0
    w, h = size or (info.width, info.height)
    nbytes = frame_bytes(w, h, info.bit_depth)
    if rgb:  # decoded pictures copied to the encoder (pass-through) make no tensors: no heap to keep flat, no trims
        steady_heap(heap_threshold(nbytes))  # the heap's behaviour fixed, frames above a face's tensors mapped
    if progress:  # the pass's clock starts now, not after its first batch
        progress(label, 0, len(numbers))
    prefetch = frames_in_flight(batch_size, info, size, colour, keep_pictures)
    keep = keeps_pictures(info, size, colour, keep_pictures)
    with read_numbers(info, numbers, prefetch=prefetch, size=size, rgb=rgb, keep_picture=keep) as frames:
        if colour is not None:
            from vidswap.composite.linear import display_frames

            frames = display_frames(frames, colour)
        work = batches(frames, batch_frames(batch_size, nbytes), timer)  # 4K: 2 frames a batch
        results = ordered_map(processor, work, threads)
        while True:
            start, decoding = time.perf_counter(), timer.seconds["decode"]
            pair = next(results, None)  # reads the next batches (timed as decode) and waits for this one's result
            timer.seconds["swap"] += time.perf_counter() - start - (timer.seconds["decode"] - decoding)
            if pair is None:
                break
            batch, result = pair
            yield batch, result
            before, done = done, done + len(batch)
            del batch, result, pair  # the caller has handed the frames on: nothing of this batch outlives it here
            if rgb and before // batch_size != done // batch_size:
                release_free_heap()  # every batch_size frames, however the plate's bytes cut the batches
            if progress:
                progress(label, done, len(numbers))
