"""BaseDataset and S3TarfileDataset: idempotent builds, interruptions, files(), S3 end to end."""

from __future__ import annotations

import io
import json
import random
import re
import tarfile
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import fsspec
import pandas as pd
import pytest
from fsspec.callbacks import Callback

from creevey_dask import (
    ArchiveError,
    BaseDataset,
    MissingDataError,
    S3TarfileDataset,
    UnsafeArchiveError,
)
from creevey_dask.datasets.base import RAW_MARKER
from creevey_dask.storage import fs as storage

# -- helpers --------------------------------------------------------------------------


def make_tar(files: dict[str, bytes], mode: str = "w:gz", evil: str | None = None) -> bytes:
    """A tar archive of ``files``; ``evil`` adds a member named so, escaping with ``..``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if evil:
            info = tarfile.TarInfo(evil)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return buffer.getvalue()


_rng = random.Random(6)  # incompressible, seeded: archives of a few kB with several chunks
IMAGES = {f"pets/{kind}/{i}.jpg": _rng.randbytes(2000) for kind in ("cat", "dog") for i in range(3)}
KEY = "archives/pets.tar.gz"


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry below ``folder``: file contents, or None for folders."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def raw_files(base: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(base / "raw").items() if v is not None}


class Counting(BaseDataset):
    """A dataset whose get_raw writes two files and counts its calls."""

    def __init__(self, base_dir: str, fail_after_first_file: bool = False, **kwargs: Any) -> None:
        super().__init__(base_dir, **kwargs)
        self.fail_after_first_file = fail_after_first_file
        self.raw_calls = 0
        self.process_calls = 0

    def get_raw(self) -> None:
        self.raw_calls += 1
        storage.write_bytes_atomic(
            storage.join(self.raw_dir, "a.txt"), b"a" * self.raw_calls, self.storage_options
        )
        if self.fail_after_first_file:
            raise ConnectionError("the network went away")
        storage.write_bytes_atomic(
            storage.join(self.raw_dir, "sub/b.txt"), b"bb", self.storage_options
        )

    def process(self) -> None:
        self.process_calls += 1
        data = storage.read_bytes(storage.join(self.raw_dir, "a.txt"), self.storage_options)
        storage.write_bytes_atomic(
            storage.join(self.processed_dir, "A.txt"), data.upper(), self.storage_options
        )


# -- BaseDataset ----------------------------------------------------------------------


def test_stage_folders_are_urls_below_the_base(tmp_path: Path) -> None:
    ds = Counting(f"{tmp_path}/ds/")
    assert ds.base_dir == f"{tmp_path}/ds"
    assert (ds.raw_dir, ds.interim_dir, ds.processed_dir) == (
        f"{tmp_path}/ds/raw",
        f"{tmp_path}/ds/interim",
        f"{tmp_path}/ds/processed",
    )
    mem = Counting("memory://pets")
    assert (mem.raw_dir, mem.interim_dir, mem.processed_dir) == (
        "memory://pets/raw",
        "memory://pets/interim",
        "memory://pets/processed",
    )
    assert Counting(tmp_path / "p").raw_dir == f"{tmp_path}/p/raw"  # os.PathLike works


def test_base_dataset_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        BaseDataset("somewhere")  # type: ignore[abstract]


def test_unknown_protocol_is_named() -> None:
    with pytest.raises(ValueError, match="unknown storage protocol 'nosuchproto'"):
        Counting("nosuchproto://bucket/ds")


def test_build_is_idempotent_and_force_redoes_get_raw(tmp_path: Path) -> None:
    ds = Counting(str(tmp_path / "ds"))
    assert ds.build() is ds
    assert (ds.raw_calls, ds.process_calls) == (1, 1)
    marker = json.loads((tmp_path / "ds" / RAW_MARKER).read_text())
    assert marker["step"] == "get_raw"
    assert marker["dataset"].endswith("Counting")

    ds.build()
    assert (ds.raw_calls, ds.process_calls) == (2 - 1, 2)  # get_raw not redone
    assert (tmp_path / "ds/raw/a.txt").read_bytes() == b"a"

    ds.build(force=True)
    assert (ds.raw_calls, ds.process_calls) == (2, 3)
    assert (tmp_path / "ds/raw/a.txt").read_bytes() == b"aa"
    assert (tmp_path / "ds/processed/A.txt").read_bytes() == b"AA"

    # the marker, not the object, is the record: a new object sees the finished step
    again = Counting(str(tmp_path / "ds"))
    again.build()
    assert (again.raw_calls, again.process_calls) == (0, 1)


def test_interrupted_get_raw_leaves_no_marker_and_is_redone_cleanly(tmp_path: Path) -> None:
    base = tmp_path / "ds"
    broken = Counting(str(base), fail_after_first_file=True)
    with pytest.raises(ConnectionError):
        broken.build()
    assert not (base / RAW_MARKER).exists()
    assert not broken.raw_complete
    assert broken.process_calls == 0
    assert raw_files(base) == {"a.txt": b"a"}  # the half-done step's leftovers

    # a killed process may also have left a temporary file behind
    (base / "raw" / ".big.tar.gz.0123abcd.creevey-tmp").write_bytes(b"partial")

    ds = Counting(str(base))
    ds.build()
    assert ds.raw_calls == 1
    assert raw_files(base) == {"a.txt": b"a", "sub/b.txt": b"bb"}  # leftovers cleared
    assert (base / RAW_MARKER).exists()


def test_forced_rebuild_that_fails_leaves_no_marker(tmp_path: Path) -> None:
    base = tmp_path / "ds"
    Counting(str(base)).build()
    with pytest.raises(ConnectionError):
        Counting(str(base), fail_after_first_file=True).build(force=True)
    assert not (base / RAW_MARKER).exists()


def test_build_on_memory(memfs: fsspec.AbstractFileSystem) -> None:
    ds = Counting("memory://ds")
    ds.build()
    ds.build()
    assert ds.raw_calls == 1
    assert memfs.cat_file("/ds/processed/A.txt") == b"A"
    assert memfs.exists(f"/ds/{RAW_MARKER}")
    ds.build(force=True)
    assert ds.raw_calls == 2
    assert memfs.cat_file("/ds/raw/a.txt") == b"aa"


# -- files() --------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["local", "memory"])
def test_files_lists_a_stage_as_a_frame(
    base: str, tmp_path: Path, memfs: fsspec.AbstractFileSystem
) -> None:
    base_dir = str(tmp_path / "ds") if base == "local" else "memory://ds"
    ds = Counting(base_dir).build()
    fs, raw = storage.get_fs(ds.raw_dir)
    fs.pipe_file(f"{raw}/.c.txt.abc123.creevey-tmp", b"partial write")  # left out

    files = ds.files()

    assert isinstance(files, pd.DataFrame)
    assert list(files.columns) == ["path", "size"]
    assert files["path"].dtype == "string"
    assert files["size"].dtype == "int64"
    assert files.to_dict("records") == [
        {"path": f"{base_dir}/raw/a.txt", "size": 1},
        {"path": f"{base_dir}/raw/sub/b.txt", "size": 2},
    ]
    assert ds.files("processed")["path"].tolist() == [f"{base_dir}/processed/A.txt"]
    assert storage.read_bytes(files["path"][1]) == b"bb"


def test_files_as_dask(tmp_path: Path) -> None:
    ds = Counting(str(tmp_path / "ds")).build()
    lazy = ds.files("raw", dask=True)
    assert isinstance(lazy, dd.DataFrame)
    pd.testing.assert_frame_equal(lazy.compute(), ds.files("raw"))
    assert ds.files("raw", dask=True, npartitions=2).npartitions == 2


def test_files_errors(tmp_path: Path) -> None:
    ds = Counting(str(tmp_path / "ds"))
    with pytest.raises(FileNotFoundError, match="does not exist; build the dataset first"):
        ds.files("raw")
    with pytest.raises(MissingDataError):
        ds.files("interim")
    with pytest.raises(ValueError, match=r"stage 'cooked' is not one of \['raw'"):
        ds.files("cooked")


# -- S3TarfileDataset against a real S3 endpoint -------------------------------------


class Pets(S3TarfileDataset):
    """The smallest useful subclass: processed/ gets the cats."""

    def process(self) -> None:
        files = self.files("raw")
        for path in files["path"]:
            if "/cat/" in path:
                data = storage.read_bytes(path, self.storage_options)
                name = path.rsplit("/", 1)[1]
                storage.write_bytes_atomic(
                    storage.join(self.processed_dir, name), data, self.storage_options
                )


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.bz2", ".tar.xz"])
def test_download_extract_delete(s3: Any, tmp_path: Path, suffix: str) -> None:
    mode = {".tar": "w", ".tar.gz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}[suffix]
    s3.put("data", f"archives/pets{suffix}", make_tar(IMAGES, mode))
    ds = S3TarfileDataset(
        str(tmp_path / "ds"), "data", f"archives/pets{suffix}", s3.storage_options
    )

    assert ds.build_raw() is True

    assert raw_files(tmp_path / "ds") == IMAGES  # extracted, archive deleted
    assert (tmp_path / "ds" / RAW_MARKER).exists()
    assert ds.files()["path"].tolist() == sorted(f"{tmp_path}/ds/raw/{n}" for n in IMAGES)


def test_process_must_be_implemented(s3: Any, tmp_path: Path) -> None:
    s3.put("data", KEY, make_tar(IMAGES))
    ds = S3TarfileDataset(str(tmp_path / "ds"), "data", KEY, s3.storage_options)
    with pytest.raises(NotImplementedError, match="subclass S3TarfileDataset and implement"):
        ds.build()
    assert ds.raw_complete  # the raw step finished and is kept


def test_idempotent_and_forced_rebuilds_against_s3(s3: Any, tmp_path: Path) -> None:
    s3.put("data", KEY, make_tar(IMAGES))
    ds = Pets(str(tmp_path / "ds"), "data", KEY, s3.storage_options, progress=False)
    ds.build()
    assert sorted(tree(tmp_path / "ds/processed")) == ["0.jpg", "1.jpg", "2.jpg"]

    # a new archive in S3 is not fetched by a plain rebuild...
    newer = {"pets/cat/9.jpg": b"new cat"}
    s3.put("data", KEY, make_tar(newer))
    ds.build()
    assert raw_files(tmp_path / "ds") == IMAGES

    # ...but is by a forced one, which starts raw/ from scratch
    ds.build(force=True)
    assert raw_files(tmp_path / "ds") == newer
    assert (tmp_path / "ds/processed/9.jpg").read_bytes() == b"new cat"


class Interrupt(Callback):
    """Raises KeyboardInterrupt once the download has started."""

    def relative_update(self, inc: int = 1) -> None:
        super().relative_update(inc)
        raise KeyboardInterrupt("interrupted by the test")


def test_interrupted_download_leaves_no_marker_and_no_archive(s3: Any, tmp_path: Path) -> None:
    s3.put("data", KEY, make_tar(IMAGES))
    base = tmp_path / "ds"
    ds = Pets(str(base), "data", KEY, s3.storage_options, progress=Interrupt())
    ds.downloader.chunk_size = 1024  # several chunks: the interruption is mid-download

    with pytest.raises(KeyboardInterrupt):
        ds.build()

    assert ds.downloader.progress.value < ds.downloader.progress.size
    assert not (base / RAW_MARKER).exists()
    assert not (base / "raw/pets.tar.gz").exists()
    assert tree(base) == {"raw": None}

    Pets(str(base), "data", KEY, s3.storage_options, progress=False).build()
    assert raw_files(base) == IMAGES
    assert (base / RAW_MARKER).exists()


def test_corrupt_archive_leaves_no_marker(s3: Any, tmp_path: Path) -> None:
    data = make_tar(IMAGES)
    s3.put("data", KEY, data[: len(data) // 2])
    ds = Pets(str(tmp_path / "ds"), "data", KEY, s3.storage_options, progress=False)
    with pytest.raises(ArchiveError, match=r"pets\.tar\.gz"):
        ds.build()
    assert not ds.raw_complete
    assert not (tmp_path / "ds" / RAW_MARKER).exists()
    assert raw_files(tmp_path / "ds") == {"pets.tar.gz": data[: len(data) // 2]}

    s3.put("data", KEY, data)  # fixed upstream: the next build starts over cleanly
    ds.build()
    assert raw_files(tmp_path / "ds") == IMAGES


def test_hostile_archive_leaves_no_marker_and_nothing_extracted(s3: Any, tmp_path: Path) -> None:
    archive = make_tar(IMAGES, evil="../../escaped.txt")
    s3.put("data", KEY, archive)
    ds = Pets(str(tmp_path / "ds"), "data", KEY, s3.storage_options, progress=False)
    with pytest.raises(UnsafeArchiveError, match=re.escape("'../../escaped.txt'")):
        ds.build()
    assert not ds.raw_complete
    assert raw_files(tmp_path / "ds") == {"pets.tar.gz": archive}
    assert not list(tmp_path.rglob("escaped.txt"))


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_members": 5}, "more than max_members=5 members"),
        ({"max_total_bytes": 11_999}, "more than max_total_bytes=11,999 bytes"),
        ({"max_member_bytes": 1999}, "more than max_member_bytes=1,999"),
    ],
)
def test_extraction_limits_are_passed_to_the_extractor(
    s3: Any, tmp_path: Path, limits: dict[str, int], message: str
) -> None:
    archive = make_tar(IMAGES)  # 6 files of 2000 bytes
    s3.put("data", KEY, archive)
    ds = Pets(str(tmp_path / "ds"), "data", KEY, s3.storage_options, progress=False, **limits)
    assert {k: getattr(ds.extractor, k) for k in limits} == limits
    with pytest.raises(UnsafeArchiveError, match=re.escape(message)):
        ds.build()
    assert not ds.raw_complete
    assert raw_files(tmp_path / "ds") == {"pets.tar.gz": archive}  # nothing extracted
    # generous enough limits: the same archive builds
    ok = {k: v + 1 for k, v in limits.items()}
    ds = Pets(str(tmp_path / "ds"), "data", KEY, s3.storage_options, progress=False, **ok)
    ds.build()
    assert raw_files(tmp_path / "ds") == IMAGES


def test_bad_extraction_limits_are_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_members must be at least 1"):
        S3TarfileDataset(str(tmp_path / "ds"), "data", KEY, max_members=0)
    with pytest.raises(TypeError, match="max_member_bytes must be a positive int"):
        S3TarfileDataset(str(tmp_path / "ds"), "data", KEY, max_member_bytes=1.5)  # type: ignore[arg-type]
    assert not (tmp_path / "ds").exists()


def test_memory_base_dir(s3: Any, memfs: fsspec.AbstractFileSystem) -> None:
    s3.put("data", KEY, make_tar(IMAGES, "w:xz"))
    ds = Pets("memory://pets", "data", KEY, s3.storage_options, progress=False)
    assert ds.storage_options == {}  # memory:// does not get the S3 options
    ds.build()
    ds.build()
    assert sorted(memfs.find("/pets/raw")) == sorted(f"/pets/raw/{n}" for n in IMAGES)
    assert memfs.cat_file("/pets/raw/pets/dog/2.jpg") == IMAGES["pets/dog/2.jpg"]
    assert sorted(memfs.find("/pets/processed")) == [f"/pets/processed/{i}.jpg" for i in range(3)]
    assert memfs.exists(f"/pets/{RAW_MARKER}")
    assert ds.files("raw")["path"].tolist() == sorted(f"memory://pets/raw/{n}" for n in IMAGES)


def test_s3_base_dir(s3: Any) -> None:
    s3.put("data", KEY, make_tar(IMAGES))
    s3.client.create_bucket(Bucket="datasets")
    ds = Pets("s3://datasets/pets", "data", KEY, s3.storage_options, progress=False)
    ds.build()
    ds.build()
    keys = sorted(o["Key"] for o in s3.client.list_objects_v2(Bucket="datasets")["Contents"])
    assert keys == sorted(
        [f"pets/{RAW_MARKER}"]
        + [f"pets/raw/{n}" for n in IMAGES]
        + [f"pets/processed/{i}.jpg" for i in range(3)]
    )
    assert s3.get("datasets", "pets/raw/pets/cat/1.jpg") == IMAGES["pets/cat/1.jpg"]
    assert ds.files("processed")["path"].tolist() == [
        f"s3://datasets/pets/processed/{i}.jpg" for i in range(3)
    ]


def test_missing_object_and_bad_key_name(s3: Any, tmp_path: Path) -> None:
    s3.client.create_bucket(Bucket="data")
    ds = Pets(str(tmp_path / "ds"), "data", KEY, s3.storage_options, progress=False)
    with pytest.raises(FileNotFoundError, match=r"bucket 'data', key 'archives/pets\.tar\.gz'"):
        ds.build()
    assert not ds.raw_complete
    with pytest.raises(ValueError, match="not a tar archive name"):
        Pets(str(tmp_path / "ds"), "data", "pets.zip", s3.storage_options)


@pytest.mark.parametrize("module", ["datasets.base", "datasets.s3download", "datasets.tarfiles"])
def test_docstring_examples_run(module: str, memfs: fsspec.AbstractFileSystem) -> None:
    import doctest
    import importlib

    mod = importlib.import_module(f"creevey_dask.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


# -- the original creevey's names ---------------------------------------------------------


class CatsProcessor:
    """An original-creevey style Processor: made with base_dir=, has process()."""

    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir

    def process(self) -> None:
        raw = Path(self.base_dir) / "raw"
        out = Path(self.base_dir) / "processed"
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(raw.rglob("*")):
            if path.is_file() and "cat" in path.parts:
                (out / path.name).write_bytes(path.read_bytes())


def test_original_keyword_and_attribute_names(s3: Any, tmp_path: Path) -> None:
    """data_dir= beside base_dir=, Processor=, and read-only attribute aliases."""

    class Minimal(BaseDataset):
        def get_raw(self) -> None:
            pass

        def process(self) -> None:
            pass

    ds = Minimal(data_dir=str(tmp_path / "c"))
    assert ds.data_dir == ds.base_dir == str(tmp_path / "c")
    with pytest.raises(AttributeError):
        ds.data_dir = "elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError, match="not both"):
        Minimal(str(tmp_path / "a"), data_dir=str(tmp_path / "b"))

    s3.put("data", KEY, make_tar(IMAGES))
    pets = S3TarfileDataset(
        s3_bucket="data",
        s3_key=KEY,
        data_dir=str(tmp_path / "ds"),
        storage_options=s3.storage_options,
        Processor=CatsProcessor,
    )
    pets.build()
    cats = {n.rsplit("/", 1)[1]: b for n, b in IMAGES.items() if "/cat/" in f"/{n}"}
    assert cats
    assert {p.name: p.read_bytes() for p in (tmp_path / "ds" / "processed").iterdir()} == cats
    downloader = pets.downloader
    assert downloader.base_dir == downloader.data_dir == str(tmp_path / "ds")
    assert downloader.local_archive_path == downloader.dest_path
    assert pets.extractor.local_archive_path == pets.extractor.archive_path
    assert pets.extractor.archive_path == downloader.dest_path
    with pytest.raises(ValueError, match="original creevey's order"):
        S3TarfileDataset("data", KEY, str(tmp_path / "x"))  # the original's positional order
