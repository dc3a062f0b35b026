"""Complete shards and the dataset index: the one owner of the resume rules.

Two rules of the layout (module docs of :mod:`creevey_dask.sinks.shards`) live here,
and everything that applies them calls this module: the sink's resume, ``_stats.json``
(:mod:`creevey_dask.sinks.stats`) and the reader (:mod:`creevey_dask.sinks.reading`).

*A shard is complete* when its records Parquet reads and holds shard records
(:func:`is_records`); for ``"parquet"``, when it has its image column; for
``"webdataset"`` with any ``ok`` row, when its tar has the size its records noted
(:func:`tar_matches`, the note made by :func:`tar_note`) and, if the tar was modified
after its records, the sha256 they noted (:func:`complete_records`).

*The latest attempt of a key wins*: over the shards in name order, an ``ok`` beats any
error, and otherwise the later attempt beats the earlier (:func:`supersedes`);
:func:`dataset_index` holds each key's latest record.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

import pandas as pd

from ..storage import fs as storage
from ..storage.samples import KEY_COL, TAR_BYTES_META
from .parquet import IMAGE_COL
from .spool import COPY_CHUNK

__all__ = [
    "RECORDS_EXT",
    "TAR_SHA_META",
    "Latest",
    "ShardFolder",
    "complete_records",
    "dataset_index",
    "file_mtime",
    "is_records",
    "sha256_of",
    "shard_names",
    "supersedes",
    "tar_matches",
    "tar_note",
]

logger = logging.getLogger(__name__)

#: The extension of a shard's records (for Parquet shards, of the shard itself).
RECORDS_EXT = ".parquet"
#: The records' metadata key of the sha256 of the tar they were committed with.
TAR_SHA_META = b"creevey_tar_sha256"


class ShardFolder(Protocol):
    """A folder of shards, as this module reads it (a :class:`~creevey_dask.sinks.shards.Sink`)."""

    @property
    def output_format(self) -> str: ...

    @property
    def outdir(self) -> str | None: ...

    @property
    def storage_options(self) -> Mapping[str, Any]: ...

    def shard_path(self, name: str) -> str: ...

    def records_path(self, name: str) -> str: ...


def supersedes(ok: bool, before: bool | None) -> bool:
    """Whether a key's attempt becomes its latest over the one read before it.

    Attempts are read in the order they were made (shards by name, rows in order).
    ``ok``: whether this attempt counts as ``ok``; ``before``: whether the key's latest
    attempt so far does (None: it has none). An ``ok`` beats any error (a failed
    refresh does not hide a sample its old shard still serves); otherwise the later wins.

    Examples
    --------
    >>> supersedes(False, None), supersedes(True, False), supersedes(False, True)
    (True, True, False)
    """
    return before is None or ok or not before


def is_records(columns: Iterable[str]) -> bool:
    """Whether a Parquet file with ``columns`` holds shard records: a key and a status."""
    names = set(columns)
    return KEY_COL in names and "status" in names


def tar_note(tar_bytes: int, digest: str) -> dict[bytes, bytes]:
    """What a shard's records note of their tar (its size and sha256), in their metadata."""
    return {TAR_BYTES_META: str(tar_bytes).encode(), TAR_SHA_META: digest.encode()}


def tar_matches(size: int | None, noted: bytes | None) -> bool:
    """Whether a tar of ``size`` bytes (None: no file) has the size its records noted.

    It must not be empty; ``noted`` is the records' :data:`TAR_BYTES_META` (None in
    records that noted none, which take any non-empty tar).

    Examples
    --------
    >>> tar_matches(10240, b"10240"), tar_matches(512, b"10240"), tar_matches(None, None)
    (True, False, False)
    """
    return size is not None and size > 0 and (noted is None or size == int(noted))


class Latest(NamedTuple):
    """A key's latest record over the complete shards: its status and where it is."""

    status: str
    shard: str | None  # the shard of an ok record
    error: str | None
    nbytes: int | None  # the record's ``bytes`` (received from the source), if any


def shard_names(sink: ShardFolder, pattern: str = "*") -> list[str]:
    """The names (sorted) of the shards in ``outdir`` whose records match ``pattern``."""
    assert sink.outdir is not None
    fs, path = storage.get_fs(sink.outdir, sink.storage_options)
    with contextlib.suppress(AttributeError):
        fs.invalidate_cache(path)  # object stores cache listings; a listing must be fresh
    try:
        files = fs.glob(storage.join(path, pattern + RECORDS_EXT))
    except FileNotFoundError:
        return []
    return sorted(str(f).rsplit("/", 1)[-1][: -len(RECORDS_EXT)] for f in files)


def file_mtime(info: Mapping[str, Any]) -> float | None:
    """A file's modification time from an fsspec ``info`` (local, S3, memory)."""
    for field in ("mtime", "LastModified", "created"):
        value = info.get(field)
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return None


def sha256_of(fs: Any, path: str) -> str:
    """The sha256 (hex) of the file at ``path`` of ``fs``, read a chunk at a time."""
    hasher = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(COPY_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def tar_is_theirs(
    fs: Any,
    tar_path: str,
    tar_info: Mapping[str, Any],
    records_info: Mapping[str, Any],
    digest: bytes | None,
) -> bool:
    """Whether a tar of the noted size is the one its records describe.

    A tar modified after its records were committed must have the sha256 they noted
    (``digest``, their :data:`TAR_SHA_META`; None in records that noted none), so records
    never vouch for another tar, not even one of the same size. The one rule of resume
    and readers.
    """
    if digest is None:
        return True
    tar_time, records_time = file_mtime(tar_info), file_mtime(records_info)
    newer = bool(tar_time and records_time and tar_time > records_time)
    return not newer or sha256_of(fs, tar_path) == digest.decode()


def complete_records(
    sink: ShardFolder, name: str, columns: list[str] | None = None
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
    if not is_records(records.columns):
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
    noted = meta.get(TAR_BYTES_META)
    if not tar_matches(None if size < 0 else size, noted):
        expected = "a non-empty tar" if noted is None else f"{int(noted)} bytes"
        found = "no file" if size < 0 else f"{size} bytes"
        logger.warning("creevey: %s: %s, not %s; the shard does not count", tar, found, expected)
        return None
    if not tar_is_theirs(tar_fs, tar_path, tar_info, info, meta.get(TAR_SHA_META)):
        logger.warning("creevey: %s is not the tar its records describe (sha256)", tar)
        return None
    return records


_INDEX_COLS = [KEY_COL, "status", "error", "bytes"]


def dataset_index(
    sink: ShardFolder, source_col: str | None = None, by_source: dict[str, list[str]] | None = None
) -> dict[str, Latest]:
    """``key → its latest record`` over every complete shard of ``sink.outdir``.

    The shards are read in name order (the order of the calls that wrote them), key,
    status, error and bytes only. A key's latest ``ok`` record wins; a key never ``ok``
    keeps its latest error (:func:`supersedes`). With ``source_col`` and ``by_source``,
    the records' sources are read too and ``by_source`` filled: ``source → its keys``,
    oldest first.
    """
    index: dict[str, Latest] = {}
    wanted = _INDEX_COLS if source_col is None else [*_INDEX_COLS, str(source_col)]
    for name in shard_names(sink):
        records = complete_records(sink, name, wanted)
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
            key, ok = str(key), status == "ok"
            before = index.get(key)
            if not supersedes(ok, None if before is None else before.status == "ok"):
                continue
            if ok:
                size = None if size is None or pd.isna(size) else int(size)
                index[key] = Latest("ok", shard, None, size)
            else:
                error = None if error is None or pd.isna(error) else str(error)
                index[key] = Latest(str(status), None, error, None)
    return index
