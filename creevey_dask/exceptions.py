"""The exception tree of creevey_dask.

Every exception the library raises on purpose derives from :class:`CreeveyError`
and also from the builtin it means, so ``except ValueError`` keeps working::

    CreeveyError
     ├── ColumnError(CreeveyError, ValueError)        a missing or clashing column
     ├── ImageDecodeError(CreeveyError, ValueError)   bytes that are not a usable image
     │    └── ImageTooLargeError                      a decompression bomb, refused from the header
     └── UnsafeSourceError(CreeveyError, ValueError)  a source or output path that is refused

Per-row failures never escape a run: they become ``status="error"`` rows whose ``error``
column reads ``"<ExceptionType>: <message>"``. These classes exist so that those rows,
and the up-front argument checks, name their cause precisely.
"""

from __future__ import annotations

__all__ = [
    "ColumnError",
    "CreeveyError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "UnsafeSourceError",
]


class CreeveyError(Exception):
    """Base class of all errors raised on purpose by creevey_dask."""


class ColumnError(CreeveyError, ValueError):
    """A column is missing from the input, or would collide with a result column."""


class ImageDecodeError(CreeveyError, ValueError):
    """The data could not be decoded as an image (truncated, corrupt, not an image)."""


class ImageTooLargeError(ImageDecodeError):
    """The image declares more pixels than allowed (a possible decompression bomb)."""


class UnsafeSourceError(CreeveyError, ValueError):
    """A source or destination was refused for safety (scheme, address, path escape)."""
