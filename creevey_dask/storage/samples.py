"""Shard samples as sources: ``<shard>.tar#<member>`` and ``<shard>.parquet#<member>``.

A sample inside a shard is named by a *sample source*, a string any loader of the
library reads like a file path: the shard's path (local or fsspec URL), ``#``, and the
member's name ``<key>.<ext>``
(``out/20261204T041500123456-3f1c-00000-0000-9a0b1c2d.tar#3f1c9a0b5e2d7a61.jpg``).
:func:`read_sample` reads one with a ranged read, never extracting the shard: locally
a seek, on object stores one ``Range`` GET (``fs.cat_file(path, start, end)``).

**Where the offsets come from** (the string alone: :func:`tar_index`, cached per
process). A WebDataset shard's records (the Parquet beside the tar) carry, for every
``ok`` sample, ``tar_offset`` (the header of its first member) and ``tar_size`` (through
the end of its last member, padded to 512 bytes). A shard without these columns (an
older shard, or one img2dataset wrote) is indexed once, on first read, by one
sequential pass over the tar (``tarfile``'s ``offset`` and ``offset_data``), and the
index is written beside it as ``<tar>.index.json`` (atomically, through
:mod:`creevey_dask.storage`; where the folder cannot be written, the index is kept in
this process only). A Parquet shard is indexed by its ``key`` column; a sample is read
from its row group's image column (``image.bytes``, or img2dataset's ``jpg``).

**Never the wrong bytes.** An index names the shard's size and stamp (local
modification time in ns; an object's ETag), checked before the index is used; locally
on every read, on object stores once per process and shard. Every ranged read is parsed
as tar members and must hold the named member, whole, with the size its header
declares; otherwise the index is rebuilt once and the read fails if it still does not
match (:class:`~creevey_dask.exceptions.ArchiveError`). A member the index does not
list is a :class:`~creevey_dask.exceptions.MissingDataError`. Member names are only
ever compared, never used as paths.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tarfile
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._fork import reset_in_child
from ..exceptions import ArchiveError, MissingDataError, SizeLimitError, UnsafeSourceError
from . import fs as storage
from .sample_names import (
    SAMPLE_SEP,
    is_image_ext,
    is_sample,
    member_key,
    sample_source,
    split_member,
    split_sample,
)

__all__ = [
    "DIGEST_COL",
    "IMAGE_COLS",
    "INDEX_SUFFIX",
    "KEY_COL",
    "OFFSET_COL",
    "SAMPLE_SEP",
    "SIZE_COL",
    "TAR_BYTES_META",
    "has_sample",
    "index_shard",
    "is_sample",
    "member_key",
    "read_bytes",
    "read_sample",
    "open_file",
    "read_range",
    "is_image_ext",
    "sample_source",
    "split_member",
    "split_sample",
    "tar_index",
]

logger = logging.getLogger(__name__)

#: Records columns of a WebDataset shard: where each ``ok`` sample's members start ...
OFFSET_COL = "tar_offset"
#: ... how many bytes they span (headers and padding included) ...
SIZE_COL = "tar_size"
#: ... and the sha256 of the whole tar.
DIGEST_COL = "shard_digest"
#: The records' metadata key of the size of the tar they were committed with.
TAR_BYTES_META = b"creevey_tar_bytes"
#: The suffix of the index written beside a tar that has no offsets in its records.
INDEX_SUFFIX = ".index.json"

#: The records column of each row's sample key.
KEY_COL = "key"
_INDEX_FORMAT = "creevey-tar-index"
#: Image columns of a Parquet shard: an HF ``Image`` struct, or img2dataset's binary.
IMAGE_COLS = ("image", "jpg", "png", "webp")


# ---- the index of one shard -----------------------------------------------------------


@dataclass
class ShardIndex:
    """Where each member (or sample) of one shard is, and which shard it describes."""

    shard: str
    stamp: tuple[int, str]  # (size, modification time or ETag) when indexed
    members: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> [start, end)
    samples: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> [start, end)
    origin: str = "tar"  # "records", "sidecar", "tar" or "parquet"
    rows: dict[str, tuple[int, int, str]] = field(
        default_factory=dict
    )  # parquet: key -> rg, row, col
    checked: float = 0.0

    def span(self, member: str) -> tuple[int, int] | None:
        if member in self.members:
            return self.members[member]
        return self.samples.get(member_key(member))


_cache: dict[tuple[str, str], ShardIndex] = {}
_building: dict[tuple[str, str], threading.Lock] = {}
_cache_lock = threading.Lock()
reset_in_child(globals(), locks=["_cache_lock"], clear=["_building"])


def _options_key(storage_options: Mapping[str, Any] | None) -> str:
    return repr(sorted((k, repr(v)) for k, v in dict(storage_options or {}).items()))


def _stamp(path: str, storage_options: Mapping[str, Any] | None) -> tuple[int, str]:
    """``(size, stamp)`` of the file at ``path``: mtime in ns locally, else its ETag."""
    local = storage.local_os_path(path)
    if local is not None:
        st = os.stat(local)
        return int(st.st_size), str(st.st_mtime_ns)
    fs, fs_path = storage.get_fs(path, storage_options)
    invalidate = getattr(fs, "invalidate_cache", None)
    if callable(invalidate):  # a listing cached earlier may describe an older object
        invalidate(fs_path)
    info = fs.info(fs_path)
    stamp = info.get("ETag") or info.get("LastModified") or info.get("mtime") or ""
    return int(info.get("size") or 0), str(stamp)


def _records_path(shard: str) -> str:
    return shard[: -len(".tar")] + ".parquet"


def read_range(path: str, start: int, end: int, options: Mapping[str, Any] | None) -> bytes:
    """Bytes ``[start, end)`` of ``path``: a seek locally, one ranged GET elsewhere."""
    local = storage.local_os_path(path)
    if local is not None:
        with open(local, "rb") as f:
            f.seek(start)
            return f.read(end - start)
    fs, fs_path = storage.get_fs(path, options)
    return bytes(fs.cat_file(fs_path, start=start, end=end))


def open_file(path: str, options: Mapping[str, Any] | None) -> Any:
    local = storage.local_os_path(path)
    if local is not None:
        return open(local, "rb")
    fs, fs_path = storage.get_fs(path, options)
    return fs.open(fs_path, "rb", cache_type="none")


def _from_records(shard: str, stamp: tuple[int, str], options: Any) -> ShardIndex | None:
    """The index in a WebDataset shard's records (``tar_offset``/``tar_size``), or None."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open_file(_records_path(shard), options) as f:
            names = pq.read_schema(f).names
            if not {KEY_COL, OFFSET_COL, SIZE_COL} <= set(names):
                return None
            f.seek(0)
            table = pq.read_table(f, columns=[KEY_COL, OFFSET_COL, SIZE_COL])
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as err:
        logger.warning("creevey: the records of %s are unreadable (%s); indexing it", shard, err)
        return None
    index = ShardIndex(shard, stamp, origin="records")
    for key, offset, size in zip(*(table.column(i).to_pylist() for i in range(3)), strict=True):
        if key is None or offset is None or size is None:
            continue  # an error row: no sample
        start, end = int(offset), int(offset) + int(size)
        if start < 0 or end <= start:
            raise ArchiveError(
                f"the records of {shard!r} place sample {key!r} at [{start}, {end}), "
                "which is no span of a tar"
            )
        index.samples[str(key)] = (start, end)  # a span past the end: a cut tar, seen on read
    return index


def _sidecar(shard: str) -> str:
    return shard + INDEX_SUFFIX


def _from_sidecar(shard: str, stamp: tuple[int, str], options: Any) -> ShardIndex | None:
    try:
        payload = json.loads(storage.read_bytes(_sidecar(shard), options))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("creevey: %s is unreadable (%s); the tar is indexed again", shard, err)
        return None
    if not isinstance(payload, dict) or payload.get("format") != _INDEX_FORMAT:
        return None
    if [payload.get("size"), payload.get("stamp")] != [stamp[0], stamp[1]]:
        logger.info("creevey: %s changed since it was indexed; indexing it again", shard)
        return None
    index = ShardIndex(shard, stamp, origin="sidecar")
    for name, start, end in payload.get("members", []):
        index.members[str(name)] = (int(start), int(end))
    _group(index)
    return index


def _group(index: ShardIndex) -> None:
    """The samples of an index built from members: each key's first to last member."""
    for name, (start, end) in index.members.items():
        key = member_key(name)
        old = index.samples.get(key)
        index.samples[key] = (start, end) if old is None else (min(old[0], start), max(old[1], end))


def _build(shard: str, stamp: tuple[int, str], options: Any) -> ShardIndex:
    """Index a tar by one sequential pass, and write the index beside it."""
    index = ShardIndex(shard, stamp, origin="tar")
    try:
        with open_file(shard, options) as f, tarfile.open(fileobj=f, mode="r|") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                end = info.offset_data + ((info.size + 511) // 512) * 512
                if info.offset_data + info.size > stamp[0]:
                    break  # a cut tar: its last member is incomplete
                index.members[info.name] = (info.offset, min(end, stamp[0]))
    except tarfile.ReadError as err:
        if not index.members:
            raise ArchiveError(f"{shard!r} is not a readable tar: {err}") from err
        logger.warning("creevey: %s is cut short (%s); indexed its whole members", shard, err)
    except tarfile.TarError as err:
        raise ArchiveError(f"{shard!r} is not a readable tar: {err}") from err
    _group(index)
    payload = {
        "format": _INDEX_FORMAT,
        "version": 1,
        "size": stamp[0],
        "stamp": stamp[1],
        "members": [[name, s, e] for name, (s, e) in index.members.items()],
    }
    try:
        storage.write_bytes_atomic(_sidecar(shard), json.dumps(payload).encode(), options)
    except (OSError, PermissionError) as err:
        logger.info("creevey: the index of %s stays in memory: %s", shard, err)
    except Exception as err:  # a store that refuses the write (credentials, read-only)
        logger.info("creevey: the index of %s stays in memory: %s", shard, err)
    return index


def _parquet_index(shard: str, stamp: tuple[int, str], options: Any) -> ShardIndex:
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = ShardIndex(shard, stamp, origin="parquet")
    try:
        with open_file(shard, options) as f:
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            column = next((c for c in IMAGE_COLS if c in names), None)
            if KEY_COL not in names or column is None:
                raise ArchiveError(
                    f"{shard!r} is not a Parquet shard: it needs a {KEY_COL!r} column and an "
                    f"image column (one of {list(IMAGE_COLS)}); its columns are {names}"
                )
            for group in range(pf.num_row_groups):
                keys = pf.read_row_group(group, columns=[KEY_COL]).column(0).to_pylist()
                for row, key in enumerate(keys):
                    if key is not None:
                        index.rows.setdefault(str(key), (group, row, column))
    except pa.ArrowException as err:
        raise ArchiveError(f"{shard!r} is not a readable Parquet file: {err}") from err
    return index


def tar_index(
    shard: str, storage_options: Mapping[str, Any] | None = None, *, fresh: bool = False
) -> ShardIndex:
    """The index of ``shard`` (a ``.tar`` or ``.parquet``), cached per process.

    From the shard's records when they carry offsets, else from the index beside the
    tar (when it describes the tar as it is now), else built by one sequential pass
    and written beside the tar. ``fresh=True`` ignores the process cache and the index
    file. Raises :class:`MissingDataError` if the shard does not exist.
    """
    key = (shard, _options_key(storage_options))
    try:
        stamp = _stamp(shard, storage_options)
    except FileNotFoundError as err:
        with _cache_lock:
            _cache.pop(key, None)
        raise MissingDataError(f"the shard {shard!r} does not exist") from err
    with _cache_lock:
        cached = _cache.get(key)
        building = _building.setdefault(key, threading.Lock())
    if cached is not None and not fresh and cached.stamp == stamp:
        return cached
    seen = cached
    with building:  # one pass per shard, however many threads ask for it at once
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None and cached.stamp == stamp and (not fresh or cached is not seen):
            return cached  # another thread has just (re)built it
        return _load_index(key, shard, stamp, storage_options, fresh)


def _load_index(
    key: tuple[str, str],
    shard: str,
    stamp: tuple[int, str],
    storage_options: Mapping[str, Any] | None,
    fresh: bool,
) -> ShardIndex:
    found: ShardIndex | None = None
    if shard.lower().endswith(".parquet"):
        found = _parquet_index(shard, stamp, storage_options)
    elif not fresh:
        found = _from_records(shard, stamp, storage_options)
        found = found or _from_sidecar(shard, stamp, storage_options)
    index = found or _build(shard, stamp, storage_options)
    index.checked = time.monotonic()
    with _cache_lock:
        _cache[key] = index
    return index


def _current_index(shard: str, options: Mapping[str, Any] | None) -> ShardIndex:
    """The cached index if it still describes the shard (locally: stat on every read)."""
    key = (shard, _options_key(options))
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and storage.local_os_path(shard) is None:
        return cached  # object stores: the stamp was checked when the index was loaded
    return tar_index(shard, options)


def has_sample(source: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether the shard that ``source`` names exists and its index lists the member."""
    parts = split_sample(source)
    if parts is None:
        return False
    try:
        index = _current_index(parts[0], storage_options)
    except (MissingDataError, ArchiveError):
        return False
    if index.origin == "parquet":
        return member_key(parts[1]) in index.rows or parts[1] in index.rows
    return index.span(parts[1]) is not None


def index_shard(shard: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """Index ``shard`` now (if its records carry no offsets); return where its index is from.

    One of ``"records"``, ``"sidecar"``, ``"tar"`` (just built) or ``"parquet"``.
    """
    return tar_index(shard, storage_options).origin


# ---- reading one sample ----------------------------------------------------------------


def _wanted(name: str, member: str) -> bool:
    """Whether tar member ``name`` is what a read of ``member`` wants (a bare key: its image)."""
    if split_member(member) is not None:
        return name == member
    parts = split_member(name)
    return parts is not None and parts[0] == member and is_image_ext(parts[1])


def _member_of(blob: bytes, member: str, shard: str) -> bytes | None:
    """The data of ``member`` in ``blob``, a run of whole tar members; None if absent.

    With ``member`` a bare key (no extension), the sample's image member. Only the
    headers of the other members are parsed, not their data.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
            for info in tar:
                if not _wanted(info.name, member):
                    continue
                if not info.isfile():
                    raise UnsafeSourceError(f"{info.name!r} in {shard!r} is not a regular file")
                handle = tar.extractfile(info)
                data = b"" if handle is None else handle.read()
                return data if len(data) == info.size else None
    except tarfile.TarError:
        return None
    return None


def _whole_others(blob: bytes, member: str) -> list[str]:
    """The names of the whole regular members in ``blob`` that are not ``member``.

    Up to the first damaged one: what a read that missed ``member`` found instead.
    """
    whole: list[str] = []
    with (
        contextlib.suppress(tarfile.TarError),
        tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar,
    ):
        for info in tar:
            if not info.isfile() or _wanted(info.name, member):
                continue
            handle = tar.extractfile(info)
            if handle is not None and len(handle.read()) == info.size:
                whole.append(info.name)
    return whole


def _no_member(member: str, shard: str, names: list[str]) -> MissingDataError:
    """The error for a member the shard does not hold; ``names``: its key's members."""
    key = member_key(member)
    others = [n for n in names if member_key(n) == key and n != member]
    has = f" (it has {', '.join(repr(n) for n in others)})" if others else ""
    return MissingDataError(f"no member {member!r} in the shard {shard!r}{has}")


def _parquet_sample(index: ShardIndex, member: str, options: Any) -> bytes:
    key = member_key(member)
    where = index.rows.get(key) or index.rows.get(member)
    if where is None:
        raise MissingDataError(f"no sample {key!r} in the shard {index.shard!r}")
    group, row, column = where
    values = _row_group_column(index, group, column, options)
    value = values[row]
    if isinstance(value, dict):
        value = value.get("bytes")
    if value is None:
        raise MissingDataError(f"the sample {key!r} of {index.shard!r} has no image")
    return bytes(value)


_groups: OrderedDict[tuple[str, tuple[int, str], int, str], list[Any]] = OrderedDict()
_groups_lock = threading.Lock()
reset_in_child(globals(), locks=["_groups_lock"])
_GROUPS_KEPT = 2  # row groups' image columns kept per process (sequential reads hit)
_GROUPS_MAX_BYTES = 256 << 20  # ... unless they hold more image bytes than this


def _row_group_column(index: ShardIndex, group: int, column: str, options: Any) -> list[Any]:
    import pyarrow.parquet as pq

    key = (index.shard, index.stamp, group, column)
    with _groups_lock:
        if key in _groups:
            _groups.move_to_end(key)
            return _groups[key]
    with open_file(index.shard, options) as f:
        table = pq.ParquetFile(f).read_row_group(group, columns=[column])
    values = table.column(0).to_pylist()
    if table.nbytes > _GROUPS_MAX_BYTES:
        return values  # read again by the next sample of this row group
    with _groups_lock:
        _groups[key] = values
        while len(_groups) > _GROUPS_KEPT:
            _groups.popitem(last=False)
    return values


def read_sample(
    source: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    max_bytes: int | None = None,
) -> bytes:
    """The bytes of the sample member that ``source`` names (see :func:`split_sample`).

    One ranged read of the sample's members (a tar) or its row group's image column (a
    Parquet shard). ``max_bytes`` refuses a larger member before reading it.

    Raises
    ------
    ValueError
        ``source`` is not a sample source.
    MissingDataError
        The shard does not exist, or holds no such member.
    ArchiveError
        The shard is damaged or changed in a way its index cannot serve.
    SizeLimitError
        The sample is larger than ``max_bytes``.
    """
    parts = split_sample(source)
    if parts is None:
        raise ValueError(f"{source!r} is not a sample source ('<shard>.tar#<member>')")
    shard, member = parts
    index = _current_index(shard, storage_options)
    if index.origin == "parquet":
        return _parquet_sample(index, member, storage_options)
    if index.members and member not in index.members and split_member(member):
        raise _no_member(member, shard, list(index.members))  # the index lists every name
    first = index.span(member)
    whole: list[str] = []
    data = _tar_sample(index, member, max_bytes, storage_options, whole)
    if data is None and any(member_key(n) == member_key(member) for n in whole):
        # the sample is where the index says, whole, without this member: no rebuild
        raise _no_member(member, shard, whole)
    if data is None:  # the shard may have changed under the index: look at it again
        again = tar_index(shard, storage_options)
        if again is index and index.origin != "tar" and index.span(member) is not None:
            again = tar_index(shard, storage_options, fresh=True)
        if again is not index:
            index = again
            data = _tar_sample(index, member, max_bytes, storage_options, whole)
    if data is not None:
        return data
    if first is None and index.span(member) is None:
        raise _no_member(member, shard, list(index.members))
    raise ArchiveError(
        f"the shard {shard!r} does not hold {member!r} whole where its index says "
        "(the tar is cut, damaged or was replaced after it was indexed)"
    )


def _tar_sample(
    index: ShardIndex,
    member: str,
    max_bytes: int | None,
    options: Mapping[str, Any] | None,
    whole: list[str],
) -> bytes | None:
    """One ranged read of ``member``'s sample; None if the index does not match the tar.

    On a miss, ``whole`` gets the names of the whole members read that are not ``member``.
    """
    span = index.span(member)
    if span is None:
        return None
    start, end = span
    if max_bytes is not None and end - start > max_bytes + 4096:
        raise SizeLimitError(
            f"the sample {member!r} of {index.shard!r} spans {end - start:,} bytes, more than "
            f"max_bytes={max_bytes:,}",
            nbytes=0,
        )
    blob = read_range(index.shard, start, end, options)
    data = _member_of(blob, member, index.shard)
    if data is None:
        whole.extend(_whole_others(blob, member))
    return data


def read_bytes(path: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """The bytes at ``path``: a sample source's member, or the whole file."""
    if is_sample(path):
        return read_sample(path, storage_options)
    return storage.read_bytes(path, storage_options)
