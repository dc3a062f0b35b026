"""The public API: what ``import creevey_dask`` exports, pinned."""

from __future__ import annotations

import creevey_dask


def test_all_names_exist():
    missing = [name for name in creevey_dask.__all__ if not hasattr(creevey_dask, name)]
    assert missing == []
    assert len(set(creevey_dask.__all__)) == len(creevey_dask.__all__)


def test_the_design_contract_is_exported():
    contract = {
        "Pipeline",
        "report",
        "download_images_as_png",
        "resize_multiple_files",
        "create_imagenet_style_symlinks",
        "BaseDataset",
        "S3Downloader",
        "TarfileExtractor",
        "S3TarfileDataset",
        "ops",
        "split",
        "download",
        "CreeveyError",
    }
    assert contract <= set(creevey_dask.__all__)


def test_exported_members_are_pinned():
    assert sorted(creevey_dask.__all__) == sorted(PINNED)


def test_every_exception_is_a_creevey_error_and_a_builtin():
    from creevey_dask import exceptions

    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert issubclass(cls, creevey_dask.CreeveyError)
        if cls is not creevey_dask.CreeveyError:
            builtins = [b for b in cls.__mro__ if b.__module__ == "builtins"]
            assert builtins[0] is not object, name  # also a ValueError, OSError, ...


PINNED: list[str] = [
    "ArchiveError",
    "BaseDataset",
    "ColumnError",
    "CredentialsError",
    "CreeveyAccessor",
    "CreeveyError",
    "DOWNLOAD_FORMATS",
    "DownloadConnectionError",
    "DownloadError",
    "DownloadTimeoutError",
    "HashMismatchError",
    "HttpError",
    "HttpLoader",
    "HttpOptions",
    "ImageDecodeError",
    "ImageFilteredError",
    "ImageLoader",
    "ImageTooLargeError",
    "ImageWriter",
    "MissingDataError",
    "OUTPUT_FORMATS",
    "OutpathClashError",
    "Pipeline",
    "RESULT_COLUMNS",
    "Reporter",
    "RobotsTagError",
    "S3Downloader",
    "S3TarfileDataset",
    "STATUSES",
    "STATUS_DTYPE",
    "SizeLimitError",
    "TarfileExtractor",
    "TooManyRedirectsError",
    "TruncatedBodyError",
    "UnsafeArchiveError",
    "UnsafeSourceError",
    "UpstreamError",
    "UrlListDataset",
    "__version__",
    "contact_sheet",
    "create_imagenet_style_symlinks",
    "decode_image",
    "download",
    "download_images_as_png",
    "format_error",
    "load_image",
    "ops",
    "read_shards",
    "record",
    "report",
    "resize_multiple_files",
    "safe_label",
    "split",
    "start_local_cluster",
    "storage",
    "summarize",
    "summary_figure",
    "summary_table",
    "write_image",
]
