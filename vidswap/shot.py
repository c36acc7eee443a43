"""Shot planning: what a job renders (the input, its frames, the output and its size, the job folder, the plate's
colour pipeline) and the settings derived from the job config for it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import fileseq
import numpy as np

from vidswap.composite.patch import check_patch_pattern
from vidswap.config import JobConfig
from vidswap.errors import InputError
from vidswap.io import EncodeSettings, Frame, MediaInfo, output_kind, probe, read_image
from vidswap.io.atomic import same_file
from vidswap.io.colour import ColourPipeline
from vidswap.io.exr import ExrOutput
from vidswap.io.frames import parse_frames
from vidswap.io.sequences import SequencePattern, is_pattern
from vidswap.probe_record import probe_for_job

if TYPE_CHECKING:
    import torch


@dataclass
class ShotPlan:
    """What a job renders: the input, its frames, the output and the job folder.

    colour: the OCIO pipeline of a scene-linear (float, EXR) plate; None for display-referred inputs.
    work_size: (width, height) the frames are analysed and rendered at when the job scales them down (previews at
        half scale): read frames are resized to it first, so a half-scale preview does a quarter of the work;
        None: at the plate's own size.
    """

    info: MediaInfo
    numbers: list[int]
    out_path: Path
    size: tuple[int, int]
    colour: ColourPipeline | None = None
    work_size: tuple[int, int] | None = None

    @property
    def job_dir(self) -> Path:
        return job_dir(self.out_path)

    @property
    def tracks_path(self) -> Path:
        """The shot's analysis in the job folder."""
        return self.job_dir / "tracks.npz"


def plan_frame_numbers(info: MediaInfo, frames: str | None, every: int) -> list[int]:
    """The frame numbers to render: the ``frames`` range (fileseq syntax) within the clip, every N-th."""
    available = info.frame_numbers
    if frames is None:
        numbers = list(available)
    else:
        try:
            wanted = parse_frames(frames)
        except InputError as exc:
            raise InputError(f"{info.path.name}: {exc}") from None
        outside = [n for n in wanted if n not in available]
        if outside:
            raise InputError(f"frame range {frames} is outside {info.path.name}'s frames "
                             f"{available.start}-{available.stop - 1}")
        numbers = wanted
    return numbers[::every]


def default_suffix(cfg: JobConfig) -> str:
    """The default output name's suffix: ``_swapped`` for a normal run; previews and side-by-side compares get
    their own (``_preview``, ``_compare``, ``_preview_compare``) so they never replace the real result;
    ``_face`` for patches."""
    if cfg.output.kind == "patch":
        return "_face"
    parts = [name for name, on in (("_preview", cfg.preset == "preview"), ("_compare", cfg.output.compare)) if on]
    return "".join(parts) or "_swapped"


def default_output_path(info: MediaInfo, suffix: str = "_swapped") -> Path:
    """``<input stem><suffix>.<ext>`` next to the input; sequences keep their padding and numbering."""
    if info.kind == "sequence" and info.pattern:
        seq = fileseq.FileSequence(info.pattern)
        base = Path(seq.basename().rstrip("._-") + suffix)
        return Path(seq.dirname() or ".") / f"{base}.{seq.padding()}{seq.extension()}"
    path = Path(info.path)
    ext = path.suffix if info.kind == "video" else ".mp4"
    return path.with_name(f"{path.stem}{suffix}{ext}")


def output_size(info: MediaInfo, scale: float, video_out: bool) -> tuple[int, int]:
    """(width, height) after scaling: the plate's own size at scale 1 (a codec that needs an even size pads
    it, :func:`vidswap.io.writers.encode_size`); scaled video sizes are rounded to even."""
    if scale == 1:
        return info.width, info.height
    w, h = info.width * scale, info.height * scale
    if video_out:
        return max(2, int(round(w / 2)) * 2), max(2, int(round(h / 2)) * 2)
    return max(1, int(round(w))), max(1, int(round(h)))


def check_sources(paths: tuple[str, ...]) -> list[np.ndarray]:
    """Read every source portrait; a missing or unreadable one is an InputError (exit 2)."""
    if not paths:
        raise InputError("no source image given: use --source IMAGE (or sources: in the shot YAML)")
    return [read_image(p) for p in paths]


def settings_from_config(cfg: JobConfig, out_path: Path) -> EncodeSettings:
    """The encoder settings of the output: ``output.codec`` or the codec the output's extension implies."""
    codec = cfg.output.codec or _codec_for(out_path)
    return EncodeSettings(codec=codec, crf=cfg.output.crf, preset=cfg.output.encoder_preset)


def _codec_for(path: Path) -> str:
    ext = Path(str(path).replace("#", "").replace("@", "")).suffix.lower()
    return {".exr": "exr", ".png": "png", ".tif": "tiff", ".tiff": "tiff", ".mkv": "ffv1"}.get(ext, "h264")


def job_dir(out_path: Path) -> Path:
    """The job folder: tracks file, plots, tuned weights, farm chunks.

    Video outputs: ``<output stem>.vidswap/`` next to the output.  Image-sequence and patch outputs: beside the
    sequence's folder, never in it (where Nuke's file browser would list it): ``comp/face.####.exr`` ->
    ``comp.vidswap/face/``.
    """
    if not is_pattern(out_path):
        name = Path(out_path)
        return name.parent / f"{name.stem.rstrip('._-')}.vidswap"
    pattern = SequencePattern.parse(out_path)
    folder = Path(os.path.abspath(pattern.directory))
    return folder.parent / f"{folder.name}.vidswap" / (pattern.head.rstrip("._-") or "sequence")


def resolve_device(name: str) -> torch.device:
    """The torch device of ``device: auto | cpu | cuda`` (auto: CUDA when torch sees one). Torch is imported here,
    by the jobs that run it: a pass-through job resolves no device (:func:`vidswap.pipeline.build_render`)."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA device; use --device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def plan_shot(cfg: JobConfig, recorded: bool = False) -> ShotPlan:
    """Probe the input and plan the job: frames, output path and size, colour pipeline (InputError on bad input).

    ``recorded``: a farm task after the analyze pass: with an output path in the config, the probe the analyze pass
    recorded in the job folder is taken while the input is unchanged (:mod:`vidswap.probe_record`), instead of
    reading the whole plate again.
    """
    if cfg.input is None:
        raise InputError("no input given: vidswap run INPUT (or input: in the shot YAML)")
    if recorded and cfg.output.path:  # (sequences have no record: probe_for_job probes them)
        info = probe_for_job(cfg.input, job_dir(Path(cfg.output.path)))
    else:
        info = probe(cfg.input)
    numbers = plan_frame_numbers(info, cfg.frames, cfg.every)
    patches = cfg.output.kind == "patch"
    if cfg.output.path:
        out_path = Path(cfg.output.path)
    else:
        out_path = default_output_path(info, default_suffix(cfg))
        if patches and info.kind != "sequence":
            out_path = out_path.with_name(f"{out_path.stem}.####.png")
    if same_file(out_path, info.path):
        raise InputError(f"output {out_path} would overwrite the input; choose another -o")
    if patches:
        check_patch_pattern(out_path)
        if cfg.output.compare or cfg.output.burnin:
            raise InputError("output.compare and output.burnin draw on whole frames; patch outputs have none")
    size = output_size(info, cfg.scale, output_kind(out_path) == "video")
    work = size if cfg.scale < 1 and not patches else None  # patches keep the plate's coordinates
    if cfg.output.compare:
        size = (size[0] * 2, size[1])
    return ShotPlan(info, numbers, out_path, size, shot_colour(cfg, info), work)


def is_float_plate(info: MediaInfo) -> bool:
    """A scene-linear plate: float pixels (EXR, float TIFF)."""
    return (info.pix_fmt or "").startswith("rgbf")


def shot_colour(cfg: JobConfig, info: MediaInfo) -> ColourPipeline | None:
    """The OCIO pipeline (``colorspace:`` section) for a float plate; None for display-referred inputs, whose
    pixels the models take as they are."""
    if not is_float_plate(info):
        return None
    return ColourPipeline.from_config(cfg.colorspace)


def exr_output(cfg: JobConfig, info: MediaInfo) -> ExrOutput:
    """How the job's EXRs are written: pixels in ``colorspace.output`` (display-referred plates decoded to it,
    never sRGB-encoded values in an EXR), with the colourspace, chromaticities and the job's provenance."""
    provenance = {"vidswap:input": str(cfg.input or info.path), "vidswap:swapCore": cfg.swap.core}
    if cfg.sources:
        provenance["vidswap:sources"] = ", ".join(str(s) for s in cfg.sources)
    return ExrOutput.create(cfg.colorspace, provenance)


def linear_output(out_path: Path) -> bool:
    """Outputs that keep scene-linear float pixels (EXR / TIFF sequences); others get the display picture."""
    return Path(str(out_path)).suffix.lower() in (".exr", ".tif", ".tiff")


def frame_decoration(cfg: JobConfig, plan: ShotPlan) -> Callable[[Frame, Frame], np.ndarray] | None:
    """``decorate(plate, result) -> picture`` for ``output.compare`` / ``output.burnin``; None when neither."""
    if not (cfg.output.compare or cfg.output.burnin):
        return None
    from vidswap.composite.burnin import decorate_frame  # OpenCV's text drawing: only jobs that draw import it

    shot = Path(cfg.input).name if cfg.input else plan.info.path.name
    return partial(decorate_frame, compare=cfg.output.compare, burnin=cfg.output.burnin, shot=shot,
                   preset=cfg.preset, size=plan.size, fps=plan.info.fps)
