"""The swap-backend contract end to end: a core defined here -- its own crop (the 5-point ArcFace template at 128
px), its own identity type and its own config section -- is registered from the test and run through
``vidswap run`` with nothing else changed. The render stage must cut the crop the core asked for and paste the
core's result back exactly where the inverse of that crop lands on the plate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidswap.cli import main
from vidswap.errors import ConfigError
from vidswap.faces.align import TemplateCrop, arcface_template, kps5_from_landmarks, similarity_transform
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.io import probe, read_frames
from vidswap.swap import SourceFace, SourceIdentity, SwapBatch, SwapCore, SwapResult, build_core, core_names, \
    register_core
from vidswap.swap.registry import CoreContext, unregister_core

NAME = "stub_arcface"
SIZE = 128
BOX = (52, 56, 76, 84)  # x0, y0, x1, y1 (inclusive, crop pixels): around the nose of the ArcFace template
FRAMES = "0-11"


@dataclass(frozen=True)
class StubConfig:
    """The stub's section, ``swap.stub_arcface``: the colour it paints."""

    colour: tuple[float, ...] = (1.0, 0.0, 1.0)


@dataclass(kw_only=True)
class StubIdentity(SourceIdentity):
    """The stub's own identity type: the paint colour and how many photos were prepared."""

    colour: torch.Tensor
    photos: int


class StubCore(SwapCore):
    """Paints a constant colour with alpha 1 inside ``BOX`` of an ArcFace-128 crop; records what it was given."""

    name = NAME
    needs = frozenset({"image"})

    def __init__(self, config: StubConfig):
        self.config = config
        self.crop = TemplateCrop.arcface(SIZE)
        self.batches: list[SwapBatch] = []
        self.identities: list[StubIdentity] = []

    def prepare(self, sources: list[SourceFace]) -> StubIdentity:
        assert sources and all(s.image.ndim == 3 for s in sources)
        return StubIdentity(colour=torch.tensor(self.config.colour, dtype=torch.float32), photos=len(sources))

    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        assert isinstance(identity, StubIdentity)
        self.batches.append(batch)
        self.identities.append(identity)
        n = batch.target_crops.shape[0]
        crops = identity.colour.view(1, 3, 1, 1).expand(n, 3, SIZE, SIZE).to(batch.target_crops)
        alpha = torch.zeros(n, 1, SIZE, SIZE, device=batch.target_crops.device)
        x0, y0, x1, y1 = BOX
        alpha[:, :, y0:y1 + 1, x0:x1 + 1] = 1.0
        return SwapResult(crops=crops, alpha=alpha)


@pytest.fixture
def stub_core():
    """Registers the stub core for one test; the built instances are collected so the test can inspect them."""
    built: list[StubCore] = []

    def build(config: StubConfig, context: CoreContext) -> StubCore:
        built.append(StubCore(config))
        return built[-1]

    register_core(NAME, build, StubConfig)
    try:
        yield built
    finally:
        unregister_core(NAME)


def decoded(path) -> dict[int, np.ndarray]:
    with read_frames(probe(path)) as frames:
        return {f.number: f.image for f in frames}


def test_stub_core_runs_end_to_end_and_pastes_back_exactly(stub_core, media, tmp_path):
    clip, source = media("single_face_clip"), media("astronaut")
    out = tmp_path / "stub.mkv"  # FFV1: lossless, the decoded output is the pipeline's pixels
    shot = tmp_path / "shot.yaml"
    # blending and colour matching pass the core's result through: no colour transfer, no feather or erosion,
    # no occlusion test, the whole face region (the stub's box lies inside it)
    shot.write_text(f"input: {clip}\nsources: [{source}]\nframes: {FRAMES}\noutput: {{path: {out}}}\n"
                    f"swap: {{core: {NAME}, {NAME}: {{colour: [1.0, 0.0, 1.0]}}}}\n"
                    "composite: {colour: none, blend: feather, feather: 0.0, erode: 0.0, regions: [face], "
                    "occlusion: false, grain: false}\n")
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 0, result.output
    assert "swapped 12 frames" in result.output

    (core,) = stub_core
    assert {type(i) for i in core.identities} == {StubIdentity} and core.identities[0].photos == 1
    analysis = ShotAnalysis.load(out.parent / "stub.vidswap" / "tracks.npz")
    (track,) = analysis.tracks
    assert track.frames.tolist() == list(range(12))
    # every frame's face is at full strength in the compositor (confidence >= 0.7: no fading)
    assert np.all(track.render_confidence(np.arange(12)) >= 0.7)

    # the crops are the ones the core asked for: the similarity of the track's five keypoints to the template
    kps = kps5_from_landmarks(torch.from_numpy(track.smoothed).double())
    expected = similarity_transform(kps.double(), torch.from_numpy(arcface_template(SIZE)).double())
    # two render threads may hand the core its batches in either order: each batch is a run of consecutive frames
    recorded = torch.zeros(12, 2, 3, dtype=torch.float64)
    covered = np.zeros(12, dtype=int)
    for b in core.batches:
        got, n = b.frame_to_crop.double(), len(b)
        (start,) = [k for k in range(12 - n + 1) if torch.allclose(got, expected[k:k + n], atol=1e-3)]
        recorded[start:start + n] = got
        covered[start:start + n] += 1
    assert covered.tolist() == [1] * 12  # every frame swapped once
    for b in core.batches:
        assert b.target_crops.shape[-2:] == (SIZE, SIZE) and b.target_landmarks.shape[1:] == (478, 3)
        crop_kps = kps5_from_landmarks(b.target_landmarks)
        tpl = torch.from_numpy(arcface_template(SIZE)).expand_as(crop_kps)
        assert float((crop_kps - tpl).norm(dim=-1).mean()) < 3.0  # the face sits on the template in the crop

    plates, results = decoded(clip), decoded(out)
    x0, y0, x1, y1 = BOX
    for row, number in enumerate(track.frames.tolist()):
        m = recorded[row].numpy()
        assert np.sqrt(abs(np.linalg.det(m[:, :2]))) <= 1.0  # the face is enlarged onto the plate: no pre-blur
        plate, swapped = plates[number], results[number]
        h, w = plate.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w]
        qx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]  # each plate pixel's position in the crop
        qy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
        eps = 1e-3
        inside = (qx >= x0 + eps) & (qx <= x1 - eps) & (qy >= y0 + eps) & (qy <= y1 - eps)
        outside = (qx <= x0 - 1 - eps) | (qx >= x1 + 1 + eps) | (qy <= y0 - 1 - eps) | (qy >= y1 + 1 + eps)
        changed = np.any(swapped != plate, axis=-1)
        assert inside.sum() > 200
        assert np.all(swapped[inside] == (255, 0, 255)), f"frame {number}: the box is not the core's colour"
        assert not changed[outside].any(), f"frame {number}: pixels outside the inverse-warped box changed"
        assert changed[inside].all()


def test_unknown_core_is_a_config_error_listing_the_registered_cores(stub_core, tmp_path):
    shot = tmp_path / "shot.yaml"
    shot.write_text("input: clip.mp4\nsources: [a.jpg]\nswap: {core: nosuch}\n")
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 2
    assert f"registered cores: {', '.join(core_names())}" in result.output and "facedancer, geometric" in result.output
    with pytest.raises(ConfigError, match="unknown swap core 'nosuch'"):
        build_core("nosuch")


def test_registry_checks_names_and_sections(stub_core):
    assert NAME in core_names()
    with pytest.raises(ValueError, match="already registered"):
        register_core(NAME, lambda config, context: StubCore(config), StubConfig)
    with pytest.raises(ConfigError, match=f"unknown key.*paint in swap.{NAME}"):
        build_core(NAME, {"paint": 1})
    core = build_core(NAME, {"colour": (0.0, 1.0, 0.0)})
    assert isinstance(core, StubCore) and core.config == StubConfig(colour=(0.0, 1.0, 0.0))
    assert stub_core == [core]


def test_a_core_declares_only_known_source_needs():
    with pytest.raises(TypeError, match="unknown entries"):
        type("Greedy", (StubCore,), {"needs": frozenset({"image", "soul"})})


def test_cores_from_entry_points_are_registered_on_first_lookup(monkeypatch):
    """A package's entry point of the group vidswap.swap_cores registers its core when the registry is first
    asked; a plug-in that fails to load is a ConfigError naming it."""
    from vidswap.swap import registry

    class EntryPoint:  # what importlib.metadata.entry_points yields: name, value, load()
        def __init__(self, name, value, target):
            self.name, self.value, self.load = name, value, lambda: target

    def register():
        register_core(NAME, lambda config, context: StubCore(config), StubConfig)

    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint("stub", "stubpkg:register", register)]
                        if group == registry.ENTRY_POINT_GROUP else [])
    registry._load_plugins.cache_clear()
    try:
        assert NAME in core_names()
        assert isinstance(build_core(NAME), StubCore)
    finally:
        unregister_core(NAME)
        registry._load_plugins.cache_clear()

    def broken():
        raise ImportError("no module named stubpkg")

    bad = EntryPoint("stub", "stubpkg:register", None)
    bad.load = broken
    monkeypatch.setattr(registry, "entry_points", lambda group: [bad])
    registry._load_plugins.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"swap core plug-in stub \(stubpkg:register\) failed to load"):
            core_names()
    finally:
        registry._load_plugins.cache_clear()
