"""Atomic outputs: write under a temporary name in the destination directory, rename when complete.

A failed or interrupted write (any exception, KeyboardInterrupt included) leaves nothing under the final
name and removes its temporary files.  Temporary names start with ``.vidswap-tmp-`` so a crash that kills
the process outright leaves files that are easy to recognise and clean.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidswap.errors import InputError, MediaError

TEMP_PREFIX = ".vidswap-tmp-"


def ensure_writable_dir(directory: Path, output: str | Path) -> None:
    """Create ``directory`` if needed and prove a file can be created in it; InputError otherwise.

    A real create-and-delete test (not ``os.access``) so read-only mounts, full quotas and root-squashed
    shares are caught before any work is done.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe_path = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
        os.close(fd)
        os.unlink(probe_path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(f"cannot write the output {output}: directory {directory} is not writable ({reason}); "
                         "pick another output path or fix its permissions") from None


def temp_name(final: Path) -> Path:
    """A unique temporary sibling of ``final`` that keeps its extension (muxers and encoders pick by it)."""
    return final.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{final.name}")


def _remove(path: Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


@contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it to ``final``, else delete it."""
    temp = temp_name(final)
    try:
        yield temp
    except BaseException:
        _remove(temp)
        raise
    try:
        os.replace(temp, final)
    except OSError as exc:
        _remove(temp)
        raise MediaError(f"could not move the finished output into place as {final} ({exc.strerror}); "
                         "check the destination and retry") from None


@contextmanager
def atomic_files(directory: Path) -> Iterator[Path]:
    """Yield a temporary directory inside ``directory``; files written into it under their final names are
    moved into ``directory`` when the block succeeds, and the temporary directory is removed either way.

    Files of ``directory`` that were not written this time are left alone (farm chunks of one sequence
    share a directory).
    """
    staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=directory))
    try:
        yield staging
        try:
            for entry in sorted(staging.iterdir()):
                os.replace(entry, directory / entry.name)
        except OSError as exc:
            raise MediaError(f"could not move the finished frames into {directory} ({exc.strerror}); "
                             "check the destination and retry") from None
    finally:
        _remove(staging)
