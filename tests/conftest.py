"""Shared fixtures: real face media and models fetched by the project's own code into the cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(ROOT / "tools"))  # developer tools the tests use (build_canonical), not shipped

import fetch_media  # noqa: E402


@pytest.fixture(scope="session")
def media():
    """``media(name) -> Path``: a real media file from samples/media.yaml, fetched and sha256-checked."""
    manifest = fetch_media.load_manifest()

    def get(name: str) -> Path:
        return fetch_media.fetch(name, manifest)

    return get


@pytest.fixture(scope="session")
def model():
    """``model(name) -> Path``: a default model from configs/models.yaml, fetched into the cache if needed."""
    from vidswap.models.registry import fetch_model, load_manifest

    manifest = load_manifest()

    def get(name: str) -> Path:
        return fetch_model(manifest[name])

    return get


@pytest.fixture(scope="session")
def detector(model):
    """The default YuNet detector (input 320, score 0.6, min face 24 px), 2 threads."""
    from vidswap.faces.detect import YuNetDetector

    return YuNetDetector.from_path(model("yunet"), threads=2)


@pytest.fixture(scope="session")
def face_set(tmp_path_factory):
    """FaceDancer training: a small identity-folder set from the registry media (3 frames of each clip, two
    stills) and a shared preprocessing cache folder: (set root, cache folder)."""
    import face_set as fs

    root = tmp_path_factory.mktemp("faces")
    fs.build_face_set(root / "set", frames_per_clip=3, stills={"astronaut": "astronaut",
                                                              "grace_hopper": "grace_hopper"})
    return root / "set", root / "cache"


@pytest.fixture(scope="session")
def mesh(model):
    """MediaPipe face mesh + iris (478 points), 2 threads."""
    from vidswap.faces.landmarks import FaceMesh

    return FaceMesh.from_paths(model("face_mesh"), model("iris"), num_threads=2)


def pytest_sessionfinish(session, exitstatus):
    """Report the test process's SIGINT disposition at the end (a library that leaves it ignored makes child
    processes deaf to Ctrl-C; see test_cli_run.test_ctrl_c_leaves_nothing)."""
    import signal as _signal
    handler = _signal.getsignal(_signal.SIGINT)
    if handler is _signal.SIG_IGN:
        print("\nnote: SIGINT is ignored in the test process at the end of the session")
