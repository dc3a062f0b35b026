"""creevey_dask: image downloading, processing and dataset building over DataFrames.

Architecture, one module per stage::

    naming      outpath functions            storage    fsspec: atomic writes, exists
    imagefile   load / encode+write images   pipeline   Pipeline, report(), record()
    ops         image ops and measurements   resize     bulk resize keeping filenames
    engine      partitions, thread pool, skip, result columns
    accessor    df.creevey on pandas and dask DataFrames
    exceptions  the exception tree

``import creevey_dask`` registers the ``df.creevey`` accessor.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import ops, storage
from .accessor import CreeveyAccessor
from .accessor import register as _register_accessor
from .engine import RESULT_COLUMNS, STATUS_DTYPE, STATUSES, format_error, summarize
from .exceptions import (
    ColumnError,
    CreeveyError,
    ImageDecodeError,
    ImageTooLargeError,
    UnsafeSourceError,
)
from .imagefile import ImageLoader, ImageWriter, decode_image, load_image, write_image
from .pipeline import Pipeline, Reporter, record, report
from .resize import resize_multiple_files

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
    # image ops and bulk resizing
    "decode_image",
    "ops",
    "resize_multiple_files",
    # the accessor
    "CreeveyAccessor",
    # errors
    "ColumnError",
    "CreeveyError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "UnsafeSourceError",
    "__version__",
]
