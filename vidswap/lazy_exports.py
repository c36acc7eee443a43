"""Lazy re-exports for a package's ``__init__`` (PEP 562): a name is imported from its module on first use.

Used by the packages whose modules import torch or kornia (:mod:`vidswap.swap`, :mod:`vidswap.composite`), so that
their torch-free modules can be imported, as a pass-through run does, without pulling the rest in. Imports nothing
itself but :mod:`importlib`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's module-level ``__getattr__`` and ``__dir__``.

    Args:
        package: the package's ``__name__`` (for the error message).
        exports: re-exported name -> the module that declares it.
        namespace: the package's ``globals()``: a name is stored there once imported, so later lookups are plain.

    Returns:
        ``(__getattr__, __dir__)``; the first raises AttributeError for a name not in ``exports``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
