"""The WebDataset writer: a shard's samples as one USTAR tar, then its records Parquet.

This module owns the tar's layout (module docs of :mod:`creevey_dask.sinks.shards`):
per ``ok`` row the members ``{key}.{ext}``, ``{key}.json`` and ``{key}.txt`` in that
order (:func:`sample_members`), plain USTAR headers (:func:`member_header`), each
sample's ``tar_offset``/``tar_size`` and the tar's sha256 (:func:`write_tar`), and the
commit (:func:`write_shard`): the tar first, the records last, the tar taken back if
its records cannot be written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
import time
from typing import IO, Any

import pandas as pd

from ..exceptions import format_error
from ..storage import fs as storage
from ..storage.samples import DIGEST_COL, KEY_COL, OFFSET_COL, SIZE_COL
from .records import json_value, records_bytes
from .resume import tar_note
from .spool import ShardRows, Spool, image_ext

__all__ = ["member_header", "sample_members", "write_shard", "write_tar"]

_BLOCK = tarfile.BLOCKSIZE


_RESULT_ONLY = {"outpath", "status", "error", "error_type"}


def sample_members(
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
        meta = {str(k): json_value(v) for k, v in row.items() if k not in _RESULT_ONLY}
        meta["sha256"] = sha256
        items: list[tuple[str, Any]] = [(image_ext(fmt), (offset, size))]
        try:
            text = json.dumps(meta, ensure_ascii=False, allow_nan=False).encode()
            items.append(("json", text))
            if caption_col is not None:
                caption = json_value(row.get(caption_col))
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


def member_header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o444
    info.uname = info.gname = "bigdata"
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def write_tar(
    f: IO[bytes], members: list[tuple[int, str, list[tuple[str, Any]]]], spool: Spool
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
                put(member_header(f"{key}.{ext}", size, now))
                spool.copy(offset, size, put)
            else:
                put(member_header(f"{key}.{ext}", len(payload), now))
                put(payload)
            pad()
        places[row] = (start, pos - start)
    put(b"\0" * (2 * _BLOCK))  # the end-of-archive marker
    record_size = tarfile.RECORDSIZE
    if pos % record_size:  # padded to whole records, as tarfile writes
        put(b"\0" * (record_size - pos % record_size))
    return places, pos, digest.hexdigest()


def write_shard(rows: ShardRows) -> None:
    """Commit a WebDataset shard: the tar (if any sample), then its records, the commit.

    A row whose sample cannot be made becomes an error alone (``rows.ok``,
    ``rows.records`` and ``rows.result`` are changed in place). If the records cannot
    be written, the tar is removed again: its name is unique, so it holds nobody else's
    samples.
    """
    records, ok, options = rows.records, rows.ok, rows.storage_options
    tar_bytes = digest = None
    if ok.any():
        members = sample_members(records, rows.samples, ok, rows.caption_col, rows.result)
        with storage.atomic_writer(rows.path, options) as f:
            places, tar_bytes, digest = write_tar(f, members, rows.spool)
        offsets = [places.get(i, (None, None))[0] for i in range(len(records))]
        sizes = [places.get(i, (None, None))[1] for i in range(len(records))]
    else:
        offsets = sizes = [None] * len(records)
    records[OFFSET_COL] = pd.array(offsets, dtype="Int64")
    records[SIZE_COL] = pd.array(sizes, dtype="Int64")
    records[DIGEST_COL] = pd.array([digest] * len(records), dtype="string")
    try:
        note = tar_note(tar_bytes, digest) if tar_bytes is not None and digest is not None else None
        storage.write_bytes_atomic(rows.records_path, records_bytes(records, note), options)
    except BaseException:  # no commit: take back our tar (its name is only ours)
        if tar_bytes is not None:
            with contextlib.suppress(OSError):
                fs, fs_path = storage.get_fs(rows.path, options)
                fs.rm_file(fs_path)
        raise
