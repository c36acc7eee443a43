"""The render pass's memory does not grow with the clip (issue 19): the frames alive at any time are bounded by
the batch and the two queues, whatever the clip's length; the queues shrink at large plates; glibc's heap gives
large freed blocks back."""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import subprocess
import sys
import weakref

import pytest

from vidswap.config import JobConfig
from vidswap.io import probe
from vidswap.memory import (MMAP_THRESHOLD, _glibc, batch_frames, frame_bytes, heap_threshold, picture_bytes, queue_depth,
                            steady_heap)
from vidswap.pipeline import render_frames
from vidswap.render_loop import frames_in_flight
from vidswap.timing import StageTimer


def test_queue_depth_keeps_the_overlap_at_small_plates_and_shrinks_at_large_ones():
    assert frame_bytes(1920, 1080, 8) == 1920 * 1080 * 3
    assert frame_bytes(3840, 2160, 10) == 3840 * 2160 * 6 and frame_bytes(64, 64, 32) == 64 * 64 * 12
    assert queue_depth(8, frame_bytes(640, 360, 8)) == 8
    assert queue_depth(8, frame_bytes(1920, 1080, 8)) == 8  # 50 MB of frames: as before
    assert queue_depth(8, frame_bytes(3840, 2160, 8)) == 4  # 96 MiB // 24.9 MB
    assert queue_depth(8, frame_bytes(3840, 2160, 16)) == 2  # never fewer than 2
    assert queue_depth(1, frame_bytes(640, 360, 8)) == 4 and queue_depth(32, frame_bytes(640, 360, 8)) == 32
    # the render pass's frames keep their decoded 4:2:0 pictures too (vidswap.io.region_write): counted
    assert picture_bytes(3840, 2160) == 3840 * 2160 * 3 // 2
    assert queue_depth(8, frame_bytes(3840, 2160, 8) + picture_bytes(3840, 2160)) == 2  # 96 MiB // 37.3 MB
    assert queue_depth(8, frame_bytes(1920, 1080, 8) + picture_bytes(1920, 1080)) == 8


def test_the_render_batch_follows_the_plates_bytes_and_the_heap_maps_frames_larger_than_a_faces_tensors():
    assert batch_frames(8, frame_bytes(640, 360, 8)) == 8 and batch_frames(32, frame_bytes(640, 360, 8)) == 32
    assert batch_frames(8, frame_bytes(1920, 1080, 8)) == 8  # 64 MiB // 6.2 MB = 10: as before
    assert batch_frames(8, frame_bytes(2560, 1440, 8)) == 6
    assert batch_frames(8, frame_bytes(3840, 2160, 8)) == 2  # 64 MiB // 24.9 MB
    assert batch_frames(8, frame_bytes(3840, 2160, 16)) == 1 and batch_frames(8, frame_bytes(8192, 4320, 32)) == 1
    assert batch_frames(1, frame_bytes(3840, 2160, 8)) == 1
    # up to 1080p (and above 32 MiB frames) the threshold stays glibc's largest; a 4K 8-bit frame (24.9 MB, above a
    # group's 12 MiB of RGB float32 crops) is mapped on its own
    assert heap_threshold(frame_bytes(1920, 1080, 8)) == MMAP_THRESHOLD
    assert heap_threshold(frame_bytes(2560, 1440, 16)) == frame_bytes(2560, 1440, 16) == 22118400
    assert heap_threshold(frame_bytes(3840, 2160, 8)) == 24883200
    assert heap_threshold(frame_bytes(3840, 2160, 16)) == MMAP_THRESHOLD  # 49.8 MB: mapped at 32 MiB anyway
    assert heap_threshold(12 << 20) == MMAP_THRESHOLD and heap_threshold((12 << 20) + 1) == (12 << 20) + 1


class Alive:
    """A processor that hands the frames back as new arrays and counts, at every call, how many of the frames it
    has seen (plates and results) are still referenced anywhere."""

    def __init__(self):
        self.alive = 0
        self.peaks: list[int] = []

    def _track(self, array) -> None:
        self.alive += 1
        weakref.finalize(array, self._gone)

    def _gone(self) -> None:
        self.alive -= 1

    def __call__(self, frames):
        for f in frames:
            self._track(f.image)
        self.peaks.append(self.alive)
        out = [dataclasses.replace(f, image=f.image.copy()) for f in frames]
        for f in out:
            self._track(f.image)
        return out


def run_loop(path, frames: int, batch: int, tmp_path) -> tuple[Alive, int]:
    info = probe(path)
    cfg = dataclasses.replace(JobConfig(), batch_size=batch)
    processor = Alive()
    written = render_frames(cfg, info, list(range(frames)), processor, tmp_path / f"out_{frames}.mp4",
                            (info.width, info.height), StageTimer())
    assert written == frames
    return processor, frames_in_flight(cfg.batch_size, info, None)


def test_the_frames_alive_in_the_render_loop_are_bounded_by_batch_and_queue_not_by_clip_length(media, tmp_path):
    """At each render call at most: this batch's plates, the results waiting in the writer's queue and the one
    being encoded. The previous batch (plates and results) is gone, and nothing is kept per frame of the clip."""
    clip = media("pexels_clip")
    short, depth = run_loop(clip, 12, 4, tmp_path)
    long, _ = run_loop(clip, 60, 4, tmp_path)
    assert depth == 4
    bound = 4 + depth + 1
    # the bound does not grow with the clip: 60 frames stay within it (13 > 9 without the releases). How close a
    # run comes to it depends on how far the writer's thread lags, so the two runs' peaks are not compared
    assert max(short.peaks) <= bound and max(long.peaks) <= bound, (short.peaks, long.peaks)
    assert long.alive == 0  # after the pass nothing it rendered is referenced


MAPPED_BLOCKS = """
import ctypes, sys
sys.path.insert(0, {root!r})
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = {struct}
if {steady}:
    from vidswap.memory import steady_heap
    assert steady_heap({threshold})
mapped = []
for size in (1 << 20, 12 << 20, 16 << 20, 24883200, 40 << 20):  # glibc's initial threshold is 128 KiB
    before = libc.mallinfo2().hblks
    block = libc.malloc(size)
    mapped.append(libc.mallinfo2().hblks - before)
    libc.free(block)
print(*mapped)
"""


def _mapped_blocks(steady: bool, threshold: int = MMAP_THRESHOLD) -> list[int]:
    struct = "type('M', (ctypes.Structure,), {'_fields_': [(n, ctypes.c_size_t) for n in " \
             "('arena','ordblks','smblks','hblks','hblkhd','usmblks','fsmblks','uordblks','fordblks','keepcost')]})"
    from pathlib import Path

    code = MAPPED_BLOCKS.format(root=str(Path(__file__).resolve().parents[1]), struct=struct, steady=steady,
                       threshold=threshold)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [int(v) for v in proc.stdout.split()]


@pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc: steady_heap is a documented no-op there")
def test_steady_heap_serves_a_faces_tensors_from_the_heap_and_maps_only_larger_blocks():
    """In a fresh process glibc maps a 1 MB block on its own (threshold 128 KiB) and, after freeing it, the next
    ones too (the threshold rose to the last freed size only); with the fixed 32 MiB threshold all come from the heap
    (reused without page faults) but the 40 MB block; with a 4K plate's threshold its 24.9 MB frames are mapped
    too, a face's 12 MiB tensors are not."""
    assert _mapped_blocks(steady=False) == [1, 1, 1, 1, 1]
    assert _mapped_blocks(steady=True) == [0, 0, 0, 0, 1]
    assert _mapped_blocks(steady=True, threshold=heap_threshold(frame_bytes(3840, 2160, 8))) == [0, 0, 0, 1, 1]
    assert steady_heap()


def test_release_after_analysis_collects_what_the_analysis_left_in_reference_cycles():
    from vidswap.memory import release_after_analysis

    class Models:  # an analyser and its models referring to each other, as the frame analyser's callbacks do
        pass

    gc.disable()  # only release_after_analysis may collect the cycle here
    try:
        models = Models()
        models.self = models
        ref = weakref.ref(models)
        del models
        assert ref() is not None
        release_after_analysis()
        assert ref() is None
    finally:
        gc.enable()


def test_a_prepared_identity_reads_back_bit_exact_and_only_for_its_key(tmp_path):
    import torch

    from vidswap.identity_cache import read_identity, write_identity
    from vidswap.swap.geometric.core import GeometricIdentity

    g = torch.Generator().manual_seed(3)
    ident = GeometricIdentity(images=torch.rand(2, 3, 8, 8, generator=g), landmarks=torch.rand(2, 478, 3, generator=g),
                              canonical=torch.rand(478, 3, generator=g), texture_index=1,
                              embedding=torch.rand(128, generator=g), edge_blur=torch.tensor([float("nan")]))
    path = tmp_path / "id.safetensors"
    assert write_identity(path, "k1", ident)
    back = read_identity(path, "k1", "cpu")
    assert type(back) is GeometricIdentity and back.texture_index == 1 and back.albedo is None
    for name, t in ident.tensors().items():
        assert torch.equal(back.tensors()[name], t) or (name == "edge_blur" and torch.isnan(back.edge_blur).all())
    assert read_identity(path, "k2", "cpu") is None
    path.write_bytes(b"not a record")
    assert read_identity(path, "k1", "cpu") is None
