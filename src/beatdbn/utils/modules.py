"""Registries made of modules: every module of a package that declares a module-level object of a type."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import TypeVar

__all__ = ["declared"]

T = TypeVar("T")


def declared(package: ModuleType, name: str, kind: type[T]) -> list[T]:
    """The ``name`` attribute of every module of ``package`` where it is a ``kind`` (imports each module).

    Examples
    --------
    >>> import json
    >>> [c.__name__ for c in declared(json, "JSONDecoder", type)]
    ['JSONDecoder']
    """
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        value = getattr(importlib.import_module(f"{package.__name__}.{info.name}"), name, None)
        if isinstance(value, kind):
            found.append(value)
    return found
