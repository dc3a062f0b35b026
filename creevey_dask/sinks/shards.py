"""Output formats of a run: files, WebDataset tar shards, Parquet shards.

A run writes through one *sink*. ``"files"`` (the default) writes one file per row, as
the engine always has. The sharded formats group the rows still to do into shards of
``shard_size`` rows:

``"webdataset"``
    ``{outdir}/{shard}.tar`` holds, per ``ok`` row, the members ``{key}.{ext}`` (the
    image), ``{key}.json`` (the row's carried columns, ``key``, ``width``, ``height``
    and the image's ``sha256``) and, with ``caption_col=``, ``{key}.txt``, in that
    order. Beside it, ``{shard}.parquet`` records every row of the shard (``ok`` and
    ``error``): the carried columns, ``key``, ``outpath``, ``status``, ``error``, the
    run's result columns and the sample index (below).
``"parquet"``
    ``{shard}.parquet`` holds those records plus an ``image`` column, a struct of
    ``bytes`` and ``path`` (null for error rows) that Hugging Face ``datasets`` reads
    as its ``Image`` feature. A sample is its row: the reader uses the row position.

The sample index (what readers of shards rely on): the records of a WebDataset shard
carry, on every ``ok`` row, two ``Int64`` columns: ``tar_offset``, the byte offset in
the tar of the 512-byte header of the sample's first member, and ``tar_size``, the
bytes from there to the end of its last member's data padded to 512. One ranged read
of ``[tar_offset, tar_offset + tar_size)`` is a run of complete USTAR members,
``{key}.{ext}``, ``{key}.json``, ``{key}.txt`` (if any), in that order, with no PAX or
long-name header between them (the tar is plain USTAR: keys are short ASCII names).
Non-``ok`` rows have NA there. Every row of a shard that has a tar also carries
``shard_digest``, the sha256 (hex) of the whole tar; it is null when the shard has no
``ok`` row (and so no tar).

Names and keys. A shard is named ``{writing}-{partition:05d}-{chunk:04d}-{unique}``:
``writing`` is the call's UTC start time to the microsecond plus 4 random hex digits, so
names sort by the call that wrote them (shards of an older layout, named
``{partition:05d}-...``, sort first); ``unique`` is 8 random hex digits drawn for each
writing, so two writers never replace each other's shard, not even a task that dask
runs twice. A row's ``key`` is a hash of its index label and source (unique across the
dataset as long as those pairs are); a result frame fed back in keeps its rows' keys
when they are valid: one path segment of 1 to 64 ASCII letters, digits, ``_`` or ``-``
(no dot, no slash), not repeated in the partition. Any other key is replaced by the
derived one, so a key is always a safe tar member name. A derived key that no record
of ``outdir`` holds is matched by source (:func:`matched_keys`): the row takes, in table
order, the oldest key recorded for its source that no row of the table (of the
partition, for dask input) holds. So a rerun over a rebuilt, reset or reordered index,
and over shards of earlier versions, finds the rows already written; a source twice in
the table keeps two samples; keys fed back always win.

Commit. A shard's rows run first; each encoded image goes at once to a local spool file,
so a partition holds no more than the images in flight. The shard is then streamed from
the spool to its temporary file and committed with one rename (or one upload), the tar
first and the records Parquet last, which is the commit. A tar whose records cannot be
written is taken back: its name is unique, so it holds nobody else's samples; committed
shards are never rewritten or removed, ``skip_existing=False`` included. A row whose
values cannot be stored (a string that is not valid UTF-8) fails alone; columns Arrow
cannot hold (``longdouble``, objects) are recorded as text, column names as ``str``.

Complete shards. A shard counts (for resume, statistics and readers) when its records
Parquet reads and, for WebDataset with any ``ok`` row, its tar has the size noted in its
records; a tar modified after its records were committed must also have the sha256 noted
there (``shard_digest``), so records never vouch for another tar.

Resume and the dataset. Over the complete shards of ``outdir``, in name order, a key's
*latest* record is its latest ``ok`` one if it has any (an ``ok`` beats any error: a
failed refresh does not hide a sample its old tar still serves), else its latest error.
A rerun with ``skip_existing=True`` skips the keys whose latest record is ``ok``
(``skipped``, ``outpath`` = that shard) and retries the others; with
``retry_errors=False`` (a :class:`~creevey_dask.options.RunOptions` field) a recorded
error is reported from its records instead. The rows still to do are packed into shards
of ``shard_size``: in-memory input is cut into partitions of whole shards, so a call
writes at most one short shard (its last); a dask partition writes at most one short
shard (its last). So a retry of 50 failed rows adds one shard of 50 rows. A killed run
leaves whole shards, at most an orphan tar without records (never counted) and hidden
temporaries, which every sharded run sweeps from ``outdir`` first.

``{outdir}/_stats.json`` describes the dataset (see :func:`write_stats`): counts of the
keys by their latest record, merged across calls, plus the last call's own counts. It
is written at the end of an in-memory run, and by each partition of a dask run.
:func:`read_shards` reads the records of a sharded output back as a dask DataFrame.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import hashlib
import io
import itertools
import json
import logging
import math
import re
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from ..engine import interrupt as _interrupt
from ..engine.rows import record, result_columns_of
from ..exceptions import ColumnError, format_error
from ..image.formats import extension_for
from ..schema import STATUS_DTYPE, STRING_DTYPE, concat_results, error_type_column
from ..storage import fs as storage
from ..storage.naming import safe_filename
from ..storage.samples import DIGEST_COL, OFFSET_COL, SIZE_COL
from ..storage.samples import TAR_BYTES_META as _TAR_BYTES_META
from .reading import read_records

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pyarrow as pa

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "DIGEST_COL",
    "IMAGE_COL",
    "KEY_COL",
    "OFFSET_COL",
    "OUTPUT_FORMATS",
    "SIZE_COL",
    "STATS_NAME",
    "Sink",
    "read_shards",
    "matched_keys",
    "row_keys",
    "valid_key",
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
#: The name of the dataset summary written into ``outdir`` by sharded runs.
STATS_NAME = "_stats.json"

_SAMPLE_COL = "_creevey_sample"  # (spool offset, size, Pillow format, sha256) of an image
_KEY_IN = "_creevey_key"  # the keys of a sharded result frame fed back in
_SHARD_EXT = {"webdataset": ".tar", "parquet": ".parquet"}
_RECORDS_EXT = ".parquet"
_KEY_HEX = 16
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TAR_SHA_META = b"creevey_tar_sha256"  # records metadata: the sha256 of the shard's tar
_SAMPLE_COLS = (OFFSET_COL, SIZE_COL, DIGEST_COL)
_BLOCK = tarfile.BLOCKSIZE
_COPY_CHUNK = 1 << 20
#: Parquet shards are written in row groups of about this many image bytes (at least a row).
_ROW_GROUP_BYTES = 1 << 20


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


def valid_key(key: Any) -> bool:
    """Whether ``key`` can name a sample: 1-64 ASCII letters, digits, ``_`` or ``-``.

    One safe path segment: no dot (webdataset splits member names at the first dot),
    no slash, nothing that a tar would resolve outside its folder.

    Examples
    --------
    >>> valid_key("e439d64aed980bad"), valid_key("../../x"), valid_key("a.b")
    (True, False, False)
    """
    return isinstance(key, str) and _KEY_RE.fullmatch(key) is not None


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


def _checked_keys(given: list[Any], derived: list[str]) -> list[str]:
    """The given keys where valid and first in the partition, else the derived ones."""
    keys: list[str] = []
    seen: set[str] = set()
    replaced = 0
    for key, new in zip(given, derived, strict=True):
        if not valid_key(key) or key in seen:
            replaced += key is not None and not (isinstance(key, float) and math.isnan(key))
            key = new
        n = 1
        base = key
        while key in seen:  # a derived key that a given one took already
            n += 1
            key = f"{base}-{n}"
        seen.add(key)
        keys.append(key)
    if replaced:
        logger.warning(
            "creevey: %d key(s) fed back were not one safe name (1-64 of A-Z a-z 0-9 _ -, "
            "unique) and were derived again from the index label and source",
            replaced,
        )
    return keys


def matched_keys(
    keys: list[str],
    sources: Iterable[Any],
    fixed: Iterable[bool],
    recorded: Mapping[str, Any],
    by_source: Mapping[str, list[str]],
) -> list[str]:
    """``keys`` with each row whose key has no record matched to its source's record.

    A row whose key is not ``fixed`` (given by the user) and not in ``recorded`` takes,
    in table order, the first key recorded for its source (``by_source``, oldest first)
    that no row of ``keys`` holds; else it keeps its own. So a rerun over a fresh index
    finds the samples it wrote, and a source twice in the table keeps two samples.

    Examples
    --------
    >>> matched_keys(["new1", "new2", "k2"], ["a.jpg", "a.jpg", "b.jpg"], [False] * 3,
    ...              {"k1": 0, "k2": 0}, {"a.jpg": ["k1"], "b.jpg": ["k2"]})
    ['k1', 'new2', 'k2']
    """
    out = list(keys)
    held = set(keys)
    for i, (key, source, given) in enumerate(zip(keys, sources, fixed, strict=True)):
        if given or key in recorded:
            continue
        for old in by_source.get(str(source), ()):
            if old not in held:
                out[i] = old
                held.add(old)
                break
    return out


def _writing_id() -> str:
    """A call's part of its shards' names: its UTC start time, then 4 random hex digits."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:4]


def _shard_prefix(writing: str, partition: int, chunk: int) -> str:
    return f"{writing}-{partition:05d}-{chunk:04d}"


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


class _Spool:
    """A local scratch file the encoded images of a shard go to as they are made.

    Rows run on threads: :meth:`add` appends under a lock and gives the image's place,
    so a partition holds in memory only the images in flight. The file is in the
    temporary folder (``TMPDIR``) and has no name (``tempfile.TemporaryFile``):
    nothing is left behind, not even by a killed run.
    """

    def __init__(self, folder: str | None = None) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self._end = 0

    def add(self, data: bytes | bytearray | memoryview) -> tuple[int, int]:
        with self._lock:
            offset = self._end
            self._file.seek(offset)
            self._file.write(data)
            self._end += len(data)
        return offset, len(data)

    def read(self, offset: int, size: int) -> bytes:
        with self._lock:
            self._file.seek(offset)
            return self._file.read(size)

    def copy(self, offset: int, size: int, write: Callable[[bytes], Any]) -> None:
        """Pass bytes ``[offset, offset + size)`` to ``write``, a chunk at a time."""
        done = 0
        while done < size:
            chunk = self.read(offset + done, min(_COPY_CHUNK, size - done))
            if not chunk:
                raise OSError(f"the spool of this shard ended {size - done} bytes early")
            write(chunk)
            done += len(chunk)

    def close(self) -> None:
        self._file.close()


class _Capture:
    """A write_func that spools the encoded image and records its place in the spool."""

    def __init__(self, write_func: Any) -> None:
        self.write_func = write_func
        self.spool: _Spool | None = None

    @property
    def result_columns(self) -> dict[str, Any]:
        return result_columns_of(self.write_func)

    def __call__(self, image: Any, outpath: str) -> None:
        data, fmt = self.write_func.encode_for(image, outpath)
        if not data:
            raise ValueError("write_func encoded no bytes: no image is 0 bytes")
        width, height = image.size
        assert self.spool is not None
        sha256 = hashlib.sha256(data).hexdigest()
        offset, size = self.spool.add(data)
        del data
        record(**{"width": width, "height": height, _SAMPLE_COL: (offset, size, fmt, sha256)})


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

    def bind(self, runner: Any, *, lazy: bool = False, retry_errors: bool = True) -> Any:
        """The partition function for the engine: ``runner`` itself, or a wrapper.

        ``lazy``: the input is a dask frame (each partition then brings
        ``_stats.json`` up to date); ``retry_errors``: whether a rerun retries the rows
        whose latest record is an error (else they are reported from their records).
        """
        if not self.sharded and self.verify_hash is None:
            return runner
        by_source: dict[str, list[str]] = {}
        index = _dataset_index(self, runner.inpath_col, by_source) if self.sharded else {}
        return _SinkRunner(self, runner, index, by_source, lazy=lazy, retry_errors=retry_errors)

    def shard_path(self, name: str) -> str:
        assert self.outdir is not None
        return storage.join(self.outdir, name + _SHARD_EXT[self.output_format])

    def records_path(self, name: str) -> str:
        assert self.outdir is not None
        return storage.join(self.outdir, name + _RECORDS_EXT)

    def finish(self, result: pd.DataFrame, seconds: float) -> None:
        """After an in-memory run: bring ``_stats.json`` up to date (sharded formats only).

        A summary that cannot be written (a full disk) is logged, not raised: the rows'
        results are already in the result frame.
        """
        if not (self.sharded and self.outdir is not None):
            return
        self._write_stats(result, seconds)

    def _write_stats(self, result: pd.DataFrame | None, seconds: float | None) -> None:
        assert self.outdir is not None
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


class _Latest(NamedTuple):
    """A key's latest record over the complete shards: its status and where it is."""

    status: str
    shard: str | None  # the shard of an ok record
    error: str | None
    nbytes: int | None  # the record's ``bytes`` (received from the source), if any


class _SinkRunner:
    """Runs one partition through the engine's row runner and writes it through a sink."""

    numbered = True  # the engine passes each in-memory part's number as partition_info

    def __init__(
        self,
        sink: Sink,
        runner: Any,
        index: Mapping[str, _Latest] | None = None,
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
            pipeline.write_func = _Capture(pipeline.write_func)
            runner.outpaths = runner.outpaths.hints(sink.sample_namer(runner.outpaths.outpath_func))
            runner.skip_existing = False
            runner.result_columns = {**runner.result_columns, _SAMPLE_COL: "object"}
        return runner

    def _keys(self, part: pd.DataFrame) -> list[str]:
        """The rows' keys: those fed back in where valid, else derived (:func:`row_keys`).

        A derived key that has no record is matched by source (:func:`matched_keys`).
        """
        sources = part[self.runner.inpath_col].tolist()
        keys = row_keys(part.index, sources)
        fixed = [False] * len(keys)
        if _KEY_IN in part.columns:  # a result frame fed back in: its rows keep their keys
            given = part[_KEY_IN].tolist()
            keys = _checked_keys(given, keys)
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
        frame = frame.assign(**{_KEY_IN: pd.Series(keys, index=frame.index, dtype=object)})
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
        if _KEY_IN in part.columns:
            part = part.drop(columns=[_KEY_IN])
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
            self.sink._write_stats(None, None)
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
            for name in _names(self.sink, prefix + "-*"):
                records = _complete_records(self.sink, name)
                if records is not None and records[KEY_COL].tolist() == keys:
                    shard = self.sink.shard_path(name)
                    return self._skipped(runner, sub, keys, records, [shard] * len(keys))
        return self._write(runner, sub, keys, f"{prefix}-{uuid.uuid4().hex[:8]}")

    def _write(self, runner: Any, sub: pd.DataFrame, keys: list[str], name: str) -> pd.DataFrame:
        """Run the rows and commit them as shard ``name``."""
        sink = self.sink
        spool = _Spool()
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
        inputs = [c for c in sub.columns if not str(c).startswith("_creevey_")]
        carry = inputs if sink.carry_cols is None else list(sink.carry_cols)
        source_col = runner.inpath_col
        if source_col not in carry:
            carry = [source_col, *carry]
        results = [c for c in runner.result_columns if c not in (_SAMPLE_COL, KEY_COL)]
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
        spool: _Spool,
    ) -> None:
        """Write the shard from the spool: the tar (if any sample), then its records.

        Rows whose values cannot be stored become errors here, alone (``ok`` and
        ``result`` are changed in place).
        """
        sink = self.sink
        shard = sink.shard_path(name)
        records = self._records(runner, sub, result, keys, shard)
        _unstorable_rows(records, result, ok)
        samples = result[_SAMPLE_COL].tolist()
        options = sink.storage_options
        if sink.output_format == "parquet":
            _write_parquet_shard(shard, records, samples, keys, ok, spool, options)
            return
        tar_bytes = digest = None
        if ok.any():
            members = _sample_members(records, samples, ok, sink.caption_col, result)
            with storage.atomic_writer(shard, options) as f:
                places, tar_bytes, digest = _write_tar(f, members, spool)
            offsets = [places.get(i, (None, None))[0] for i in range(len(records))]
            sizes = [places.get(i, (None, None))[1] for i in range(len(records))]
        else:
            offsets = sizes = [None] * len(records)
        records[OFFSET_COL] = pd.array(offsets, dtype="Int64")
        records[SIZE_COL] = pd.array(sizes, dtype="Int64")
        records[DIGEST_COL] = pd.array([digest] * len(records), dtype="string")
        try:
            data = _parquet_bytes(records, tar_bytes=tar_bytes, digest=digest)
            storage.write_bytes_atomic(sink.records_path(name), data, options)
        except BaseException:  # no commit: take back our tar (its name is only ours)
            if tar_bytes is not None:
                with contextlib.suppress(OSError):
                    fs, fs_path = storage.get_fs(shard, options)
                    fs.rm_file(fs_path)
            raise

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


def _escaped(text: str) -> str:
    """``text`` with what UTF-8 cannot hold escaped: ``\\xff`` for a file name's byte."""
    try:  # a file name's undecodable bytes (os.fsdecode's surrogates) as their bytes
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates as code points
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unstorable_rows(records: pd.DataFrame, result: pd.DataFrame, ok: Any) -> None:
    """Make the rows whose text cannot be stored (not valid UTF-8) errors, alone.

    Their cells are kept in the records with the offending characters escaped
    (``backslashreplace``), so the records still list every row.
    """
    for col in records.columns:
        dtype = records[col].dtype
        if not (dtype == np.dtype(object) or isinstance(dtype, pd.StringDtype)):
            continue
        values = records[col].tolist()
        for i, value in enumerate(values):
            if not isinstance(value, str):
                continue
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                escaped = _escaped(value)
                records.iat[i, records.columns.get_loc(col)] = escaped
                message = (
                    f"ValueError: the row cannot be stored in a shard: its {col!r} is not valid "
                    f"UTF-8: {escaped}"
                )
                label = result.index[i]
                result.loc[label, "status"] = "error"
                result.loc[label, "error"] = message
                result.loc[label, "outpath"] = None
                records.loc[i, "status"] = "error"
                records.loc[i, "error"] = message
                records.loc[i, "outpath"] = None
                ok[i] = False


def _names(sink: Sink, pattern: str = "*") -> list[str]:
    """The names (sorted) of the shards in ``outdir`` whose records match ``pattern``."""
    assert sink.outdir is not None
    fs, path = storage.get_fs(sink.outdir, sink.storage_options)
    with contextlib.suppress(AttributeError):
        fs.invalidate_cache(path)  # object stores cache listings; a listing must be fresh
    try:
        files = fs.glob(storage.join(path, pattern + _RECORDS_EXT))
    except FileNotFoundError:
        return []
    return sorted(str(f).rsplit("/", 1)[-1][: -len(_RECORDS_EXT)] for f in files)


def _mtime(info: Mapping[str, Any]) -> float | None:
    """A file's modification time from an fsspec ``info`` (local, S3, memory)."""
    for field in ("mtime", "LastModified", "created"):
        value = info.get(field)
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return None


def _sha256_of(fs: Any, path: str) -> str:
    hasher = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _complete_records(
    sink: Sink, name: str, columns: list[str] | None = None
) -> pd.DataFrame | None:
    """The records of shard ``name`` if it is committed and complete, else None.

    Complete: the records Parquet reads; for ``"webdataset"`` with any ``ok`` row, the
    tar exists and has the size its records noted when they were committed, and a tar
    modified after its records has the sha256 they noted; for ``"parquet"``, the shard
    has its image column. Anything else (a missing, empty, truncated, replaced or
    unreadable file) is logged and the shard does not count.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = sink.records_path(name)
    fs, fs_path = storage.get_fs(path, sink.storage_options)
    try:
        info = fs.info(fs_path)
        with fs.open(fs_path, "rb") as f:
            schema = pq.read_schema(f)
            wanted = [c for c in schema.names if c != IMAGE_COL and c in (columns or [c])]
            f.seek(0)
            table = pq.read_table(f, columns=wanted)
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as err:
        logger.warning("creevey: %s is damaged (%s); the shard does not count", path, err)
        return None
    records = table.to_pandas()
    if KEY_COL not in records.columns or "status" not in records.columns:
        logger.warning("creevey: %s holds no shard records; the shard does not count", path)
        return None
    if sink.output_format == "parquet":
        if IMAGE_COL not in schema.names:
            logger.warning("creevey: %s has no image column; the shard does not count", path)
            return None
        return records
    if not (records["status"] == "ok").any():
        return records  # no sample, no tar
    tar = sink.shard_path(name)
    tar_fs, tar_path = storage.get_fs(tar, sink.storage_options)
    try:
        tar_info = tar_fs.info(tar_path)
        size = int(tar_info.get("size") or 0)
    except FileNotFoundError:
        tar_info, size = {}, -1
    meta = schema.metadata or {}
    noted = meta.get(_TAR_BYTES_META)
    if size <= 0 or (noted is not None and size != int(noted)):
        expected = "a non-empty tar" if noted is None else f"{int(noted)} bytes"
        found = "no file" if size < 0 else f"{size} bytes"
        logger.warning("creevey: %s: %s, not %s; the shard does not count", tar, found, expected)
        return None
    digest = meta.get(_TAR_SHA_META)
    tar_time, records_time = _mtime(tar_info), _mtime(info)
    newer = bool(tar_time and records_time and tar_time > records_time)
    if (
        digest is not None and newer and _sha256_of(tar_fs, tar_path) != digest.decode()
    ):  # records vouch for theirs
        logger.warning("creevey: %s is not the tar its records describe (sha256)", tar)
        return None
    return records


_INDEX_COLS = [KEY_COL, "status", "error", "bytes"]


def _dataset_index(
    sink: Sink, source_col: str | None = None, by_source: dict[str, list[str]] | None = None
) -> dict[str, _Latest]:
    """``key → its latest record`` over every complete shard of ``sink.outdir``.

    The shards are read in name order (the order of the calls that wrote them), key,
    status, error and bytes only. A key's latest ``ok`` record wins; a key never ``ok``
    keeps its latest error. With ``source_col`` and ``by_source``, the records' sources
    are read too and ``by_source`` filled: ``source → its keys``, oldest first.
    """
    index: dict[str, _Latest] = {}
    wanted = _INDEX_COLS if source_col is None else [*_INDEX_COLS, str(source_col)]
    for name in _names(sink):
        records = _complete_records(sink, name, wanted)
        if records is None:
            continue
        if by_source is not None and source_col is not None and str(source_col) in records:
            for key, source in zip(
                records[KEY_COL].tolist(), records[str(source_col)].tolist(), strict=True
            ):
                if key is not None and not pd.isna(source):
                    keys = by_source.setdefault(str(source), [])
                    if str(key) not in keys:
                        keys.append(str(key))
        shard = sink.shard_path(name)
        errors = records["error"].tolist() if "error" in records.columns else [None] * len(records)
        nbytes = records["bytes"].tolist() if "bytes" in records.columns else [None] * len(records)
        for key, status, error, size in zip(
            records[KEY_COL].tolist(), records["status"].tolist(), errors, nbytes, strict=True
        ):
            key = str(key)
            size = None if size is None or pd.isna(size) else int(size)
            if status == "ok":
                index[key] = _Latest("ok", shard, None, size)
            else:
                before = index.get(key)
                if before is None or before.status != "ok":
                    error = None if error is None or pd.isna(error) else str(error)
                    index[key] = _Latest(str(status), None, error, None)
    return index


def _interrupted(runner: Any) -> bool:
    """Whether Ctrl-C interrupted the run that ``runner`` belongs to."""
    run_id = getattr(runner, "run_id", None)
    return run_id is not None and _interrupt.is_interrupted(run_id)


_RESULT_ONLY = {"outpath", "status", "error", "error_type"}


def _sample_members(
    records: pd.DataFrame,
    samples: list[Any],
    ok: Any,
    caption_col: str | None,
    result: pd.DataFrame,
) -> list[tuple[int, str, list[tuple[str, Any]]]]:
    """Per ok row: ``(row, key, [(ext, payload)])``, image first, then json, then txt.

    An image payload is its ``(offset, size)`` in the spool; the others are bytes. A
    row whose JSON cannot be made becomes an error alone (``ok`` changed in place).
    """
    members = []
    for i, row in enumerate(records.to_dict("records")):
        if not ok[i]:
            continue
        offset, size, fmt, sha256 = samples[i]
        key = row[KEY_COL]
        meta = {str(k): _json_value(v) for k, v in row.items() if k not in _RESULT_ONLY}
        meta["sha256"] = sha256
        items: list[tuple[str, Any]] = [(_image_ext(fmt), (offset, size))]
        try:
            text = json.dumps(meta, ensure_ascii=False, allow_nan=False).encode()
            items.append(("json", text))
            if caption_col is not None:
                caption = _json_value(row.get(caption_col))
                items.append(("txt", ("" if caption is None else str(caption)).encode()))
        except (TypeError, ValueError, UnicodeError) as err:
            message = f"ValueError: the row cannot be stored in a shard: {format_error(err)}"
            result.loc[result.index[i], ["status", "error"]] = ["error", message]
            records.loc[i, ["status", "error"]] = ["error", message]
            records.loc[i, "outpath"] = None
            ok[i] = False
            continue
        members.append((i, str(key), items))
    return members


def _member_header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o444
    info.uname = info.gname = "bigdata"
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def _write_tar(
    f: IO[bytes], members: list[tuple[int, str, list[tuple[str, Any]]]], spool: _Spool
) -> tuple[dict[int, tuple[int, int]], int, str]:
    """Stream the samples into ``f`` as a USTAR tar: ``({row: (offset, size)}, bytes, sha256)``.

    Each image is copied from the spool a chunk at a time; the tar is hashed on the way.
    """
    digest = hashlib.sha256()
    pos = 0

    def put(data: bytes) -> None:
        nonlocal pos
        f.write(data)
        digest.update(data)
        pos += len(data)

    def pad() -> None:
        if pos % _BLOCK:
            put(b"\0" * (_BLOCK - pos % _BLOCK))

    now = int(time.time())
    places: dict[int, tuple[int, int]] = {}
    for row, key, items in members:
        start = pos
        for ext, payload in items:
            if isinstance(payload, tuple):  # the image, from the spool
                offset, size = payload
                put(_member_header(f"{key}.{ext}", size, now))
                spool.copy(offset, size, put)
            else:
                put(_member_header(f"{key}.{ext}", len(payload), now))
                put(payload)
            pad()
        places[row] = (start, pos - start)
    put(b"\0" * (2 * _BLOCK))  # the end-of-archive marker
    record_size = tarfile.RECORDSIZE
    if pos % record_size:  # padded to whole records, as tarfile writes
        put(b"\0" * (record_size - pos % record_size))
    return places, pos, digest.hexdigest()


def _arrow_table(records: pd.DataFrame) -> pa.Table:
    import pyarrow as pa

    problems = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError)
    records = records.rename(columns=str)
    try:
        return pa.Table.from_pandas(records, preserve_index=False)
    except (*problems, ValueError):
        fixed = records.copy()
        for col in fixed.columns:
            try:
                pa.array(fixed[col], from_pandas=True)
            except (*problems, ValueError):
                fixed[col] = fixed[col].map(lambda v: None if _json_value(v) is None else str(v))
        return pa.Table.from_pandas(fixed, preserve_index=False)


def _with_metadata(table: pa.Table, extra: Mapping[bytes, bytes]) -> pa.Table:
    metadata = dict(table.schema.metadata or {})
    metadata.update(extra)
    return table.replace_schema_metadata(metadata)


_HF_IMAGE = {
    b"huggingface": json.dumps({"info": {"features": {IMAGE_COL: {"_type": "Image"}}}}).encode()
}


def _parquet_bytes(
    records: pd.DataFrame, tar_bytes: int | None = None, digest: str | None = None
) -> bytes:
    """A WebDataset shard's records as the bytes of one Parquet file.

    ``tar_bytes`` and ``digest``, the size and sha256 of the tar the records describe,
    are kept in the file's metadata too, so a rerun can tell their tar from another.
    """
    import pyarrow.parquet as pq

    table = _arrow_table(records)
    if tar_bytes is not None and digest is not None:
        meta = {_TAR_BYTES_META: str(tar_bytes).encode(), _TAR_SHA_META: digest.encode()}
        table = _with_metadata(table, meta)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _write_parquet_shard(
    shard: str,
    records: pd.DataFrame,
    samples: list[Any],
    keys: list[str],
    ok: Any,
    spool: _Spool,
    storage_options: Mapping[str, Any],
) -> None:
    """Stream a Parquet shard (records + HF ``Image`` column) to its temporary file.

    Row groups hold about :data:`_ROW_GROUP_BYTES` of images (at least one row), read
    back from the spool one group at a time; the image column has no dictionary and no
    statistics (unique, already compressed bytes), which would only cost memory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _with_metadata(_arrow_table(records), _HF_IMAGE)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = table.schema.append(pa.field(IMAGE_COL, image_type))
    groups: list[tuple[int, int]] = []
    start, held = 0, 0
    for i in range(len(records)):
        held += samples[i][1] if ok[i] else 0
        if held >= _ROW_GROUP_BYTES:
            groups.append((start, i + 1))
            start, held = i + 1, 0
    if start < len(records) or not groups:
        groups.append((start, len(records)))
    plain = table.column_names  # no dictionary, no min/max statistics for image bytes
    writer = {"use_dictionary": plain, "write_statistics": plain}
    with (
        storage.atomic_writer(shard, storage_options) as f,
        pq.ParquetWriter(f, schema, **writer) as w,
    ):
        for a, b in groups:
            images = [
                _image_cell(spool, samples[i], keys[i]) if ok[i] else None for i in range(a, b)
            ]
            part = table.slice(a, b - a).append_column(IMAGE_COL, pa.array(images, type=image_type))
            del images
            w.write_table(part)
            del part


def _image_cell(spool: _Spool, sample: Any, key: str) -> dict[str, Any]:
    offset, size, fmt, _ = sample
    return {"bytes": spool.read(offset, size), "path": f"{key}.{_image_ext(fmt)}"}


def write_stats(
    result: pd.DataFrame | None,
    outdir: str,
    *,
    seconds: float | None = None,
    output_format: str | None = None,
    shard_size: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``{outdir}/_stats.json``, a summary of the dataset in ``outdir``; return it.

    The dataset's counts come from the records of its complete shards, every key
    counted once by its latest record (an ``ok`` beats any error): ``rows`` (distinct
    keys), ``status`` (``ok``, ``error``), ``errors_by_type``, ``bytes`` (received
    from the sources, over the ``ok`` keys), ``shards`` (the complete shards holding a
    latest sample) and ``shards_on_disk``. With ``result``, a run's result frame,
    ``last_run`` adds that call's rows, counts by status and, with ``seconds``, its
    duration and ``ok`` rows per second. Sharded runs keep it up to date themselves,
    in-memory and dask input alike; call it after changing the folder by hand.
    """
    fmt = output_format or _format_of(outdir, storage_options)
    sink = Sink(fmt, outdir, shard_size or DEFAULT_SHARD_SIZE, storage_options=storage_options)
    for _ in range(5):  # another writer may commit meanwhile: count again until stable
        names = _names(sink)
        stats = _stats_of(_dataset_index(sink), len(names))
        stats.update({"output_format": output_format, "shard_size": shard_size})
        if result is not None:
            stats["last_run"] = _run_stats(result, seconds)
        text = json.dumps(stats, indent=2).encode()
        storage.write_bytes_atomic(storage.join(outdir, STATS_NAME), text, storage_options)
        if _names(sink) == names:
            break
    return stats


def _format_of(outdir: str, storage_options: Mapping[str, Any] | None) -> str:
    """The sharded format of ``outdir``: ``"parquet"`` if its first records hold images."""
    import pyarrow.parquet as pq

    probe = Sink("webdataset", outdir, storage_options=storage_options)
    for name in _names(probe)[:1]:
        fs, path = storage.get_fs(probe.records_path(name), storage_options)
        with fs.open(path, "rb") as f:
            if IMAGE_COL in pq.read_schema(f).names:
                return "parquet"
    return "webdataset"


def _stats_of(index: Mapping[str, _Latest], on_disk: int) -> dict[str, Any]:
    ok = [e for e in index.values() if e.status == "ok"]
    errors = pd.Series([e.error for e in index.values() if e.status != "ok"], dtype="string")
    by_type = errors.dropna().str.split(":", n=1).str[0].value_counts()
    sizes = [e.nbytes for e in ok if e.nbytes is not None]
    return {
        "rows": len(index),
        "status": {"ok": len(ok), "error": len(index) - len(ok)},
        "errors_by_type": {str(k): int(v) for k, v in by_type.items()},
        "bytes": int(sum(sizes)) if sizes else None,
        "shards": len({e.shard for e in ok}),
        "shards_on_disk": on_disk,
    }


def _run_stats(result: pd.DataFrame, seconds: float | None) -> dict[str, Any]:
    counts = {str(k): int(v) for k, v in result["status"].value_counts().items()}
    return {
        "rows": len(result),
        "status": {s: counts.get(s, 0) for s in ("ok", "skipped", "error")},
        "seconds": None if seconds is None else round(seconds, 3),
        "ok_per_second": (
            round(counts.get("ok", 0) / seconds, 2) if seconds and seconds > 0 else None
        ),
    }


def read_shards(
    outdir: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    attempts: str = "latest",
) -> dd.DataFrame:
    """The records of a sharded output as a dask DataFrame (one partition per shard).

    Reads every ``{outdir}/*.parquet`` (the per-shard records of ``"webdataset"``
    output, the ``"parquet"`` shards without their image column, or the shards that
    img2dataset wrote), so a sharded run can be analysed, retried, and its samples fed
    to any run like a table of files (see :mod:`creevey_dask.storage.samples`).

    Parameters
    ----------
    outdir : str
        The folder of the shards (local path or fsspec URL).
    storage_options : mapping, optional
        fsspec options (e.g. an S3 ``endpoint_url``).
    attempts : {"latest", "all"}, default "latest"
        ``"latest"``: one row per key, its latest attempt: an ``ok`` in a complete
        shard beats any error, and among the rest a later shard (by name) beats an
        earlier one. ``"all"``: every row of every shard.

    Returns
    -------
    dask.dataframe.DataFrame
        The carried columns, ``key``, the result columns, ``outpath`` and ``status``
        (categorical: ok, skipped, error), and ``sample``: each ``ok`` row's sample
        source (``<shard>.tar#<key>.<ext>``, ``<shard>.parquet#<key>.<ext>``), which
        every loader reads with one ranged read (``path_col="sample"``).

    Raises
    ------
    FileNotFoundError
        If ``outdir`` holds no shard records.
    ValueError
        If ``attempts`` is not one of the above.
    """
    return read_records(outdir, storage_options, attempts=attempts)
