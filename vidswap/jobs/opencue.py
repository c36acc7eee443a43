"""OpenCue jobs of a shot (pyoutline, ``pip install 'vidswap[opencue]'``).

    spec = opencue_spec(export_opencue(Path("shot.yaml"), cfg, frame_numbers))    # OpenCue XML job spec
    write_opencue(spec, Path("opencue.xml"))        # pipelines/opencue/launch_spec.py opencue.xml

Who and where the job is for comes from the shot's ``farm:`` section or the environment, never from pyoutline's
defaults or the exporting machine's account: ``show`` (``farm.show`` or ``$SHOW``; required), ``shot``
(``$SHOT`` or the shot file's name), ``user`` (``farm.user`` or ``$USER``; required), ``facility``
(``farm.facility`` or ``$FACILITY``; left out otherwise, so Cuebot picks its default).  The spec has no ``uid``
(the exporting process's uid means nothing on the farm) and no e-mail.
"""

from __future__ import annotations

import os
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidswap.config import FarmConfig, JobConfig
from vidswap.errors import ConfigError, UsageError
from vidswap.io.frames import format_frames
from vidswap.jobs.farm import (GPU_PASSES, chunk_frames, job_name, pass_args, resolve_farm, shot_passes, shot_path,
                               write_text)

INSTALL_HINT = "pip install 'vidswap[opencue]'"


@dataclass(frozen=True)
class CueIdentity:
    """The spec's show, shot, user and (optional) facility."""

    show: str
    shot: str
    user: str
    facility: str | None = None


def cue_name(text: str) -> str:
    """A name OpenCue accepts (letters, digits, underscores)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "vidswap"


def cue_identity(shot_yaml: Path, farm: FarmConfig, environ: Mapping[str, str] | None = None) -> CueIdentity:
    """Show, shot, user and facility from ``farm`` or the environment; ConfigError when show or user is unset."""
    env = os.environ if environ is None else environ
    show = farm.show or env.get("SHOW")
    user = farm.user or env.get("USER")
    if not show:
        raise ConfigError("the OpenCue job needs a show: set farm.show in the shot file or $SHOW")
    if not user:
        raise ConfigError("the OpenCue job needs a user: set farm.user in the shot file or $USER")
    return CueIdentity(show=cue_name(show), shot=cue_name(env.get("SHOT") or Path(shot_yaml).stem), user=user,
                       facility=farm.facility or env.get("FACILITY") or None)


def _pyoutline():
    try:
        import outline
        import outline.modules.shell as shell
    except ImportError:
        raise UsageError(f"OpenCue export needs pyoutline; install it with: {INSTALL_HINT}") from None
    return outline, shell


def export_opencue(shot_yaml: Path, cfg: JobConfig, frame_numbers: Sequence[int], chunk_size: int | None = None,
                   *, farm: FarmConfig | None = None, extra_args: Sequence[str] = (),
                   environ: Mapping[str, str] | None = None) -> Any:
    """A pyoutline ``Outline`` with one layer per pass: analyze, tune (only when the shot tunes), assemble are
    single-frame Shell layers, render is a Shell layer over the shot's frames in chunks of ``chunk_size`` running
    ``vidswap render --config SHOT --frames #FRAME_START#-#FRAME_END#``; each layer depends on all frames
    of the one before.  GPU layers ask for one GPU (``gpus=1``).  UsageError (exit 2) without pyoutline.

    Launch with ``outline.cuerun.launch(ol, use_pycuerun=False)`` or submit ``opencue_spec(ol)``.
    """
    outline, shell = _pyoutline()
    farm = resolve_farm(cfg, chunk_size, farm)
    ident = cue_identity(shot_yaml, farm, environ)
    chunks = chunk_frames(frame_numbers, farm.chunk_size)
    frames = [n for chunk in chunks for n in chunk]
    shot = shot_path(shot_yaml)
    frame_range = format_frames(frames)
    ol = outline.Outline(cue_name(job_name(shot_yaml, farm)), shot=ident.shot, show=ident.show, user=ident.user,
                         facility=ident.facility, frame_range=frame_range)
    previous = None
    for pass_name in shot_passes(cfg):
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
    ol.set_arg("maxretries", farm.max_retries)
    return ol


def opencue_spec(ol: Any) -> str:
    """The OpenCue XML job specification of ``ol`` (commands as given, no pycuerun wrapper): the outline's show,
    shot, user and facility (left out when the outline has none), no uid and no e-mail.

    Needs no Cuebot and writes nothing: submit it with ``opencue.api.launchSpec(spec)``.
    """
    _pyoutline()
    import outline.backend.cue as cue
    import outline.cuerun

    flags: dict[str, Any] = {"nomail": True}
    for key in ("priority", "maxretries"):
        if ol.get_arg(key) is not None:
            flags[key] = ol.get_arg(key)
    spec = cue.serialize_simple(outline.cuerun.OutlineLauncher(ol, **flags))
    ident = CueIdentity(show=ol.get_show(), shot=ol.get_shot(), user=ol.get_user(), facility=ol.get_facility())
    return _set_identity(spec, ident)


def _set_identity(spec: str, ident: CueIdentity) -> str:
    """Rewrite the spec's header: pyoutline adds the launching process's uid and its config's facility."""
    start = spec.index("<spec")
    root = ET.fromstring(spec[start:])
    for tag in ("facility", "uid", "email"):
        for element in root.findall(tag):
            root.remove(element)
    for tag, value in (("show", ident.show), ("shot", ident.shot), ("user", ident.user)):
        root.find(tag).text = value
    if ident.facility:
        facility = ET.Element("facility")
        facility.text = ident.facility
        root.insert(0, facility)  # the DTD's order: facility?, dept?, show, shot, user, email?, uid?, job*
    return spec[:start] + ET.tostring(root, encoding="unicode")


def write_opencue(spec: str, path: Path) -> Path:
    """Write an OpenCue XML job spec (atomically)."""
    return write_text(Path(path), spec)
