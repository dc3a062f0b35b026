"""The output formats of a run: their names and, per sharded format, its file and writer.

The one registry of the formats (:data:`FORMATS`): a sink looks its format up here,
for the extension of its shard files and the writer that commits a shard, rather than
branching on the format's name. ``"files"`` (one file per row, written by the engine)
has no entry: it writes no shards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from . import parquet, webdataset
from .spool import ShardRows

__all__ = ["FORMATS", "OUTPUT_FORMATS", "Format"]


class Format(NamedTuple):
    """A sharded output format: its shard files' extension and its writer."""

    ext: str  # of ``{shard}{ext}``, the shard's file
    write: Callable[[ShardRows], None]  # commits one shard (its records last)


#: The sharded formats by name: ``output_format`` → :class:`Format`.
FORMATS: dict[str, Format] = {
    "webdataset": Format(".tar", webdataset.write_shard),
    "parquet": Format(".parquet", parquet.write_shard),
}
#: The allowed values of ``output_format=``.
OUTPUT_FORMATS = ("files", *FORMATS)
