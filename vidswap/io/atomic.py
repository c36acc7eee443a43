"""Atomic outputs: write under a temporary name in the destination directory, rename when complete.

A failed or interrupted write (any exception, KeyboardInterrupt included) leaves nothing under the final
name and removes its temporary files.  Temporary names start with ``.vidswap-tmp-<host>-<pid>-`` so a crash that
kills the process outright leaves files that are easy to recognise: the next atomic write into the same folder
removes those of dead processes of this host (:func:`remove_dead_temporaries`).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidswap.errors import TRANSIENT_ERRNOS, InputError, MediaError

TEMP_PREFIX = ".vidswap-tmp-"
_OWNED = re.compile(re.escape(TEMP_PREFIX) + r"([0-9a-f]{6})-(\d+)-")


def host_tag() -> str:
    """Six hex digits naming this machine in temporary names (a farm's workers share folders)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def owned_prefix() -> str:
    """The prefix of this process's temporaries: ``.vidswap-tmp-<host>-<pid>-``."""
    return f"{TEMP_PREFIX}{host_tag()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_dead_temporaries(directory: Path) -> list[Path]:
    """Remove the temporaries in ``directory`` left by killed processes of this host (a chunk task killed by the
    farm, a crash); those of live processes and of other hosts are left alone. Returns what was removed."""
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    me = host_tag()
    for entry in entries:
        match = _OWNED.match(entry.name)
        if match and match.group(1) == me and int(match.group(2)) != os.getpid() and not _alive(int(match.group(2))):
            _remove(entry)
            removed.append(entry)
    return removed


def ensure_writable_dir(directory: Path, output: str | Path) -> None:
    """Create ``directory`` if needed and prove a file can be created in it; InputError otherwise.

    A real create-and-delete test (not ``os.access``) so read-only mounts, full quotas and root-squashed
    shares are caught before any work is done.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe_path = tempfile.mkstemp(prefix=owned_prefix(), dir=directory)
        os.close(fd)
        os.unlink(probe_path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(f"cannot write the output {output}: directory {directory} is not writable ({reason}); "
                         "pick another output path or fix its permissions") from None


def check_writable_dir(directory: Path, output: str | Path) -> None:
    """Prove that ``directory`` exists or could be created, and that a file can be created in it, without
    creating anything that stays (InputError, exit 2, otherwise): the up-front check of every output path."""
    directory = Path(os.path.abspath(directory))
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot write {output}: folder {directory} is not writable ({existing} is a file, not a "
                         "folder); pick another path")
    try:
        fd, probe_path = tempfile.mkstemp(prefix=owned_prefix(), dir=existing)
        os.close(fd)
        os.unlink(probe_path)
    except OSError as exc:
        raise InputError(f"cannot write {output}: folder {existing} is not writable ({exc.strerror or exc}); "
                         "pick another path or fix its permissions") from None


def same_file(a: str | Path, b: str | Path) -> bool:
    """Two paths naming one file: equal real paths (links, ``..``, relative parts resolved) or, when both exist,
    the same inode (hard links, bind mounts)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def temp_name(final: Path) -> Path:
    """A unique temporary sibling of ``final`` that keeps its extension (muxers and encoders pick by it)."""
    return final.with_name(f"{owned_prefix()}{secrets.token_hex(4)}-{final.name}")


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
    remove_dead_temporaries(final.parent)
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
        if exc.errno not in TRANSIENT_ERRNOS:  # a folder under the name, permissions: retrying cannot help
            raise InputError(f"could not move the finished output into place as {final} ({exc.strerror}); "
                             "pick another output path") from None
        raise MediaError(f"could not move the finished output into place as {final} ({exc.strerror}); "
                         "check the destination and retry") from None


@contextmanager
def atomic_files(directory: Path) -> Iterator[Path]:
    """Yield a temporary directory inside ``directory``; files written into it under their final names are
    moved into ``directory`` when the block succeeds, and the temporary directory is removed either way.

    Files of ``directory`` that were not written this time are left alone (farm chunks of one sequence
    share a directory).
    """
    remove_dead_temporaries(directory)
    staging = Path(tempfile.mkdtemp(prefix=owned_prefix(), dir=directory))
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
