"""Reading a folder of shards back: one row per key, each ``ok`` row's sample source.

:func:`read_records` (behind :func:`creevey_dask.read_shards`) plans on the
driver: it lists the folder once, reads each shard's ``key`` and ``status`` columns,
tells complete shards from cut ones (the tar is there, with the size its records noted,
and holds every span they name), and keeps, per key, its latest attempt (the size and
latest-attempt rules are :mod:`creevey_dask.sinks.resume`'s). Each partition then reads
one shard's records, normalises img2dataset's (``status`` ``success``/``failed_to_*``,
``error_message``) to the library's result columns, and names each ``ok`` row's sample
(:mod:`creevey_dask.storage.samples`) in the ``sample`` column.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..schema import STATUS_DTYPE, error_type_of
from ..storage import fs as storage
from ..storage.samples import (
    IMAGE_COLS,
    KEY_COL,
    OFFSET_COL,
    SIZE_COL,
    TAR_BYTES_META,
    ShardIndex,
    is_image_ext,
    open_file,
    read_range,
    sample_source,
    split_member,
    tar_index,
)
from .resume import RECORDS_EXT, TAR_SHA_META, is_records, supersedes, tar_is_theirs, tar_matches

__all__ = ["ATTEMPTS", "SAMPLE_COL", "read_records"]

logger = logging.getLogger(__name__)

#: The column of :func:`read_records` that names each ``ok`` row's sample.
SAMPLE_COL = "sample"
#: The allowed values of ``attempts=``.
ATTEMPTS = ("latest", "all")

_I2D_STATUS = {"success": "ok"}  # img2dataset: success, failed_to_download, failed_to_resize


@dataclass
class _Shard:
    """One shard of a folder, as planned on the driver."""

    records: str  # the Parquet (records, or the Parquet shard itself)
    tar: str | None  # the WebDataset tar, None for a Parquet shard
    complete: bool  # its samples can be served (the tar is there, whole)
    keep: list[int] | None = None  # the row positions :func:`read_records` returns


def _check_attempts(attempts: Any) -> str:
    if attempts not in ATTEMPTS:
        raise ValueError(f"attempts {attempts!r} is not one of {list(ATTEMPTS)}")
    return str(attempts)


def _plan(outdir: str, options: Mapping[str, Any] | None) -> list[tuple[_Shard, Any, Any]]:
    """Every shard of ``outdir`` in name order, with its keys and statuses."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    fs, path = storage.get_fs(str(outdir), options)
    try:
        entries = fs.ls(path, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        entries = []
    infos = {str(e["name"]).rstrip("/").rsplit("/", 1)[-1]: e for e in entries}
    sizes = {name: info.get("size") for name, info in infos.items()}
    protocol = storage.protocol_of(str(outdir))
    base = str(outdir).rstrip("/")
    planned = []
    for name in sorted(n for n in sizes if n.endswith(RECORDS_EXT) and not n.startswith(".")):
        records = storage.join(base, name) if protocol else os.path.join(base, name)
        records = records if protocol else records.replace(os.sep, "/")
        try:
            with open_file(records, options) as f:
                schema = pq.read_schema(f)
                names = schema.names
                wanted = [c for c in (KEY_COL, "status", OFFSET_COL, SIZE_COL) if c in names]
                f.seek(0)
                table = pq.read_table(f, columns=wanted)
        except (OSError, pa.ArrowException) as err:
            logger.warning("creevey: %s is unreadable (%s); it is left out", records, err)
            continue
        if not is_records(names):
            logger.warning("creevey: %s holds no shard records; it is left out", records)
            continue
        keys = table.column(KEY_COL).to_pylist()
        statuses = [_I2D_STATUS.get(s, s) for s in table.column("status").to_pylist()]
        if "error_message" in names and "error" not in names:
            statuses = ["ok" if s == "ok" else "error" for s in statuses]
        if any(c in names for c in IMAGE_COLS):
            shard = _Shard(records, None, True)
        else:
            tar_name = name[: -len(RECORDS_EXT)] + ".tar"
            tar = records[: -len(RECORDS_EXT)] + ".tar"
            size = sizes.get(tar_name)
            noted = (schema.metadata or {}).get(TAR_BYTES_META)
            whole = tar_matches(None if size is None else int(size), noted)
            if whole and {OFFSET_COL, SIZE_COL} <= set(wanted):  # every span inside the tar
                ends = pc.add(table.column(OFFSET_COL), table.column(SIZE_COL))
                last = pc.max(ends).as_py()
                whole = last is None or int(last) <= int(size or 0)
            if not whole and "ok" in statuses:
                logger.warning("creevey: %s is missing or cut; its samples are not served", tar)
            elif "ok" in statuses and not tar_is_theirs(
                fs,
                str(infos[tar_name]["name"]),
                infos[tar_name],
                infos[name],
                (schema.metadata or {}).get(TAR_SHA_META),
            ):
                logger.warning("creevey: %s is not the tar its records describe (sha256)", tar)
                whole = False
            shard = _Shard(records, tar, whole)
        planned.append((shard, keys, statuses))
    return planned


def _winners(planned: list[tuple[_Shard, Any, Any]]) -> None:
    """Keep, per key, its latest attempt (:func:`~creevey_dask.sinks.resume.supersedes`).

    An ``ok`` counts as one in a complete shard only: it beats any error. Later shards
    (by name) beat earlier ones; within a shard, the later row.
    """
    best: dict[str, tuple[bool, int, int]] = {}
    for order, (shard, keys, statuses) in enumerate(planned):
        shard.keep = []
        for row, (key, status) in enumerate(zip(keys, statuses, strict=True)):
            if key is None:
                shard.keep.append(row)  # no key: nothing to merge it with
                continue
            served = status == "ok" and shard.complete
            old = best.get(str(key))
            if supersedes(served, None if old is None else old[0]):
                best[str(key)] = (served, order, row)
    for _, order, row in best.values():
        keep = planned[order][0].keep
        assert keep is not None
        keep.append(row)
    for shard, _, _ in planned:
        if shard.keep is not None:
            shard.keep.sort()


def _image_members(shard: _Shard, frame: Any, options: Mapping[str, Any] | None) -> list[Any]:
    """The image member name of each row's sample (None for rows without one)."""
    keys = frame[KEY_COL].tolist()
    ok = (frame["status"] == "ok").tolist()
    if not shard.complete:
        return [None] * len(keys)
    if shard.tar is None:  # a Parquet shard: the image's own path, or img2dataset's column
        return _parquet_members(shard.records, keys, ok, options, shard.keep)
    index = tar_index(shard.tar, options)
    if index.origin == "records":  # no member names: the first sample's tells the format
        ext = _first_image_ext(index, keys, ok, options)
        return [
            f"{k}.{ext}" if flag and ext else (k if flag else None)
            for k, flag in zip(keys, ok, strict=True)
        ]
    images: dict[str, str] = {}
    for name in index.members:
        parts = split_member(name)
        if parts is not None and is_image_ext(parts[1]):
            images.setdefault(parts[0], name)
    return [images.get(str(k)) if flag else None for k, flag in zip(keys, ok, strict=True)]


def _first_image_ext(
    index: ShardIndex, keys: list[Any], ok: list[bool], options: Any
) -> str | None:
    for key, flag in zip(keys, ok, strict=True):
        span = index.samples.get(str(key)) if flag else None
        if span is None:
            continue
        blob = read_range(index.shard, span[0], span[1], options)
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
                for info in tar:
                    parts = split_member(info.name)
                    if parts and parts[0] == str(key) and is_image_ext(parts[1]):
                        return parts[1]
        except tarfile.TarError:
            return None
        return None
    return None


def _parquet_members(
    path: str, keys: list[Any], ok: list[bool], options: Any, keep: list[int] | None
) -> list[Any]:
    """The member name of each kept row (``keep``: their positions; None: every row)."""
    import pyarrow.parquet as pq

    with open_file(path, options) as f:
        names = pq.read_schema(f).names
        f.seek(0)
        if "image" in names:
            paths = pq.read_table(f, columns=["image.path"]).column(0).to_pylist()
        else:
            column = next(c for c in IMAGE_COLS if c in names)
            paths = [f"{k}.{column}" for k in keys]
    if keep is not None and len(paths) != len(keys):
        paths = [paths[i] for i in keep]
    out = []
    for key, flag, name in zip(keys, ok, paths, strict=True):
        ext = str(name).rpartition(".")[2] if name and "." in str(name) else ""
        out.append((f"{key}.{ext}" if ext else str(key)) if flag else None)
    return out


def _load(shard: _Shard, options: Mapping[str, Any] | None, meta: Any = None) -> Any:
    """One shard's records as pandas: normalised, with their sample sources, the kept rows."""
    import pandas as pd
    import pyarrow.parquet as pq

    with open_file(shard.records, options) as f:
        names = pq.read_schema(f).names
        f.seek(0)
        columns = [c for c in names if c not in IMAGE_COLS]
        frame = pq.read_table(f, columns=columns).to_pandas()
    if "error_message" in frame.columns and "error" not in frame.columns:  # img2dataset's
        raw = frame["status"].astype(object)
        frame["status"] = raw.map(lambda s: "ok" if s == "success" else "error")
        message = frame["error_message"].astype(object)
        frame["error"] = [
            None if s == "success" else f"{s}: {m}" for s, m in zip(raw, message, strict=True)
        ]
        frame["error"] = frame["error"].astype("string")
    if shard.keep is not None:
        frame = frame.iloc[shard.keep].reset_index(drop=True)
    if "error" not in frame.columns:
        frame["error"] = pd.Series([None] * len(frame), dtype="string")
    if "error_type" not in frame.columns:  # img2dataset's records, or older ones
        frame["error_type"] = [error_type_of(e) for e in frame["error"].tolist()]
    ok = frame["status"] == "ok"
    target = shard.tar if shard.tar is not None else shard.records
    if "outpath" not in frame.columns:
        frame["outpath"] = pd.Series([target if flag else None for flag in ok], dtype="string")
    if not shard.complete and ok.any():  # records that say ok for a tar that is not whole
        frame["status"] = frame["status"].astype(object).where(~ok, "error")
        frame["error"] = (
            frame["error"]
            .astype(object)
            .where(
                ~ok,
                f"ArchiveError: the shard {target!r} is missing, cut or not the tar its "
                "records describe; its sample is lost",
            )
        )
        frame["error_type"] = frame["error_type"].astype(object).where(~ok, "ArchiveError")
        frame["outpath"] = frame["outpath"].astype(object).where(~ok, None)
    frame["error_type"] = frame["error_type"].astype("string")  # made categorical once
    members = _image_members(shard, frame, options)
    frame[SAMPLE_COL] = pd.Series(
        [None if m is None else sample_source(target, m) for m in members], dtype="string"
    )
    frame["status"] = frame["status"].astype(STATUS_DTYPE)
    if meta is not None:
        frame = _like(frame, meta)
    return frame


def _like(frame: Any, meta: Any) -> Any:
    """``frame`` with ``meta``'s columns and, where they convert, its dtypes."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for col in meta.columns:
        values = frame[col] if col in frame.columns else pd.Series([None] * len(frame))
        try:
            out[col] = values.astype(meta[col].dtype)
        except (TypeError, ValueError):
            out[col] = values
    return out


def read_records(
    outdir: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    attempts: str = "latest",
) -> Any:
    """The records of a folder of shards, as :func:`creevey_dask.read_shards` says."""
    import dask.dataframe as dd

    attempts = _check_attempts(attempts)
    planned = _plan(str(outdir), storage_options)
    if not planned:
        raise FileNotFoundError(f"no shard records (*.parquet) in {str(outdir)!r}")
    if attempts == "latest":
        _winners(planned)
    shards = [p[0] for p in planned]
    options = dict(storage_options or {}) or None
    meta = _load(_Shard(shards[0].records, shards[0].tar, False, []), options).iloc[:0]
    frame = dd.from_map(_load, shards, args=[options, meta], meta=meta)
    if "error_type" in frame.columns:
        frame["error_type"] = frame["error_type"].astype("category")
    return frame
