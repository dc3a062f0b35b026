"""Output formats of a run: files, WebDataset tar shards, Parquet shards.

A run writes through one *sink*. ``"files"`` (the default) writes one file per row, as
the engine always has. The sharded formats group each partition's rows into shards of
up to ``shard_size`` rows:

``"webdataset"``
    ``{outdir}/{shard}.tar`` holds, per ``ok`` row, the members ``{key}.{ext}`` (the
    image), ``{key}.json`` (the row's carried columns, ``key``, ``width``, ``height``
    and the image's ``sha256``) and, with ``caption_col=``, ``{key}.txt``. Members are
    named and ordered as webdataset's ``TarWriter`` and img2dataset name them.
    Beside it, ``{shard}.parquet`` records every row of the shard (``ok`` and
    ``error``): the carried columns, ``key``, ``outpath``, ``status``, ``error`` and
    the run's result columns.
``"parquet"``
    ``{shard}.parquet`` holds those records plus an ``image`` column, a struct of
    ``bytes`` and ``path`` (null for error rows) that Hugging Face ``datasets`` reads
    as its ``Image`` feature.

Shard names are ``{partition:05d}-{chunk:04d}-{digest}``, the digest taken over the
keys of the shard's rows, so a shard name stands for exactly one list of rows. A row's
``key`` is a hash of its index label and source (unique across the dataset as long as
those pairs are), so a row fed back into a run keeps its key.

Commit and resume: a shard's files are built in memory and written with
:func:`creevey_dask.storage.write_bytes_atomic` (a temporary name and one rename, or one
PUT), the tar first and the records Parquet last, which is the commit. A rerun with
``skip_existing=True`` skips every complete shard listing the same rows (its records
read and, for WebDataset, its tar is there with the size noted in its records): its rows
are reported from the records (``ok`` becomes ``skipped``, errors stay errors). A
missing, empty or cut shard is written again. Rows fed back after failing (a result
frame, or the records from :func:`read_shards`) keep their keys and go to a new shard:
their row list differs, or, when a whole shard failed, the next free generation
``{shard}-1``, ``{shard}-2``, ... is used; committed shards are never rewritten. A
killed run leaves whole shards and at most hidden temporaries, which every sharded run
sweeps from ``outdir`` first (:func:`creevey_dask.storage.sweep`).

At the end of an in-memory run, ``{outdir}/_stats.json`` sums the run up (see
:func:`write_stats`). :func:`read_shards` reads the records of a sharded output back as
a dask DataFrame.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import io
import json
import logging
import math
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..engine import interrupt as _interrupt
from ..engine.rows import record, result_columns_of
from ..exceptions import ColumnError, format_error
from ..image.formats import extension_for
from ..schema import (
    STATUS_DTYPE,
    STRING_DTYPE,
    UPSTREAM_ERROR_COL,
    concat_results,
    error_type_column,
)
from ..storage import fs as storage
from ..storage.naming import safe_filename

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pyarrow as pa

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "IMAGE_COL",
    "KEY_COL",
    "OUTPUT_FORMATS",
    "STATS_NAME",
    "Sink",
    "read_shards",
    "row_keys",
    "write_stats",
]

logger = logging.getLogger(__name__)

#: The allowed values of ``output_format=``.
OUTPUT_FORMATS = ("files", "webdataset", "parquet")
#: The default number of rows per shard.
DEFAULT_SHARD_SIZE = 1000
#: The result column that holds each row's sample key in a sharded run.
KEY_COL = "key"
#: The image column of ``output_format="parquet"`` shards (HF ``Image``: bytes, path).
IMAGE_COL = "image"
#: The name of the run summary written into ``outdir`` at the end of a sharded run.
STATS_NAME = "_stats.json"

_SAMPLE_COL = "_creevey_sample"  # (bytes, Pillow format) of a row's encoded image
_KEY_IN = "_creevey_key"  # the keys of a sharded result frame fed back in
_SHARD_EXT = {"webdataset": ".tar", "parquet": ".parquet"}
_RECORDS_EXT = ".parquet"
_KEY_HEX = 16
_TAR_BYTES_META = b"creevey_tar_bytes"  # records metadata: the size of the shard's tar


def _check_format(output_format: Any) -> str:
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format {output_format!r} is not one of {list(OUTPUT_FORMATS)}")
    return str(output_format)


def _check_shard_size(shard_size: Any) -> int:
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive int, got {shard_size!r}")
    return shard_size


def _image_ext(fmt: str) -> str:
    """The member extension (no dot) for a Pillow format: ``JPEG`` → ``jpg``."""
    return extension_for(fmt).lstrip(".")


def row_keys(labels: Iterable[Any], sources: Iterable[Any]) -> list[str]:
    """The sample keys of rows: 16 hex digits of the sha256 of ``(index label, source)``.

    A key repeated within the rows (the same label and source twice) gets ``-2``,
    ``-3``, ... appended. Keys contain no dots, as webdataset requires.

    Examples
    --------
    >>> row_keys([0, 1], ["a.jpg", "a.jpg"])
    ['e439d64aed980bad', '8b978fcb1820e3c5']
    """
    keys: list[str] = []
    seen: dict[str, int] = {}
    for label, source in zip(labels, sources, strict=True):
        text = f"{label}\x00{source}".encode("utf-8", "surrogatepass")
        key = hashlib.sha256(text).hexdigest()[:_KEY_HEX]
        n = seen.get(key, 0) + 1
        seen[key] = n
        keys.append(key if n == 1 else f"{key}-{n}")
    return keys


def _shard_name(partition: int, chunk: int, keys: list[str]) -> str:
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:8]
    return f"{partition:05d}-{chunk:04d}-{digest}"


def _json_value(value: Any) -> Any:
    """A faithful JSON form of a cell, for a WebDataset sample's ``{key}.json``.

    NA, NaN, inf and -inf → ``null`` (JSON has no such numbers); numpy scalars →
    Python numbers; numpy arrays, lists and tuples → lists; dicts → objects; bytes →
    a base64 string; timestamps → ISO 8601 strings; anything else → ``str(value)``.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "item") and not isinstance(value, str):
        with contextlib.suppress(TypeError, ValueError):
            value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (bytes, bytearray)):  # a numpy bytes scalar's item()
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


class _SampleName:
    """The name hint of a row's image in a shard: the source's sanitised filename."""

    def __init__(self, outdir: str) -> None:
        self.outdir = outdir

    def __call__(self, source: Any) -> str:
        return storage.join(self.outdir, safe_filename(str(source)))


class _Capture:
    """A write_func that keeps the encoded image in the row's record instead of writing."""

    def __init__(self, write_func: Any) -> None:
        self.write_func = write_func

    @property
    def result_columns(self) -> dict[str, Any]:
        return result_columns_of(self.write_func)

    def __call__(self, image: Any, outpath: str) -> None:
        data, fmt = self.write_func.encode_for(image, outpath)
        width, height = image.size
        record(**{"width": width, "height": height, _SAMPLE_COL: (bytes(data), fmt)})


class Sink:
    """Where and how a run writes its outputs: files, WebDataset shards or Parquet shards.

    Parameters
    ----------
    output_format : {"files", "webdataset", "parquet"}, default "files"
        See the module docs for each layout.
    outdir : str, optional
        The folder of the shards (local path or fsspec URL); required for shards.
    shard_size : int, default 1000
        The most rows per shard.
    carry_cols : list of str, optional
        The input columns stored with each sample (its JSON, its Parquet row);
        default: all input columns.
    caption_col : str, optional
        A column written as each WebDataset sample's ``{key}.txt``.
    storage_options : mapping, optional
        fsspec options for ``outdir``.
    verify_hash : (column, algorithm), optional
        Bind each partition's expected digests to the loader (see
        :class:`creevey_dask.sources.hashing.SourceHash`); works for every format.
    """

    def __init__(
        self,
        output_format: str = "files",
        outdir: str | None = None,
        shard_size: int = DEFAULT_SHARD_SIZE,
        carry_cols: Iterable[str] | None = None,
        caption_col: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        verify_hash: tuple[str, str] | None = None,
    ) -> None:
        self.output_format = _check_format(output_format)
        self.shard_size = _check_shard_size(shard_size)
        if isinstance(carry_cols, str):
            carry_cols = [carry_cols]
        self.carry_cols = None if carry_cols is None else list(carry_cols)
        if caption_col is not None and not isinstance(caption_col, str):
            raise TypeError(f"caption_col must be a column name, got {caption_col!r}")
        self.caption_col = caption_col
        if self.sharded:
            if outdir is None:
                raise ValueError(f"output_format={output_format!r} needs outdir= (a folder)")
            outdir = str(outdir).rstrip("/") or "/"
        elif caption_col is not None or carry_cols is not None:
            raise ValueError(
                "caption_col= and carry_cols= apply to output_format='webdataset' or "
                "'parquet'; with files they have no place to go"
            )
        self.outdir = outdir
        self.storage_options = dict(storage_options or {})
        self.verify_hash = verify_hash

    @property
    def sharded(self) -> bool:
        """Whether this sink writes shards (not one file per row)."""
        return self.output_format != "files"

    def result_columns(self, declared: Mapping[str, Any]) -> dict[str, Any]:
        """The result columns the sink adds to the pipeline's ``declared`` ones."""
        if not self.sharded:
            return {}
        columns = {KEY_COL: "string"}
        for name in ("width", "height"):
            if name not in declared:
                columns[name] = "Int64"
        return columns

    def check(self, columns: Iterable[str], write_func: Any) -> None:
        """Refuse, up front, columns the frame lacks and a writer that cannot encode."""
        columns = list(columns)
        wanted = [*(self.carry_cols or []), *([self.caption_col] if self.caption_col else [])]
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise ColumnError(
                f"carry_cols/caption_col name column(s) {missing} that the input does not "
                f"have (its columns: {columns})"
            )
        if self.sharded and not callable(getattr(write_func, "encode_for", None)):
            raise TypeError(
                f"output_format={self.output_format!r} needs a write_func that can encode "
                f"to bytes (an ImageWriter, or any object with an encode_for(image, outpath) "
                f"method); got {write_func!r}"
            )

    def prepare(self, frame: Any) -> Any:
        """Keep the ``key`` column of a sharded result frame fed back in (rows keep keys)."""
        columns = set(frame.columns)
        if self.sharded and KEY_COL in columns and {"status", "error"} <= columns:
            return frame.rename(columns={KEY_COL: _KEY_IN})
        return frame

    def sample_namer(self, outpath_func: Any) -> Callable[[Any], str]:
        """The per-row name hint (its extension picks the format) for a sharded run."""
        if callable(outpath_func):
            return outpath_func  # type: ignore[no-any-return]
        assert self.outdir is not None
        return _SampleName(self.outdir)

    def bind(self, runner: Any) -> Any:
        """The partition function for the engine: ``runner`` itself, or a wrapper."""
        if not self.sharded and self.verify_hash is None:
            return runner
        done = _done_keys(self) if self.sharded and runner.skip_existing else {}
        return _SinkRunner(self, runner, done)

    def shard_path(self, name: str) -> str:
        assert self.outdir is not None
        return storage.join(self.outdir, name + _SHARD_EXT[self.output_format])

    def records_path(self, name: str) -> str:
        assert self.outdir is not None
        return storage.join(self.outdir, name + _RECORDS_EXT)

    def finish(self, result: pd.DataFrame, seconds: float) -> None:
        """After an in-memory run: write ``_stats.json`` (sharded formats only).

        A summary that cannot be written (a full disk) is logged, not raised: the rows'
        results are already in the result frame.
        """
        if not (self.sharded and self.outdir is not None):
            return
        try:
            write_stats(
                result,
                self.outdir,
                seconds=seconds,
                output_format=self.output_format,
                shard_size=self.shard_size,
                storage_options=self.storage_options,
            )
        except OSError as err:
            logger.warning("creevey: %s could not be written: %s", STATS_NAME, format_error(err))

    def __repr__(self) -> str:
        return (
            f"Sink({self.output_format!r}, outdir={self.outdir!r}, "
            f"shard_size={self.shard_size!r}, carry_cols={self.carry_cols!r}, "
            f"caption_col={self.caption_col!r})"
        )


class _SinkRunner:
    """Runs one partition through the engine's row runner and writes it through a sink."""

    def __init__(self, sink: Sink, runner: Any, done: Mapping[str, str] | None = None) -> None:
        self.sink = sink
        self.runner = runner
        self.done = dict(done or {})  # key -> the complete shard that holds it ok

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
            pipeline.write_func = _Capture(pipeline.write_func)
            runner.outpaths = runner.outpaths.hints(sink.sample_namer(runner.outpaths.outpath_func))
            runner.skip_existing = False
            runner.result_columns = {**runner.result_columns, _SAMPLE_COL: "object"}
        return runner

    def __call__(self, part: pd.DataFrame, partition_info: Mapping[str, Any] | None = None) -> Any:
        runner = self._row_runner(part)
        if not self.sink.sharded:
            return runner(part)
        number = int(partition_info["number"]) if partition_info else 0
        self._sweep()
        keys = row_keys(part.index, part[runner.inpath_col])
        if _KEY_IN in part.columns:  # a result frame fed back in: its rows keep their keys
            given = part[_KEY_IN].tolist()
            keys = [
                k if isinstance(k, str) and k else new for k, new in zip(given, keys, strict=True)
            ]
            part = part.drop(columns=[_KEY_IN])
        size = self.sink.shard_size
        if len(part) == 0:
            return self._finish(runner(part), [], None)
        frames = []
        for chunk, start in enumerate(range(0, len(part), size)):
            sub = part.iloc[start : start + size]
            shard_keys = keys[start : start + size]
            frames.append(self._shard(runner, sub, shard_keys, number, chunk))
        return concat_results(frames)

    def _sweep(self) -> None:
        """Remove dead shard writers' temporaries from ``outdir`` (storage's sweep)."""
        folder = storage.local_folder(self.sink.shard_path("shard"))
        if folder is not None:
            removed = storage.sweep([folder])
            if removed:
                logger.info("removed %d stale temporary file(s) in %s", removed, folder)

    # ---- one shard --------------------------------------------------------------------
    def _shard(
        self, runner: Any, sub: pd.DataFrame, keys: list[str], number: int, chunk: int
    ) -> pd.DataFrame:
        """Skip, or run and commit, one chunk of a partition's rows.

        With ``skip_existing``: a complete committed shard listing exactly these rows
        is skipped as a whole (errors stay errors), unless these rows are a result
        frame fed back in (to retry) and the shard recorded errors. Otherwise the rows
        whose key is ``ok`` in any complete shard of ``outdir`` are skipped (their
        ``outpath`` is that shard) and only the others go to a new shard.
        """
        base = _shard_name(number, chunk, keys)
        fed_back = UPSTREAM_ERROR_COL in sub.columns
        if not self.runner.skip_existing:
            return self._write(runner, sub, keys, base, fed_back)
        committed = self._committed(base, keys)
        if committed is not None and not (fed_back and (committed["status"] != "ok").any()):
            shard = self.sink.shard_path(base)
            return self._skipped(runner, sub, keys, committed, [shard] * len(keys))
        known = [self.done.get(k) for k in keys]
        if all(path is None for path in known):
            return self._write(runner, sub, keys, base, fed_back)
        old = [i for i, path in enumerate(known) if path is not None]
        new = [i for i, path in enumerate(known) if path is None]
        old_keys = [keys[i] for i in old]
        records = pd.DataFrame({KEY_COL: old_keys, "status": ["ok"] * len(old)})
        paths = [str(known[i]) for i in old]
        frames = [self._skipped(runner, sub.iloc[old], old_keys, records, paths)]
        if new:
            new_keys = [keys[i] for i in new]
            name = _shard_name(number, chunk, new_keys)
            frames.append(self._write(runner, sub.iloc[new], new_keys, name, fed_back))
        out = concat_results(frames)
        return out.iloc[np.argsort(np.array(old + new), kind="stable")]

    def _write(
        self, runner: Any, sub: pd.DataFrame, keys: list[str], base: str, fed_back: bool
    ) -> pd.DataFrame:
        """Run and commit the rows as shard ``base``.

        If ``base`` is committed already (these rows fed back after failing as a whole
        shard), the next free generation ``{base}-1``, ``{base}-2``, ... is used.
        """
        sink = self.sink
        name = base
        generation = 0
        while self.runner.skip_existing:
            committed = self._committed(name, keys)
            if committed is None:
                break
            if not (fed_back and (committed["status"] != "ok").any()):
                shard = sink.shard_path(name)
                return self._skipped(runner, sub, keys, committed, [shard] * len(keys))
            generation += 1
            name = f"{base}-{generation}"
        result = runner(sub)
        ok = (result["status"] == "ok").to_numpy(dtype=bool, copy=True)  # ours to change
        if _interrupted(runner):  # Ctrl-C: commit nothing, so a rerun redoes the shard
            result.loc[ok, "status"] = "error"
            result.loc[ok, "error"] = "RunInterruptedError: the run was interrupted (Ctrl-C)"
            result.loc[ok, "outpath"] = None
            ok[:] = False
            return self._finish(result, keys, sink.shard_path(name), ok)
        try:
            self._commit(runner, sub, result, keys, ok, name)
        except Exception as err:  # the rows were done, but their shard could not be stored
            message = f"the shard {sink.shard_path(name)!r} could not be written: "
            message += format_error(err)
            logger.warning("creevey: %s", message)
            result.loc[ok, "status"] = "error"
            result.loc[ok, "error"] = message
            result.loc[ok, "outpath"] = None
            ok[:] = False
        return self._finish(result, keys, sink.shard_path(name), ok)

    def _finish(
        self, result: pd.DataFrame, keys: list[str], shard: str | None, ok: Any = None
    ) -> pd.DataFrame:
        result = result.drop(columns=[_SAMPLE_COL])
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
        inputs = [c for c in sub.columns if not c.startswith("_creevey_")]
        carry = inputs if sink.carry_cols is None else list(sink.carry_cols)
        source_col = runner.inpath_col
        if source_col not in carry:
            carry = [source_col, *carry]
        results = [c for c in runner.result_columns if c not in (_SAMPLE_COL, KEY_COL)]
        records = pd.DataFrame(index=result.index)
        for col in carry:
            records[col] = sub[col]
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
    ) -> None:
        sink = self.sink
        shard = sink.shard_path(name)
        records = self._records(runner, sub, result, keys, shard)
        samples = result[_SAMPLE_COL].tolist()
        options = sink.storage_options
        if sink.output_format == "webdataset":
            tar = b""
            if ok.any():
                tar = _tar_bytes(records, samples, ok, sink.caption_col, runner.inpath_col)
                storage.write_bytes_atomic(shard, tar, options)
            try:
                storage.write_bytes_atomic(
                    sink.records_path(name), _parquet_bytes(records, tar_bytes=len(tar)), options
                )
            except BaseException:  # no commit: take back the tar, which no records describe
                if tar:
                    with contextlib.suppress(OSError):
                        fs, fs_path = storage.get_fs(shard, options)
                        fs.rm_file(fs_path)
                raise
        else:
            images = [
                {"bytes": s[0], "path": f"{k}.{_image_ext(s[1])}"} if flag else None
                for s, k, flag in zip(samples, keys, ok, strict=True)
            ]
            storage.write_bytes_atomic(shard, _parquet_bytes(records, images), options)

    def _committed(self, name: str, keys: list[str]) -> pd.DataFrame | None:
        """The records of a complete committed shard listing exactly ``keys``, or None."""
        records = _complete_records(self.sink, name)
        if records is None:
            return None
        if records[KEY_COL].tolist() != keys:
            path = self.sink.records_path(name)
            logger.warning("creevey: %s lists other rows; it is written again", path)
            return None
        return records

    def _skipped(
        self,
        runner: Any,
        sub: pd.DataFrame,
        keys: list[str],
        records: pd.DataFrame,
        shards: list[str],
    ) -> pd.DataFrame:
        """The result rows of committed rows, from their records (ok → skipped).

        ``shards`` holds each row's shard (its ``outpath`` when ``ok``).
        """
        result = runner(sub.iloc[:0])  # the schema, without running any row
        result = result.drop(columns=[_SAMPLE_COL])
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


def _complete_records(
    sink: Sink, name: str, columns: list[str] | None = None
) -> pd.DataFrame | None:
    """The records of shard ``name`` if it is committed and complete, else None.

    Complete: the records Parquet reads; for ``"webdataset"`` with any ``ok`` row, the
    tar exists, is not empty and has the size its records noted when they were
    committed; for ``"parquet"``, the shard has its image column. Anything else (a
    missing, empty, truncated or unreadable file) is logged and the shard is redone.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = sink.records_path(name)
    fs, fs_path = storage.get_fs(path, sink.storage_options)
    try:
        with fs.open(fs_path, "rb") as f:
            schema = pq.read_schema(f)
            wanted = [c for c in schema.names if c != IMAGE_COL and c in (columns or [c])]
            f.seek(0)
            table = pq.read_table(f, columns=wanted)
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as err:
        logger.warning("creevey: %s is damaged (%s); the shard is written again", path, err)
        return None
    records = table.to_pandas()
    if KEY_COL not in records.columns or "status" not in records.columns:
        logger.warning("creevey: %s holds no shard records; the shard is written again", path)
        return None
    if sink.output_format == "parquet":
        if IMAGE_COL not in schema.names:
            logger.warning("creevey: %s has no image column; it is written again", path)
            return None
        return records
    if not (records["status"] == "ok").any():
        return records  # no sample, no tar
    tar = sink.shard_path(name)
    tar_fs, tar_path = storage.get_fs(tar, sink.storage_options)
    try:
        size = int(tar_fs.size(tar_path))
    except FileNotFoundError:
        size = -1
    noted = (schema.metadata or {}).get(_TAR_BYTES_META)
    if size <= 0 or (noted is not None and size != int(noted)):
        expected = "a non-empty tar" if noted is None else f"{int(noted)} bytes"
        found = "no file" if size < 0 else f"{size} bytes"
        logger.warning("creevey: %s: %s, not %s; the shard is written again", tar, found, expected)
        return None
    return records


def _done_keys(sink: Sink) -> dict[str, str]:
    """``key → shard`` for every ``ok`` row of every complete shard in ``sink.outdir``.

    Read once per run, on the driver, from the shards' records (key and status
    only), so a rerun with another partitioning, or a result frame fed back, skips
    the rows already committed. A key ok in two shards (written by an older version)
    maps to the first shard by name.
    """
    assert sink.outdir is not None
    fs, path = storage.get_fs(sink.outdir, sink.storage_options)
    try:
        files = sorted(fs.glob(storage.join(path, "*" + _RECORDS_EXT)))
    except FileNotFoundError:
        return {}
    done: dict[str, str] = {}
    for file in files:
        name = file.rsplit("/", 1)[-1][: -len(_RECORDS_EXT)]
        records = _complete_records(sink, name, [KEY_COL, "status"])
        if records is None:
            continue
        shard = sink.shard_path(name)
        for key in records.loc[records["status"] == "ok", KEY_COL]:
            done.setdefault(str(key), shard)
    return done


def _interrupted(runner: Any) -> bool:
    """Whether Ctrl-C interrupted the run that ``runner`` belongs to."""
    run_id = getattr(runner, "run_id", None)
    return run_id is not None and _interrupt.is_interrupted(run_id)


def _tar_bytes(
    records: pd.DataFrame,
    samples: list[Any],
    ok: Any,
    caption_col: str | None,
    source_col: str,
) -> bytes:
    """A tar of the ok rows: ``{key}.{ext}``, ``{key}.json``, ``{key}.txt`` per sample."""
    buffer = io.BytesIO()
    now = time.time()
    result_only = {"outpath", "status", "error", "error_type"}
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, row in enumerate(records.to_dict("records")):
            if not ok[i]:
                continue
            data, fmt = samples[i]
            key = row[KEY_COL]
            meta = {k: _json_value(v) for k, v in row.items() if k not in result_only}
            meta["sha256"] = hashlib.sha256(data).hexdigest()
            members = {
                _image_ext(fmt): data,
                "json": json.dumps(meta, ensure_ascii=False, allow_nan=False).encode(),
            }
            if caption_col is not None:
                caption = _json_value(row.get(caption_col))
                members["txt"] = ("" if caption is None else str(caption)).encode()
            for ext in sorted(members):  # as webdataset's TarWriter orders them
                payload = members[ext]
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                info.mtime = int(now)
                info.mode = 0o444
                info.uname = info.gname = "bigdata"
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _arrow_table(records: pd.DataFrame) -> pa.Table:
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(records, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        fixed = records.copy()
        for col in fixed.columns:
            try:
                pa.array(fixed[col], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                fixed[col] = fixed[col].map(lambda v: None if _json_value(v) is None else str(v))
        return pa.Table.from_pandas(fixed, preserve_index=False)


def _parquet_bytes(
    records: pd.DataFrame, images: list[Any] | None = None, tar_bytes: int | None = None
) -> bytes:
    """Records (and an HF ``Image`` column) as the bytes of one Parquet file.

    ``tar_bytes``, the size of the WebDataset tar the records describe, is kept in the
    file's metadata, so a rerun can tell a complete tar from a damaged one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _arrow_table(records)
    if tar_bytes is not None:
        metadata = dict(table.schema.metadata or {})
        metadata[_TAR_BYTES_META] = str(tar_bytes).encode()
        table = table.replace_schema_metadata(metadata)
    if images is not None:
        image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        table = table.append_column(IMAGE_COL, pa.array(images, type=image_type))
        hf = {"info": {"features": {IMAGE_COL: {"_type": "Image"}}}}
        metadata = dict(table.schema.metadata or {})
        metadata[b"huggingface"] = json.dumps(hf).encode()
        table = table.replace_schema_metadata(metadata)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def write_stats(
    result: pd.DataFrame,
    outdir: str,
    *,
    seconds: float | None = None,
    output_format: str | None = None,
    shard_size: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``{outdir}/_stats.json``, a summary of a run's result frame; return it.

    The summary holds the row count, counts by status, errors by exception type, the
    body bytes received (the ``bytes`` column, if any), the number of shards, and with
    ``seconds``, the run's duration and ``ok`` rows per second. In-memory sharded runs
    write it at their end; for a dask result, call it with the computed frame.
    """
    counts = {str(k): int(v) for k, v in result["status"].value_counts().items()}
    errors = result.loc[result["status"] == "error", "error"].dropna().astype(str)
    by_type = errors.str.split(":", n=1).str[0].value_counts()
    shards = result["outpath"].dropna().nunique()
    stats: dict[str, Any] = {
        "rows": len(result),
        "status": {s: counts.get(s, 0) for s in ("ok", "skipped", "error")},
        "errors_by_type": {str(k): int(v) for k, v in by_type.items()},
        "bytes": int(result["bytes"].fillna(0).sum()) if "bytes" in result.columns else None,
        "shards": int(shards),
        "output_format": output_format,
        "shard_size": shard_size,
        "seconds": None if seconds is None else round(seconds, 3),
        "ok_per_second": (
            round(counts.get("ok", 0) / seconds, 2) if seconds and seconds > 0 else None
        ),
    }
    text = json.dumps(stats, indent=2).encode()
    storage.write_bytes_atomic(storage.join(outdir, STATS_NAME), text, storage_options)
    return stats


def read_shards(outdir: str, storage_options: Mapping[str, Any] | None = None) -> dd.DataFrame:
    """The records of a sharded output as a dask DataFrame (one partition per shard).

    Reads every ``{outdir}/*.parquet`` (the per-shard records of ``"webdataset"``
    output, or the ``"parquet"`` shards without their image column), so a sharded
    run can be analysed and its failures retried like a files run.

    Parameters
    ----------
    outdir : str
        The folder of the shards (local path or fsspec URL).
    storage_options : mapping, optional
        fsspec options (e.g. an S3 ``endpoint_url``).

    Returns
    -------
    dask.dataframe.DataFrame
        The carried columns, ``key``, the result columns, ``outpath`` and ``status``
        (categorical: ok, skipped, error).

    Raises
    ------
    FileNotFoundError
        If ``outdir`` holds no shard records.
    """
    import dask.dataframe as dd

    fs, path = storage.get_fs(str(outdir), storage_options)
    files = sorted(p for p in fs.glob(storage.join(path, "*" + _RECORDS_EXT)))
    if not files:
        raise FileNotFoundError(f"no shard records (*.parquet) in {outdir!r}")
    protocol = storage.protocol_of(str(outdir))
    urls = [f"{protocol}://{p}" if protocol else p for p in files]
    frame = dd.read_parquet(urls, storage_options=dict(storage_options or {}) or None)
    if IMAGE_COL in frame.columns:
        frame = frame.drop(columns=[IMAGE_COL])
    frame["status"] = frame["status"].astype(STATUS_DTYPE)
    if "error_type" in frame.columns:
        frame["error_type"] = frame["error_type"].astype("category")
    return frame
