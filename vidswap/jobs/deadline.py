"""Deadline 10 (classic) jobs of a shot: one CommandLine-plugin job per pass, chained by job dependencies.

    write_deadline(export_deadline(Path("shot.yaml"), cfg, frame_numbers), Path("deadline"))
    submit_deadline(Path("deadline"))          # deadlinecommand per job, each depending on the one before

Failure detection follows the retry advice (README, "Exit codes"): a task that fails ``farm.max_retries + 1``
times fails (``OverrideTaskFailureDetection``), so a permanent error (exit 2, 3, 4) stops the job after a few
tries instead of the repository's default error limit.  ``Executable=`` is ``farm.executable`` as written: a name
the worker finds on PATH or an absolute path (quoting is not needed there; arguments are quoted for Deadline).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidswap.config import FarmConfig, JobConfig
from vidswap.errors import ConfigError, UsageError
from vidswap.io.frames import format_frames
from vidswap.jobs.farm import chunk_frames, job_name, pass_args, resolve_farm, shot_passes, shot_path, write_text



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
    """One CommandLine-plugin job per pass (no tune job when the shot does not tune), in submission order (each
    depends on the one before).

    The render job lists the shot's frames (``Frames=``, fileseq syntax, which Deadline reads) with
    ``ChunkSize=`` and runs ``vidswap render --config SHOT --frames <STARTFRAME>-<ENDFRAME>``; the other jobs
    are one task each.  ``JobDependencies=`` needs the job ids Deadline assigns, so ``submit_deadline`` fills
    it in while submitting the written files in order.
    """
    farm = resolve_farm(cfg, chunk_size, farm)
    chunks = chunk_frames(frame_numbers, farm.chunk_size)
    frames = [n for chunk in chunks for n in chunk]
    shot = shot_path(shot_yaml)
    batch = job_name(shot_yaml, farm)
    jobs = []
    for pass_name in shot_passes(cfg):
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
            "OverrideTaskFailureDetection": "True",
            "FailureDetectionTaskErrors": farm.max_retries + 1,
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
        paths.append(write_text(folder / f"{stem}.job_info.job", job.job_info))
        paths.append(write_text(folder / f"{stem}.plugin_info.job", job.plugin_info))
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
