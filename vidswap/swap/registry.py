"""Swap cores by name: ``swap.core`` -> a builder and the dataclass that validates the core's config section.

Config layout: ``swap.core: NAME`` picks the core; its settings live in ``swap.NAME: {...}``, validated by the
frozen dataclass registered with it (the same dataclass the core uses, declared once)::

    swap:
      core: geometric
      geometric: {shape: source, crop_size: 256}

The registry is the one piece of process-wide state in vidswap: a name -> entry table holding the built-in
cores by module path (``_BUILTIN``: a core's config dataclass and builder are imported when that core is first
asked for, so validating a config imports no core and no torch), filled by third-party packages
through the entry-point group ``vidswap.swap_cores`` (each entry point names a module that calls
:func:`register_core` on import, or a function that does when called), and by tests through
:func:`register_core` / :func:`unregister_core`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from vidswap.errors import ConfigError, ModelError
from vidswap.faces.topology import MeshTopology, load_topology
from vidswap.models.registry import ModelSpec, check_licence, load_manifest, model_path
from vidswap.models.router import Family, route

if TYPE_CHECKING:
    import torch

    from vidswap.swap.base import SwapCore

ENTRY_POINT_GROUP = "vidswap.swap_cores"

ConfigT = TypeVar("ConfigT")


def _cpu() -> torch.device:
    import torch  # the cores that use the device run torch; building a config or pass-through does not

    return torch.device("cpu")


@dataclass(frozen=True)
class CoreContext:
    """What a core may need besides its config: the torch device, the face mesh topology, the model manifest.

    ``topology`` is ``mesh_topology`` when given, else the cached MediaPipe topology, loaded on first use (a core
    that never asks, like pass-through, needs no model files); ``models`` None is the packaged manifest.
    """

    device: torch.device = field(default_factory=_cpu)
    mesh_topology: MeshTopology | None = None
    models: Mapping[str, ModelSpec] | None = None
    accept_noncommercial: frozenset[str] = frozenset()  # models.accept_noncommercial
    regions: tuple[str, ...] | None = None  # composite.regions (None: the whole face), for cores with per-region codes

    @functools.cached_property
    def topology(self) -> MeshTopology:
        return self.mesh_topology if self.mesh_topology is not None else load_topology()

    def model_path(self, name: str) -> Path:
        """The verified cached file of manifest model ``name`` (ModelError, exit 4, with the fetch command if not)."""
        return model_path(name, self.manifest())

    def manifest(self) -> dict[str, ModelSpec]:
        """The model manifest (``models``, or the packaged one)."""
        return dict(self.models) if self.models is not None else load_manifest()

    def user_model(self, name: str, expect: str) -> tuple[Path, Family]:
        """A user-supplied model for a learned core: its licence acknowledged (ConfigError, exit 2, if it is
        non-commercial and not in ``models.accept_noncommercial``), its file cached and verified (ModelError,
        exit 4, naming the ``vidswap models add`` command and the download URL), and its ONNX signature routed
        to a family (``expect``: a family name or role; ModelError otherwise). An entry that names its family
        (``family`` in the manifest) is routed to that family -- the only way to tell signature twins apart
        (GHOST files have simswap_256's) -- and that family must then agree with ``expect``."""
        manifest = self.manifest()
        if name not in manifest:
            raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(manifest))}")
        spec = manifest[name]
        check_licence(spec, self.accept_noncommercial)
        path = model_path(name, manifest)
        family = route(path, expect=spec.family or expect)
        if expect not in (family.name, family.role):
            raise ModelError(f"model {name} has the {family.name} signature ({family.role}), not the {expect} one "
                             "expected here")
        return path, family


@dataclass(frozen=True)
class CoreEntry(Generic[ConfigT]):
    """A registered core: its builder and its config dataclass."""

    name: str
    builder: Callable[[ConfigT, CoreContext], SwapCore]
    config_type: type[ConfigT]


@dataclass(frozen=True)
class LazyBuilder:
    """A built-in core's builder, ``"module:function"``, imported when the core is first built (so listing the
    cores or validating a config imports no core, and no torch)."""

    target: str

    def __call__(self, config: Any, context: CoreContext) -> SwapCore:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)(config, context)


#: the built-in cores: name -> (``"module:ConfigDataclass"``, ``"module:builder"``), each module imported when
#: that core's config type (its ``swap.<name>`` section) or the core itself is first asked for
_BUILTIN: dict[str, tuple[str, str]] = {
    "geometric": ("vidswap.swap.geometric:GeometricSwapConfig", "vidswap.swap.geometric:build_geometric"),
    "passthrough": ("vidswap.sections:PassthroughConfig", "vidswap.swap.base:build_passthrough"),
    "inswapper": ("vidswap.swap.learned:InswapperConfig", "vidswap.swap.learned:build_inswapper"),
    "simswap": ("vidswap.swap.learned:SimswapConfig", "vidswap.swap.learned:build_simswap"),
    "hyperswap": ("vidswap.swap.learned:HyperswapConfig", "vidswap.swap.learned:build_hyperswap"),
    "ghost": ("vidswap.swap.learned:GhostConfig", "vidswap.swap.learned:build_ghost"),
    "facedancer": ("vidswap.swap.facedancer:FaceDancerCoreConfig", "vidswap.swap.facedancer:build_facedancer"),
    "e4s-pti": ("vidswap.swap.stylegan.core:E4SPTIConfig", "vidswap.swap.stylegan.core:build_e4s_pti"),
    "megafs": ("vidswap.swap.stylegan.megafs_core:MegaFSCoreConfig", "vidswap.swap.stylegan.megafs_core:build_megafs"),
    "e4s": ("vidswap.swap.stylegan.e4s_core:E4SCoreConfig", "vidswap.swap.stylegan.e4s_core:build_e4s"),
    "mfim": ("vidswap.swap.stylegan.mfim_core:MFIMCoreConfig", "vidswap.swap.stylegan.mfim_core:build_mfim"),
    "idatt": ("vidswap.swap.stylegan.idatt_core:IDATTCoreConfig", "vidswap.swap.stylegan.idatt_core:build_idatt"),
}
#: the built-in cores that never change a pixel (``SwapCore.passes_through``), known before they are built: a job
#: with one resolves no device and runs no torch (:func:`known_passthrough`)
_BUILTIN_PASSTHROUGH = frozenset({"passthrough"})
_CORES: dict[str, CoreEntry] = {}


def register_core(name: str, builder: Callable[[ConfigT, CoreContext], SwapCore], config_type: type[ConfigT],
                  replace: bool = False) -> None:
    """Register a core under ``name``: ``builder(config, context) -> SwapCore``; ``config_type`` is the frozen
    dataclass that validates the ``swap.<name>`` section (its defaults are the core's defaults)."""
    if not dataclasses.is_dataclass(config_type):
        raise TypeError(f"swap core {name!r}: config_type must be a dataclass, got {config_type!r}")
    if (name in _CORES or name in _BUILTIN) and not replace:
        raise ValueError(f"swap core {name!r} is already registered "
                         f"({_CORES[name].builder if name in _CORES else _BUILTIN[name][1]!r})")
    if name == "core":
        raise ValueError("'core' names the swap.core key; choose another core name")
    _BUILTIN.pop(name, None)
    _CORES[name] = CoreEntry(name, builder, config_type)


def unregister_core(name: str) -> None:
    """Remove a core (tests that register their own); unknown names are a KeyError."""
    if name not in _CORES and name not in _BUILTIN:
        raise KeyError(name)
    _CORES.pop(name, None)
    _BUILTIN.pop(name, None)


@functools.cache
def _load_plugins() -> None:
    """Import the ``vidswap.swap_cores`` entry points once (their modules register cores on import)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # noqa: BLE001 - any failure of a third-party plug-in is reported as config
            raise ConfigError(f"swap core plug-in {ep.name} ({ep.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}") from exc
        if callable(loaded) and not isinstance(loaded, type):
            loaded()


def core_names() -> list[str]:
    """The registered core names, sorted."""
    _load_plugins()
    return sorted({*_CORES, *_BUILTIN})


def _entry(name: str) -> CoreEntry:
    _load_plugins()
    if name not in _CORES and name in _BUILTIN:
        module, attr = _BUILTIN[name][0].split(":")
        _CORES[name] = CoreEntry(name, LazyBuilder(_BUILTIN[name][1]), getattr(importlib.import_module(module), attr))
    if name not in _CORES:
        raise ConfigError(f"unknown swap core {name!r} (swap.core); registered cores: {', '.join(core_names())}")
    return _CORES[name]


def known_passthrough(name: str) -> bool:
    """Whether ``name`` is a built-in core that passes every frame through (``passthrough``), known without building
    it or resolving a device. False for every other core, including a registered one that replaced the built-in
    (its ``passes_through`` is known once it is built)."""
    return name in _BUILTIN_PASSTHROUGH and name in _BUILTIN


def core_config_type(name: str) -> type:
    """The dataclass validating ``swap.<name>``; ConfigError (exit 2) listing the names for an unknown core."""
    return _entry(name).config_type


def build_core(name: str, section: Any = None, context: CoreContext | None = None) -> SwapCore:
    """Build core ``name`` from its config section (an instance of its config dataclass, a mapping of its fields,
    or None for the defaults). Unknown names and bad sections are ConfigError (exit 2)."""
    entry = _entry(name)
    if section is None:
        section = entry.config_type()
    elif isinstance(section, Mapping):
        known = {f.name for f in dataclasses.fields(entry.config_type)}
        unknown = set(section) - known
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(sorted(unknown))} in swap.{name}; "
                              f"known: {', '.join(sorted(known))}")
        try:
            section = entry.config_type(**section)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"swap.{name}: {exc}") from None
    elif not isinstance(section, entry.config_type):
        raise ConfigError(f"swap.{name}: expected {entry.config_type.__name__}, got {type(section).__name__}")
    from vidswap.swap.base import SwapCore  # the contract (torch): only when a core is built

    core = entry.builder(section, context or CoreContext())
    if not isinstance(core, SwapCore):
        raise TypeError(f"the builder of swap core {name!r} returned {type(core).__name__}, not a SwapCore")
    return core
