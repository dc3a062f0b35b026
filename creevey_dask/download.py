"""Download images from a table of URLs: :func:`download`.

A download is a :class:`~creevey_dask.engine.pipeline.Pipeline` whose loader is an
:class:`HttpLoader` (:func:`creevey_dask.sources.http.fetch`, then decode) and whose writer is
a :class:`DownloadWriter` (encode as PNG, JPEG or WebP, or write the bytes as received).
The result table has, besides ``outpath``/``status``/``error``:

==============  =======  ======================================================
``http_status``  Int64   the last HTTP status seen (also on error rows)
``bytes``        Int64   body bytes received (on error rows: until the failure)
``attempts``     Int64   HTTP attempts made (0 when the URL was refused up front)
``width``        Int64   width of the written image
``height``       Int64   height of the written image
==============  =======  ======================================================

Resume and retry: a rerun with ``skip_existing=True`` downloads nothing already on
disk, and ``download(result[result.status == "error"], ...)`` retries just the failed
rows (the old result columns are replaced).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import pandas as pd
from PIL import Image

from ._keywords import moved_to, public_keywords
from .engine.pipeline import MOVED_RUN_KEYWORDS, Pipeline
from .engine.rows import as_ops, record
from .engine.runner import as_frame
from .exceptions import ImageDecodeError
from .image.decode import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_ROW_BYTES,
    check_max_pixels,
    decode_image,
)
from .image.encode import ImageWriter
from .image.filters import FilterOptions, filter_options
from .image.formats import extension_for, format_name
from .options import RunOptions, run_options
from .sinks.shard_options import ShardOptions, refuse_outpath_func, shard_options
from .sources.http import HttpOptions, fetch
from .storage import fs as storage
from .storage.naming import check_naming, make_namer

__all__ = [
    "DOWNLOAD_FORMATS",
    "DownloadWriter",
    "Downloaded",
    "HttpLoader",
    "MOVED_DOWNLOAD_KEYWORDS",
    "download",
    "download_with",
]

logger = logging.getLogger(__name__)

#: The allowed values of ``format=``; ``"original"`` writes the bytes as received.
DOWNLOAD_FORMATS = ("png", "jpeg", "webp", "original")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
#: Pillow's count of what a truncated file lacked: one cause, whatever the count.
_UNPROCESSED = re.compile(r" \(\d+ bytes not processed\)")


class Downloaded:
    """The bytes of a response and the image they decode to (for ``format="original"``)."""

    __slots__ = ("data", "image")

    def __init__(self, data: bytes, image: Image.Image) -> None:
        self.data = data
        self.image = image

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


class HttpLoader:
    """Load an image from an http(s) URL: a picklable loader for a :class:`Pipeline`.

    Records ``http_status``, ``bytes`` and ``attempts`` for every row, failed or not.

    Parameters
    ----------
    options : HttpOptions, optional
        Timeouts, retries, politeness and safety settings.
    keep_bytes : bool, default False
        Return a :class:`Downloaded` (bytes and image) instead of the image, for
        writing the bytes as received. The image is then decoded at full size.
    max_row_bytes : int or None, default DEFAULT_MAX_ROW_BYTES (512 MiB)
        The memory budget of a row (see :func:`creevey_dask.decode_image`).
    max_pixels : int or None, default DEFAULT_MAX_PIXELS
        Refuse images whose header declares more pixels (decompression bombs).
    """

    accepts_draft = True
    result_columns: Mapping[str, str] = {
        "http_status": "Int64",
        "bytes": "Int64",
        "attempts": "Int64",
    }

    def __init__(
        self,
        options: HttpOptions | None = None,
        keep_bytes: bool = False,
        *,
        max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        if options is not None and not isinstance(options, HttpOptions):
            raise TypeError(f"options must be a creevey_dask.HttpOptions, got {options!r}")
        self.options = options or HttpOptions()
        self.keep_bytes = bool(keep_bytes)
        self.max_row_bytes = max_row_bytes
        self.max_pixels = check_max_pixels(max_pixels)

    def __call__(self, url: Any, draft: Any = None) -> Image.Image | Downloaded:
        try:
            result = fetch(url, self.options)
        except Exception as err:
            record(
                http_status=getattr(err, "status", None),
                bytes=getattr(err, "nbytes", None),
                attempts=getattr(err, "attempts", 0),
            )
            raise
        body = result.body
        record(http_status=result.status, bytes=len(body), attempts=result.attempts)
        try:
            image = decode_image(
                body,
                url,
                draft=None if self.keep_bytes else draft,
                max_row_bytes=self.max_row_bytes,
                max_pixels=self.max_pixels,
            )
        except ImageDecodeError as err:
            if type(err) is not ImageDecodeError:  # a subclass (e.g. ImageTooLargeError) says it
                raise
            # name what the server sent, without the URL (it is in the row), object
            # addresses or its length (the bytes column has it), so that the run summary
            # and error.value_counts() group identical failures
            text = str(err)
            prefix = f"cannot decode {url!r}: "
            cause = text[len(prefix) :] if text.startswith(prefix) else text
            cause = _UNPROCESSED.sub("", _ADDRESS.sub("", cause))
            kind = result.content_type or "no Content-Type"
            raise ImageDecodeError(
                f"the response ({kind}) is not an image Pillow can decode: {cause}"
            ) from err
        return Downloaded(body, image) if self.keep_bytes else image

    def for_processes(self, n: int, *, exact: bool = True) -> HttpLoader | None:
        """This loader for each of ``n`` worker processes that share its per-host limits
        (:meth:`creevey_dask.HttpOptions.for_processes`); None where they cannot be
        shared exactly and ``exact=True``."""
        options = self.options.for_processes(n, exact=exact)
        if options is None:
            return None
        if options is self.options:
            return self
        shared = copy.copy(self)
        shared.options = options
        return shared

    def __repr__(self) -> str:
        return f"HttpLoader({self.options!r}, keep_bytes={self.keep_bytes!r})"


class DownloadWriter:
    """Write a downloaded image atomically and record its ``width`` and ``height``.

    Parameters
    ----------
    format : {"png", "jpeg", "webp", "original"}
        The output format; ``"original"`` writes the bytes as received (the loader
        must then be ``HttpLoader(keep_bytes=True)``).
    quality : int, optional
        Encoder quality for JPEG and WebP.
    storage_options : mapping, optional
        fsspec options for remote outputs.
    """

    result_columns: Mapping[str, str] = {"width": "Int64", "height": "Int64"}

    def __init__(
        self,
        format: str = "png",
        quality: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.format = _check_format(format)
        self.storage_options = dict(storage_options or {})
        self.encoder = (
            None
            if self.format == "original"
            else ImageWriter(self.format, quality=quality, storage_options=storage_options)
        )

    def encode_for(self, image: Image.Image | Downloaded, outpath: str) -> tuple[bytes, str]:
        """``(bytes, Pillow format)`` of what would be written to ``outpath``.

        Records the image's ``width`` and ``height``; the engine commits the bytes.
        """
        if isinstance(image, Downloaded):
            if self.encoder is None:
                data, fmt = image.data, str(image.image.format or "")
            else:
                data, fmt = self.encoder.encode_for(image.image, outpath)
        elif self.encoder is None:
            raise TypeError(
                "format='original' writes the downloaded bytes, but the image was changed "
                "by ops; use another format to write processed images"
            )
        else:
            data, fmt = self.encoder.encode_for(image, outpath)
        width, height = image.size
        record(width=width, height=height)
        return data, fmt

    def __call__(self, image: Image.Image | Downloaded, outpath: str) -> None:
        data, _ = self.encode_for(image, outpath)
        storage.write_bytes_atomic(outpath, data, self.storage_options)

    def __repr__(self) -> str:
        return f"DownloadWriter(format={self.format!r}, encoder={self.encoder!r})"


def _check_format(format: Any) -> str:
    """``format`` as one of :data:`DOWNLOAD_FORMATS` (the spellings are
    :func:`~creevey_dask.image.formats.format_name`'s: ``"jpg"`` is ``"jpeg"``)."""
    if isinstance(format, str) and format.lower() == "original":
        return "original"
    try:
        fmt: str | None = format_name(format).lower()
    except (TypeError, ValueError):
        fmt = None
    if fmt not in DOWNLOAD_FORMATS:
        raise ValueError(f"format {format!r} is not one of {list(DOWNLOAD_FORMATS)}")
    return fmt


#: Where download()'s old keywords went: the fields of its option objects.
MOVED_DOWNLOAD_KEYWORDS = {
    **MOVED_RUN_KEYWORDS,
    **moved_to("http_options", HttpOptions),
    **moved_to("filters", FilterOptions),
    "timeout": (
        "pass http_options=HttpOptions(connect_timeout=..., read_timeout=...) "
        "(or HttpOptions().replace(timeout=...) for both)"
    ),
}


@public_keywords("download", moved=MOVED_DOWNLOAD_KEYWORDS)
def download(
    df: Any,
    outdir: str | None,
    url_col: str = "url",
    format: str = "jpeg",
    ops: Iterable[Callable[[Any], Any]] | None = None,
    naming: str = "url",
    *,
    outpath_func: Callable[[str], str] | None = None,
    quality: int | None = 95,
    output_format: str | ShardOptions = "files",
    filters: FilterOptions | None = None,
    http_options: HttpOptions | None = None,
    n_jobs: int | None = None,
    skip_existing: bool | None = None,
    progress: bool | None = None,
    options: RunOptions | None = None,
) -> Any:
    """Download the images at ``df[url_col]`` into ``outdir``; return the result table.

    Parameters
    ----------
    df : pandas/dask DataFrame, Series, or list of URLs
        The URLs (http or https), one row each. Other columns are kept.
    outdir : str
        The folder (local path or fsspec URL such as ``s3://bucket/images``).
    url_col : str, default "url"
        The column of ``df`` holding the URLs.
    format : {"jpeg", "png", "webp", "original"}, default "jpeg"
        The output format. JPEG at quality 95 is the default, as in img2dataset: a
        PNG of a photo is 3-6 times larger (:func:`download_images_as_png` writes PNG,
        as the original creevey did). ``"original"`` writes the bytes as received,
        after checking that they decode (no ops allowed), keeping the URL's extension.
    ops : list of callables, optional
        Image ops applied before writing (e.g. from :mod:`creevey_dask.ops`). If the
        first op has a ``draft_size`` method, JPEGs are decoded at a reduced scale.
    naming : {"url", "url_hash", "hash"}, default "url"
        How outpaths are made; see :mod:`creevey_dask.storage.naming`. A URL whose file name
        is taken by a different URL (in this table or by an earlier run into the same
        folder) gets ``<name>_<16 hex digits of its sha256>.<ext>``: never an error
        row, never an overwrite.
    outpath_func : callable, optional
        ``outpath_func(url) -> outpath``, instead of ``outdir`` and ``naming``. Clashes
        are resolved as for ``naming="url"``. Files only: shards are named by the run.
    quality : int or None, default 95
        JPEG/WebP encoder quality, 1-100 (None: Pillow's default, 75). PNG ignores it.
    output_format : {"files", "webdataset", "parquet"} or ShardOptions, default "files"
        ``"files"``: one file per row. ``"webdataset"``: tar shards (image, ``.json``,
        optional ``.txt`` per sample) with a records Parquet beside each;
        ``"parquet"``: Parquet shards with an HF ``Image`` column. A
        :class:`~creevey_dask.ShardOptions` sets the rest (``shard_size``,
        ``carry_cols``, ``caption_col``); see :mod:`creevey_dask.sinks.shards`.
    filters : FilterOptions, optional
        What each downloaded image must pass (its size, aspect ratio, declared pixels,
        a known digest) and the digest to record of its bytes; see
        :class:`~creevey_dask.FilterOptions`. A refused image is an error row whose
        error names the check; nothing is written for it.
    http_options : HttpOptions, optional
        Timeouts, retries, per-host limits, the user agent and the safety settings;
        see :class:`~creevey_dask.HttpOptions`.
    n_jobs, skip_existing, progress
        Shortcuts for the same :class:`~creevey_dask.RunOptions` fields: downloads in
        flight per partition (default 16), leaving existing outputs alone
        (``"skipped"``, the default), a progress bar.
    options : RunOptions, optional
        All run settings (``storage_options``, ``npartitions``, ...); the shortcuts
        above, when given, override its fields.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        The input columns, then ``outpath``, ``status``, ``error``, ``http_status``,
        ``bytes``, ``attempts``, ``width``, ``height`` (and for sharded formats
        ``key``, with ``outpath`` the shard).

    Examples
    --------
    A loopback server stands in for the web here:

    >>> import io, tempfile
    >>> import pandas as pd
    >>> from PIL import Image
    >>> from creevey_dask.testing import ImageServer
    >>> jpeg = io.BytesIO()
    >>> Image.new("RGB", (32, 24), "teal").save(jpeg, "JPEG")
    >>> with ImageServer({"cat.jpg": jpeg.getvalue()}) as server:
    ...     df = pd.DataFrame({"url": [server.url("/img/cat.jpg"), server.url("/img/dog.jpg")]})
    ...     result = download(df, tempfile.mkdtemp(), progress=False)
    >>> result[["status", "error", "http_status", "attempts", "width"]]
      status                          error  http_status  attempts  width
    0     ok                           <NA>          200         1     32
    1  error  HttpError: HTTP 404 Not Found          404         1   <NA>
    """
    # every argument, as the function was called (no name is written a second time)
    return download_with(dict(locals()))


#: ``wrap(loader, writer) -> (loader, writer)``: stages around a download's own.
Wrap = Callable[[Callable[..., Any], Any], tuple[Callable[..., Any], Any]]


def download_with(
    args: Mapping[str, Any], wrap: Wrap | None = None, *, outpath_param: str = "outpath_func"
) -> Any:
    """:func:`download` with its arguments ``args`` (by name, every one given), its loader
    and writer wrapped by ``wrap`` (the original creevey's write log, for one).

    ``outpath_param`` is what the caller calls ``args["outpath_func"]`` (in its errors).
    """
    fmt = _check_format(args["format"])
    naming = args["naming"]
    check_naming(naming)
    outdir, path_func = args["outdir"], args["outpath_func"]
    if path_func is None and outdir is None:
        raise ValueError(f"give outdir= (a folder) or {outpath_param}= (url -> outpath)")
    if path_func is not None and not callable(path_func):
        raise TypeError(f"{outpath_param} must be callable, got {path_func!r}")
    http = args["http_options"]
    if http is None:
        http = HttpOptions()
    elif not isinstance(http, HttpOptions):
        raise TypeError(f"http_options must be a creevey_dask.HttpOptions, got {http!r}")
    opts = run_options(
        args["options"],
        n_jobs=args["n_jobs"],
        skip_existing=args["skip_existing"],
        progress=args["progress"],
    )
    refuse_outpath_func(shard_options(args["output_format"]), path_func, outpath_param)
    filters = filter_options(args["filters"])
    ops_list = as_ops(args["ops"])
    if fmt == "original" and ops_list:
        raise ValueError(
            "format='original' writes the downloaded bytes unchanged, so it takes no ops; "
            "pick format='png', 'jpeg' or 'webp' to apply ops"
        )
    url_col = args["url_col"]
    frame, _, _ = as_frame(args["df"], url_col, what="urls", noun="URL", param="url_col")
    filters.check_columns(frame.columns)
    # every argument is checked: from here on the run starts (``wrap`` may touch files)
    namer: Callable[[Any], str] = path_func or make_namer(
        naming, cast(str, outdir), None if fmt == "original" else extension_for(fmt)
    )
    loader: Callable[..., Any] = filters.wrap_loader(
        HttpLoader(http, keep_bytes=fmt == "original", max_pixels=filters.max_pixels)
    )
    writer: Callable[[Any, str], Any] = DownloadWriter(
        fmt, quality=args["quality"], storage_options=opts.storage_options
    )
    if wrap is not None:
        loader, writer = wrap(loader, writer)
    pipeline = Pipeline(loader, ops=filters.wrap_ops(ops_list), write_func=writer)
    result = pipeline.run(
        frame, namer, inpath_col=url_col, output_format=args["output_format"], options=opts
    )
    if isinstance(result, pd.DataFrame):
        _log_http_summary(result)
    return result


def _log_http_summary(result: pd.DataFrame) -> None:
    """Log the HTTP statuses of the failed rows (the engine logs the status counts)."""
    failed = result[result["status"] == "error"]
    if failed.empty:
        return
    statuses = failed["http_status"].value_counts(dropna=False).head(8)
    text = ", ".join(
        f"{n} x {'no response' if pd.isna(code) else f'HTTP {int(code)}'}"
        for code, n in statuses.items()
    )
    logger.info("creevey: failed downloads by last HTTP status: %s", text)
