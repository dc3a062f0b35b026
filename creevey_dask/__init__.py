"""creevey_dask: image downloading, processing and dataset building over DataFrames.

The package, by the stages a row goes through (each sub-package's docstring lists its
modules)::

    storage/    fs (fsspec paths, atomic writes, sweeps), naming (outpaths), provenance
                (the proof an output carries, exclusive commits), samples (shard samples
                as sources)
    sources/    http/ (sessions, address checks, deadlines, retries, politeness, HttpOptions),
                hashing (source digests)
    image/      decode, loading, encode, formats (the one format table), filters
                (FilterOptions); imagefile gathers the public names
    ops/        image ops and measurements
    engine/     pipeline (Pipeline.run, the one way a run starts), runner (a run's
                partitions), partition (a partition's rows on a thread pool), scheduling
                (where a run executes), outputs, inputs, rows (report, record), summary,
                progress, interrupt, processes
    sinks/      shards (the Sink and the layout), shard_options (ShardOptions), formats (the
                registry), keys, spool, records, webdataset, parquet, resume, runner,
                stats, reading (read_shards)
    download, resize, duplicates/    the tasks
    original    the original creevey's functions: download_images_as_png,
                resize_multiple_files, create_imagenet_style_symlinks
    layout/     split (train/valid/test), imagenet (ImageNet-style trees)
    reports/    sheets (contact sheets), summary (tables and figures), charts (drawing)
    datasets/   base (BaseDataset, S3TarfileDataset), s3download, tarfiles, url_list
                (UrlListDataset)
    cli/        main (the creevey command), demo (its offline demo)
    accessor    df.creevey on pandas and dask DataFrames
    cluster     start_local_cluster; politeness limits per worker
    testing     ImageServer (loopback, fault routes) and sample_images, for docs and tests
    exceptions, schema, options    the exception tree, result columns, RunOptions
    _keywords, _lazy, _fork, _redact, _dask_types    leaf helpers every layer may use

``import creevey_dask`` registers the ``df.creevey`` accessor. Each module logs to
``logging.getLogger(__name__)`` (``creevey_dask.engine.partition``, ``creevey_dask.download``, ...);
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
    from .datasets.base import BaseDataset, S3TarfileDataset
    from .datasets.s3download import S3Downloader
    from .datasets.tarfiles import TarfileExtractor
    from .datasets.url_list import UrlListDataset
    from .download import DOWNLOAD_FORMATS, HttpLoader, download
    from .duplicates import duplicates, leaks
    from .engine.pipeline import Pipeline
    from .engine.rows import Reporter, record, report
    from .engine.runner import compute_result
    from .engine.summary import summarize
    from .exceptions import format_error
    from .image.filters import FilterOptions
    from .image.imagefile import (
        ImageLoader,
        ImageWriter,
        decode_image,
        load_image,
        write_image,
    )
    from .layout.imagenet import imagenet_symlinks, safe_label
    from .layout.split import split
    from .options import RunOptions
    from .original import (
        create_imagenet_style_symlinks,
        download_images_as_png,
        resize_multiple_files,
    )
    from .reports.sheets import contact_sheet, duplicate_sheet
    from .reports.summary import summary_figure, summary_table
    from .schema import RESULT_COLUMNS, STATUS_DTYPE, STATUSES
    from .sinks.formats import OUTPUT_FORMATS
    from .sinks.shard_options import ShardOptions
    from .sinks.shards import read_shards
    from .sources.http import HttpOptions

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
    "BaseDataset": "datasets.base",
    "S3TarfileDataset": "datasets.base",
    "duplicates": "duplicates",
    "leaks": "duplicates",
    "DOWNLOAD_FORMATS": "download",
    "HttpLoader": "download",
    "download": "download",
    "download_images_as_png": "original",
    "OUTPUT_FORMATS": "sinks.formats",
    "read_shards": "sinks.shards",
    "RESULT_COLUMNS": "schema",
    "STATUS_DTYPE": "schema",
    "STATUSES": "schema",
    "compute_result": "engine.runner",
    "format_error": "exceptions",
    "summarize": "engine.summary",
    "UrlListDataset": "datasets.url_list",
    "HttpOptions": "sources.http",
    "FilterOptions": "image.filters",
    "ShardOptions": "sinks.shard_options",
    "ImageLoader": "image.imagefile",
    "ImageWriter": "image.imagefile",
    "decode_image": "image.imagefile",
    "load_image": "image.imagefile",
    "write_image": "image.imagefile",
    "Pipeline": "engine.pipeline",
    "RunOptions": "options",
    "Reporter": "engine.rows",
    "record": "engine.rows",
    "report": "engine.rows",
    "contact_sheet": "reports.sheets",
    "duplicate_sheet": "reports.sheets",
    "summary_figure": "reports.summary",
    "summary_table": "reports.summary",
    "resize_multiple_files": "original",
    "S3Downloader": "datasets.s3download",
    "create_imagenet_style_symlinks": "original",
    "imagenet_symlinks": "layout.imagenet",
    "safe_label": "layout.imagenet",
    "split": "layout.split",
    "TarfileExtractor": "datasets.tarfiles",
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
    "FilterOptions",
    "ShardOptions",
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
