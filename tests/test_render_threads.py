"""Render threads (issue 19): batches rendered on two threads give the same pictures as one thread, in order.

Synthetic data for :func:`ordered_map` and :func:`render_threads` (exact answers); real footage (frames 56-63 of
the sample clip, a hand partly over the face, so the occluder path runs too) for the render stage itself.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vidswap.config import load_config
from vidswap.errors import ConfigError
from vidswap.io import probe
from vidswap.pipeline import StageTimer, build_render, job_render_threads
from vidswap.render_loop import ordered_map, processed_batches, render_threads
from vidswap.shot import plan_shot


def test_ordered_map_keeps_the_order_of_the_items_whatever_finishes_first():
    def slow_first(x: int) -> int:
        time.sleep(0.02 if x % 2 == 0 else 0.0)  # even items finish after the odd item started next to them
        return x * x

    assert list(ordered_map(slow_first, iter(range(7)), 2)) == [(x, x * x) for x in range(7)]
    assert list(ordered_map(slow_first, iter(range(7)), 3)) == [(x, x * x) for x in range(7)]


def test_ordered_map_takes_at_most_threads_items_ahead():
    taken = []

    def items():
        for x in range(10):
            taken.append(x)
            yield x

    results = ordered_map(lambda x: x, items(), 2)
    assert next(results) == (0, 0)
    assert taken == [0, 1]  # the yielded item and the one rendering next to it, nothing more
    assert next(results) == (1, 1)
    assert taken == [0, 1, 2]
    results.close()


def test_ordered_map_on_one_thread_runs_in_the_callers_thread():
    names = [name for _, name in ordered_map(lambda x: threading.current_thread().name, iter(range(3)), 1)]
    assert names == [threading.current_thread().name] * 3
    names = {name for _, name in ordered_map(lambda x: threading.current_thread().name, iter(range(4)), 2)}
    assert all(n.startswith("vidswap-render") for n in names)


def test_ordered_map_raises_a_workers_error_at_its_items_turn():
    def fail_at_two(x: int) -> int:
        if x == 2:
            raise ValueError("bad frame 2")
        return x

    got = []
    with pytest.raises(ValueError, match="bad frame 2"):
        for item, _ in ordered_map(fail_at_two, iter(range(6)), 2):
            got.append(item)
    assert got == [0, 1]


def test_render_threads_setting():
    assert render_threads("auto", "cpu", False, 2) == 2
    assert render_threads("auto", "cpu", False, 16) == 2
    assert render_threads("auto", "cpu", False, 1) == 1
    assert render_threads("auto", "cuda", False, 16) == 1  # one thread keeps a GPU busy
    assert render_threads(3, "cpu", False, 2) == 3  # what the user asks for
    assert render_threads(3, "cpu", True, 2) == 1  # sinks that expect frame order: never more than one
    assert render_threads("auto", "cpu", True, 8) == 1


def test_render_threads_config_is_checked():
    assert load_config().render_threads == "auto"
    assert load_config(overrides={"render_threads": 2}).render_threads == 2
    with pytest.raises(ConfigError, match="render_threads must be 'auto' or >= 1"):
        load_config(overrides={"render_threads": 0})


@pytest.fixture(scope="module")
def setup_and_plate(media, tmp_path_factory):
    clip, source = media("pexels_clip"), media("grace_hopper")
    out = tmp_path_factory.mktemp("threads") / "out.mp4"
    cfg = load_config(overrides={"input": str(clip), "sources": [str(source)], "frames": "56-63",
                                 "output": {"path": str(out)}, "batch_size": 2})
    plan = plan_shot(cfg)
    cache = Path.home() / ".cache" / "vidswap" / "analysis" / "region_pexels_56-63.npz"  # test_render_region's
    if cache.exists():  # its key is checked on use: a stale copy is analysed again
        plan.tracks_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, plan.tracks_path)
    setup = build_render(cfg, plan, StageTimer(), None, [])
    return cfg, plan, setup


def test_two_render_threads_give_the_same_pictures_in_order(setup_and_plate):
    cfg, plan, setup = setup_and_plate
    assert job_render_threads(cfg, setup) == min(2, len(os.sched_getaffinity(0)))
    runs = {}
    for threads in (1, 2):
        runs[threads] = [(a.number, b.number, b.image) for a, b in (
            pair for batch, result in processed_batches(cfg.batch_size, probe(plan.info.path), plan.numbers,
                                                        setup.processor, StageTimer(), threads=threads)
            for pair in zip(batch, result))]
    assert [n for n, _, _ in runs[2]] == list(range(56, 64))
    assert [(a, b) for a, b, _ in runs[2]] == [(a, b) for a, b, _ in runs[1]]
    for (_, _, one), (_, _, two) in zip(runs[1], runs[2]):
        assert np.array_equal(one, two)
    assert setup.stage.summary()[0] == 8  # every frame swapped (the hand leaves the face visible)


def test_sinks_that_expect_frame_order_keep_one_thread(setup_and_plate):
    cfg, plan, setup = setup_and_plate
    setup.stage.matte_sinks.append(lambda number, matte: None)
    try:
        assert job_render_threads(cfg, setup) == 1
    finally:
        setup.stage.matte_sinks.clear()


def test_in_place_paste_writes_the_same_pictures_into_the_decoded_frames(setup_and_plate, tmp_path):
    """``in_place`` (set by render_frames when nothing looks at the plates afterwards) pastes into the reader's
    frames, no copy of each; the pictures are those of the copying path, whose plates stay untouched."""
    from vidswap.pipeline import render_frames

    cfg, plan, setup = setup_and_plate
    stage = setup.stage
    runs = {}
    try:
        for in_place in (False, True):
            stage.in_place = in_place
            runs[in_place] = [(a.image.copy() if not in_place else None, a.image, b.image) for batch, result in
                              processed_batches(cfg.batch_size, probe(plan.info.path), plan.numbers,
                                                setup.processor, StageTimer(), threads=1)
                              for a, b in zip(batch, result)]
        for (before, plate, copied), (_, own, pasted) in zip(runs[False], runs[True]):
            assert np.array_equal(copied, pasted)  # the same pictures
            assert np.array_equal(before, plate) and not np.array_equal(plate, copied)  # copy: plate untouched
            assert pasted is own  # in place: the decoded frame itself carries the face
        render_frames(cfg, plan.info, plan.numbers[:2], setup.processor, tmp_path / "b.####.png", plan.size,
                      StageTimer())
        assert stage.in_place is True
        seen = []  # the same stage in a later pass with an observer: it must see the untouched plates
        render_frames(cfg, plan.info, plan.numbers[:2], setup.processor, tmp_path / "a.####.png", plan.size,
                      StageTimer(), observer=lambda plates, results: seen.append(
                          [not np.array_equal(p.image, r.image) for p, r in zip(plates, results)]))
        assert stage.in_place is False and seen == [[True, True]]
    finally:
        stage.in_place = False
