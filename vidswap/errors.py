"""Error types with the exit codes documented in README.md.

Every error the user can cause carries a one-line message (what, which file, what to do) and an exit code.
The CLI prints ``error: <message>`` and exits with ``exit_code``; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import errno
import reprlib

EXIT_OK = 0
EXIT_USAGE = 2  # usage error or bad input (permanent: a farm must not retry)
EXIT_NO_FACE = 3  # no usable face in a source image
EXIT_MODEL = 4  # model file missing or corrupt
EXIT_MEDIA = 5  # media read/write failure (retryable: disk, network share)
EXIT_RESOURCE = 75  # out of memory / transient resource shortage (EX_TEMPFAIL, retryable)
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT

#: errno values of I/O failures that can pass -- a full disk or quota, a network filesystem hiccup: exit 5
#: (retryable). Other OS errors on a user's path (permissions, a folder where a file belongs) are permanent: 2.
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN,
                              errno.ENOLCK, errno.ECONNRESET, errno.EHOSTDOWN, errno.ENETDOWN, errno.ENETUNREACH})


_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxdict, _BRIEF.maxlist, _BRIEF.maxtuple, _BRIEF.maxset = 2, 4, 4, 4, 4
_BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 60, 60, 40


def brief(value: object, limit: int = 80) -> str:
    """A bounded repr of ``value`` for a message: nested and long values are elided (``...``), so a huge or
    self-multiplying value (a YAML alias bomb) is never formatted whole."""
    text = _BRIEF.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class VidswapError(Exception):
    """Base class: a user-facing failure with an exit code and whether a farm may retry it."""

    exit_code: int = 1
    retryable: bool = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(str(self.message).split())


class UsageError(VidswapError):
    """Bad command line, bad config or bad input file (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Invalid config: unknown key, wrong type, bad YAML (exit 2)."""


class InputError(UsageError):
    """Input media missing, unreadable as media, or outside the requested range (exit 2)."""


class NoFaceError(VidswapError):
    """No usable face in a source image (exit 3)."""

    exit_code = EXIT_NO_FACE


class ModelError(VidswapError):
    """A model is missing from the cache or fails its sha256 check (exit 4)."""

    exit_code = EXIT_MODEL


class MediaError(VidswapError):
    """Reading or writing media failed mid-way (exit 5; retryable)."""

    exit_code = EXIT_MEDIA
    retryable = True


class ResourceError(VidswapError):
    """Out of memory or another transient resource shortage (exit 75; retryable)."""

    exit_code = EXIT_RESOURCE
    retryable = True
