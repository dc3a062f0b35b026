"""The public face of ``image/``: loading, decoding, encoding and writing images.

The rules live in one module each: :mod:`~creevey_dask.image.decode` (bytes to an image,
safely), :mod:`~creevey_dask.image.loading` (a row's source to an image),
:mod:`~creevey_dask.image.encode` (an image to a file) and
:mod:`~creevey_dask.image.formats` (the format table). This module gathers their public
names under the one path the package and its users import them from.
"""

from __future__ import annotations

from .decode import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_ROW_BYTES,
    DEFAULT_MAX_SCANS,
    DRAFT_ORIGINAL_SIZE_KEY,
    as_i16,
    decode_image,
    draft_scale,
    estimate_row_bytes,
)
from .encode import ImageWriter, convert_for_format, to_8bit, write_image
from .formats import format_for_path
from .loading import MAX_FILE_BYTES, ImageLoader, load_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_ROW_BYTES",
    "DEFAULT_MAX_SCANS",
    "DRAFT_ORIGINAL_SIZE_KEY",
    "MAX_FILE_BYTES",
    "ImageLoader",
    "ImageWriter",
    "as_i16",
    "convert_for_format",
    "decode_image",
    "draft_scale",
    "estimate_row_bytes",
    "format_for_path",
    "load_image",
    "to_8bit",
    "write_image",
]
