"""The local process pool: a process per core, forked for each run that wins by it.

The default strategy (``parallel_strategy="auto"``) runs an in-memory table's
partitions in worker processes, each with its own row threads, when that wins; the
processes are one :class:`concurrent.futures.ProcessPoolExecutor` handed to dask's own
local scheduler (``dask.multiprocessing.get(pool=...)``, one partition per submit), so
dask still schedules the graph, callbacks (the progress bar) and errors as usual.

Why this mechanism (measured on a 2-core machine, see ``docs/performance.md``): the
workers are *forked* from the caller, which costs about 10 ms a run (a
``distributed.LocalCluster`` costs 1-2 s to start, and its scheduler and nannies about
150 MB), forked pages are shared (peak PSS grows by the workers' own pages only), and a
script without an ``if __name__ == "__main__":`` guard still works (``spawn`` and
``forkserver`` re-import the main module).

**A pool per run.** The workers are forked when a run starts and stopped when it ends:
they hold exactly the caller's modules, code and settings of that moment (a notebook
that edits or reloads a module, or imports one after an earlier run, is seen as it is
now), and no process outlives its run. The run's partition function is pickled once
(:func:`ship`), before the fork, so the workers inherit it and unpickle it once each;
only the partitions' rows travel per task. A worker dies with its caller
(``PR_SET_PDEATHSIG``), so a killed caller leaves no worker behind.

Where this does not win, the default is dask's threaded scheduler in the caller's
process, as before: :func:`auto_strategy` says which.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import io
import logging
import multiprocessing
import os
import signal
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..exceptions import WorkerProcessError
from . import interrupt as _interrupt

__all__ = [
    "MIN_PROCESS_ROWS",
    "Shipped",
    "auto_strategy",
    "compute_on_pool",
    "process_pool",
    "process_pool_works",
    "ship",
    "worker_pids",
]

#: The fewest rows an in-memory table needs before the default runs it in worker
#: processes: below this a threaded run in the caller is done before processes pay off.
MIN_PROCESS_ROWS = 200
#: How long, after Ctrl-C, the caller waits for the partitions in the workers to stop
#: (their rows under way finish writing; the rest are abandoned) before it raises.
SETTLE_SECONDS = 10.0

_lock = threading.Lock()
#: The pools of the runs under way in this process (a caller may run two at once).
_pools: list[_Pool] = []
#: In the caller: the pickled partition functions of the runs under way, by token; the
#: workers forked for a run inherit its entry. In a worker: the same, unpickled once.
_shipped: dict[str, bytes] = {}
_unpacked: dict[str, Callable[..., Any]] = {}


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


_PR_SET_PDEATHSIG = 1


def _init_worker() -> None:
    """In each worker, before its first partition.

    Ctrl-C interrupts the runs under way instead of killing the worker; the worker is
    sent SIGTERM if its caller dies (Linux's ``PR_SET_PDEATHSIG``: a caller killed with
    SIGKILL leaves no orphan); and its standard streams are its own (a thread of the
    caller may have been writing to them at the fork, and their lock would stay taken).
    """
    signal.signal(signal.SIGINT, _interrupt.on_worker_sigint)
    with contextlib.suppress(Exception):  # pragma: no branch - Linux only, best effort
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() == 1:  # the caller died before the call above
            os._exit(1)
    _own_standard_streams()


def _own_standard_streams() -> None:
    """Give a forked worker new ``sys.stdout``/``sys.stderr`` on the same descriptors.

    Log handlers that wrote to the old ones write to the new ones.
    """
    renewed: dict[int, Any] = {}
    for name in ("stdout", "stderr"):
        old = getattr(sys, name)
        try:
            fd = old.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (pytest's capture, a widget)
            continue
        new = io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),
            encoding=getattr(old, "encoding", None) or "utf-8",
            errors=getattr(old, "errors", None) or "backslashreplace",
            line_buffering=True,
        )
        renewed[id(old)] = new
        setattr(sys, name, new)
    if not renewed:
        return
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", ()):
            stream = getattr(handler, "stream", None)
            if id(stream) in renewed:
                handler.stream = renewed[id(stream)]  # not setStream: it flushes the old one


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


class Shipped:
    """A run's partition function as its forked workers call it: by the token of its pickle.

    Pickles as the token alone; in a worker the function is unpickled once, from the
    bytes the worker inherited (:func:`ship`). ``numbered`` is the function's own
    (whether it takes dask's ``partition_info``).
    """

    def __init__(self, token: str, numbered: bool) -> None:
        self.token = token
        self.numbered = numbered

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        function = _unpacked.get(self.token)
        if function is None:
            import cloudpickle

            function = _unpacked.setdefault(self.token, cloudpickle.loads(_shipped[self.token]))
        return function(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Shipped, (self.token, self.numbered))


@contextlib.contextmanager
def ship(function: Callable[..., Any]) -> Iterator[Shipped]:
    """``function`` pickled once, for the workers forked while this is open.

    Raises
    ------
    TypeError
        If ``function`` (a run's pipeline, namer and sink) does not pickle; the
        message names the cause and the way out (threads).
    """
    import cloudpickle

    try:
        blob = cloudpickle.dumps(function)
    except Exception as err:
        raise TypeError(
            "parallel_strategy='processes' sends the run to worker processes, and it does "
            f"not pickle ({type(err).__name__}: {err}); parallel_strategy='threads' runs "
            "it in this process"
        ) from err
    token = uuid.uuid4().hex
    _shipped[token] = blob
    try:
        yield Shipped(token, bool(getattr(function, "numbered", False)))
    finally:
        _shipped.pop(token, None)


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[_Pool]:
    """A pool of ``workers`` processes, forked now and stopped when the block ends.

    Forked at once, before the run opens threads of its own (a progress bar). A caller
    with threads already (a notebook kernel) is told by Python 3.12+ that fork may
    deadlock the child: these children renew the locks they use
    (:func:`creevey_dask._fork.reset_in_child`) and their standard streams.
    """
    pool = _Pool(workers)
    with _lock:
        _pools.append(pool)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "This process .* is multi-threaded")
            list(pool.map(_pid, range(workers)))
        yield pool
    finally:
        with _lock:
            _pools.remove(pool)
        with contextlib.suppress(Exception):
            pool.shutdown(wait=True, cancel_futures=True)


def worker_pids() -> list[int]:
    """The process ids of the workers of the runs under way (empty between runs)."""
    with _lock:
        return sorted(pid for pool in _pools for pid in pool.pids())


def compute_on_pool(tasks: Sequence[Any], pool: _Pool) -> list[Any]:
    """``dask.compute(*tasks)`` on dask's process scheduler with ``pool`` (:func:`process_pool`).

    One partition per submit (``chunksize=1``), so the workers stay evenly fed. On
    Ctrl-C the partitions in the workers are let to stop (up to
    :data:`SETTLE_SECONDS`) before :class:`KeyboardInterrupt` goes on, so nothing is
    still writing when the caller gets it. A worker that dies raises
    :class:`WorkerProcessError`.
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
        raise WorkerProcessError(
            "a worker process of the local process pool died during the run (killed, or out "
            "of memory); no row was marked as an error: the files already written are "
            "complete, and running the same call again (skip_existing=True) does the rest. "
            "parallel_strategy='threads' runs in this process instead"
        ) from err
