"""Provenance: the proof, carried by an output itself, of which source it is and that it is whole.

Every output the engine commits carries a *proof*: the sha256 hex digest of its source
(:func:`creevey_dask.storage.naming.url_hash` of the source's text) and the output's size in
bytes at the moment of the commit. The proof travels **with the output**, never beside
it, so an output folder holds the outputs and nothing else:

local files
    the extended attribute ``user.creevey.source`` = ``"<digest> <size>"``, set on the
    temporary file before it is renamed into place, so content and proof appear in one
    step (one ``setxattr``; the commit is one ``renameat2(RENAME_NOREPLACE)``, or a hard
    link and an unlink where that rename is not supported).
S3 (``s3://``, s3fs)
    the object metadata ``x-amz-meta-creevey-source`` in the one PUT that writes the
    object; a new object is written with ``If-None-Match: *``, so of two writers racing
    for one key exactly one wins. Reading a proof is one HEAD.
``memory://``
    the process itself (a table in this module), since a memory filesystem lives in one
    process anyway.
anything else (a local filesystem without user xattrs, such as ramfs or FAT, or an
fsspec store whose metadata this module does not know)
    a records file per process (:mod:`creevey_dask.storage._records`), kept **outside**
    the output folder, in this machine's cache (``$CREEVEY_DASK_CACHE`` or
    ``~/.cache/creevey_dask/provenance``), one folder per output folder. A record names
    the file, the proof, and (locally) the inode and modification time of the committed
    file, so it holds only for the very file that was committed; it is read once per
    process and folder, and only the new tail later. A record is written before its
    commit, so there is no moment at which a committed file has no proof. The records
    prove outputs only to reruns on this machine: a rerun elsewhere finds the files
    unproven and writes hashed names beside them (it never overwrites them and never
    takes them for done).

A name that contains its source's digest (``naming="url_hash"``, ``"hash"``, every
clash loser's and every cut name, see :mod:`creevey_dask.storage.naming`) proves its source by
itself.

An existing file without a valid proof (another tool's file, an older version's output,
a file whose size changed since its commit) is never taken for done and never
overwritten. :class:`Entry` says what is at a path; :func:`inspect` reads it and
:class:`Payload` commits a writer's output to a path, exclusively unless told to
replace.

This module is longer than most (about 630 lines) on purpose: for each store the commit
that writes a proof and the inspection that reads it sit side by side (``_commit_local``
and ``_inspect_local``, ``_commit_s3`` and ``_inspect_s3``, ...), so each proof's format
has one owner and a change to one side is seen beside the other.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._fork import reset_in_child
from . import fs as storage
from ._records import _records_for, records_dir

__all__ = [
    "MISSING",
    "XATTR_NAME",
    "BytesPayload",
    "Entry",
    "FilePayload",
    "FolderIndex",
    "Payload",
    "Temporary",
    "inspect",
    "records_dir",
    "writer_temp",
]

#: The extended attribute that holds a local output's proof.
XATTR_NAME = "user.creevey.source"
#: The S3 user-metadata key of an object's proof (``x-amz-meta-creevey-source``).
S3_METADATA_KEY = "creevey-source"
#: Folders of a partition with at least this many rows are listed once (on object
#: stores) instead of one HEAD per row, so a first run costs one PUT per new object.
LIST_MIN_ROWS = 8

_HAS_XATTR = hasattr(os, "setxattr") and hasattr(os, "getxattr")
_NO_XATTR = {errno.ENOTSUP, errno.EOPNOTSUPP}  # the filesystem holds no user xattrs
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


@dataclass(frozen=True)
class Entry:
    """What is at an output path.

    Attributes
    ----------
    kind : {"missing", "file", "other"}
        Nothing there; a regular file; anything else (a folder, a FIFO, a link to one).
    digest : str or None
        The source digest of a valid proof (size and, locally, modification time
        included), or None without one.
    size : int
        The file's size in bytes (0 unless ``kind == "file"``).
    invalid : bool
        The file carries a proof that no longer holds (it changed since its commit):
        it is nobody's output, even at a name that contains a source's digest.
    """

    kind: str
    digest: str | None = None
    size: int = 0
    invalid: bool = False


MISSING = Entry("missing")


def _proof_text(digest: str, size: int, mtime_ns: int | None = None) -> str:
    return f"{digest} {size}" if mtime_ns is None else f"{digest} {size} {mtime_ns}"


def _entry(text: str | bytes | None, size: int, mtime_ns: int | None = None) -> Entry:
    """The :class:`Entry` of a file of ``size`` bytes that carries the proof ``text``.

    A proof is ``"<digest> <size>"``, locally ``"<digest> <size> <mtime_ns>"``: a file
    rewritten in place (``cp`` over it keeps the inode and its xattrs) has a new
    modification time, and a truncated one a new size, so its proof no longer holds.
    """
    if text is None:
        return Entry("file", None, size)
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    parts = text.split()
    valid = (
        len(parts) in (2, 3)
        and bool(parts[0])
        and all(p.isdigit() for p in parts[1:])
        and int(parts[1]) == size
        and (len(parts) == 2 or mtime_ns is None or int(parts[2]) == mtime_ns)
    )
    return Entry("file", parts[0], size) if valid else Entry("file", None, size, invalid=True)


# -- local files ------------------------------------------------------------------------

_xattr_ok: dict[int, bool] = {}  # per device: can it hold user xattrs?


def _set_xattr(path: str, text: str, dev: int) -> bool:
    """Set the proof on ``path`` (on device ``dev``); False if it holds no user xattrs."""
    if _xattr_ok.get(dev) is False or not _HAS_XATTR:
        return False
    value = text.encode("ascii")
    try:
        os.setxattr(path, XATTR_NAME, value)
    except PermissionError:  # a writer made its file read-only: that file, not the disk
        mode = os.stat(path).st_mode
        os.chmod(path, mode | stat.S_IWUSR)
        try:
            os.setxattr(path, XATTR_NAME, value)
        finally:
            os.chmod(path, mode)
    except OSError as err:
        if err.errno in _NO_XATTR:
            _xattr_ok[dev] = False
            return False
        raise
    _xattr_ok[dev] = True
    return True


def _local_key(final: str) -> tuple[str, str]:
    """``(folder key, name)`` of a local output, for the records fallback."""
    folder, name = os.path.split(os.path.abspath(final))
    return f"file://{os.path.realpath(folder)}", name


def _inspect_local(path: str) -> Entry:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    if not stat.S_ISREG(st.st_mode):
        return Entry("other")
    try:
        if not _HAS_XATTR:  # macOS, Windows: Python has no xattr calls there
            raise OSError(errno.ENOTSUP, "no extended attributes")
        text: bytes | None = os.getxattr(path, XATTR_NAME)
    except OSError as err:
        # ENODATA: a file without a proof, unless its disk is one we keep records for
        if err.errno not in _NO_XATTR and _xattr_ok.get(st.st_dev) is not False:
            return Entry("file", None, st.st_size)
        folder_key, name = _local_key(path)
        digest = _records_for(folder_key).lookup(
            name, st.st_size, str(st.st_ino), str(st.st_mtime_ns)
        )
        return Entry("file", digest, st.st_size)
    return _entry(text, st.st_size, st.st_mtime_ns)


_renameat2: Any = None  # libc's renameat2, or False where there is none
_noreplace_ok: dict[int, bool] = {}  # per device: does rename(RENAME_NOREPLACE) work?
_NO_NOREPLACE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def _rename_noreplace(src: str, dst: str) -> None:
    """``rename`` that fails with ``FileExistsError`` if ``dst`` exists (renameat2)."""
    global _renameat2
    func: Any = _renameat2
    if func is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        func = getattr(libc, "renameat2", False)
        if func:
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
            func.argtypes += [ctypes.c_uint]
            func.restype = ctypes.c_int
        _renameat2 = func
    if not func:  # pragma: no cover - old C libraries
        raise OSError(errno.ENOSYS, "renameat2 is not available", dst)
    at_fdcwd, noreplace = -100, 1
    if func(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace) != 0:
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), dst)
        raise OSError(code, os.strerror(code), dst)


def _commit_local(
    tmp: str, final: str, digest: str, replace: bool, st: os.stat_result | None = None
) -> bool:
    """Put the finished file ``tmp`` at ``final`` with its proof; False if taken.

    ``replace`` overwrites what is at ``final`` (the caller checked it is this source's);
    otherwise the commit is exclusive: one ``renameat2(RENAME_NOREPLACE)``, or where the
    filesystem has no such rename, a hard link and an unlink of the temporary. ``st`` is
    the temporary's ``stat`` if the caller has it.
    """
    if st is None:
        st = os.stat(tmp)
    if not _set_xattr(tmp, _proof_text(digest, st.st_size, st.st_mtime_ns), st.st_dev):
        folder_key, name = _local_key(final)
        _records_for(folder_key).add(name, digest, st.st_size, str(st.st_ino), str(st.st_mtime_ns))
    if replace:
        os.replace(tmp, final)
        return True
    if _noreplace_ok.get(st.st_dev, True) and sys.platform.startswith("linux"):
        try:
            _rename_noreplace(tmp, final)
        except FileExistsError:
            return False
        except OSError as err:
            if err.errno not in _NO_NOREPLACE:
                raise
            _noreplace_ok[st.st_dev] = False
        else:
            return True
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    except OSError as err:
        if err.errno in _NO_LINK:
            raise OSError(
                err.errno, f"no exclusive commit on this filesystem (no hard links): {err}", final
            ) from err
        raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    return True


# -- memory:// --------------------------------------------------------------------------

_memory_proofs: dict[str, tuple[str, Any]] = {}  # path -> (digest, the stored file object)
_memory_lock = threading.Lock()
reset_in_child(globals(), locks=["_memory_lock"])


def _commit_memory(fs: Any, fs_path: str, data: bytes, digest: str, replace: bool) -> bool:
    with _memory_lock:
        if not replace and fs.exists(fs_path):
            return False
        fs.pipe_file(fs_path, data)
        _memory_proofs[fs_path] = (digest, fs.store.get(fs_path))
    return True


def _fsspec_file_size(fs: Any, fs_path: str) -> Entry | int:
    """The size of the file at ``fs_path``, or the :class:`Entry` of what else is there."""
    try:
        info = fs.info(fs_path)
    except FileNotFoundError:
        return MISSING
    if info.get("type") != "file":
        return Entry("other")
    return int(info.get("size") or 0)


def _inspect_memory(fs: Any, fs_path: str) -> Entry:
    size = _fsspec_file_size(fs, fs_path)
    if isinstance(size, Entry):
        return size
    proof = _memory_proofs.get(fs_path)
    if proof is None:
        return Entry("file", None, size)
    if proof[1] is not fs.store.get(fs_path):  # written again since the commit
        return Entry("file", None, size, invalid=True)
    return Entry("file", proof[0], size)


# -- S3 ---------------------------------------------------------------------------------


def _is_s3(fs: Any) -> bool:
    return "s3" in _protocols(fs) and hasattr(fs, "call_s3")


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _commit_s3(fs: Any, fs_path: str, data: bytes, digest: str, replace: bool) -> bool:
    metadata = {S3_METADATA_KEY: _proof_text(digest, len(data))}
    try:
        fs.pipe_file(fs_path, data, mode="overwrite" if replace else "create", Metadata=metadata)
    except FileExistsError:
        return False
    return True


def _inspect_s3(fs: Any, fs_path: str) -> Entry:
    bucket, key, _ = fs.split_path(fs_path)
    if not key:
        return Entry("other")
    try:
        head = fs.call_s3("head_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return MISSING
    size = int(head.get("ContentLength") or 0)
    metadata = {str(k).lower(): v for k, v in (head.get("Metadata") or {}).items()}
    return _entry(metadata.get(S3_METADATA_KEY), size)


# -- other fsspec stores ----------------------------------------------------------------


def _remote_key(fs_path: str, protocol: str) -> tuple[str, str]:
    folder, _, name = fs_path.rstrip("/").rpartition("/")
    return f"{protocol}://{folder}", name


def _commit_other(fs: Any, fs_path: str, data: bytes, digest: str, replace: bool) -> bool:
    if not replace and fs.exists(fs_path):  # no exclusive create known for this store
        return False
    folder_key, name = _remote_key(fs_path, _protocols(fs)[0])
    _records_for(folder_key).add(name, digest, len(data), "-", "-")
    fs.pipe_file(fs_path, data)
    return True


def _inspect_other(fs: Any, fs_path: str) -> Entry:
    size = _fsspec_file_size(fs, fs_path)
    if isinstance(size, Entry):
        return size
    folder_key, name = _remote_key(fs_path, _protocols(fs)[0])
    return Entry("file", _records_for(folder_key).lookup(name, size, "-", "-"), size)


# -- the public face --------------------------------------------------------------------


def inspect(path: str, storage_options: Mapping[str, Any] | None = None) -> Entry:
    """What is at the output ``path``, with its proof if it has a valid one.

    One ``stat`` and one ``getxattr`` locally, one HEAD on S3.

    Examples
    --------
    >>> inspect("memory://provenance-doc/none.png")
    Entry(kind='missing', digest=None, size=0, invalid=False)
    """
    local = storage.local_os_path(path)
    if local is not None:
        return _inspect_local(local)
    fs, fs_path = storage.get_fs(path, storage_options)
    if storage.is_process_local(path):
        return _inspect_memory(fs, fs_path)
    if _is_s3(fs):
        return _inspect_s3(fs, fs_path)
    return _inspect_other(fs, fs_path)


class Payload:
    """A writer's finished output, ready to be committed to one of its candidate names."""

    def commit(
        self,
        path: str,
        digest: str,
        *,
        replace: bool,
        storage_options: Mapping[str, Any] | None = None,
    ) -> bool:
        """Commit to ``path`` with the proof of ``digest``; False if ``path`` was taken.

        ``replace=False`` is exclusive: if anything is at ``path`` nothing is written
        (the caller reads the winner's proof with :func:`inspect`).
        """
        local = storage.local_os_path(path)
        if local is not None:
            return self._commit_local(storage.absolute(local), digest, replace)
        return _commit_remote(path, self._data(), digest, replace, storage_options)

    def _commit_local(self, final: str, digest: str, replace: bool) -> bool:
        raise NotImplementedError

    def _data(self) -> bytes:
        raise NotImplementedError


class BytesPayload(Payload):
    """Encoded bytes (from a writer's ``encode_for``), committed in one write or PUT."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _data(self) -> bytes:
        return self.data

    def _commit_local(self, final: str, digest: str, replace: bool) -> bool:
        with writer_temp(final) as temp:
            tmp = temp.path
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            try:
                fd = os.open(tmp, flags, 0o644)
            except FileNotFoundError:  # the folder was removed since it was made
                os.makedirs(os.path.dirname(tmp), exist_ok=True)
                fd = os.open(tmp, flags, 0o644)
            try:
                view = memoryview(self.data)
                while view:  # a short write (a full disk) raises, never truncates
                    view = view[os.write(fd, view) :]
                st = os.fstat(fd)
            finally:
                os.close(fd)
            temp.gone = _commit_local(tmp, final, digest, replace, st)
            return temp.gone


class FilePayload(Payload):
    """A file that a ``write_func`` wrote at a temporary path (:func:`writer_temp`)."""

    def __init__(self, temp: Temporary, st: os.stat_result | None = None) -> None:
        self.temp = temp
        self.tmp = temp.path
        self.st = st

    def _data(self) -> bytes:
        with open(self.tmp, "rb") as f:
            return f.read()

    def _commit_local(self, final: str, digest: str, replace: bool) -> bool:
        st = self.st if self.st is not None else os.stat(self.tmp)
        self.st = None  # good for one try: after a lost race the next one stats again
        shared = st.st_nlink > 1  # a writer that linked a file: its proof is not ours to set
        if not shared and final.rpartition("/")[0] == self.temp.folder:
            self.temp.gone = _commit_local(self.tmp, final, digest, replace, st)
            return self.temp.gone
        with writer_temp(final) as copy:  # a copy of its own, beside the output
            shutil.copyfile(self.tmp, copy.path)
            copy.gone = _commit_local(copy.path, final, digest, replace)
            return copy.gone


def _commit_remote(
    path: str, data: bytes, digest: str, replace: bool, storage_options: Mapping[str, Any] | None
) -> bool:
    fs, fs_path = storage.get_fs(path, storage_options)
    if storage.is_process_local(path):
        return _commit_memory(fs, fs_path, data, digest, replace)
    if _is_s3(fs):
        return _commit_s3(fs, fs_path, data, digest, replace)
    return _commit_other(fs, fs_path, data, digest, replace)


_SCRATCH_PREFIX = "creevey-write"
_made_folders: set[str] = set()  # folders known to exist (checked again on a miss)


def _remove(path: str) -> None:
    """Remove whatever a writer left at ``path`` (a file, a link, a folder)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except (IsADirectoryError, PermissionError):
        shutil.rmtree(path, ignore_errors=True)


class Temporary:
    """A temporary file's ``path`` (in ``folder``); ``gone`` once a commit moved it."""

    __slots__ = ("folder", "gone", "path")

    def __init__(self, path: str, folder: str) -> None:
        self.path = path
        self.folder = folder
        self.gone = False


class writer_temp:  # noqa: N801 - used as a function: with writer_temp(final) as temp
    """A :class:`Temporary` for the output ``final``, removed when the block ends.

    Beside ``final`` on the local filesystem (so the commit is a rename or link), in a
    scratch folder otherwise. It keeps ``final``'s extension, so a writer that infers the
    format from the path (``im.save(path)``) writes the right one.
    """

    __slots__ = ("scratch", "temp")

    def __init__(self, final: str) -> None:
        local = storage.local_os_path(final)
        self.scratch: str | None = None
        if local is not None:
            local = storage.absolute(local)
            folder = local.rpartition("/")[0] or "/"
            if folder not in _made_folders:
                os.makedirs(folder, exist_ok=True)
                _made_folders.add(folder)
            self.temp = Temporary(storage.temp_path(local, keep_ext=True), folder)
            return
        # a scratch folder named like a temporary, so that a sweep of the temp folder
        # (sweep_scratch) removes it once its writer is dead
        scratch = storage.temp_path(os.path.join(tempfile.gettempdir(), _SCRATCH_PREFIX))
        os.mkdir(scratch, 0o700)
        self.scratch = scratch
        name = final.rstrip("/").rpartition("/")[2]
        self.temp = Temporary(
            storage.temp_path(os.path.join(scratch, name), keep_ext=True), scratch
        )

    def __enter__(self) -> Temporary:
        return self.temp

    def __exit__(self, *exc: object) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
        elif not self.temp.gone:  # a failed unlink costs as much as a write: skip it
            _remove(self.temp.path)


def sweep_scratch() -> int:
    """Remove the scratch folders of dead writers of remote outputs; how many."""
    return storage.remove_stale_temporaries(tempfile.gettempdir())


def forget_folders() -> None:
    """Forget which output folders exist (the engine calls it as each partition starts)."""
    _made_folders.clear()


def _names_in(fs: Any, fs_folder: str) -> frozenset[str]:
    """The names in one folder: one LIST request per 1,000 names on S3, nothing else."""
    if _is_s3(fs):
        bucket, key, _ = fs.split_path(fs_folder)
        prefix = f"{key.rstrip('/')}/" if key else ""
        names: set[str] = set()
        token: dict[str, str] = {}
        while True:
            try:
                page = fs.call_s3(
                    "list_objects_v2", Bucket=bucket, Prefix=prefix, Delimiter="/", **token
                )
            except FileNotFoundError:  # no such bucket: nothing in it
                return frozenset()
            names.update(o["Key"][len(prefix) :] for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return frozenset(names)
            token = {"ContinuationToken": page["NextContinuationToken"]}
    try:
        found = fs.ls(fs_folder, detail=False, refresh=True)
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()
    return frozenset(str(n).rstrip("/").rpartition("/")[2] for n in found)


class FolderIndex:
    """What one listing says is in the object-store folders of a partition's outputs.

    On an object store, a folder that holds at least :data:`LIST_MIN_ROWS` of a
    partition's outputs is listed once, so a row whose name is not in it skips the HEAD
    of its skip check: a first run costs one PUT per new object. A name the listing
    shows is inspected (one HEAD); an exclusive PUT covers a file that appeared after
    the listing. Local paths are never listed (a ``stat`` is cheaper).
    """

    def __init__(self, storage_options: Mapping[str, Any] | None = None) -> None:
        self.storage_options = dict(storage_options or {})
        self.listed: dict[str, frozenset[str]] = {}

    @classmethod
    def of(
        cls, paths: Iterable[str], storage_options: Mapping[str, Any] | None = None
    ) -> FolderIndex:
        """List the remote folders that hold at least :data:`LIST_MIN_ROWS` of ``paths``."""
        index = cls(storage_options)
        counts: dict[str, int] = {}
        for path in paths:
            if storage.local_os_path(path) is not None or storage.is_process_local(path):
                continue
            folder = path.rstrip("/").rpartition("/")[0]
            counts[folder] = counts.get(folder, 0) + 1
        for folder, count in counts.items():
            if count < LIST_MIN_ROWS:
                continue
            fs, fs_folder = storage.get_fs(folder, storage_options)
            index.listed[folder] = _names_in(fs, fs_folder)
        return index

    def inspect(self, path: str) -> Entry:
        """:func:`inspect`, answered ``missing`` without a request where a listing allows."""
        folder, _, name = path.rstrip("/").rpartition("/")
        listed = self.listed.get(folder)
        if listed is not None and name not in listed:
            return MISSING
        return inspect(path, self.storage_options)
