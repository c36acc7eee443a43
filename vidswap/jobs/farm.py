"""What every render-farm export of a shot shares: the passes, the frame chunks, the pass commands.

A farm job runs one shot as up to four passes, each a ``vidswap`` command on a worker; every path (shot file,
media, job folder, output) must be on storage all workers see::

    analyze   once        vidswap analyze  --config SHOT              tracks file into the job folder
    tune      once        vidswap tune     --config SHOT              per-clip generator tuning (only when on)
    render    per chunk   vidswap render   --config SHOT --frames A-B one frame chunk into the job folder
    assemble  once        vidswap assemble --config SHOT              chunks in frame order + audio + timecode

Each pass waits for the one before.  Render chunks are windows ``A-B`` (fileseq syntax) of the shot's frames:
``render`` renders the shot's frames that fall inside the window, so a chunk never depends on how the farm
cut the range, and ``assemble`` finds the chunk outputs instead of assuming chunk boundaries.

The shot's frames come from one place: the shot file, planned by :func:`vidswap.shot.plan_shot`; every
exporter takes them as ``frame_numbers`` and writes them into the job (the OpenJD render range, Deadline's
``Frames=``, OpenCue's layer range).  The exporters: :mod:`vidswap.jobs.openjd` (Open Job Description, AWS
Deadline Cloud), :mod:`vidswap.jobs.deadline` (Deadline 10), :mod:`vidswap.jobs.opencue` (OpenCue).
Farm settings come from ``cfg.farm`` (:class:`vidswap.config.FarmConfig`); an explicit ``farm=`` argument wins.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from vidswap.config import FarmConfig, JobConfig
from vidswap.errors import ConfigError, UsageError
from vidswap.io.atomic import atomic_file, ensure_writable_dir

PASSES = ("analyze", "tune", "render", "assemble")
GPU_PASSES = ("analyze", "tune", "render")  # assemble is stream copy + concatenation: CPU only
CANCEL_NOTIFY_S = 30  # SIGTERM, then this long to clean temporaries up, then SIGKILL


def shot_passes(cfg: JobConfig) -> tuple[str, ...]:
    """The passes a shot's farm job schedules: no tune pass when tuning is off or the core is ``passthrough``
    (a plug-in core that passes frames through gets a tune task that does nothing: exporting loads no models)."""
    tunes = cfg.tune.enabled and cfg.swap.core != "passthrough"
    return PASSES if tunes else tuple(p for p in PASSES if p != "tune")


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


def job_name(shot_yaml: Path, farm: FarmConfig) -> str:
    return farm.name or f"vidswap {Path(shot_yaml).stem}"


def shot_path(shot_yaml: Path) -> str:
    """The shot file as workers see it: absolute (workers start in their own session folders)."""
    return os.path.abspath(str(shot_yaml))


def resolve_farm(cfg: JobConfig, chunk_size: int | None, farm: FarmConfig | None) -> FarmConfig:
    """The farm settings of an export: ``farm`` or the config's section, with ``chunk_size`` when given."""
    farm = farm if farm is not None else cfg.farm
    if chunk_size is not None:
        farm = dataclasses.replace(farm, chunk_size=chunk_size)
    return farm


def write_text(path: Path, text: str) -> Path:
    """Write a job file atomically (its folder must be writable)."""
    ensure_writable_dir(path.parent, path)
    with atomic_file(path) as temp:
        temp.write_text(text)
    return path
