"""creevey_dask: image downloading, processing and dataset building over DataFrames.

Architecture, one module per stage::

    naming      outpath functions            storage    fsspec: atomic writes, exists
    http        sessions, retries, limits    download   download(), download_images_as_png()
    imagefile   load / encode+write images   pipeline   Pipeline, report(), record()
    engine      partitions, thread pool, skip, result columns
    accessor    df.creevey on pandas and dask DataFrames
    exceptions  the exception tree

``import creevey_dask`` registers the ``df.creevey`` accessor.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import storage
from .accessor import CreeveyAccessor
from .accessor import register as _register_accessor
from .download import DOWNLOAD_FORMATS, HttpLoader, download, download_images_as_png
from .engine import RESULT_COLUMNS, STATUS_DTYPE, STATUSES, format_error, summarize
from .exceptions import (
    ColumnError,
    CreeveyError,
    DownloadConnectionError,
    DownloadError,
    DownloadTimeoutError,
    HttpError,
    ImageDecodeError,
    ImageTooLargeError,
    OutpathClashError,
    RobotsTagError,
    SizeLimitError,
    TooManyRedirectsError,
    TruncatedBodyError,
    UnsafeSourceError,
)
from .http import HttpOptions
from .imagefile import ImageLoader, ImageWriter, load_image, write_image
from .pipeline import Pipeline, Reporter, record, report

try:
    __version__ = _version("creevey_dask")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_register_accessor()

__all__ = [
    # the engine
    "Pipeline",
    "Reporter",
    "record",
    "report",
    "RESULT_COLUMNS",
    "STATUSES",
    "STATUS_DTYPE",
    "format_error",
    "summarize",
    # loading and writing
    "ImageLoader",
    "ImageWriter",
    "load_image",
    "write_image",
    "storage",
    # downloading
    "download",
    "download_images_as_png",
    "DOWNLOAD_FORMATS",
    "HttpLoader",
    "HttpOptions",
    # the accessor
    "CreeveyAccessor",
    # errors
    "ColumnError",
    "CreeveyError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "UnsafeSourceError",
    "OutpathClashError",
    "DownloadError",
    "HttpError",
    "DownloadConnectionError",
    "DownloadTimeoutError",
    "TruncatedBodyError",
    "SizeLimitError",
    "TooManyRedirectsError",
    "RobotsTagError",
    "__version__",
]
