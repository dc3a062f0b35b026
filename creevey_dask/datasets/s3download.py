"""Download one object from S3 into a dataset's ``raw/`` folder, never leaving a partial file.

:class:`S3Downloader` streams the object through s3fs into a hidden temporary name
beside the target (``.<name>.<random>.creevey-tmp``), checks that the byte count matches
the object's size, and only then renames it to its final name. An interrupted download
(an exception, Ctrl-C) removes the temporary file; a killed process leaves at most the
temporary file, which never looks complete and which
:class:`~creevey_dask.datasets.base.BaseDataset` clears before it retries.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from collections.abc import Mapping
from typing import Any, cast

from .._redact import redact_url
from ..engine.progress import Progress, make_callback
from ..exceptions import CredentialsError, MissingDataError
from ..storage import fs as storage
from ..storage.naming import safe_name

__all__ = ["S3Downloader"]

logger = logging.getLogger(__name__)

_DEFAULT_CHUNK_SIZE = 8 * 2**20


def dest_options(
    data_dir: str,
    storage_options: Mapping[str, Any] | None,
    data_dir_storage_options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Options for the destination: given ones, else the S3 ones for an ``s3://`` folder."""
    if data_dir_storage_options is not None:
        return dict(data_dir_storage_options)
    if str(data_dir).startswith(("s3://", "s3a://")):
        return dict(storage_options or {})
    return {}


class S3Downloader:
    """Download ``s3://<s3_bucket>/<s3_key>`` to ``<data_dir>/raw/<basename of s3_key>``.

    Parameters
    ----------
    s3_bucket : str
        The bucket's name (no ``s3://``).
    s3_key : str
        The object's key in the bucket.
    data_dir : str
        The dataset folder: a local path or any fsspec URL. The object is written to
        its ``raw/`` subfolder.
    storage_options : mapping, optional
        Options for s3fs: ``endpoint_url``, ``key``/``secret``, ``anon=True``, ...
    data_dir_storage_options : mapping, optional
        Options for the filesystem of ``data_dir``. By default, the S3 options when
        ``data_dir`` is on ``s3://`` too, else none.
    progress : bool or fsspec.callbacks.Callback, default True
        A progress bar over the bytes downloaded (tqdm), none, or your own callback.
    chunk_size : int, default 8 MiB
        Bytes read per request.
    base_dir : str, optional
        The original creevey's name for ``data_dir``; give one of them. The attributes
        ``base_dir`` and ``local_archive_path`` are read-only aliases of ``data_dir``
        and ``dest_path``.

    Examples
    --------
    >>> downloader = S3Downloader("my-bucket", "archives/images.tar.gz", "data/pets")
    >>> downloader.dest_path
    'data/pets/raw/images.tar.gz'
    """

    def __init__(
        self,
        s3_bucket: str,
        s3_key: str,
        data_dir: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        *,
        data_dir_storage_options: Mapping[str, Any] | None = None,
        progress: Progress = True,
        chunk_size: int = _DEFAULT_CHUNK_SIZE,
        base_dir: str | None = None,
    ) -> None:
        if (data_dir is None) == (base_dir is None):
            raise TypeError("give data_dir= or base_dir= (the original creevey's name), once")
        data_dir = cast(str, data_dir if data_dir is not None else base_dir)
        for name, value in (("s3_bucket", s3_bucket), ("s3_key", s3_key)):
            if not isinstance(value, str) or not value.strip("/"):
                raise ValueError(f"{name} must be a non-empty string, not {value!r}")
        if "/" in s3_bucket or s3_bucket.startswith("s3:"):
            raise ValueError(
                f"s3_bucket must be a bare bucket name like 'my-bucket', not {s3_bucket!r}"
            )
        if s3_key.endswith("/"):
            raise ValueError(f"s3_key must name an object, not a folder: {s3_key!r}")
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive int, not {chunk_size!r}")
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key.lstrip("/")
        self.data_dir = str(data_dir).rstrip("/") or str(data_dir)
        self.storage_options = dict(storage_options or {})
        self.data_dir_storage_options = dest_options(
            self.data_dir, storage_options, data_dir_storage_options
        )
        self.progress = progress
        self.chunk_size = chunk_size
        storage.get_fs(self.data_dir, self.data_dir_storage_options)  # unknown protocol → error

    @property
    def base_dir(self) -> str:
        """The original creevey's name for :attr:`data_dir` (read-only)."""
        return self.data_dir

    @property
    def local_archive_path(self) -> str:
        """The original creevey's name for :attr:`dest_path` (read-only)."""
        return self.dest_path

    @property
    def url(self) -> str:
        """The object's URL, ``s3://bucket/key``."""
        return f"s3://{self.s3_bucket}/{self.s3_key}"

    @property
    def raw_dir(self) -> str:
        """``<data_dir>/raw``."""
        return storage.join(self.data_dir, "raw")

    @property
    def dest_path(self) -> str:
        """Where the object is written: ``<data_dir>/raw/<basename of the key>``.

        The basename is made safe by :func:`creevey_dask.storage.naming.safe_name` (a key such
        as ``a/..`` or one with control characters cannot name a path outside ``raw``).
        """
        return storage.join(self.raw_dir, safe_name(posixpath.basename(self.s3_key)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r} -> {self.dest_path!r})"

    def download(self) -> str:
        """Download the object, atomically; return :attr:`dest_path`.

        Raises
        ------
        MissingDataError
            A ``FileNotFoundError`` naming the bucket and key, if either is missing.
        CredentialsError
            A ``PermissionError`` if credentials are missing or S3 refuses them.
        OSError
            If fewer bytes arrive than the object holds; nothing is left at
            :attr:`dest_path`.
        """
        src_fs, src_path = storage.get_fs(self.url, self.storage_options)
        size = self._size(src_fs, src_path)
        name = posixpath.basename(self.dest_path)
        callback = make_callback(self.progress, f"download {name}")
        callback.set_size(size)
        logger.info("downloading %s (%d bytes) to %s", redact_url(self.url), size, self.dest_path)
        try:
            written = 0
            # only the reads from S3 are translated: a write error is the destination's
            with self._translate():
                src = src_fs.open(src_path, "rb", block_size=self.chunk_size, cache_type="none")
            # storage's atomic writer: a temporary tagged with host and pid, renamed (or
            # uploaded in one put) only when every byte arrived
            with src, storage.atomic_writer(self.dest_path, self.data_dir_storage_options) as out:
                while True:
                    with self._translate():
                        chunk = src.read(self.chunk_size)
                    if not chunk:
                        break
                    out.write(chunk)
                    written += len(chunk)
                    callback.relative_update(len(chunk))
                if written != size:
                    raise OSError(
                        f"download of {self.url} stopped after {written} of {size} bytes; "
                        "nothing was kept, try again"
                    )
        finally:
            callback.close()
        return self.dest_path

    def get_raw(self) -> str:
        """The original creevey's name for :meth:`download`."""
        return self.download()

    # -- errors ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translate(self) -> Any:
        """Turn s3fs/botocore errors into ones that name the bucket, key and cause."""
        from botocore.exceptions import NoCredentialsError, PartialCredentialsError

        where = f"bucket {self.s3_bucket!r}, key {self.s3_key!r}"
        try:
            yield
        except (NoCredentialsError, PartialCredentialsError) as err:
            raise CredentialsError(
                f"no usable S3 credentials to read {where} ({err}); pass key/secret "
                "in storage_options, set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a "
                "profile, or use storage_options={'anon': True} for a public bucket"
            ) from err
        except PermissionError as err:
            raise CredentialsError(
                f"S3 refused access to {where}: the credentials were rejected or may not "
                f"read this object ({err}); check key/secret, profile or "
                "storage_options, and the bucket's policy"
            ) from err
        except FileNotFoundError as err:
            if isinstance(err, MissingDataError):
                raise
            raise MissingDataError(
                f"S3 object not found: {where} ({self.url}); check that the bucket "
                f"exists and holds that key ({err})"
            ) from err

    def _size(self, fs: Any, path: str) -> int:
        fs.invalidate_cache(path)  # the object may have changed since it was last listed
        try:
            with self._translate():
                info = fs.info(path)
        except MissingDataError as err:
            # info() cannot tell a missing bucket from a missing key; a probe can (it
            # is only trusted after info() got past the credentials check).
            if not fs.exists(self.s3_bucket):
                raise MissingDataError(
                    f"S3 bucket {self.s3_bucket!r} does not exist (wanted key "
                    f"{self.s3_key!r}, {self.url})"
                ) from err.__cause__
            raise
        if info.get("type") != "file":
            raise MissingDataError(
                f"S3 key {self.s3_key!r} in bucket {self.s3_bucket!r} is a folder, not an "
                f"object ({self.url})"
            )
        return int(info["size"])
