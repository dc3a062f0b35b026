"""``{outdir}/_stats.json``: the dataset's counts by each key's latest record, and a call's.

This module owns the summary's content and its writing: :func:`stats_of` (the dataset,
from :func:`creevey_dask.sinks.resume.dataset_index`), :func:`run_stats` (one call's
result frame), :func:`write` (written until no other writer commits meanwhile) and
:func:`update` (a run's own update, which logs rather than raises). The public entry,
:func:`creevey_dask.sinks.shards.write_stats`, checks its arguments as a sink does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..exceptions import format_error
from ..storage import fs as storage
from .parquet import IMAGE_COL
from .resume import Latest, ShardFolder, dataset_index, shard_names

__all__ = ["STATS_NAME", "format_of", "run_stats", "stats_of", "update", "write"]

logger = logging.getLogger(__name__)

#: The name of the dataset summary written into ``outdir`` by sharded runs.
STATS_NAME = "_stats.json"


def write(
    folder: ShardFolder,
    result: pd.DataFrame | None,
    *,
    seconds: float | None = None,
    output_format: str | None = None,
    shard_size: int | None = None,
) -> dict[str, Any]:
    """Write ``_stats.json`` into ``folder`` (see :func:`~creevey_dask.sinks.shards.write_stats`).

    ``output_format`` and ``shard_size`` are recorded as given (None: not known).
    """
    assert folder.outdir is not None
    for _ in range(5):  # another writer may commit meanwhile: count again until stable
        names = shard_names(folder)
        stats = stats_of(dataset_index(folder), len(names))
        stats.update({"output_format": output_format, "shard_size": shard_size})
        if result is not None:
            stats["last_run"] = run_stats(result, seconds)
        text = json.dumps(stats, indent=2).encode()
        storage.write_bytes_atomic(
            storage.join(folder.outdir, STATS_NAME), text, folder.storage_options
        )
        if shard_names(folder) == names:
            break
    return stats


def update(
    folder: ShardFolder, shard_size: int, result: pd.DataFrame | None, seconds: float | None
) -> None:
    """A run's update of ``_stats.json``: one that cannot be written (a full disk) is logged.

    Not raised: the rows' results are already in the result frame.
    """
    try:
        write(
            folder,
            result,
            seconds=seconds,
            output_format=folder.output_format,
            shard_size=shard_size,
        )
    except OSError as err:
        logger.warning("creevey: %s could not be written: %s", STATS_NAME, format_error(err))


def format_of(probe: ShardFolder) -> str:
    """The sharded format of ``probe.outdir``: ``"parquet"`` if its first records hold images."""
    import pyarrow.parquet as pq

    for name in shard_names(probe)[:1]:
        fs, path = storage.get_fs(probe.records_path(name), probe.storage_options)
        with fs.open(path, "rb") as f:
            if IMAGE_COL in pq.read_schema(f).names:
                return "parquet"
    return "webdataset"


def stats_of(index: Mapping[str, Latest], on_disk: int) -> dict[str, Any]:
    """The dataset's counts from its index (every key by its latest record) and its shards."""
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


def run_stats(result: pd.DataFrame, seconds: float | None) -> dict[str, Any]:
    """One call's counts from its result frame, with its duration and ok rows per second."""
    counts = {str(k): int(v) for k, v in result["status"].value_counts().items()}
    return {
        "rows": len(result),
        "status": {s: counts.get(s, 0) for s in ("ok", "skipped", "error")},
        "seconds": None if seconds is None else round(seconds, 3),
        "ok_per_second": (
            round(counts.get("ok", 0) / seconds, 2) if seconds and seconds > 0 else None
        ),
    }
