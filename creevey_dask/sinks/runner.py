"""One partition of a sharded run: its keys, the rows to do, its shards, their commit.

:class:`SinkRunner` is what :meth:`creevey_dask.sinks.shards.Sink.bind` gives the
engine: it derives the rows' keys (:mod:`creevey_dask.sinks.keys`), skips or reports
the rows whose latest record says so (:mod:`creevey_dask.sinks.resume`), runs the
others through the engine's row runner a shard at a time with their images spooled
(:mod:`creevey_dask.sinks.spool`), and commits each shard through its format's writer
(:mod:`creevey_dask.sinks.formats`).
"""

from __future__ import annotations

import copy
import datetime
import itertools
import logging
import math
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..engine import interrupt as _interrupt
from ..exceptions import format_error
from ..schema import STATUS_DTYPE, STRING_DTYPE, concat_results, error_type_column
from ..storage import fs as storage
from ..storage.samples import KEY_COL
from . import stats
from .formats import FORMATS
from .keys import checked_keys, matched_keys, row_keys, valid_key
from .records import unstorable_rows
from .resume import Latest, complete_records, shard_names
from .spool import SAMPLE_COL, Capture, ShardRows, Spool

if TYPE_CHECKING:
    from .shards import Sink

__all__ = ["KEY_IN", "SinkRunner"]

logger = logging.getLogger(__name__)

#: The column of the keys of a sharded result frame fed back in.
KEY_IN = "_creevey_key"


def _writing_id() -> str:
    """A call's part of its shards' names: its UTC start time, then 4 random hex digits."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:4]


def _shard_prefix(writing: str, partition: int, chunk: int) -> str:
    return f"{writing}-{partition:05d}-{chunk:04d}"


class SinkRunner:
    """Runs one partition through the engine's row runner and writes it through a sink."""

    numbered = True  # the engine passes each in-memory part's number as partition_info

    def __init__(
        self,
        sink: Sink,
        runner: Any,
        index: Mapping[str, Latest] | None = None,
        by_source: Mapping[str, list[str]] | None = None,
        *,
        lazy: bool = False,
        retry_errors: bool = True,
    ) -> None:
        self.sink = sink
        self.runner = runner
        self.index = dict(index or {})  # key -> its latest record in the dataset
        self.by_source = dict(by_source or {})  # source -> its recorded keys, oldest first
        self.lazy = lazy
        self.retry_errors = retry_errors
        self.writing = _writing_id()

    # ---- the per-partition row runner -------------------------------------------------
    def _row_runner(self, part: pd.DataFrame) -> Any:
        runner = self.runner
        sink = self.sink
        pipeline = runner.pipeline
        load_func = pipeline.load_func
        binds = sink.verify_hash is not None and hasattr(load_func, "with_expected")
        if not binds and not sink.sharded:
            return runner
        runner = copy.copy(runner)
        pipeline = copy.copy(pipeline)
        runner.pipeline = pipeline
        if binds:
            assert sink.verify_hash is not None
            pipeline.load_func = load_func.with_expected(
                part[runner.inpath_col].tolist(), part[sink.verify_hash[0]].tolist()
            )
        if sink.sharded:
            pipeline.write_func = Capture(pipeline.write_func)
            runner.outpaths = runner.outpaths.hints(sink.sample_namer(runner.outpaths.outpath_func))
            runner.skip_existing = False
            runner.result_columns = {**runner.result_columns, SAMPLE_COL: "object"}
        return runner

    def _keys(self, part: pd.DataFrame) -> list[str]:
        """The rows' keys: those fed back in where valid, else derived (:func:`row_keys`).

        A derived key that has no record is matched by source (:func:`matched_keys`).
        """
        sources = part[self.runner.inpath_col].tolist()
        keys = row_keys(part.index, sources)
        fixed = [False] * len(keys)
        if KEY_IN in part.columns:  # a result frame fed back in: its rows keep their keys
            given = part[KEY_IN].tolist()
            keys = checked_keys(given, keys)
            fixed = [valid_key(g) and g == k for g, k in zip(given, keys, strict=True)]
        if self.by_source:
            keys = matched_keys(keys, sources, fixed, self.index, self.by_source)
        return keys

    def _todo(self, keys: list[str]) -> np.ndarray:
        """Which rows run: all without ``skip_existing``; else those not done (or failed)."""
        if not self.runner.skip_existing:
            return np.ones(len(keys), dtype=bool)
        index = self.index
        retry = self.retry_errors
        todo = []
        for key in keys:
            latest = index.get(key)
            todo.append(latest is None or (latest.status != "ok" and retry))
        return np.array(todo, dtype=bool)

    def split_rows(self, frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
        """In-memory input cut into at most ``n`` runs of rows that fill whole shards.

        The rows still to do are counted: every part but the last gets a whole number
        of shards of them, so only the call's last shard is short.
        """
        size = self.sink.shard_size
        if not len(frame):
            return []
        keys = self._keys(frame)  # once over the frame, so that its parts keep them
        frame = frame.assign(**{KEY_IN: pd.Series(keys, index=frame.index, dtype=object)})
        todo = self._todo(keys)
        count = int(todo.sum())
        if count == 0:
            return [frame] if len(frame) else []
        shards = math.ceil(count / size)
        per = math.ceil(shards / min(n, shards)) * size  # rows to do per part
        ends = np.searchsorted(np.cumsum(todo), np.arange(per, count, per), side="left") + 1
        bounds = [0, *ends.tolist(), len(frame)]
        return [frame.iloc[a:b] for a, b in itertools.pairwise(bounds) if b > a]

    def __call__(self, part: pd.DataFrame, partition_info: Mapping[str, Any] | None = None) -> Any:
        runner = self._row_runner(part)
        if not self.sink.sharded:
            return runner(part)
        number = int(partition_info["number"]) if partition_info else 0
        self._sweep()
        keys = self._keys(part)
        if KEY_IN in part.columns:
            part = part.drop(columns=[KEY_IN])
        if len(part) == 0:
            return self._finish(runner(part), [], None)
        todo = self._todo(keys)
        frames = []
        order: list[int] = []
        done = np.flatnonzero(~todo).tolist()
        if done:
            frames.append(self._recorded(runner, part.iloc[done], [keys[i] for i in done]))
            order += done
        rows = np.flatnonzero(todo).tolist()
        size = self.sink.shard_size
        for chunk, start in enumerate(range(0, len(rows), size)):
            positions = rows[start : start + size]
            sub = part.iloc[positions]
            shard_keys = [keys[i] for i in positions]
            frames.append(self._shard(runner, sub, shard_keys, number, chunk))
            order += positions
        out = concat_results(frames)
        if order != sorted(order):
            out = out.iloc[np.argsort(np.array(order), kind="stable")]
        if self.lazy:  # no driver step after a dask run: each partition updates the stats
            stats.update(self.sink, self.sink.shard_size, None, None)
        return out

    def _sweep(self) -> None:
        """Remove dead shard writers' temporaries from ``outdir`` (storage's sweep)."""
        folder = storage.local_folder(self.sink.shard_path("shard"))
        if folder is not None:
            removed = storage.sweep([folder])
            if removed:
                logger.info("removed %d stale temporary file(s) in %s", removed, folder)

    def _recorded(self, runner: Any, sub: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        """The rows not run: reported from their latest records (ok → skipped)."""
        latest = [self.index[k] for k in keys]
        records = pd.DataFrame(
            {
                KEY_COL: keys,
                "status": [e.status for e in latest],
                "error": pd.Series([e.error for e in latest], dtype="string"),
            }
        )
        return self._skipped(runner, sub, keys, records, [e.shard for e in latest])

    # ---- one shard --------------------------------------------------------------------
    def _shard(
        self, runner: Any, sub: pd.DataFrame, keys: list[str], number: int, chunk: int
    ) -> pd.DataFrame:
        """Run and commit one shard of rows (or find it written by this very task before).

        A task that dask runs again (its worker died after the commit) finds the shard
        it wrote under the same prefix and reports its rows as ``skipped``.
        """
        prefix = _shard_prefix(self.writing, number, chunk)
        if self.runner.skip_existing:
            for name in shard_names(self.sink, prefix + "-*"):
                records = complete_records(self.sink, name)
                if records is not None and records[KEY_COL].tolist() == keys:
                    shard = self.sink.shard_path(name)
                    return self._skipped(runner, sub, keys, records, [shard] * len(keys))
        return self._write(runner, sub, keys, f"{prefix}-{uuid.uuid4().hex[:8]}")

    def _write(self, runner: Any, sub: pd.DataFrame, keys: list[str], name: str) -> pd.DataFrame:
        """Run the rows and commit them as shard ``name``."""
        sink = self.sink
        spool = Spool()
        try:
            runner.pipeline.write_func.spool = spool
            result = runner(sub)
            ok = (result["status"] == "ok").to_numpy(dtype=bool, copy=True)  # ours to change
            if _interrupted(runner):  # Ctrl-C: commit nothing, so a rerun redoes the shard
                message = "RunInterruptedError: the run was interrupted (Ctrl-C)"
                return self._fail(result, keys, sink.shard_path(name), ok, message)
            try:
                self._commit(runner, sub, result, keys, ok, name, spool)
            except Exception as err:  # the rows were done, but their shard could not be stored
                message = f"the shard {sink.shard_path(name)!r} could not be written: "
                message += format_error(err)
                logger.warning("creevey: %s", message)
                return self._fail(result, keys, sink.shard_path(name), ok, message)
        finally:
            runner.pipeline.write_func.spool = None
            spool.close()
        return self._finish(result, keys, sink.shard_path(name), ok)

    def _fail(
        self, result: pd.DataFrame, keys: list[str], shard: str, ok: Any, message: str
    ) -> pd.DataFrame:
        result.loc[ok, "status"] = "error"
        result.loc[ok, "error"] = message
        result.loc[ok, "outpath"] = None
        ok[:] = False
        return self._finish(result, keys, shard, ok)

    def _finish(
        self, result: pd.DataFrame, keys: list[str], shard: str | None, ok: Any = None
    ) -> pd.DataFrame:
        result = result.drop(columns=[SAMPLE_COL])
        result[KEY_COL] = pd.Series(keys, index=result.index, dtype="string")
        result["error_type"] = error_type_column(result["error"], result.index)  # rows failed here
        if shard is not None and ok is not None:
            outpath = [shard if flag else None for flag in ok]
            result["outpath"] = pd.Series(outpath, index=result.index, dtype="string")
        return result

    def _records(
        self, runner: Any, sub: pd.DataFrame, result: pd.DataFrame, keys: list[str], shard: str
    ) -> pd.DataFrame:
        """The shard's records: carried columns, key, outpath, status, error, results."""
        sink = self.sink
        inputs = [c for c in sub.columns if not str(c).startswith("_creevey_")]
        carry = inputs if sink.carry_cols is None else list(sink.carry_cols)
        source_col = runner.inpath_col
        if source_col not in carry:
            carry = [source_col, *carry]
        results = [c for c in runner.result_columns if c not in (SAMPLE_COL, KEY_COL)]
        records = pd.DataFrame(index=result.index)
        for col in carry:
            records[str(col)] = sub[col]
        records[KEY_COL] = pd.Series(keys, index=result.index, dtype="string")
        for col in results:
            records[col] = result[col]
        ok = result["status"] == "ok"
        records["outpath"] = pd.Series(
            [shard if flag else None for flag in ok], index=result.index, dtype="string"
        )
        records["status"] = result["status"].astype("string")
        if "error_type" in records.columns:  # each shard's categories would differ
            records["error_type"] = result["error_type"].astype("string")
        return records.reset_index(drop=True)

    def _commit(
        self,
        runner: Any,
        sub: pd.DataFrame,
        result: pd.DataFrame,
        keys: list[str],
        ok: Any,
        name: str,
        spool: Spool,
    ) -> None:
        """Write the shard from the spool through its format's writer (its records last).

        Rows whose values cannot be stored become errors here, alone (``ok`` and
        ``result`` are changed in place).
        """
        sink = self.sink
        shard = sink.shard_path(name)
        records = self._records(runner, sub, result, keys, shard)
        unstorable_rows(records, result, ok)
        rows = ShardRows(
            path=shard,
            records_path=sink.records_path(name),
            records=records,
            result=result,
            samples=result[SAMPLE_COL].tolist(),
            keys=keys,
            ok=ok,
            spool=spool,
            caption_col=sink.caption_col,
            storage_options=sink.storage_options,
        )
        FORMATS[sink.output_format].write(rows)

    def _skipped(
        self,
        runner: Any,
        sub: pd.DataFrame,
        keys: list[str],
        records: pd.DataFrame,
        shards: list[str | None],
    ) -> pd.DataFrame:
        """The result rows of rows not run, from their records (ok → skipped).

        ``shards`` holds each row's shard (its ``outpath`` when ``ok``).
        """
        result = runner(sub.iloc[:0])  # the schema, without running any row
        result = result.drop(columns=[SAMPLE_COL])
        out = sub.copy(deep=False)
        out = out[[c for c in result.columns if c in out.columns]]
        index = sub.index
        done = records["status"] == "ok"
        was_ok = done.to_numpy()
        for col in result.columns:
            if col in sub.columns and col not in runner.result_columns:
                continue
            if col == "status":
                statuses = records["status"].where(~done, "skipped").tolist()
                out[col] = pd.Series(pd.Categorical(statuses, dtype=STATUS_DTYPE), index=index)
            elif col == "outpath":
                paths = [p if flag else None for p, flag in zip(shards, was_ok, strict=True)]
                out[col] = pd.Series(paths, index=index, dtype=STRING_DTYPE)
            elif col == KEY_COL:
                out[col] = pd.Series(keys, index=index, dtype="string")
            elif col == "error_type":
                errors = records["error"] if "error" in records.columns else [None] * len(sub)
                out[col] = error_type_column(list(errors), index)
            elif col in records.columns:
                values = records[col].tolist()
                out[col] = pd.Series(values, index=index).astype(result[col].dtype)
            else:
                out[col] = pd.Series([None] * len(sub), index=index, dtype=result[col].dtype)
        return out[list(result.columns)]


def _interrupted(runner: Any) -> bool:
    """Whether Ctrl-C interrupted the run that ``runner`` belongs to."""
    run_id = getattr(runner, "run_id", None)
    return run_id is not None and _interrupt.is_interrupted(run_id)
