"""Old import paths that keep working for one release, with a :class:`DeprecationWarning`.

A module whose names moved defines ``__getattr__ = moved(__name__, {"old": "new.module"})``;
a module that moved as a whole is replaced by a stub that calls :func:`module_moved`.
The new module is imported by name (``importlib``) only when the old name is used, so
an alias never adds an import edge from a lower layer to a higher one.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["moved", "module_moved"]


def moved(module: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves ``names`` (old name -> new module) with a warning."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target = names[name]
        warnings.warn(
            f"{module}.{name} moved to {target}.{name}; the old path goes away in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(target), name)

    return __getattr__


def module_moved(old: str, new: str) -> Any:
    """Warn that module ``old`` is now ``new`` and return the new module."""
    warnings.warn(
        f"the module {old} moved to {new}; the old path goes away in the next release.",
        DeprecationWarning,
        stacklevel=3,
    )
    return importlib.import_module(new)
