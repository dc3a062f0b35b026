"""Politeness: requests in flight and started per host, server-asked pauses, robots tags.

- **Concurrency.** At most ``per_host_limit`` requests in flight per host (keyed by
  the address the host resolves to, ``_address.politeness_key``, so every spelling of
  one server shares one limit). In a
  ``dask.distributed`` worker the limit is a ``distributed.Semaphore`` per host, held
  by the scheduler, so it holds across the whole cluster; each worker process leases
  its slots in batches and a dead worker's come back within seconds (``_leases``).
  Elsewhere a semaphore per process, shared by its threads.
- **Waiting.** A request waits for its slot up to ``slot_wait`` seconds
  (``HttpOptions``), a bound of its own: the wait is not charged to the URL's deadline.
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

from ..._fork import reset_in_child
from ._leases import LeasePool
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


class _ProcessSlots:
    """A host's slots in this process: a semaphore shared by its threads."""

    __slots__ = ("_semaphore",)

    def __init__(self, leases: int) -> None:
        self._semaphore = threading.BoundedSemaphore(leases)

    def acquire(self, timeout: float) -> float | None:
        return 0.0 if self._semaphore.acquire(timeout=max(0.0, timeout)) else None

    def release(self, token: float) -> None:
        self._semaphore.release()


#: A ``_ProcessSlots`` or, on a cluster, a ``_leases.LeasePool``: ``acquire(timeout)``
#: gives a token (None if the time ran out), ``release(token)`` gives the slot back.
_Slots = Any

_local_slots: dict[tuple[str, str, int], _ProcessSlots] = {}
_cluster_slots: dict[tuple[str, str, str, int], LeasePool] = {}
_registry_lock = threading.Lock()
# a forked worker counts its own requests in flight (its share of the limits)
reset_in_child(globals(), locks=["_registry_lock"], clear=["_local_slots", "_cluster_slots"])


def host_limit(host: str, limit: int) -> threading.BoundedSemaphore:
    """The semaphore bounding requests in flight to ``host`` in this process."""
    return _process_slots("limit", host, limit)._semaphore


def _process_slots(kind: str, host: str, leases: int) -> _ProcessSlots:
    key = (kind, host.lower(), leases)
    slots = _local_slots.get(key)
    if slots is None:
        with _registry_lock:
            slots = _local_slots.setdefault(key, _ProcessSlots(leases))
    return slots


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


def _slots(kind: str, host: str, leases: int) -> _Slots:
    """Cluster-wide on a ``distributed`` worker (leased in batches), else per process."""
    worker = _cluster_worker()
    if worker is None:
        return _process_slots(kind, host, leases)
    key = (str(worker.id), kind, host.lower(), leases)  # a new worker: pools of its own
    slots = _cluster_slots.get(key)
    if slots is None:
        with _registry_lock:
            slots = _cluster_slots.get(key)
            if slots is None:
                for old in [k for k, pool in _cluster_slots.items() if pool.closing()]:
                    del _cluster_slots[old]  # a closed worker's (an in-process cluster's)
                name = f"creevey_dask-{kind}-{leases}-{host.lower()}"
                slots = _cluster_slots[key] = LeasePool(worker, name, leases)
    return slots


# -- giving rate tokens back after their time --------------------------------------------

_due: list[tuple[float, int, _Slots, float]] = []
_due_counter = itertools.count()
_due_cond = threading.Condition()
_releaser: threading.Thread | None = None


def _release_later(slots: _Slots, token: float, delay: float) -> None:
    global _releaser
    with _due_cond:
        heapq.heappush(_due, (time.monotonic() + delay, next(_due_counter), slots, token))
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
            _, _, slots, token = heapq.heappop(_due)
        with contextlib.suppress(Exception):  # a cluster gone away: its leases expire there
            slots.release(token)


class HostSlot:
    """A held request slot for one host; :meth:`release` it when the request is done."""

    __slots__ = ("_slots", "_token")

    def __init__(self, slots: _Slots, token: float) -> None:
        self._slots = slots
        self._token = token

    def release(self) -> None:
        self._slots.release(self._token)


def take_slot(
    host: str, per_host_limit: int, per_host_rate: float | None, timeout: float
) -> HostSlot | None:
    """Wait up to ``timeout`` seconds for a request slot (and a rate token) for ``host``.

    Returns None if the time ran out. The rate token is taken after the concurrency
    slot, just before the request starts, and given back on its own schedule.
    """
    end = time.monotonic() + timeout
    slots = _slots("limit", host, per_host_limit)
    token = slots.acquire(timeout)
    if token is None:
        return None
    if per_host_rate is not None:
        leases = max(1, math.floor(per_host_rate))
        tokens = _slots("rate", host, leases)
        rate_token = tokens.acquire(end - time.monotonic())
        if rate_token is None:
            slots.release(token)
            return None
        _release_later(tokens, rate_token, max(1.0, leases / per_host_rate) + RATE_MARGIN)
    return HostSlot(slots, token)


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
