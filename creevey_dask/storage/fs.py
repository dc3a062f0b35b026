"""Storage through fsspec: the one owner of atomic writes, temporary names and clean-up.

Every read and write of the library goes through this module, so that local paths,
``memory://``, ``s3://`` and any other fsspec protocol behave the same way.

**Atomic writes.** On the local filesystem the bytes go to a hidden temporary file in
the destination folder (:func:`temp_path`), which is then renamed over the final name
(``os.replace``), so a reader never sees a partial file and a killed process leaves at
most a temporary file, never a partial output. On other filesystems the bytes are sent
in one ``pipe_file`` call (:func:`write_bytes_atomic`) or one ``put_file`` of a
finished local file (:func:`atomic_writer`): object stores publish an object only
when its upload completes. A failed write removes only its own temporary file.

**Temporary names** are ``.<name>.<host>-<pid>-<random>.creevey-tmp``, or with the
final name's extension after it (``….creevey-tmp.png``) for a writer that infers the
format from the path; cut to at most 255 bytes (the name part is shortened by bytes,
so any final name up to 255 bytes has a temporary name that fits).
:func:`remove_stale_temporaries` reads the host and pid back and removes only the
temporaries of writers that are gone (on this host: the process is dead or a zombie;
from another host: older than an hour). The engine sweeps every folder a
partition will write to before its first row runs.

Which source an output belongs to is proved on the output itself
(:mod:`creevey_dask.storage.provenance`); nothing is written beside the outputs.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import fsspec
from fsspec.core import split_protocol, strip_protocol
from fsspec.implementations.local import LocalFileSystem

from .._fork import reset_in_child
from ..exceptions import DownloadTimeoutError, SizeLimitError, UnsafeSourceError

__all__ = [
    "MAX_NAME_BYTES",
    "TEMP_SUFFIX",
    "absolute",
    "atomic_writer",
    "exists",
    "file_state",
    "get_fs",
    "is_local",
    "is_process_local",
    "is_temporary",
    "join",
    "local_folder",
    "local_os_path",
    "read_bytes",
    "read_source",
    "remove_stale_temporaries",
    "sweep",
    "temp_path",
    "write_bytes_atomic",
]

#: Suffix of the temporary files that atomic local writes create and then rename.
TEMP_SUFFIX = ".creevey-tmp"
#: The longest file name, in bytes of UTF-8, that common filesystems (ext4, xfs, APFS,
#: S3 keys per segment in practice) accept.
MAX_NAME_BYTES = 255

logger = logging.getLogger(__name__)

_LOCAL_PROTOCOLS = {None, "file", "local"}
_fs_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], fsspec.AbstractFileSystem] = {}
_fs_lock = threading.Lock()
# a forked worker makes its own filesystems: an s3fs instance of the caller runs on the
# caller's event loop, which the child does not have ("This class is not fork-safe")
reset_in_child(globals(), locks=["_fs_lock"], clear=["_fs_cache"])


def _host_tag() -> str:
    """This host's name for temporaries, with its pid namespace where there is one.

    Two containers may share a hostname but not their pids: a writer's pid means
    something only in its own pid namespace, so the namespace is part of the host.
    """
    host = socket.gethostname().replace("-", "_").replace(".", "_")[:24] or "host"
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return host
    return f"{host}_{namespace:x}"


_HOST = _host_tag()


def protocol_of(path: str) -> str | None:
    """The fsspec protocol a path names (``"s3"``), or None for a plain local path."""
    if "://" not in path and "::" not in path:  # the common case, without fsspec's parser
        return None
    protocol, _ = split_protocol(path)
    return protocol


def local_os_path(path: str) -> str | None:
    """The OS path for a local path or ``file://`` URL; None for any other protocol.

    Examples
    --------
    >>> local_os_path("out/a.png"), local_os_path("s3://bucket/a.png")
    ('out/a.png', None)
    """
    protocol = protocol_of(path)
    if protocol is None:
        return path
    if protocol in _LOCAL_PROTOCOLS:
        return LocalFileSystem._strip_protocol(path)
    return None


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local filesystem (no protocol, or ``file://``)."""
    return protocol_of(str(path)) in _LOCAL_PROTOCOLS


#: Protocols whose files live in one process's memory: another process cannot see them.
_PROCESS_LOCAL_PROTOCOLS = {"memory"}


def is_process_local(path: str) -> bool:
    """Whether ``path`` lives in this process's memory (``memory://``).

    A worker process that writes there writes into its own copy, which the caller
    never sees; such outputs need threads (or in-process workers).

    Examples
    --------
    >>> is_process_local("memory://out/a.png"), is_process_local("s3://b/a.png")
    (True, False)
    """
    return protocol_of(str(path)) in _PROCESS_LOCAL_PROTOCOLS


def get_fs(
    path: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the filesystem for ``path`` and the path as that filesystem names it.

    Filesystem instances are cached per protocol and options, because resolving one
    costs far more than the per-row work of a fast pipeline.

    Parameters
    ----------
    path : str
        A local path or any fsspec URL (``memory://x.png``, ``s3://bucket/key``).
    storage_options : mapping, optional
        Keyword arguments for the filesystem (for s3fs: ``endpoint_url``, ``key``, ...).

    Raises
    ------
    ValueError
        If the protocol is not known to fsspec; the message names it.
    """
    protocol = protocol_of(path) or "file"
    options = dict(storage_options or {})
    key = (protocol, tuple(sorted((k, repr(v)) for k, v in options.items())))
    fs = _fs_cache.get(key)
    if fs is None:
        try:
            cls = fsspec.get_filesystem_class(protocol)
        except ValueError as err:
            raise ValueError(
                f"unknown storage protocol {protocol!r} in {path!r}; "
                f"fsspec knows {sorted(fsspec.available_protocols())}"
            ) from err
        except ImportError as err:
            raise ImportError(
                f"the {protocol!r} protocol in {path!r} needs an extra package: {err}"
            ) from err
        with _fs_lock:
            fs = _fs_cache.setdefault(key, cls(**options))
    return fs, strip_protocol(path) if protocol == "file" else fs._strip_protocol(path)


def join(base: str, *parts: str) -> str:
    """Join path parts with ``/`` below ``base``, for local paths and URLs alike."""
    out = str(base).rstrip("/")
    for part in parts:
        out = f"{out}/{str(part).strip('/')}"
    return out


def exists(path: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether a file or folder exists at ``path``."""
    local = local_os_path(path)
    if local is not None:
        return os.path.exists(local)
    fs, fs_path = get_fs(path, storage_options)
    return bool(fs.exists(fs_path))


def read_bytes(path: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """Read the whole file at ``path``."""
    local = local_os_path(path)
    if local is not None:
        with open(local, "rb") as f:
            return f.read()
    fs, fs_path = get_fs(path, storage_options)
    return bytes(fs.cat_file(fs_path))


_READ_CHUNK = 1 << 20


def read_source(
    path: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    max_bytes: int,
    deadline: float,
) -> bytes:
    """The bytes of a source file, bounded like a download: size, time and file type.

    A local path is opened without blocking and refused unless it is a regular file
    (a FIFO, a device such as ``/dev/zero``, a socket or a folder is refused by its
    type before any byte is read); a file larger than ``max_bytes`` (by its size, then
    by what is read) is refused; the read stops when ``deadline`` seconds have passed
    (checked between chunks of 1 MiB: one blocking read of a stalled network
    filesystem is not interrupted). Other fsspec paths are checked by ``info()``
    (type and size) and read in chunks under the same bounds.

    Raises
    ------
    UnsafeSourceError
        Not a regular file.
    SizeLimitError
        Larger than ``max_bytes``.
    DownloadTimeoutError
        The deadline passed.
    """
    end = time.monotonic() + deadline
    local = local_os_path(path)
    if local is not None:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(local, flags)
        with open(fd, "rb", buffering=0, closefd=True) as f:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise UnsafeSourceError(
                    f"{path!r} is {_file_kind(mode)}, not a regular file; refused before reading"
                )
            _check_size(path, os.fstat(fd).st_size, max_bytes)
            return _read_bounded(f, path, max_bytes, end, deadline)
    fs, fs_path = get_fs(path, storage_options)
    info = fs.info(fs_path)
    if info.get("type", "file") != "file":
        raise UnsafeSourceError(
            f"{path!r} is a {info.get('type')!r}, not a regular file; refused before reading"
        )
    size = info.get("size")
    if isinstance(size, int):
        _check_size(path, size, max_bytes)
    with fs.open(fs_path, "rb") as f:
        return _read_bounded(f, path, max_bytes, end, deadline)


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _check_size(path: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise SizeLimitError(
            f"{path!r} holds {size:,} bytes, more than max_bytes={max_bytes:,}", nbytes=0
        )


def _read_bounded(f: Any, path: str, max_bytes: int, end: float, deadline: float) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > end:
            raise DownloadTimeoutError(
                f"reading {path!r} took longer than the deadline of {deadline:g} s",
                nbytes=total,
            )
        chunk = f.read(min(_READ_CHUNK, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise SizeLimitError(
                f"{path!r} is larger than max_bytes={max_bytes:,}; stopped after {total:,} bytes",
                nbytes=total,
            )
        chunks.append(chunk)


def _cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    encoded = text.encode("utf-8", "surrogateescape")
    if len(encoded) <= limit:
        return text
    return encoded[: max(limit, 0)].decode("utf-8", "ignore")


def temp_path(final: str, *, keep_ext: bool = False) -> str:
    """A fresh temporary path beside the local path ``final``, tagged with host and pid.

    ``.<name>.<host>-<pid>-<random>.creevey-tmp``, at most :data:`MAX_NAME_BYTES`
    bytes: the name part is cut (by bytes) to make room for the tag, so any final name
    has a temporary name that fits. ``keep_ext=True`` appends ``final``'s extension
    (``….creevey-tmp.png``), for writers that take the format from the path.
    :func:`remove_stale_temporaries` recognises both. Every temporary file or folder of
    the library is named by this function.

    Examples
    --------
    >>> temp_path("out/cat.png", keep_ext=True)  # doctest: +ELLIPSIS
    'out/.cat.png....creevey-tmp.png'
    """
    folder, sep, name = final.rpartition(os.sep)  # string work only: it runs per row
    ext = ""
    if keep_ext:
        dot = name.rfind(".")
        if dot > 0 and _EXT.fullmatch(name[dot:]):
            ext = name[dot:]
    tag = f".{_HOST}-{os.getpid()}-{_unique()}{TEMP_SUFFIX}{ext}"
    room = MAX_NAME_BYTES - 1 - len(tag)  # the tag is ASCII: its length is its bytes
    if 4 * len(name) > room:  # a name that may not fit: cut by bytes
        name = _cut_utf8(name, room)
    return f"{folder}{sep}.{name}{tag}"


_counter = itertools.count()
_counter_pid = [os.getpid(), uuid.uuid4().hex[:4]]


def _unique() -> str:
    """A tag no other temporary of this process has: a random prefix and a counter.

    The prefix is drawn again in a forked child, so parent and child never share one.
    """
    pid = os.getpid()
    if _counter_pid[0] != pid:
        _counter_pid[:] = [pid, uuid.uuid4().hex[:4]]
    return f"{_counter_pid[1]}{next(_counter):04x}"


_EXT = re.compile(r"(\.[A-Za-z0-9]{1,8})?")
_TEMP_NAME = re.compile(
    r"\.(?P<name>.*)\.(?P<tag>[^.]*)" + re.escape(TEMP_SUFFIX) + r"(\.[A-Za-z0-9]{1,8})?", re.S
)


def is_temporary(name: str) -> bool:
    """Whether the file name ``name`` is one of :func:`temp_path`'s temporaries.

    Examples
    --------
    >>> is_temporary(".a.png.h-1-0123abcd.creevey-tmp"), is_temporary("a.png")
    (True, False)
    """
    return _TEMP_NAME.fullmatch(name) is not None


@contextlib.contextmanager
def _local_commit(final: str) -> Iterator[str]:
    """Yield a temporary path beside ``final``; rename it over ``final`` on success.

    On any failure only the temporary file is removed; ``final`` is untouched.
    """
    folder = os.path.dirname(os.path.abspath(final))
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path(os.path.abspath(final))
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(
    path: str,
    data: bytes | bytearray | memoryview,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write ``data`` to ``path`` so that no partial file is ever visible there.

    Local parent folders are created (object stores have none). On the local
    filesystem the data is written to a temporary file beside the target
    (:func:`temp_path`) and renamed over it; if anything fails, the temporary file is
    removed and the target is untouched. Elsewhere, the data is sent in a single
    ``pipe_file`` call.
    """
    final = local_os_path(path)
    if final is not None:
        with _local_commit(final) as tmp, open(tmp, "wb") as f:
            f.write(data)
        return
    fs, fs_path = get_fs(path, storage_options)
    fs.pipe_file(fs_path, bytes(data))


@contextlib.contextmanager
def atomic_writer(
    path: str, storage_options: Mapping[str, Any] | None = None
) -> Iterator[IO[bytes]]:
    """A binary file to stream into; it appears at ``path`` only when the block succeeds.

    For large outputs that should not be held in memory (an S3 object being
    downloaded). Local: a temporary file beside ``path``, renamed over it. Elsewhere: a
    local scratch file uploaded with one ``put_file`` (object stores publish the
    object only when the upload completes), then removed. If the block raises, nothing
    appears at ``path`` and the temporary file is removed.

    Examples
    --------
    >>> with atomic_writer("memory://atomic/doc.txt") as f:
    ...     _ = f.write(b"all or nothing")
    >>> read_bytes("memory://atomic/doc.txt")
    b'all or nothing'
    """
    final = local_os_path(path)
    if final is not None:
        with _local_commit(final) as tmp, open(tmp, "wb") as f:
            yield f
        return
    fs, fs_path = get_fs(path, storage_options)
    with tempfile.TemporaryDirectory(prefix="creevey-") as scratch:
        local = os.path.join(scratch, "upload")
        with open(local, "wb") as f:
            yield f
        fs.put_file(local, fs_path)


def file_state(path: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """What is at ``path``: ``"missing"``, ``"complete"`` (a non-empty file) or ``"other"``.

    ``"other"`` is an empty file, a folder, or anything else that is not a finished
    output; a skip never trusts it.
    """
    local = local_os_path(path)
    if local is not None:
        try:
            st = os.stat(local)
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        return "complete" if stat.S_ISREG(st.st_mode) and st.st_size > 0 else "other"
    fs, fs_path = get_fs(path, storage_options)
    try:
        info = fs.info(fs_path)
    except FileNotFoundError:
        return "missing"
    is_file = info.get("type") == "file"
    return "complete" if is_file and int(info.get("size") or 0) > 0 else "other"


def local_folder(path: str) -> str | None:
    """The local folder that holds ``path``, or None if ``path`` is not local."""
    local = local_os_path(path)
    return None if local is None else os.path.dirname(absolute(local))


def absolute(path: str) -> str:
    """``os.path.abspath(path)``, without its cost for a path that is already one."""
    if (
        path.startswith("/")
        and "/." not in path
        and "//" not in path
        and not path.endswith("/")
        and os.sep == "/"
    ):
        return path
    return os.path.abspath(path)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs; a zombie (killed, not yet reaped) writes no more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[:1]
    except OSError:  # no /proc here: the signal's answer stands
        return True
    return state != [b"Z"]


def remove_stale_temporaries(folder: str, max_age: float = 3600.0) -> int:
    """Remove the temporaries that killed writers left in a local ``folder``.

    A temporary (a file or a staging folder named by :func:`temp_path`) is stale when
    the process that wrote it, on this host, is gone; one from another host (or
    without a readable tag) is stale once older than ``max_age`` seconds. Temporaries
    of live processes are left alone. Returns how many were removed.
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None:
            continue
        host, _, rest = match["tag"].partition("-")
        pid_text = rest.partition("-")[0]
        if host == _HOST and pid_text.isdigit():
            stale = not _pid_alive(int(pid_text))
        else:
            try:
                stale = now - entry.stat().st_mtime > max_age
            except FileNotFoundError:
                continue
        if stale:
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                continue
            except OSError as err:  # a read-only folder: the run goes on without the sweep
                logger.warning("cannot remove the stale temporary %r: %s", entry.path, err)
    return removed


def sweep(folders: Iterable[str]) -> int:
    """Remove stale temporaries in each local folder.

    Non-local folders are skipped (object stores get no temporaries: their writes are
    one PUT). Returns how many temporaries were removed.
    """
    return sum(remove_stale_temporaries(folder) for folder in folders)


def check_writable_folder(path: str) -> None:
    """Raise ValueError, before any row runs, if the local folder ``path`` cannot be written.

    ``path`` need not exist: its nearest existing ancestor must be a folder this process
    may write into (where the missing folders will be made). A path that is not local is
    not checked (object stores say so at the first write, as an error row).
    """
    local = local_os_path(str(path))
    if local is None:
        return
    target = os.path.abspath(local)
    existing = target
    while not os.path.lexists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:  # pragma: no cover - the root always exists
            return
        existing = parent
    if not os.path.isdir(existing):
        what = "is a file" if existing == target else f"is under {existing!r}, a file"
        raise ValueError(f"outdir {path!r} {what}, not a folder: give a folder to write into")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"outdir {path!r} is not writable: this process may not write into {existing!r}"
        )
