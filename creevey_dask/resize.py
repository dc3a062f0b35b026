"""Bulk resizing of image files on any fsspec storage, keeping their filenames.

:func:`resize` runs over a pandas or dask DataFrame with a column of image paths
(``df.creevey.resize(...)`` is the same function); :func:`resize_multiple_files` is the
original creevey's entry point, over a plain list of paths. Both build a
:class:`~creevey_dask.engine.pipeline.Pipeline` of: load (with a reduced-scale JPEG decode when
the resize allows it) → ``ops`` → the resize → reporters → write atomically, and return
the result table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import pandas as pd

from . import ops as _ops
from ._dask_types import require_frame
from ._keywords import extends, public_keywords
from .engine.pipeline import Pipeline
from .engine.rows import as_ops
from .engine.runner import as_frame, run_pipeline
from .exceptions import require_columns
from .image.decode import DEFAULT_MAX_PIXELS
from .image.encode import ImageWriter
from .image.filters import make_filter
from .image.formats import extension_for, format_name
from .image.loading import ImageLoader
from .options import RunOptions, run_options
from .sinks.shards import Sink
from .sources.hashing import check_verify_column, with_source_hash
from .storage import fs as storage
from .storage.naming import safe_filename

__all__ = ["MEASURES", "KeepFilename", "resize", "resize_multiple_files"]

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


@public_keywords("resize")
def resize(
    df: pd.DataFrame | Any,
    outdir: str,
    path_col: str = "path",
    *,
    shape: Sequence[int] | int | None = None,
    min_dim: int | None = None,
    max_dim: int | None = None,
    mode: str | None = None,
    only_shrink: bool = False,
    resample: str = "lanczos",
    fill: Any = None,
    reducing_gap: float | None = 2.0,
    format: str | None = None,
    quality: int | None = None,
    ops: Sequence[Callable[[Any], Any]] | None = None,
    measure: Iterable[str] = (),
    outpath_func: Callable[[Any], str] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    n_jobs: int | None = None,
    skip_existing: bool | None = None,
    progress: bool | None = None,
    storage_options: Mapping[str, Any] | None = None,
    parallel_strategy: str | None = None,
    npartitions: int | None = None,
    output_format: str = "files",
    shard_size: int = 1000,
    carry_cols: Iterable[str] | None = None,
    caption_col: str | None = None,
    min_image_size: int | None = None,
    max_image_area: int | None = None,
    max_aspect_ratio: float | None = None,
    compute_hash: str | None = None,
    verify_hash: tuple[str, str] | None = None,
    options: RunOptions | None = None,
) -> pd.DataFrame | Any:
    """Resize the images whose paths are in ``df[path_col]`` into ``outdir``.

    Give exactly one of ``shape=(height, width)``, ``min_dim=`` or ``max_dim=`` (see
    :func:`creevey_dask.ops.resize`). Each output keeps its source's filename (with the
    extension of ``format`` if given). JPEGs are decoded at reduced scale when the
    resize allows it (never below twice the output size), and EXIF orientation is
    applied.

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
    shape, min_dim, max_dim, mode, only_shrink, resample, fill, reducing_gap
        The resize; see :func:`creevey_dask.ops.resize`.
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
        unused.
    max_pixels : int or None
        Refuse images whose header declares more pixels (decompression bombs).
    n_jobs, skip_existing, progress, storage_options, parallel_strategy, npartitions
        Shortcuts for the same :class:`~creevey_dask.RunOptions` fields: rows in flight
        per partition, leaving existing outputs alone (``"skipped"``, the default), a
        progress bar, fsspec options for reading and writing, the local scheduler
        (default ``"auto"``: a process per core for tables of 200 rows or more,
        else threads; see :class:`~creevey_dask.Pipeline`), tasks for pandas input.
    options : RunOptions, optional
        All run settings; the shortcuts above, when given, override its fields.
    output_format, shard_size, carry_cols, caption_col
        Write WebDataset or Parquet shards into ``outdir`` instead of files; as for
        :func:`creevey_dask.download` (see :mod:`creevey_dask.sinks.shards`).
    min_image_size, max_image_area, max_aspect_ratio, compute_hash, verify_hash
        Filters on the source image's size and hashes of the source file's bytes;
        as for :func:`creevey_dask.download`.

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
    resize_op = _ops.resize(
        shape,
        min_dim=min_dim,
        max_dim=max_dim,
        mode=mode,
        only_shrink=only_shrink,
        resample=resample,
        fill=fill,
        reducing_gap=reducing_gap,
    )
    fmt = None if format is None else format_name(format)
    reporters, record_sha256 = _reporters(measure)
    user_ops = as_ops(ops)
    if not isinstance(outdir, (str, os.PathLike)) and outpath_func is None:
        raise TypeError(f"outdir must be a path or URL string, got {outdir!r}")
    opts = run_options(
        options,
        n_jobs=n_jobs,
        skip_existing=skip_existing,
        progress=progress,
        storage_options=storage_options,
        parallel_strategy=parallel_strategy,
        npartitions=npartitions,
    )
    storage_options = opts.storage_options

    sharded = output_format != "files"
    sink = Sink(
        output_format,
        os.fspath(outdir) if sharded else None,
        shard_size,
        carry_cols,
        caption_col,
        storage_options,
        verify_hash,
    )
    loader = with_source_hash(
        ImageLoader(storage_options, max_pixels=max_pixels), compute_hash, verify_hash
    )
    all_ops = make_filter(
        [*user_ops, resize_op, *reporters], min_image_size, max_image_area, max_aspect_ratio
    )
    pipeline = Pipeline(
        loader,
        ops=all_ops,
        write_func=ImageWriter(fmt, quality, storage_options, record_sha256=record_sha256),
    )

    require_frame(df)
    require_columns(df.columns, path_col=path_col)
    check_verify_column(df.columns, verify_hash)
    if outpath_func is None:
        outpath_func = KeepFilename(os.fspath(outdir), None if fmt is None else extension_for(fmt))
    return run_pipeline(pipeline, df, outpath_func, path_col, options=opts, sink=sink)


@public_keywords("resize_multiple_files")
@extends(resize, exclude=("df", "path_col"))
def resize_multiple_files(
    paths: Iterable[str] | pd.Series | Any,
    shape: Sequence[int] | None,
    outdir: str,
    n_jobs: int | None = None,
    skip_existing: bool | None = None,
    **keywords: Any,
) -> pd.DataFrame | Any:
    """Resize image files into ``outdir``, keeping their filenames (the original creevey's API).

    The first five parameters are the original creevey's, in its order; every other
    keyword is :func:`resize`'s (``min_dim=``, ``mode=``, ``format=``, ``ops=``,
    ``measure=``, ``options=``, ...), with its defaults.

    Parameters
    ----------
    paths : iterable of str, or a pandas/dask Series
        Local paths or fsspec URLs.
    shape : (height, width) or None
        The output shape, height first. None if ``min_dim=`` or ``max_dim=`` is given.
    outdir : str
        The output folder (local or fsspec URL).
    n_jobs : int, optional
        Rows in flight per partition.
    skip_existing : bool, default True
        Leave existing outputs alone.
    **keywords
        The other keywords of :func:`resize`.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        A column ``path`` with the sources, then the result columns.
    """
    frame, _, _ = as_frame(paths, "path", what="paths", noun="path", param="path_col")
    return resize(
        frame, outdir, "path", shape=shape, n_jobs=n_jobs, skip_existing=skip_existing, **keywords
    )
