"""The model manifest (``configs/models.yaml``) and the local model cache.

``model_path(name)`` is what render-time code calls: it never touches the network, and a missing or
corrupt file is a ``ModelError`` (exit 4) naming the exact fetch command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from vidswap.errors import ModelError
from vidswap.models.sources import cache_home, fetch_artifact, sha256_of

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "configs" / "models.yaml"


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry."""

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


def load_manifest(path: Path = DEFAULT_MANIFEST) -> dict[str, ModelSpec]:
    """Parse the manifest into ``{name: ModelSpec}``."""
    with open(path) as fh:
        raw = yaml.safe_load(fh)["models"]
    return {name: ModelSpec(name=name, sources=tuple(entry.pop("sources", []) or []), **entry)
            for name, entry in ((n, dict(e)) for n, e in raw.items())}


def models_dir() -> Path:
    return cache_home() / "models"


def model_path(name: str, manifest: dict[str, ModelSpec] | None = None, verify: bool = True) -> Path:
    """Path of a cached, verified model file. Raises ModelError (exit 4) with the fetch command otherwise."""
    manifest = manifest if manifest is not None else load_manifest()
    if name not in manifest:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(manifest))}")
    spec = manifest[name]
    path = models_dir() / spec.file
    if not path.exists():
        raise ModelError(f"model {name} ({spec.file}) is not in the cache {models_dir()}; "
                         f"run: {fetch_command(spec)}")
    if verify and sha256_of(path) != spec.sha256:
        raise ModelError(f"model {name} at {path} is corrupt (sha256 mismatch); run: {fetch_command(spec)}")
    return path


def fetch_command(spec: ModelSpec) -> str:
    if spec.sources:
        return f"vidswap models fetch {spec.name}"
    return f"vidswap models add {spec.name} /path/to/{spec.file}"


def fetch_model(spec: ModelSpec) -> Path:
    """Fetch one model into the cache (verifies sha256; atomic)."""
    if not spec.sources:
        raise ModelError(f"model {spec.name} has no public source; supply it with: {fetch_command(spec)}")
    return fetch_artifact(spec.file, spec.sha256, list(spec.sources), models_dir())
