"""creevey_dask: image downloading, processing and dataset building over DataFrames.

Architecture, one module per stage::

    naming      outpath functions            storage    fsspec: atomic writes, exists
    http        sessions, retries, limits    download   download(), download_images_as_png()
    imagefile   load / encode+write images   pipeline   Pipeline, report(), record()
    ops         image ops and measurements   resize     bulk resize keeping filenames
    engine      partitions, thread pool, skip, result columns
    split       train/valid/test assignment    imagenet   ImageNet-style folder trees
    duplicates  exact and near-duplicate groups (dup_group, dup_keep); leaks across splits
    reports     contact sheets and summary figures of result tables (Pillow only)
    accessor    df.creevey on pandas and dask DataFrames
    cluster     start_local_cluster (dashboard link); politeness limits per worker
    cli, demo   the creevey command line and its offline demo
    exceptions  the exception tree
    datasets    BaseDataset (raw → interim → processed), S3TarfileDataset
    s3download  S3Downloader          tarfiles   TarfileExtractor (safe extraction)
    sinks       output formats: files, WebDataset/Parquet shards; read_shards
    checks      size filters and source-byte hashes (compute_hash, verify_hash)
    examples    UrlListDataset: a worked example dataset (download → resize → train/valid)
    testing     ImageServer (loopback, fault routes) and sample_images, for docs and tests

``import creevey_dask`` registers the ``df.creevey`` accessor. Each module logs to
``logging.getLogger(__name__)`` (``creevey_dask.engine``, ``creevey_dask.download``, ...);
the package logger has a ``NullHandler``, so nothing is printed until the application
configures logging (e.g. ``logging.basicConfig(level=logging.INFO)``).
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from typing import TYPE_CHECKING, Any

from .accessor import CreeveyAccessor, CreeveySeriesAccessor
from .accessor import register as _register_accessor
from .exceptions import (
    ArchiveError,
    ColumnError,
    ContentEncodingError,
    CredentialsError,
    CreeveyError,
    DownloadConnectionError,
    DownloadError,
    DownloadTimeoutError,
    HashMismatchError,
    HttpError,
    ImageDecodeError,
    ImageFilteredError,
    ImageTooLargeError,
    MissingDataError,
    OutpathClashError,
    RobotsTagError,
    SizeLimitError,
    TooManyRedirectsError,
    TruncatedBodyError,
    UnsafeArchiveError,
    UnsafeSourceError,
    UpstreamError,
)

if TYPE_CHECKING:
    from . import ops, storage
    from .cluster import start_local_cluster
    from .datasets import BaseDataset, S3TarfileDataset
    from .download import DOWNLOAD_FORMATS, HttpLoader, download, download_images_as_png
    from .duplicates import duplicates, leaks
    from .engine import compute_result, format_error, summarize
    from .examples import UrlListDataset
    from .http import HttpOptions
    from .imagefile import ImageLoader, ImageWriter, decode_image, load_image, write_image
    from .imagenet import create_imagenet_style_symlinks, imagenet_symlinks, safe_label
    from .options import RunOptions
    from .pipeline import Pipeline
    from .reports import contact_sheet, duplicate_sheet, summary_figure, summary_table
    from .resize import resize_multiple_files
    from .rows import Reporter, record, report
    from .s3download import S3Downloader
    from .schema import RESULT_COLUMNS, STATUS_DTYPE, STATUSES
    from .sinks import OUTPUT_FORMATS, read_shards
    from .split import split
    from .tarfiles import TarfileExtractor

# A library logs and never configures logging: each module logs to its own
# ``getLogger(__name__)`` below the package logger, which gets only a NullHandler (no
# "last resort" printing to stderr when the application has configured nothing).
logging.getLogger(__name__).addHandler(logging.NullHandler())

# The rest of the API is imported on first use (PEP 562), so that ``import creevey_dask``
# stays cheap (no pandas, dask, pyarrow, requests or reports until they are needed).
_LAZY: dict[str, str] = {
    "ops": "",
    "storage": "",
    "start_local_cluster": "cluster",
    "BaseDataset": "datasets",
    "S3TarfileDataset": "datasets",
    "duplicates": "duplicates",
    "leaks": "duplicates",
    "DOWNLOAD_FORMATS": "download",
    "HttpLoader": "download",
    "download": "download",
    "download_images_as_png": "download",
    "OUTPUT_FORMATS": "sinks",
    "read_shards": "sinks",
    "RESULT_COLUMNS": "schema",
    "STATUS_DTYPE": "schema",
    "STATUSES": "schema",
    "compute_result": "engine",
    "format_error": "engine",
    "summarize": "engine",
    "UrlListDataset": "examples",
    "HttpOptions": "http",
    "ImageLoader": "imagefile",
    "ImageWriter": "imagefile",
    "decode_image": "imagefile",
    "load_image": "imagefile",
    "write_image": "imagefile",
    "Pipeline": "pipeline",
    "RunOptions": "options",
    "Reporter": "rows",
    "record": "rows",
    "report": "rows",
    "contact_sheet": "reports",
    "duplicate_sheet": "reports",
    "summary_figure": "reports",
    "summary_table": "reports",
    "resize_multiple_files": "resize",
    "S3Downloader": "s3download",
    "create_imagenet_style_symlinks": "imagenet",
    "imagenet_symlinks": "imagenet",
    "safe_label": "imagenet",
    "split": "split",
    "TarfileExtractor": "tarfiles",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: Any = version("creevey_dask")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            value = "0+unknown"
    elif name in _LAZY:
        module = _LAZY[name]
        if module:
            value = getattr(importlib.import_module(f".{module}", __name__), name)
        else:
            value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# ``download``, ``split`` and ``duplicates`` name both a function (the API) and its
# module. Importing a submodule sets it as an attribute of the package; for these the
# function keeps the name, as it did when this package imported everything eagerly.
_FUNCTION_OVER_MODULE = frozenset(name for name, module in _LAZY.items() if module == name)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTION_OVER_MODULE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # pickled by reference like any module (cloudpickle, dask's tokenize)
        return importlib.import_module, (self.__name__,)


sys.modules[__name__].__class__ = _Package


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
    "compute_result",
    "RunOptions",
    # loading and writing
    "ImageLoader",
    "ImageWriter",
    "load_image",
    "write_image",
    "storage",
    # splits and ImageNet-style folders
    "split",
    "imagenet_symlinks",
    "create_imagenet_style_symlinks",
    "safe_label",
    # duplicate groups and leak checks
    "duplicates",
    "leaks",
    # image ops and bulk resizing
    "decode_image",
    "ops",
    "resize_multiple_files",
    # downloading
    "download",
    "download_images_as_png",
    "DOWNLOAD_FORMATS",
    "HttpLoader",
    # sharded outputs
    "OUTPUT_FORMATS",
    "read_shards",
    "HttpOptions",
    # the accessor
    "CreeveyAccessor",
    "CreeveySeriesAccessor",
    # scaling out
    "start_local_cluster",
    # visual reports
    "contact_sheet",
    "duplicate_sheet",
    "summary_figure",
    "summary_table",
    # datasets
    "BaseDataset",
    "S3Downloader",
    "TarfileExtractor",
    "S3TarfileDataset",
    "UrlListDataset",
    # errors
    "ColumnError",
    "CreeveyError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "UnsafeSourceError",
    "ArchiveError",
    "CredentialsError",
    "MissingDataError",
    "UnsafeArchiveError",
    "UpstreamError",
    "OutpathClashError",
    "ImageFilteredError",
    "HashMismatchError",
    "DownloadError",
    "HttpError",
    "DownloadConnectionError",
    "DownloadTimeoutError",
    "TruncatedBodyError",
    "SizeLimitError",
    "ContentEncodingError",
    "TooManyRedirectsError",
    "RobotsTagError",
    "__version__",
]
