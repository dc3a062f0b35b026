"""The engine: run a :class:`~creevey_dask.engine.pipeline.Pipeline` over pandas or dask frames.

One partition runner (:class:`~creevey_dask.engine.partition.PartitionRunner`) serves
every input. In-memory input (a list, a pandas Series or DataFrame) is cut into runs of
rows, each run becomes one ``dask.delayed`` task, and the tasks are computed on the
active ``dask.distributed`` Client if there is one, else on the pipeline's local dask
scheduler (:mod:`creevey_dask.engine.scheduling`); the result is pandas. Dask input stays
lazy: each of its partitions becomes one task (``map_partitions`` with an explicit
``meta``). A run over pandas never imports ``dask.dataframe`` or ``distributed`` (most
of a second of start-up). Where the run writes is checked before any row
(:mod:`creevey_dask.engine.outputs`).

The engine is also the one place where inputs are coerced (lists, Series, frames, empty
input, a MultiIndex) and where a previous result frame fed back in is recognised.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._dask_types import is_dask_frame
from ..exceptions import ColumnError, WorkerProcessError, error_cause, format_error
from ..schema import RESULT_COLUMNS, concat_results
from ..storage.naming import Outpaths
from . import interrupt as _interrupt
from . import processes as _processes
from .inputs import (
    Inpaths,
    as_frame,
    drop_previous_results,
    is_missing,
    release_inputs,
    source_col_for,
)
from .outputs import (
    process_local,
    refuse_process_local_outputs,
    refuse_unwritable_outdir,
    sweep_after_lost_workers,
)
from .partition import PartitionRunner
from .progress import RunProgress, local_callback, show_line
from .scheduling import (
    active_client,
    default_jobs,
    default_npartitions,
    local_cores,
    local_scheduler,
    local_strategy,
    pickles,
)
from .summary import summarize, summary_line

if TYPE_CHECKING:
    from ..options import RunOptions
    from ..sinks.shards import Sink
    from .pipeline import Pipeline

__all__ = [
    "Inpaths",
    "active_client",
    "as_frame",
    "compute_result",
    "error_cause",
    "format_error",
    "run_pipeline",
    "summarize",
]


def _meta(runner: Callable[[pd.DataFrame], pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    return runner(empty)


def run_pipeline(
    pipeline: Pipeline,
    inpaths: Inpaths,
    outpath_func: Callable[[Any], Any],
    inpath_col: str | None = None,
    *,
    options: RunOptions,
    sink: Sink | None = None,
) -> Any:
    """Run ``pipeline`` over ``inpaths`` with the run knobs ``options``; see Pipeline.run.

    ``sink`` (a :class:`creevey_dask.sinks.shards.Sink`) writes shards instead of files, or
    binds each partition's expected hashes; None writes files.
    """
    if not callable(outpath_func):
        raise TypeError(f"outpath_func must be callable, got {outpath_func!r}")
    n_jobs = options.n_jobs  # None: chosen per partition (default_jobs)
    skip_existing, storage_options = options.skip_existing, options.storage_options
    npartitions, progress = options.npartitions, options.progress
    strategy: str | None = options.parallel_strategy or pipeline.parallel_strategy
    declared = pipeline.result_columns
    clash = sorted(set(declared) & set(RESULT_COLUMNS))
    if clash:
        raise ValueError(f"pipeline stages may not declare the reserved result columns {clash}")
    sink_columns = sink.result_columns(declared) if sink is not None else {}
    result_columns = {**RESULT_COLUMNS, **declared, **sink_columns}

    frame, inpath_col, is_dask = as_frame(inpaths, inpath_col)
    if sink is not None:
        frame = sink.prepare(frame)
    renamed = source_col_for(inpath_col, frame.columns)
    suffix = options.result_suffix
    frame, held = drop_previous_results(frame, result_columns, inpath_col, suffix)
    inpath_col = renamed
    if held and sink is not None and sink.sharded:
        raise ColumnError(
            f"the input has column(s) {held}, which the shards' records also hold; with "
            f"output_format={sink.output_format!r} rename them first, e.g. "
            f"df.rename(columns={ {c: f'{c}_in' for c in held} })"
        )
    if sink is not None:
        sink.check(frame.columns, pipeline.write_func)
    outpaths = Outpaths(outpath_func, storage_options=storage_options)
    sharded = sink is not None and sink.sharded  # in a shard, names are only hints
    if not (is_dask or sharded):  # the table order decides who keeps a clashing name
        outpaths = outpaths.resolved(frame[inpath_col].tolist())
    client = active_client()
    first_rows = None if is_dask else frame[inpath_col]
    if client is None and not is_dask:
        strategy, pipeline = local_strategy(
            strategy,
            pipeline,
            len(frame),
            process_local(outpath_func, sink, first_rows),
            lambda: pickles(pipeline, outpaths, sink),
        )
    refuse_process_local_outputs(outpath_func, sink, first_rows, strategy, client)
    refuse_unwritable_outdir(outpath_func, sink, first_rows)
    # dask input stays lazy (no pass over the table before the run): each partition
    # settles its own rows' clashes in its order; between partitions the first writer wins
    runner = PartitionRunner(
        pipeline,
        outpaths,
        inpath_col,
        n_jobs,
        skip_existing,
        result_columns,
        is_dask and not sharded,
    )
    task = (
        runner
        if sink is None
        else sink.bind(runner, lazy=is_dask, retry_errors=options.retry_errors)
    )
    _interrupt.watch_local_schedulers()  # Ctrl-C in a local compute stops the partitions
    if is_dask:
        lazy = frame.map_partitions(task, meta=_lazy_meta(_meta(task, frame._meta)))
        return release_inputs(lazy, held, suffix)

    index = frame.index
    if isinstance(index, pd.MultiIndex):  # dask has no MultiIndex: run on positions
        frame = frame.reset_index(drop=True)
    if len(frame) == 0:
        return release_inputs(_restore_index(_meta(task, frame), index), held, suffix)
    started = time.perf_counter()
    workers = sum(client.nthreads().values()) if client is not None else local_cores()
    if npartitions is None:
        jobs = n_jobs or default_jobs(frame[inpath_col].head(1000).tolist())
        npartitions = default_npartitions(len(frame), jobs, workers)
    phases = _phases(frame, inpath_col, outpaths)
    done = []
    with _interrupt.interruptible(
        runner.run_id, worker_processes=client is None and strategy == "processes"
    ):
        for phase, positions in enumerate(phases):  # clash losers run after every winner
            rows = frame.iloc[positions] if len(phases) > 1 else frame
            split = getattr(task, "split_rows", _split_rows)  # a sink cuts whole shards
            parts = split(rows, min(npartitions, len(rows)))
            # a key of its own per phase: a Client would hand a phase the last one's results
            try:
                done += _compute(
                    task, parts, strategy, client, progress, f"{runner.run_id}-{phase}"
                )
            except WorkerProcessError:  # every worker is gone: what they left is stale
                sweep_after_lost_workers(outpath_func, sink, first_rows)
                raise
    result = concat_results(done)
    if len(phases) > 1:  # back to the table's order
        result = result.iloc[np.argsort(np.concatenate(phases), kind="stable")]
    result = release_inputs(_restore_index(result, index), held, suffix)
    summarize(result)
    seconds = time.perf_counter() - started
    if sink is not None:
        sink.finish(result, seconds)
    if progress:  # one line for the person at the keyboard, besides the log records
        show_line(summary_line(result, seconds))
    return result


def _phases(frame: pd.DataFrame, inpath_col: str, outpaths: Outpaths) -> list[np.ndarray]:
    """Row positions per phase: every row, or the clash winners and then the losers.

    A row that lost a clash (:func:`creevey_dask.storage.naming.find_clashes`) runs only after
    every other row has committed, so the row that won keeps the plain name whichever
    partition it is in; see :meth:`Outpaths.commit`.
    """
    positions = np.arange(len(frame))
    if not outpaths.losers:
        return [positions]
    later = np.array(
        [not is_missing(s) and outpaths.is_loser(s) for s in frame[inpath_col].tolist()],
        dtype=bool,
    )
    if not later.any():
        return [positions]
    return [p for p in (positions[~later], positions[later]) if len(p)]


def _lazy_meta(meta: pd.DataFrame) -> pd.DataFrame:
    """A dask result's meta: ``error_type``'s categories are unknown until computed."""
    from dask.dataframe.utils import clear_known_categories

    return clear_known_categories(meta, cols=["error_type"])


def compute_result(result: Any, *, progress: bool = True) -> pd.DataFrame:
    """Compute a lazy (dask) result table with a progress bar and the end-of-run summary.

    ``result.compute()`` gives the same frame, silently; this shows the bar of its
    partitions (stderr, or a notebook widget), logs the summary and prints its line on
    stderr, as an in-memory run does. On the active ``distributed`` Client if there is
    one. A pandas frame is returned as it is.

    Parameters
    ----------
    result : dask.dataframe.DataFrame or pandas.DataFrame
        A run's result (e.g. ``ddf.creevey.download(...)``).
    progress : bool, default True
        Show the bar and the summary line.

    Returns
    -------
    pandas.DataFrame
    """
    if isinstance(result, pd.DataFrame):
        return result
    if not is_dask_frame(result):
        raise TypeError(f"result must be a dask or pandas DataFrame, got {type(result).__name__}")
    from dask import compute

    started = time.perf_counter()
    parts = result.to_delayed()
    sizes = {part.key: 1 for part in parts}
    client = active_client()
    with RunProgress(len(parts), "partitions", enabled=progress) as bar:
        if client is not None:
            done = _gather(client, client.compute(parts), sizes, bar)
        else:
            with local_callback(bar, sizes):
                done = list(compute(*parts))
    frame = concat_results(done) if done else result._meta.copy()
    if "status" in frame.columns:
        summarize(frame)
        if progress:
            show_line(summary_line(frame, time.perf_counter() - started))
    return frame


def _restore_index(result: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Give the result a MultiIndex input's index back (rows keep their order)."""
    if not isinstance(index, pd.MultiIndex):
        return result
    if len(result) != len(index):  # pragma: no cover - a partition lost or gained rows
        raise RuntimeError(f"the run returned {len(result)} rows for {len(index)} input rows")
    result.index = index
    return result


def _split_rows(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    """``frame`` cut into ``n`` runs of consecutive rows, as even as can be."""
    bounds = [round(i * len(frame) / n) for i in range(n + 1)]
    return [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]


def _compute(
    task: Callable[[pd.DataFrame], pd.DataFrame],
    parts: list[pd.DataFrame],
    strategy: str | None,
    client: Any,
    progress: bool,
    run_id: str,
) -> list[pd.DataFrame]:
    """Run ``task`` on every part as one dask task each; the results in order.

    On the active Client if there is one, else on dask's local ``strategy`` scheduler
    (``"processes"``: a pool of :mod:`creevey_dask.engine.processes` forked for the
    run; None: the scheduler of the user's ``dask.config``).
    The graph is built with ``dask.delayed``, not ``dask.dataframe``, so that a run
    over a pandas frame does not import ``dask.dataframe`` (half a second). The task
    keys carry the run's id and phase: two runs (or phases) on one Client never share a
    key (and so never a result).
    """
    sizes = {f"creevey-{run_id}-{i}": len(part) for i, part in enumerate(parts)}
    if client is None and strategy == "processes" and _processes.process_pool_works():
        # the workers are forked for this run (before the bar starts a thread), and
        # inherit the run's function, pickled once
        with _processes.ship(task) as shipped, _processes.process_pool(local_cores()) as pool:
            tasks = _tasks(shipped, parts, run_id)
            bar = RunProgress(sum(sizes.values()), enabled=progress)
            with bar, local_callback(bar, sizes):
                return _processes.compute_on_pool(tasks, pool)
    from dask import compute

    tasks = _tasks(task, parts, run_id)
    with RunProgress(sum(sizes.values()), enabled=progress) as bar:
        if client is not None:
            return _gather(client, client.compute(tasks), sizes, bar)
        with local_callback(bar, sizes):
            if strategy is None:
                return list(compute(*tasks))
            return list(compute(*tasks, scheduler=local_scheduler(strategy)))


def _tasks(task: Callable[..., pd.DataFrame], parts: list[pd.DataFrame], run_id: str) -> list[Any]:
    """One delayed call of ``task`` per part, keyed ``creevey-<run_id>-<i>``."""
    from dask import delayed

    numbered = getattr(task, "numbered", False)  # wants its part's number, as dask gives
    return [
        delayed(task, pure=False)(
            part,
            dask_key_name=f"creevey-{run_id}-{i}",
            **({"partition_info": {"number": i}} if numbered else {}),
        )
        for i, part in enumerate(parts)
    ]


def _gather(client: Any, futures: list[Any], sizes: Mapping[Any, int], bar: RunProgress) -> Any:
    """The results of ``futures`` in order, moving ``bar`` on as each finishes.

    The bar follows the cluster's own record of finished tasks (``as_completed``), and
    shows on stderr or as a widget like a local run's; the dashboard has the rest.
    """
    from distributed import as_completed

    try:
        for future in as_completed(futures):
            bar.update(sizes.get(future.key, 0))
        return list(client.gather(futures))
    except KeyboardInterrupt:  # Ctrl-C: cancel the partitions; the running ones notice
        client.cancel(futures, force=True)  # (_interrupt.RowGate) and stop
        raise
