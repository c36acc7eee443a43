"""Checks of a job before any work: every setting and every path it will write is checked up front, so a bad
job fails in a second with exit 2 and leaves nothing behind, instead of after an analyse or render pass.

What is checked: the encoder settings, the output (type, codec and container, size, a folder under its name, a
writable folder, not the input, ``output.overwrite``), the job folder, and the side outputs a command writes
(contact sheet, debug strips, overlay video).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidswap.composite.patch import check_patch_pattern, nuke_string
from vidswap.config import JobConfig
from vidswap.errors import InputError
from vidswap.io import EncodeSettings, output_kind
from vidswap.io.atomic import check_writable_dir
from vidswap.io.sequences import SequencePattern, is_pattern
from vidswap.io.writers import check_output
from vidswap.shot import ShotPlan, settings_from_config

#: Still-image formats a contact sheet can be written as (cv2 picks the encoder by extension).
SHEET_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class SideOutputs:
    """Files a command writes beside its output: contact sheet (a PNG), debug strips (a folder), an overlay
    video. None: not asked for."""

    contact_sheet: str | Path | None = None
    debug_frames: str | Path | None = None
    overlay: str | Path | None = None


def check_job(cfg: JobConfig, plan: ShotPlan, side: SideOutputs = SideOutputs(), replaces: bool = True) -> None:
    """InputError (exit 2) for the first setting or path that cannot work. ``replaces``: the command writes the
    whole output (run, assemble), so ``output.overwrite: false`` refuses an existing one; the farm's analyze and
    render tasks check the output's settings and paths but leave that to assemble."""
    settings = settings_from_config(cfg, plan.out_path)  # ConfigError for a bad encoder preset or crf
    check_main_output(cfg, plan, settings, replaces)
    check_writable_dir(plan.job_dir, f"the job folder {plan.job_dir}")
    check_side_outputs(plan, side)


def check_main_output(cfg: JobConfig, plan: ShotPlan, settings: EncodeSettings, replaces: bool = True) -> None:
    """The job's output path and settings (see :func:`vidswap.io.writers.check_output`) and ``overwrite``."""
    out = plan.out_path
    if cfg.output.kind == "patch":
        pattern = check_patch_pattern(out)
        check_writable_dir(pattern.directory, out)
        for path in (pattern.directory.resolve(), Path(plan.info.path).resolve()):  # written into Nuke scripts
            nuke_string(path.as_posix())
    else:
        check_output(out, plan.info, settings, plan.size)
    if replaces and not cfg.output.overwrite:
        existing = existing_outputs(cfg, plan)
        if existing:
            raise InputError(f"the output {out} exists ({existing}) and overwrite is off (--no-overwrite); "
                             "remove it, pick another -o, or pass --overwrite")


def existing_outputs(cfg: JobConfig, plan: ShotPlan) -> str:
    """What of the job's output is already on disk, in words ('' when nothing)."""
    out = plan.out_path
    if not is_pattern(out):
        return "a file" if out.exists() else ""
    pattern = SequencePattern.parse(out)
    if cfg.output.kind == "patch":  # face_t0.####.png per track: any file of the pattern's head counts
        found = sorted(pattern.directory.glob(f"{pattern.head}*{pattern.ext}")) if pattern.directory.is_dir() else []
        return f"{len(found)} patch files" if found else ""
    found = [n for n in plan.numbers if pattern.path(n).exists()]
    return f"{len(found)} of its {len(plan.numbers)} frame files" if found else ""


def check_side_outputs(plan: ShotPlan, side: SideOutputs) -> None:
    """Contact sheet, debug-strip folder and overlay video: each writable and not the input or the output."""
    protected = {"the input": Path(plan.info.path), "the output": plan.out_path}
    if side.contact_sheet is not None:
        sheet = Path(side.contact_sheet)
        if sheet.suffix.lower() not in SHEET_EXTS:
            raise InputError(f"contact sheet {sheet} needs an image extension ({', '.join(SHEET_EXTS)})")
        if sheet.is_dir():
            raise InputError(f"contact sheet {sheet} is a folder; give a file name, e.g. {sheet / 'sheet.png'}")
        _not_protected(sheet, protected, "contact sheet")
        check_writable_dir(sheet.parent, f"the contact sheet {sheet}")
    if side.debug_frames is not None:
        folder = Path(side.debug_frames)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"debug-frames folder {folder} is a file; give a folder")
        check_writable_dir(folder, f"the debug strips in {folder}")
    if side.overlay is not None:
        overlay = Path(side.overlay)
        if output_kind(overlay) != "video":
            raise InputError(f"overlay {overlay} must be a video file (.mp4, .mov, .mkv)")
        _not_protected(overlay, protected, "overlay")
        check_output(overlay, plan.info, EncodeSettings(codec="h264", crf=20, preset="veryfast"),
                     _even(plan.size))


def _not_protected(path: Path, protected: dict[str, Path], what: str) -> None:
    for name, other in protected.items():
        if not is_pattern(other) and Path(path).resolve() == Path(other).resolve():
            raise InputError(f"the {what} {path} would overwrite {name}; pick another path")


def _even(size: tuple[int, int]) -> tuple[int, int]:
    return size[0] + size[0] % 2, size[1] + size[1] % 2

