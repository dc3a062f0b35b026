"""The exception tree of creevey_dask.

Every exception the library raises on purpose derives from :class:`CreeveyError`
and also from the builtin it means, so ``except ValueError`` keeps working::

    CreeveyError
     ├── ColumnError(CreeveyError, ValueError)        a missing or clashing column
     ├── ImageDecodeError(CreeveyError, ValueError)   bytes that are not a usable image
     │    └── ImageTooLargeError                      a decompression bomb, refused from the header
     ├── UnsafeSourceError(CreeveyError, ValueError)  a source or output path that is refused
     │    └── UnsafeArchiveError                      an archive member that escapes or is a device
     ├── ArchiveError(CreeveyError, ValueError)       a corrupt, truncated or unsupported archive
     ├── MissingDataError(CreeveyError, FileNotFoundError)  an absent bucket, object or stage
     └── CredentialsError(CreeveyError, PermissionError)    storage credentials missing or refused

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
    # datasets
    "ArchiveError",
    "CredentialsError",
    "MissingDataError",
    "UnsafeArchiveError",
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


# --- datasets: archives and object storage -------------------------------------------


class UnsafeArchiveError(UnsafeSourceError):
    """An archive member was refused: an absolute path, a ``..`` component, a link
    pointing outside the destination, or a device file. The message names the member."""


class ArchiveError(CreeveyError, ValueError):
    """An archive could not be read: corrupt, truncated or of an unsupported kind."""


class MissingDataError(CreeveyError, FileNotFoundError):
    """A bucket, an object or a dataset folder does not exist; the message names it."""


class CredentialsError(CreeveyError, PermissionError):
    """Storage credentials are missing, or were rejected by the storage service."""
