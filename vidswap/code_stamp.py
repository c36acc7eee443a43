"""The code stamp of job-folder records: a digest of the running package's Python sources.

Every record a job keeps for later tasks (the source photos' analysis, the prepared identity, the per-target set-up)
and the names of its render chunks carry it, so a shot re-run after an upgrade, or after a local edit of the code,
never reads back what other code made.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["package_digest", "record_stamp"]


@functools.cache
def package_digest(package: Path = Path(__file__).resolve().parent) -> str:
    """sha256 of the Python sources under ``package`` (the installed vidswap by default): each file's path relative
    to it and its bytes, in sorted path order (~5 ms for the package, read once a process: a job stamps its source,
    identity and target records and names its chunks with it)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def record_stamp(key: str, code: str) -> str:
    """What a record is written and read back under: its ``key`` and the code that made it (:func:`package_digest`).
    The file's name comes from the key alone, so a record made by other code is overwritten, not kept beside."""
    return f"{key}|{code}"
