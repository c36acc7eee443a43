"""The prepared-identity record's key follows the code that prepared it: a shot re-run after an upgrade or a local
edit of the swap code prepares its sources again (exact, on small synthetic records)."""

from __future__ import annotations

import torch

from vidswap.code_stamp import package_digest
from vidswap.identity_cache import cached_identity, identity_key
from vidswap.swap.geometric.core import GeometricIdentity


def _package(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_package_digest_changes_with_any_source_file_and_only_with_python_sources(tmp_path):
    files = {"a.py": "x = 1\n", "sub/b.py": "y = 2\n"}
    base = package_digest(_package(tmp_path / "one", files))
    assert package_digest(_package(tmp_path / "two", files)) == base  # same files elsewhere: same digest
    assert package_digest(_package(tmp_path / "edit", {**files, "sub/b.py": "y = 3\n"})) != base
    assert package_digest(_package(tmp_path / "added", {**files, "c.py": ""})) != base
    assert package_digest(_package(tmp_path / "moved", {"a.py": "x = 1\n", "b.py": "y = 2\n"})) != base
    assert package_digest(_package(tmp_path / "data", {**files, "notes.txt": "z"})) == base


class _Preparing:
    """A core whose ``prepare`` is counted (all :func:`cached_identity` calls of a core)."""

    def __init__(self):
        self.calls = 0

    def prepare(self, sources):
        self.calls += 1
        g = torch.Generator().manual_seed(self.calls)
        return GeometricIdentity(images=torch.rand(1, 3, 8, 8, generator=g),
                                 landmarks=torch.rand(1, 478, 3, generator=g),
                                 canonical=torch.rand(478, 3, generator=g))


def test_a_record_prepared_by_other_code_is_prepared_again_and_replaced(tmp_path):
    core = _Preparing()
    key = identity_key("geometric", {"s": 1}, "cpu", ["src"])
    first = cached_identity(core, key, [], tmp_path, "cpu", "code-1")
    again = cached_identity(core, key, [], tmp_path, "cpu", "code-1")
    assert core.calls == 1 and torch.equal(again.images, first.images)  # same code: read back

    edited = cached_identity(core, key, [], tmp_path, "cpu", "code-2")
    assert core.calls == 2 and not torch.equal(edited.images, first.images)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1  # the old record is replaced, not kept beside
    assert torch.equal(cached_identity(core, key, [], tmp_path, "cpu", "code-2").images, edited.images)
    assert core.calls == 2


def test_a_source_analysed_by_other_code_is_analysed_again_and_its_record_replaced(tmp_path, monkeypatch):
    import numpy as np

    import vidswap.source_cache as source_cache

    photo = tmp_path / "actor.jpg"
    photo.write_bytes(b"the photo's bytes")
    analysed = []

    def analyse(path, image, models):
        analysed.append(path)
        return source_cache.SourceRecord(np.full((478, 3), float(len(analysed)), np.float32),
                                         np.zeros(512, np.float32), 1, np.zeros((0, 21, 3), np.float32))

    monkeypatch.setattr(source_cache, "analyse_source", analyse)
    monkeypatch.setattr(source_cache, "source_face", lambda image, record: float(record.points[0, 0]))
    monkeypatch.setattr(source_cache, "photo_warnings", lambda path, record, face: [])

    def faces():
        return source_cache.cached_source_faces((str(photo),), [None], tmp_path / "sources", lambda: None, [])

    assert faces() == [1.0] and faces() == [1.0] and len(analysed) == 1  # recorded, then read back
    monkeypatch.setattr(source_cache, "package_digest", lambda: "edited")
    assert faces() == [2.0] and faces() == [2.0] and len(analysed) == 2
    assert len(list((tmp_path / "sources").glob("*.npz"))) == 1


def test_render_chunks_of_another_install_go_to_another_folder(tmp_path, monkeypatch):
    """A farm job resumed after an upgrade renders its chunks again instead of assembling old and new ones."""
    from types import SimpleNamespace

    import vidswap.jobs.passes as passes
    from vidswap.config import load_config

    out = tmp_path / "o.mp4"
    cfg = load_config(overrides={"input": "clip.mp4", "sources": ["actor.jpg"], "output": {"path": str(out)}})
    plan = SimpleNamespace(size=(640, 360), job_dir=tmp_path / "o.vidswap", out_path=out)
    here = passes.chunk_dir(plan, cfg, "analysis-key")
    assert passes.chunk_dir(plan, cfg, "analysis-key") == here and here.parent == plan.job_dir / "chunks"
    monkeypatch.setattr(passes, "package_digest", lambda: "another install")
    assert passes.chunk_dir(plan, cfg, "analysis-key") != here
