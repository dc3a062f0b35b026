"""The engine: run a :class:`~creevey_dask.engine.pipeline.Pipeline` over pandas or dask frames.

One partition runner serves every input. In-memory input (a list, a pandas Series or
DataFrame) is cut into runs of rows, each run becomes one ``dask.delayed`` task, and the
tasks are computed on the active ``dask.distributed`` Client if there is one, else on the
pipeline's local dask scheduler; the result is pandas. Dask input stays lazy: each of
its partitions becomes one task (``map_partitions`` with an explicit ``meta``). A run over
pandas never imports ``dask.dataframe`` or ``distributed`` (most of a second of start-up).

Inside a partition, ``n_jobs`` threads pull rows from a shared counter, so IO overlaps
and the per-row cost is a few function calls, not a future per row. A partition first
plans every row's outpath (:class:`~creevey_dask.storage.naming.Outpaths`) and sweeps dead
writers' temporaries from those folders (:func:`creevey_dask.storage.sweep`); then each
row is skip check (this source's complete output?) → load → ops → write a temporary →
commit it with its proof (:mod:`creevey_dask.storage.provenance`). Any exception becomes that
row's ``error``; a failed row leaves nothing at any outpath.

A ``memory://`` output lives in one process's memory, so the engine refuses it with
rows in other processes (the ``"processes"`` strategy, a Client with worker processes)
up front; lazy dask input computed later on processes raises in its partitions.

The engine is also the one place where inputs are coerced (lists, Series, frames, empty
input, a MultiIndex) and where a previous result frame fed back in is recognised.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import math
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._dask_types import is_dask_frame
from ..exceptions import ColumnError, UpstreamError, error_cause, format_error
from ..options import LOCAL_JOBS, NETWORK_JOBS
from ..schema import (
    RESULT_COLUMNS,
    STATUS_DTYPE,
    STRING_DTYPE,
    UPSTREAM_ERROR_COL,
    concat_results,
    error_type_column,
)
from ..storage import fs as storage
from ..storage import provenance
from ..storage.naming import Outpaths, source_key, url_hash
from . import interrupt as _interrupt
from . import processes as _processes
from .inputs import (
    Inpaths,
    as_frame,
    drop_previous_results,
    release_inputs,
    source_col_for,
)
from .progress import RunProgress, local_callback, show_line
from .rows import end_row, start_row
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


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


class PartitionRunner:
    """Runs a pipeline over the rows of one pandas partition (one dask task).

    A plain picklable object, so it travels to worker processes.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        outpaths: Outpaths,
        inpath_col: str,
        n_jobs: int | None,
        skip_existing: bool,
        result_columns: Mapping[str, Any],
        resolve_names: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.outpaths = outpaths
        self.inpath_col = inpath_col
        self.n_jobs = n_jobs
        self.skip_existing = skip_existing
        self.result_columns = dict(result_columns)
        self.run_id = _interrupt.new_run_id()  # Ctrl-C interrupts this run
        self.created = time.time()  # a worker's Ctrl-C after this stops the run's partitions
        self.home_pid = os.getpid()  # the caller's process, which owns its memory://
        self.resolve_names = resolve_names  # settle the partition's clashes first

    def plan_row(self, source: Any, upstream_error: Any = None) -> str | BaseException:
        """The outpath a row aims for, or the exception that makes it an error row."""
        try:
            if _is_missing(source):
                if isinstance(upstream_error, str) and upstream_error:
                    raise UpstreamError.after(upstream_error)
                raise ValueError("the source is missing (null)")
            return self.outpaths.plan(source)
        except Exception as err:
            return err

    def process_row(
        self, source: Any, planned: str | BaseException
    ) -> tuple[str | None, str, str | None, dict[str, Any]]:
        """One row: ``(outpath, status, error, recorded values)``; never raises.

        ``planned`` is :meth:`plan_row`'s answer. A row is ``skipped`` only when this
        source's complete output exists (:meth:`Outpaths.existing`). The writer writes a
        temporary path (or hands over its bytes) and the engine commits the result under
        a name this source owns (:meth:`Outpaths.commit`), with its proof. A failed row
        leaves nothing at any outpath: the temporary is removed, and whatever is at the
        outpath belongs to someone else.
        """
        values = start_row()
        try:
            if isinstance(planned, BaseException):
                raise planned
            outpaths = self.outpaths
            first_free = False
            digest = url_hash(source_key(source))
            if self.skip_existing:
                existing, first_free = outpaths.probe(source, planned, digest)
                if existing is not None:
                    return existing, "skipped", None, values
            pipeline = self.pipeline
            image = pipeline.load(source)
            for op in pipeline.ops:
                image = op(image)
            with _interrupt.current_gate():  # after Ctrl-C, no row starts writing
                outpath, status = self._write(source, planned, image, first_free, digest)
            return outpath, status, None, values
        except Exception as err:
            return None, "error", format_error(err), values
        finally:
            end_row()

    def _write(
        self,
        source: Any,
        planned: str,
        image: Any,
        first_free: bool = False,
        digest: str | None = None,
    ) -> tuple[str | None, str]:
        """Write ``image`` through the pipeline's writer and commit it: ``(outpath, status)``.

        A writer with ``encode_for`` (the library's own) hands over bytes, committed in
        one write or PUT; any other ``write_func(image, path)`` writes the temporary local
        path it is given, which keeps the output's extension. A writer that returns
        without writing that path gives an ``ok`` row with no ``outpath``. A writer's
        ``committed(outpath)`` method, if it has one, is called after each commit.
        """
        write = self.pipeline.write_func
        outpaths = self.outpaths
        replace = not self.skip_existing
        if not outpaths.files:  # a shard's sample: the sink commits the whole shard
            write(image, planned)
            return planned, "ok"
        encode = getattr(write, "encode_for", None)
        if encode is not None:
            data, _ = encode(image, planned)
            if not data:
                raise ValueError("write_func encoded no bytes: no image is 0 bytes")
            payload: provenance.Payload = provenance.BytesPayload(data)
            outpath, status = outpaths.commit(
                source, planned, payload, replace=replace, first_free=first_free, digest=digest
            )
        else:
            with provenance.writer_temp(planned) as temp:
                write(image, temp.path)
                try:
                    written = os.lstat(temp.path)  # a link is not a file the writer wrote
                except FileNotFoundError:
                    temp.gone = True
                    return None, "ok"  # the writer wrote nothing (a run for its reporters)
                if not stat.S_ISREG(written.st_mode):
                    raise ValueError(f"write_func left something other than a file: {temp.path!r}")
                if written.st_size == 0:
                    raise ValueError("write_func wrote an empty file: no image is 0 bytes")
                payload = provenance.FilePayload(temp, written)
                outpath, status = outpaths.commit(
                    source, planned, payload, replace=replace, first_free=first_free, digest=digest
                )
        committed = getattr(write, "committed", None)  # e.g. the original's write log
        if committed is not None and status == "ok":
            committed(outpath)
        return outpath, status

    def __call__(self, part: pd.DataFrame) -> pd.DataFrame:
        sources = part[self.inpath_col].tolist()
        if self.resolve_names:  # the partition's row order decides, not thread timing
            runner = copy.copy(self)
            runner.outpaths = self.outpaths.resolved(sources)
            runner.resolve_names = False
            return runner(part)
        if _interrupt.interrupted_since(self.created):  # handed to a worker after Ctrl-C
            _interrupt.cancel(self.run_id)
        n = len(sources)
        upstream: list[Any] = [None] * n
        if UPSTREAM_ERROR_COL in part.columns:
            upstream = part[UPSTREAM_ERROR_COL].tolist()
            part = part.drop(columns=[UPSTREAM_ERROR_COL])
        planned = [self.plan_row(s, u) for s, u in zip(sources, upstream, strict=True)]
        if os.getpid() != self.home_pid:  # lazy dask input computed on processes
            lost = [p for p in planned if isinstance(p, str) and storage.is_process_local(p)]
            if lost:
                raise ValueError(
                    _process_local_message(lost[0], "this partition runs in another process")
                )
        self._sweep(planned)
        rows: list[Any] = [None] * n
        runner = copy.copy(self)  # one listing of object-store folders per partition
        runner.outpaths = self.outpaths.indexed(planned)

        def do_row(i: int) -> None:
            rows[i] = runner.process_row(sources[i], planned[i])

        if n:  # rows on daemon threads, so that Ctrl-C stops the partition at once
            gate = _interrupt.RowGate(self.run_id)
            threads = self.n_jobs or default_jobs(sources)
            losers = [i for i in range(n) if self._deferred(sources[i], planned[i])]
            if not losers:
                gate.run(n, min(threads, n), do_row)
            else:  # the rows that lost a clash run once the winners have committed
                later = set(losers)
                for order in ([i for i in range(n) if i not in later], losers):
                    if order:
                        gate.run(len(order), min(threads, len(order)), _rows_of(order, do_row))
        return self._assemble(part, rows)

    def _deferred(self, source: Any, planned: str | BaseException) -> bool:
        return isinstance(planned, str) and self.outpaths.is_loser(source)

    def _sweep(self, planned: list[str | BaseException]) -> None:
        """Before any row runs: remove dead writers' temporaries where rows will write."""
        provenance.forget_folders()  # a folder removed since the last partition is made again
        # each distinct folder once: a partition's rows mostly share a few
        named = {"".join(p.rpartition("/")[:2]) for p in planned if isinstance(p, str)}
        folders = {folder for name in named if (folder := storage.local_folder(name + "_"))}
        removed = storage.sweep(sorted(folders))
        writes_scratch = not hasattr(self.pipeline.write_func, "encode_for")
        if writes_scratch and any(not storage.is_local(name) for name in named):
            removed += provenance.sweep_scratch()  # dead writers' scratch of remote outputs
        if removed:
            logger.info("removed %d stale temporary file(s) in %s", removed, sorted(folders))

    def _assemble(self, part: pd.DataFrame, rows: list[Any]) -> pd.DataFrame:
        index = part.index
        result = part.copy(deep=False)
        outpaths, statuses, errors, values = zip(*rows, strict=True) if rows else ((), (), (), ())
        result["outpath"] = pd.Series(outpaths, index=index, dtype=STRING_DTYPE)
        result["status"] = pd.Series(pd.Categorical(statuses, dtype=STATUS_DTYPE), index=index)
        result["error"] = pd.Series(errors, index=index, dtype=STRING_DTYPE)
        result["error_type"] = error_type_column(errors, index)
        for name, dtype in self.result_columns.items():
            if name in RESULT_COLUMNS:
                continue
            column = [v.get(name) for v in values]
            try:
                result[name] = pd.Series(column, index=index, dtype=dtype)
            except (TypeError, ValueError) as err:
                result[name] = pd.Series(
                    [_coerce(v, dtype, name) for v in column], index=index, dtype=dtype
                )
                logger.warning("result column %r: %s", name, format_error(err))
        return result


def _rows_of(order: list[int], do_row: Callable[[int], None]) -> Callable[[int], None]:
    """``do_row`` over the rows ``order`` (the j-th call runs row ``order[j]``)."""
    return lambda j: do_row(order[j])


def _process_local_message(path: str, where: str) -> str:
    return (
        f"the output {path!r} is in memory://, which lives in one process, but {where}: "
        "its writes would be lost with that process. Use parallel_strategy='threads' (or a "
        "Client with processes=False), or write to a folder on disk or in object storage"
    )


def _has_process_workers(client: Any) -> bool:
    """Whether any of ``client``'s workers runs in another process (not ``inproc://``)."""
    workers = client.scheduler_info().get("workers", {})
    return any(not str(address).startswith("inproc://") for address in workers)


def _local_strategy(
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


def _pickles(*parts: Any) -> bool:
    """Whether ``parts`` (a run's pipeline, namer and sink) pickle, to go to processes."""
    import cloudpickle

    try:
        cloudpickle.dumps(parts)
    except Exception as err:
        logger.debug("the run stays on threads: it does not pickle: %s", format_error(err))
        return False
    return True


def _process_local(
    outpath_func: Callable[[Any], Any], sink: Sink | None, sources: Iterable[Any] | None
) -> bool:
    """Whether the run writes to ``memory://``, which lives in this process only."""
    return any(storage.is_process_local(r) for r in _output_roots(outpath_func, sink, sources))


def _configured_strategy() -> str:
    """The strategy the user's ``dask.config`` scheduler amounts to, for the checks."""
    import dask

    name = dask.config.get("scheduler", None)
    return "processes" if name in ("processes", "multiprocessing") else "threads"


def _refuse_process_local_outputs(
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
    partition itself (:class:`PartitionRunner`), which then raises instead of writing.
    """
    roots = _output_roots(outpath_func, sink, sources)
    lost = [root for root in roots if storage.is_process_local(root)]
    if not lost:
        return
    if strategy is None:
        strategy = _configured_strategy()
    if client is not None:
        if _has_process_workers(client):
            raise ValueError(
                _process_local_message(lost[0], "the active Client's workers are other processes")
            )
    elif strategy == "processes":
        raise ValueError(
            _process_local_message(
                lost[0], "parallel_strategy='processes' runs rows in other processes"
            )
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
    first = next((s for s in (() if sources is None else sources) if not _is_missing(s)), None)
    if first is not None:
        with contextlib.suppress(Exception):  # an unusable source is an error row later
            roots.append(os.fspath(outpath_func(first)))
    return roots


def _refuse_unwritable_outdir(
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


def _coerce(value: Any, dtype: Any, name: str) -> Any:
    """``value`` if it fits ``dtype``, else NA (a stage recorded a value of the wrong type)."""
    try:
        pd.Series([value], dtype=dtype)
    except (TypeError, ValueError):
        logger.warning("result column %r: dropped %r, which is not %s", name, value, dtype)
        return None
    return value


def default_jobs(sources: Iterable[Any]) -> int:
    """Rows in flight for a partition with ``n_jobs=None``, from its first source.

    :data:`~creevey_dask.options.LOCAL_JOBS` for a local file,
    :data:`~creevey_dask.options.NETWORK_JOBS` for a URL or remote file (network-bound).
    """
    first = next((s for s in sources if not _is_missing(s)), None)
    if isinstance(first, (str, os.PathLike)) and not storage.is_local(os.fspath(first)):
        return NETWORK_JOBS
    return LOCAL_JOBS


def _default_npartitions(n_rows: int, n_jobs: int, workers: int) -> int:
    """Enough partitions to feed every worker and show progress; each ≥ 2·n_jobs rows."""
    size = min(max(n_rows // (4 * workers), 2 * n_jobs), _MAX_PARTITION_ROWS)
    return max(1, math.ceil(n_rows / max(size, 1)))


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
        strategy, pipeline = _local_strategy(
            strategy,
            pipeline,
            len(frame),
            _process_local(outpath_func, sink, first_rows),
            lambda: _pickles(pipeline, outpaths, sink),
        )
    _refuse_process_local_outputs(outpath_func, sink, first_rows, strategy, client)
    _refuse_unwritable_outdir(outpath_func, sink, first_rows)
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
        npartitions = _default_npartitions(len(frame), jobs, workers)
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
            done += _compute(task, parts, strategy, client, progress, f"{runner.run_id}-{phase}")
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
        [not _is_missing(s) and outpaths.is_loser(s) for s in frame[inpath_col].tolist()],
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
            return list(compute(*tasks, scheduler=_local_scheduler(strategy)))


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


def _local_scheduler(strategy: str) -> Callable[..., Any]:
    """Dask's local scheduler for ``strategy`` (``"threads"`` or ``"processes"``).

    Passed to ``dask.compute`` as the function itself: given by name, dask imports
    ``distributed`` to look for a Client first, which costs a tenth of a second.
    """
    if strategy == "processes":
        import dask.multiprocessing

        return dask.multiprocessing.get
    import dask.threaded

    return dask.threaded.get


def local_cores() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
