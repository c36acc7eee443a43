"""The per-target set-up record (issue 19): a farm render task reads the relit track albedo and plate light the
analyze task recorded; exact on synthetic inputs."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import torch

from vidswap.appearance.relight import PlateLight
from vidswap.code_stamp import record_stamp
from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore
from vidswap.swap.geometric.core import GeometricIdentity
from vidswap.target_cache import cached_target, declared_dataclass, read_target, target_key

from test_render_side import _model
from test_swap_relit import _track


def _identity() -> GeometricIdentity:
    g = torch.Generator().manual_seed(0)
    return GeometricIdentity(images=torch.zeros(1, 3, 8, 8), landmarks=torch.zeros(1, 478, 3),
                             canonical=torch.zeros(478, 3), albedo=torch.rand(1, 4, 512, 512, generator=g),
                             eye_openness=torch.full((2,), 0.3), edge_blur=torch.tensor([0.002]))


def _same(a, b) -> bool:
    """Field by field equality: tensors bit-exact (dtype, shape, values), dataclasses recursively."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    return type(a) is type(b) and a == b


class _Counting(GeometricSwapCore):
    calls = 0

    def for_target(self, identity, track):
        self.calls += 1
        return super().for_target(identity, track)


def test_the_recorded_target_reads_back_equal_to_the_computed_one_and_only_for_its_key(tmp_path):
    core = _Counting(GeometricSwapConfig(render_sigma=1.0))
    identity, track = _identity(), _track(scale=100.0, appearance=_model(0.01))
    expect = GeometricSwapCore.for_target(core, identity, track)
    assert isinstance(expect.plate_light, PlateLight) and expect.render_size == (480, 160)

    first = cached_target(core, identity, "id-key", track, tmp_path, "cpu", "c1")
    assert core.calls == 1 and _same(first, expect)
    assert len(list(tmp_path.glob("target_*.safetensors"))) == 1
    again = cached_target(core, identity, "id-key", track, tmp_path, "cpu", "c1")
    assert core.calls == 1 and _same(again, expect)  # read, not computed
    assert again.images is identity.images  # the fields for_target left alone are the prepared identity's

    path = next(tmp_path.glob("target_*.safetensors"))
    assert read_target(path, "other", identity, "cpu") is None  # another key's record is not used
    # another prepared identity, or another analysis of the track: computed again (and recorded beside)
    other_track = replace(track, smoothed=track.smoothed + np.float32(0.5))
    assert target_key("id-key", other_track) != target_key("id-key", track)
    # the neutral shape too (an open-mouthed source's mouth is put at the track's rest, :mod:`.mouth_rest`)
    rested = replace(track, neutral=track.neutral + np.float32(0.01))
    assert target_key("id-key", rested) != target_key("id-key", track)
    moved = cached_target(core, identity, "id-key", other_track, tmp_path, "cpu", "c1")
    assert core.calls == 2 and _same(moved, GeometricSwapCore.for_target(core, identity, other_track))
    cached_target(core, identity, "id-key-2", track, tmp_path, "cpu", "c1")
    assert core.calls == 3 and len(list(tmp_path.glob("target_*.safetensors"))) == 3
    # made by other code (an upgrade, an edit): computed again, and its record replaced rather than kept beside
    cached_target(core, identity, "id-key", track, tmp_path, "cpu", "c2")
    assert core.calls == 4 and len(list(tmp_path.glob("target_*.safetensors"))) == 3
    cached_target(core, identity, "id-key", track, tmp_path, "cpu", "c2")
    assert core.calls == 4


def test_an_unreadable_record_is_computed_again_and_a_plain_identity_is_not_recorded(tmp_path):
    core = _Counting(GeometricSwapConfig())
    identity, track = _identity(), _track(scale=100.0, appearance=_model(0.001))
    expect = GeometricSwapCore.for_target(core, identity, track)
    path = tmp_path / f"target_{target_key('k', track)[:32]}.safetensors"
    path.write_bytes(b"not a record")
    assert _same(cached_target(core, identity, "k", track, tmp_path, "cpu", "c1"), expect) and core.calls == 1
    assert _same(cached_target(core, identity, "k", track, tmp_path, "cpu", "c1"), expect) and core.calls == 1
    # no appearance model: for_target returns the identity itself, nothing to record
    bare = replace(track, appearance={})
    assert cached_target(core, identity, "k", bare, tmp_path / "bare", "cpu", "c1") is identity
    assert not (tmp_path / "bare").exists()


def test_a_record_naming_another_type_than_the_identity_declares_is_not_used(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    assert declared_dataclass(GeometricIdentity, "plate_light") is PlateLight  # from the code's annotation
    assert declared_dataclass(GeometricIdentity, "albedo") is None
    core = _Counting(GeometricSwapConfig(render_sigma=1.0))
    identity, track = _identity(), _track(scale=100.0, appearance=_model(0.01))
    cached_target(core, identity, "k", track, tmp_path, "cpu", "c1")
    path = next(tmp_path.glob("target_*.safetensors"))
    key = record_stamp(target_key("k", track), "c1")
    assert read_target(path, key, identity, "cpu") is not None
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {n: f.get_tensor(n) for n in f.keys()}
    fields = json.loads(meta["fields"])
    assert fields["plate_light"]["type"] == "vidswap.appearance.relight:PlateLight"
    fields["plate_light"]["type"] = "vidswap.sections:TuneParams"  # the file may not choose what is built
    save_file(tensors, str(path), metadata={"key": key, "fields": json.dumps(fields)})
    assert read_target(path, key, identity, "cpu") is None
    assert cached_target(core, identity, "k", track, tmp_path, "cpu", "c1").plate_light is not None and core.calls == 2
