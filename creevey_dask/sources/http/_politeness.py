"""Politeness: requests in flight and started per host, server-asked pauses, robots tags.

- **Concurrency.** At most ``per_host_limit`` requests in flight per host (keyed by
  the address the host resolves to, ``_address.politeness_key``, so every spelling of
  one server shares one limit). In a
  ``dask.distributed`` worker the limit is a ``distributed.Semaphore`` per host, held
  by the scheduler, so it holds across the whole cluster; elsewhere a semaphore per
  process, shared by its threads.
- **Rate.** With ``per_host_rate=r``, a request may start only while holding one of
  ``n = max(1, floor(r))`` tokens of its host, and a token is given back
  ``max(1, n / r)`` seconds (plus a small margin) after it was taken, whatever the
  request does. So in any one-second window at most ``floor(r)`` requests start (one
  per ``1 / r`` seconds for ``r < 1``). The tokens are a semaphore of the same kind as
  above (cluster-wide on a worker), the delay measured by the clock of the process that
  took the token, so no clocks need to agree.
- **Pauses.** A ``Retry-After`` on a 429 or 503 pauses every request of the process to
  that server (``address:port``, whatever the host's spelling).
- **Robots.** ``X-Robots-Tag`` opt-outs that apply to our User-Agent.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from ._options import DEFAULT_USER_AGENT

__all__ = [
    "ROBOTS_OPT_OUTS",
    "HostSlot",
    "host_limit",
    "host_pause",
    "pause_host",
    "robots_opt_out",
    "take_slot",
]

#: ``X-Robots-Tag`` directives that opt an image out of being downloaded by default.
ROBOTS_OPT_OUTS = frozenset({"noai", "noimageai", "noindex", "noimageindex", "none"})
#: Added to the time a rate token is held, against jitter between taking it and the
#: request reaching the server.
RATE_MARGIN = 0.05


#: A ``threading.BoundedSemaphore`` or a ``distributed.Semaphore``: acquire(timeout=), release().
_Semaphore = Any

_local_semaphores: dict[tuple[str, str, int], threading.BoundedSemaphore] = {}
_cluster_semaphores: dict[tuple[str, str, int], Any] = {}
_registry_lock = threading.Lock()


def host_limit(host: str, limit: int) -> threading.BoundedSemaphore:
    """The semaphore bounding requests in flight to ``host`` in this process."""
    return _process_semaphore("limit", host, limit)


def _process_semaphore(kind: str, host: str, leases: int) -> threading.BoundedSemaphore:
    key = (kind, host.lower(), leases)
    semaphore = _local_semaphores.get(key)
    if semaphore is None:
        with _registry_lock:
            semaphore = _local_semaphores.setdefault(key, threading.BoundedSemaphore(leases))
    return semaphore


def _cluster_worker() -> Any:
    """The ``distributed`` worker of this process, or None when not on a cluster.

    Rows run in the engine's own threads, which do not carry the task's context, so
    the worker is found among the process's running workers.
    """
    if "distributed" not in sys.modules:  # a worker process has imported it
        return None
    from distributed import Worker, get_worker

    try:
        return get_worker()
    except ValueError:
        pass
    running = [w for w in list(Worker._instances) if w.status.name == "running"]
    return running[0] if len(running) == 1 else None


def _semaphore(kind: str, host: str, leases: int) -> _Semaphore:
    """Cluster-wide on a ``distributed`` worker, else per process."""
    worker = _cluster_worker()
    if worker is None:
        return _process_semaphore(kind, host, leases)
    key = (kind, host.lower(), leases)
    semaphore = _cluster_semaphores.get(key)
    if semaphore is None:
        from distributed import Semaphore

        with _registry_lock:
            semaphore = _cluster_semaphores.get(key)
            if semaphore is None:
                semaphore = Semaphore(
                    max_leases=leases,
                    name=f"creevey_dask-{kind}-{leases}-{host.lower()}",
                    scheduler_rpc=worker.scheduler,
                    loop=worker.loop,
                )
                _cluster_semaphores[key] = semaphore
    return semaphore


# -- giving rate tokens back after their time --------------------------------------------

_due: list[tuple[float, int, _Semaphore]] = []
_due_counter = itertools.count()
_due_cond = threading.Condition()
_releaser: threading.Thread | None = None


def _release_later(semaphore: _Semaphore, delay: float) -> None:
    global _releaser
    with _due_cond:
        heapq.heappush(_due, (time.monotonic() + delay, next(_due_counter), semaphore))
        if _releaser is None or not _releaser.is_alive():
            _releaser = threading.Thread(
                target=_release_due, name="creevey_dask-rate-tokens", daemon=True
            )
            _releaser.start()
        _due_cond.notify()


def _release_due() -> None:
    while True:
        with _due_cond:
            while not _due or _due[0][0] > time.monotonic():
                _due_cond.wait(None if not _due else _due[0][0] - time.monotonic())
            _, _, semaphore = heapq.heappop(_due)
        with contextlib.suppress(Exception):  # a cluster gone away: its leases expire there
            semaphore.release()


class HostSlot:
    """A held request slot for one host; :meth:`release` it when the request is done."""

    __slots__ = ("_semaphore",)

    def __init__(self, semaphore: _Semaphore) -> None:
        self._semaphore = semaphore

    def release(self) -> None:
        self._semaphore.release()


def take_slot(
    host: str, per_host_limit: int, per_host_rate: float | None, timeout: float
) -> HostSlot | None:
    """Wait up to ``timeout`` seconds for a request slot (and a rate token) for ``host``.

    Returns None if the time ran out. The rate token is taken after the concurrency
    slot, just before the request starts, and given back on its own schedule.
    """
    end = time.monotonic() + timeout
    semaphore = _semaphore("limit", host, per_host_limit)
    if not semaphore.acquire(timeout=max(0.0, timeout)):
        return None
    if per_host_rate is not None:
        leases = max(1, math.floor(per_host_rate))
        tokens = _semaphore("rate", host, leases)
        if not tokens.acquire(timeout=max(0.0, end - time.monotonic())):
            semaphore.release()
            return None
        _release_later(tokens, max(1.0, leases / per_host_rate) + RATE_MARGIN)
    return HostSlot(semaphore)


# -- pauses asked for by the server ------------------------------------------------------

#: Per server (``address:port``): the monotonic time before which no request may start,
#: set from a ``Retry-After`` on a 429 or 503 and honoured by every thread of the process.
_host_pauses: dict[str, float] = {}


def pause_host(netloc: str, seconds: float) -> None:
    """Hold back every request of this process to ``netloc`` for ``seconds``."""
    until = time.monotonic() + seconds
    if until > _host_pauses.get(netloc, 0.0):
        _host_pauses[netloc] = until


def host_pause(netloc: str) -> float:
    """Seconds left of the pause the server ``netloc`` asked for (0 if none)."""
    until = _host_pauses.get(netloc)
    if until is None:
        return 0.0
    wait = until - time.monotonic()
    if wait <= 0:
        _host_pauses.pop(netloc, None)
        return 0.0
    return wait


def robots_opt_out(values: Iterable[str], user_agent: str = DEFAULT_USER_AGENT) -> str | None:
    """The first opt-out directive in ``X-Robots-Tag`` header values that applies to us.

    Directives scoped to another crawler (``otherbot: noindex``) do not apply; ones
    scoped to ``*`` or to our User-Agent's product name do.

    Examples
    --------
    >>> robots_opt_out(["noai, noimageai"])
    'noai'
    >>> robots_opt_out(["googlebot: noindex", "max-image-preview:large"]) is None
    True
    """
    product = user_agent.split("/")[0].strip().lower()
    for value in values:
        scope: str | None = None
        for raw in value.split(","):
            token = raw.strip().lower()
            if ":" in token:
                head, _, rest = token.partition(":")
                head, rest = head.strip(), rest.strip()
                if head in ROBOTS_OPT_OUTS or head.startswith(("max-", "unavailable_after")):
                    continue  # a directive with a value, e.g. max-image-preview:large
                scope, token = head, rest
            if scope not in (None, "*", product):
                continue
            if token in ROBOTS_OPT_OUTS:
                return token
    return None
