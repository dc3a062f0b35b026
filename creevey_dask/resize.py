"""Bulk resizing of image files on any fsspec storage, keeping their filenames.

:func:`resize` runs over a pandas or dask DataFrame with a column of image paths
(``df.creevey.resize(...)`` is the same function); the original creevey's
:func:`~creevey_dask.original.resize_multiple_files` calls it over a plain list of paths.
It builds a
:class:`~creevey_dask.engine.pipeline.Pipeline` of: load (with a reduced-scale JPEG decode when
the resize allows it) → ``ops`` → the resize → reporters → write atomically, and return
the result table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import pandas as pd

from . import ops as _ops
from ._dask_types import require_frame
from ._keywords import moved_to, public_keywords
from .engine.pipeline import MOVED_RUN_KEYWORDS, Pipeline
from .engine.rows import as_ops
from .exceptions import require_columns
from .image.encode import ImageWriter
from .image.filters import FilterOptions, filter_options
from .image.formats import extension_for, format_name
from .image.loading import ImageLoader
from .options import RunOptions, run_options
from .sinks.shard_options import ShardOptions, refuse_outpath_func, shard_options
from .storage import fs as storage
from .storage.naming import safe_filename

__all__ = ["MEASURES", "MOVED_RESIZE_KEYWORDS", "KeepFilename", "resize"]

#: ``resize(measure=...)`` values: the result columns to add. ``"size"`` (``width`` and
#: ``height`` of the written image) is always reported; ``"mean_brightness"`` and
#: ``"dhash"`` measure the written image, ``"sha256"`` adds ``sha256`` and ``out_bytes``
#: of the written file.
MEASURES = ("size", "mean_brightness", "dhash", "sha256")


class KeepFilename:
    """``outpath_func`` that puts each source's filename into ``outdir``.

    The name is made by :func:`creevey_dask.storage.naming.safe_filename` (sanitised, at most
    255 bytes); two sources with one name are told apart by the engine
    (:mod:`creevey_dask.storage.naming`).

    Parameters
    ----------
    outdir : str
        A local folder or fsspec URL.
    extension : str, optional
        Replace the source's extension with this one (e.g. ``".jpg"``).

    Examples
    --------
    >>> KeepFilename("out", ".png")("s3://bucket/photos/cat.jpeg")
    'out/cat.png'
    """

    def __init__(self, outdir: str, extension: str | None = None) -> None:
        self.outdir = str(outdir)
        self.extension = extension

    def __call__(self, source: Any) -> str:
        text = os.fspath(source) if not isinstance(source, str) else source
        if not isinstance(text, str):
            raise TypeError(f"a source must be a path or URL string, got {source!r}")
        return storage.join(self.outdir, safe_filename(text.replace("\\", "/"), self.extension))

    def __repr__(self) -> str:
        return f"KeepFilename({self.outdir!r}, {self.extension!r})"


def _reporters(measure: Iterable[str]) -> tuple[list[Callable[[Any], Any]], bool]:
    if isinstance(measure, str):
        measure = [measure]
    names = ["size", *measure]  # width and height of the written image, always
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        raise ValueError(f"measure {unknown} is not a subset of {list(MEASURES)}")
    table = {
        "size": _ops.report_size,
        "mean_brightness": _ops.report_mean_brightness,
        "dhash": _ops.report_dhash,
    }
    chosen: list[Callable[[Any], Any]] = [
        cast(Callable[[Any], Any], table[n]) for n in MEASURES if n in names and n in table
    ]
    return chosen, "sha256" in names


def _resize_of(shape: Any, mode: str | None) -> _ops.Resize:
    """The resize that ``shape=`` and ``mode=`` ask for (``shape`` may be the op itself)."""
    if isinstance(shape, _ops.Resize):
        if mode is not None:
            raise ValueError(
                f"mode={mode!r} goes into the resize op: ops.resize(..., mode={mode!r})"
            )
        return shape
    if shape is None:
        raise ValueError(
            "give shape=: a square side (256), (height, width) with mode=, or a resize op "
            "such as ops.resize(max_dim=512) for the other ways to size an image"
        )
    return _ops.resize(shape, mode=mode)


#: Where resize()'s old keywords went: the resize op's, and the option objects' fields.
MOVED_RESIZE_KEYWORDS = {
    **MOVED_RUN_KEYWORDS,
    **moved_to("filters", FilterOptions),
    **{
        name: f"it is a keyword of ops.resize: pass shape=ops.resize(..., {name}=...)"
        for name in ("min_dim", "max_dim", "only_shrink", "resample", "fill", "reducing_gap")
    },
}


@public_keywords("resize", moved=MOVED_RESIZE_KEYWORDS)
def resize(
    df: pd.DataFrame | Any,
    outdir: str,
    path_col: str = "path",
    *,
    shape: Sequence[int] | int | _ops.Resize | None = None,
    mode: str | None = None,
    format: str | None = None,
    quality: int | None = None,
    ops: Sequence[Callable[[Any], Any]] | None = None,
    measure: Iterable[str] = (),
    outpath_func: Callable[[Any], str] | None = None,
    output_format: str | ShardOptions = "files",
    filters: FilterOptions | None = None,
    skip_existing: bool | None = None,
    progress: bool | None = None,
    options: RunOptions | None = None,
) -> pd.DataFrame | Any:
    """Resize the images whose paths are in ``df[path_col]`` into ``outdir``.

    Each output keeps its source's filename (with the extension of ``format`` if
    given). JPEGs are decoded at reduced scale when the resize allows it (never below
    twice the output size), and EXIF orientation is applied.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        One row per image; other columns are kept.
    outdir : str
        The output folder: a local path or fsspec URL (``s3://bucket/prefix``).
    path_col : str, default "path"
        The column of source paths (local or fsspec URLs). If it is a result column
        of an earlier run, such as the ``outpath`` of a download
        (``res.creevey.resize(outdir, path_col="outpath")``), it is renamed to
        ``"inpath"`` (``"inpath_1"``, ... if that is taken), and the earlier run's
        ``status`` and ``error`` (and any column this run adds: ``width``, ``height``,
        ...) are replaced by this run's. Rows whose earlier
        ``outpath`` is null become error rows (``UpstreamError`` with the earlier error).
    shape : int, (height, width) or a resize op
        The output size: a square side (``shape=256``), an exact ``(height, width)``
        shaped by ``mode``, or a :func:`creevey_dask.ops.resize` op for the other ways
        to size an image (``shape=ops.resize(max_dim=512, only_shrink=True)``:
        ``min_dim``, ``max_dim``, ``only_shrink``, ``resample``, ``fill``,
        ``reducing_gap``).
    mode : {"stretch", "cover", "fit", "pad", "contain"}, optional
        How an exact shape treats the aspect ratio; see :func:`creevey_dask.ops.resize`.
    format : str, optional
        Output format (``"jpeg"``, ``"png"``, ``"webp"``, ...); by default each file
        keeps its format.
    quality : int, optional
        JPEG/WebP quality, 1-100.
    ops : sequence of ops, optional
        Ops applied to the full image *before* the resize (e.g.
        ``[ops.trim_bottom(100)]``). Any op there turns the reduced decode off.
    measure : iterable of str, default ()
        More result columns, from :data:`MEASURES`: ``"mean_brightness"``, ``"dhash"``
        (of the written image) and ``"sha256"`` (``sha256``, ``out_bytes`` of the
        written file). ``"size"`` (``width``, ``height`` of the written image) is always
        reported.
    outpath_func : callable, optional
        Overrides the naming: ``outpath_func(source) -> str``; ``outdir`` is then
        unused. Files only: shards are named by the run.
    output_format : {"files", "webdataset", "parquet"} or ShardOptions, default "files"
        Write WebDataset or Parquet shards into ``outdir`` instead of files; as for
        :func:`creevey_dask.download` (see :class:`~creevey_dask.ShardOptions`).
    filters : FilterOptions, optional
        What each source must pass (its size, aspect ratio, the pixels its header
        declares, a known digest) and the digest to record of its bytes; see
        :class:`~creevey_dask.FilterOptions`.
    skip_existing, progress
        Shortcuts for the same :class:`~creevey_dask.RunOptions` fields: leaving
        existing outputs alone (``"skipped"``, the default; False rewrites them, e.g.
        after changing the size), a progress bar.
    options : RunOptions, optional
        All run settings (``n_jobs``, ``storage_options``, ``parallel_strategy``,
        ``npartitions``, ...); the shortcuts above, when given, override its fields.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        The input columns, then ``outpath``, ``status``, ``error``, ``width`` and
        ``height`` (of the written image; null on skipped and error rows) and the
        reported columns. Lazy for dask input.

    Raises
    ------
    ValueError
        For invalid resize arguments (listing what is allowed), an unknown format or
        measure name.
    ColumnError
        If ``path_col`` is missing.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from PIL import Image
    >>> tmp = tempfile.mkdtemp()
    >>> paths = [os.path.join(tmp, f"{i}.jpg") for i in range(3)]
    >>> for i, path in enumerate(paths):
    ...     Image.new("RGB", (320 + 40 * i, 240), "olive").save(path)
    >>> df = pd.DataFrame({"path": paths})
    >>> res = resize(df, os.path.join(tmp, "out"), shape=(64, 64), mode="cover", progress=False)
    >>> res[["status", "width", "height"]].astype(str).drop_duplicates().values.tolist()
    [['ok', '64', '64']]
    """
    resize_op = _resize_of(shape, mode)
    fmt = None if format is None else format_name(format)
    reporters, record_sha256 = _reporters(measure)
    user_ops = as_ops(ops)
    if not isinstance(outdir, (str, os.PathLike)) and outpath_func is None:
        raise TypeError(f"outdir must be a path or URL string, got {outdir!r}")
    opts = run_options(options, skip_existing=skip_existing, progress=progress)
    storage_options = opts.storage_options
    shards = shard_options(output_format)
    filters = filter_options(filters)
    loader = filters.wrap_loader(ImageLoader(storage_options, max_pixels=filters.max_pixels))
    pipeline = Pipeline(
        loader,
        ops=filters.wrap_ops([*user_ops, resize_op, *reporters]),
        write_func=ImageWriter(fmt, quality, storage_options, record_sha256=record_sha256),
    )

    require_frame(df)
    require_columns(df.columns, path_col=path_col)
    filters.check_columns(df.columns)
    refuse_outpath_func(shards, outpath_func)
    namer = outpath_func or KeepFilename(
        os.fspath(outdir), None if fmt is None else extension_for(fmt)
    )
    return pipeline.run(
        df, namer, inpath_col=path_col, output_format=shards or "files", options=opts
    )
