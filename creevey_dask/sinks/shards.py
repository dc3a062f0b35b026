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

This module holds the :class:`Sink` and the public names; the rules above live in one
module each: keys in :mod:`~creevey_dask.sinks.keys`, complete shards and latest
records in :mod:`~creevey_dask.sinks.resume`, the formats' writers behind the registry
of :mod:`~creevey_dask.sinks.formats`, a partition's run in
:mod:`~creevey_dask.sinks.runner` and ``_stats.json`` in :mod:`~creevey_dask.sinks.stats`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..exceptions import ColumnError
from ..sources.hashing import check_verify_column
from ..storage import fs as storage
from ..storage.naming import safe_filename
from ..storage.samples import DIGEST_COL, KEY_COL, OFFSET_COL, SIZE_COL
from . import stats
from .formats import FORMATS, OUTPUT_FORMATS
from .keys import matched_keys, row_keys, valid_key
from .parquet import IMAGE_COL
from .reading import read_records
from .resume import RECORDS_EXT, dataset_index
from .runner import KEY_IN, SinkRunner
from .shard_options import DEFAULT_SHARD_SIZE, check_shard_size
from .stats import STATS_NAME

if TYPE_CHECKING:
    import dask.dataframe as dd

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


def _check_format(output_format: Any) -> str:
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format {output_format!r} is not one of {list(OUTPUT_FORMATS)}")
    return str(output_format)


class _SampleName:
    """The name hint of a row's image in a shard: the source's sanitised filename."""

    def __init__(self, outdir: str) -> None:
        self.outdir = outdir

    def __call__(self, source: Any) -> str:
        return storage.join(self.outdir, safe_filename(str(source)))


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
        self.shard_size = check_shard_size(shard_size)
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
        """Refuse, up front, columns the frame lacks (the digests ``verify_hash`` binds
        too) and a writer that cannot encode."""
        columns = list(columns)
        check_verify_column(columns, self.verify_hash)
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
            return frame.rename(columns={KEY_COL: KEY_IN})
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
        index = dataset_index(self, runner.inpath_col, by_source) if self.sharded else {}
        return SinkRunner(self, runner, index, by_source, lazy=lazy, retry_errors=retry_errors)

    def shard_path(self, name: str) -> str:
        assert self.outdir is not None
        return storage.join(self.outdir, name + FORMATS[self.output_format].ext)

    def records_path(self, name: str) -> str:
        assert self.outdir is not None
        return storage.join(self.outdir, name + RECORDS_EXT)

    def finish(self, result: pd.DataFrame, seconds: float) -> None:
        """After an in-memory run: bring ``_stats.json`` up to date (sharded formats only).

        A summary that cannot be written (a full disk) is logged, not raised: the rows'
        results are already in the result frame.
        """
        if not (self.sharded and self.outdir is not None):
            return
        stats.update(self, self.shard_size, result, seconds)

    def __repr__(self) -> str:
        return (
            f"Sink({self.output_format!r}, outdir={self.outdir!r}, "
            f"shard_size={self.shard_size!r}, carry_cols={self.carry_cols!r}, "
            f"caption_col={self.caption_col!r})"
        )


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
    fmt = output_format or stats.format_of(
        Sink("webdataset", outdir, storage_options=storage_options)
    )
    sink = Sink(fmt, outdir, shard_size or DEFAULT_SHARD_SIZE, storage_options=storage_options)
    return stats.write(
        sink, result, seconds=seconds, output_format=output_format, shard_size=shard_size
    )


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
