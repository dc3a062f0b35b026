"""The Parquet writer: a shard's records and images in one Parquet file.

This module owns the layout of ``output_format="parquet"`` shards (module docs of
:mod:`creevey_dask.sinks.shards`): the records plus an :data:`IMAGE_COL` column, a
struct of ``bytes`` and ``path`` that Hugging Face ``datasets`` reads as its ``Image``
feature, streamed from the spool in row groups of about :data:`ROW_GROUP_BYTES`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..storage import fs as storage
from .records import arrow_table, with_metadata
from .spool import ShardRows, Spool, image_ext

__all__ = ["IMAGE_COL", "ROW_GROUP_BYTES", "image_cell", "write_parquet_shard", "write_shard"]

#: The image column of ``output_format="parquet"`` shards (HF ``Image``: bytes, path).
IMAGE_COL = "image"
#: Parquet shards are written in row groups of about this many image bytes (at least a row).
ROW_GROUP_BYTES = 1 << 20


_HF_IMAGE = {
    b"huggingface": json.dumps({"info": {"features": {IMAGE_COL: {"_type": "Image"}}}}).encode()
}


def write_shard(rows: ShardRows) -> None:
    """Commit a Parquet shard: its records and images, one file, one rename or upload."""
    write_parquet_shard(
        rows.path, rows.records, rows.samples, rows.keys, rows.ok, rows.spool, rows.storage_options
    )


def write_parquet_shard(
    shard: str,
    records: pd.DataFrame,
    samples: list[Any],
    keys: list[str],
    ok: Any,
    spool: Spool,
    storage_options: Mapping[str, Any],
) -> None:
    """Stream a Parquet shard (records + HF ``Image`` column) to its temporary file.

    Row groups hold about :data:`ROW_GROUP_BYTES` of images (at least one row), read
    back from the spool one group at a time; the image column has no dictionary and no
    statistics (unique, already compressed bytes), which would only cost memory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = with_metadata(arrow_table(records), _HF_IMAGE)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = table.schema.append(pa.field(IMAGE_COL, image_type))
    groups: list[tuple[int, int]] = []
    start, held = 0, 0
    for i in range(len(records)):
        held += samples[i][1] if ok[i] else 0
        if held >= ROW_GROUP_BYTES:
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
                image_cell(spool, samples[i], keys[i]) if ok[i] else None for i in range(a, b)
            ]
            part = table.slice(a, b - a).append_column(IMAGE_COL, pa.array(images, type=image_type))
            del images
            w.write_table(part)
            del part


def image_cell(spool: Spool, sample: Any, key: str) -> dict[str, Any]:
    offset, size, fmt, _ = sample
    return {"bytes": spool.read(offset, size), "path": f"{key}.{image_ext(fmt)}"}
