"""The package as users install it: a wheel built from the repository carries the presets, the model manifest and
the face data, and the installed package runs from a folder outside the repository (dependencies from this
environment; PYTHONPATH puts the installed copy ahead of the editable install)."""

from __future__ import annotations

import ast
import configparser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import packages_distributions
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


# --------------------------------------------------------------------------------------------------------------
# dependencies: the install carries what the package imports; what only tests and benchmarks use is the [test] extra

#: Only the tests and benchmarks use these (imageio-ffmpeg: an independent ffmpeg binary to make and check media);
#: ffmpeg-python and psutil were install dependencies that nothing imports.
TEST_ONLY = ("imageio-ffmpeg",)
DROPPED = ("ffmpeg-python", "psutil")
#: Extras the package imports lazily, for an optional feature (the import names the extra when it is missing).
OPTIONAL_EXTRAS = ("opencue", "gpu", "insightface")
#: Modules whose distribution records no top-level names (so importlib.metadata cannot map them).
MODULE_DISTRIBUTION = {"OpenEXR": "openexr"}
#: Benchmarks comparing against a library that is deliberately not a dependency (the benchmark says how to install it).
NOT_DEPENDENCIES = {"scenedetect": "benchmarks/bench_cuts.py"}


def requirement_names(text: str) -> set[str]:
    """The distribution names of a setup.cfg requirement list, normalised (lower case, ``-``)."""
    names = set()
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def setup_cfg() -> tuple[set[str], dict[str, set[str]]]:
    """(install_requires, {extra: requirements}) from setup.cfg."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = {k: requirement_names(v) for k, v in cfg["options.extras_require"].items()}
    return requirement_names(cfg["options"]["install_requires"]), extras


def third_party_imports(folder: Path) -> dict[str, set[str]]:
    """{top-level module: files importing it} for the absolute imports of every .py file under ``folder`` that are
    neither the standard library, vidswap, nor a module of this repository (tests' helpers, samples/fetch_media)."""
    local = {p.stem for p in ROOT.glob("*/*.py")} | {"vidswap"}
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distributions_of(module: str) -> set[str]:
    names = packages_distributions().get(module) or [MODULE_DISTRIBUTION.get(module, f"<unknown: {module}>")]
    return {n.lower().replace("_", "-") for n in names}


def unprovided(folder: Path, allowed: set[str]) -> list[str]:
    """``module (files)`` for each third-party import under ``folder`` that no distribution in ``allowed`` provides."""
    return sorted(f"{m} ({', '.join(sorted(files))})" for m, files in third_party_imports(folder).items()
                  if not distributions_of(m) & allowed and NOT_DEPENDENCIES.get(m) not in files)


def test_install_requires_only_what_the_package_imports():
    install, extras = setup_cfg()
    assert not set(TEST_ONLY + DROPPED) & install, "test-only packages are install dependencies again"
    assert set(TEST_ONLY) <= extras["test"], extras["test"]
    optional = set().union(*(extras[e] for e in OPTIONAL_EXTRAS))
    missing = unprovided(ROOT / "vidswap", install | optional)
    assert not missing, f"vidswap imports modules no install dependency provides: {missing}"
    test_only = extras["test"] - install - optional
    leaked = sorted(m for m in third_party_imports(ROOT / "vidswap") if distributions_of(m) & test_only)
    assert not leaked, f"vidswap imports test-only packages: {leaked}"


def test_tests_and_benchmarks_get_their_packages_from_the_test_extra():
    install, extras = setup_cfg()
    allowed = install | extras["test"]
    for folder in ("tests", "benchmarks"):
        missing = unprovided(ROOT / folder, allowed)
        assert not missing, f"{folder}/ imports modules neither install_requires nor [test] provides: {missing}"
    makefile = (ROOT / "Makefile").read_text()
    assert '-e ".[test]"' in makefile, "make test / make bench no longer install the [test] extra"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_wheel_metadata_puts_test_tools_in_the_test_extra(installed):
    (meta,) = installed.glob("vidswap-*.dist-info/METADATA")
    requires = [line.split(":", 1)[1].strip() for line in meta.read_text().splitlines()
                if line.startswith("Requires-Dist:")]
    for name in TEST_ONLY:
        lines = [r for r in requires if r.lower().startswith(name)]
        assert lines and all('extra == "test"' in r for r in lines), lines
    for name in DROPPED:
        assert not any(r.lower().startswith(name) for r in requires), requires
