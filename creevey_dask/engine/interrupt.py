"""Ctrl-C: stop a run at once, leaving no temporaries, so that a rerun completes the rest.

The rule, owned here and used by the engine:

- When the caller presses Ctrl-C (SIGINT in the caller's main thread), the run is marked
  interrupted and :class:`KeyboardInterrupt` is raised to the caller straight away; the
  local scheduler then hands out no more partitions. With the ``processes`` scheduler the
  signal is passed on to the worker processes; with a ``dask.distributed`` Client the
  engine cancels the run's futures, and the partitions already running on the workers
  see their task cancelled (the worker's own record of the task, pushed by the
  scheduler: no round trip) and stop the same way.
- A partition of an interrupted run hands out no more rows, and no row starts writing.
  Rows that are already writing finish (a write is short); rows still loading are
  abandoned (they run on daemon threads and write nothing). The partition then raises
  :class:`KeyboardInterrupt` (on a ``distributed`` worker, :class:`RunInterruptedError`,
  since a worker must not see a KeyboardInterrupt from a task), within
  :data:`POLL_SECONDS` of the interrupt.

- When the caller computes a lazy result frame (dask input) with a local scheduler and
  presses Ctrl-C, dask's scheduler ends with the :class:`KeyboardInterrupt`; a dask
  callback (:func:`watch_local_schedulers`) then interrupts the runs whose partitions
  are running in this process.

A row writes only through :meth:`RowGate.writing`, so an abandoned row never leaves a
temporary file or a partial output: what is on disk after Ctrl-C is complete, and a
rerun with ``skip_existing=True`` does the rest.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from .._fork import reset_in_child

__all__ = [
    "POLL_SECONDS",
    "RowGate",
    "RunInterruptedError",
    "cancel",
    "current_gate",
    "interrupt_children",
    "interrupted_since",
    "interruptible",
    "is_interrupted",
    "new_run_id",
    "on_worker_sigint",
    "watch_local_schedulers",
]

#: How often a partition waiting for its rows checks whether its run was interrupted.
POLL_SECONDS = 0.1

#: The ids of the runs interrupted in this process.
_INTERRUPTED: set[str] = set()
#: The ids of the runs with partitions running in this process, and how many.
_RUNNING: dict[str, int] = {}
_running_lock = threading.Lock()
# a forked worker runs none of the caller's partitions until it is handed one
reset_in_child(globals(), locks=["_running_lock"], clear=["_RUNNING"])


class RunInterruptedError(Exception):
    """A row of an interrupted run was about to write; it is abandoned instead."""


def new_run_id() -> str:
    """A fresh id for one run (it travels with the partition runner to the workers)."""
    return uuid.uuid4().hex


def cancel(run_id: str) -> None:
    """Mark ``run_id`` interrupted in this process: its partitions stop handing out rows."""
    _INTERRUPTED.add(run_id)


def is_interrupted(run_id: str) -> bool:
    """Whether ``run_id`` was interrupted in this process."""
    return run_id in _INTERRUPTED


#: When this process (a worker of the local process pool) last got SIGINT (``time.time()``).
_last_worker_sigint = 0.0


def on_worker_sigint(signum: int, frame: Any) -> None:
    """The SIGINT handler of a worker of the local process pool (it never raises).

    The runs with partitions running here are interrupted (their rows stop, and each
    partition raises :class:`KeyboardInterrupt` back to the caller); a partition of a
    run made before this signal, handed over later, stops at once
    (:func:`interrupted_since`). An idle worker stays up for the next run.
    """
    global _last_worker_sigint
    _last_worker_sigint = time.time()
    for run_id in list(_RUNNING):  # no lock: the interrupted thread may hold it
        cancel(run_id)


def interrupted_since(created: float) -> bool:
    """Whether this worker process got SIGINT after a run made at ``created`` began."""
    return _last_worker_sigint >= created


def interrupt_children() -> None:
    """Pass SIGINT on to this process's child processes (the local pool's workers)."""
    for child in multiprocessing.active_children():
        if child.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGINT)


def _on_local_finish(dsk: Any, state: Any, errored: bool) -> None:
    """A dask callback: a local compute ended by Ctrl-C interrupts the runs running here."""
    if errored and isinstance(sys.exc_info()[1], KeyboardInterrupt):
        with _running_lock:
            running = list(_RUNNING)
        for run_id in running:
            cancel(run_id)


_FINISH_CALLBACK = (None, None, None, None, _on_local_finish)


def watch_local_schedulers() -> None:
    """Register :func:`_on_local_finish` with dask's local schedulers (once, in the caller).

    It must be in place before the compute starts: dask's local scheduler takes its
    global callbacks when a compute begins.
    """
    from dask.callbacks import Callback

    if _FINISH_CALLBACK not in Callback.active:
        Callback.active.add(_FINISH_CALLBACK)


_local = threading.local()


def current_gate() -> contextlib.AbstractContextManager[None]:
    """The write gate of the row this thread runs (a no-op outside a partition's threads)."""
    gate: RowGate | None = getattr(_local, "gate", None)
    return contextlib.nullcontext() if gate is None else gate.writing()


class RowGate:
    """Runs a partition's rows on daemon threads; closes at once on Ctrl-C.

    Parameters
    ----------
    run_id : str
        The run the partition belongs to.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._lock = threading.Lock()
        self._closed = False
        self._writers = 0

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Let a row write unless the run was interrupted (then :class:`RunInterruptedError`)."""
        with self._lock:
            if self._closed or is_interrupted(self.run_id):
                raise RunInterruptedError("the run was interrupted (Ctrl-C) before this row wrote")
            self._writers += 1
        try:
            yield
        finally:
            with self._lock:
                self._writers -= 1

    def _close(self) -> None:
        """Let no more rows start or write; wait for the writes under way to finish."""
        with self._lock:
            self._closed = True
        while True:
            with self._lock:
                if self._writers == 0:
                    return
            time.sleep(0.005)

    def run(self, n: int, threads: int, do_row: Callable[[int], None]) -> None:
        """Call ``do_row(i)`` for ``i`` in ``range(n)`` from ``threads`` daemon threads.

        Raises :class:`KeyboardInterrupt` soon after the run is interrupted, or at once
        when this thread gets one itself (a worker process of the ``processes``
        scheduler); rows still loading then are abandoned. In a ``distributed``
        worker's task it raises :class:`RunInterruptedError` instead, soon after the
        task is cancelled (the caller's Ctrl-C) or the run is interrupted.
        """
        with _running_lock:
            _RUNNING[self.run_id] = _RUNNING.get(self.run_id, 0) + 1
        try:
            cancelled = _task_cancelled()
            if cancelled is None:
                self._run(n, threads, do_row, lambda: False)
                return
            try:
                self._run(n, threads, do_row, cancelled)
            except KeyboardInterrupt as err:
                raise RunInterruptedError(
                    "the run was cancelled on the cluster (Ctrl-C in the caller)"
                ) from err
        finally:
            with _running_lock:
                _RUNNING[self.run_id] -= 1
                if not _RUNNING[self.run_id]:
                    del _RUNNING[self.run_id]

    def _run(
        self, n: int, threads: int, do_row: Callable[[int], None], cancelled: Callable[[], bool]
    ) -> None:
        if is_interrupted(self.run_id) or cancelled():
            raise KeyboardInterrupt("the run was interrupted")
        lock = threading.Lock()
        left = [threads]
        done = threading.Event()
        nexts = iter(range(n))

        def work() -> None:
            _local.gate = self
            try:
                while not (self._closed or is_interrupted(self.run_id)):
                    with lock:
                        i = next(nexts, None)
                    if i is None:
                        return
                    do_row(i)
            finally:
                with lock:
                    left[0] -= 1
                    if left[0] == 0:
                        done.set()

        workers = [
            threading.Thread(target=work, name=f"creevey-row-{k}", daemon=True)
            for k in range(threads)
        ]
        try:
            for worker in workers:
                worker.start()
            while not done.wait(POLL_SECONDS):
                if is_interrupted(self.run_id) or cancelled():
                    raise KeyboardInterrupt("the run was interrupted")
        except KeyboardInterrupt:
            cancel(self.run_id)  # later partitions of this run in this process stop at once
            while True:
                try:
                    self._close()
                    break
                except KeyboardInterrupt:  # a second Ctrl-C: still let the writes finish
                    continue
            raise
        for worker in workers:
            worker.join()


def _task_cancelled() -> Callable[[], bool] | None:
    """In a ``distributed`` worker's task thread: a check whether that task was cancelled.

    None elsewhere. The check reads the worker's own state of the task, which the
    scheduler updates when the caller cancels its futures (or goes away), so it costs
    no round trip.
    """
    if "distributed" not in sys.modules:  # no worker without it
        return None
    from distributed import get_worker

    try:
        worker = get_worker()
        key = worker.get_current_task()
    except (ValueError, KeyError):  # not a worker, or not one of its task threads
        return None
    tasks = worker.state.tasks

    def cancelled() -> bool:
        task = tasks.get(key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    return cancelled


@contextlib.contextmanager
def interruptible(run_id: str, *, worker_processes: bool = False) -> Iterator[None]:
    """Run the body so that Ctrl-C interrupts ``run_id`` and raises at once.

    In the main thread, with Python's default SIGINT handler in place, a handler is
    installed for the body: it marks the run interrupted, passes SIGINT on to this
    process's child processes when ``worker_processes`` (the ``processes`` scheduler's
    workers, which then stop their partitions), and raises :class:`KeyboardInterrupt`.
    Elsewhere a :class:`KeyboardInterrupt` leaving the body marks the run interrupted.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        try:
            yield
        except KeyboardInterrupt:
            cancel(run_id)
            raise
        return

    def on_sigint(signum: int, frame: Any) -> None:
        cancel(run_id)
        if worker_processes:
            interrupt_children()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except KeyboardInterrupt:
        cancel(run_id)
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
