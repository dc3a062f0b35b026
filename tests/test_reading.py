"""read_shards (creevey_dask.sinks.reading): latest attempts, samples as sources, S3 costs.

Real downloads from the loopback image server write the shards; the samples are then
resized, re-sharded (WebDataset → Parquet → WebDataset, other shard sizes), filtered,
put on a contact sheet and into an ImageNet tree, locally and on moto's S3 server, and
what comes out is read with ``webdataset`` and Hugging Face ``datasets``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import creevey_dask
from creevey_dask.http import HttpOptions
from creevey_dask.reports import sheets as reports
from creevey_dask.storage import samples as shard_sources
from creevey_dask.storage.samples import read_sample, tar_index
from tests.test_samples import photo_bytes, write_tar
from tests.test_sinks import MANY, _frame, _hf_offline, _webdataset_samples


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    shard_sources._cache.clear()
    shard_sources._groups.clear()


def _download(
    df: pd.DataFrame,
    out: Any,
    shards: creevey_dask.ShardOptions | None = None,
    storage_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """A one-partition WebDataset download into ``out``, of 5 rows a shard by default."""
    return df.creevey.download(
        str(out),
        progress=False,
        output_format=shards or creevey_dask.ShardOptions("webdataset", shard_size=5),
        options=creevey_dask.RunOptions(npartitions=1, storage_options=storage_options),
        **kwargs,
    )


def _close_to(a: Image.Image, b: Image.Image, tolerance: float = 12.0) -> bool:
    b = b.convert("RGB").resize(a.size)
    diff = np.abs(np.asarray(a.convert("RGB"), float) - np.asarray(b, float))
    return float(diff.mean()) < tolerance


def test_latest_attempt_per_key_after_a_retry(fresh_image_server: Any, tmp_path: Path) -> None:
    df = _frame(fresh_image_server, MANY[:8])
    df.loc[[1, 6], "url"] = [u + "?fail=1" for u in df.loc[[1, 6], "url"]]  # fail once
    out = tmp_path / "out"
    http = HttpOptions(retries=0)
    first = _download(
        df, out, creevey_dask.ShardOptions("webdataset", shard_size=4), http_options=http
    )
    assert (first["status"] == "error").sum() == 2
    failed = creevey_dask.read_shards(str(out)).compute()
    failed = failed[failed["status"] == "error"]
    assert len(failed) == 2
    second = _download(
        failed, out, creevey_dask.ShardOptions("webdataset", shard_size=4), http_options=http
    )
    assert (second["status"] == "ok").all()

    latest = creevey_dask.read_shards(str(out)).compute()
    assert len(latest) == 8
    assert latest["key"].is_unique
    assert (latest["status"] == "ok").all()
    assert latest["error"].isna().all()
    assert latest["sample"].notna().all()
    assert sorted(latest["key"]) == sorted(first["key"])
    every = creevey_dask.read_shards(str(out), attempts="all").compute()
    assert len(every) == 10
    assert every.groupby("key")["status"].apply(set).map(len).max() == 2
    with pytest.raises(ValueError, match="attempts 'first' is not one of"):
        creevey_dask.read_shards(str(out), attempts="first")


def test_an_ok_in_a_complete_shard_beats_a_newer_error(image_server: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    df = _frame(image_server, MANY[:4])
    _download(df, out)
    records = creevey_dask.read_shards(str(out)).compute()
    newer = records.copy()  # a later shard whose records say these rows failed
    newer["status"], newer["outpath"] = "error", None
    newer["error"] = "HttpError: HTTP 404 File not found"
    newer.drop(columns=["sample"]).astype({"status": "string"}).to_parquet(
        out / "99999-9999-ffffffff.parquet"
    )
    latest = creevey_dask.read_shards(str(out)).compute()
    assert (latest["status"] == "ok").all()
    assert len(latest) == 4
    # a cut tar does not count as complete: its keys' other attempts win
    (tar,) = out.glob("*.tar")  # the download's one shard
    tar.write_bytes(tar.read_bytes()[:1000])
    latest = creevey_dask.read_shards(str(out)).compute()
    assert (latest["status"] == "error").all()
    assert latest["sample"].isna().all()


def test_samples_resize_filter_contact_sheet_and_tree(image_server: Any, tmp_path: Path) -> None:
    df = _frame(image_server, MANY[:12])
    _download(df, tmp_path / "shards", format="png")
    records = creevey_dask.read_shards(str(tmp_path / "shards")).compute()
    assert records["sample"].str.contains(r"\.tar#[0-9a-f]{16}\.png$").all()

    picked = records[records["label"] == "label-0"]  # a filter
    small = picked.creevey.resize(
        str(tmp_path / "small"), shape=(128, 128), path_col="sample", format="webp",
        progress=False,
    )  # fmt: skip
    assert (small["status"] == "ok").all()
    assert len(small) == 4
    for row in small.itertuples():
        assert row.outpath.endswith(f"{row.key}.webp")
        with Image.open(row.outpath) as image:
            assert image.format == "WEBP"
            assert image.size == (128, 128)
            source = Image.open(io.BytesIO(image_server.files[row.url.split("/img/", 1)[1]]))
            assert _close_to(image, source.resize((128, 128)))
    again = picked.creevey.resize(
        str(tmp_path / "small"), shape=(128, 128), path_col="sample", format="webp",
        progress=False,
    )  # fmt: skip
    assert (again["status"] == "skipped").all()  # resumable, as files are

    thumb = reports._thumbnail(picked["sample"].iloc[0], "ok", None, 64, None)
    assert isinstance(thumb, Image.Image)
    sheet = creevey_dask.contact_sheet(picked, path_col="sample", caption_cols=["key"])
    assert sheet.size[0] > 0

    manifest = records.creevey.imagenet_symlinks(
        str(tmp_path / "tree"), label_col="label", valid_size=0.25, path_col="sample",
        random_state=0,
    )  # fmt: skip
    assert len(manifest) == 12
    assert (tmp_path / "tree" / "manifest.csv").exists() or any(
        p.suffix == ".csv" for p in (tmp_path / "tree").iterdir()
    )
    for row in manifest.itertuples():
        placed = tmp_path / "tree" / row.path
        assert placed.is_file()
        assert not placed.is_symlink()
        assert placed.read_bytes() == read_sample(row.source)


def test_reshard_webdataset_to_parquet_and_back(
    image_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wds = pytest.importorskip("webdataset")
    datasets = _hf_offline(monkeypatch, tmp_path)
    df = _frame(image_server, MANY[:11], missing=1)
    _download(
        df,
        tmp_path / "wds",
        creevey_dask.ShardOptions("webdataset", shard_size=5, caption_col="caption"),
    )
    records = creevey_dask.read_shards(str(tmp_path / "wds")).compute()
    keys = sorted(records.loc[records["status"] == "ok", "key"])

    as_parquet = records.creevey.resize(
        str(tmp_path / "pq"),
        path_col="sample",
        progress=False,
        shape=(64, 64),
        output_format=creevey_dask.ShardOptions("parquet", shard_size=4),
    )
    assert (as_parquet["status"] == "ok").sum() == 11
    assert (as_parquet["status"] == "error").sum() == 1  # the failed download stays failed
    files = sorted(str(p) for p in (tmp_path / "pq").glob("*.parquet"))
    loaded = datasets.load_dataset("parquet", data_files={"train": files})["train"]
    assert sorted(r["key"] for r in loaded if r["status"] == "ok") == keys  # keys kept
    assert all(r["image"].size == (64, 64) for r in loaded if r["status"] == "ok")

    from_parquet = creevey_dask.read_shards(str(tmp_path / "pq")).compute()
    assert from_parquet["sample"].dropna().str.contains(r"\.parquet#[0-9a-f]{16}\.jpg$").all()
    back = from_parquet.creevey.resize(
        str(tmp_path / "wds2"),
        path_col="sample",
        progress=False,
        shape=(32, 32),
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=3, caption_col="caption"),
    )
    assert (back["status"] == "ok").sum() == 11
    tars = sorted(str(p) for p in (tmp_path / "wds2").glob("*.tar"))
    assert len(tars) >= 4  # 11 samples, 3 a shard
    seen = {}
    for sample in _webdataset_samples(wds, tars):
        assert sample["jpg"].size == (32, 32)
        assert sample["txt"] == sample["json"]["caption"]
        seen[sample["__key__"]] = sample
    assert sorted(seen) == keys
    loaded = datasets.load_dataset("webdataset", data_files={"train": tars})["train"]
    assert len(loaded) == 11
    rerun = from_parquet.creevey.resize(
        str(tmp_path / "wds2"),
        path_col="sample",
        progress=False,
        shape=(32, 32),
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=3, caption_col="caption"),
    )
    assert set(rerun["status"]) <= {"skipped", "error"}  # nothing redone


def _img2dataset_shard(folder: Path, n: int = 5) -> dict[str, bytes]:
    """A shard laid out as img2dataset writes one: ``00000.tar`` + ``00000.parquet``."""
    folder.mkdir(parents=True)
    images = {f"{i:09d}": photo_bytes(100 + i, (48 + i, 36)) for i in range(n)}
    samples = {}
    rows = []
    for i, (key, data) in enumerate(images.items()):
        meta = {
            "url": f"https://example.com/{i}.jpg", "caption": f"photo {i}", "key": key,
            "status": "success", "error_message": None, "width": 48 + i, "height": 36,
            "original_width": 480, "original_height": 360, "exif": "{}",
            "sha256": hashlib.sha256(data).hexdigest(),
        }  # fmt: skip
        samples[key] = {
            "jpg": data,
            "txt": meta["caption"].encode(),
            "json": json.dumps(meta, indent=4).encode(),
        }
        rows.append(meta)
    rows.append(
        {
            "url": "https://example.com/gone.jpg", "caption": "gone", "key": f"{n:09d}",
            "status": "failed_to_download", "error_message": "HTTP Error 404: Not Found",
            "width": None, "height": None, "original_width": None, "original_height": None,
            "exif": None, "sha256": None,
        }
    )  # fmt: skip
    write_tar(folder / "00000.tar", samples)
    pd.DataFrame(rows).to_parquet(folder / "00000.parquet")
    stats = {"count": n + 1, "successes": n, "failed_to_download": 1, "failed_to_resize": 0}
    (folder / "00000_stats.json").write_text(json.dumps(stats))
    return images


def test_img2dataset_shards_are_read(tmp_path: Path) -> None:
    images = _img2dataset_shard(tmp_path / "i2d")
    records = creevey_dask.read_shards(str(tmp_path / "i2d")).compute()
    assert len(records) == 6
    ok = records[records["status"] == "ok"]
    assert len(ok) == 5
    for row in ok.itertuples():
        assert row.sample == f"{tmp_path}/i2d/00000.tar#{row.key}.jpg"
        assert read_sample(row.sample) == images[row.key]
    bad = records[records["status"] == "error"].iloc[0]
    assert bad["error"] == "failed_to_download: HTTP Error 404: Not Found"
    assert pd.isna(bad["sample"])
    small = ok.creevey.resize(str(tmp_path / "small"), shape=(16, 16), path_col="sample")
    assert (small["status"] == "ok").all()
    assert sorted(os.listdir(tmp_path / "small")) == [f"{k}.jpg" for k in sorted(images)]


# ---- S3 --------------------------------------------------------------------------------


class _Gets:
    """The bytes the s3fs client asks the moto server for, per object suffix."""

    def __init__(self, fs: Any, s3: Any) -> None:
        self.s3 = s3
        self.seen: list[tuple[str, str | None]] = []
        fs.call_s3("list_buckets")  # connect, so that the client exists
        fs.s3.meta.events.register("before-send.s3", self._see)

    def _see(self, request: Any, **kwargs: Any) -> None:
        if request.method != "GET" or "list-type=" in request.url or "prefix=" in request.url:
            return
        value = request.headers.get("Range")
        value = value.decode() if isinstance(value, bytes) else value
        self.seen.append((unquote(urlsplit(request.url).path), value))

    def take(self) -> dict[str, int]:
        """Bytes requested per kind (``.tar``, ``.parquet``, ``.json``), then cleared."""
        totals: dict[str, int] = {}
        for path, value in self.seen:
            bucket, key = path.lstrip("/").split("/", 1)
            size = int(self.s3.client.head_object(Bucket=bucket, Key=key)["ContentLength"])
            if value:
                first, last = value.removeprefix("bytes=").split("-")
                size = min(size, int(last) + 1) - int(first)
            kind = "." + key.rsplit(".", 1)[-1]
            totals[kind] = totals.get(kind, 0) + size
        self.seen = []
        return totals


@pytest.mark.slow
def test_s3_selections_cost_what_they_select(image_server: Any, s3: Any) -> None:
    s3.client.create_bucket(Bucket="data")
    options = s3.storage_options
    names = [MANY[i % len(MANY)] for i in range(200)]
    df = _frame(image_server, names)
    df["url"] = [f"{u}?copy={i}" for i, u in enumerate(df["url"])]  # 200 distinct rows
    _download(
        df,
        "s3://data/shards",
        creevey_dask.ShardOptions("webdataset", shard_size=10),
        storage_options=options,
        format="png",
    )
    shards = sorted(p for p in s3.fs.ls("data/shards") if p.endswith(".tar"))
    assert len(shards) == 20
    total = sum(int(s3.fs.info(p)["size"]) for p in shards)

    gets = _Gets(s3.fs, s3)
    records = creevey_dask.read_shards("s3://data/shards", options).compute()
    first_read = gets.take().get(".tar", 0)
    offsets = tar_index(f"s3://{shards[0]}", options).origin == "records"
    if offsets:  # the records place every sample: one sample per shard tells the format
        assert first_read < 0.2 * total
    else:  # older shards, without offsets: indexed once, here, by one pass each
        assert first_read >= total
    shard_sources._cache.clear()  # a new process: the records or the indexes beside serve
    records = creevey_dask.read_shards("s3://data/shards", options).compute()
    assert gets.take().get(".tar", 0) == (first_read if offsets else 0)

    picked = records.sample(n=4, random_state=1)  # 2% of the samples
    expected = 0
    for source in picked["sample"]:
        shard, member = shard_sources.split_sample(source)  # type: ignore[misc]
        start, end = tar_index(shard, options).span(member)  # type: ignore[misc]
        expected += end - start
    gets.take()
    small = picked.creevey.resize(
        "s3://data/small",
        path_col="sample",
        progress=False,
        shape=(24, 24),
        options=creevey_dask.RunOptions(storage_options=options),
    )
    assert (small["status"] == "ok").all()
    read = gets.take()
    assert read.get(".tar", 0) == expected  # exactly the selected members' bytes
    assert read.get(".tar", 0) < 0.05 * total
    for row in small.itertuples():
        image = Image.open(io.BytesIO(s3.get("data", row.outpath.split("data/", 1)[1])))
        assert image.size == (24, 24)


def test_s3_samples_resize_reshard_filter_and_sheet(image_server: Any, s3: Any) -> None:
    s3.client.create_bucket(Bucket="data")
    options = s3.storage_options
    df = _frame(image_server, MANY[:9])
    _download(
        df,
        "s3://data/wds",
        creevey_dask.ShardOptions("webdataset", shard_size=4),
        storage_options=options,
    )
    records = creevey_dask.read_shards("s3://data/wds", options)  # a dask frame, lazily
    picked = records[records["label"] == "label-1"]
    small = picked.creevey.resize(
        "s3://data/small",
        path_col="sample",
        progress=False,
        shape=(20, 20),
        options=creevey_dask.RunOptions(storage_options=options),
    ).compute()
    assert (small["status"] == "ok").all()
    assert len(small) == 3
    as_parquet = records.creevey.resize(
        "s3://data/pq",
        path_col="sample",
        progress=False,
        shape=(20, 20),
        output_format=creevey_dask.ShardOptions("parquet", shard_size=5),
        options=creevey_dask.RunOptions(storage_options=options),
    ).compute()
    assert (as_parquet["status"] == "ok").sum() == 9
    back = creevey_dask.read_shards("s3://data/pq", options).compute()
    assert back["sample"].str.startswith("s3://data/pq/").all()
    sheet = creevey_dask.contact_sheet(back, path_col="sample", storage_options=options)
    assert sheet.size[0] > 0
    thumb = reports._thumbnail(back["sample"].iloc[0], "ok", None, 32, options)
    assert isinstance(thumb, Image.Image)
    again = back.creevey.resize(
        "s3://data/wds2",
        path_col="sample",
        progress=False,
        shape=(16, 16),
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=2),
        options=creevey_dask.RunOptions(storage_options=options),
    )
    assert (again["status"] == "ok").sum() == 9
    tars = [p for p in s3.fs.ls("data/wds2") if p.endswith(".tar")]
    assert len(tars) == 5
    names = []
    for tar in tars:
        with tarfile.open(fileobj=io.BytesIO(s3.get("data", tar.split("/", 1)[1]))) as archive:
            names += archive.getnames()
    assert sorted(n.split(".")[0] for n in names if n.endswith(".jpg")) == sorted(back["key"])


def test_samples_feed_pipelines_duplicates_and_splits(tmp_path: Path) -> None:
    from creevey_dask.testing import ImageServer, sample_images

    with ImageServer(sample_images(6)) as server:
        names = list(server.files)
        urls = [server.url(f"/img/{n}", n=i) for i, n in enumerate(names + names[:2])]
        df = pd.DataFrame({"url": urls, "label": [f"l{i % 3}" for i in range(8)]})
        _download(df, tmp_path / "shards")  # two photos twice
    records = creevey_dask.read_shards(str(tmp_path / "shards")).compute()
    hashed = records.creevey.resize(
        str(tmp_path / "h"),
        path_col="sample",
        measure=["dhash"],
        progress=False,
        shape=creevey_dask.ops.resize(max_dim=64),
    )
    groups = hashed.creevey.duplicates()
    assert groups["dup_group"].nunique() == 6  # each copy found, nothing else
    split = groups.creevey.split(0.5, groupby="dup_group", random_state=0)
    assert split.creevey.leaks().empty
    pipeline = creevey_dask.Pipeline(creevey_dask.load_image, ops=[creevey_dask.ops.grayscale])
    out = tmp_path / "gray"
    result = pipeline.run(
        records["sample"].tolist(), lambda s: str(out / s.rsplit("#", 1)[1]), progress=False
    )
    assert (result["status"] == "ok").all()
    for path in result["outpath"]:
        with Image.open(path) as image:
            assert image.mode == "L"


def test_records_with_offsets_name_their_samples_without_an_index(tmp_path: Path) -> None:
    from tests.test_samples import some_samples

    out = tmp_path / "new"
    out.mkdir()
    samples = some_samples(4)
    spans = write_tar(out / "00000-0000-0a0b0c0d.tar", samples)
    tar = str(out / "00000-0000-0a0b0c0d.tar")
    pd.DataFrame(
        {
            "key": list(spans),
            "outpath": [tar] * 4,
            "status": ["ok"] * 4,
            "error": pd.array([None] * 4, dtype="string"),
            "tar_offset": [s[0] for s in spans.values()],
            "tar_size": [s[1] for s in spans.values()],
        }
    ).to_parquet(out / "00000-0000-0a0b0c0d.parquet")
    (out / "00001-0000-deadbeef.parquet").write_bytes(b"PAR1 not really")  # damaged: left out
    records = creevey_dask.read_shards(str(out)).compute()
    assert records["sample"].tolist() == [f"{tar}#{k}.jpg" for k in spans]
    for row in records.itertuples():
        assert read_sample(row.sample) == samples[row.key]["jpg"]
    assert not list(out.glob("*.index.json"))  # the records' offsets sufficed
    # records whose spans run past the tar's end: the shard is not complete
    with open(tar, "r+b") as f:
        f.truncate(spans["000000003"][0] + 100)
    records = creevey_dask.read_shards(str(out)).compute()
    assert records["sample"].isna().all()
    assert (records["status"] == "error").all()  # not ok: the sample is not there whole
    assert (records["error_type"] == "ArchiveError").all()
    assert records["outpath"].isna().all()


def test_records_never_vouch_for_another_tar_of_the_same_size(
    image_server: Any, tmp_path: Path
) -> None:
    """A tar rewritten after its records (same size, other bytes) serves no sample: the
    reader applies resume's rule (the sha256 the records noted), and a rerun redoes it."""
    df = _frame(image_server, MANY[:5])
    first = _download(df, tmp_path / "shards", format="png")
    assert (first["status"] == "ok").all()
    (tar,) = (tmp_path / "shards").glob("*.tar")
    records_file = tar.with_suffix(".parquet")
    data = bytearray(tar.read_bytes())
    data[600] ^= 0xFF  # inside the first sample's image: the size stays
    tar.write_bytes(bytes(data))
    later = records_file.stat().st_mtime + 10
    os.utime(tar, (later, later))
    records = creevey_dask.read_shards(str(tmp_path / "shards")).compute()
    assert records["sample"].isna().all()
    assert (records["status"] == "error").all()
    assert (records["error_type"] == "ArchiveError").all()
    assert records["error"].str.contains("not the tar its records describe").all()
    again = _download(df, tmp_path / "shards", format="png")
    assert (again["status"] == "ok").all()  # the shard does not count: its rows are redone
    records = creevey_dask.read_shards(str(tmp_path / "shards")).compute()
    assert (records["status"] == "ok").all()
    assert records["sample"].notna().all()
    for row in records.itertuples():  # each sample decodes, and is its own row's image
        source = Image.open(io.BytesIO(image_server.files[row.url.split("/img/", 1)[1]]))
        with Image.open(io.BytesIO(read_sample(row.sample))) as sample:
            sample.load()
            assert _close_to(sample, source)
