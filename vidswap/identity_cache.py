"""The swap core's prepared source identity (:meth:`SwapCore.prepare`) kept in the job folder, so a farm render task
or a re-run of the shot does not prepare the sources again (the relit core's source albedo took ~17 s of a 1080p
render task's start-up, issue 19).

A record is keyed by the core's name and settings, the device kind and the sources (their files' bytes and the
analysis models' hashes, :func:`vidswap.source_cache.source_key`), and stamped with the code that prepared it
(:mod:`vidswap.code_stamp`): a shot re-run after an upgrade, or after a local edit of the code, prepares its
sources again instead of reading back an identity the running code would not have made. It holds the
identity's tensors (safetensors, bit-exact) and its plain fields (JSON); the identity read back equals the one
:meth:`SwapCore.prepare` returned. An identity with a field that is neither a tensor nor a plain value is not
recorded (prepared every time); a missing, unreadable, other-keyed or other-code record is prepared again and
rewritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vidswap.code_stamp import record_stamp
from vidswap.io.atomic import atomic_file
from vidswap.swap import SourceFace, SourceIdentity, SwapCore

PLAIN = (int, float, bool, str, type(None))


def identity_key(core_name: str, settings: dict, device: torch.device | str, source_keys: list[str]) -> str:
    """sha256 of the core's name and settings, the device kind and the sources' keys (in order)."""
    blob = json.dumps({"core": core_name, "settings": settings, "device": torch.device(device).type,
                       "sources": source_keys}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def split_identity(identity: SourceIdentity) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(tensors by field, plain fields) of ``identity``, or None when a field is neither (not recordable)."""
    tensors, plain = {}, {}
    for f in dataclasses.fields(identity):
        value = getattr(identity, f.name)
        if isinstance(value, torch.Tensor):
            tensors[f.name] = value.detach().to("cpu").clone().contiguous()  # no shared storage
        elif isinstance(value, PLAIN):
            plain[f.name] = value
        else:
            return None
    return tensors, plain


def write_identity(path: Path, key: str, identity: SourceIdentity) -> bool:
    """Record ``identity`` at ``path`` (atomically); False when it is not recordable."""
    parts = split_identity(identity)
    if parts is None:
        return False
    tensors, plain = parts
    kind = type(identity)
    meta = {"key": key, "type": f"{kind.__module__}.{kind.__qualname__}", "plain": json.dumps(plain)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as temp:
        save_file(tensors, str(temp), metadata=meta)
    return True


def identity_types() -> dict[str, type[SourceIdentity]]:
    """Every loaded subclass of :class:`SourceIdentity` (and itself) by ``module.qualname``: the only types a
    record is read back as."""
    found, todo = {}, [SourceIdentity]
    while todo:
        kind = todo.pop()
        found[f"{kind.__module__}.{kind.__qualname__}"] = kind
        todo.extend(kind.__subclasses__())
    return found


def read_identity(path: Path, key: str, device: torch.device | str) -> SourceIdentity | None:
    """The identity recorded at ``path`` for ``key`` on ``device``; None if absent, unreadable, other-keyed or
    of a type that is not a loaded :class:`SourceIdentity`."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            kind = identity_types().get(meta.get("type", ""))
            if meta.get("key") != key or kind is None:
                return None
            values = {name: f.get_tensor(name).to(device) for name in f.keys()}
        values.update(json.loads(meta["plain"]))
        return kind(**values)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, SafetensorError):
        return None


def cached_identity(core: SwapCore, key: str, sources: list[SourceFace], folder: Path,
                    device: torch.device | str, code: str) -> SourceIdentity:
    """``core.prepare(sources)``, read from ``folder`` when recorded there under ``key`` (:func:`identity_key`:
    the same core, settings, device kind and sources) by the same ``code``
    (:func:`~vidswap.code_stamp.package_digest`); prepared and recorded otherwise."""
    path = folder / f"{key[:32]}.safetensors"
    stamp = record_stamp(key, code)
    identity = read_identity(path, stamp, device) if path.exists() else None
    if identity is None:
        identity = core.prepare(sources)
        write_identity(path, stamp, identity)
    return identity
