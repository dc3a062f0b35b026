"""Cluster-wide request slots: a worker process's share of a ``distributed.Semaphore``.

On a ``dask.distributed`` worker the politeness limits of a host are the leases of one
``distributed.Semaphore``, held by the scheduler, so that they hold across the cluster.
This module owns how a worker process takes them:

- **Batched.** A :class:`LeasePool` per semaphore and process hands its threads the
  leases it holds without asking the scheduler; it asks only when its threads want more
  than it holds, several leases at once (one acquire each, concurrently, on the worker's
  event loop). A lease goes back to the scheduler when no thread of the process wanted
  it for :data:`IDLE_SECONDS`, or when the process has kept it for :data:`TURN_SECONDS`,
  so that the other workers' waits are fair. A request costs a scheduler round trip
  only once per turn of a lease, not once per request.
- **A dead worker's slots come back.** Leases expire :data:`LEASE_TIMEOUT` seconds
  after the last heartbeat of the process holding them (the semaphore's own refresh,
  every fifth of that), and ``ReclaimDeadLeases``, a scheduler plugin, runs the
  semaphore extension's expiry check that long after the scheduler removes a worker,
  instead of waiting for its periodic check (``lease-validation-interval``, 10 s by
  default). So a killed worker's slots are free again within about
  ``LEASE_TIMEOUT + REMOTE_WAIT`` seconds.
- **A stalled worker stops using them.** The heartbeats run on the worker's event
  loop; when it has not run for :data:`STALL_SECONDS` (a task holding it), the process
  hands out no more of the leases it holds and gives them back. Requests already in
  flight keep theirs: if the stall outlasts ``LEASE_TIMEOUT`` the scheduler can give
  those slots to other workers meanwhile (distributed logs it), so a host may briefly
  see more than ``per_host_limit`` requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from typing import Any

__all__ = [
    "IDLE_SECONDS",
    "LEASE_TIMEOUT",
    "REMOTE_WAIT",
    "STALL_SECONDS",
    "TURN_SECONDS",
    "LeasePool",
]

logger = logging.getLogger(__name__)

#: Seconds after its holder's last heartbeat that a lease expires on the scheduler.
LEASE_TIMEOUT = 5.0
#: Seconds one acquire waits at the scheduler before it is asked again: bounds how long
#: a dead worker's pending acquires can still be granted.
REMOTE_WAIT = 1.0
#: Seconds a lease that no thread of the process wants is kept before it goes back.
IDLE_SECONDS = 0.1
#: Seconds a process keeps one lease, however busy, before it goes back to the scheduler.
TURN_SECONDS = 1.0
#: Seconds the worker's event loop may go without running before the process stops
#: handing out the leases it holds: their heartbeats run on that loop, so past
#: ``LEASE_TIMEOUT`` the scheduler would give them to others.
STALL_SECONDS = LEASE_TIMEOUT / 2
#: The name the plugin is registered under (once per scheduler).
PLUGIN_NAME = "creevey_dask-reclaim-dead-leases"


@functools.cache
def _plugin_class() -> type:
    """:class:`ReclaimDeadLeases`, made on first use: ``distributed`` is imported then."""
    from distributed import SchedulerPlugin

    class ReclaimDeadLeases(SchedulerPlugin):  # type: ignore[misc]
        """Free a removed worker's semaphore leases as soon as they are stale.

        When the scheduler removes a worker, the semaphore extension's own expiry
        check runs :data:`LEASE_TIMEOUT` seconds later (and again after the worker's
        last pending acquires could have been granted), so the dead worker's leases,
        which it no longer refreshes, are released then rather than at the next
        periodic check. Live holders refresh theirs every ``LEASE_TIMEOUT / 5`` seconds
        and keep them.
        """

        idempotent = True

        def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
            extension = scheduler.extensions.get("semaphores")
            check = getattr(extension, "_check_lease_timeout", None)
            if check is None:  # pragma: no cover - another distributed: its own check runs
                return
            loop = asyncio.get_running_loop()
            for delay in (LEASE_TIMEOUT + 0.2, LEASE_TIMEOUT + REMOTE_WAIT + 0.5):
                loop.call_later(delay, check)

    # pickled by reference, as this module's ReclaimDeadLeases (found by __getattr__)
    ReclaimDeadLeases.__module__ = __name__
    ReclaimDeadLeases.__qualname__ = "ReclaimDeadLeases"
    globals()["ReclaimDeadLeases"] = ReclaimDeadLeases
    return ReclaimDeadLeases


def __getattr__(name: str) -> Any:
    """``ReclaimDeadLeases`` on demand (PEP 562), so that importing this needs no distributed."""
    if name == "ReclaimDeadLeases":
        return _plugin_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_plugin_lock = threading.Lock()
_plugin_schedulers: set[str] = set()


def _register_plugin(worker: Any) -> None:
    """Register ``ReclaimDeadLeases`` with ``worker``'s scheduler, once per worker."""
    address = f"{getattr(worker.scheduler, 'address', '')} {worker.id}"
    with _plugin_lock:
        if address in _plugin_schedulers:
            return
        _plugin_schedulers.add(address)
    from distributed.protocol.pickle import dumps
    from distributed.utils import sync

    try:
        sync(
            worker.loop,
            worker.scheduler.register_scheduler_plugin,
            plugin=dumps(_plugin_class()()),
            name=PLUGIN_NAME,
            idempotent=True,
        )
    except Exception as err:  # e.g. the scheduler cannot import creevey_dask
        logger.warning(
            "could not register %s on the scheduler (%s); a dead worker's request slots "
            "come back at the scheduler's next lease check instead (lease-validation-interval)",
            PLUGIN_NAME,
            err,
        )


class _LoopBeat:
    """When a worker's event loop last ran a callback (it runs one every 0.5 s)."""

    def __init__(self, loop: Any) -> None:
        self.last = time.monotonic()
        self._loop = loop
        loop.add_callback(self._beat)

    def _beat(self) -> None:
        self.last = time.monotonic()
        self._loop.call_later(0.5, self._beat)

    def stalled(self) -> bool:
        return time.monotonic() - self.last > STALL_SECONDS


_beats: dict[str, _LoopBeat] = {}


def _beat_of(worker: Any) -> _LoopBeat:
    with _plugin_lock:
        beat = _beats.get(str(worker.id))
        if beat is None:
            beat = _beats[str(worker.id)] = _LoopBeat(worker.loop)
        return beat


class LeasePool:
    """The leases of one ``distributed.Semaphore`` that this worker process holds.

    Threads call :meth:`acquire` and :meth:`release`; the scheduler is asked only for
    leases beyond those the process holds, and they go back when idle or when their
    turn is over (see the module docs).

    Parameters
    ----------
    worker : distributed.Worker
        The worker of this process (its scheduler connection and event loop are used).
    name : str
        The semaphore's name on the scheduler: every process using it shares its leases.
    max_leases : int
        The semaphore's size.
    """

    def __init__(self, worker: Any, name: str, max_leases: int) -> None:
        self.name = name
        self.max_leases = max_leases
        self._worker = worker
        self._loop = worker.loop
        self._beat = _beat_of(worker)
        _register_plugin(worker)
        import dask
        from distributed import Semaphore

        # the semaphore reads its lease timeout (and so its heartbeat) from the config
        # when it is made and registered; a semaphore's first registration sets it
        with dask.config.set({"distributed.scheduler.locks.lease-timeout": f"{LEASE_TIMEOUT}s"}):
            self._semaphore = Semaphore(
                max_leases=max_leases, name=name, scheduler_rpc=worker.scheduler, loop=worker.loop
            )
            self._semaphore.register()
        self._cond = threading.Condition()
        # idle held leases: (when taken from the scheduler, when last given back by a thread)
        self._free: list[tuple[float, float]] = []
        self._held = 0  # leases this process holds (free or in use)
        self._asking = 0  # acquires pending at the scheduler
        self._waiting = 0  # threads waiting in acquire()
        self._reaping = False  # an idle check is scheduled

    def acquire(self, timeout: float) -> float | None:
        """Wait up to ``timeout`` seconds for a lease; its token for :meth:`release`, or None."""
        end = time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    if self._free and not self._beat.stalled():
                        return self._free.pop()[0]
                    if self._free:  # no heartbeat lately: they may have expired
                        self._held -= len(self._free)
                        self._loop.add_callback(self._give_back, len(self._free))
                        self._free.clear()
                    self._ask()
                    left = end - time.monotonic()
                    if left <= 0:
                        return None
                    self._cond.wait(left)
            finally:
                self._waiting -= 1

    def release(self, token: float) -> None:
        """Give back a lease taken with :meth:`acquire` (``token`` is what it returned)."""
        with self._cond:
            if time.monotonic() - token >= TURN_SECONDS:  # its turn is over: to the scheduler
                self._held -= 1
                self._loop.add_callback(self._give_back, 1)
                self._ask()  # this process's waiters queue at the scheduler like the others'
                return
            self._free.append((token, time.monotonic()))
            if self._waiting:
                self._cond.notify()
            elif not self._reaping:
                self._reaping = True
                self._loop.add_callback(self._loop.call_later, IDLE_SECONDS, self._reap)

    # -- on the worker's event loop ------------------------------------------------------

    def _ask(self) -> None:
        """Ask the scheduler for the leases the waiting threads need (lock held)."""
        if self.closing():  # the waiters time out
            return
        wanted = min(self._waiting - len(self._free), self.max_leases - self._held) - self._asking
        for _ in range(max(0, wanted)):
            self._asking += 1
            self._loop.add_callback(self._take_one)

    async def _take_one(self) -> None:
        granted = False
        started = time.monotonic()
        try:
            if not self.closing():
                granted = bool(await self._semaphore.acquire(timeout=REMOTE_WAIT))
        except Exception as err:  # the scheduler went away: the waiters time out
            logger.debug("acquiring a lease of %s failed: %s", self.name, err)
            await asyncio.sleep(REMOTE_WAIT)
        if granted and time.monotonic() - started > REMOTE_WAIT + STALL_SECONDS:
            granted = False  # an answer this late may be of a lease already expired
            self._loop.add_callback(self._give_back, 1)
        with self._cond:
            self._asking -= 1
            if granted:
                self._held += 1
                now = time.monotonic()
                self._free.append((now, now))
                self._cond.notify()
            if self._waiting:
                self._ask()
            elif granted and not self._reaping:
                self._reaping = True
                self._loop.call_later(IDLE_SECONDS, self._reap)

    def _reap(self) -> None:
        """Give back the leases no thread has taken for :data:`IDLE_SECONDS`."""
        with self._cond:
            now = time.monotonic()
            idle = [lease for lease in self._free if now - lease[1] >= IDLE_SECONDS]
            if idle and not self._waiting:
                self._free = [lease for lease in self._free if now - lease[1] < IDLE_SECONDS]
                self._held -= len(idle)
                self._loop.add_callback(self._give_back, len(idle))
            if self._free:  # look again when the next one has been idle long enough
                first = min(lease[1] for lease in self._free)
                self._loop.call_later(max(0.01, first + IDLE_SECONDS - now), self._reap)
            else:
                self._reaping = False

    def closing(self) -> bool:
        """Whether the worker is shutting down (its leases then expire on the scheduler)."""
        return self._worker.status.name not in ("running", "paused")

    async def _give_back(self, count: int) -> None:
        if self.closing():
            return
        for _ in range(count):
            with contextlib.suppress(Exception):  # expired, or the scheduler is gone
                await self._semaphore.release()
