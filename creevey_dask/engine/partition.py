"""One partition's rows: :class:`PartitionRunner`, the function each dask task calls.

Inside a partition, ``n_jobs`` threads pull rows from a shared counter, so IO overlaps
and the per-row cost is a few function calls, not a future per row. A partition first
plans every row's outpath (:class:`~creevey_dask.storage.naming.Outpaths`) and sweeps dead
writers' temporaries from those folders (:func:`creevey_dask.storage.sweep`); then each
row is skip check (this source's complete output?) → load → ops → write a temporary →
commit it with its proof (:mod:`creevey_dask.storage.provenance`). Any exception becomes that
row's ``error``; a failed row leaves nothing at any outpath. The rows' answers become
the partition's result columns.
"""

from __future__ import annotations

import copy
import logging
import os
import stat
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..exceptions import UpstreamError, format_error
from ..schema import (
    RESULT_COLUMNS,
    STATUS_DTYPE,
    STRING_DTYPE,
    UPSTREAM_ERROR_COL,
    error_type_column,
)
from ..storage import fs as storage
from ..storage import provenance
from ..storage.naming import Outpaths, source_key, url_hash
from . import interrupt as _interrupt
from .inputs import is_missing
from .outputs import process_local_message
from .rows import end_row, start_row
from .scheduling import default_jobs

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["PartitionRunner"]

logger = logging.getLogger(__name__)


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
            if is_missing(source):
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
                    process_local_message(lost[0], "this partition runs in another process")
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


def _coerce(value: Any, dtype: Any, name: str) -> Any:
    """``value`` if it fits ``dtype``, else NA (a stage recorded a value of the wrong type)."""
    try:
        pd.Series([value], dtype=dtype)
    except (TypeError, ValueError):
        logger.warning("result column %r: dropped %r, which is not %s", name, value, dtype)
        return None
    return value
