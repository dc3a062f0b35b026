"""A worked example dataset: images listed in a table of URLs, built end to end.

:class:`UrlListDataset` shows the pieces composing: :class:`~creevey_dask.BaseDataset`
(raw → processed, idempotent builds), :func:`~creevey_dask.download` into ``raw/``,
:func:`~creevey_dask.resize.resize` chained on the download's ``outpath`` into
``processed/``, and :func:`~creevey_dask.imagenet_symlinks` for the
train/valid folders. Copy it as a starting point for datasets of your own.

The layout it builds::

    <base_dir>/raw/urls.parquet            the table of URLs, as received
    <base_dir>/raw/images/                 the downloads (PNG, collision-free names)
    <base_dir>/raw/download.parquet        the download's result table
    <base_dir>/processed/images/           the resized images
    <base_dir>/processed/resize.parquet    the resize's result table
    <base_dir>/processed/imagenet/{train,valid}/<label>/   links (local) or copies
"""

from __future__ import annotations

import inspect
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .._keywords import check_keywords
from ..download import download
from ..exceptions import require_columns
from ..layout.imagenet import imagenet_symlinks
from ..options import RunOptions, run_options
from ..resize import resize
from ..storage import fs as storage
from .base import BaseDataset

__all__ = ["UrlListDataset"]

#: What UrlListDataset passes to download() itself (its own parameters aside).
_SET_BY_THE_DATASET = {
    "df": "the dataset downloads its urls_table",
    "outdir": "the dataset downloads into raw/images",
    "naming": "UrlListDataset names the downloads url_hash (collision-free names, which "
    "the resize keeps)",
}
#: The keywords **download_kwargs may hold: download()'s but those the dataset sets.
_DOWNLOAD_KEYWORDS = frozenset(inspect.signature(download).parameters) - {
    *_SET_BY_THE_DATASET,
    "url_col",  # the dataset's own parameters, never in **download_kwargs
    "progress",
}
_MOVED_KEYWORDS = {**getattr(download, "moved_keywords", {}), **_SET_BY_THE_DATASET}


class UrlListDataset(BaseDataset):
    """Images listed in a table of URLs with labels, downloaded, resized and split.

    ``get_raw`` saves the table as ``raw/urls.parquet``, downloads the images into
    ``raw/images`` and saves the download's result table as ``raw/download.parquet``.
    Rows whose download fails are kept there as error rows; they do not fail the
    build. ``process`` resizes the downloaded images into ``processed/images`` (the
    failed rows stay error rows), saves that result table as
    ``processed/resize.parquet`` and lays the resized images out as
    ``processed/imagenet/{train,valid}/<label>/``: symlinks for a local ``base_dir``,
    copies elsewhere.

    A second :meth:`build` downloads nothing (``get_raw`` completed) and resizes nothing
    (existing outputs are ``skipped``); only the cheap train/valid tree is laid out
    again. ``build(force=True)`` downloads everything again, failed rows included.

    Parameters
    ----------
    base_dir : str or os.PathLike
        The dataset's folder: a local path or any fsspec URL (``memory://pets``, ...).
    urls_table : str or pandas.DataFrame
        The table of URLs: a DataFrame, or the path or fsspec URL of a Parquet
        (``.parquet``/``.pq``) or CSV (``.csv``) file, read by ``get_raw``.
    url_col, label_col : str
        The columns holding each image's URL and label.
    shape : (int, int)
        The processed images' ``(height, width)``.
    mode : str, default "cover"
        How the aspect ratio is treated; see :func:`creevey_dask.ops.resize`.
    valid_size : int or float, default 0.2
        The share (float) or number (int) of images in ``valid``.
    random_state : int, default 0
        The seed of the train/valid split.
    storage_options : mapping, optional
        fsspec options for ``base_dir`` (and for ``urls_table`` when it is a path).
    progress : bool, default False
        Progress bars for the download and the resize.
    **download_kwargs
        Passed to :func:`creevey_dask.download` (``http_options=HttpOptions(...)``,
        ``filters=``, ``format``, ``n_jobs``, ``options=RunOptions(...)``, ...), checked
        when the dataset is made. An ``options`` given here keeps its fields, but
        ``progress`` (and ``storage_options``, when given) above override theirs.

    Examples
    --------
    Two images on a loopback server, one URL that fails:

    >>> import io, tempfile
    >>> import pandas as pd
    >>> from PIL import Image
    >>> from creevey_dask.testing import ImageServer
    >>> def jpeg(colour):
    ...     buffer = io.BytesIO()
    ...     Image.new("RGB", (80, 60), colour).save(buffer, "JPEG")
    ...     return buffer.getvalue()
    >>> server = ImageServer({"cat.jpg": jpeg("orange"), "dog.jpg": jpeg("brown")}).start()
    >>> urls = pd.DataFrame({
    ...     "url": [server.url(f"/img/{n}") for n in ("cat.jpg", "dog.jpg", "cow.jpg")],
    ...     "label": ["cat", "dog", "cow"],
    ... })
    >>> ds = UrlListDataset(tempfile.mkdtemp(), urls, shape=(32, 32), valid_size=1).build()
    >>> ds.download_result()[["label", "status", "error"]]
      label status                          error
    0   cat     ok                           <NA>
    1   dog     ok                           <NA>
    2   cow  error  HttpError: HTTP 404 Not Found
    >>> sorted(ds.manifest()["split"])
    ['train', 'valid']
    >>> server.stop()
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        urls_table: str | pd.DataFrame,
        url_col: str = "url",
        label_col: str = "label",
        shape: Sequence[int] = (224, 224),
        *,
        mode: str = "cover",
        valid_size: int | float = 0.2,
        random_state: int = 0,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = False,
        **download_kwargs: Any,
    ) -> None:
        super().__init__(base_dir, storage_options)
        if isinstance(urls_table, pd.DataFrame):
            require_columns(urls_table.columns, "urls_table", url_col=url_col, label_col=label_col)
        elif not isinstance(urls_table, (str, os.PathLike)):
            raise TypeError(
                "urls_table must be a pandas DataFrame or the path of a Parquet or CSV "
                f"file, got {type(urls_table).__name__}"
            )
        elif not _reader(os.fspath(urls_table)):
            raise ValueError(
                f"urls_table {os.fspath(urls_table)!r} is neither a .parquet/.pq nor a .csv "
                "file; read it into a DataFrame yourself and pass that"
            )
        if len(shape) != 2:
            raise ValueError(f"shape must be (height, width), got {shape!r}")
        self.urls_table = urls_table
        self.url_col = url_col
        self.label_col = label_col
        self.shape = (int(shape[0]), int(shape[1]))
        self.mode = mode
        self.valid_size = valid_size
        self.random_state = random_state
        self.progress = progress
        check_keywords("UrlListDataset", download_kwargs, _DOWNLOAD_KEYWORDS, _MOVED_KEYWORDS)
        self.download_kwargs = download_kwargs

    # -- where things go ---------------------------------------------------------------

    @property
    def imagenet_dir(self) -> str:
        """``processed/imagenet``: the ``train``/``valid`` folders."""
        return storage.join(self.processed_dir, "imagenet")

    # -- the two steps -----------------------------------------------------------------

    def get_raw(self) -> None:
        """Save the URL table and download its images into ``raw/``."""
        table = self._read_urls()
        self._write_parquet(table, storage.join(self.raw_dir, "urls.parquet"))
        kwargs = dict(self.download_kwargs)
        options = run_options(
            kwargs.pop("options", None),
            progress=self.progress,
            storage_options=self.storage_options,
        )
        result = download(
            table,
            storage.join(self.raw_dir, "images"),
            url_col=self.url_col,
            naming="url_hash",  # collision-free names: resize keeps filenames
            options=options,
            **kwargs,
        )
        self._write_parquet(result, storage.join(self.raw_dir, "download.parquet"))

    def process(self) -> None:
        """Resize the downloads into ``processed/images`` and lay out train/valid folders."""
        resized = resize(
            self.download_result(),
            storage.join(self.processed_dir, "images"),
            path_col="outpath",  # kept as "inpath"; failed downloads stay error rows
            shape=self.shape,
            mode=self.mode,
            options=RunOptions(progress=self.progress, storage_options=self.storage_options),
        )
        self._write_parquet(resized, storage.join(self.processed_dir, "resize.parquet"))
        fs, tree = self._fs_path(self.imagenet_dir)
        fs.invalidate_cache(tree)
        if fs.exists(tree):  # laid out again on every build: it needs an empty folder
            fs.rm(tree, recursive=True)
        imagenet_symlinks(  # keeps "ok" and "skipped" rows: a rebuild's are "skipped"
            resized,
            self.imagenet_dir,
            label_col=self.label_col,
            valid_size=self.valid_size,
            random_state=self.random_state,
            link="symlink" if storage.is_local(self.base_dir) else "copy",
            storage_options=self.storage_options,
        )

    # -- the result tables -------------------------------------------------------------

    def download_result(self) -> pd.DataFrame:
        """The download's result table (``raw/download.parquet``)."""
        return self._read_parquet(storage.join(self.raw_dir, "download.parquet"))

    def resize_result(self) -> pd.DataFrame:
        """The resize's result table (``processed/resize.parquet``)."""
        return self._read_parquet(storage.join(self.processed_dir, "resize.parquet"))

    def manifest(self) -> pd.DataFrame:
        """The train/valid tree's manifest (``processed/imagenet/manifest.csv``)."""
        data = storage.read_bytes(
            storage.join(self.imagenet_dir, "manifest.csv"), self.storage_options
        )
        return pd.read_csv(io.BytesIO(data), dtype="string")

    # -- helpers -----------------------------------------------------------------------

    def _read_urls(self) -> pd.DataFrame:
        if isinstance(self.urls_table, pd.DataFrame):
            return self.urls_table
        path = os.fspath(self.urls_table)
        table = _reader(path)(
            io.BytesIO(storage.read_bytes(path, self.storage_options))  # type: ignore[misc]
        )
        require_columns(table.columns, repr(path), url_col=self.url_col, label_col=self.label_col)
        return table

    def _write_parquet(self, frame: pd.DataFrame, path: str) -> None:
        storage.write_bytes_atomic(path, frame.to_parquet(index=False), self.storage_options)

    def _read_parquet(self, path: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(storage.read_bytes(path, self.storage_options)))


def _reader(path: str) -> Any:
    name = path.lower()
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet
    if name.endswith(".csv"):
        return pd.read_csv
    return None
