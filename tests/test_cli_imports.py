"""The CLI's fixed costs (issue 19): what a command imports before it works, and what is parsed once per process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from vidswap.faces.topology import load_topology
from vidswap.models import registry
from vidswap.models.registry import load_manifest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "kornia", "scipy", "cv2", "onnxruntime", "av", "vidswap.pipeline", "vidswap.config")

CHILD = """
import json, sys
from vidswap.cli import main
for args in {runs!r}:
    try:
        main(args, standalone_mode=False)
    except SystemExit:
        pass
print("MODULES " + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def test_help_and_models_list_import_no_torch_models_or_media_libraries():
    runs = [["--help"], ["run", "--help"], ["render", "--help"], ["farm", "export", "--help"], ["models", "list"]]
    proc = subprocess.run([sys.executable, "-c", CHILD.format(runs=runs, heavy=HEAVY)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("MODULES ")][-1]
    assert json.loads(line[len("MODULES "):]) == []
    assert "Usage: " in proc.stdout and "mesh_topology" in proc.stdout  # the commands did run


def test_manifest_is_parsed_once_per_file_version(tmp_path, monkeypatch):
    path = tmp_path / "models.yaml"
    entry = yaml.safe_load(registry.DEFAULT_MANIFEST.read_text())["models"]["yunet"]
    path.write_text(yaml.safe_dump({"models": {"a": entry}}))
    parsed = []
    original = registry._parsed_manifest.__wrapped__

    def counting(*args):
        parsed.append(args)
        return original(*args)

    monkeypatch.setattr(registry, "_parsed_manifest", registry.functools.lru_cache(maxsize=8)(counting))
    first, second = load_manifest(path), load_manifest(path)
    assert first == second and first is not second and len(parsed) == 1  # one parse, a dict per caller
    first.pop("a")
    assert list(load_manifest(path)) == ["a"]  # a caller's change does not reach the next one
    path.write_text(yaml.safe_dump({"models": {"a": entry, "b": dict(entry, file="b.onnx")}}))
    assert sorted(load_manifest(path)) == ["a", "b"] and len(parsed) == 2  # the file changed: parsed again


def test_topology_is_parsed_once_per_file(tmp_path):
    shipped = load_topology()
    assert load_topology() is shipped
    copy = tmp_path / "topology.py"
    copy.write_bytes(Path(registry.model_path("mesh_topology")).read_bytes())
    other = load_topology(copy)
    assert other is not shipped and load_topology(copy) is other
    assert (other.triangles == shipped.triangles).all() and other.regions.keys() == shipped.regions.keys()


CONFIG_CHILD = """
import json, sys
from vidswap.cli_options import load_job
from vidswap.swap.registry import core_config_type, core_names
opts = dict(input="plate.mp4", sources=(), output=None, frames=None, preview=False, scale=None, every=None,
            shot=None, preset=None, device=None, batch_size=None, codec=None, crf=None, target_mode=None,
            target_index=None, target_face=None, mapping=(), passthrough=True)
cfg = load_job(**opts)
print("CORE " + cfg.swap.core + " " + type(cfg.swap.section()).__name__ + " " + ",".join(core_names()))
print("MODULES " + json.dumps(sorted(m for m in {heavy!r} + ("vidswap.swap.base", "vidswap.swap.geometric")
                                     if m in sys.modules)))
core_config_type("geometric")  # a core's own section: its module (and torch) imported only now
print("AFTER " + json.dumps(sorted(m for m in ("torch", "vidswap.swap.geometric") if m in sys.modules)))
"""


def test_passthrough_job_config_imports_no_torch_and_cores_load_when_asked():
    proc = subprocess.run([sys.executable, "-c", CONFIG_CHILD.format(heavy=HEAVY[:-2])], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = dict(x.split(" ", 1) for x in proc.stdout.splitlines() if " " in x)
    core, section, names = lines["CORE"].split(" ")
    assert (core, section) == ("passthrough", "PassthroughConfig")
    assert names.split(",") == sorted(["e4s", "e4s-pti", "facedancer", "geometric", "ghost", "hyperswap", "idatt",
                                       "inswapper", "megafs", "mfim", "passthrough", "simswap"])
    assert json.loads(lines["MODULES"]) == []
    assert json.loads(lines["AFTER"]) == ["torch", "vidswap.swap.geometric"]


RUN_CHILD = """
import json, sys
from vidswap.cli import main
main({args!r}, standalone_mode=False)
print("MODULES " + json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def test_passthrough_run_imports_no_torch_kornia_onnxruntime_scipy_or_opencv(media, tmp_path):
    """A real ``vidswap run --passthrough`` (6 frames of the sample clip) in a fresh process: its frames go from the
    decoder to the encoder with no torch, kornia, onnxruntime, scipy or OpenCV imported (issue 19's pass-through
    cost), and the clip it writes has the frames."""
    from vidswap.io import probe

    out = tmp_path / "pt.mp4"
    args = ["run", str(media("pexels_clip")), "-o", str(out), "--frames", "0-5", "-q", "--passthrough"]
    heavy = HEAVY[:5] + ("vidswap.render", "vidswap.analysis_cache", "vidswap.faces.analyze", "vidswap.pipeline")
    proc = subprocess.run([sys.executable, "-c", RUN_CHILD.format(args=args, heavy=heavy)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("MODULES ")][-1]
    assert json.loads(line[len("MODULES "):]) == ["vidswap.pipeline"]  # the run went through the pipeline, alone
    assert probe(out).frame_count == 6
