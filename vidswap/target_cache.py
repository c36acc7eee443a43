"""The per-target identity (:meth:`SwapCore.for_target`: the relit core's track albedo and plate light) kept in the
job folder, so each farm render task of a shot does not set up the same target again (~1.8 CPU s a task, issue 19).

A record holds only the fields ``for_target`` changed on the prepared identity: tensors (safetensors, bit-exact),
plain values and tuples of them (JSON), and dataclasses of those (a ``vidswap`` dataclass such as
:class:`~vidswap.appearance.relight.PlateLight`, its tensors stored as ``field.sub``). It is keyed by the prepared
identity's record key (core, settings, device kind, sources) and a digest of the track's arrays the set-up reads
(smoothed landmarks, neutral shape, appearance model), and stamped with the code that made it
(:func:`~vidswap.code_stamp.record_stamp`), so a record from another analysis, other settings or other code is
never used. A missing, unreadable, other-keyed or other-code record is computed again (as before records existed)
and rewritten in place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vidswap.faces.tracksfile import TrackAnalysis
from vidswap.code_stamp import record_stamp
from vidswap.io.atomic import atomic_file
from vidswap.swap import SourceIdentity, SwapCore

PLAIN = (int, float, bool, str, type(None))


def track_digest(track: TrackAnalysis) -> str:
    """sha256 of the track's id, smoothed landmarks, neutral shape and appearance arrays (names, dtypes, shapes,
    bytes)."""
    h = hashlib.sha256(f"track {track.id}".encode())
    arrays = [("smoothed", track.smoothed), ("neutral", track.neutral)] + sorted((track.appearance or {}).items())
    for name, value in arrays:
        a = np.ascontiguousarray(np.asarray(value))
        h.update(f"|{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def target_key(identity_key: str, track: TrackAnalysis) -> str:
    """The record key of one target: the prepared identity's key and the track's digest."""
    return hashlib.sha256(f"{identity_key}|{track_digest(track)}".encode()).hexdigest()


def _plain(value) -> bool:
    return isinstance(value, PLAIN) or (isinstance(value, tuple) and all(isinstance(v, PLAIN) for v in value))


def split_changes(base: SourceIdentity, target: SourceIdentity) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(tensors by name, JSON-able description) of the fields ``target`` does not share with ``base`` (by object
    identity), or None when one of them is not recordable."""
    tensors, fields = {}, {}
    for f in dataclasses.fields(target):
        value = getattr(target, f.name)
        if value is getattr(base, f.name, None):
            continue
        if isinstance(value, torch.Tensor):
            tensors[f.name] = value.detach().to("cpu").clone().contiguous()
            fields[f.name] = {"kind": "tensor"}
        elif _plain(value):
            fields[f.name] = {"kind": "tuple" if isinstance(value, tuple) else "plain",
                              "value": list(value) if isinstance(value, tuple) else value}
        elif dataclasses.is_dataclass(value) and type(value).__module__.startswith("vidswap."):
            sub = {}
            for g in dataclasses.fields(value):
                v = getattr(value, g.name)
                if isinstance(v, torch.Tensor):
                    tensors[f"{f.name}.{g.name}"] = v.detach().to("cpu").clone().contiguous()
                elif isinstance(v, PLAIN):
                    sub[g.name] = v
                else:
                    return None
            kind = type(value)
            fields[f.name] = {"kind": "dataclass", "type": f"{kind.__module__}:{kind.__qualname__}", "plain": sub}
        else:
            return None
    return tensors, fields


def write_target(path: Path, key: str, base: SourceIdentity, target: SourceIdentity) -> bool:
    """Record what ``target`` changed on ``base`` at ``path`` (atomically); False when it is not recordable."""
    parts = split_changes(base, target)
    if parts is None:
        return False
    tensors, fields = parts
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as temp:
        save_file(tensors, str(temp), metadata={"key": key, "fields": json.dumps(fields)})
    return True


def declared_dataclass(kind: type, name: str) -> type | None:
    """The dataclass type that ``kind`` (an identity dataclass) declares for its field ``name`` (``X`` or
    ``X | None``); None when it declares none or its annotations cannot be resolved."""
    try:  # torch's names given: the contract's module (vidswap.swap.base) imports torch for type checkers only
        hint = typing.get_type_hints(kind, localns={"torch": torch, "Tensor": torch.Tensor}).get(name)
    except (NameError, TypeError, AttributeError):
        return None
    for t in typing.get_args(hint) or (hint,):
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            return t
    return None


def read_target(path: Path, key: str, base: SourceIdentity, device: torch.device | str) -> SourceIdentity | None:
    """``base`` with the fields recorded at ``path`` for ``key`` (tensors on ``device``); None if absent,
    unreadable or other-keyed."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("key") != key:
                return None
            tensors = {name: f.get_tensor(name).to(device) for name in f.keys()}
        changes = {}
        for name, spec in json.loads(meta["fields"]).items():
            if spec["kind"] == "tensor":
                changes[name] = tensors[name]
            elif spec["kind"] == "plain":
                changes[name] = spec["value"]
            elif spec["kind"] == "tuple":
                changes[name] = tuple(spec["value"])
            elif spec["kind"] == "dataclass":  # the type comes from the code's declaration, never from the file
                kind = declared_dataclass(type(base), name)
                if kind is None or spec["type"] != f"{kind.__module__}:{kind.__qualname__}":
                    return None
                values = dict(spec["plain"])
                values.update({g.name: tensors[f"{name}.{g.name}"] for g in dataclasses.fields(kind)
                               if g.name not in values})
                changes[name] = kind(**values)
            else:
                return None
        return dataclasses.replace(base, **changes)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError, ImportError, SafetensorError):
        return None


def cached_target(core: SwapCore, identity: SourceIdentity, identity_key: str, track: TrackAnalysis,
                  folder: Path, device: torch.device | str, code: str) -> SourceIdentity:
    """``core.for_target(identity, track)``, read from ``folder`` when recorded there for the same prepared
    identity and track by the same ``code`` (:func:`~vidswap.code_stamp.package_digest`); computed and
    recorded otherwise (nothing is recorded when it returns ``identity``)."""
    key = target_key(identity_key, track)
    path = folder / f"target_{key[:32]}.safetensors"
    stamp = record_stamp(key, code)
    target = read_target(path, stamp, identity, device) if path.exists() else None
    if target is None:
        target = core.for_target(identity, track)
        if target is not identity:
            write_target(path, stamp, identity, target)
    return target
