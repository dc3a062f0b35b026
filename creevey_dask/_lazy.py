"""Run a function when a module is imported (now, if it already is).

``import creevey_dask`` must register ``df.creevey`` on pandas and dask DataFrames
without importing pandas or dask itself (together about a second of start-up): the
registration runs when the user's code imports them, or at once if it already has.
The finder that watches for them leaves ``sys.meta_path`` once every hook has run.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["when_imported"]

_lock = threading.RLock()
_hooks: dict[str, list[Callable[[ModuleType], None]]] = {}


def when_imported(name: str, hook: Callable[[ModuleType], None]) -> None:
    """Call ``hook(module)`` once module ``name`` is imported: now if it is, else just
    after it is first executed."""
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _hooks.setdefault(name, []).append(hook)
            if not any(isinstance(f, _Finder) for f in sys.meta_path):
                sys.meta_path.insert(0, _Finder())
            return
    hook(module)


class _Loader(importlib.abc.Loader):
    """Wraps a module's own loader: executes the module, puts the real loader back, runs
    the hooks."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        if spec is not None:
            spec.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        with _lock:
            hooks = _hooks.pop(self._name, [])
            if not _hooks:  # its work done, the finder leaves the import system
                sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]
        for hook in hooks:
            hook(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the modules that have hooks with the other finders, and wraps their loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _hooks:  # every other import: one dict lookup, no lock
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, fullname)
        return spec
