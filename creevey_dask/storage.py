"""Storage through fsspec: atomic writes, existence checks and path helpers.

Every read and write of the library goes through this module, so that local paths,
``memory://``, ``s3://`` and any other fsspec protocol behave the same way.

Writes are atomic. On the local filesystem the bytes go to a hidden temporary file in
the destination folder, which is then renamed over the final name (``os.replace``), so
a reader never sees a partial file and a killed process leaves at most a temporary file
(named ``.<name>.<random>.creevey-tmp``), never a partial output. On other filesystems
the bytes are sent in one ``pipe_file`` call, a single PUT on object stores, which they
publish atomically.

A process killed in the middle of a local write leaves its temporary file behind. Its
name records the host and process that wrote it
(``.<name>.<host>-<pid>-<random>.creevey-tmp``), so
:func:`remove_stale_temporaries` can tell an abandoned one from one still being
written; the engine sweeps the folders it wrote into after each partition.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec.core import split_protocol, strip_protocol
from fsspec.implementations.local import LocalFileSystem

__all__ = [
    "TEMP_SUFFIX",
    "exists",
    "get_fs",
    "is_local",
    "join",
    "local_folder",
    "read_bytes",
    "remove_stale_temporaries",
    "write_bytes_atomic",
]

#: Suffix of the temporary files that atomic local writes create and then rename.
TEMP_SUFFIX = ".creevey-tmp"

_LOCAL_PROTOCOLS = {None, "file", "local"}
_fs_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], fsspec.AbstractFileSystem] = {}
_fs_lock = threading.Lock()
_HOST = socket.gethostname().replace("-", "_").replace(".", "_")[:32] or "host"


def _protocol(path: str) -> str | None:
    if "://" not in path and "::" not in path:  # the common case, without fsspec's parser
        return None
    protocol, _ = split_protocol(path)
    return protocol


def _local_os_path(path: str) -> str | None:
    """The OS path for a local path or ``file://`` URL; None for any other protocol."""
    protocol = _protocol(path)
    if protocol is None:
        return path
    if protocol in _LOCAL_PROTOCOLS:
        return LocalFileSystem._strip_protocol(path)
    return None


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local filesystem (no protocol, or ``file://``)."""
    return _protocol(str(path)) in _LOCAL_PROTOCOLS


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
    protocol = _protocol(path) or "file"
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
    local = _local_os_path(path)
    if local is not None:
        return os.path.exists(local)
    fs, fs_path = get_fs(path, storage_options)
    return bool(fs.exists(fs_path))


def read_bytes(path: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """Read the whole file at ``path``."""
    local = _local_os_path(path)
    if local is not None:
        with open(local, "rb") as f:
            return f.read()
    fs, fs_path = get_fs(path, storage_options)
    return bytes(fs.cat_file(fs_path))


def write_bytes_atomic(
    path: str,
    data: bytes | bytearray | memoryview,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write ``data`` to ``path`` so that no partial file is ever visible there.

    Local parent folders are created (object stores have none). On the local
    filesystem the data is written to a temporary file beside the target and renamed
    over it; if anything fails, the temporary file is removed and the target is
    untouched. Elsewhere, the data is sent in a single ``pipe_file`` call.
    """
    final = _local_os_path(path)
    if final is not None:
        folder, name = os.path.split(os.path.abspath(final))
        os.makedirs(folder, exist_ok=True)
        tag = f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = os.path.join(folder, f".{name[:180]}.{tag}{TEMP_SUFFIX}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return
    fs, fs_path = get_fs(path, storage_options)
    fs.pipe_file(fs_path, bytes(data))


def local_folder(path: str) -> str | None:
    """The local folder that holds ``path``, or None if ``path`` is not local."""
    local = _local_os_path(path)
    return None if local is None else os.path.dirname(os.path.abspath(local))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def remove_stale_temporaries(folder: str, max_age: float = 3600.0) -> int:
    """Remove the temporary files that killed writers left in a local ``folder``.

    A temporary file is stale when the process that wrote it, on this host, is gone;
    one from another host is stale once older than ``max_age`` seconds. Files being
    written by live processes are left alone. Returns how many files were removed.
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
            continue
        tag = name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
        host, _, rest = tag.partition("-")
        pid_text = rest.partition("-")[0]
        if host == _HOST and pid_text.isdigit():
            stale = not _pid_alive(int(pid_text))
        else:
            try:
                stale = now - entry.stat().st_mtime > max_age
            except FileNotFoundError:
                continue
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed
