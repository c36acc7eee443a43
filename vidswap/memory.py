"""Keeping the render pass's resident memory flat over a long clip and bounded at large plates (issue 19).

Frames in flight: the reader's and the writer's queues hold at most :func:`queue_depth` frames each, a number
that shrinks as the plate grows (a 4K RGB frame is 25 MB), so what waits between the stages stays within
:data:`QUEUE_BYTES` per queue whatever the plate size and the clip length.

The C heap: the render stage allocates and frees many large tensors of changing sizes every batch (crop-space masks, the
face region of each track, paste-back regions). glibc's allocator serves a freed ``mmap`` size from its heap next
time (its mmap threshold rises to the largest block freed, up to 32 MiB), and a heap fragmented by blocks of
varying size is rarely given back: measured on a 1080p plate (40 frames, batch 8), the resident set between
batches rose from 0.88 GB to 1.58 GB over five batches and the peak reached 2.88 GB (``benchmarks/bench_memory.py``).

:func:`steady_heap` fixes the threshold (and the trim threshold) at :data:`MMAP_THRESHOLD`, so the heap's behaviour
does not depend on what was freed before, and :func:`release_free_heap` hands the heaps' free pages back after each
batch: the resident set stays flat over the clip. The threshold is glibc's largest (32 MiB): a 1024-px face's
tensors (4-16 MB) are reused from the heap within a batch. At 128 KiB every such tensor was a fresh mapping whose
pages the kernel zero-filled on first touch: 160 000 page faults and ~280 ms of system time a frame of the 1080p
render stage's ~600 ms (RESULTS.md, rspeed-s11). Where a plate's frame is larger than a face's tensors but within
32 MiB (4K), the threshold is the frame's size instead (:func:`heap_threshold`): frames kept in the heap were
~0.3 GB of the 4K render pass. Both only change where memory comes from, never a computed value. They do nothing
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import gc
import sys

#: mallopt parameters (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks at least this large are mapped on their own and returned to the system when freed; smaller ones come from
#: the heap (glibc's largest allowed value: ``HEAP_MAX_SIZE / 2`` on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024

#: Bytes of decoded frames one queue between the stages may hold (at least 2 frames).
QUEUE_BYTES = 96 * 2 ** 20

#: Bytes of plates one render batch holds (at least 1 frame; the batch's results as many again): the batch in
#: frames follows the plate's size, ``batch_size`` up to 1080p, 2 frames at 4K (:func:`batch_frames`).
BATCH_BYTES = 64 * 2 ** 20

#: Crop pixels the render stage swaps and composites at once (``RenderStage.crop_pixels``): one face at a 1024-px
#: crop, 4 at 512, a whole batch of 8 at 360 px and below. The crop-space tensors of a group are the render pass's
#: working set (1080p, 1024-px crops, 24 frames with the analysis reused: peak RSS 988 MiB with groups of 2,
#: 838 MiB with 1, the same output file); every face's result depends on that face alone.
RENDER_CROP_PIXELS = 1 << 20

_state: dict[str, object] = {}


def frame_bytes(width: int, height: int, bit_depth: int, channels: int = 3) -> int:
    """Bytes of one decoded RGB frame: 1 byte a sample up to 8 bits, 2 up to 16, 4 (float) above."""
    sample = 1 if bit_depth <= 8 else 2 if bit_depth <= 16 else 4
    return width * height * channels * sample


def picture_bytes(width: int, height: int) -> int:
    """Bytes of one decoded 8-bit 4:2:0 picture, which the render pass's frames keep beside their RGB
    (:mod:`vidswap.io.region_write`): counted in the queues' budgets, so what waits between the stages stays within
    :data:`QUEUE_BYTES` (the decoders' buffer pools still grow with the pictures alive at once: RESULTS.md, s22)."""
    return width * height * 3 // 2


def batch_frames(batch_size: int, nbytes: int, budget: int = BATCH_BYTES) -> int:
    """Frames the render pass takes at once: ``batch_size`` within ``budget`` bytes of ``nbytes`` frames, at least
    1. Every face's result depends on that face alone (no state from batch to batch, farm chunks equal a single
    pass), so the output is the same for any batch; only the frames alive at once change."""
    return max(1, min(batch_size, budget // max(1, nbytes)))


def heap_threshold(nbytes: int, face_bytes: int = RENDER_CROP_PIXELS * 3 * 4) -> int:
    """glibc's mmap threshold for a render pass over ``nbytes`` frames: :data:`MMAP_THRESHOLD`, or the frame's
    size where a frame is larger than a face's largest crop-space tensor (``face_bytes``: a group's RGB float32
    crops, 12 MiB) but within the threshold (4K: 24.9 MB). Then the frames (decoded plates, the render's
    results) are mapped on their own and given back when freed, while the face's tensors are still reused from
    the heap (4K render pass, 16 frames: peak RSS 1712-1771 -> 1470-1488 MiB with :func:`batch_frames`, the
    same output and speed, RESULTS.md memory-s12)."""
    return nbytes if face_bytes < nbytes < MMAP_THRESHOLD else MMAP_THRESHOLD


def queue_depth(batch_size: int, nbytes: int, budget: int = QUEUE_BYTES) -> int:
    """Frames a queue between the reader, the render and the writer holds: ``max(4, batch_size)`` (the depth
    that keeps the stages overlapped) within ``budget`` bytes of ``nbytes`` frames, never fewer than 2."""
    return max(2, min(max(4, batch_size), budget // max(1, nbytes)))


def _glibc() -> ctypes.CDLL | None:
    """The process's glibc, or None (another C library or platform)."""
    if "libc" not in _state:
        lib = None
        if sys.platform.startswith("linux"):
            try:
                candidate = ctypes.CDLL("libc.so.6")
                if hasattr(candidate, "mallopt") and hasattr(candidate, "malloc_trim") and \
                        hasattr(candidate, "gnu_get_libc_version"):
                    lib = candidate
            except OSError:
                lib = None
        _state["libc"] = lib
    return _state["libc"]  # type: ignore[return-value]


def steady_heap(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes (and the trim threshold with it), once per process.
    Returns whether the setting is in force."""
    lib = _glibc()
    if lib is None:
        return False
    if _state.get("threshold") != threshold:
        ok = lib.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(threshold)) == 1
        ok = ok and lib.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(threshold)) == 1
        if not ok:
            return False
        _state["threshold"] = threshold
    return True


def release_free_heap() -> bool:
    """Give the free pages of every malloc arena back to the system (``malloc_trim(0)``). Returns whether
    anything was released (False where the C library is not glibc)."""
    lib = _glibc()
    return bool(lib.malloc_trim(ctypes.c_size_t(0))) if lib is not None else False


def release_after_analysis() -> bool:
    """Between the analysis pass and the render pass: collect what the analysis left unreachable (its models, the
    frame analyser's buffers) and give the heaps' free pages back (:func:`release_free_heap`), so the render pass
    starts from the analysis's results, not its high-water mark. Changes no allocator setting: glibc's fixed mmap
    threshold (:func:`steady_heap`) set this early made the render pass 2.5x slower (``benchmarks/RESULTS.md``,
    "Regression found and backed out"). Returns whether anything was released."""
    gc.collect()
    return release_free_heap()
