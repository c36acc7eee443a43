"""The preview's cheaper analysis: the track appearance model unwraps every N-th analysed frame
(``analysis.appearance_every``); exact expectations on synthetic frames and on the config layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidswap.appearance.analysis import AppearanceCollector, track_texture_space
from vidswap.config import load_config
from vidswap.errors import ConfigError
from vidswap.faces.analyze import analysis_key
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology


@pytest.fixture(scope="module")
def parts():
    topology = load_topology()
    space, masks = track_texture_space(topology, size=32)
    return space, masks, torch.as_tensor(topology.regions["face_oval"])


def collect(parts, every: int, frames: int, batch: int) -> AppearanceCollector:
    """A collector fed ``frames`` synthetic 96x96 frames (one face each: the canonical mesh, ~60 px high), in
    batches of ``batch``."""
    space, masks, oval = parts
    rng = np.random.default_rng(0)
    points = canonical_face().numpy().astype(np.float32)
    points = (points - points.mean(0)) / np.ptp(points[:, 1]) * 60 + np.array([48, 48, 0], np.float32)
    collector = AppearanceCollector(space, masks, oval, every=every)
    for start in range(0, frames, batch):
        n = min(batch, frames - start)
        images = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(n)]
        collector.push(images, [points[None]] * n, [[0]] * n)
    return collector


def test_every_nth_frame_is_unwrapped_whatever_the_batches(parts):
    assert sorted(collect(parts, 1, 4, 3).sampler._kept) == list(range(4))
    every4 = collect(parts, 4, 10, 3)
    assert sorted(every4.sampler._kept) == [0, 4, 8]
    assert sorted(collect(parts, 4, 10, 8).sampler._kept) == [0, 4, 8]
    model = every4.models({7: {p: 0 for p in range(10)}})
    assert set(model) == {7} and int(model[7]["frames"][0]) == 3


def test_preview_preset_samples_every_fourth_frame_and_the_key_covers_it():
    default, preview = load_config(), load_config(overrides={"preset": "preview"})
    assert default.analysis.appearance_every == 1 and preview.analysis.appearance_every == 4
    keys = {analysis_key("f", [0, 1, 2], load_config(overrides={"analysis": {"appearance_every": n}}).analysis,
                         default.smoothing, {}) for n in (1, 2, 4)}
    assert len(keys) == 3
    for bad in (0, 65, True, 2.5):
        with pytest.raises(ConfigError, match="appearance_every"):
            load_config(overrides={"analysis": {"appearance_every": bad}})
