"""A row's source to an image: :class:`ImageLoader` (and its default :func:`load_image`)
reads any source (an http(s) URL through the library's HTTP client, any fsspec path)
under a size cap, and decodes it with :func:`~creevey_dask.image.decode.decode_image`."""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Mapping
from typing import Any

from PIL import Image

from ..sources.http import HttpOptions, fetch, is_http_url
from ..storage import fs as storage
from ..storage.samples import is_sample, read_sample
from .decode import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_ROW_BYTES,
    DraftHint,
    check_max_pixels,
    decode_image,
)

__all__ = [
    "load_image",
    "ImageLoader",
    "MAX_FILE_BYTES",
]


MAX_FILE_BYTES = 1 << 30


@functools.cache
def _default_http_options() -> HttpOptions:
    """One ``HttpOptions()`` (frozen) for every row without its own: made once, not per row."""
    return HttpOptions()


def _read_source(
    path: str,
    storage_options: Mapping[str, Any],
    http_options: Any,
    max_bytes: int | None = None,
    deadline: float | None = None,
) -> bytes:
    """The bytes of ``path``: http(s) through the library's HTTP client, a sample of a
    shard (``<shard>.tar#<member>``) with one ranged read
    (:func:`creevey_dask.storage.samples.read_sample`), else fsspec.

    Every source is bounded: a download by ``http_options``; a file, like a download,
    is refused past ``max_bytes`` (default :data:`MAX_FILE_BYTES`: a user's own files,
    scans and TIFF stacks, are larger than web images; the row's memory budget still
    bounds the decode) and ``deadline`` (that of ``http_options`` unless given), and a
    path that is not a regular file (a FIFO, a device) is refused before any read.
    """
    options = http_options or _default_http_options()
    if is_http_url(path):
        return fetch(path, options).body
    if is_sample(path):
        return read_sample(
            path, storage_options, max_bytes=MAX_FILE_BYTES if max_bytes is None else max_bytes
        )
    return storage.read_source(
        path,
        storage_options,
        max_bytes=MAX_FILE_BYTES if max_bytes is None else max_bytes,
        deadline=options.deadline if deadline is None else deadline,
    )


class ImageLoader:
    """Load an image from a local path or any fsspec URL.

    Parameters
    ----------
    storage_options : mapping, optional
        fsspec options for remote paths (e.g. an S3 ``endpoint_url``).
    max_pixels : int or None, default DEFAULT_MAX_PIXELS
        Refuse images that declare more pixels (see :func:`decode_image`).
    exif_transpose : bool, default True
        Apply the EXIF orientation.
    http_options : HttpOptions, optional
        For http(s) sources: they are fetched with :func:`creevey_dask.sources.http.fetch`
        (address checks, deadline, retries, per-host limits), never through fsspec's
        HTTP filesystem.
    max_bytes : int, optional
        The largest file read from a local or fsspec path (default
        :data:`MAX_FILE_BYTES`, 1 GiB); larger ones are refused by their size.
    deadline : float, optional
        Seconds a read of a local or fsspec path may take (default: ``deadline`` of
        ``http_options``, 60 s). Paths that are not regular files (FIFOs, devices such
        as ``/dev/zero``) are refused before any read.
    max_row_bytes : int or None, default DEFAULT_MAX_ROW_BYTES (512 MiB)
        The memory budget of a row (see :func:`decode_image`).

    Notes
    -----
    The loader takes a reduced-decode hint (``accepts_draft = True``): a pipeline
    whose first op is a downscaling resize decodes JPEGs at reduced scale.
    """

    accepts_draft = True

    def __init__(
        self,
        storage_options: Mapping[str, Any] | None = None,
        *,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        exif_transpose: bool = True,
        http_options: Any = None,
        max_bytes: int | None = None,
        deadline: float | None = None,
        max_row_bytes: int | None = DEFAULT_MAX_ROW_BYTES,
    ) -> None:
        if max_row_bytes is not None and (
            isinstance(max_row_bytes, bool)
            or not isinstance(max_row_bytes, int)
            or max_row_bytes < 1
        ):
            raise ValueError(f"max_row_bytes must be a positive int or None, got {max_row_bytes!r}")
        self.max_row_bytes = max_row_bytes
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
        ):
            raise ValueError(f"max_bytes must be a positive int or None, got {max_bytes!r}")
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not deadline > 0
        ):
            raise ValueError(f"deadline must be seconds > 0 or None, got {deadline!r}")
        self.max_bytes = max_bytes
        self.deadline = None if deadline is None else float(deadline)
        if http_options is not None and not isinstance(http_options, HttpOptions):
            raise TypeError(
                f"http_options must be a creevey_dask.HttpOptions, got {http_options!r}"
            )
        self.http_options = http_options
        self.storage_options = dict(storage_options or {})
        self.max_pixels = check_max_pixels(max_pixels)
        self.exif_transpose = bool(exif_transpose)

    def __call__(self, source: Any, draft: DraftHint = None) -> Image.Image:
        path = os.fspath(source)
        return decode_image(
            _read_source(
                path, self.storage_options, self.http_options, self.max_bytes, self.deadline
            ),
            path,
            draft=draft,
            max_pixels=self.max_pixels,
            exif_transpose=self.exif_transpose,
            max_row_bytes=self.max_row_bytes,
        )

    def for_processes(self, n: int, *, exact: bool = True) -> ImageLoader | None:
        """This loader for each of ``n`` worker processes that share its per-host limits.

        The http(s) sources it reads keep their per-host limits across the processes
        (:meth:`creevey_dask.HttpOptions.for_processes`); None where they cannot be
        shared exactly and ``exact=True`` (the default run then stays on threads).
        """
        options = (self.http_options or _default_http_options()).for_processes(n, exact=exact)
        if options is None:
            return None
        shared = copy.copy(self)
        shared.http_options = options
        return shared

    def __repr__(self) -> str:
        return (
            f"ImageLoader(storage_options={self.storage_options!r}, "
            f"max_pixels={self.max_pixels!r}, exif_transpose={self.exif_transpose!r})"
        )


#: Load an image from a local path or fsspec URL with default options.
load_image = ImageLoader()
