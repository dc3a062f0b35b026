"""The exception tree of creevey_dask.

Every exception the library raises on purpose derives from :class:`CreeveyError`
and also from the builtin it means, so ``except ValueError`` keeps working::

    CreeveyError
     ├── ColumnError(CreeveyError, ValueError)        a missing or clashing column
     ├── UpstreamError(CreeveyError, ValueError)      the step that made the source failed
     ├── ImageDecodeError(CreeveyError, ValueError)   bytes that are not a usable image
     │    └── ImageTooLargeError                      a decompression bomb, refused from the header
     ├── UnsafeSourceError(CreeveyError, ValueError)  a source or output path that is refused
     │    └── UnsafeArchiveError                      an archive member that escapes or is a device
     ├── ArchiveError(CreeveyError, ValueError)       a corrupt, truncated or unsupported archive
     ├── MissingDataError(CreeveyError, FileNotFoundError)  an absent bucket, object or stage
     ├── CredentialsError(CreeveyError, PermissionError)    storage credentials missing or refused
     ├── OutpathClashError(CreeveyError, ValueError)  a name and its hashed form both taken
 ├── ImageFilteredError(CreeveyError, ValueError)  an image refused by a size/aspect filter
 ├── HashMismatchError(CreeveyError, ValueError)   source bytes whose hash is not the expected one
     └── DownloadError(CreeveyError, OSError)         an HTTP download failed (.status, .attempts)
          ├── HttpError                               an error status (403, 404, 500 after retries)
          ├── DownloadConnectionError(…, ConnectionError)  refused, reset, DNS failure
          ├── DownloadTimeoutError(…, TimeoutError)   connect/read timeout or the deadline per URL
          ├── TruncatedBodyError                      body shorter than its Content-Length
          ├── SizeLimitError                          body larger than max_bytes
          ├── ContentEncodingError(…, ValueError)     more stacked Content-Encodings than allowed
          ├── TooManyRedirectsError                   more hops than max_redirects
          └── RobotsTagError                          X-Robots-Tag opt-out (noai, noindex, ...)

Per-row failures never escape a run: they become ``status="error"`` rows whose ``error``
column reads ``"<ExceptionType>: <message>"`` (:func:`format_error`, the one wording;
:func:`error_cause` groups the rows that failed the same way). These classes exist so
that those rows and the up-front argument checks name their cause precisely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ._redact import redact_text

__all__ = [
    "ColumnError",
    "ContentEncodingError",
    "CreeveyError",
    "DownloadConnectionError",
    "DownloadError",
    "DownloadTimeoutError",
    "HttpError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "UpstreamError",
    "OutpathClashError",
    "ImageFilteredError",
    "HashMismatchError",
    "RobotsTagError",
    "SizeLimitError",
    "TooManyRedirectsError",
    "TruncatedBodyError",
    "UnsafeSourceError",
    "WorkerProcessError",
    # datasets
    "ArchiveError",
    "CredentialsError",
    "MissingDataError",
    "UnsafeArchiveError",
]


class CreeveyError(Exception):
    """Base class of all errors raised on purpose by creevey_dask."""


class ColumnError(CreeveyError, ValueError):
    """A column is missing from the input, or would collide with a result column.

    Every missing-column check raises it through :func:`require_columns`, so the
    message always has one wording.
    """


def require_columns(columns: Iterable[Any], where: str = "the frame", /, **arguments: Any) -> None:
    """Raise :class:`ColumnError` unless every named column is in ``columns``.

    Parameters
    ----------
    columns : iterable
        The frame's columns (``df.columns``).
    where : str, default "the frame"
        What the frame is, for the message (e.g. ``"urls_table"``).
    **arguments
        The argument each column was given as, mapped to the column name (or a list
        of names); None is skipped (an argument left out).

    Examples
    --------
    >>> require_columns(["url"], path_col="path")
    Traceback (most recent call last):
    ...
    creevey_dask.exceptions.ColumnError: the frame has no column(s) ['path'] (path_col='path'); its columns are ['url']
    """  # noqa: E501
    existing = list(columns)
    missing: dict[str, Any] = {}
    for arg, names in arguments.items():
        if isinstance(names, (list, tuple)):
            absent = [n for n in names if n not in existing]
            if absent:
                missing[arg] = absent
        elif names is not None and names not in existing:
            missing[arg] = names
    if missing:
        flat = [n for v in missing.values() for n in (v if isinstance(v, list) else [v])]
        given = ", ".join(f"{arg}={name!r}" for arg, name in missing.items())
        raise ColumnError(f"{where} has no column(s) {flat} ({given}); its columns are {existing}")


class UpstreamError(CreeveyError, ValueError):
    """The row has no source because the step that should have made it failed.

    Raised for a result frame fed into the next step (a download's result resized
    with ``path_col="outpath"``): the message carries the earlier step's error, the
    *root cause*, which :meth:`root_cause` reads back from a row's ``error``.

    Examples
    --------
    >>> err = UpstreamError.after("HttpError: HTTP 404 Not Found")
    >>> str(err)
    'the previous step failed: HttpError: HTTP 404 Not Found'
    >>> UpstreamError.root_cause("UpstreamError: " + str(err))
    'HttpError: HTTP 404 Not Found'
    """

    #: How the message starts; the earlier step's own ``error`` follows.
    PREFIX = "the previous step failed: "

    @classmethod
    def after(cls, error: str) -> UpstreamError:
        """The error of a row whose earlier step failed with ``error`` (its ``error`` text).

        A chain of steps keeps the first cause: after an ``UpstreamError`` the message
        is the same, not nested.
        """
        own = f"{cls.__name__}: "
        return cls(error[len(own) :] if error.startswith(own) else cls.PREFIX + error)

    @classmethod
    def root_cause(cls, error: str) -> str:
        """The error a row's failure started with: ``error`` without the upstream prefix.

        ``"UpstreamError: the previous step failed: HttpError: HTTP 404 Not Found"``
        gives ``"HttpError: HTTP 404 Not Found"``; any other error is returned as is.
        """
        prefix = f"{cls.__name__}: {cls.PREFIX}"
        while error.startswith(prefix):
            error = error[len(prefix) :]
        return error


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


class WorkerProcessError(CreeveyError, RuntimeError):
    """A worker process of the local process pool died during a run (killed, out of memory).

    The run stops with this error instead of marking rows as errors: the files already
    written are complete, and a rerun with ``skip_existing=True`` does the rest.
    """


# --- downloads ------------------------------------------------------------------------


class OutpathClashError(CreeveyError, ValueError):
    """Both names a source can have (plain and hashed) belong to other sources' files.

    Clashes are resolved by a hashed name (:func:`creevey_dask.storage.naming.disambiguate`);
    this error is left only for a file that someone else put at the hashed name too.
    """


class ImageFilteredError(CreeveyError, ValueError):
    """An image refused by a filter (``min_image_size``, ``max_image_area``, ...)."""


class HashMismatchError(CreeveyError, ValueError):
    """The source's bytes do not have the hash the row expects (``verify_hash=``)."""


class DownloadError(CreeveyError, OSError):
    """An HTTP download failed. Carries ``url``, ``status`` (or None) and ``attempts``."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        attempts: int = 0,
        nbytes: int | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts
        self.nbytes = nbytes

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[object, ...]:  # keyword-only fields survive pickling
        return (
            _rebuild_download_error,
            (type(self), str(self), self.url, self.status, self.attempts, self.nbytes),
        )


def _rebuild_download_error(
    cls: type[DownloadError],
    message: str,
    url: str | None,
    status: int | None,
    attempts: int,
    nbytes: int | None,
) -> DownloadError:
    return cls(message, url=url, status=status, attempts=attempts, nbytes=nbytes)


class HttpError(DownloadError):
    """The server answered with a status that is not a success (after any retries)."""


class DownloadConnectionError(DownloadError, ConnectionError):
    """The connection failed or was reset (after any retries)."""


class DownloadTimeoutError(DownloadError, TimeoutError):
    """A connect or read timeout, or the total deadline per URL, ran out."""


class TruncatedBodyError(DownloadError):
    """The body ended before the length its ``Content-Length`` header announced."""


class SizeLimitError(DownloadError):
    """The body is larger than the allowed ``max_bytes``; the download was stopped."""


class ContentEncodingError(DownloadError, ValueError):
    """The response stacks more ``Content-Encoding``s than allowed; it is not decoded.

    Real servers send one coding (``gzip``, ``br``), rarely two; a longer chain only
    multiplies the work of inflating a body. Final at once: fetched once, not retried.
    """


class TooManyRedirectsError(DownloadError):
    """More redirects than ``max_redirects``."""


class RobotsTagError(DownloadError):
    """The server opted the image out with ``X-Robots-Tag`` (``noai``, ``noindex``, ...)."""


# ---- how an exception reads in a row's ``error`` column -----------------------------

_MAX_ERROR_CHARS = 500


def format_error(err: BaseException) -> str:
    """``"<ExceptionType>: <message>"`` on one line, at most 500 characters, URLs redacted.

    Every URL in the message has its userinfo and credential-like query values hidden
    (:func:`creevey_dask._redact.redact_text`), so no secret reaches a row's ``error``,
    a summary line or a log.

    Examples
    --------
    >>> format_error(FileNotFoundError("no\\nsuch file"))
    'FileNotFoundError: no such file'
    """
    message = redact_text(" ".join(str(err).split()))
    text = f"{type(err).__name__}: {message}" if message else type(err).__name__
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


#: The parts of a message that vary between rows of one cause: a quoted path or URL (a
#: port, a file name), a port ("127.0.0.1:43567", "port=43567"), a count with its unit
#: ("2768 bytes", "(7 bytes not processed)", "1.5 s") and a size ("640x480").
_VARIABLE_PARTS = (
    (re.compile(r"'[^']*'|\"[^\"]*\""), "'…'"),
    (re.compile(r"(?<=[\w\]]):\d{1,5}\b"), ":N"),
    (re.compile(r"\bport=\d+"), "port=N"),
    (re.compile(r"\b\d+( ?)x\1\d+\b"), r"N\1x\1N"),
    (re.compile(r"\b\d+(?:\.\d+)?(?= ?(?:bytes?|B|kB|MB|px|pixels?|s|seconds?|scans?)\b)"), "N"),
)


def error_cause(error: str) -> str:
    """The cause of a row's ``error``, the same for every row that failed the same way.

    The root cause (an :class:`UpstreamError` gives the earlier step's error), with
    the parts that vary between rows replaced: quoted paths and URLs by ``'…'``, ports
    by ``:N``, counts of bytes, pixels or seconds by ``N``, sizes such as ``640x480``
    or ``40 x 30`` by ``NxN`` / ``N x N``. HTTP
    statuses and other bare numbers are kept (a 404 is not a 503).

    Examples
    --------
    >>> error_cause("ImageDecodeError: cannot decode '/data/a.jpg': truncated JPEG data: "
    ...             "image file is truncated (7 bytes not processed)")
    "ImageDecodeError: cannot decode '…': truncated JPEG data: image file is truncated (N bytes not processed)"
    >>> error_cause("DownloadConnectionError: HTTPConnectionPool(host=127.0.0.1, port=43567)")
    'DownloadConnectionError: HTTPConnectionPool(host=127.0.0.1, port=N)'
    """  # noqa: E501
    cause = UpstreamError.root_cause(" ".join(error.split()))
    for pattern, replacement in _VARIABLE_PARTS:
        cause = pattern.sub(replacement, cause)
    return cause
