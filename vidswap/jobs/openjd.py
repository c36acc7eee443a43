"""Open Job Description (AWS Deadline Cloud, ``openjd`` CLI) job templates of a shot.

    template = export_openjd(Path("shot.yaml"), cfg, frame_numbers, template_dir=Path("bundle"))
    write_openjd(template, Path("bundle/template.yaml"))      # `openjd run`, `deadline bundle submit bundle`

Job parameters: ``ShotFile`` (``PATH``, ``objectType: FILE``, ``dataFlow: IN``, so Deadline Cloud job attachments
and path mapping see it; an exported template defaults it relative to the template's folder, as OpenJD requires),
``Vidswap`` (the executable), ``ChunkSize`` and, in the generic template only, ``Frames``.  OpenJD allows a PATH
default only inside the template's folder, so an exported template defaults ``ShotFile`` when the shot file is in
that folder (or below it), and otherwise needs ``-p ShotFile=/abs/shot.yaml`` at run or submission time.  An exported shot's
render range is written into the template from the shot's frames (the one place they come from), never a
parameter that could disagree with the shot file.  Every parameter has ``userInterface`` metadata for submitter
GUIs.  The Tune step is scheduled only when the shot tunes (:func:`vidswap.jobs.farm.shot_passes`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from vidswap.config import FarmConfig, JobConfig
from vidswap.errors import ConfigError
from vidswap.io.frames import format_frames
from vidswap.jobs.farm import (CANCEL_NOTIFY_S, GPU_PASSES, PASSES, chunk_frames, is_contiguous, job_name,
                               pass_args, resolve_farm, shot_passes, shot_path, write_text)

STEP_NAMES = {"analyze": "Analyze", "tune": "Tune", "render": "Render", "assemble": "Assemble"}
OPENJD_SPEC = "jobtemplate-2023-09"
OPENJD_MAX_TASKS = 1024  # OpenJD 2023-09 limit on the values of one explicit task-parameter range
SHOT_FILE_FILTERS = [{"label": "Shot YAML", "patterns": ["*.yaml", "*.yml"]}, {"label": "All files", "patterns": ["*"]}]


def openjd_template(farm: FarmConfig = FarmConfig(), *, name: str = "vidswap shot",
                    passes: Sequence[str] = PASSES, frames: str | None = None,
                    explicit_chunks: Sequence[str] | None = None, extra_args: Sequence[str] = (),
                    defaults: dict[str, Any] | None = None) -> dict:
    """An OpenJD 2023-09 job template for ``passes`` (not validated; see ``validate_openjd``).

    Render chunking: with ``explicit_chunks`` the Render step has a STRING task parameter ``Chunk`` whose values
    are those fileseq ranges; otherwise a ``CHUNK[INT]`` task parameter ``Frame`` (TASK_CHUNKING extension,
    CONTIGUOUS: every task gets ``A-B``) over ``frames`` (an OpenJD range expression written into the template)
    or, when ``frames`` is None (the generic template), over a ``Frames`` job parameter.
    ``defaults`` gives job-parameter defaults by name.
    """
    defaults = dict(defaults or {})
    shot = "{{Param.ShotFile}}"

    def param(pdef: dict) -> dict:
        if pdef["name"] in defaults and defaults[pdef["name"]] is not None:
            pdef["default"] = defaults[pdef["name"]]
        return pdef

    params = [
        param({"name": "ShotFile", "type": "PATH", "objectType": "FILE", "dataFlow": "IN",
               "description": "The shot job YAML, on storage every worker sees (or attached to the job).",
               "userInterface": {"control": "CHOOSE_INPUT_FILE", "label": "Shot file", "groupLabel": "Shot",
                                 "fileFilters": SHOT_FILE_FILTERS}}),
        param({"name": "Vidswap", "type": "STRING", "default": farm.executable, "minLength": 1,
               "description": "The vidswap executable on the workers: a name on PATH or an absolute path.",
               "userInterface": {"control": "LINE_EDIT", "label": "vidswap executable", "groupLabel": "Workers"}}),
    ]
    if explicit_chunks is None:
        if frames is None:
            params.append(param({"name": "Frames", "type": "STRING", "minLength": 1,
                                 "description": "The shot's frames (the shot file's frames, as an OpenJD range "
                                                "expression such as 1001-1100).",
                                 "userInterface": {"control": "LINE_EDIT", "label": "Frames", "groupLabel": "Shot"}}))
        params.append(param({"name": "ChunkSize", "type": "INT", "default": farm.chunk_size, "minValue": 1,
                             "description": "Frames per render task (the farm balances chunk sizes).",
                             "userInterface": {"control": "SPIN_BOX", "label": "Frames per task",
                                               "groupLabel": "Workers"}}))
        if farm.target_chunk_seconds:
            params.append(param({"name": "TargetChunkSeconds", "type": "INT", "minValue": 0,
                                 "default": farm.target_chunk_seconds,
                                 "description": "Adaptive chunking: aim for render tasks this long (0 = off).",
                                 "userInterface": {"control": "SPIN_BOX", "label": "Target task seconds",
                                                   "groupLabel": "Workers"}}))

    def action(pass_name: str, task_frames: str | None = None) -> dict:
        act: dict[str, Any] = {"command": "{{Param.Vidswap}}",
                               "args": pass_args(pass_name, shot, task_frames, extra_args),
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
    for pass_name in passes:
        step: dict[str, Any] = {"name": STEP_NAMES[pass_name]}
        if pass_name == "render":
            if explicit_chunks is None:
                chunks: dict[str, Any] = {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"}
                if farm.target_chunk_seconds:
                    chunks["targetRuntimeSeconds"] = "{{Param.TargetChunkSeconds}}"
                task = {"name": "Frame", "type": "CHUNK[INT]", "range": frames or "{{Param.Frames}}",
                        "chunks": chunks}
                task_frames = "{{Task.Param.Frame}}"
            else:
                task = {"name": "Chunk", "type": "STRING", "range": list(explicit_chunks)}
                task_frames = "{{Task.Param.Chunk}}"
            step["parameterSpace"] = {"taskParameterDefinitions": [task]}
            step["script"] = action(pass_name, task_frames)
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
        "description": f"vidswap face swap of one shot: {' -> '.join(passes)} (frame chunks).",
        "parameterDefinitions": params,
        "jobEnvironments": [{"name": "VidswapLogs", "description": "Unbuffered output so task logs stream live.",
                             "variables": {"PYTHONUNBUFFERED": "1"}}],
        "steps": steps,
    })
    return template


def export_openjd(shot_yaml: Path, cfg: JobConfig, frame_numbers: Sequence[int], chunk_size: int | None = None, *,
                  farm: FarmConfig | None = None, extra_args: Sequence[str] = (),
                  template_dir: Path | None = None) -> dict:
    """A validated OpenJD job template for this shot.

    ``frame_numbers``: the shot's frames (after ``frames``/``every``), written into the Render step.
    ``template_dir``: the folder the template will be written to (default: the current folder); ShotFile gets a
    default (relative, as OpenJD requires) only when the shot file lies inside it.
    Chunking (``farm.chunking``): ``task_chunking`` = a CHUNK[INT] task parameter over the shot's range
    (TASK_CHUNKING extension, lets Deadline Cloud adapt chunk sizes); ``explicit`` = the chunks listed as fileseq
    ranges (plain 2023-09, exact chunk boundaries, works for stepped frame sets); ``auto`` = task chunking when
    the frames are one contiguous run, explicit otherwise.  ``extra_args`` are appended to every pass command
    (e.g. ``["--preset", "final"]`` when the preset came from the command line rather than the shot file).
    ConfigError when the farm would not accept the template.
    """
    farm = resolve_farm(cfg, chunk_size, farm)
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
    template_dir = Path(template_dir) if template_dir is not None else Path.cwd()
    defaults: dict[str, Any] = {"ShotFile": shot_file_default(shot_path(shot_yaml), template_dir),
                                "Vidswap": farm.executable}
    if mode == "task_chunking":
        defaults["ChunkSize"] = farm.chunk_size
    template = openjd_template(
        farm, name=job_name(shot_yaml, farm), passes=shot_passes(cfg), extra_args=extra_args, defaults=defaults,
        frames=_openjd_range(frames) if mode == "task_chunking" else None,
        explicit_chunks=[format_frames(chunk) for chunk in chunks] if mode == "explicit" else None)
    given = {} if defaults["ShotFile"] else {"ShotFile": shot_path(shot_yaml)}  # what a submitter passes
    validate_openjd(template, given, template_dir=template_dir)
    return template


def shot_file_default(path: str, template_dir: Path) -> str | None:
    """The ShotFile default: ``path`` relative to the template's folder (POSIX separators) when it lies inside it;
    None otherwise (OpenJD forbids PATH defaults outside the template's folder)."""
    folder = Path(os.path.abspath(template_dir))
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return None


def _openjd_range(frames: list[int]) -> str:
    """A contiguous run as an OpenJD range expression."""
    return str(frames[0]) if len(frames) == 1 else f"{frames[0]}-{frames[-1]}"


def validate_openjd(template: dict, parameters: dict[str, str] | None = None,
                    template_dir: Path | None = None) -> Any:
    """Decode ``template`` with openjd-model and instantiate a job from it (parameter defaults + ``parameters``;
    relative PATH defaults are joined to ``template_dir``, default the current folder).

    Returns the ``openjd.model`` Job; ConfigError with openjd's message when the template or a value is invalid.
    """
    from openjd.model import (DecodeValidationError, create_job, decode_job_template,
                              preprocess_job_parameters)

    folder = Path(template_dir) if template_dir is not None else Path.cwd()
    try:
        job_template = decode_job_template(template=template, supported_extensions=template.get("extensions", []))
        values = preprocess_job_parameters(job_template=job_template,
                                           job_parameter_values={k: str(v) for k, v in (parameters or {}).items()},
                                           job_template_dir=folder.absolute(), current_working_dir=Path.cwd())
        return create_job(job_template=job_template, job_parameter_values=values)
    except (DecodeValidationError, ValueError, KeyError) as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"the OpenJD job template is not valid: {message}") from None


def openjd_render_chunks(template: dict, parameters: dict[str, str] | None = None,
                         template_dir: Path | None = None) -> list[str]:
    """The ``--frames`` value of every Render task of the job ``template`` makes, in task order."""
    from openjd.model import StepParameterSpaceIterator

    job = validate_openjd(template, parameters, template_dir)
    step = next(s for s in job.steps if s.name == STEP_NAMES["render"])
    (param,) = step.parameterSpace.taskParameterDefinitions  # one task parameter: Frame or Chunk
    return [str(task[param].value) for task in StepParameterSpaceIterator(space=step.parameterSpace)]


def write_openjd(template: dict, path: Path, comment: str | None = None) -> Path:
    """Write ``template`` as YAML (atomically), ``comment`` lines first as ``#`` comments.

    For Deadline Cloud write it as ``<bundle>/template.yaml`` and run ``deadline bundle submit <bundle>``.
    """
    comment = comment or "Open Job Description job template written by vidswap (vidswap.jobs.openjd)."
    header = "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines())
    return write_text(Path(path), header + yaml.safe_dump(template, sort_keys=False, width=120))
