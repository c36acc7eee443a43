"""Render-farm export of a shot job: Open Job Description (AWS Deadline Cloud), Deadline 10 and OpenCue.

A farm job runs one shot as four passes, each a ``vidswap`` command on a worker; every path (shot file, media,
job folder, output) must be on storage all workers see::

    analyze   once        vidswap analyze  --config SHOT              tracks file into the job folder
    tune      once        vidswap tune     --config SHOT              per-clip generator tuning (may be a no-op)
    render    per chunk   vidswap render   --config SHOT --frames A-B one frame chunk into the job folder
    assemble  once        vidswap assemble --config SHOT              chunks in frame order + audio + timecode

Each pass waits for the one before.  Render chunks are windows ``A-B`` (fileseq syntax) of the shot's frames:
``render`` renders the shot's frames that fall inside the window, so a chunk never depends on how the farm
cut the range, and ``assemble`` finds the chunk outputs instead of assuming chunk boundaries (OpenJD
balances chunk sizes and Deadline Cloud may adapt them at run time).

    template = export_openjd(Path("shot.yaml"), cfg, frame_numbers)     # dict, validated with openjd-model
    write_openjd(template, Path("bundle/template.yaml"))                # `deadline bundle submit bundle`
    write_deadline(export_deadline(Path("shot.yaml"), cfg, frame_numbers), Path("deadline"))
    spec = opencue_spec(export_opencue(Path("shot.yaml"), cfg, frame_numbers))  # OpenCue XML job spec

Farm settings come from ``cfg.farm`` (:class:`vidswap.config.FarmConfig`); an explicit ``farm=`` argument wins.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vidswap.config import FarmConfig, JobConfig
from vidswap.errors import ConfigError, UsageError
from vidswap.io.atomic import atomic_file, ensure_writable_dir
from vidswap.io.frames import format_frames


PASSES = ("analyze", "tune", "render", "assemble")
GPU_PASSES = ("analyze", "tune", "render")  # assemble is stream copy + concatenation: CPU only
STEP_NAMES = {"analyze": "Analyze", "tune": "Tune", "render": "Render", "assemble": "Assemble"}
OPENJD_SPEC = "jobtemplate-2023-09"
OPENJD_MAX_TASKS = 1024  # OpenJD 2023-09 limit on the values of one explicit task-parameter range
CANCEL_NOTIFY_S = 30  # SIGTERM, then this long to clean temporaries up, then SIGKILL


# --------------------------------------------------------------------------------------------------------------
# frames and commands shared by every farm


def chunk_frames(frame_numbers: Sequence[int], chunk_size: int) -> list[list[int]]:
    """The shot's frames (sorted, unique) in consecutive groups of ``chunk_size`` (the last may be shorter)."""
    frames = sorted(set(int(n) for n in frame_numbers))
    if not frames:
        raise UsageError("the shot has no frames to render; check `frames` in the shot file and the input")
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be >= 1, got {chunk_size}")
    return [frames[i:i + chunk_size] for i in range(0, len(frames), chunk_size)]


def is_contiguous(frame_numbers: Sequence[int]) -> bool:
    frames = sorted(set(int(n) for n in frame_numbers))
    return bool(frames) and frames[-1] - frames[0] + 1 == len(frames)


def pass_args(pass_name: str, shot: str, frames: str | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    """Arguments of one pass after the executable: ``render --config SHOT --frames A-B --quiet [extra]``."""
    if pass_name not in PASSES:
        raise ValueError(f"unknown pass {pass_name!r}; one of {', '.join(PASSES)}")
    args = [pass_name, "--config", shot]
    if frames is not None:
        args += ["--frames", frames]
    return args + ["--quiet", *extra_args]


def _job_name(shot_yaml: Path, farm: FarmConfig) -> str:
    return farm.name or f"vidswap {Path(shot_yaml).stem}"


def _shot_path(shot_yaml: Path) -> str:
    """The shot file as workers see it: absolute (workers start in their own session folders)."""
    return os.path.abspath(str(shot_yaml))


def _resolve(cfg: JobConfig, chunk_size: int | None, farm: FarmConfig | None) -> FarmConfig:
    farm = farm if farm is not None else cfg.farm
    if chunk_size is not None:
        farm = dataclasses.replace(farm, chunk_size=chunk_size)
    return farm


# --------------------------------------------------------------------------------------------------------------
# Open Job Description (AWS Deadline Cloud, openjd-cli)


def openjd_template(farm: FarmConfig = FarmConfig(), *, name: str = "vidswap shot",
                    explicit_chunks: Sequence[str] | None = None, extra_args: Sequence[str] = (),
                    defaults: dict[str, Any] | None = None) -> dict:
    """An OpenJD 2023-09 job template for the four passes (not validated; see ``validate_openjd``).

    Job parameters: ``Vidswap`` (executable), ``ShotFile`` and, with task chunking, ``Frames`` (an OpenJD range
    expression like ``1001-1100``) and ``ChunkSize``.  With task chunking the Render step has one
    ``CHUNK[INT]`` task parameter ``Frame`` (TASK_CHUNKING extension, CONTIGUOUS: every task gets ``A-B``);
    with ``explicit_chunks`` it has a STRING task parameter ``Chunk`` whose values are those fileseq ranges.
    ``defaults`` gives job-parameter defaults by name.
    """
    defaults = dict(defaults or {})
    shot = "{{Param.ShotFile}}"

    def param(pdef: dict) -> dict:
        if pdef["name"] in defaults and defaults[pdef["name"]] is not None:
            pdef["default"] = defaults[pdef["name"]]
        return pdef

    params = [
        # STRING, not PATH: OpenJD PATH defaults must be relative, and the paths inside the shot file are used
        # as written anyway (shared storage with the same mount points on every worker).
        param({"name": "ShotFile", "type": "STRING", "minLength": 1,
               "description": "The shot job YAML, absolute path on storage every worker sees."}),
        param({"name": "Vidswap", "type": "STRING", "default": farm.executable, "minLength": 1,
               "description": "The vidswap executable on the workers: a name on PATH or a full path."}),
    ]
    if explicit_chunks is None:
        params += [
            param({"name": "Frames", "type": "STRING", "minLength": 1,
                   "description": "Frames to render, an OpenJD range expression such as 1001-1100."}),
            param({"name": "ChunkSize", "type": "INT", "default": farm.chunk_size, "minValue": 1,
                   "description": "Frames per render task (the farm balances chunk sizes)."}),
        ]
        if farm.target_chunk_seconds:
            params.append(param({"name": "TargetChunkSeconds", "type": "INT", "minValue": 0,
                                 "default": farm.target_chunk_seconds,
                                 "description": "Adaptive chunking: aim for render tasks this long (0 = off)."}))

    def action(pass_name: str, frames: str | None = None) -> dict:
        act: dict[str, Any] = {"command": "{{Param.Vidswap}}", "args": pass_args(pass_name, shot, frames, extra_args),
                               "cancelation": {"mode": "NOTIFY_THEN_TERMINATE",
                                               "notifyPeriodInSeconds": CANCEL_NOTIFY_S}}
        if farm.timeout_s:
            act["timeout"] = farm.timeout_s
        return {"actions": {"onRun": act}}

    def host_requirements(pass_name: str) -> dict | None:
        req: dict[str, list] = {}
        if farm.gpu and pass_name in GPU_PASSES:
            req["amounts"] = [{"name": "amount.worker.gpu", "min": 1}]
            if farm.gpu_memory_mib:
                req["amounts"].append({"name": "amount.worker.gpu.memory", "min": farm.gpu_memory_mib})
        if farm.os_family:
            req["attributes"] = [{"name": "attr.worker.os.family", "anyOf": [farm.os_family]}]
        return req or None

    steps = []
    previous = None
    for pass_name in PASSES:
        step: dict[str, Any] = {"name": STEP_NAMES[pass_name]}
        if pass_name == "render":
            if explicit_chunks is None:
                chunks: dict[str, Any] = {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"}
                if farm.target_chunk_seconds:
                    chunks["targetRuntimeSeconds"] = "{{Param.TargetChunkSeconds}}"
                task = {"name": "Frame", "type": "CHUNK[INT]", "range": "{{Param.Frames}}", "chunks": chunks}
                frames = "{{Task.Param.Frame}}"
            else:
                task = {"name": "Chunk", "type": "STRING", "range": list(explicit_chunks)}
                frames = "{{Task.Param.Chunk}}"
            step["parameterSpace"] = {"taskParameterDefinitions": [task]}
            step["script"] = action(pass_name, frames)
        else:
            step["script"] = action(pass_name)
        requirements = host_requirements(pass_name)
        if requirements:
            step["hostRequirements"] = requirements
        if previous:
            step["dependencies"] = [{"dependsOn": previous}]
        steps.append(step)
        previous = step["name"]

    template: dict[str, Any] = {"specificationVersion": OPENJD_SPEC}
    if explicit_chunks is None:
        template["extensions"] = ["TASK_CHUNKING"]
    template.update({
        "name": name,
        "description": "vidswap face swap of one shot: analyze -> tune -> render (frame chunks) -> assemble.",
        "parameterDefinitions": params,
        "jobEnvironments": [{"name": "VidswapLogs", "description": "Unbuffered output so task logs stream live.",
                             "variables": {"PYTHONUNBUFFERED": "1"}}],
        "steps": steps,
    })
    return template


def export_openjd(shot_yaml: Path, cfg: JobConfig, frame_numbers: Sequence[int], chunk_size: int | None = None, *,
                  farm: FarmConfig | None = None, extra_args: Sequence[str] = ()) -> dict:
    """A validated OpenJD job template for this shot, every job parameter defaulted to this shot's values.

    ``frame_numbers``: the frames the job renders (the shot's frame set after ``frames``/``every``).
    Chunking (``farm.chunking``): ``task_chunking`` = a CHUNK[INT] task parameter over ``Frames`` (TASK_CHUNKING
    extension, lets Deadline Cloud adapt chunk sizes); ``explicit`` = the chunks listed as fileseq ranges
    (plain 2023-09, exact chunk boundaries, works for stepped frame sets); ``auto`` = task chunking when the
    frames are one contiguous run, explicit otherwise.  ``extra_args`` are appended to every pass command
    (e.g. ``["--preset", "final"]`` when the preset came from the command line rather than the shot file).
    ConfigError when the farm would not accept the template.
    """
    farm = _resolve(cfg, chunk_size, farm)
    chunks = chunk_frames(frame_numbers, farm.chunk_size)
    frames = [n for chunk in chunks for n in chunk]
    mode = farm.chunking
    if mode == "auto":
        mode = "task_chunking" if is_contiguous(frames) else "explicit"
    if mode == "task_chunking" and not is_contiguous(frames):
        raise ConfigError(f"farm.chunking is task_chunking but the frames {format_frames(frames)} have gaps; "
                          "use chunking: explicit (or auto) for stepped frame ranges")
    if mode == "explicit" and len(chunks) > OPENJD_MAX_TASKS:
        raise ConfigError(f"{len(chunks)} render chunks exceed the OpenJD limit of {OPENJD_MAX_TASKS} tasks; "
                          "raise farm.chunk_size or use task chunking")
    defaults: dict[str, Any] = {"ShotFile": _shot_path(shot_yaml), "Vidswap": farm.executable}
    if mode == "task_chunking":
        defaults.update(Frames=_openjd_range(frames), ChunkSize=farm.chunk_size)
    template = openjd_template(
        farm, name=_job_name(shot_yaml, farm), extra_args=extra_args, defaults=defaults,
        explicit_chunks=[format_frames(chunk) for chunk in chunks] if mode == "explicit" else None)
    validate_openjd(template)
    return template


def _openjd_range(frames: list[int]) -> str:
    """A contiguous run as an OpenJD range expression."""
    return str(frames[0]) if len(frames) == 1 else f"{frames[0]}-{frames[-1]}"


def validate_openjd(template: dict, parameters: dict[str, str] | None = None) -> Any:
    """Decode ``template`` with openjd-model and instantiate a job from it (parameter defaults + ``parameters``).

    Returns the ``openjd.model`` Job; ConfigError with openjd's message when the template or a value is invalid.
    """
    from openjd.model import (DecodeValidationError, create_job, decode_job_template,
                              preprocess_job_parameters)

    try:
        job_template = decode_job_template(template=template, supported_extensions=template.get("extensions", []))
        values = preprocess_job_parameters(job_template=job_template,
                                           job_parameter_values={k: str(v) for k, v in (parameters or {}).items()},
                                           job_template_dir=Path.cwd(), current_working_dir=Path.cwd())
        return create_job(job_template=job_template, job_parameter_values=values)
    except (DecodeValidationError, ValueError, KeyError) as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"the OpenJD job template is not valid: {message}") from None


def openjd_render_chunks(template: dict, parameters: dict[str, str] | None = None) -> list[str]:
    """The ``--frames`` value of every Render task of the job ``template`` makes, in task order."""
    from openjd.model import StepParameterSpaceIterator

    job = validate_openjd(template, parameters)
    step = next(s for s in job.steps if s.name == STEP_NAMES["render"])
    (param,) = step.parameterSpace.taskParameterDefinitions  # one task parameter: Frame or Chunk
    return [str(task[param].value) for task in StepParameterSpaceIterator(space=step.parameterSpace)]


def write_openjd(template: dict, path: Path, comment: str | None = None) -> Path:
    """Write ``template`` as YAML (atomically), ``comment`` lines first as ``#`` comments.

    For Deadline Cloud write it as ``<bundle>/template.yaml`` and run ``deadline bundle submit <bundle>``.
    """
    comment = comment or "Open Job Description job template written by vidswap (vidswap.jobs.farm)."
    header = "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines())
    return _write_text(Path(path), header + yaml.safe_dump(template, sort_keys=False, width=120))


def _write_text(path: Path, text: str) -> Path:
    ensure_writable_dir(path.parent, path)
    with atomic_file(path) as temp:
        temp.write_text(text)
    return path


# --------------------------------------------------------------------------------------------------------------
# Deadline 10 (classic): CommandLine plugin jobs


@dataclass(frozen=True)
class DeadlineJob:
    """One Deadline job: the job-info and plugin-info files' text (``key=value`` lines)."""

    pass_name: str
    job_info: str
    plugin_info: str


def _kv(pairs: dict[str, Any]) -> str:
    lines = []
    for key, value in pairs.items():
        if value is None:
            continue
        text = str(value)
        if "\n" in text or "\r" in text:
            raise ConfigError(f"Deadline setting {key} contains a line break: {text!r}")
        lines.append(f"{key}={text}")
    return "\n".join(lines) + "\n"


def _windows_quote(arg: str) -> str:
    """Quote one argument the way Deadline's process launch splits arguments (double quotes)."""
    if arg and not re.search(r'[\s"]', arg):
        return arg
    return '"' + arg.replace('"', '\\"') + '"'


def export_deadline(shot_yaml: Path, cfg: JobConfig, frame_numbers: Sequence[int], chunk_size: int | None = None,
                    *, farm: FarmConfig | None = None, extra_args: Sequence[str] = ()) -> list[DeadlineJob]:
    """Four CommandLine-plugin jobs, one per pass, in submission order (each depends on the one before).

    The render job lists the shot's frames (``Frames=``, fileseq syntax, which Deadline reads) with
    ``ChunkSize=`` and runs ``vidswap render --config SHOT --frames <STARTFRAME>-<ENDFRAME>``; the other jobs
    are one task each.  ``JobDependencies=`` needs the job ids Deadline assigns, so ``submit_deadline`` fills
    it in while submitting the written files in order.
    """
    farm = _resolve(cfg, chunk_size, farm)
    chunks = chunk_frames(frame_numbers, farm.chunk_size)
    frames = [n for chunk in chunks for n in chunk]
    shot = _shot_path(shot_yaml)
    batch = _job_name(shot_yaml, farm)
    jobs = []
    for pass_name in PASSES:
        render = pass_name == "render"
        args = pass_args(pass_name, shot, "<STARTFRAME>-<ENDFRAME>" if render else None, extra_args)
        job_info: dict[str, Any] = {
            "Plugin": "CommandLine",
            "Name": f"{batch} - {pass_name}",
            "BatchName": batch,
            "Comment": f"vidswap {pass_name} pass of {shot}",
            "Frames": format_frames(frames) if render else str(frames[0]),
            "ChunkSize": farm.chunk_size if render else 1,
            "Priority": farm.priority,
            "Pool": farm.pool,
            "Group": farm.group,
            "MachineLimit": None if render else 1,
            "TaskTimeoutMinutes": -(-farm.timeout_s // 60) if farm.timeout_s else None,
            "EnvironmentKeyValue0": "PYTHONUNBUFFERED=1",
        }
        output = getattr(getattr(cfg, "output", None), "path", None)
        if pass_name == "assemble" and output:
            job_info["OutputDirectory0"] = os.path.dirname(os.path.abspath(output))
            job_info["OutputFilename0"] = os.path.basename(output)
        plugin_info = {
            "Executable": farm.executable,
            "Arguments": " ".join(a if a == "<STARTFRAME>-<ENDFRAME>" else _windows_quote(a) for a in args),
            "SingleFramesOnly": "False",
        }
        jobs.append(DeadlineJob(pass_name, _kv(job_info), _kv(plugin_info)))
    return jobs


def write_deadline(jobs: Sequence[DeadlineJob], folder: Path) -> list[Path]:
    """Write ``NN_<pass>.job_info.job`` and ``NN_<pass>.plugin_info.job`` for each job; returns the paths in
    submission order (job info, plugin info, job info, ...)."""
    folder = Path(folder)
    paths = []
    for i, job in enumerate(jobs, start=1):
        stem = f"{i:02d}_{job.pass_name}"
        paths.append(_write_text(folder / f"{stem}.job_info.job", job.job_info))
        paths.append(_write_text(folder / f"{stem}.plugin_info.job", job.plugin_info))
    return paths


def parse_deadline_info(text: str) -> dict[str, str]:
    """``key=value`` lines (job or plugin info) as a dict; blank lines and ``#``/``;`` comments ignored."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if "=" not in stripped:
            raise ValueError(f"line {number} is not key=value: {line!r}")
        key, value = stripped.split("=", 1)
        out[key.strip()] = value
    return out


def submit_deadline(folder: Path, deadlinecommand: str = "deadlinecommand",
                    run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[str]:
    """Submit the jobs ``write_deadline`` wrote to ``folder`` in order, each depending on the previous one.

    Runs ``deadlinecommand JOB_INFO PLUGIN_INFO`` per job, reads the ``JobID=`` line it prints and writes
    ``JobDependencies=<previous id>`` into the next job-info file before submitting it (so the folder records
    what was submitted).  Returns the job ids; UsageError when a submission fails.
    """
    folder = Path(folder)
    job_files = sorted(folder.glob("[0-9][0-9]_*.job_info.job"))
    if not job_files:
        raise UsageError(f"no Deadline job files (NN_<pass>.job_info.job) in {folder}; export the job first")
    ids: list[str] = []
    for job_file in job_files:
        plugin_file = job_file.with_name(job_file.name.replace(".job_info.job", ".plugin_info.job"))
        if not plugin_file.is_file():
            raise UsageError(f"{plugin_file} is missing; export the job again")
        lines = [ln for ln in job_file.read_text().splitlines() if not ln.startswith("JobDependencies=")]
        if ids:
            lines.append(f"JobDependencies={ids[-1]}")
        job_file.write_text("\n".join(lines) + "\n")
        try:
            result = run([deadlinecommand, str(job_file), str(plugin_file)], capture_output=True, text=True)
        except FileNotFoundError:
            raise UsageError(f"{deadlinecommand} was not found; run on a Deadline client or give its full path") \
                from None
        found = re.search(r"^JobID=(\S+)", result.stdout or "", re.MULTILINE)
        if result.returncode != 0 or not found:
            tail = " ".join(((result.stdout or "") + (result.stderr or "")).split())[-300:]
            raise UsageError(f"Deadline did not accept {job_file.name} (exit {result.returncode}): {tail}")
        ids.append(found.group(1))
    return ids


# --------------------------------------------------------------------------------------------------------------
# OpenCue (pyoutline)


def _opencue_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "vidswap"


def export_opencue(shot_yaml: Path, cfg: JobConfig, frame_numbers: Sequence[int], chunk_size: int | None = None,
                   *, farm: FarmConfig | None = None, extra_args: Sequence[str] = ()) -> Any:
    """A pyoutline ``Outline`` with one layer per pass: analyze, tune, assemble are single-frame Shell layers,
    render is a Shell layer over the shot's frames in chunks of ``chunk_size`` running
    ``vidswap render --config SHOT --frames #FRAME_START#-#FRAME_END#``; each layer depends on all frames
    of the one before.  GPU layers ask for one GPU (``gpus=1``).

    Launch with ``outline.cuerun.launch(ol, use_pycuerun=False)`` or submit ``opencue_spec(ol)``.
    """
    import outline
    import outline.modules.shell as shell

    farm = _resolve(cfg, chunk_size, farm)
    chunks = chunk_frames(frame_numbers, farm.chunk_size)
    frames = [n for chunk in chunks for n in chunk]
    shot = _shot_path(shot_yaml)
    frame_range = format_frames(frames)
    name = _opencue_name(_job_name(shot_yaml, farm))
    kwargs = {"show": farm.show} if farm.show else {}
    ol = outline.Outline(name, shot=_opencue_name(Path(shot_yaml).stem), frame_range=frame_range, **kwargs)
    previous = None
    for pass_name in PASSES:
        render = pass_name == "render"
        command = shlex.join([farm.executable, *pass_args(pass_name, shot, "#FRAME_START#-#FRAME_END#" if render
                                                           else None, extra_args)])
        layer_args: dict[str, Any] = {"command": command}
        if farm.gpu and pass_name in GPU_PASSES:
            layer_args["gpus"] = 1
            if farm.gpu_memory_mib:
                layer_args["gpu_memory"] = f"{-(-farm.gpu_memory_mib // 1024)}g"
        if farm.timeout_s:
            layer_args["timeout"] = -(-farm.timeout_s // 60)  # minutes
        if render:
            layer = shell.Shell(pass_name, range=frame_range, chunk=farm.chunk_size, **layer_args)
        else:
            layer = shell.ShellCommand(pass_name, **layer_args)
        layer.set_env("PYTHONUNBUFFERED", "1")
        ol.add_layer(layer)
        if previous is not None:
            layer.depend_all(previous)
        previous = layer
    ol.set_arg("priority", farm.priority)
    return ol


def opencue_spec(ol: Any) -> str:
    """The OpenCue XML job specification of ``ol`` (commands as given, no pycuerun wrapper).

    Needs no Cuebot and writes nothing: submit it with ``opencue.api.launchSpec(spec)``.
    """
    import outline.backend.cue as cue
    import outline.cuerun

    flags: dict[str, Any] = {"nomail": True}
    if ol.get_arg("priority") is not None:
        flags["priority"] = ol.get_arg("priority")
    return cue.serialize_simple(outline.cuerun.OutlineLauncher(ol, **flags))


def write_opencue(spec: str, path: Path) -> Path:
    """Write an OpenCue XML job spec (atomically)."""
    return _write_text(Path(path), spec)
