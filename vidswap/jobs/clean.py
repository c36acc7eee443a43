"""Remove what a finished shot no longer needs from its job folder (``vidswap clean``).

Farm renders leave their chunks in ``<job folder>/chunks/`` (lossless FFV1 per chunk for video outputs: as big
as the shot; done markers for image-sequence and patch outputs).  Once the output is complete they are only
needed to assemble again, so ``clean_shot`` removes them -- and, with ``everything``, the whole job folder
(analysis, tuned weights, plots), which a later run recomputes.  A shot whose output is not complete keeps its
chunks unless ``force``: they are the work a farm retry or ``assemble`` still needs.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from vidswap.composite.patch import check_patch_pattern, read_sidecars, track_pattern
from vidswap.config import JobConfig
from vidswap.errors import InputError
from vidswap.io import output_kind, probe
from vidswap.io.frames import format_frames
from vidswap.io.sequences import SequencePattern
from vidswap.shot import ShotPlan, plan_shot


@dataclass
class CleanResult:
    """What cleaning one shot did: the paths removed (or, dry run, that would be), the bytes they held, and why
    nothing was removed when ``kept`` is set."""

    job_dir: Path
    removed: list[Path] = field(default_factory=list)
    bytes: int = 0
    kept: str | None = None


def output_missing(cfg: JobConfig, plan: ShotPlan) -> str | None:
    """Why the shot's output is not complete (None when it is): every frame on disk, the patches' Nuke scripts."""
    out = plan.out_path
    if cfg.output.kind == "patch":
        pattern = check_patch_pattern(out)
        tracks = read_sidecars(pattern)
        scripts = [track_pattern(pattern, t).directory / f"{track_pattern(pattern, t).head.rstrip('._-')}.nk"
                   for t in tracks]
        if not tracks or not all(s.exists() for s in scripts):
            return f"the patches' Nuke scripts are not all in {pattern.directory} (run assemble)"
        return None
    if output_kind(out) == "video":
        if not out.exists():
            return f"{out} does not exist (run assemble)"
        try:
            count = probe(out).frame_count
        except InputError:
            return f"{out} is not readable"
        return None if count == len(plan.numbers) else f"{out} has {count} of {len(plan.numbers)} frames"
    pattern = SequencePattern.parse(out)
    absent = [n for n in plan.numbers if not pattern.path(n).exists()]
    return f"frames {format_frames(absent)} of {out} are missing" if absent else None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def clean_shot(cfg: JobConfig, everything: bool = False, force: bool = False, dry_run: bool = False) -> CleanResult:
    """Remove the shot's finished chunks (``everything``: its whole job folder) once its output is complete.

    ``force`` cleans an incomplete shot too; ``dry_run`` only reports.  InputError when the shot cannot be
    planned (its input is missing)."""
    plan = plan_shot(cfg)
    job = plan.job_dir
    target = job if everything else job / "chunks"
    result = CleanResult(job)
    if not target.exists():
        result.kept = f"nothing to clean in {job}"
        return result
    missing = output_missing(cfg, plan)
    if missing and not force:
        result.kept = f"kept: the output is not complete ({missing}); use --force to clean anyway"
        return result
    result.removed, result.bytes = [target], _size(target)
    if not dry_run:
        shutil.rmtree(target)
    return result
