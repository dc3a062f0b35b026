"""The original creevey's functions, with its names and positional order.

:func:`download_images_as_png`, :func:`resize_multiple_files` and
:func:`create_imagenet_style_symlinks` are thin layers over :func:`~creevey_dask.download`,
:func:`~creevey_dask.resize.resize` and :func:`~creevey_dask.imagenet_symlinks`: their
first parameters are the original's, in its order, and every other keyword is the new
function's (taken from its signature, so no parameter list is written twice). See
``docs/from-creevey.md`` for what changed and why.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import numbers
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import ops
from ._dask_types import is_dask_frame
from ._keywords import extends, public_keywords
from .download import MOVED_DOWNLOAD_KEYWORDS, download, download_with
from .engine.runner import as_frame
from .exceptions import require_columns
from .layout.imagenet import imagenet_symlinks
from .options import run_options
from .resize import MOVED_RESIZE_KEYWORDS, resize
from .sinks.shard_options import shard_options
from .storage import fs as storage

if TYPE_CHECKING:
    import dask.dataframe as dd
    import numpy as np

__all__ = ["create_imagenet_style_symlinks", "download_images_as_png", "resize_multiple_files"]


def _resize_op(shape: Any) -> ops.Resize:
    """The op for ``resize_shape``: :func:`creevey_dask.ops.resize` to exactly (height, width).

    An int is a square; a resize op is itself (as ``resize_multiple_files``' ``shape``).
    The same op as ``resize(shape=...)``, so the same request gives the same pixels in a
    download and in a bulk resize.
    """
    if isinstance(shape, ops.Resize):
        return shape
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape, shape)
    if not (
        isinstance(shape, Sequence)
        and len(shape) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
    ):
        raise TypeError(
            f"resize_shape must be an int, (height, width) or a resize op "
            f"(ops.resize(max_dim=...)), got {shape!r}"
        )
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"resize_shape must be positive, got {shape!r}")
    return ops.resize(shape=(int(shape[0]), int(shape[1])))


class _WriteLog:
    """The original creevey's ``write_log_path``: a ``timestamp,url,local_path`` CSV row
    appended per written file (the header is written first if the file does not exist).

    A loader wrapper notes the URL of the row its thread is on; the writer wrapper
    appends the row after the file is committed. Local files only, as in the original.
    """

    HEADER = "timestamp,url,local_path\n"

    def __init__(self, path: Any) -> None:
        text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
        if not isinstance(text, str):
            raise TypeError(f"write_log_path must be a path, got {path!r}")
        if not text.endswith("csv"):
            raise ValueError(f"write_log_path must end with .csv, got {text!r}")
        if not storage.is_local(text):
            raise ValueError(f"write_log_path must be a local file, got {text!r}")
        self.path = os.path.abspath(text.removeprefix("file://"))
        self._state: Any = None

    def start(self) -> None:
        """Create the log with its header unless it exists (before the run)."""
        if not os.path.exists(self.path):
            with open(self.path, "w", encoding="utf-8") as log:
                log.write(self.HEADER)

    def _local(self) -> Any:
        if self._state is None:
            self._state = (threading.local(), threading.Lock())
        return self._state

    def note(self, url: Any) -> None:
        self._local()[0].url = url

    def append(self, outpath: str) -> None:
        here, lock = self._local()
        local_path = os.path.abspath(outpath.removeprefix("file://"))
        line = f"{datetime.datetime.now()},{getattr(here, 'url', '')},{local_path}\n"
        with lock, open(self.path, "a", encoding="utf-8") as log:
            log.write(line)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_state": None}

    def wrap(self, loader: Callable[..., Any], writer: Any) -> tuple[Callable[..., Any], Any]:
        """The download's loader and writer, logging to this file (created now, with its
        header, unless it exists: the run's arguments have been checked)."""
        self.start()
        return _LoggingLoader(loader, self), _LoggingWriter(writer, self)


class _LoggingLoader:
    """A loader that notes each row's URL for :class:`_WriteLog`."""

    accepts_draft = True

    def __init__(self, loader: Callable[..., Any], log: _WriteLog) -> None:
        self.loader: Any = loader
        self.log = log
        self.result_columns = loader.result_columns  # type: ignore[attr-defined]

    @property
    def verify_hash(self) -> tuple[str, str] | None:
        """The inner loader's ``verify_hash``, so that the run binds each partition's
        expected digests through this wrapper too."""
        return getattr(self.loader, "verify_hash", None)

    def with_expected(self, sources: Iterable[Any], digests: Iterable[Any]) -> _LoggingLoader:
        """As :meth:`~creevey_dask.sources.hashing.SourceHash.with_expected`, keeping the log."""
        return _LoggingLoader(self.loader.with_expected(sources, digests), self.log)

    def __call__(self, url: Any, draft: Any = None) -> Any:
        self.log.note(url)
        return self.loader(url, draft=draft)

    def for_processes(self, n: int, *, exact: bool = True) -> _LoggingLoader | None:
        """As :meth:`~creevey_dask.HttpLoader.for_processes`, keeping the log."""
        loader = self.loader.for_processes(n, exact=exact)
        return None if loader is None else _LoggingLoader(loader, self.log)


class _LoggingWriter:
    """A writer that appends a row to the :class:`_WriteLog` after each written file."""

    def __init__(self, writer: Any, log: _WriteLog) -> None:
        self.writer = writer
        self.log = log
        self.result_columns = writer.result_columns

    def encode_for(self, image: Any, outpath: str) -> tuple[bytes, str]:
        return self.writer.encode_for(image, outpath)

    def committed(self, outpath: str) -> None:
        """Called by the engine once the file is at ``outpath``: log it."""
        self.log.append(outpath)

    def __call__(self, image: Any, outpath: str) -> None:
        self.writer(image, outpath)
        self.log.append(outpath)


#: download()'s keywords that download_images_as_png fills itself, and what to do instead.
_SET_BY_DOWNLOAD_IMAGES_AS_PNG = {
    "df": "it is urls= here",
    "format": "download_images_as_png writes PNG (as the original creevey did): call "
    "creevey_dask.download(format=...) for another format",
    "quality": "PNG has no quality: call creevey_dask.download(format=..., quality=...) "
    "for JPEG or WebP",
    "ops": "pass resize_shape=, or call creevey_dask.download(ops=...) for other ops",
    "outpath_func": "it is path_func= here",
}

#: resize()'s keywords that resize_multiple_files fills itself, and what to do instead.
_SET_BY_RESIZE_MULTIPLE_FILES = {
    "df": "it is paths= here",
    "path_col": "paths= takes the paths themselves (a list or Series, e.g. df['file']); "
    "creevey_dask.resize.resize(df, outdir, path_col=...) takes a frame's column",
}


@public_keywords(
    "download_images_as_png", moved={**MOVED_DOWNLOAD_KEYWORDS, **_SET_BY_DOWNLOAD_IMAGES_AS_PNG}
)
@extends(download, exclude=tuple(_SET_BY_DOWNLOAD_IMAGES_AS_PNG))
def download_images_as_png(
    urls: Any,
    outdir: str | None = None,
    path_func: Callable[[str], str] | None = None,
    skip_existing: bool | None = None,
    write_log_path: str | None = None,
    n_jobs: int | None = None,
    resize_shape: int | tuple[int, int] | ops.Resize | None = None,
    **keywords: Any,
) -> Any:
    """Download images as PNG files, as in the original creevey; return the result table.

    The first seven parameters are the original creevey's, in its order; every other
    keyword is :func:`download`'s (``url_col=``, ``naming=``, ``http_options=``,
    ``filters=``, ``options=``, ...), with its defaults, and documented there;
    ``skip_existing`` and ``n_jobs`` are shortcuts for the same
    :class:`~creevey_dask.RunOptions` fields.

    Parameters
    ----------
    urls : list, pandas/dask Series or DataFrame
        The image URLs (for a DataFrame, in the column ``url_col``).
    outdir : str, optional
        The folder; each file is named after the URL's file name with a ``.png``
        extension (sanitised; see :func:`creevey_dask.storage.naming.safe_filename`). Must be
        None if ``path_func`` is given. With neither, the working directory.
    path_func : callable, optional
        ``path_func(url) -> outpath``, used instead of ``outdir``.
    skip_existing : bool, default True
        Do not download URLs whose file already exists.
    write_log_path : str, optional
        A local CSV file (its name ending in ``csv``) to which a
        ``timestamp,url,local_path`` row is appended for each file written (skipped and
        failed rows write none); created with that header if it does not exist. Files
        only: the shards of ``output_format=`` list their samples in their records.
    n_jobs : int, default 16
        Downloads in flight per partition.
    resize_shape : int, (height, width) or a resize op, optional
        Resize every image to this shape (an int for a square), or with this
        :func:`creevey_dask.ops.resize` op (``ops.resize(max_dim=512)``).

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        One row per URL with ``outpath``, ``status``, ``error``, ``http_status``,
        ``bytes``, ``attempts``, ``width`` and ``height``.

    Raises
    ------
    ValueError
        If both ``outdir`` and ``path_func`` are given, or ``write_log_path`` is not a
        local ``.csv`` file.
    """
    if outdir is not None and path_func is not None:
        raise ValueError(
            "give outdir= or path_func=, not both: path_func decides the whole output "
            f"path, so outdir={outdir!r} would be ignored"
        )
    if outdir is None and path_func is None:
        outdir = "."  # the original creevey's default: the working directory
    ops = [_resize_op(resize_shape)] if resize_shape is not None else None
    call = inspect.signature(download).bind(
        urls,
        outdir,
        format="png",
        ops=ops,
        outpath_func=path_func,
        skip_existing=skip_existing,
        n_jobs=n_jobs,
        **keywords,
    )
    call.apply_defaults()
    if write_log_path is None:
        return download_with(call.arguments, outpath_param="path_func")
    log = _WriteLog(write_log_path)  # started once download_with has checked the rest
    shards = shard_options(call.arguments["output_format"])
    if shards is not None:
        raise ValueError(
            f"write_log_path logs the files written, but output_format={shards.format!r} "
            "writes shards: their records (creevey_dask.read_shards) list each sample"
        )
    return download_with(call.arguments, log.wrap, outpath_param="path_func")


@public_keywords(
    "resize_multiple_files", moved={**MOVED_RESIZE_KEYWORDS, **_SET_BY_RESIZE_MULTIPLE_FILES}
)
@extends(resize, exclude=tuple(_SET_BY_RESIZE_MULTIPLE_FILES))
def resize_multiple_files(
    paths: Iterable[str] | pd.Series | Any,
    shape: Sequence[int] | int | ops.Resize | None,
    outdir: str,
    n_jobs: int | None = None,
    skip_existing: bool | None = None,
    **keywords: Any,
) -> pd.DataFrame | Any:
    """Resize image files into ``outdir``, keeping their filenames (the original creevey's API).

    The first five parameters are the original creevey's, in its order; every other
    keyword is :func:`resize`'s (``mode=``, ``format=``, ``ops=``, ``measure=``,
    ``options=``, ...), with its defaults, and documented there; ``n_jobs`` and
    ``skip_existing`` are shortcuts for the same :class:`~creevey_dask.RunOptions` fields.

    Parameters
    ----------
    paths : iterable of str, or a pandas/dask Series
        Local paths or fsspec URLs.
    shape : int, (height, width) or a resize op
        The output size, height first; as :func:`resize`'s ``shape`` (a
        :func:`creevey_dask.ops.resize` op for ``min_dim=``, ``max_dim=``, ...).
    outdir : str
        The output folder (local or fsspec URL).
    n_jobs : int, optional
        Rows in flight per partition (the :class:`~creevey_dask.RunOptions` field).
    skip_existing : bool, default True
        Leave existing outputs alone.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        A column ``path`` with the sources, then the result columns.
    """
    frame, _, _ = as_frame(paths, "path", what="paths", noun="path", param="path_col")
    keywords["options"] = run_options(keywords.get("options"), n_jobs=n_jobs)
    return resize(frame, outdir, "path", shape=shape, skip_existing=skip_existing, **keywords)


#: The original creevey's own order of create_imagenet_style_symlinks' parameters after df.
_ORIGINAL_ORDER = (
    "valid_size",
    "outdir",
    "label_colname",
    "path_colname",
    "groupby_colname",
    "random_state",
)


def _in_either_order(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func(df, label_colname, path_colname, valid_size, outdir, ...)`` also called in
    the original creevey's order ``(df, valid_size, outdir, label_colname, ...)``.

    That order starts with a size where the documented one has a column name, and then
    either has a path where the documented one has a size, or names the columns by
    keyword: a size is never a str, so this is unambiguous.
    """

    @functools.wraps(func)
    def call(df: Any, *args: Any, **kwargs: Any) -> Any:
        sized = bool(args) and isinstance(args[0], numbers.Real) and not isinstance(args[0], bool)
        original = sized and (
            (len(args) >= 3 and isinstance(args[2], (str, os.PathLike)))
            or not {"label_colname", "path_colname"}.isdisjoint(kwargs)
        )
        if original and len(args) <= len(_ORIGINAL_ORDER):
            named = dict(zip(_ORIGINAL_ORDER, args, strict=False))
            twice = sorted(set(named) & set(kwargs))
            if twice:
                raise TypeError(
                    f"create_imagenet_style_symlinks() got multiple values for {twice} (in "
                    f"the original creevey's order: (df, {', '.join(_ORIGINAL_ORDER)}))"
                )
            return func(df, **named, **kwargs)
        return func(df, *args, **kwargs)

    return call


@public_keywords("create_imagenet_style_symlinks")
@_in_either_order
@extends(
    imagenet_symlinks,
    exclude=("df", "outdir", "label_col", "valid_size", "path_col", "groupby", "random_state"),
)
def create_imagenet_style_symlinks(
    df: pd.DataFrame | dd.DataFrame,
    label_colname: str,
    path_colname: str,
    valid_size: int | float,
    outdir: str | os.PathLike[str],
    groupby_colname: str | None = None,
    random_state: int | np.random.Generator | None = None,
    **keywords: Any,
) -> pd.DataFrame:
    """The original creevey's :func:`imagenet_symlinks`, with its parameter names.

    ``create_imagenet_style_symlinks(df, label_colname, path_colname, valid_size,
    outdir, groupby_colname, random_state)`` is ``imagenet_symlinks(df, outdir,
    label_col=label_colname, path_col=path_colname, valid_size=valid_size,
    groupby=groupby_colname, random_state=random_state)``; the keyword-only parameters
    are :func:`imagenet_symlinks`'s. The original's own positional order,
    ``(df, valid_size, outdir, label_colname, path_colname, ...)``, is recognised too,
    with the columns positional or by keyword (a size is never a str), so code written
    for it does what it did. A float
    ``valid_size`` gives at least that proportion (rounded up), as the original did.

    Returns
    -------
    pandas.DataFrame
        The manifest (the original returned None).

    Examples
    --------
    >>> import os, pathlib, shutil, tempfile, pandas as pd
    >>> tmp = tempfile.mkdtemp()
    >>> paths = [os.path.join(tmp, f"{i}.jpg") for i in range(4)]
    >>> for p in paths:
    ...     _ = pathlib.Path(p).write_bytes(b"not really a jpeg")
    >>> df = pd.DataFrame({"path": paths, "label": ["cat", "cat", "dog", "dog"]})
    >>> manifest = create_imagenet_style_symlinks(
    ...     df, "label", "path", valid_size=1, outdir=os.path.join(tmp, "tree"), random_state=0
    ... )
    >>> manifest["split"].value_counts().to_dict()
    {'train': 3, 'valid': 1}
    >>> shutil.rmtree(tmp)
    """
    if isinstance(df, pd.DataFrame) or is_dask_frame(df):  # name the columns as the caller did
        require_columns(
            df.columns,
            label_colname=label_colname,
            path_colname=path_colname,
            groupby_colname=groupby_colname,
        )
    return imagenet_symlinks(
        df,
        outdir,
        label_col=label_colname,
        valid_size=valid_size,
        path_col=path_colname,
        groupby=groupby_colname,
        random_state=random_state,
        **keywords,
    )
