"""Reproducible datasets on fsspec: ``raw/`` → ``interim/`` → ``processed/``.

A dataset is one base folder (a local path or any fsspec URL) with three stages:

``raw/``        the data as received (downloaded, extracted), never edited by hand
``interim/``    intermediate results
``processed/``  what models read

A subclass of :class:`BaseDataset` says how to get the raw data (:meth:`~BaseDataset.get_raw`)
and how to turn it into processed data (:meth:`~BaseDataset.process`);
:meth:`~BaseDataset.build` takes a user from nothing to model-ready data in one call.

Idempotence. A completed ``get_raw`` is recorded by a marker file, ``.creevey-raw-complete``
in the base folder (beside, not inside, ``raw/``), written last and atomically. ``build()``
skips ``get_raw`` when the marker is there. When it is not (first build, or an earlier
``get_raw`` that was interrupted or failed), ``build()`` deletes whatever is in ``raw/``
and runs ``get_raw`` from a clean slate; ``build(force=True)`` deletes the marker first and
does the same. ``raw/`` therefore belongs to ``get_raw``: do not keep other files there.
``process()`` runs on every build and should itself skip finished work (the pipelines'
``skip_existing=True`` does).

A dataset of images listed in a table of URLs is a few lines on top of the download,
resize and split operations of the accessor (a sketch; see their own documentation for
the exact arguments)::

    class PetsDataset(BaseDataset):
        def get_raw(self):
            urls = pd.read_csv("https://example.org/pets.csv")  # columns url, label
            urls.creevey.download(url_col="url", outdir=self.raw_dir)

        def process(self):
            images = self.files("raw")  # columns path, size
            resized = images.creevey.resize(
                path_col="path", shape=(224, 224), outdir=self.interim_dir
            )
            resized.creevey.imagenet_symlinks(..., outdir=self.processed_dir)

Storage. Every path goes through fsspec (:mod:`creevey_dask.storage`), so ``base_dir``
may be local, ``memory://`` or an object store. :meth:`BaseDataset.files` turns a stage
into a DataFrame of ``path`` and ``size``, the input the pipelines take.
"""

from __future__ import annotations

import abc
import datetime
import json
import logging
import os
import posixpath
from collections.abc import Callable, Mapping
from typing import Any

import dask.dataframe as dd
import pandas as pd

from ..engine.progress import Progress
from ..exceptions import MissingDataError
from ..storage import fs as storage
from .s3download import S3Downloader, dest_options
from .tarfiles import (
    ARCHIVE_SUFFIXES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_TOTAL_BYTES,
    TarfileExtractor,
)

__all__ = ["RAW_MARKER", "STAGES", "BaseDataset", "S3TarfileDataset"]

logger = logging.getLogger(__name__)

#: The stage folders of a dataset, in order.
STAGES = ("raw", "interim", "processed")

#: Name of the file, in the base folder, that records a completed ``get_raw``.
RAW_MARKER = ".creevey-raw-complete"


def _one_of(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    """The value of a parameter that also has the original creevey's name ``alias``."""
    if value is not None and alias_value is not None:
        raise TypeError(f"give {name}= or {alias}= (the original creevey's name), not both")
    if value is None and alias_value is None:
        raise TypeError(f"{name} is required (or {alias}=, the original creevey's name)")
    return value if value is not None else alias_value


#: Files per partition of the dask frame that :meth:`BaseDataset.files` returns.
_FILES_PER_PARTITION = 10_000


class BaseDataset(abc.ABC):
    """A dataset in a base folder with ``raw/``, ``interim/`` and ``processed/`` stages.

    Subclasses implement :meth:`get_raw` (fill :attr:`raw_dir`) and :meth:`process`
    (read :attr:`raw_dir`, write :attr:`interim_dir` and :attr:`processed_dir`).

    Parameters
    ----------
    base_dir : str or os.PathLike
        The dataset's folder: a local path or any fsspec URL (``s3://bucket/pets``,
        ``memory://pets``). It need not exist yet.
    storage_options : mapping, optional
        Options for the filesystem of ``base_dir`` (for s3fs: ``endpoint_url``, ...).
    data_dir : str or os.PathLike, optional
        The original creevey's name for ``base_dir``; give one of them. The attribute
        ``data_dir`` is a read-only alias of ``base_dir``.

    Raises
    ------
    ValueError
        If ``base_dir`` has a protocol fsspec does not know; the message names it.

    Examples
    --------
    >>> class Hello(BaseDataset):
    ...     def get_raw(self):
    ...         storage.write_bytes_atomic(storage.join(self.raw_dir, "hi.txt"), b"hi",
    ...                                    self.storage_options)
    ...     def process(self):
    ...         data = storage.read_bytes(storage.join(self.raw_dir, "hi.txt"),
    ...                                   self.storage_options)
    ...         storage.write_bytes_atomic(storage.join(self.processed_dir, "HI.txt"),
    ...                                    data.upper(), self.storage_options)
    >>> ds = Hello("memory://hello").build()
    >>> ds.raw_dir
    'memory://hello/raw'
    >>> ds.files("processed")[["path", "size"]].to_dict("records")
    [{'path': 'memory://hello/processed/HI.txt', 'size': 2}]
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        base_dir = _one_of("base_dir", base_dir, "data_dir", data_dir)
        path = os.fspath(base_dir)
        if not isinstance(path, str) or not path:
            raise TypeError(f"base_dir must be a non-empty str or os.PathLike, not {base_dir!r}")
        self.base_dir = path.rstrip("/") or path
        self.storage_options = dict(storage_options or {})
        storage.get_fs(self.base_dir, self.storage_options)  # unknown protocol → ValueError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_dir!r})"

    # -- the stage folders -------------------------------------------------------------

    @property
    def data_dir(self) -> str:
        """The original creevey's name for :attr:`base_dir` (read-only)."""
        return self.base_dir

    @property
    def raw_dir(self) -> str:
        """``<base_dir>/raw``: the data as received."""
        return storage.join(self.base_dir, "raw")

    @property
    def interim_dir(self) -> str:
        """``<base_dir>/interim``: intermediate results."""
        return storage.join(self.base_dir, "interim")

    @property
    def processed_dir(self) -> str:
        """``<base_dir>/processed``: the data ready for modelling."""
        return storage.join(self.base_dir, "processed")

    def stage_dir(self, stage: str) -> str:
        """The folder of ``stage``, one of ``"raw"``, ``"interim"``, ``"processed"``."""
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r} is not one of {list(STAGES)}")
        return storage.join(self.base_dir, stage)

    @property
    def raw_marker(self) -> str:
        """The marker file whose presence says that ``get_raw`` completed."""
        return storage.join(self.base_dir, RAW_MARKER)

    # -- what subclasses implement -----------------------------------------------------

    @abc.abstractmethod
    def get_raw(self) -> None:
        """Fetch the raw data into :attr:`raw_dir` (an empty folder when called)."""

    @abc.abstractmethod
    def process(self) -> None:
        """Turn :attr:`raw_dir` into :attr:`interim_dir` and :attr:`processed_dir`."""

    # -- building ----------------------------------------------------------------------

    @property
    def raw_complete(self) -> bool:
        """Whether an earlier ``get_raw`` completed (its marker exists)."""
        fs, marker = self._fs_path(self.raw_marker)
        fs.invalidate_cache(marker)
        return bool(fs.exists(marker))

    def build_raw(self, force: bool = False) -> bool:
        """Run :meth:`get_raw` unless it already completed; return whether it ran.

        Without the marker (or with ``force=True``) the marker is deleted, ``raw/`` is
        emptied and ``get_raw`` runs; the marker is written only after it returns. So
        an interrupted or failed ``get_raw`` leaves no marker, and the next call starts
        over cleanly.
        """
        if not force and self.raw_complete:
            logger.info(
                "%s: raw data already complete (%s); build(force=True) fetches it again",
                self,
                self.raw_marker,
            )
            return False
        fs, marker = self._fs_path(self.raw_marker)
        if fs.exists(marker):
            fs.rm(marker)
        self._empty(self.raw_dir)
        logger.info("%s: getting the raw data into %s", self, self.raw_dir)
        self.get_raw()
        record = {
            "step": "get_raw",
            "dataset": f"{type(self).__module__}.{type(self).__qualname__}",
            "completed": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        storage.write_bytes_atomic(
            self.raw_marker, json.dumps(record).encode(), self.storage_options
        )
        return True

    def build(self, force: bool = False) -> BaseDataset:
        """Get the raw data (unless already complete) and process it.

        Parameters
        ----------
        force : bool, default False
            Fetch the raw data again even if an earlier ``get_raw`` completed.

        Returns
        -------
        BaseDataset
            ``self``, so that ``ds.build().files("processed")`` reads well.
        """
        self.build_raw(force=force)
        logger.info("%s: processing", self)
        self.process()
        return self

    # -- DataFrame glue ----------------------------------------------------------------

    def files(
        self,
        subdir: str = "raw",
        *,
        dask: bool = False,
        npartitions: int | None = None,
    ) -> pd.DataFrame | dd.DataFrame:
        """A table of the files under a stage, ready for ``df.creevey.resize(path_col="path")``.

        Parameters
        ----------
        subdir : {"raw", "interim", "processed"}, default "raw"
            The stage to list (recursively).
        dask : bool, default False
            Return a dask DataFrame instead of a pandas one.
        npartitions : int, optional
            Partitions of the dask frame; by default one per 10,000 files.

        Returns
        -------
        pandas.DataFrame or dask.dataframe.DataFrame
            Columns ``path`` (string: the file's path or URL, spelled from ``base_dir``)
            and ``size`` (int64 bytes), sorted by path. Hidden files and folders
            (temporaries of interrupted writes) are left out.

        Raises
        ------
        MissingDataError
            A ``FileNotFoundError`` if the stage's folder does not exist.
        """
        folder = self.stage_dir(subdir)
        fs, fs_folder = self._fs_path(folder)
        fs.invalidate_cache(fs_folder)
        if not fs.exists(fs_folder):
            raise MissingDataError(
                f"{folder!r} does not exist; build the dataset first ({self!r}.build())"
            )
        prefix = fs_folder.rstrip("/") + "/"
        rows = []
        for path, info in sorted(fs.find(fs_folder, detail=True).items()):
            rel = path[len(prefix) :] if path.startswith(prefix) else posixpath.basename(path)
            if any(part.startswith(".") for part in rel.split("/")):
                continue  # temporaries are not data
            rows.append((storage.join(folder, rel), int(info.get("size") or 0)))
        frame = pd.DataFrame(
            {
                "path": pd.array([r[0] for r in rows], dtype="string"),
                "size": pd.array([r[1] for r in rows], dtype="int64"),
            }
        )
        if not dask:
            return frame
        if npartitions is None:
            npartitions = max(1, -(-len(frame) // _FILES_PER_PARTITION))
        return dd.from_pandas(frame, npartitions=npartitions, sort=False)

    # -- helpers -----------------------------------------------------------------------

    def _fs_path(self, path: str) -> tuple[Any, str]:
        return storage.get_fs(path, self.storage_options)

    def _empty(self, folder: str) -> None:
        """Delete everything in ``folder``; create it if local."""
        fs, fs_folder = self._fs_path(folder)
        fs.invalidate_cache(fs_folder)
        if fs.exists(fs_folder):
            logger.info("%s: clearing %s", self, folder)
            fs.rm(fs_folder, recursive=True)
        if storage.is_local(folder):
            fs.makedirs(fs_folder, exist_ok=True)


class S3TarfileDataset(BaseDataset):
    """A dataset whose raw data is one tar archive in S3.

    ``get_raw`` downloads the archive into ``raw/`` (:class:`S3Downloader`), extracts it
    there safely (:class:`TarfileExtractor`) and deletes the archive. ``process`` is yours
    to write: subclass this class and implement it.

    Parameters
    ----------
    base_dir : str or os.PathLike
        The dataset's folder: a local path or any fsspec URL.
    s3_bucket : str
        The bucket holding the archive (a bare name, no ``s3://``).
    s3_key : str
        The archive's key: ``.tar``, ``.tar.gz``, ``.tar.bz2`` or ``.tar.xz`` (or
        ``.tgz``, ``.tbz2``, ``.txz``).
    storage_options : mapping, optional
        Options for s3fs to read the archive: ``endpoint_url``, ``key``/``secret``,
        ``anon=True``, ...
    base_storage_options : mapping, optional
        Options for the filesystem of ``base_dir``; by default the S3 options when
        ``base_dir`` is on ``s3://`` too, else none.
    progress : bool or fsspec.callbacks.Callback, default True
        Progress bars for the download and the extraction (a callback of your own is
        used for the download, and the extraction gets none).
    data_dir : str or os.PathLike, optional
        The original creevey's name for ``base_dir``.
    Processor : class, optional
        As in the original creevey: ``Processor(base_dir=...)`` is made here and its
        ``process()`` is this dataset's :meth:`process` (instead of subclassing).
    max_members, max_total_bytes, max_member_bytes : int, optional
        The extraction limits, passed to :class:`TarfileExtractor` (defaults: 1,000,000
        members, 100 GiB in all, 20 GiB per file); an archive over one is refused with
        an :class:`~creevey_dask.exceptions.UnsafeArchiveError` naming it.

    Attributes
    ----------
    downloader : S3Downloader
        Fetches the archive into ``raw/``; its ``chunk_size`` and ``progress`` may be
        changed before a build.
    storage_options : dict
        The options of ``base_dir``'s filesystem.
    s3_storage_options : dict
        The options of the S3 filesystem holding the archive.

    Notes
    -----
    For a remote ``base_dir`` the archive is written to ``raw/``, fetched back to a local
    temporary folder to be extracted, and its files uploaded (see
    :mod:`creevey_dask.datasets.tarfiles`): that needs local disk space for the archive and its
    contents.

    Examples
    --------
    >>> class Pets(S3TarfileDataset):
    ...     def process(self):
    ...         self.files("raw").creevey.resize(
    ...             path_col="path", shape=(224, 224), outdir=self.processed_dir
    ...         )
    >>> Pets("data/pets", "my-bucket", "pets.tar.gz").raw_dir
    'data/pets/raw'
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        s3_bucket: str | None = None,
        s3_key: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        *,
        base_storage_options: Mapping[str, Any] | None = None,
        progress: Progress = True,
        data_dir: str | os.PathLike[str] | None = None,
        Processor: Callable[..., Any] | None = None,  # noqa: N803 - the original's name
        max_members: int = MAX_MEMBERS,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        max_member_bytes: int = MAX_MEMBER_BYTES,
    ) -> None:
        # checked here, up front, by the extractor that will use them
        TarfileExtractor(
            f"limits{ARCHIVE_SUFFIXES[0]}",
            max_members=max_members,
            max_total_bytes=max_total_bytes,
            max_member_bytes=max_member_bytes,
        )
        self.max_members = max_members
        self.max_total_bytes = max_total_bytes
        self.max_member_bytes = max_member_bytes
        base = os.fspath(_one_of("base_dir", base_dir, "data_dir", data_dir))
        if s3_bucket is None or s3_key is None:
            raise TypeError("S3TarfileDataset needs s3_bucket and s3_key")
        super().__init__(base, dest_options(base, storage_options, base_storage_options))
        if not str(s3_key).lower().endswith(ARCHIVE_SUFFIXES):
            if str(s3_bucket).lower().endswith(ARCHIVE_SUFFIXES):
                raise ValueError(
                    f"s3_key {s3_key!r} is not a tar archive name, but s3_bucket {s3_bucket!r} "
                    "looks like one: the original creevey's order was (s3_bucket, s3_key, "
                    "base_dir), here it is (base_dir, s3_bucket, s3_key); pass them by keyword"
                )
            raise ValueError(
                f"s3_key {s3_key!r} is not a tar archive name; expected one ending in "
                f"{', '.join(ARCHIVE_SUFFIXES)}"
            )
        self.s3_storage_options = dict(storage_options or {})
        self.progress = progress
        self.downloader = S3Downloader(
            s3_bucket,
            s3_key,
            self.base_dir,
            self.s3_storage_options,
            data_dir_storage_options=self.storage_options,
            progress=progress,
        )
        self.processor = None if Processor is None else Processor(base_dir=self.base_dir)

    @property
    def extractor(self) -> TarfileExtractor:
        """The extractor of the downloaded archive (the original creevey's attribute)."""
        return TarfileExtractor(
            self.downloader.dest_path,
            self.storage_options,
            progress=self.progress is True,
            max_members=self.max_members,
            max_total_bytes=self.max_total_bytes,
            max_member_bytes=self.max_member_bytes,
        )

    @property
    def s3_bucket(self) -> str:
        """The bucket holding the archive."""
        return self.downloader.s3_bucket

    @property
    def s3_key(self) -> str:
        """The archive's key."""
        return self.downloader.s3_key

    def get_raw(self) -> None:
        """Download the archive into ``raw/``, extract it there, delete the archive."""
        archive = self.downloader.download()
        self.extractor.extract()
        fs, fs_archive = self._fs_path(archive)
        fs.rm(fs_archive)

    def process(self) -> None:
        """``Processor(base_dir=...).process()`` if a ``Processor`` was given; else
        subclass :class:`S3TarfileDataset` and implement it."""
        if self.processor is not None:
            self.processor.process()
            return
        raise NotImplementedError(
            f"{type(self).__name__}.process() is not implemented: subclass "
            "S3TarfileDataset and implement process() to turn raw/ into processed/ "
            "(for example with self.files('raw').creevey.resize(...)); the raw data is "
            f"ready in {self.raw_dir!r}"
        )
