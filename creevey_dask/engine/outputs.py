"""Where a run writes, checked before its first row: ``memory://`` outputs that rows in
other processes would write, and a local outdir that is a file or not writable.

A ``memory://`` output lives in one process's memory, so the engine refuses it with
rows in other processes (the ``"processes"`` strategy, a Client with worker processes)
up front; lazy dask input computed later on processes raises in its partitions
(:class:`~creevey_dask.engine.partition.PartitionRunner`), with the same message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..storage import fs as storage
from .inputs import is_missing
from .scheduling import configured_strategy, has_process_workers

if TYPE_CHECKING:
    from ..sinks.shards import Sink

__all__ = [
    "process_local",
    "process_local_message",
    "refuse_process_local_outputs",
    "refuse_unwritable_outdir",
    "sweep_after_lost_workers",
]


def process_local(
    outpath_func: Callable[[Any], Any], sink: Sink | None, sources: Iterable[Any] | None
) -> bool:
    """Whether the run writes to ``memory://``, which lives in this process only."""
    return any(storage.is_process_local(r) for r in _output_roots(outpath_func, sink, sources))


def refuse_process_local_outputs(
    outpath_func: Callable[[Any], Any],
    sink: Sink | None,
    sources: Iterable[Any] | None,
    strategy: str | None,
    client: Any,
) -> None:
    """Refuse, up front, ``memory://`` outputs that worker processes would write.

    A process's ``memory://`` filesystem is its own: rows run in other processes (the
    ``"processes"`` strategy, or a Client whose workers are processes) would write into
    theirs and report ``ok`` for files the caller never sees. The outputs are found
    from the namer's or sink's ``outdir`` and, for in-memory input (``sources``), the
    first row's outpath. Lazy dask input computed later on processes is caught by the
    partition itself (:class:`~creevey_dask.engine.partition.PartitionRunner`), which
    then raises instead of writing.
    """
    roots = _output_roots(outpath_func, sink, sources)
    lost = [root for root in roots if storage.is_process_local(root)]
    if not lost:
        return
    if strategy is None:
        strategy = configured_strategy()
    if client is not None:
        if has_process_workers(client):
            raise ValueError(
                process_local_message(lost[0], "the active Client's workers are other processes")
            )
    elif strategy == "processes":
        raise ValueError(
            process_local_message(
                lost[0], "parallel_strategy='processes' runs rows in other processes"
            )
        )


def process_local_message(path: str, where: str) -> str:
    return (
        f"the output {path!r} is in memory://, which lives in one process, but {where}: "
        "its writes would be lost with that process. Use parallel_strategy='threads' (or a "
        "Client with processes=False), or write to a folder on disk or in object storage"
    )


def _output_roots(
    outpath_func: Callable[[Any], Any], sink: Sink | None, sources: Iterable[Any] | None
) -> list[str]:
    """Where a run writes: the namer's or sink's ``outdir``, and the first row's outpath."""
    roots = [
        outdir
        for obj in (sink, outpath_func)
        if isinstance(outdir := getattr(obj, "outdir", None), str)
    ]
    first = next((s for s in (() if sources is None else sources) if not is_missing(s)), None)
    if first is not None:
        with contextlib.suppress(Exception):  # an unusable source is an error row later
            roots.append(os.fspath(outpath_func(first)))
    return roots


def refuse_unwritable_outdir(
    outpath_func: Callable[[Any], Any], sink: Sink | None, sources: Iterable[Any] | None
) -> None:
    """A ValueError, before any row, for a local outdir that is a file or not writable.

    Checked on the namer's or sink's ``outdir`` (a folder) and on the folder of the
    first row's outpath; every row would otherwise be the same error.
    """
    folders = [r for r in (getattr(o, "outdir", None) for o in (sink, outpath_func)) if r]
    if not folders:
        folders = [
            folder
            for root in _output_roots(outpath_func, sink, sources)
            if (folder := storage.local_folder(root))
        ]
    for folder in folders:
        storage.check_writable_folder(str(folder))


def sweep_after_lost_workers(
    outpath_func: Callable[[Any], Any], sink: Sink | None, sources: Iterable[Any] | None
) -> int:
    """Remove what the workers of a failed run left where it writes; how many were removed.

    Called once every worker of the run's process pool is gone (one was killed, the
    pool stopped the rest): their temporaries are stale now, and are removed at once
    rather than by the next run. Only the temporaries of writers that are no longer
    alive are removed (:func:`creevey_dask.storage.fs.sweep`), in the local folders of
    the namer's or sink's ``outdir`` and of the first row's outpath.
    """
    outdirs = [getattr(obj, "outdir", None) for obj in (sink, outpath_func)]
    named = [storage.join(d, "_") for d in outdirs if isinstance(d, str)]  # in the folder
    named += [r for r in _output_roots(outpath_func, sink, sources) if r not in outdirs]
    folders = {folder for name in named if (folder := storage.local_folder(name))}
    return storage.sweep(sorted(folders))
