"""Typed, immutable job configuration.

Precedence (later wins): dataclass defaults < ``vidswap/configs/<preset>.yaml`` (package data) < shot YAML < CLI
flags. Every layer is validated on its own before merging, so an unknown key or a wrong type is reported with the
key's dotted name and the file (or "command line") it came from (``config_layers`` keeps them apart for
``vidswap config show``).  Shot-file paths may use environment variables (``$SHOW/$SHOT/plate.mov``), expanded
as plain text when the file is read.

Sections owned by the stage that uses them are declared once, there: ``analysis`` and ``smoothing``
(:mod:`vidswap.faces.analyze`), ``target`` (:mod:`vidswap.faces.targets`), ``composite``
(:mod:`vidswap.composite.compositor`), ``swap.<core>`` by each swap core's config dataclass
(:mod:`vidswap.swap.registry`), ``tune`` (:class:`vidswap.train.tune.params.TuneParams`). This module composes
them into :class:`JobConfig` and validates the layers.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

import yaml

from vidswap.errors import ConfigError, brief
from vidswap.sections import AnalysisConfig, CompositeConfig, SmoothingConfig, TargetConfig, TuneParams
from vidswap.swap.registry import core_config_type, core_names

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PRESETS = ("default", "preview", "final")


@dataclass(frozen=True)
class OutputConfig:
    """Where and how the result is written."""

    path: str | None = None  # default: <input stem>_swapped.<ext> next to the input
    kind: Literal["frames", "patch"] = "frames"  # patch: face crops + alpha + transforms (face_t<id>.####.png/exr)
    burnin: bool = False  # burn shot, frame, timecode and preset into the picture (previews)
    compare: bool = False  # side by side: plate | result (twice the width)
    codec: Literal["h264", "prores_hq", "prores_4444", "ffv1", "exr", "png", "tiff"] | None = None  # None: from path
    crf: int = 18  # H.264 quality (lower = better)
    encoder_preset: str = "medium"  # H.264 speed preset (ultrafast ... veryslow)
    overwrite: bool = True  # replace an existing output (re-renders land in place); false: refuse, exit 2


@dataclass(frozen=True)
class SwapConfig:
    """The swap core: ``core`` names a registered core (:func:`vidswap.swap.registry.core_names`); ``sections``
    holds the ``swap.<name>`` sections given in the layers, each an instance of that core's config dataclass."""

    core: str = "geometric"
    sections: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str | None = None) -> Any:
        """The settings of core ``name`` (default: the selected core): the given section, or its defaults."""
        name = name or self.core
        given = self.sections.get(name)
        return given if given is not None else core_config_type(name)()


@dataclass(frozen=True)
class FarmConfig:
    """How a shot is cut up on a render farm and where its tasks may run (``vidswap farm export``)."""

    chunk_size: int = 50  # frames per render task
    gpu: bool = True  # require a GPU worker for analyze/tune/render; false on CPU-only farms
    gpu_memory_mib: int | None = None  # minimum GPU memory per worker
    os_family: Literal["linux", "windows", "macos"] | None = None
    executable: str = "vidswap"  # the vidswap executable on the workers: a name on PATH or an absolute path
    timeout_s: int | None = None  # per-task run limit
    chunking: Literal["auto", "task_chunking", "explicit"] = "auto"  # OpenJD render-step chunking
    target_chunk_seconds: int = 0  # OpenJD adaptive chunking: aim for tasks this long (0 = fixed chunk_size)
    name: str | None = None  # job name; None: "vidswap <shot file stem>"
    max_retries: int = 2  # retries of a failed task: Deadline 10 failure detection, OpenCue maxretries
    priority: int = 50  # Deadline 10 / OpenCue priority
    pool: str | None = None  # Deadline 10 pool
    group: str | None = None  # Deadline 10 group
    show: str | None = None  # OpenCue show; None: $SHOW
    facility: str | None = None  # OpenCue facility; None: $FACILITY, else Cuebot's default
    user: str | None = None  # OpenCue user the job belongs to; None: $USER

    def __post_init__(self):
        if self.chunk_size < 1:
            raise ConfigError(f"farm.chunk_size must be >= 1, got {self.chunk_size}")
        if self.gpu_memory_mib is not None and self.gpu_memory_mib < 1:
            raise ConfigError(f"farm.gpu_memory_mib must be >= 1 MiB, got {self.gpu_memory_mib}")
        if self.timeout_s is not None and self.timeout_s < 1:
            raise ConfigError(f"farm.timeout_s must be >= 1 s, got {self.timeout_s}")
        if self.target_chunk_seconds < 0:
            raise ConfigError(f"farm.target_chunk_seconds must be >= 0, got {self.target_chunk_seconds}")
        if self.chunking not in ("auto", "task_chunking", "explicit"):
            raise ConfigError(f"farm.chunking must be auto, task_chunking or explicit, got {brief(self.chunking)}")
        if self.os_family not in (None, "linux", "windows", "macos"):
            raise ConfigError(f"farm.os_family must be linux, windows or macos, got {brief(self.os_family)}")
        if not self.executable.strip():
            raise ConfigError("farm.executable is empty; give the vidswap executable the workers run")
        if _is_relative_path(self.executable):
            raise ConfigError(f"farm.executable {brief(self.executable)} is a relative path, which workers would "
                              "resolve "
                              "in their own task folders; give a name on PATH or an absolute path")
        if self.max_retries < 0:
            raise ConfigError(f"farm.max_retries must be >= 0, got {self.max_retries}")


def _is_relative_path(executable: str) -> bool:
    """A path with a folder that is absolute neither on POSIX nor on Windows (``bin/vidswap``)."""
    has_folder = "/" in executable or "\\" in executable
    absolute = PurePosixPath(executable).is_absolute() or PureWindowsPath(executable).is_absolute()
    return has_folder and not absolute


@dataclass(frozen=True)
class ColourspaceConfig:
    """OpenColorIO colour management of float (EXR) plates."""

    config: str | None = None  # .ocio file, ocio:// URI or $OCIO; None = the pinned built-in ACES config
    input: str | None = None  # None = role scene_linear (ACEScg)
    working: str | None = None  # None = "sRGB Encoded Rec.709 (sRGB)"; or "display/view"
    output: str | None = None  # None = input (untouched pixels stay bit-exact)


@dataclass(frozen=True)
class ModelsConfig:
    """User-supplied models: ``accept_noncommercial`` lists the non-commercial manifest entries whose licence the
    user acknowledges (a learned core refuses to run a non-commercial model not listed here)."""

    accept_noncommercial: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobConfig:
    """A whole shot job. Immutable; build with ``load_config``."""

    input: str | None = None
    sources: tuple[str, ...] = ()
    frames: str | None = None  # frame range, fileseq syntax: "1001-1100", "0-99x2"
    scale: float = 1.0  # output scale (preview renders)
    every: int = 1  # process every N-th frame
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = 8
    render_threads: int | Literal["auto"] = "auto"  # batches rendered at once (vidswap.render_loop)
    seed: int = 0
    output: OutputConfig = field(default_factory=OutputConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    swap: SwapConfig = field(default_factory=SwapConfig)
    composite: CompositeConfig = field(default_factory=CompositeConfig)
    tune: TuneParams = field(default_factory=TuneParams)
    farm: FarmConfig = field(default_factory=FarmConfig)
    colorspace: ColourspaceConfig = field(default_factory=ColourspaceConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    preset: str = "default"


# --------------------------------------------------------------------------------------------------------------
# validation


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, origin_name: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in canonical form (lists -> tuples)."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key} in {origin_name}: expected {_type_name(tp)}, got {brief(value)}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, arm, key, origin_name)
            except ConfigError:
                continue
        raise bad
    if origin is tuple:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value] if not isinstance(value, str) else [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = typing.get_args(tp)[:1]
        return tuple(_coerce(v, item, key, origin_name) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad


def _validate_layer(cls: type, data: Any, origin_name: str, prefix: str = "") -> dict:
    """Validate one layer (a nested dict) against dataclass ``cls``; returns a clean nested dict."""
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "top level"
        raise ConfigError(f"{where} in {origin_name}: expected a mapping, got {type(data).__name__}")
    if cls is SwapConfig:
        return _validate_swap(data, origin_name, prefix)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    clean: dict = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown key {brief(dotted)} in {origin_name}; known: {', '.join(sorted(names))}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            clean[key] = _validate_layer(tp, value, origin_name, prefix=f"{dotted}.")
        else:
            clean[key] = _coerce(value, tp, dotted, origin_name)
    return clean


def _validate_swap(data: dict, origin_name: str, prefix: str) -> dict:
    """The ``swap`` section: ``core`` (a registered name) and ``<name>`` sections checked by each core's dataclass."""
    names = core_names()
    clean: dict = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key == "core":
            if not isinstance(value, str) or value not in names:
                raise ConfigError(f"unknown swap core {brief(value)} ({dotted} in {origin_name}); registered cores: "
                                  f"{', '.join(names)}")
            clean[key] = value
        elif key in names:
            clean[key] = _validate_layer(core_config_type(key), value, origin_name, prefix=f"{dotted}.")
        else:
            owners = [n for n in names if key in {f.name for f in dataclasses.fields(core_config_type(n))}]
            hint = f"; core settings live in swap.<core>, e.g. {prefix}{owners[0]}.{key}" if owners else ""
            raise ConfigError(f"unknown key {brief(dotted)} in {origin_name}; known: core, {', '.join(names)}{hint}")
    return clean


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(cls: type, data: dict, where: str = "") -> Any:
    """The config dataclasses from a merged, validated layer; a dataclass's own value checks (ValueError) become
    ConfigErrors naming its section."""
    if cls is SwapConfig:
        sections = {name: _build(core_config_type(name), value, f"swap.{name}")
                    for name, value in data.items() if name != "core"}
        return SwapConfig(core=data.get("core", SwapConfig.core), sections=sections)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        tp = hints[key]
        kwargs[key] = _build(tp, value, f"{where}.{key}".lstrip(".")) if dataclasses.is_dataclass(tp) else value
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from None


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping; errors name the file (exit 2)."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"config file {path} is {size} bytes, over the {MAX_YAML_BYTES} a shot file may have; "
                              "is it the right file?")
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"bad YAML in {path}{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    check_yaml_size(data, str(path))
    return data


#: Bounds of a YAML config: the file, the nodes after alias expansion (a 1 KB "billion laughs" document expands
#: to billions), and any one string.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000
MAX_YAML_STRING = 16_384


def check_yaml_size(data: Any, where: str) -> None:
    """ConfigError when ``data`` (as loaded, aliases shared) has more than :data:`MAX_YAML_NODES` nodes once
    its aliases are expanded, or a string or key longer than :data:`MAX_YAML_STRING`. The walk stops at the
    bound, so it costs at most that many steps."""
    stack, seen = [data], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_YAML_NODES:
            raise ConfigError(f"{where} expands to more than {MAX_YAML_NODES} values (aliases?); a shot file "
                              "is a few settings")
        if isinstance(node, str) and len(node) > MAX_YAML_STRING:
            raise ConfigError(f"{where} has a value of {len(node)} characters, over {MAX_YAML_STRING}")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


_ENV_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_]\w*)\}|(?P<name>[A-Za-z_]\w*)|(?P<escaped>\$))")
_HOUDINI_FRAME = re.compile(r"F\d*")  # $F, $F4: Houdini frame-number tokens of a sequence pattern, not variables


def expand_env(text: str, key: str, origin: str, environ: Mapping[str, str] | None = None) -> str:
    """``$NAME`` / ``${NAME}`` replaced by the environment's value (``$$`` is a literal ``$``; ``$F``/``$F4``
    stay: sequence frame tokens).  Plain text substitution, nothing is run.  ConfigError for an unset variable."""
    env = os.environ if environ is None else environ

    def value(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("name")
        if match.group("name") and _HOUDINI_FRAME.fullmatch(name):
            return match.group(0)
        if name not in env:
            raise ConfigError(f"{key} in {origin}: environment variable ${name} is not set; set it or write the "
                              "path out")
        return env[name]

    return _ENV_VAR.sub(value, text)


def _resolve_paths(layer: dict, base: Path, origin: str) -> tuple[dict, dict[str, str]]:
    """Shot-file paths: environment variables expanded, then relative paths joined to the shot file's folder
    (symbolic links are kept, not resolved).  Returns the layer and {dotted key: text as written} of the
    values that had variables."""
    written: dict[str, str] = {}

    def path(p: Any, key: str) -> Any:
        if not isinstance(p, str):
            return p
        expanded = expand_env(p, key, origin)
        if expanded != p:
            written[key] = f"{written[key]}, {p}" if key in written else p
        if key == "colorspace.config" and expanded.startswith("ocio://"):
            return expanded
        return os.path.normpath(base / expanded) if not Path(expanded).is_absolute() else expanded

    out = dict(layer)
    if "input" in out:
        out["input"] = path(out["input"], "input")
    if isinstance(out.get("sources"), tuple):
        out["sources"] = tuple(path(s, "sources") for s in out["sources"])
    for section, key in (("output", "path"), ("target", "reference"), ("tune", "checkpoint"),
                         ("colorspace", "config")):
        if isinstance(out.get(section), dict) and key in out[section]:
            out[section] = dict(out[section], **{key: path(out[section][key], f"{section}.{key}")})
    return out, written


@dataclass(frozen=True)
class ConfigLayer:
    """One validated layer of a job config and where it came from.

    kind:    ``preset``, ``shot file`` or ``command line``.
    source:  the file, or ``command line``.
    data:    the layer's settings as a nested dict (shot-file paths expanded and made absolute).
    written: {dotted key: text as written} for shot-file values that had environment variables.
    """

    kind: str
    source: str
    data: dict
    written: dict = field(default_factory=dict)


def config_layers(shot: str | Path | None = None, preset: str | None = None, overrides: dict | None = None,
                  config_dir: Path = CONFIG_DIR) -> list[ConfigLayer]:
    """The validated layers of a job, lowest precedence first: preset YAML, shot YAML, command line (the
    dataclass defaults are below them all)."""
    shot_layer: ConfigLayer | None = None
    if shot is not None:
        shot_path = Path(shot)
        data = _validate_layer(JobConfig, read_yaml(shot_path), str(shot_path))
        data, written = _resolve_paths(data, Path(os.path.abspath(shot_path)).parent, str(shot_path))
        shot_layer = ConfigLayer("shot file", str(shot_path), data, written)
    cli_layer = ConfigLayer("command line", "command line",
                            _validate_layer(JobConfig, _drop_none(overrides or {}), "command line"))
    name = cli_layer.data.get("preset") or (shot_layer.data.get("preset") if shot_layer else None) or preset \
        or "default"
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {brief(name)}; choose one of {', '.join(PRESETS)}")
    preset_path = config_dir / f"{name}.yaml"
    preset_data = _validate_layer(JobConfig, read_yaml(preset_path), str(preset_path)) if preset_path.exists() else {}
    preset_data = dict(preset_data, preset=name)
    return [ConfigLayer("preset", str(preset_path), preset_data), *([shot_layer] if shot_layer else []), cli_layer]


def build_config(layers: list[ConfigLayer]) -> JobConfig:
    """The job config of ``layers`` (later layers win), built and value-checked."""
    merged: dict = {}
    for layer in layers:
        merged = _merge(merged, layer.data)
    merged["preset"] = layers[0].data["preset"]
    cfg = _build(JobConfig, merged)
    _check_values(cfg)
    return cfg


def load_config(shot: str | Path | None = None, preset: str | None = None, overrides: dict | None = None,
                config_dir: Path = CONFIG_DIR) -> JobConfig:
    """Build the job config from the layers. ``overrides`` are CLI flags as a nested dict (None values ignored)."""
    return build_config(config_layers(shot, preset, overrides, config_dir))


def _drop_none(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
            if v:
                out[k] = v
        elif v is not None and v != ():
            out[k] = v
    return out


def _check_values(cfg: JobConfig) -> None:
    if not 0.05 <= cfg.scale <= 4.0:
        raise ConfigError(f"scale must be in [0.05, 4], got {cfg.scale}")
    if cfg.every < 1:
        raise ConfigError(f"every must be >= 1, got {cfg.every}")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.render_threads != "auto" and cfg.render_threads < 1:
        raise ConfigError(f"render_threads must be 'auto' or >= 1, got {cfg.render_threads}")
    if not 0 <= cfg.output.crf <= 51:
        raise ConfigError(f"output.crf must be in [0, 51], got {cfg.output.crf}")
    if not 0.0 < cfg.target.same_person <= 1.0:
        raise ConfigError(f"target.same_person must be in (0, 1] (1: each track alone), got {cfg.target.same_person}")
    if cfg.target.mode == "index" and cfg.target.index is None:
        raise ConfigError("target.mode is 'index' but target.index is not set")
    if cfg.target.mode == "reference" and cfg.target.reference is None:
        raise ConfigError("target.mode is 'reference' but target.reference is not set")


def to_dict(cfg: Any) -> dict:
    """The config as plain data (for the run summary and cache keys)."""
    return dataclasses.asdict(cfg)
