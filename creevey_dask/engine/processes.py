"""The warm local process pool: a process per core, started on first use, kept for later runs.

The default strategy (``parallel_strategy="auto"``) runs an in-memory table's
partitions in worker processes, each with its own row threads, when that wins; the
processes are one :class:`concurrent.futures.ProcessPoolExecutor` handed to dask's own
local scheduler (``dask.multiprocessing.get(pool=...)``, one partition per submit), so
dask still schedules the graph, callbacks (the progress bar) and errors as usual.

Why this mechanism (measured on a 2-core machine, see ``docs/performance.md``): the
workers are *forked* from the caller, so the first call pays about 20 ms for them (a
``distributed.LocalCluster`` costs 1-2 s to start, and its scheduler and nannies about
150 MB), forked pages are shared (peak PSS grows by the workers' own pages only), and a
script without an ``if __name__ == "__main__":`` guard still works (``spawn`` and
``forkserver`` re-import the main module). The pool stays up between calls, so a
notebook pays the start-up once; it is shut down at exit (or by :func:`shutdown_pool`).

Where this does not win, the default is dask's threaded scheduler in the caller's
process, as before: :func:`auto_strategy` says which.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..exceptions import WorkerProcessError
from . import interrupt as _interrupt

__all__ = [
    "MIN_PROCESS_ROWS",
    "auto_strategy",
    "compute_on_pool",
    "process_pool_works",
    "shutdown_pool",
    "warm_pool",
    "worker_pids",
]

#: The fewest rows an in-memory table needs before the default runs it in worker
#: processes: below this a threaded run in the caller is done before processes pay off.
MIN_PROCESS_ROWS = 200
#: How long, after Ctrl-C, the caller waits for the partitions in the workers to stop
#: (their rows under way finish writing; the rest are abandoned) before it raises.
SETTLE_SECONDS = 10.0

_lock = threading.Lock()
_pool: _Pool | None = None


class _Pool(concurrent.futures.ProcessPoolExecutor):
    """A process pool that knows its futures still under way (to let them settle)."""

    def __init__(self, workers: int) -> None:
        super().__init__(
            workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker
        )
        self.workers = workers
        self._futures: set[concurrent.futures.Future[Any]] = set()
        self._futures_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future = super().submit(fn, *args, **kwargs)
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._futures_lock:
            self._futures.discard(future)

    def settle(self, timeout: float) -> None:
        """Cancel the queued partitions and wait up to ``timeout`` s for the running ones."""
        with self._futures_lock:
            futures = list(self._futures)
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures, timeout=timeout)

    def pids(self) -> list[int]:
        return sorted(p.pid for p in (self._processes or {}).values() if p.pid is not None)


def _pid(_: int) -> int:
    return os.getpid()


def _init_worker() -> None:
    """In each worker: Ctrl-C interrupts the runs under way instead of killing the worker."""
    signal.signal(signal.SIGINT, _interrupt.on_worker_sigint)


def process_pool_works() -> bool:
    """Whether this platform starts worker processes cheaply: ``fork`` on Linux.

    Elsewhere (macOS, where ``fork`` is unsafe, and Windows, which has only ``spawn``)
    the default stays on threads.
    """
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def auto_strategy(
    *,
    n_rows: int,
    workers: int,
    process_local_outputs: bool,
    picklable: Callable[[], bool],
) -> str:
    """The local strategy of a default run over an in-memory table: threads or processes.

    Processes when every one holds: more than one core, at least
    :data:`MIN_PROCESS_ROWS` rows, no ``memory://`` output (it lives in the caller's
    memory), a platform that forks (:func:`process_pool_works`) and a partition runner
    that pickles (``picklable()``, asked last). Threads otherwise.
    """
    if workers < 2 or n_rows < MIN_PROCESS_ROWS or process_local_outputs:
        return "threads"
    if not process_pool_works() or not picklable():
        return "threads"
    return "processes"


def warm_pool(workers: int) -> _Pool:
    """The pool of ``workers`` processes, started (forked) now if there is none yet."""
    global _pool
    with _lock:
        if _pool is not None and (_pool.workers != workers or _broken(_pool)):
            _discard(_pool)
            _pool = None
        if _pool is None:
            _pool = _Pool(workers)
            # start the workers now, before the run opens threads (a progress bar); a
            # caller with threads already (a notebook kernel) is told by Python 3.12+
            # that fork may deadlock the child: these children only run the pool's loop
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "This process .* is multi-threaded")
                list(_pool.map(_pid, range(workers)))
        return _pool


def _broken(pool: _Pool) -> bool:
    return bool(getattr(pool, "_broken", False))


def _discard(pool: _Pool) -> None:
    with contextlib.suppress(Exception):
        pool.shutdown(wait=True, cancel_futures=True)


def worker_pids() -> list[int]:
    """The process ids of the warm pool's workers (empty when there is no pool)."""
    with _lock:
        return [] if _pool is None else _pool.pids()


def shutdown_pool() -> None:
    """Stop the warm pool's workers (at exit, or to free their memory); the next run starts
    a new pool if it needs one."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        _discard(pool)


atexit.register(shutdown_pool)


def compute_on_pool(tasks: Sequence[Any], pool: _Pool) -> list[Any]:
    """``dask.compute(*tasks)`` on dask's process scheduler with ``pool`` (:func:`warm_pool`).

    One partition per submit (``chunksize=1``), so the workers stay evenly fed. On
    Ctrl-C the partitions in the workers are let to stop (up to
    :data:`SETTLE_SECONDS`) before :class:`KeyboardInterrupt` goes on, so nothing is
    still writing when the caller gets it. A worker that dies raises
    :class:`WorkerProcessError`, and the pool is replaced for the next run.
    """
    import dask
    import dask.multiprocessing

    try:
        return list(
            dask.compute(*tasks, scheduler=dask.multiprocessing.get, pool=pool, chunksize=1)
        )
    except KeyboardInterrupt:
        for pid in pool.pids():  # in case the signal reached only this process
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGINT)
        pool.settle(SETTLE_SECONDS)
        raise
    except BrokenProcessPool as err:
        shutdown_pool()
        raise WorkerProcessError(
            "a worker process of the local process pool died during the run (killed, or out "
            "of memory); no row was marked as an error: the files already written are "
            "complete, and running the same call again (skip_existing=True) does the rest. "
            "parallel_strategy='threads' runs in this process instead"
        ) from err
