"""The pass-through core's render stage (issue 19): frames handed on untouched, every one reported as passed through,
and the job's processor built without torch."""

from __future__ import annotations

import numpy as np

from vidswap.copy_stage import CopyStage
from vidswap.io.frames import Frame
from vidswap.swap import build_core
from vidswap.swap.registry import known_passthrough


def test_copy_stage_hands_on_the_same_frames_and_reports_them_passed_through():
    core = build_core("passthrough")
    stage = CopyStage(core)
    images = [np.full((4, 6, 3), k, np.uint8) for k in range(5)]
    first = [Frame(1001 + k, 512 * k, None, images[k]) for k in range(3)]
    second = [Frame(1001 + k, 512 * k, None, images[k]) for k in range(3, 5)]
    out = stage(first)
    assert out == first and out is not first and all(a is b for a, b in zip(out, first))
    assert stage(second) == second
    assert all(f.image is images[k] for k, f in enumerate(first + second))  # the pictures are the same objects
    assert stage.summary() == (0, [1001, 1002, 1003, 1004, 1005])
    assert (stage.sinks, stage.matte_sinks, stage.matte, stage.plate_layers) == ([], [], None, False)
    assert stage.core.passes_through and stage.core.runtime() == ""


def test_known_passthrough_names_only_the_builtin_passthrough_core():
    assert known_passthrough("passthrough")
    assert not known_passthrough("geometric") and not known_passthrough("no-such-core")
