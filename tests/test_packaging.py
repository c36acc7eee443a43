"""The package as users install it: a wheel built from the repository carries the presets, the model manifest and
the face data, and the installed package runs from a folder outside the repository (dependencies from this
environment; PYTHONPATH puts the installed copy ahead of the editable install)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vidswap.io import probe

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ("vidswap/configs/default.yaml", "vidswap/configs/preview.yaml", "vidswap/configs/final.yaml",
                "vidswap/configs/models.yaml", "vidswap/faces/data/canonical_face.npz")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The repository's sources built into a wheel (in a copy, so the checkout gets no build folder) and
    installed into a folder of its own; returns that folder."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "vidswap", src / "vidswap", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".",
                    "-w", str(wheels)], cwd=src, check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("vidswap-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = [n for n in PACKAGE_DATA if n not in names]
    assert not missing, f"the wheel lacks package data {missing}"
    assert not any(n.startswith(("tests/", "tools/", "samples/")) for n in names)
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return target


def run_installed(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_installed_wheel_lists_models_and_renders_a_preview(installed, media, tmp_path):
    where = run_installed(installed, tmp_path, "-c", "import vidswap; print(vidswap.__file__)")
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(installed), where.stdout

    models = run_installed(installed, tmp_path, "-m", "vidswap.cli", "models", "list")
    assert models.returncode == 0, models.stderr
    assert "yunet" in models.stdout and "face_mesh" in models.stdout

    out = tmp_path / "preview.mp4"
    run = run_installed(installed, tmp_path, "-m", "vidswap.cli", "run", str(media("single_face_clip")),
                        "--source", str(media("astronaut")), "--frames", "0-5", "--preset", "preview",
                        "-o", str(out), "-q")
    assert run.returncode == 0, run.stderr
    assert "swapped 6 frames" in run.stdout
    info = probe(out)
    assert info.frame_count == 6 and (info.width, info.height) == (320, 180)


TEST_ONLY = ("ffmpeg-python", "imageio-ffmpeg", "psutil")
IMPORT_NAMES = {"ffmpeg-python": "ffmpeg", "imageio-ffmpeg": "imageio_ffmpeg", "psutil": "psutil"}


def _requirement_names(block: str) -> set[str]:
    import re

    return {re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower()
            for line in block.splitlines() if line.strip() and not line.strip().startswith("#")}


def test_install_is_minimal_and_test_tools_are_an_extra():
    """ffmpeg-python, imageio-ffmpeg and psutil serve tests and benchmarks only: not install dependencies, but in
    the ``test`` extra (which `make test` installs), and no module of the package imports them."""
    import ast
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    install = _requirement_names(cfg["options"]["install_requires"])
    test_extra = _requirement_names(cfg["options.extras_require"]["test"])
    assert not install & set(TEST_ONLY), install & set(TEST_ONLY)
    assert set(TEST_ONLY) <= test_extra, set(TEST_ONLY) - test_extra
    assert '-e ".[test]"' in (ROOT / "Makefile").read_text()
    for path in (ROOT / "vidswap").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in IMPORT_NAMES.values(), f"{path} imports {name}"


#: Extras the package imports lazily for an optional feature (the import error names the extra).
OPTIONAL_EXTRAS = ("opencue", "gpu", "insightface")
#: Modules whose distribution records no top-level names, so importlib.metadata cannot map them.
MODULE_DISTRIBUTION = {"OpenEXR": "openexr"}
#: Benchmarks that compare against a library deliberately not a dependency (they say how to install it).
NOT_DEPENDENCIES = {"scenedetect": "benchmarks/bench_cuts.py"}


def _third_party_imports(folder: Path) -> dict[str, set[str]]:
    """{top-level module: files importing it} for the absolute imports under ``folder`` that are neither the
    standard library, vidswap, nor a module of this repository (tests' helpers, samples/fetch_media.py)."""
    import ast

    local = {p.stem for p in ROOT.glob("*/*.py")} | {"vidswap"}
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _unprovided(folder: Path, allowed: set[str]) -> list[str]:
    """``module (files)`` for each third-party import under ``folder`` no distribution in ``allowed`` provides."""
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    missing = []
    for module, files in sorted(_third_party_imports(folder).items()):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [])} or \
            {MODULE_DISTRIBUTION.get(module, f"?{module}")}
        if not names & {a.replace("_", "-") for a in allowed} and NOT_DEPENDENCIES.get(module) not in files:
            missing.append(f"{module} ({', '.join(sorted(files))})")
    return missing


def test_every_import_is_declared():
    """What the package imports is an install dependency (or an optional extra's); what tests and benchmarks
    import is an install dependency or in the ``test`` extra: a fresh ``pip install -e .[test]`` runs them all."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    install = _requirement_names(cfg["options"]["install_requires"])
    extras = {k: _requirement_names(v) for k, v in cfg["options.extras_require"].items()}
    optional = set().union(*(extras[e] for e in OPTIONAL_EXTRAS))
    missing = _unprovided(ROOT / "vidswap", install | optional)
    assert not missing, f"vidswap imports modules no install dependency provides: {missing}"
    for folder in ("tests", "benchmarks"):
        missing = _unprovided(ROOT / folder, install | extras["test"])
        assert not missing, f"{folder}/ imports modules neither install_requires nor [test] provides: {missing}"
