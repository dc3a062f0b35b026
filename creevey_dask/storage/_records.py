"""The records fallback: the proofs of outputs whose store holds none, kept in files.

For a local filesystem without user xattrs (ramfs, FAT) or an fsspec store whose
metadata :mod:`creevey_dask.storage.provenance` does not know, an output's proof is a
record in this machine's cache (``$CREEVEY_DASK_CACHE`` or
``~/.cache/creevey_dask/provenance``), one folder per output folder, one append-only
file per process in it, read by tail. The record's format has its one owner here
(:class:`_Records`); what a record proves, and when it is written, is the provenance
module's (its docstring).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import uuid

from .._fork import reset_in_child

__all__ = ["records_dir"]

_HOST = socket.gethostname() or "host"


def records_dir() -> str:
    """Where the records of folders without xattrs or object metadata are kept."""
    root = os.environ.get("CREEVEY_DASK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "creevey_dask",
    )
    return os.path.join(root, "provenance")


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPE = re.compile(r"\\(.)", re.S)


def _escape(name: str) -> str:
    """A name with no tab or line break (a records line holds it), reversibly."""
    return "".join(_ESCAPES.get(c, c) for c in name) if any(c in _ESCAPES for c in name) else name


def _unescape(text: str) -> str:
    letters = {"t": "\t", "n": "\n", "r": "\r"}
    return _UNESCAPE.sub(lambda m: letters.get(m.group(1), m.group(1)), text)


class _Records:
    """The records of one output folder: one append-only file per process, read by tail.

    A line is ``<name>\\t<digest>\\t<size>\\t<inode>\\t<mtime_ns>`` (inode and mtime are
    ``-`` off the local filesystem). The latest record of a name that matches the file
    as it is now is its proof.
    """

    def __init__(self, folder_key: str) -> None:
        digest = hashlib.sha256(folder_key.encode("utf-8", "surrogateescape")).hexdigest()
        self.dir = os.path.join(records_dir(), digest[:32])
        self.own = os.path.join(self.dir, f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tsv")
        self.read_upto: dict[str, int] = {}
        self.by_name: dict[str, list[tuple[str, int, str, str]]] = {}
        self.lock = threading.Lock()

    def add(self, name: str, digest: str, size: int, ino: str, mtime: str) -> None:
        line = "\t".join((_escape(name), digest, str(size), ino, mtime)) + "\n"
        with self.lock:
            os.makedirs(self.dir, exist_ok=True)
            if self.own not in self.read_upto:
                self.read_upto[self.own] = 0
            with open(self.own, "a", encoding="utf-8", errors="surrogateescape") as f:
                f.write(line)
            self.read_upto[self.own] += len(line.encode("utf-8", "surrogateescape"))
            self.by_name.setdefault(name, []).append((digest, size, ino, mtime))

    def _refresh(self) -> None:
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return
        for entry in entries:
            if not entry.name.endswith(".tsv"):
                continue
            start = self.read_upto.get(entry.path, 0)
            try:
                if entry.stat().st_size <= start:
                    continue
                with open(entry.path, "rb") as f:
                    f.seek(start)
                    data = f.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1  # a line being appended now is read next time
            self.read_upto[entry.path] = start + end
            for raw in data[:end].decode("utf-8", "surrogateescape").splitlines():
                parts = raw.split("\t")
                if len(parts) == 5 and parts[2].isdigit():
                    name, digest, size, ino, mtime = parts
                    record = (digest, int(size), ino, mtime)
                    self.by_name.setdefault(_unescape(name), []).append(record)

    def lookup(self, name: str, size: int, ino: str, mtime: str) -> str | None:
        """The digest of the latest record of ``name`` that matches the file, or None."""
        with self.lock:
            for attempt in range(2):  # what is known, then once more after reading tails
                for digest, r_size, r_ino, r_mtime in reversed(self.by_name.get(name, [])):
                    if r_size == size and r_ino == ino and r_mtime == mtime:
                        return digest
                if attempt == 0:
                    self._refresh()
        return None


_records: dict[str, _Records] = {}
_records_lock = threading.Lock()
reset_in_child(globals(), locks=["_records_lock"], clear=["_records"])


def _records_for(folder_key: str) -> _Records:
    records = _records.get(folder_key)
    if records is None:
        with _records_lock:
            records = _records.setdefault(folder_key, _Records(folder_key))
    return records


def _forget_records() -> None:
    """Drop this process's cached records (tests that change the cache folder)."""
    with _records_lock:
        _records.clear()
