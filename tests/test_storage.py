"""Storage: atomic writes, existence, filesystems."""

from __future__ import annotations

import os

import pytest

from creevey_dask.storage import fs as storage


def test_atomic_local_write_creates_folders_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    storage.write_bytes_atomic(str(target), b"hello")
    assert target.read_bytes() == b"hello"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]
    storage.write_bytes_atomic(f"file://{target}", b"again")
    assert storage.read_bytes(str(target)) == b"again"


def test_failed_local_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    class Exploding:
        def __buffer__(self, flags):
            raise OSError("device vanished")

    with pytest.raises((OSError, TypeError)):
        storage.write_bytes_atomic(str(target), Exploding())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_memory_write_read_exists(memfs):
    assert not storage.exists("memory://x/y.bin")
    storage.write_bytes_atomic("memory://x/y.bin", b"data")
    assert storage.exists("memory://x/y.bin")
    assert storage.read_bytes("memory://x/y.bin") == b"data"


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="unknown storage protocol 'nosuchproto'"):
        storage.get_fs("nosuchproto://bucket/key")


def test_join_and_is_local():
    assert storage.join("s3://bucket/", "a/", "/b.png") == "s3://bucket/a/b.png"
    assert storage.join("/tmp/x", "y") == "/tmp/x/y"
    assert storage.is_local("/tmp/x")
    assert storage.is_local("file:///tmp/x")
    assert not storage.is_local("memory://x")


def test_filesystems_are_cached():
    first, _ = storage.get_fs("memory://a")
    second, path = storage.get_fs("memory://b/c")
    assert first is second
    assert path == "/b/c"


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    host = storage._HOST
    stale = tmp_path / f".a.png.{host}-{dead_pid}-0123abcd{storage.TEMP_SUFFIX}"
    live = tmp_path / f".b.png.{host}-{os.getpid()}-0123abcd{storage.TEMP_SUFFIX}"
    foreign_old = tmp_path / f".c.png.otherhost-1-0123abcd{storage.TEMP_SUFFIX}"
    foreign_new = tmp_path / f".d.png.otherhost-1-0123abcd{storage.TEMP_SUFFIX}"
    keep = tmp_path / "a.png"
    for path in (stale, live, foreign_old, foreign_new, keep):
        path.write_bytes(b"x")
    os.utime(foreign_old, (1, 1))
    assert storage.remove_stale_temporaries(str(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, foreign_new.name, keep.name]
    )
    assert storage.remove_stale_temporaries(str(tmp_path / "missing")) == 0


def test_temp_names_fit_in_255_bytes(tmp_path) -> None:
    name = "é" * 125 + ".png"  # 254 bytes: its temporary name must be cut to fit
    tmp = storage.temp_path(str(tmp_path / name))
    assert len(os.path.basename(tmp).encode()) <= storage.MAX_NAME_BYTES
    storage.write_bytes_atomic(str(tmp_path / name), b"data")
    assert (tmp_path / name).read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def _write_half_then_fail(target: str) -> None:
    with storage.atomic_writer(target) as f:
        f.write(b"half")
        raise RuntimeError("stopped")


def test_atomic_writer_leaves_nothing_on_failure(tmp_path, memfs) -> None:
    for target in (str(tmp_path / "big.bin"), "memory://atomic/big.bin"):
        with pytest.raises(RuntimeError, match="stopped"):
            _write_half_then_fail(target)
        assert storage.file_state(target) == "missing"
        with storage.atomic_writer(target) as f:
            f.write(b"whole")
        assert storage.read_bytes(target) == b"whole"
        assert storage.file_state(target) == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"]
