"""What a forked worker process must not inherit: the one rule for module state after fork.

The default strategy forks worker processes from the caller
(:mod:`creevey_dask.engine.processes`). A child starts with a copy of the caller's
memory, and two kinds of module state in it are wrong there: *locks*, which another
thread of the caller may have held at the moment of the fork and which no thread of
the child will ever release, and *caches of live objects* (filesystems with their own
event loop, connection slots), which belong to the caller's threads and sockets. A
module that keeps either registers them here, once, at import:
:func:`reset_in_child` gives each named lock a fresh one and empties each named cache
in every forked child. Caches of plain data (parsed indexes, remembered host keys)
stay: the child may use what the caller already knows.

This module imports nothing of ours (a leaf), so every layer may use it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["reset_in_child"]


def reset_in_child(
    namespace: MutableMapping[str, Any],
    *,
    locks: Iterable[str] = (),
    clear: Iterable[str] = (),
) -> None:
    """In every child forked from now on, renew the named locks and empty the named caches.

    Parameters
    ----------
    namespace : mapping
        The module's globals (``globals()``), where the names are looked up in the child.
    locks : iterable of str
        Names of module-level :class:`threading.Lock` objects: each gets a new lock.
    clear : iterable of str
        Names of module-level containers (dicts, sets) of live objects: each is emptied.

    Examples
    --------
    >>> _cache: dict[str, object] = {}
    >>> _cache_lock = threading.Lock()
    >>> reset_in_child(globals(), locks=["_cache_lock"], clear=["_cache"])
    """
    lock_names, cache_names = tuple(locks), tuple(clear)

    def reset() -> None:
        for name in lock_names:
            namespace[name] = threading.Lock()
        for name in cache_names:
            namespace[name].clear()

    if hasattr(os, "register_at_fork"):  # not on Windows, which never forks
        os.register_at_fork(after_in_child=reset)
