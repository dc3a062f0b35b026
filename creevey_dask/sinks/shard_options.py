"""How a run writes shards, in one small frozen object: :class:`ShardOptions`.

Every run takes ``output_format=``: ``"files"`` (the default, a file per row), a shard
format's name (``"webdataset"``, ``"parquet"``) for its defaults, or a
:class:`ShardOptions` for the rest (shard size, the columns stored with each sample, a
caption). :func:`shard_options` reads that one argument, once, at the entry point; the
layout of the shards is :mod:`creevey_dask.sinks.shards`'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from ..options import replace_fields
from .formats import FORMATS, OUTPUT_FORMATS

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "OUTPUT_FORMATS",
    "SHARD_FORMATS",
    "ShardOptions",
    "refuse_outpath_func",
    "shard_options",
]

#: The sharded formats (the names of the registry, :data:`~creevey_dask.sinks.formats.FORMATS`).
SHARD_FORMATS = tuple(FORMATS)
#: The most rows per shard by default.
DEFAULT_SHARD_SIZE = 1000


def check_shard_size(shard_size: Any) -> int:
    """``shard_size`` if it is a positive int; else the ValueError naming it."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive int, got {shard_size!r}")
    return shard_size


@dataclasses.dataclass(frozen=True)
class ShardOptions:
    """How a run writes shards: the format, rows per shard, what each sample stores.

    Immutable and picklable; ``shards.replace(shard_size=100)`` gives a changed copy.
    Pass it as ``output_format=`` to a run (``df.creevey.download(outdir,
    output_format=ShardOptions("webdataset", caption_col="caption"))``); a format's name
    alone (``output_format="webdataset"``) is ``ShardOptions(that format)``.

    Parameters
    ----------
    format : {"webdataset", "parquet"}, default "webdataset"
        ``"webdataset"``: tar shards (image, ``.json``, optional ``.txt`` per sample)
        with a records Parquet beside each; ``"parquet"``: Parquet shards with an HF
        ``Image`` column. See :mod:`creevey_dask.sinks.shards` for the layouts, keys,
        resume and the sample index.
    shard_size : int, default 1000
        The most rows per shard.
    carry_cols : sequence of str, optional
        The input columns stored with each sample (its JSON, its Parquet row); by
        default all input columns.
    caption_col : str, optional
        A column written as each WebDataset sample's ``{key}.txt``.

    Examples
    --------
    >>> ShardOptions("parquet", shard_size=500)
    ShardOptions(format='parquet', shard_size=500, carry_cols=None, caption_col=None)
    >>> ShardOptions("tar")
    Traceback (most recent call last):
    ...
    ValueError: the shard format 'tar' is not one of ['webdataset', 'parquet']
    """

    format: str = "webdataset"
    shard_size: int = DEFAULT_SHARD_SIZE
    carry_cols: tuple[str, ...] | None = None
    caption_col: str | None = None

    def __post_init__(self) -> None:
        if self.format not in SHARD_FORMATS:
            raise ValueError(
                f"the shard format {self.format!r} is not one of {list(SHARD_FORMATS)}"
            )
        check_shard_size(self.shard_size)
        carry: Any = self.carry_cols
        if carry is not None:
            carry = (carry,) if isinstance(carry, str) else tuple(_names(carry))
            object.__setattr__(self, "carry_cols", carry)
        if self.caption_col is not None and not isinstance(self.caption_col, str):
            raise TypeError(f"caption_col must be a column name, got {self.caption_col!r}")

    def replace(self, **changes: Any) -> ShardOptions:
        """A copy with ``changes`` applied (field names as in the constructor)."""
        return replace_fields(self, changes)


def _names(columns: Iterable[Any]) -> list[str]:
    if not isinstance(columns, Iterable):
        raise TypeError(f"carry_cols must be a list of column names, got {columns!r}")
    names = list(columns)
    odd = [c for c in names if not isinstance(c, str)]
    if odd:
        raise TypeError(f"carry_cols must be column names (str), got {odd!r}")
    return names


def shard_options(output_format: Any) -> ShardOptions | None:
    """The :class:`ShardOptions` that ``output_format=`` asks for; None for ``"files"``.

    Examples
    --------
    >>> shard_options("files") is None, shard_options("parquet").format
    (True, 'parquet')
    >>> shard_options("zip")
    Traceback (most recent call last):
    ...
    ValueError: output_format 'zip' is not one of ['files', 'webdataset', 'parquet'] or a creevey_dask.ShardOptions
    """  # noqa: E501
    if isinstance(output_format, ShardOptions):
        return output_format
    if output_format == "files":
        return None
    if isinstance(output_format, str) and output_format in SHARD_FORMATS:
        return ShardOptions(output_format)
    raise ValueError(
        f"output_format {output_format!r} is not one of {list(OUTPUT_FORMATS)} or a "
        "creevey_dask.ShardOptions"
    )


def refuse_outpath_func(
    shards: ShardOptions | None, outpath_func: Any, param: str = "outpath_func"
) -> None:
    """Refuse an outpath function (the caller's parameter ``param``) with a sharded
    output: it names files, and the run names its shards.

    Examples
    --------
    >>> refuse_outpath_func(ShardOptions(), str, "path_func")
    Traceback (most recent call last):
    ...
    ValueError: path_func= names files, but output_format='webdataset' writes shards, which the run names: give outdir= (the folder of the shards) instead
    """  # noqa: E501
    if shards is not None and outpath_func is not None:
        raise ValueError(
            f"{param}= names files, but output_format={shards.format!r} writes shards, "
            "which the run names: give outdir= (the folder of the shards) instead"
        )
