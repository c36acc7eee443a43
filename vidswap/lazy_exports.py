"""Deferred imports: lazy re-exports for a package's ``__init__`` (PEP 562), where a name is imported from its module
on first use, and imports made on a background thread (:func:`import_in_background`).

The re-exports are used by the packages whose modules import torch or kornia (:mod:`vidswap.swap`,
:mod:`vidswap.composite`), so that their torch-free modules can be imported, as a pass-through run does, without
pulling the rest in. Imports nothing itself but :mod:`importlib` and :mod:`threading`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
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


def import_in_background(modules: Iterable[str], name: str = "vidswap-imports") -> threading.Thread:
    """Import ``modules`` on a daemon thread, started now; join it before the code that needs them.

    For imports that take long in Python (``filterpy`` pulls in ``scipy.stats``: ~0.5 s) while the caller's thread
    spends its time in native code that releases the GIL (the analysis's models). An import that fails here is
    left to fail again, with its own error, where the module is imported for use.
    """

    def run() -> None:
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - reported by the real import
                return

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
