"""Where a run executes, and how wide: the Client or dask's local scheduler, threads
or processes, the cores, the rows in flight per partition and the partitions per run.

A run goes to the active ``dask.distributed`` Client if there is one
(:func:`active_client`, which never imports ``distributed`` itself). Without one, an
in-memory run takes the local strategy of :func:`local_strategy`: ``"auto"`` follows the
user's ``dask.config`` scheduler if one is set, else
:func:`creevey_dask.engine.processes.auto_strategy` picks threads or a forked process pool.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import format_error
from ..options import LOCAL_JOBS, NETWORK_JOBS
from ..storage import fs as storage
from . import processes as _processes
from .inputs import is_missing

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = [
    "active_client",
    "configured_strategy",
    "default_jobs",
    "default_npartitions",
    "has_process_workers",
    "local_cores",
    "local_scheduler",
    "local_strategy",
    "pickles",
]

logger = logging.getLogger(__name__)


_MAX_PARTITION_ROWS = 10_000


def active_client() -> Any | None:
    """The active ``dask.distributed`` Client, or None.

    Without ``distributed`` imported there can be no Client, so this does not import it
    (a tenth of a second a run otherwise).
    """
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None


def local_cores() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def default_jobs(sources: Iterable[Any]) -> int:
    """Rows in flight for a partition with ``n_jobs=None``, from its first source.

    :data:`~creevey_dask.options.LOCAL_JOBS` for a local file,
    :data:`~creevey_dask.options.NETWORK_JOBS` for a URL or remote file (network-bound).
    """
    first = next((s for s in sources if not is_missing(s)), None)
    if isinstance(first, (str, os.PathLike)) and not storage.is_local(os.fspath(first)):
        return NETWORK_JOBS
    return LOCAL_JOBS


def default_npartitions(n_rows: int, n_jobs: int, workers: int) -> int:
    """Enough partitions to feed every worker and show progress; each ≥ 2·n_jobs rows."""
    size = min(max(n_rows // (4 * workers), 2 * n_jobs), _MAX_PARTITION_ROWS)
    return max(1, math.ceil(n_rows / max(size, 1)))


def local_strategy(
    strategy: str | None,
    pipeline: Pipeline,
    n_rows: int,
    process_local_outputs: bool,
    picklable: Callable[[], bool],
) -> tuple[str | None, Pipeline]:
    """The local scheduler of an in-memory run, and the pipeline each of its processes runs.

    ``"auto"`` (the default) follows the user's ``dask.config`` scheduler if one is set
    (None: dask's configured scheduler), else :func:`creevey_dask.engine.processes.auto_strategy`.
    With processes, a loader with a ``for_processes(n, exact=)`` method (the HTTP
    loader) is given its share of the per-host limits; ``"auto"`` keeps threads when
    they cannot be shared exactly.
    """
    if strategy == "auto":
        import dask

        if dask.config.get("scheduler", None) is not None:
            return None, pipeline
        strategy = _processes.auto_strategy(
            n_rows=n_rows,
            workers=local_cores(),
            process_local_outputs=process_local_outputs,
            picklable=picklable,
        )
        exact = True
    else:
        exact = False
    if strategy != "processes" or not _processes.process_pool_works():
        return strategy, pipeline
    split = getattr(pipeline.load_func, "for_processes", None)
    if split is None:
        return strategy, pipeline
    load_func = split(local_cores(), exact=exact)
    if load_func is None:
        return "threads", pipeline
    shared = copy.copy(pipeline)
    shared.load_func = load_func
    return strategy, shared


def pickles(*parts: Any) -> bool:
    """Whether ``parts`` (a run's pipeline, namer and sink) pickle, to go to processes."""
    import cloudpickle

    try:
        cloudpickle.dumps(parts)
    except Exception as err:
        logger.debug("the run stays on threads: it does not pickle: %s", format_error(err))
        return False
    return True


def local_scheduler(strategy: str) -> Callable[..., Any]:
    """Dask's local scheduler for ``strategy`` (``"threads"`` or ``"processes"``).

    Passed to ``dask.compute`` as the function itself: given by name, dask imports
    ``distributed`` to look for a Client first, which costs a tenth of a second.
    """
    if strategy == "processes":
        import dask.multiprocessing

        return dask.multiprocessing.get
    import dask.threaded

    return dask.threaded.get


def configured_strategy() -> str:
    """The strategy the user's ``dask.config`` scheduler amounts to, for the checks."""
    import dask

    name = dask.config.get("scheduler", None)
    return "processes" if name in ("processes", "multiprocessing") else "threads"


def has_process_workers(client: Any) -> bool:
    """Whether any of ``client``'s workers runs in another process (not ``inproc://``)."""
    workers = client.scheduler_info().get("workers", {})
    return any(not str(address).startswith("inproc://") for address in workers)
