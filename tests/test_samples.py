"""Shard samples as sources (creevey_dask.storage.samples): ranged reads, indexes, attacks.

The tars here are built with ``tarfile`` the way webdataset's ``TarWriter`` (and so
img2dataset) writes them, so that the reader is tested on shards it did not write: old
shards without offsets in their records, shards with offsets, cut, replaced and
hostile ones.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import creevey_dask
from creevey_dask.exceptions import ArchiveError, MissingDataError
from creevey_dask.storage import samples as shard_sources
from creevey_dask.storage.samples import (
    INDEX_SUFFIX,
    read_sample,
    sample_source,
    split_sample,
    tar_index,
)
from tests.conftest import encode, make_photo


def photo_bytes(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    return encode(make_photo(*size, seed=seed), "JPEG", quality=90)


def write_tar(path: Path, samples: dict[str, dict[str, bytes]]) -> dict[str, tuple[int, int]]:
    """A tar of ``{key: {ext: bytes}}`` (members sorted by extension, as TarWriter does).

    Returns each key's ``(tar_offset, tar_size)``: its first header to the end of its
    last member's padded data.
    """
    spans: dict[str, tuple[int, int]] = {}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples.items():
            start = buffer.tell()
            for ext in sorted(members):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(members[ext])
                info.mtime = 1_700_000_000
                tar.addfile(info, io.BytesIO(members[ext]))
            spans[key] = (start, buffer.tell() - start)
    path.write_bytes(buffer.getvalue())
    return spans


def some_samples(n: int, seed: int = 0) -> dict[str, dict[str, bytes]]:
    return {
        f"{i:09d}": {
            "jpg": photo_bytes(seed + i),
            "json": json.dumps({"key": f"{i:09d}", "n": i}).encode(),
            "txt": f"caption {i}".encode(),
        }
        for i in range(n)
    }


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    shard_sources._cache.clear()
    shard_sources._groups.clear()


def test_sample_strings() -> None:
    assert split_sample("out/00000.tar#000000001.jpg") == ("out/00000.tar", "000000001.jpg")
    assert split_sample("s3://b/x/00001.parquet#k.png") == ("s3://b/x/00001.parquet", "k.png")
    assert split_sample("photos/cat#1.jpg") is None  # not a shard
    assert split_sample("out/00000.tar#") is None
    assert split_sample("https://example.com/a.tar#b.jpg") is None  # a URL's fragment
    assert split_sample(3) is None
    assert sample_source("a/b.tar", "k.jpg") == "a/b.tar#k.jpg"


def test_an_old_shard_is_indexed_once_and_read_by_ranges(tmp_path: Path) -> None:
    samples = some_samples(6)
    tar = tmp_path / "00000.tar"
    write_tar(tar, samples)
    for key, members in samples.items():
        for ext, data in members.items():
            assert read_sample(sample_source(str(tar), f"{key}.{ext}")) == data
    index = tmp_path / ("00000.tar" + INDEX_SUFFIX)
    assert index.exists()  # written beside the tar, once
    payload = json.loads(index.read_text())
    assert payload["size"] == tar.stat().st_size
    assert len(payload["members"]) == 18
    assert tar_index(str(tar)).origin == "tar"
    shard_sources._cache.clear()  # another process: the index file is used, not the tar
    assert tar_index(str(tar)).origin == "sidecar"
    assert read_sample(f"{tar}#000000004.jpg") == samples["000000004"]["jpg"]
    # a bare key names the sample's image
    assert read_sample(f"{tar}#000000002") == samples["000000002"]["jpg"]


def test_offsets_in_the_records_are_used_without_reading_the_tar(tmp_path: Path) -> None:
    samples = some_samples(5)
    tar = tmp_path / "00000-0000-abcdef12.tar"
    spans = write_tar(tar, samples)
    data = tar.read_bytes()
    records = pd.DataFrame(
        {
            "key": [*list(spans), "lost"],
            "status": ["ok"] * len(spans) + ["error"],
            "tar_offset": pd.array([s[0] for s in spans.values()] + [None], dtype="Int64"),
            "tar_size": pd.array([s[1] for s in spans.values()] + [None], dtype="Int64"),
            "shard_digest": [hashlib.sha256(data).hexdigest()] * (len(spans) + 1),
        }
    )
    records.to_parquet(tmp_path / "00000-0000-abcdef12.parquet")
    assert tar_index(str(tar)).origin == "records"
    for key, (offset, size) in spans.items():
        assert data[offset : offset + size].startswith(f"{key}.jpg".encode())
        assert read_sample(f"{tar}#{key}.jpg") == samples[key]["jpg"]
        assert read_sample(f"{tar}#{key}.txt") == samples[key]["txt"]
    assert not (tmp_path / ("00000-0000-abcdef12.tar" + INDEX_SUFFIX)).exists()
    with pytest.raises(MissingDataError, match="no member"):
        read_sample(f"{tar}#lost.jpg")


def test_hostile_member_names_are_only_compared(tmp_path: Path) -> None:
    evil = {"jpg": photo_bytes(9)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("../../evil.jpg", "/etc/cron.d/x.jpg", "a/../../b.jpg", "ok.jpg"):
            info = tarfile.TarInfo(name)
            info.size = len(evil["jpg"])
            tar.addfile(info, io.BytesIO(evil["jpg"]))
        link = tarfile.TarInfo("link.jpg")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    shard = tmp_path / "shards" / "00000.tar"
    shard.parent.mkdir()
    shard.write_bytes(buffer.getvalue())
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert read_sample(f"{shard}#../../evil.jpg") == evil["jpg"]
    assert read_sample(f"{shard}#/etc/cron.d/x.jpg") == evil["jpg"]
    after = sorted(p.name for p in tmp_path.rglob("*"))
    assert set(after) - set(before) == {"00000.tar" + INDEX_SUFFIX}  # nothing extracted
    # names that point out of the shard, or at a link, get nothing
    for member in ("../../../etc/passwd", "link.jpg", "00000.tar", "ok.jpg/../x"):
        with pytest.raises((MissingDataError, ArchiveError)):
            read_sample(f"{shard}#{member}")
    with pytest.raises(MissingDataError, match="does not exist"):
        read_sample(f"{tmp_path}/nope.tar#ok.jpg")


def test_a_cut_tar_serves_its_whole_members_only(tmp_path: Path) -> None:
    samples = some_samples(4)
    tar = tmp_path / "00000.tar"
    spans = write_tar(tar, samples)
    cut_at = spans["000000002"][0] + 700  # inside the third sample's image
    tar.write_bytes(tar.read_bytes()[:cut_at])
    assert read_sample(f"{tar}#000000001.jpg") == samples["000000001"]["jpg"]
    for member in ("000000002.jpg", "000000003.jpg"):
        with pytest.raises((MissingDataError, ArchiveError)):
            read_sample(f"{tar}#{member}")


def test_a_cut_tar_with_offsets_in_its_records_is_refused_not_misread(tmp_path: Path) -> None:
    samples = some_samples(3)
    tar = tmp_path / "00000.tar"
    spans = write_tar(tar, samples)
    pd.DataFrame(
        {
            "key": list(spans),
            "status": ["ok"] * 3,
            "tar_offset": [s[0] for s in spans.values()],
            "tar_size": [s[1] for s in spans.values()],
        }
    ).to_parquet(tmp_path / "00000.parquet")
    tar.write_bytes(tar.read_bytes()[: spans["000000002"][0] + 600])
    assert read_sample(f"{tar}#000000000.jpg") == samples["000000000"]["jpg"]
    with pytest.raises(ArchiveError, match="cut, damaged or was replaced"):
        read_sample(f"{tar}#000000002.jpg")


def test_a_missing_or_garbage_index_is_rebuilt(tmp_path: Path) -> None:
    samples = some_samples(3)
    tar = tmp_path / "00000.tar"
    write_tar(tar, samples)
    index = tmp_path / ("00000.tar" + INDEX_SUFFIX)
    read_sample(f"{tar}#000000000.jpg")
    for damage in (lambda: index.unlink(), lambda: index.write_text("{not json")):
        damage()
        shard_sources._cache.clear()
        assert read_sample(f"{tar}#000000001.jpg") == samples["000000001"]["jpg"]
        assert json.loads(index.read_text())["format"] == "creevey-tar-index"


def test_a_shard_replaced_after_indexing_is_never_misread(tmp_path: Path) -> None:
    tar = tmp_path / "00000.tar"
    first = some_samples(4, seed=0)
    write_tar(tar, first)
    assert read_sample(f"{tar}#000000003.jpg") == first["000000003"]["jpg"]
    index = tmp_path / ("00000.tar" + INDEX_SUFFIX)
    stale = index.read_bytes()

    # the same keys, other images of other sizes: every offset moves
    second = {k: {"jpg": photo_bytes(50 + i, (60 + 9 * i, 45))} for i, k in enumerate(first)}
    time.sleep(0.01)
    write_tar(tar, second)
    for key in second:  # the cached index (this process) sees the new size and stamp
        assert read_sample(f"{tar}#{key}.jpg") == second[key]["jpg"]
    shard_sources._cache.clear()
    for key in second:  # a fresh process with the new index
        assert read_sample(f"{tar}#{key}.jpg") == second[key]["jpg"]

    # an index that lies (it describes the old tar but claims the new size and stamp)
    payload = json.loads(stale)
    st = os.stat(tar)
    payload["size"], payload["stamp"] = st.st_size, str(st.st_mtime_ns)
    index.write_text(json.dumps(payload))
    shard_sources._cache.clear()
    for key in second:
        assert read_sample(f"{tar}#{key}.jpg") == second[key]["jpg"]

    # offsets in records that no longer match the tar are not served either
    pd.DataFrame(
        {"key": list(first), "status": ["ok"] * 4, "tar_offset": [0, 512, 1024, 1536],
         "tar_size": [512] * 4}
    ).to_parquet(tmp_path / "00000.parquet")  # fmt: skip
    shard_sources._cache.clear()
    for key in second:
        assert read_sample(f"{tar}#{key}.jpg") == second[key]["jpg"]


def test_a_real_file_with_a_hash_in_its_name_is_that_file(tmp_path: Path) -> None:
    odd = tmp_path / "scan.tar#1.jpg"
    odd.write_bytes(photo_bytes(3))
    assert shard_sources.read_bytes(str(odd)) == odd.read_bytes()
    assert not shard_sources.is_sample(str(odd))
    image = creevey_dask.load_image(str(odd))
    assert image.size == (40, 30)


def test_parquet_shard_samples(tmp_path: Path) -> None:
    images = {f"k{i}": photo_bytes(i) for i in range(5)}
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "key": [*list(images), "bad"],
            "status": ["ok"] * 5 + ["error"],
            "image": pa.array(
                [{"bytes": b, "path": f"{k}.jpg"} for k, b in images.items()] + [None],
                type=image_type,
            ),
        }
    )
    path = tmp_path / "00000.parquet"
    pq.write_table(table, path, row_group_size=2)
    for key, data in images.items():
        assert read_sample(f"{path}#{key}.jpg") == data
    with pytest.raises(MissingDataError):
        read_sample(f"{path}#bad.jpg")
    with pytest.raises(MissingDataError):
        read_sample(f"{path}#nobody.jpg")


def test_loaders_hash_and_decode_the_sample_bytes(tmp_path: Path) -> None:
    samples = some_samples(4)
    tar = tmp_path / "00000.tar"
    write_tar(tar, samples)
    frame = pd.DataFrame({"path": [f"{tar}#{k}.jpg" for k in samples]})
    result = frame.creevey.resize(
        str(tmp_path / "out"),
        progress=False,
        shape=(16, 16),
        filters=creevey_dask.FilterOptions(compute_hash="sha256"),
    )
    assert (result["status"] == "ok").all()
    for key, row in zip(samples, result.itertuples(), strict=True):
        assert row.source_sha256 == hashlib.sha256(samples[key]["jpg"]).hexdigest()
        assert os.path.basename(row.outpath) == f"{key}.jpg"  # named after the member
        with open(row.outpath, "rb") as f:
            assert f.read(2) == b"\xff\xd8"
    bad = pd.DataFrame({"path": [f"{tar}#nobody.jpg", f"{tmp_path}/none.tar#a.jpg"]})
    result = bad.creevey.resize(str(tmp_path / "out2"), shape=(16, 16), progress=False)
    assert result["status"].tolist() == ["error", "error"]
    assert result["error"].str.startswith("MissingDataError").all()


def test_threads_reading_a_new_shard_index_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    samples = some_samples(12)
    tar = tmp_path / "00000.tar"
    write_tar(tar, samples)
    builds = []
    build = shard_sources._build

    def counted(*args: Any) -> Any:
        builds.append(args[0])
        time.sleep(0.05)  # long enough for every thread to ask meanwhile
        return build(*args)

    monkeypatch.setattr(shard_sources, "_build", counted)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(read_sample, [f"{tar}#{k}.jpg" for k in samples]))
    assert got == [m["jpg"] for m in samples.values()]
    assert builds == [str(tar)]


def test_a_wrong_extension_fails_the_row_at_once_without_reindexing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member the current index proves absent is a MissingDataError naming the others."""
    samples = some_samples(3)
    old = tmp_path / "00000.tar"  # no offsets in records: indexed by members
    write_tar(old, samples)
    new = tmp_path / "00001-0000-abcdef12.tar"  # offsets in its records
    spans = write_tar(new, samples)
    pd.DataFrame(
        {
            "key": list(spans),
            "status": ["ok"] * 3,
            "tar_offset": pd.array([s[0] for s in spans.values()], dtype="Int64"),
            "tar_size": pd.array([s[1] for s in spans.values()], dtype="Int64"),
        }
    ).to_parquet(tmp_path / "00001-0000-abcdef12.parquet")
    assert read_sample(f"{old}#000000001.jpg") == samples["000000001"]["jpg"]  # indexed
    assert tar_index(str(new)).origin == "records"
    builds: list[str] = []
    read: list[int] = []
    build, read_range = shard_sources._build, shard_sources.read_range

    def counted_build(*args: Any) -> Any:
        builds.append(args[0])
        return build(*args)

    def counted_read(path: str, start: int, end: int, options: Any) -> bytes:
        read.append(end - start)
        return read_range(path, start, end, options)

    monkeypatch.setattr(shard_sources, "_build", counted_build)
    monkeypatch.setattr(shard_sources, "read_range", counted_read)
    has = "(it has '000000001.jpg', '000000001.json', '000000001.txt')"
    for tar in (old, new):
        with pytest.raises(MissingDataError) as caught:
            read_sample(f"{tar}#000000001.png")
        assert str(caught.value) == f"no member '000000001.png' in the shard {str(tar)!r} {has}"
    assert builds == []  # no pass over either tar
    assert read == [spans["000000001"][1]]  # the old tar: nothing; the new: the sample once
    assert not (tmp_path / ("00001-0000-abcdef12.tar" + INDEX_SUFFIX)).exists()
    # a row error, one line, through a loader
    frame = pd.DataFrame({"path": [f"{new}#000000001.png", f"{new}#000000001.jpg"]})
    result = frame.creevey.resize(str(tmp_path / "out"), shape=(8, 8), progress=False)
    assert result["status"].tolist() == ["error", "ok"]
    assert result["error"].iloc[0] == (
        f"MissingDataError: no member '000000001.png' in the shard {str(new)!r} {has}"
    )
    assert builds == []
