"""The model manifest (``configs/models.yaml``) and the local model cache.

``model_path(name)`` is what render-time code calls: it never touches the network, and a missing or
corrupt file is a ``ModelError`` (exit 4) naming the exact fetch command.

Cache: ``$VIDSWAP_HOME/models`` (default ``~/.cache/vidswap/models``). Files get there by
``fetch_model`` / ``fetch_models`` (``vidswap models fetch``: from the manifest's sources, sha256-checked,
written atomically) or ``add_model`` (``vidswap models add NAME FILE``: a file the user supplies).

User-supplied InsightFace model packs: non-default, non-commercial entries (SCRFD, 2d106, ArcFace) may also be
read in place from an InsightFace pack folder, named by the ``insightface_dir`` argument (the config key of the
same name) or the ``$VIDSWAP_INSIGHTFACE_DIR`` environment variable. ``model_path`` looks there when the
cache lacks the file, for the manifest's file name or any of the entry's ``pack_files`` (the names the file
has inside InsightFace packs, e.g. ``det_500m.onnx`` in ``buffalo_s``), in the folder itself and in its
sub-folders one or two levels down (``~/.insightface/models`` holds ``buffalo_l/``, ``buffalo_s/``, ...).
A pinned sha256 is still checked; an entry whose ``sha256`` is empty accepts any file (the user vouches for it).
"""

from __future__ import annotations

import hashlib

import os
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable

import yaml

from vidswap.errors import ConfigError, InputError, ModelError, UsageError
from vidswap.models.router import route
from vidswap.models.sources import cache_home, fetch_artifact, sha256_of

DEFAULT_MANIFEST = Path(__file__).resolve().parents[1] / "configs" / "models.yaml"
INSIGHTFACE_ENV = "VIDSWAP_INSIGHTFACE_DIR"


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry.

    ``sha256`` may be empty for user-supplied entries with no pinned file; ``pack_files`` lists other names
    the same model has inside InsightFace packs (optional in the manifest).
    """

    name: str
    role: str
    file: str
    sha256: str
    size: int
    license: str
    commercial: bool
    default: bool
    io: str
    sources: tuple[str, ...]
    pack_files: tuple[str, ...] = ()
    url: str = ""  # where users obtain a user-supplied file (not fetched by vidswap)
    family: str = ""  # the ONNX family the file must route to (vidswap.models.router), checked by add_model

    @property
    def pinned(self) -> bool:
        return bool(self.sha256)

    @property
    def pack_eligible(self) -> bool:
        """May be read from a user's InsightFace pack folder (non-default, non-commercial entries)."""
        return not self.default and not self.commercial


@dataclass(frozen=True)
class ModelRow:
    """One line of ``list_models``. Also readable as a mapping (``row['name']``)."""

    name: str
    role: str
    license: str
    commercial: bool
    default: bool
    cached: bool

    def __getitem__(self, key: str):
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


def load_manifest(path: Path = DEFAULT_MANIFEST) -> dict[str, ModelSpec]:
    """Parse the manifest into ``{name: ModelSpec}``. A malformed manifest is a ModelError naming the file."""
    try:
        with open(path) as fh:
            # the safe loader in C (libyaml) where PyYAML has it: the manifest is read by every pass, ~10x faster
            raw = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["models"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot read the model manifest {path}: {type(exc).__name__}") from None
    known = {f.name for f in fields(ModelSpec)}
    out: dict[str, ModelSpec] = {}
    for name, entry in raw.items():
        entry = dict(entry or {})
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ModelError(f"model manifest {path}: entry {name!r} has unknown keys {unknown}")
        entry["sources"] = tuple(entry.get("sources") or ())
        entry["pack_files"] = tuple(entry.get("pack_files") or ())
        entry["sha256"] = str(entry.get("sha256") or "")
        try:
            out[name] = ModelSpec(name=name, **entry)
        except TypeError as exc:
            raise ModelError(f"model manifest {path}: entry {name!r} is incomplete ({exc})") from None
    return out


def models_dir() -> Path:
    return cache_home() / "models"


def insightface_root(insightface_dir: str | Path | None = None) -> Path | None:
    """The InsightFace pack folder: the argument (config key ``insightface_dir``) or ``$VIDSWAP_INSIGHTFACE_DIR``."""
    chosen = insightface_dir if insightface_dir else os.environ.get(INSIGHTFACE_ENV)
    return Path(chosen).expanduser() if chosen else None


def _pack_candidates(spec: ModelSpec, root: Path) -> Iterable[Path]:
    names = (spec.file, *spec.pack_files)
    for depth in ("", "*", "*/*"):
        for name in names:
            pattern = f"{depth}/{name}" if depth else name
            yield from sorted(root.glob(pattern))


def find_in_pack(spec: ModelSpec, insightface_dir: str | Path | None = None) -> Path | None:
    """A file for ``spec`` in the InsightFace pack folder (not verified), or None."""
    root = insightface_root(insightface_dir)
    if root is None or not spec.pack_eligible or not root.is_dir():
        return None
    for path in _pack_candidates(spec, root):
        if path.is_file():
            return path
    return None


def _check(spec: ModelSpec, path: Path) -> bool:
    if not path.is_file():
        raise ModelError(f"model {spec.name} at {path} is not a file; remove it and run: {fetch_command(spec)}")
    try:
        return not spec.pinned or sha256_of(path) == spec.sha256
    except OSError as exc:
        raise ModelError(f"model {spec.name} at {path} cannot be read ({exc.strerror}); fix its permissions or "
                         f"run: {fetch_command(spec)}") from None


def model_path(name: str, manifest: dict[str, ModelSpec] | None = None, verify: bool = True,
               insightface_dir: str | Path | None = None) -> Path:
    """Path of a cached, verified model file. Raises ModelError (exit 4) with the fetch command otherwise.

    Non-default, non-commercial entries missing from the cache are also looked for in the InsightFace pack
    folder (``insightface_dir`` or ``$VIDSWAP_INSIGHTFACE_DIR``; see the module doc).
    """
    manifest = manifest if manifest is not None else load_manifest()
    if name not in manifest:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(manifest))}")
    spec = manifest[name]
    path = models_dir() / spec.file
    if path.exists():
        if verify and not _check(spec, path):
            raise ModelError(f"model {name} at {path} is corrupt (sha256 mismatch); run: {fetch_command(spec)}")
        return path
    packed = find_in_pack(spec, insightface_dir)
    if packed is not None:
        if verify and not _check(spec, packed):
            raise ModelError(f"model {name} at {packed} (InsightFace folder) is not the pinned file "
                             f"(sha256 mismatch); run: {fetch_command(spec)}")
        return packed
    where = f"the cache {models_dir()}"
    if spec.pack_eligible and insightface_root(insightface_dir) is not None:
        where += f" or the InsightFace folder {insightface_root(insightface_dir)}"
    raise ModelError(f"model {name} ({spec.file}) is not in {where}; run: {fetch_command(spec)}")


def model_bytes(name: str, manifest: dict[str, ModelSpec] | None = None,
                insightface_dir: str | Path | None = None) -> bytes:
    """The bytes of a cached model, read once and checked against the pinned sha256 in memory: what is loaded
    is what was verified (no check-then-reopen window). ModelError (exit 4) as :func:`model_path`."""
    manifest = manifest if manifest is not None else load_manifest()
    path = model_path(name, manifest, verify=False, insightface_dir=insightface_dir)
    spec = manifest[name]
    if not path.is_file():
        raise ModelError(f"model {name} at {path} is not a file; remove it and run: {fetch_command(spec)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {name} at {path} cannot be read ({exc.strerror}); fix its permissions or "
                         f"run: {fetch_command(spec)}") from None
    if spec.pinned and hashlib.sha256(data).hexdigest() != spec.sha256:
        raise ModelError(f"model {name} at {path} is corrupt (sha256 mismatch); run: {fetch_command(spec)}")
    return data


def fetch_command(spec: ModelSpec) -> str:
    if spec.sources:
        return f"vidswap models fetch {spec.name}"
    where = f" (download {spec.file} from {spec.url})" if spec.url else ""
    return f"vidswap models add {spec.name} /path/to/{spec.file}{where}"


def check_licence(spec: ModelSpec, accepted: Iterable[str]) -> None:
    """A non-commercial model runs only when its name is in ``models.accept_noncommercial`` (ConfigError, exit 2,
    naming the licence and the config line to add otherwise)."""
    if spec.commercial or spec.name in set(accepted):
        return
    raise ConfigError(f"model {spec.name} is licensed '{spec.license}' (non-commercial); acknowledge it in the "
                      f"config with models.accept_noncommercial: [{spec.name}] before using it")


def fetch_model(spec: ModelSpec) -> Path:
    """Fetch one model into the cache (verifies sha256; atomic)."""
    if not spec.sources:
        raise ModelError(f"model {spec.name} has no public source; supply it with: {fetch_command(spec)}")
    if not spec.pinned:
        raise ModelError(f"model {spec.name} has sources but no sha256 in the manifest; pin it before fetching")
    return fetch_artifact(spec.file, spec.sha256, list(spec.sources), models_dir())


def _unknown(manifest: dict[str, ModelSpec], names: Iterable[str]) -> None:
    missing = [n for n in names if n not in manifest]
    if missing:
        raise UsageError(f"unknown model {', '.join(map(repr, missing))}; known: {', '.join(sorted(manifest))}")


def list_models(manifest: dict[str, ModelSpec], insightface_dir: str | Path | None = None) -> list[ModelRow]:
    """One row per manifest entry, manifest order. ``cached``: the file is present in the cache (or, for
    pack-eligible entries, in the InsightFace folder); presence only, no hashing (see ``verify_models``)."""
    rows = []
    for spec in manifest.values():
        cached = (models_dir() / spec.file).is_file() or find_in_pack(spec, insightface_dir) is not None
        rows.append(ModelRow(spec.name, spec.role, spec.license, spec.commercial, spec.default, cached))
    return rows


def fetch_models(manifest: dict[str, ModelSpec], names: list[str] | None = None, defaults: bool = False
                 ) -> list[Path]:
    """Fetch the named models and/or every default one; returns their cache paths in that order.

    Already-cached verified files are reused without network. Non-default (e.g. non-commercial) models are
    fetched only when named. Raises UsageError for unknown names or when nothing is asked for, ModelError
    when a model cannot be fetched (no source, every source failing or giving the wrong bytes).
    """
    wanted: list[str] = []
    if defaults:
        wanted += [n for n, s in manifest.items() if s.default]
    if names:
        _unknown(manifest, names)
        wanted += [n for n in names if n not in wanted]
    if not wanted:
        raise UsageError("name models to fetch, or ask for the defaults (--defaults)")
    return [fetch_model(manifest[n]) for n in wanted]


def verify_models(manifest: dict[str, ModelSpec], insightface_dir: str | Path | None = None
                  ) -> list[tuple[str, str]]:
    """``(name, status)`` per manifest entry; status is ``ok``, ``missing`` or ``corrupt`` (sha256 mismatch).

    Pack-eligible entries absent from the cache are checked in the InsightFace folder when one is set.
    """
    out = []
    for name, spec in manifest.items():
        path = models_dir() / spec.file
        if not path.is_file():
            path = find_in_pack(spec, insightface_dir)
        if path is None or not path.is_file():
            out.append((name, "missing"))
        else:
            out.append((name, "ok" if _check(spec, path) else "corrupt"))
    return out


def add_model(manifest: dict[str, ModelSpec], name: str, file: Path) -> Path:
    """Copy a user-supplied model file into the cache as entry ``name``; returns the cache path.

    The file's sha256 must match the manifest's pin when there is one (ModelError otherwise, cache untouched).
    The copy is atomic (temporary name, then rename). Raises UsageError for an unknown name, InputError for a
    missing or unreadable file.
    """
    _unknown(manifest, [name])
    spec = manifest[name]
    file = Path(file).expanduser()
    if not file.is_file():
        raise InputError(f"model file {file} does not exist or is not a file; give the path of {spec.file}")
    try:
        got = sha256_of(file)
    except OSError as exc:
        raise InputError(f"cannot read model file {file}: {exc.strerror or exc}") from None
    if spec.pinned and got != spec.sha256:
        raise ModelError(f"{file} is not the {name} model the manifest pins (sha256 {got[:12]}... != "
                         f"{spec.sha256[:12]}...); supply the file {spec.file}")
    if spec.family:  # the graph must be the family the entry's wrapper expects (exit 4 otherwise)
        route(file, expect=spec.family)
    dest_dir = models_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / spec.file
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.file}.", suffix=".part", dir=dest_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(file, tmp)
        if sha256_of(tmp) != got:
            raise ModelError(f"copying {file} into the cache changed its bytes; check the disk and retry")
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final
