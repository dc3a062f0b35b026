"""Safe extraction of tar archives (``.tar``, ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``).

:class:`TarfileExtractor` extracts an archive into the folder that holds it, with two
independent layers of protection against hostile archives:

1. its own check of every member, *before anything is written*: absolute names, names
   with a ``..`` component, members beneath a symlink member, symlinks and hard links
   whose target lies outside the destination, and device files / FIFOs are refused with
   an :class:`~creevey_dask.exceptions.UnsafeArchiveError` that names the member;
2. Python's ``filter="data"`` extraction filter (where the running Python has it), which
   also resolves links against what is already on disk and drops unsafe permission bits.

Limits guard against archive bombs (a small ``.tar.gz`` that expands to millions of
files or terabytes): ``max_members``, ``max_total_bytes`` and ``max_member_bytes`` are
checked from the archive's headers while its index is read, before anything is written;
``max_header_bytes`` bounds each extended header (PAX, GNU long names) before tarfile
reads it, and headers count towards ``max_total_bytes``;
and an archive over a limit is refused with an
:class:`~creevey_dask.exceptions.UnsafeArchiveError` naming the limit.

Links are never written through: when a member's name is already taken in the
destination by an earlier member (a symlink, a hard link, a file), that entry is removed
first and the member then written in its place, so duplicate members resolve
deterministically, the last one winning, and no earlier link redirects a later write.

Nothing is ever half-extracted: the archive is first extracted into a hidden temporary
folder (``.<archive>.<random>.creevey-tmp``) and only then moved into place, one rename
per top-level entry. A refused or corrupt archive leaves the destination as it was.

Remote archives and destinations (``memory://``, ``s3://``, any fsspec URL) work through
a local temporary folder: a remote archive is fetched to it, extracted there (with the
same checks), and the files are then uploaded with fsspec. Object stores have no links,
so there a symlink or hard link to a file is stored as a copy of that file; a symlink to
a folder is refused. Remote files appear one by one; a dataset's completion marker (see
:class:`~creevey_dask.datasets.base.BaseDataset`) is what says the extraction finished.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from fsspec.callbacks import Callback
from fsspec.implementations.local import LocalFileSystem

from ..engine.progress import Progress, make_callback
from ..exceptions import ArchiveError, UnsafeArchiveError
from ..storage import fs as storage

__all__ = [
    "ARCHIVE_SUFFIXES",
    "MAX_HEADER_BYTES",
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "MAX_TOTAL_BYTES",
    "TarfileExtractor",
    "check_member",
]

logger = logging.getLogger(__name__)

#: File name endings that :class:`TarfileExtractor` accepts.
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")

#: Default :class:`TarfileExtractor` limits: members, bytes of all files, bytes of one file.
MAX_MEMBERS = 1_000_000
MAX_TOTAL_BYTES = 100 * 2**30
MAX_MEMBER_BYTES = 20 * 2**30
#: The default limit on one extended header (a PAX header, a GNU long name or link):
#: real ones hold a path and a few attributes, a few KiB at most.
MAX_HEADER_BYTES = 2**20

#: Member types whose data is header text for the next member, read whole by tarfile.
_HEADER_TYPES = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)


class _HeaderTooLargeError(Exception):
    """An extended header over a limit, found before tarfile read it."""


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that checks an extended header's size before tarfile reads it whole.

    tarfile reads a PAX header or a GNU long name into memory in one piece; a 400 MB
    one costs seconds and a gigabyte before any member limit is looked at. The limits
    are set on a subclass made per archive (:func:`_bounded_tarinfo`).
    """

    max_header_bytes = MAX_HEADER_BYTES
    max_total_bytes = MAX_TOTAL_BYTES

    def _proc_member(self, tarfile: tarfile.TarFile) -> Any:
        if self.type in _HEADER_TYPES:
            if self.size > self.max_header_bytes:
                raise _HeaderTooLargeError(
                    f"an extended header (PAX or GNU long name) of {self.size:,} bytes, more "
                    f"than max_header_bytes={self.max_header_bytes:,}"
                )
            seen = getattr(tarfile, "_creevey_header_bytes", 0) + self.size
            tarfile._creevey_header_bytes = seen  # type: ignore[attr-defined]
            if seen > self.max_total_bytes:
                raise _HeaderTooLargeError(
                    f"its headers expand to more than max_total_bytes={self.max_total_bytes:,} "
                    "bytes"
                )
        return super()._proc_member(tarfile)  # type: ignore[misc]


def _bounded_tarinfo(max_header_bytes: int, max_total_bytes: int) -> type[tarfile.TarInfo]:
    return type(
        "_BoundedTarInfo",
        (_BoundedTarInfo,),
        {"max_header_bytes": max_header_bytes, "max_total_bytes": max_total_bytes},
    )


#: Errors by which tarfile and the decompressors report corrupt or truncated data.
_CORRUPT_DATA_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


def _os_path(path: str) -> str:
    """The OS path of a local path or ``file://`` URL."""
    return LocalFileSystem._strip_protocol(str(path))


def _parent(path: str) -> str:
    """The folder holding ``path``, for local paths and URLs alike."""
    if storage.is_local(path):
        return os.path.dirname(os.path.abspath(_os_path(path)))
    head, _, _ = str(path).rstrip("/").rpartition("/")
    return head


def _is_absolute(name: str) -> bool:
    return (
        name.startswith(("/", "\\"))
        or bool(PureWindowsPath(name).drive)
        or PurePosixPath(name).is_absolute()
    )


def _escapes(path: str) -> bool:
    """Whether a relative POSIX path, once normalised, leaves its root."""
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")


def check_member(
    member: tarfile.TarInfo, symlinks: set[str] | frozenset[str] = frozenset()
) -> None:
    """Refuse a member that could write outside the destination or create a device.

    Parameters
    ----------
    member : tarfile.TarInfo
        The member to check.
    symlinks : set of str, optional
        Normalised names of the symlink members seen so far; a member beneath one of
        them is refused, because writing it would follow the link.

    Raises
    ------
    UnsafeArchiveError
        Naming the member and why it was refused.
    """
    name = member.name

    def refuse(why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"refused archive member {name!r}: {why}")

    if not name or _is_absolute(name):
        raise refuse("an absolute path (members must be relative to the archive's root)")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise refuse("a '..' path component (it could write outside the destination)")
    if member.ischr() or member.isblk():
        raise refuse("a device file")
    if member.isfifo():
        raise refuse("a FIFO (named pipe)")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise refuse(f"an unsupported member type {member.type!r}")
    normal = posixpath.normpath(name)
    parents = PurePosixPath(normal).parents
    for parent in parents:
        if str(parent) in symlinks:
            raise refuse(f"it lies beneath the symlink member {str(parent)!r}")
    if member.issym():
        target = member.linkname
        if _is_absolute(target):
            raise refuse(f"a symlink to the absolute path {target!r}")
        if _escapes(posixpath.join(posixpath.dirname(normal), target)):
            raise refuse(f"a symlink to {target!r}, outside the destination")
    if member.islnk():
        target = member.linkname
        if _is_absolute(target) or _escapes(target):
            raise refuse(f"a hard link to {target!r}, outside the destination")


class TarfileExtractor:
    """Extract a tar archive next to itself, safely and all-or-nothing.

    Parameters
    ----------
    archive_path : str
        A local path or fsspec URL of a ``.tar``, ``.tar.gz``/``.tgz``,
        ``.tar.bz2``/``.tbz2`` or ``.tar.xz``/``.txz`` archive. The compression is
        detected from the content; the name only has to be one of these.
    storage_options : mapping, optional
        Options of the filesystem that holds the archive and the destination.
    progress : bool or fsspec.callbacks.Callback, default True
        A progress bar over the bytes extracted (tqdm), none, or your own callback.
    max_members : int, default 1_000_000
        The most members (files, folders, links) an archive may have.
    max_total_bytes : int, default 100 GiB
        The most bytes all its files together may expand to.
    max_member_bytes : int, default 20 GiB
        The most bytes one file may expand to.
    max_header_bytes : int, default 1 MiB
        The most bytes one extended header (PAX, GNU long name or link) may hold;
        checked before it is read. Headers count towards ``max_total_bytes`` too.

    Raises
    ------
    ValueError
        If the archive's name does not end with a supported suffix, or a limit is not a
        positive int (TypeError if not an int).

    Examples
    --------
    >>> import io, tarfile, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> archive = os.path.join(folder, "data.tar.gz")
    >>> with tarfile.open(archive, "w:gz") as tar:
    ...     info = tarfile.TarInfo("images/a.txt"); info.size = 2
    ...     tar.addfile(info, io.BytesIO(b"hi"))
    >>> paths = TarfileExtractor(archive, progress=False).extract()
    >>> [os.path.relpath(p, folder) for p in paths]
    ['images/a.txt']
    """

    def __init__(
        self,
        archive_path: str | os.PathLike[str],
        storage_options: Mapping[str, Any] | None = None,
        *,
        progress: Progress = True,
        max_members: int = MAX_MEMBERS,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        max_member_bytes: int = MAX_MEMBER_BYTES,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        for name, value in (
            ("max_members", max_members),
            ("max_total_bytes", max_total_bytes),
            ("max_member_bytes", max_member_bytes),
            ("max_header_bytes", max_header_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be a positive int, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        self.max_members = max_members
        self.max_total_bytes = max_total_bytes
        self.max_member_bytes = max_member_bytes
        self.max_header_bytes = max_header_bytes
        path = os.fspath(archive_path)
        if not isinstance(path, str):
            raise TypeError(f"archive_path must be a str or os.PathLike, not {archive_path!r}")
        if not path.lower().endswith(ARCHIVE_SUFFIXES):
            raise ValueError(
                f"{path!r} is not a tar archive name; expected one ending in "
                f"{', '.join(ARCHIVE_SUFFIXES)}"
            )
        self.archive_path = path
        self.storage_options = dict(storage_options or {})
        self.progress = progress

    @property
    def local_archive_path(self) -> str:
        """The original creevey's name for :attr:`archive_path` (read-only)."""
        return self.archive_path

    @property
    def dest_dir(self) -> str:
        """The folder the archive is extracted into: the one holding the archive."""
        return _parent(self.archive_path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.archive_path!r})"

    def extract(self) -> list[str]:
        """Extract every member into :attr:`dest_dir`.

        Returns
        -------
        list of str
            The paths of the extracted files and links (not folders), sorted.

        Raises
        ------
        UnsafeArchiveError
            If any member is unsafe, or the archive is over a limit (``max_members``,
            ``max_total_bytes``, ``max_member_bytes``, ``max_header_bytes``); nothing is
            extracted.
        ArchiveError
            If the archive is corrupt or truncated; nothing is extracted.
        FileExistsError
            If a top-level entry of the archive already exists in the destination;
            nothing is extracted.
        FileNotFoundError
            If the archive does not exist.
        """
        dest = self.dest_dir
        with contextlib.ExitStack() as stack:
            if storage.is_local(self.archive_path):
                local_archive = _os_path(self.archive_path)
                if not os.path.isfile(local_archive):
                    raise FileNotFoundError(f"no archive at {self.archive_path!r}")
            else:
                scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="creevey-"))
                local_archive = os.path.join(scratch, os.path.basename(self.archive_path))
                fs, fs_path = storage.get_fs(self.archive_path, self.storage_options)
                if not fs.exists(fs_path):
                    raise FileNotFoundError(f"no archive at {self.archive_path!r}")
                fs.get_file(fs_path, local_archive)
            if storage.is_local(dest):
                local_dest = _os_path(dest)
                # storage names every temporary (host and pid in the name, so a sweep
                # can tell a dead extraction's stage from a live one)
                os.makedirs(local_dest, exist_ok=True)
                stage = storage.temp_path(os.path.join(local_dest, os.path.basename(local_archive)))
                os.makedirs(stage)
                stack.callback(shutil.rmtree, stage, ignore_errors=True)
            else:
                stage = stack.enter_context(tempfile.TemporaryDirectory(prefix="creevey-"))
            names = self._extract_to(local_archive, stage)
            if storage.is_local(dest):
                self._move_into_place(stage, local_dest)
                return sorted(os.path.join(local_dest, *n.split("/")) for n in names)
            self._upload(stage, dest)
            return sorted(storage.join(dest, n) for n in names)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the steps ---------------------------------------------------------------------

    def _corrupt(self, err: BaseException) -> ArchiveError:
        return ArchiveError(
            f"cannot read the archive {self.archive_path!r}, which is corrupt, truncated "
            f"or not a tar archive: {type(err).__name__}: {' '.join(str(err).split())}"
        )

    def _extract_to(self, local_archive: str, stage: str) -> list[str]:
        """Check every member, then extract them all into ``stage``; return their names."""
        try:
            # not a with-statement: opening errors are mapped here, the with comes next
            tar = tarfile.open(  # noqa: SIM115
                local_archive,
                "r:*",
                tarinfo=_bounded_tarinfo(self.max_header_bytes, self.max_total_bytes),
            )
        except _HeaderTooLargeError as err:
            raise self._over(str(err)) from None
        except _CORRUPT_DATA_ERRORS as err:
            raise self._corrupt(err) from err
        except OSError as err:
            if err.errno is not None:  # a real I/O error, not a decompressor's complaint
                raise
            raise self._corrupt(err) from err
        with tar:
            tar.errorlevel = 2  # raise on every extraction problem, never just log it
            try:
                members = self._read_index(tar)  # the whole index: finds truncation early
            except _HeaderTooLargeError as err:
                raise self._over(str(err)) from None
            except _CORRUPT_DATA_ERRORS as err:
                raise self._corrupt(err) from err
            except OSError as err:
                if err.errno is not None:
                    raise
                raise self._corrupt(err) from err
            symlinks: set[str] = set()
            earlier: set[str] = set()
            for member in members:
                check_member(member, symlinks)
                name = posixpath.normpath(member.name)
                if member.issym():
                    symlinks.add(name)
                if member.islnk() and posixpath.normpath(member.linkname) not in earlier:
                    raise ArchiveError(
                        f"archive {self.archive_path!r} is inconsistent: member {member.name!r} "
                        f"is a hard link to {member.linkname!r}, which is not an earlier file "
                        "of the archive"
                    )
                if not member.isdir():
                    earlier.add(name)
            total = sum(m.size for m in members if m.isfile())
            callback = make_callback(self.progress, f"extract {os.path.basename(local_archive)}")
            callback.set_size(total)
            try:
                kwargs: dict[str, Any] = {"filter": "data"} if _HAS_DATA_FILTER else {}
                tar.extractall(stage, members=_placed(members, stage, callback), **kwargs)
            except _CORRUPT_DATA_ERRORS as err:
                if _HAS_DATA_FILTER and isinstance(err, tarfile.FilterError):
                    name = err.tarinfo.name
                    raise UnsafeArchiveError(f"refused archive member {name!r}: {err}") from err
                raise self._corrupt(err) from err
            except OSError as err:
                if err.errno is not None:
                    raise
                raise self._corrupt(err) from err
            finally:
                callback.close()
        return sorted({posixpath.normpath(m.name) for m in members if not m.isdir()})

    def _read_index(self, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
        """Read the members' headers, refusing the archive as soon as it is over a limit."""
        members: list[tarfile.TarInfo] = []
        total = 0
        while (member := tar.next()) is not None:
            members.append(member)
            if len(members) > self.max_members:
                raise self._over(f"it has more than max_members={self.max_members:,} members")
            if member.isfile():
                if member.size > self.max_member_bytes:
                    raise self._over(
                        f"its member {member.name!r} expands to {member.size:,} bytes, more "
                        f"than max_member_bytes={self.max_member_bytes:,}"
                    )
                total += member.size
                if total > self.max_total_bytes:
                    raise self._over(
                        f"its files expand to more than max_total_bytes="
                        f"{self.max_total_bytes:,} bytes"
                    )
        return members

    def _over(self, why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"refused the archive {self.archive_path!r}: {why}; nothing was extracted "
            "(if you trust it, pass a higher limit to TarfileExtractor)"
        )

    @staticmethod
    def _move_into_place(stage: str, dest: str) -> None:
        entries = sorted(os.listdir(stage))
        clashes = [e for e in entries if os.path.lexists(os.path.join(dest, e))]
        if clashes:
            raise FileExistsError(
                f"{[os.path.join(dest, e) for e in clashes]} already exist; the archive "
                "was not extracted (remove them, or extract into an empty folder)"
            )
        for entry in entries:
            os.rename(os.path.join(stage, entry), os.path.join(dest, entry))

    def _upload(self, stage: str, dest: str) -> None:
        fs, fs_dest = storage.get_fs(dest, self.storage_options)
        uploads: list[tuple[str, str]] = []
        for root, dirs, files in os.walk(stage):
            for name in dirs:
                if os.path.islink(os.path.join(root, name)):
                    rel = os.path.relpath(os.path.join(root, name), stage)
                    raise ArchiveError(
                        f"archive {self.archive_path!r} has a symlink to a folder ({rel!r}), "
                        f"which cannot be stored on {dest!r}: that filesystem has no links"
                    )
            for name in files:
                local = os.path.join(root, name)
                rel = os.path.relpath(local, stage).replace(os.sep, "/")
                if not os.path.isfile(local):
                    raise ArchiveError(
                        f"archive {self.archive_path!r} has a link {rel!r} to no file, "
                        f"which cannot be copied to {dest!r}"
                    )
                uploads.append((local, rel))
        fs.invalidate_cache(fs_dest)
        clashes = sorted(
            {
                rel.split("/")[0]
                for _, rel in uploads
                if fs.exists(f"{fs_dest.rstrip('/')}/{rel.split('/')[0]}")
            }
        )
        if clashes:
            raise FileExistsError(
                f"{[storage.join(dest, c) for c in clashes]} already exist; the archive was "
                "not extracted (remove them, or extract into an empty folder)"
            )
        for local, rel in uploads:
            fs.put_file(local, f"{fs_dest.rstrip('/')}/{rel}")


def _make_room(stage: str, name: str, is_dir: bool) -> None:
    """Clear the way in ``stage`` for a member called ``name``, never following a link.

    An earlier member of the same name (a file, a symlink, a hard link, or a folder when
    this member is not one) is removed, so the member is written in its place and not
    through it: the last member of a name wins. Parents that earlier members made files
    are removed too, so the member's folders can be made.
    """
    parts = posixpath.normpath(name).split("/")
    path = stage
    for part in parts[:-1]:
        path = os.path.join(path, part)
        if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
            os.unlink(path)
    path = os.path.join(path, parts[-1])
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        if not is_dir:
            shutil.rmtree(path)
        return
    os.unlink(path)


def _placed(
    members: list[tarfile.TarInfo], stage: str, callback: Callback
) -> Iterator[tarfile.TarInfo]:
    """Yield the members for extraction into ``stage``, each after :func:`_make_room`.

    ``extractall`` takes the members one by one from this generator, so each is yielded
    just before it is written; the progress callback advances by each file's size.
    """
    for member in members:
        _make_room(stage, member.name, member.isdir())
        yield member
        if member.isfile():
            callback.relative_update(member.size)
