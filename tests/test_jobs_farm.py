"""vidswap.jobs (farm, openjd, deadline, opencue): OpenJD templates (validated by openjd-model, `openjd check`, and run with `openjd run`),
Deadline 10 job files, OpenCue outlines.

The OpenJD run tests use a tiny fake `vidswap` that records its arguments, so they check the template's
commands, step order and chunk expansion exactly while the real passes land.  One test,
``test_openjd_runs_the_real_vidswap_passes``, runs the real executable on a real clip and fails (with a clear
message, it does not skip) until `vidswap analyze/tune/render/assemble` exist.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import fileseq
import numpy as np
import pytest
import yaml

from vidswap.config import FarmConfig, JobConfig, load_config
from vidswap.errors import ConfigError, UsageError
from vidswap.io.frames import format_frames
from vidswap.jobs.deadline import export_deadline, parse_deadline_info, submit_deadline, write_deadline
from vidswap.jobs.farm import chunk_frames, shot_passes
from vidswap.jobs.opencue import INSTALL_HINT, cue_identity, export_opencue, opencue_spec
from vidswap.jobs.openjd import (export_openjd, openjd_render_chunks, openjd_template, validate_openjd,
                                write_openjd)

ROOT = Path(__file__).resolve().parents[1]
GENERIC_TEMPLATE = ROOT / "pipelines" / "openjd" / "vidswap_job.yaml"
BIN = Path(sys.executable).parent
SHOT = Path("/studio/shows/demo/shot 010/vidswap.yaml")  # a space in the path on purpose
TUNED = JobConfig(tune=JobConfig().tune.__class__(enabled=True))  # a shot that tunes: the Tune pass is scheduled


def _tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f"{name} is not installed; pip install openjd-cli"
    return str(path)


def _openjd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([_tool("openjd"), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, f"openjd {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _fake_vidswap(tmp_path: Path, fail_pass: str | None = None) -> tuple[Path, Path]:
    """A stand-in executable that appends its argv (JSON) to a log; exits 5 on ``fail_pass``."""
    log = tmp_path / "calls.jsonl"
    exe = tmp_path / "fake_vidswap"
    exe.write_text(f"#!{sys.executable}\n"
                   "import json, sys\n"
                   f"with open({str(log)!r}, 'a') as f:\n"
                   "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
                   f"sys.exit(5 if sys.argv[1] == {fail_pass!r} else 0)\n")
    exe.chmod(0o755)
    return exe, log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _chunks(template: dict, **kwargs) -> list[str]:
    """The Render tasks' frame windows of an exported template, the shot file given as a job parameter."""
    return openjd_render_chunks(template, {"ShotFile": str(SHOT)}, **kwargs)


def _frames_of(chunk: str) -> list[int]:
    return list(fileseq.FrameSet(chunk))


# --------------------------------------------------------------------------------------------------------------
# OpenJD: structure and validation


def test_openjd_template_structure_and_openjd_check(tmp_path):
    bundle = tmp_path / "bundle"
    template = export_openjd(SHOT, TUNED, range(1001, 1101), 25, template_dir=bundle)
    assert template["specificationVersion"] == "jobtemplate-2023-09" and template["extensions"] == ["TASK_CHUNKING"]
    steps = {s["name"]: s for s in template["steps"]}
    assert list(steps) == ["Analyze", "Tune", "Render", "Assemble"]
    assert [s.get("dependencies") for s in template["steps"]] == [
        None, [{"dependsOn": "Analyze"}], [{"dependsOn": "Tune"}], [{"dependsOn": "Render"}]]
    gpu = {"amounts": [{"name": "amount.worker.gpu", "min": 1}]}
    assert [s.get("hostRequirements") for s in template["steps"]] == [gpu, gpu, gpu, None]
    (task,) = steps["Render"]["parameterSpace"]["taskParameterDefinitions"]
    assert task["type"] == "CHUNK[INT]" and task["chunks"]["rangeConstraint"] == "CONTIGUOUS"
    assert task["range"] == "1001-1100"  # from the shot's frames, not a parameter that could disagree with them
    defaults = {p["name"]: p.get("default") for p in template["parameterDefinitions"]}
    assert defaults == {"ShotFile": None, "Vidswap": "vidswap", "ChunkSize": 25}  # outside the template's folder
    shot_file = next(p for p in template["parameterDefinitions"] if p["name"] == "ShotFile")
    assert (shot_file["type"], shot_file["objectType"], shot_file["dataFlow"]) == ("PATH", "FILE", "IN")
    assert all(p["userInterface"]["label"] for p in template["parameterDefinitions"])
    assert shot_file["userInterface"]["control"] == "CHOOSE_INPUT_FILE"
    run = steps["Render"]["script"]["actions"]["onRun"]
    assert run["command"] == "{{Param.Vidswap}}"
    assert run["args"] == ["render", "--config", "{{Param.ShotFile}}", "--frames", "{{Task.Param.Frame}}", "--quiet"]
    chunks = openjd_render_chunks(template, {"ShotFile": str(SHOT)}, template_dir=bundle)
    assert chunks == ["1001-1025", "1026-1050", "1051-1075", "1076-1100"]

    path = write_openjd(template, bundle / "template.yaml")
    assert yaml.safe_load(path.read_text()) == template
    assert "passes validation" in _openjd("check", str(path)).stdout


def test_openjd_host_requirements_are_configurable():
    cpu = export_openjd(SHOT, JobConfig(), range(10), 5, farm=FarmConfig(gpu=False))
    assert all("hostRequirements" not in s for s in cpu["steps"])
    big = export_openjd(SHOT, JobConfig(), range(10), 5,
                        farm=FarmConfig(gpu_memory_mib=16384, os_family="linux", timeout_s=3600,
                                         executable="/opt/vidswap/bin/vidswap", target_chunk_seconds=600))
    render = next(s for s in big["steps"] if s["name"] == "Render")
    assert render["hostRequirements"] == {
        "amounts": [{"name": "amount.worker.gpu", "min": 1}, {"name": "amount.worker.gpu.memory", "min": 16384}],
        "attributes": [{"name": "attr.worker.os.family", "anyOf": ["linux"]}]}
    assemble = next(s for s in big["steps"] if s["name"] == "Assemble")
    assert assemble["hostRequirements"] == {"attributes": [{"name": "attr.worker.os.family", "anyOf": ["linux"]}]}
    assert render["script"]["actions"]["onRun"]["timeout"] == 3600
    assert render["parameterSpace"]["taskParameterDefinitions"][0]["chunks"]["targetRuntimeSeconds"] == \
        "{{Param.TargetChunkSeconds}}"
    assert {p["name"]: p.get("default") for p in big["parameterDefinitions"]}["Vidswap"] == "/opt/vidswap/bin/vidswap"


def test_farm_settings_come_from_the_config_section():
    cfg = load_config(overrides={"farm": {"chunk_size": 7, "gpu": False, "executable": "vs", "max_retries": 1}})
    assert cfg.farm == FarmConfig(chunk_size=7, gpu=False, executable="vs", max_retries=1)
    assert JobConfig().farm == FarmConfig()
    template = export_openjd(SHOT, cfg, range(1, 15))  # chunk size from cfg.farm
    assert _chunks(template) == ["1-7", "8-14"]
    assert all("hostRequirements" not in s for s in template["steps"])


def test_generic_template_file_is_current_and_valid():
    """pipelines/openjd/vidswap_job.yaml is what openjd_template() makes (regenerate it if this fails)."""
    on_disk = yaml.safe_load(GENERIC_TEMPLATE.read_text())
    assert on_disk == openjd_template(FarmConfig())
    assert [s["name"] for s in on_disk["steps"]] == ["Analyze", "Tune", "Render", "Assemble"]  # tune: a no-op when off
    assert "passes validation" in _openjd("check", str(GENERIC_TEMPLATE)).stdout
    with pytest.raises(ConfigError, match="ShotFile"):
        validate_openjd(on_disk)  # the shot file has no default: it must be given
    chunks = openjd_render_chunks(on_disk, {"ShotFile": "/s/shot.yaml", "Frames": "1001-1120", "ChunkSize": "50"})
    assert chunks == ["1001-1040", "1041-1080", "1081-1120"]  # OpenJD balances: 3 chunks of 40, not 50/50/20


def test_make_template_script_for_cpu_fleets(tmp_path):
    out = tmp_path / "cpu_job.yaml"
    made = subprocess.run([sys.executable, str(ROOT / "pipelines" / "openjd" / "make_template.py"), "--cpu",
                           "--chunk-size", "20", "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    template = yaml.safe_load(out.read_text())
    assert template == openjd_template(FarmConfig(gpu=False, chunk_size=20))
    assert all("hostRequirements" not in s for s in template["steps"])
    assert "passes validation" in _openjd("check", str(out)).stdout
    launcher = subprocess.run([sys.executable, str(ROOT / "pipelines" / "opencue" / "launch_spec.py"), "--help"],
                              capture_output=True, text=True, timeout=60)
    assert launcher.returncode == 0 and "spec" in launcher.stdout


def test_chunking_modes_and_errors():
    stepped = list(range(0, 100, 2))
    template = export_openjd(SHOT, JobConfig(), stepped, 10)  # auto: gaps -> explicit fileseq chunks
    assert "extensions" not in template
    assert _chunks(template) == ["0-18x2", "20-38x2", "40-58x2", "60-78x2", "80-98x2"]
    explicit = export_openjd(SHOT, JobConfig(), range(1001, 1011), 4, farm=FarmConfig(chunking="explicit"))
    assert _chunks(explicit) == ["1001-1004", "1005-1008", "1009-1010"]
    with pytest.raises(ConfigError, match="gaps"):
        export_openjd(SHOT, JobConfig(), stepped, 10, farm=FarmConfig(chunking="task_chunking"))
    with pytest.raises(ConfigError, match="1024"):
        export_openjd(SHOT, JobConfig(), range(3000), 2, farm=FarmConfig(chunking="explicit"))
    with pytest.raises(ConfigError, match="chunk_size"):
        export_openjd(SHOT, JobConfig(), range(10), 0)
    with pytest.raises(UsageError, match="no frames"):
        export_openjd(SHOT, JobConfig(), [], 10)
    assert chunk_frames([5, 3, 4, 3, 9], 2) == [[3, 4], [5, 9]] and format_frames([1, 2, 3, 7]) == "1-3,7"


# --------------------------------------------------------------------------------------------------------------
# OpenJD: run the template's steps with `openjd run`


def test_openjd_run_each_step_with_a_fake_vidswap(tmp_path):
    template = export_openjd(SHOT, TUNED, range(1001, 1011), 4, template_dir=tmp_path)
    job = write_openjd(template, tmp_path / "job.yaml")
    exe, log = _fake_vidswap(tmp_path)
    shot = f"ShotFile={SHOT}"
    for step in ("Analyze", "Tune", "Render", "Assemble"):
        _openjd("run", str(job), "--step", step, "-p", f"Vidswap={exe}", "-p", shot, "--no-run-dependencies")
        assert [c[0] for c in _calls(log)][-1] == step.lower()
    calls = _calls(log)
    base = ["--config", str(SHOT)]
    assert calls[0] == ["analyze", *base, "--quiet"] and calls[1] == ["tune", *base, "--quiet"]
    assert calls[-1] == ["assemble", *base, "--quiet"]
    renders = calls[2:-1]
    assert all(c[:4] == ["render", *base, "--frames"] and c[5:] == ["--quiet"] for c in renders)
    chunks = [c[4] for c in renders]
    assert chunks == _chunks(template, template_dir=tmp_path) == ["1001-1004", "1005-1007", "1008-1010"]
    frames = [n for chunk in chunks for n in _frames_of(chunk)]
    assert frames == list(range(1001, 1011))  # every frame once, in order, no overlap


def test_openjd_run_dependencies_keeps_order_and_stops_on_failure(tmp_path):
    shot = tmp_path / "sh010" / "vidswap.yaml"  # inside the template's folder: ShotFile gets a (relative) default
    stepped = export_openjd(shot, JobConfig(), range(0, 30, 3), 4, template_dir=tmp_path)  # tuning off: no Tune
    assert {p["name"]: p.get("default") for p in stepped["parameterDefinitions"]}["ShotFile"] == "sh010/vidswap.yaml"
    job = write_openjd(stepped, tmp_path / "job.yaml")
    exe, log = _fake_vidswap(tmp_path)
    _openjd("run", str(job), "--step", "Assemble", "--run-dependencies", "-p", f"Vidswap={exe}")
    assert {c[2] for c in _calls(log)} == {str(shot)}  # the relative default, joined to the template's folder
    passes = [c[0] for c in _calls(log)]
    assert passes == ["analyze", "render", "render", "render", "assemble"]
    chunks = [c[4] for c in _calls(log) if c[0] == "render"]
    assert chunks == ["0-9x3", "12-21x3", "24,27"]
    assert [n for c in chunks for n in _frames_of(c)] == list(range(0, 30, 3))

    (tmp_path / "fail").mkdir()
    failing, failed_log = _fake_vidswap(tmp_path / "fail", fail_pass="render")
    result = _openjd("run", str(job), "--step", "Assemble", "--run-dependencies", "-p", f"Vidswap={failing}",
                     check=False)
    assert result.returncode != 0
    assert [c[0] for c in _calls(failed_log)] == ["analyze", "render"]  # no assemble after exit 5


def test_openjd_runs_the_real_vidswap_passes(media, tmp_path):
    """THE REAL PASSES: export -> `openjd run` Analyze, Tune, Render (2 chunks), Assemble with the installed
    vidswap on 20 frames of a real clip, swap core = passthrough.  Fails (does not skip) until all four
    `vidswap analyze/tune/render/assemble` commands exist."""
    vidswap = BIN / "vidswap" if (BIN / "vidswap").exists() else shutil.which("vidswap")
    assert vidswap, "the vidswap console script is not installed (pip install -e .)"
    for pass_name in ("analyze", "tune", "render", "assemble"):
        probe = subprocess.run([str(vidswap), pass_name, "--help"], capture_output=True, text=True, timeout=120)
        if probe.returncode != 0:
            pytest.fail(f"`vidswap {pass_name} --help` exited {probe.returncode}: the farm passes are not all in "
                        f"the CLI yet; this test goes green when vidswap analyze/tune/render/assemble exist. "
                        f"{probe.stderr.strip()[-200:]}")
    from vidswap.io import probe as probe_media, read_frames

    clip = media("single_face_clip")
    shot = tmp_path / "shot.yaml"
    out = tmp_path / "out" / "swapped.mp4"
    shot.write_text(yaml.safe_dump({"input": str(clip), "sources": [str(media("astronaut"))], "frames": "0-19",
                                    "output": {"path": str(out)}, "swap": {"core": "passthrough"}}))
    cfg = load_config(shot=shot)
    info = probe_media(clip)
    frames = list(fileseq.FrameSet(cfg.frames))
    template = export_openjd(shot, cfg, frames, 10, farm=FarmConfig(gpu=False, executable=str(vidswap)),
                             template_dir=tmp_path)
    assert openjd_render_chunks(template, template_dir=tmp_path) == ["0-9", "10-19"]
    job = write_openjd(template, tmp_path / "job.yaml")
    for step in ("Analyze", "Render", "Assemble"):
        _openjd("run", str(job), "--step", step, "--no-run-dependencies")
    result = probe_media(out)
    assert (result.width, result.height, result.frame_count) == (info.width, info.height, 20)
    assert len(result.audio) == len(info.audio) >= 1
    with read_frames(info, range(0, 20)) as a, read_frames(result) as b:
        for x, y in zip(a, b, strict=True):  # every frame, the chunk seam at 9/10 included
            assert x.number == y.number
            assert np.abs(x.image.astype(np.float32) - y.image.astype(np.float32)).mean() < 4.0


# --------------------------------------------------------------------------------------------------------------
# Deadline 10


def test_deadline_job_files(tmp_path):
    cfg = load_config(overrides={"output": {"path": "/studio/out/shot010_swap.mov"}, "tune": {"enabled": True}})
    jobs = export_deadline(SHOT, cfg, range(1001, 1101), 25,
                           farm=FarmConfig(pool="gpu", group="cuda", priority=70, timeout_s=5400))
    assert [j.pass_name for j in jobs] == ["analyze", "tune", "render", "assemble"]
    paths = write_deadline(jobs, tmp_path / "deadline")
    assert [p.name for p in paths] == [
        "01_analyze.job_info.job", "01_analyze.plugin_info.job", "02_tune.job_info.job", "02_tune.plugin_info.job",
        "03_render.job_info.job", "03_render.plugin_info.job", "04_assemble.job_info.job",
        "04_assemble.plugin_info.job"]
    infos = [parse_deadline_info(p.read_text()) for p in paths[0::2]]
    plugins = [parse_deadline_info(p.read_text()) for p in paths[1::2]]
    assert all(i["Plugin"] == "CommandLine" and i["BatchName"] == "vidswap vidswap" for i in infos)
    assert all(i["Pool"] == "gpu" and i["Group"] == "cuda" and i["Priority"] == "70" for i in infos)
    assert all(i["TaskTimeoutMinutes"] == "90" for i in infos)
    # failure detection as the README's retry advice: a task fails after max_retries + 1 errors (default 2 + 1)
    assert all((i["OverrideTaskFailureDetection"], i["FailureDetectionTaskErrors"]) == ("True", "3") for i in infos)
    render = infos[2]
    assert (render["Frames"], render["ChunkSize"]) == ("1001-1100", "25") and "MachineLimit" not in render
    assert all((i["Frames"], i["ChunkSize"], i["MachineLimit"]) == ("1001", "1", "1") for i in infos[::3])
    assert infos[3]["OutputDirectory0"] == "/studio/out" and infos[3]["OutputFilename0"] == "shot010_swap.mov"
    assert all(p["Executable"] == "vidswap" for p in plugins)
    args = plugins[2]["Arguments"]
    assert args == f'render --config "{SHOT}" --frames <STARTFRAME>-<ENDFRAME> --quiet'
    assert shlex.split(args.replace("<STARTFRAME>-<ENDFRAME>", "1001-1025")) == [
        "render", "--config", str(SHOT), "--frames", "1001-1025", "--quiet"]
    assert [shlex.split(p["Arguments"])[0] for p in plugins] == ["analyze", "tune", "render", "assemble"]
    assert "<STARTFRAME>" not in plugins[0]["Arguments"] + plugins[1]["Arguments"] + plugins[3]["Arguments"]
    assert all("JobDependencies" not in i for i in infos)  # ids only exist at submission
    stepped = export_deadline(SHOT, cfg, range(1001, 1100, 2), 10)[2]
    assert parse_deadline_info(stepped.job_info)["Frames"] == "1001-1099x2"


def test_submit_deadline_chains_job_dependencies(tmp_path):
    folder = tmp_path / "deadline"
    write_deadline(export_deadline(SHOT, TUNED, range(1, 51), 10), folder)
    record = tmp_path / "submitted.jsonl"
    fake = tmp_path / "deadlinecommand"
    fake.write_text(f"#!{sys.executable}\n"
                    "import json, sys, pathlib\n"
                    f"log = pathlib.Path({str(record)!r})\n"
                    "n = len(log.read_text().splitlines()) if log.exists() else 0\n"
                    "info = pathlib.Path(sys.argv[1]).read_text()\n"
                    "log.open('a').write(json.dumps([sys.argv[1:], info]) + '\\n')\n"
                    "print('Submitting to Repository: /mnt/repo')\nprint('Result=Success')\n"
                    "print(f'JobID=64f0c0ffee{n:014d}')\n")
    fake.chmod(0o755)
    ids = submit_deadline(folder, deadlinecommand=str(fake))
    assert ids == [f"64f0c0ffee{n:014d}" for n in range(4)]
    submitted = [json.loads(line) for line in record.read_text().splitlines()]
    assert [Path(args[0]).name for args, _ in submitted] == [
        "01_analyze.job_info.job", "02_tune.job_info.job", "03_render.job_info.job", "04_assemble.job_info.job"]
    assert [Path(args[1]).name.split(".")[0] for args, _ in submitted] == ["01_analyze", "02_tune", "03_render",
                                                                           "04_assemble"]
    deps = [parse_deadline_info(info).get("JobDependencies") for _, info in submitted]
    assert deps == [None, ids[0], ids[1], ids[2]]
    ids_again = submit_deadline(folder, deadlinecommand=str(fake))  # resubmitting replaces, never appends
    assert parse_deadline_info((folder / "02_tune.job_info.job").read_text())["JobDependencies"] == ids_again[0]

    broken = tmp_path / "broken"
    broken.write_text(f"#!{sys.executable}\nimport sys\nprint('Result=Failure\\nError: no such plugin')\n"
                      "sys.exit(1)\n")
    broken.chmod(0o755)
    with pytest.raises(UsageError, match="did not accept 01_analyze.job_info.job .*no such plugin"):
        submit_deadline(folder, deadlinecommand=str(broken))
    with pytest.raises(UsageError, match="not found"):
        submit_deadline(folder, deadlinecommand=str(tmp_path / "nope"))

    script = subprocess.run([sys.executable, str(ROOT / "pipelines" / "deadline" / "submit_deadline.py"),
                             str(folder), "--deadlinecommand", str(fake)], capture_output=True, text=True, timeout=60)
    assert script.returncode == 0, script.stderr
    assert [line.split()[1] for line in script.stdout.splitlines()] == [
        "01_analyze.job_info.job", "02_tune.job_info.job", "03_render.job_info.job", "04_assemble.job_info.job"]


# --------------------------------------------------------------------------------------------------------------
# OpenCue


def test_opencue_outline_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # pyoutline sessions would go here: nothing may appear
    for name in ("SHOW", "SHOT", "FACILITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "artist")
    ol = export_opencue(SHOT, TUNED, range(1001, 1101), 25, farm=FarmConfig(show="demo", priority=80))
    spec = opencue_spec(ol)
    root = ET.fromstring(spec.split("?>", 1)[1].split(">", 1)[1])  # past the XML declaration and DOCTYPE
    assert root.findtext("show") == "demo" and root.findtext("shot") == "vidswap"
    job = root.find("job")
    assert job.get("name") == "vidswap_vidswap" and job.findtext("priority") == "80"
    layers = job.find("layers").findall("layer")
    assert [layer.get("name") for layer in layers] == ["analyze", "tune", "render", "assemble"]
    cmds = [shlex.split(layer.findtext("cmd")) for layer in layers]
    assert cmds[2] == ["vidswap", "render", "--config", str(SHOT), "--frames", "#FRAME_START#-#FRAME_END#",
                       "--quiet"]
    assert [c[1] for c in cmds] == ["analyze", "tune", "render", "assemble"]
    assert [(layer.findtext("range"), layer.findtext("chunk")) for layer in layers] == [
        ("1001", "1"), ("1001", "1"), ("1001-1100", "25"), ("1001", "1")]
    assert [layer.findtext("gpus") for layer in layers] == ["1", "1", "1", None]
    deps = [(d.findtext("deplayer"), d.findtext("onlayer"), d.get("type")) for d in root.find("depends")]
    assert deps == [("tune", "analyze", "LAYER_ON_LAYER"), ("render", "tune", "LAYER_ON_LAYER"),
                    ("assemble", "render", "LAYER_ON_LAYER")]
    assert not (tmp_path / "home").exists()
    cpu = opencue_spec(export_opencue(SHOT, JobConfig(), range(1, 11), 5, farm=FarmConfig(gpu=False, show="demo")))
    assert "<gpus>" not in cpu and "tune" not in cpu  # tuning off: no tune layer


def test_opencue_identity_comes_from_config_or_environment_never_the_exporting_machine(monkeypatch):
    monkeypatch.setenv("SHOW", "bigshow")
    monkeypatch.setenv("USER", "artist")
    monkeypatch.setenv("FACILITY", "lax")
    monkeypatch.delenv("SHOT", raising=False)
    spec = opencue_spec(export_opencue(SHOT, JobConfig(), range(1, 5), 2, farm=FarmConfig(gpu=False)))
    root = ET.fromstring(spec.split("?>", 1)[1].split(">", 1)[1])
    assert [e.tag for e in root][:4] == ["facility", "show", "shot", "user"]  # the DTD's order
    assert (root.findtext("facility"), root.findtext("show"), root.findtext("user")) == ("lax", "bigshow", "artist")
    assert root.find("uid") is None and root.find("email") is None  # no uid of the exporting process
    assert root.find("job").findtext("maxretries") == "2"  # farm.max_retries
    monkeypatch.setenv("SHOT", "sh010")
    ident = cue_identity(SHOT, FarmConfig(show="demo", user="td", facility=None), environ={"SHOT": "sh010"})
    assert (ident.show, ident.shot, ident.user, ident.facility) == ("demo", "sh010", "td", None)
    monkeypatch.delenv("FACILITY")
    bare = opencue_spec(export_opencue(SHOT, JobConfig(), range(1, 5), 2, farm=FarmConfig(show="demo")))
    assert "<facility>" not in bare and "testing" not in bare and "<uid>" not in bare  # no pyoutline defaults
    with pytest.raises(ConfigError, match=r"farm.show .*\$SHOW"):
        cue_identity(SHOT, FarmConfig(), environ={"USER": "artist"})
    with pytest.raises(ConfigError, match=r"farm.user .*\$USER"):
        cue_identity(SHOT, FarmConfig(show="demo"), environ={})


def test_opencue_export_without_pyoutline_exits_2_with_the_install_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from vidswap.cli import main

    shot = tmp_path / "shot.yaml"
    shot.write_text(yaml.safe_dump({"input": str(tmp_path / "missing.mp4")}))
    monkeypatch.setitem(sys.modules, "outline", None)  # import outline -> ImportError, as when not installed
    with pytest.raises(UsageError, match=re.escape(INSTALL_HINT)):
        export_opencue(SHOT, JobConfig(), range(1, 5), 2, farm=FarmConfig(show="demo", user="td"))
    monkeypatch.setattr("vidswap.shot.plan_shot", lambda cfg: type("Plan", (), {"numbers": [1, 2, 3]})())
    result = CliRunner().invoke(main, ["farm", "export", str(shot), "--format", "opencue", "-o",
                                       str(tmp_path / "cue.xml")])
    assert result.exit_code == 2 and INSTALL_HINT in result.output and not (tmp_path / "cue.xml").exists()


@pytest.mark.parametrize("executable", ["/opt/vid swap/bin/vidswap", r"C:\Program Files\vidswap\vidswap.exe"])
def test_absolute_executable_is_used_verbatim_by_every_farm(executable, monkeypatch):
    monkeypatch.setenv("USER", "artist")
    farm = FarmConfig(executable=executable, show="demo")
    plugin = parse_deadline_info(export_deadline(SHOT, JobConfig(), range(1, 5), 2, farm=farm)[1].plugin_info)
    assert plugin["Executable"] == executable  # Deadline takes the path as it is: no quotes
    template = export_openjd(SHOT, JobConfig(), range(1, 5), 2, farm=farm)
    assert {p["name"]: p.get("default") for p in template["parameterDefinitions"]}["Vidswap"] == executable
    cmds = [shlex.split(c.text) for c in ET.fromstring(opencue_spec(export_opencue(
        SHOT, JobConfig(), range(1, 5), 2, farm=farm)).split("?>", 1)[1].split(">", 1)[1]).iter("cmd")]
    assert {c[0] for c in cmds} == {executable}  # OpenCue runs the command through a shell: quoted
    with pytest.raises(ConfigError, match="relative path"):
        FarmConfig(executable="bin/vidswap")


def test_no_tune_pass_when_tuning_is_off():
    assert shot_passes(JobConfig()) == ("analyze", "render", "assemble")
    assert shot_passes(TUNED) == ("analyze", "tune", "render", "assemble")
    passthrough = load_config(overrides={"tune": {"enabled": True}, "swap": {"core": "passthrough"}})
    assert shot_passes(passthrough) == ("analyze", "render", "assemble")
    template = export_openjd(SHOT, JobConfig(), range(1, 5), 2)
    assert [s["name"] for s in template["steps"]] == ["Analyze", "Render", "Assemble"]
    assert template["steps"][1]["dependencies"] == [{"dependsOn": "Analyze"}]
    assert [j.pass_name for j in export_deadline(SHOT, JobConfig(), range(1, 5), 2)] == [
        "analyze", "render", "assemble"]
