"""Prepared ONNX graphs kept on disk: :func:`~vidswap.models.runtime.prepare_onnx` once per model, not once per run.

Preparing a graph (inputs no node reads dropped, symbolic batch and spatial dimensions, YuNet's batch-1 reshapes)
takes milliseconds, but the ``onnx`` package it needs takes 0.7-0.8 s to import on the project's machines (most of
it ``ml_dtypes``' extension): that was a fixed cost of every analysis, a tenth of a 1080p ``--preview`` run
(lead s21, ``benchmarks/RESULTS.md``). The prepared bytes are written to ``<models>/prepared/`` under a key of the
source model's sha256, the preparation's options and :data:`PREPARE_REVISION`, with the sha256 of the prepared
bytes beside them; a later run reads them back, checks that sha256 and skips the import. A missing, damaged or
unreadable entry is prepared again; a cache that cannot be written is only a slower run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vidswap.errors import InputError, MediaError
from vidswap.io.atomic import atomic_file
from vidswap.models.registry import models_dir
from vidswap.models.runtime import prepare_onnx

__all__ = ["PREPARE_REVISION", "prepared_key", "prepared_onnx"]

#: bumped whenever :func:`~vidswap.models.runtime.prepare_onnx` changes what it writes for the same options
PREPARE_REVISION = 1


def prepared_key(model: bytes, **options: bool) -> str:
    """The cache key of ``model``'s bytes prepared with ``options`` (32 hex digits)."""
    source = hashlib.sha256(model).hexdigest()
    flags = ",".join(f"{k}={int(bool(v))}" for k, v in sorted(options.items()))
    return hashlib.sha256(f"{PREPARE_REVISION}|{source}|{flags}".encode()).hexdigest()[:32]


def prepared_onnx(model: Path | bytes, cache: Path | None = None, **options: bool) -> bytes:
    """``prepare_onnx(model, **options)``, read from ``cache`` (default ``<models>/prepared``) when an earlier run
    wrote it there, else prepared and written there.

    Args:
        model: an ONNX file or its verified bytes (:func:`vidswap.models.registry.model_bytes`).
        cache: the folder of prepared graphs.
        options: ``prepare_onnx``'s keyword options (``dynamic_batch``, ``dynamic_spatial``, ``batch_reshapes``).

    Returns:
        the prepared graph's serialized bytes, equal to what ``prepare_onnx`` returns for them.
    """
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    folder = cache if cache is not None else models_dir() / "prepared"
    key = prepared_key(data, **options)
    graph, record = folder / f"{key}.onnx", folder / f"{key}.sha256"
    try:
        want = record.read_text().strip()
        kept = graph.read_bytes()
        if hashlib.sha256(kept).hexdigest() == want:
            return kept
    except (OSError, UnicodeDecodeError):
        pass
    out = prepare_onnx(data, **options)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(graph) as temp:
            temp.write_bytes(out)
        with atomic_file(record) as temp:  # written last: a graph without its record is never read
            temp.write_text(hashlib.sha256(out).hexdigest() + os.linesep)
    except (OSError, InputError, MediaError):  # a read-only or full cache: the next run prepares it again
        pass
    return out
