"""Sharded outputs (creevey_dask.sinks.shards): WebDataset and Parquet shards, read by real
consumers.

Every test runs real downloads against the loopback image server and checks the shards
with the libraries users read them with: ``webdataset``, Hugging Face ``datasets``,
pyarrow, and s3fs on the moto server.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import creevey_dask
from creevey_dask.exceptions import ColumnError
from creevey_dask.sinks import shards as sinks
from creevey_dask.sources.http import HttpOptions
from creevey_dask.storage.samples import read_sample
from tests._httpserver import served_files

MANY = [f"many/{i:03d}.jpg" for i in range(40)]


def _frame(server: Any, names: list[str], missing: int = 0) -> pd.DataFrame:
    urls = [server.url(f"/img/{n}") for n in names]
    urls += [server.url(f"/img/missing-{i}.jpg") for i in range(missing)]
    return pd.DataFrame(
        {
            "url": urls,
            "label": [f"label-{i % 3}" for i in range(len(urls))],
            "caption": [f"a picture number {i}" for i in range(len(urls))],
            "n": np.arange(len(urls), dtype="int64"),
        }
    )


def _source_image(url: str) -> Image.Image:
    name = url.split("/img/", 1)[1]
    return Image.open(io.BytesIO(served_files()[name])).convert("RGB")


def _tar_samples(paths: list[str]) -> dict[str, dict[str, bytes]]:
    """key -> {ext: bytes} over all the tars, asserting each key appears once."""
    samples: dict[str, dict[str, bytes]] = {}
    for path in paths:
        with tarfile.open(path) as tar:
            members: dict[str, dict[str, bytes]] = {}
            for member in tar.getmembers():
                key, ext = member.name.split(".", 1)
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                members.setdefault(key, {})[ext] = data
        for key, sample in members.items():
            assert key not in samples, f"key {key} in two shards"
            samples[key] = sample
    return samples


def _webdataset_samples(wds: Any, tars: list[str]) -> Any:
    """webdataset's own tar reader, key grouping and decoders over the shards.

    The streams are opened here (not by ``wds.WebDataset``'s opener, which leaves them
    to the garbage collector) so the test leaks no files.
    """
    from webdataset import autodecode, tariterators

    decoder = autodecode.Decoder([autodecode.imagehandler("pil"), autodecode.basichandlers])
    for path in tars:
        with open(path, "rb") as stream:
            shard = [{"url": path, "stream": stream}]
            for sample in tariterators.group_by_keys(tariterators.tar_file_expander(shard)):
                yield decoder(sample)


def _hf_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", tmp_path / "hf_modules")
    return datasets


# ---- WebDataset ------------------------------------------------------------------------


def test_webdataset_shards_read_by_webdataset(image_server: Any, tmp_path: Path) -> None:
    wds = pytest.importorskip("webdataset")
    df = _frame(image_server, MANY[:23], missing=3)
    out = tmp_path / "shards"
    result = df.creevey.download(
        str(out),
        format="png",
        progress=False,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=5, caption_col="caption"),
        options=creevey_dask.RunOptions(npartitions=2),
    )
    # the result frame: the input columns, outpath = shard, key, the usual results
    assert list(result.columns[:4]) == ["url", "label", "caption", "n"]
    for col in ("outpath", "key", "status", "error", "http_status", "bytes", "width", "height"):
        assert col in result.columns
    ok = result[result["status"] == "ok"]
    assert len(ok) == 23
    assert (result["status"] == "error").sum() == 3
    assert result["key"].is_unique
    assert result["key"].notna().all()
    assert ok["outpath"].str.endswith(".tar").all()
    assert result.loc[result["status"] == "error", "outpath"].isna().all()
    tars = sorted(str(p) for p in out.glob("*.tar"))
    assert set(ok["outpath"]) == set(tars)
    # each tar has its records beside it; stats at the end
    for tar in tars:
        assert os.path.exists(tar[: -len(".tar")] + ".parquet")
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["rows"] == 26
    assert stats["status"] == {"ok": 23, "error": 3}
    assert stats["errors_by_type"] == {"HttpError": 3}
    assert stats["last_run"]["status"] == {"ok": 23, "skipped": 0, "error": 3}
    # the rows are cut into whole shards: only the call's last shard is short
    sizes = sorted(len(pd.read_parquet(p)) for p in out.glob("*.parquet"))
    assert sizes == [1, 5, 5, 5, 5, 5]

    # the webdataset package iterates the shards and decodes every image
    by_key = ok.set_index("key")
    seen = 0
    for sample in _webdataset_samples(wds, tars):
        key = sample["__key__"]
        row = by_key.loc[key]
        meta = sample["json"]
        for col in ("url", "label", "caption", "n"):
            assert meta[col] == row[col]
        assert meta["key"] == key
        assert (meta["width"], meta["height"]) == (row["width"], row["height"])
        image = sample["png"]
        source = _source_image(row["url"])
        assert image.size == source.size == (meta["width"], meta["height"])
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(source))
        assert sample["txt"] == row["caption"]
        seen += 1
    assert seen == len(ok)


def test_webdataset_json_hash_and_member_names(image_server: Any, tmp_path: Path) -> None:
    import hashlib

    df = _frame(image_server, MANY[:4])
    out = tmp_path / "s"
    result = df.creevey.download(
        str(out),
        format="jpeg",
        progress=False,
        output_format=creevey_dask.ShardOptions("webdataset", carry_cols=["label"]),
    )
    (tar,) = out.glob("*.tar")
    with tarfile.open(tar) as archive:
        names = archive.getnames()
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]
    keys = result["key"].tolist()
    assert names == [f"{k}.{ext}" for k in keys for ext in ("jpg", "json")]
    for key in keys:
        meta = json.loads(members[f"{key}.json"])
        assert set(meta) >= {"url", "label", "key", "width", "height", "sha256"}
        assert "caption" not in meta
        assert "n" not in meta
        assert meta["sha256"] == hashlib.sha256(members[f"{key}.jpg"]).hexdigest()


# ---- Parquet ---------------------------------------------------------------------------


def test_parquet_shards_and_hf_datasets(
    image_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = _hf_offline(monkeypatch, tmp_path)
    df = _frame(image_server, MANY[:12], missing=2)
    wds_out, pq_out = tmp_path / "wds", tmp_path / "pq"
    for fmt, out in (("webdataset", wds_out), ("parquet", pq_out)):
        result = df.creevey.download(
            str(out),
            format="png",
            progress=False,
            output_format=creevey_dask.ShardOptions(fmt, shard_size=4, caption_col="caption"),
            options=creevey_dask.RunOptions(npartitions=2),
        )
        assert (result["status"] == "ok").sum() == 12

    loaded = datasets.load_dataset(
        "webdataset", data_files={"train": sorted(str(p) for p in wds_out.glob("*.tar"))}
    )["train"]
    assert len(loaded) == 12
    for row in loaded:
        assert isinstance(row["png"], Image.Image)
        assert row["png"].size == (row["json"]["width"], row["json"]["height"])
        assert row["txt"] == row["json"]["caption"]

    files = sorted(str(p) for p in pq_out.glob("*.parquet"))
    loaded = datasets.load_dataset("parquet", data_files={"train": files})["train"]
    assert len(loaded) == 14  # every row is recorded; error rows have no image
    assert isinstance(loaded.features["image"], datasets.Image)
    images = 0
    for row in loaded:
        if row["status"] == "ok":
            image = row["image"]
            assert isinstance(image, Image.Image)
            source = _source_image(row["url"])
            assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(source))
            images += 1
        else:
            assert row["image"] is None
            assert row["error"].startswith("HttpError")
    assert images == 12


def test_read_shards_gives_the_records(image_server: Any, tmp_path: Path) -> None:
    df = _frame(image_server, MANY[:9], missing=2)
    for fmt in ("webdataset", "parquet"):
        out = tmp_path / fmt
        result = df.creevey.download(
            str(out),
            progress=False,
            output_format=creevey_dask.ShardOptions(fmt, shard_size=4),
            options=creevey_dask.RunOptions(npartitions=1),
        )
        records = creevey_dask.read_shards(str(out))
        assert "image" not in records.columns
        frame = records.compute()
        assert len(frame) == 11
        assert frame["status"].dtype == creevey_dask.STATUS_DTYPE
        merged = frame.set_index("key").loc[result["key"]]
        assert merged["url"].tolist() == result["url"].tolist()
        assert merged["status"].tolist() == result["status"].tolist()
        assert merged["outpath"].fillna("").tolist() == result["outpath"].fillna("").tolist()
        # the failures can be retried like those of a files run
        failed = frame[frame["status"] == "error"]
        assert len(failed) == 2
    with pytest.raises(FileNotFoundError, match="no shard records"):
        creevey_dask.read_shards(str(tmp_path / "empty"))


# ---- S3 --------------------------------------------------------------------------------


def test_shards_to_s3(image_server: Any, s3: Any) -> None:
    s3.client.create_bucket(Bucket="shards")
    df = _frame(image_server, MANY[:10], missing=1)
    options = s3.storage_options
    result = df.creevey.download(
        "s3://shards/run1",
        format="png",
        progress=False,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=4),
        options=creevey_dask.RunOptions(npartitions=1, storage_options=options),
    )
    assert (result["status"] == "ok").sum() == 10
    s3.fs.invalidate_cache()
    listing = sorted(s3.fs.ls("shards/run1"))
    tars = [p for p in listing if p.endswith(".tar")]
    assert len(tars) == 3
    assert len([p for p in listing if p.endswith(".parquet")]) == 3
    assert "shards/run1/_stats.json" in listing
    keys = set()
    for tar in tars:
        with tarfile.open(fileobj=io.BytesIO(s3.fs.cat_file(tar))) as archive:
            for member in archive.getmembers():
                if member.name.endswith(".png"):
                    data = archive.extractfile(member).read()  # type: ignore[union-attr]
                    Image.open(io.BytesIO(data)).load()
                    keys.add(member.name.split(".")[0])
    assert keys == set(result.loc[result["status"] == "ok", "key"])
    records = creevey_dask.read_shards("s3://shards/run1", storage_options=options).compute()
    assert sorted(records["key"]) == sorted(result["key"])
    # a rerun skips every committed shard
    again = df.creevey.download(
        "s3://shards/run1",
        format="png",
        progress=False,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=4),
        options=creevey_dask.RunOptions(npartitions=1, storage_options=options),
    )
    assert (again["status"] == "skipped").sum() == 10
    assert (again["status"] == "ok").sum() == 0


# ---- resume ----------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys, pandas as pd, creevey_dask
    from creevey_dask.sources.http import HttpOptions
    df = pd.read_csv(sys.argv[1])
    df.creevey.download(sys.argv[2], format="png",
                        output_format=creevey_dask.ShardOptions("webdataset", shard_size=4),
                        options=creevey_dask.RunOptions(npartitions=6), n_jobs=2,
                        http_options=HttpOptions(retries=0), progress=False)
    """
)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in folder.iterdir()
        if p.suffix in (".tar", ".parquet")
    }


@pytest.mark.slow
def test_killed_run_leaves_whole_shards_and_resumes(image_server: Any, tmp_path: Path) -> None:
    names = MANY[:36]
    df = _frame(image_server, names)
    df["url"] = [u + "?stall=0.15" for u in df["url"]]  # slow rows, so the kill lands mid-run
    csv = tmp_path / "urls.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "out"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(csv), str(out)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = list(out.glob("*.parquet")) if out.exists() else []
            if len(done) >= 2:
                break
            assert child.poll() is None, "the child run ended before it could be killed"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    committed = _snapshot(out)
    records = [n for n in committed if n.endswith(".parquet")]
    assert 2 <= len(records) < 9, "the kill did not land mid-run"
    # whole shards only: every tar there reads to its end
    for name in committed:
        if name.endswith(".tar"):
            with tarfile.open(out / name) as archive:
                for member in archive.getmembers():
                    archive.extractfile(member).read()  # type: ignore[union-attr]

    read_back = pd.read_csv(csv)
    result = read_back.creevey.download(
        str(out),
        format="png",
        n_jobs=2,
        progress=False,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=4),
        http_options=HttpOptions(retries=0),
        options=creevey_dask.RunOptions(npartitions=6),
    )
    assert (result["status"] != "error").all()
    after = _snapshot(out)
    for name in records:  # committed shards untouched: same bytes, same mtime
        assert after[name] == committed[name]
        tar = name[: -len(".parquet")] + ".tar"
        assert after[tar] == committed[tar]
    skipped = result[result["status"] == "skipped"]
    assert len(skipped) == 4 * len(records)
    # every row exactly once across the shards, each the image of its row
    samples = _tar_samples([str(p) for p in out.glob("*.tar")])
    assert sorted(samples) == sorted(result["key"])
    for key, url in zip(result["key"], result["url"], strict=True):
        image = Image.open(io.BytesIO(samples[key]["png"])).convert("RGB")
        assert np.array_equal(np.asarray(image), np.asarray(_source_image(url.split("?")[0])))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # temporaries swept


def test_failed_rows_fed_back_go_to_new_shards(fresh_image_server: Any, tmp_path: Path) -> None:
    server = fresh_image_server
    df = _frame(server, MANY[:8])
    df.loc[[1, 6], "url"] = [u + "?fail=1" for u in df.loc[[1, 6], "url"]]  # fail once
    out = tmp_path / "out"
    options = HttpOptions(retries=0)
    first = df.creevey.download(
        str(out),
        progress=False,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=4),
        http_options=options,
        options=creevey_dask.RunOptions(npartitions=1),
    )
    assert (first["status"] == "error").sum() == 2
    before = _snapshot(out)
    retry = first[first["status"] == "error"]
    second = retry.creevey.download(
        str(out),
        progress=False,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=4),
        http_options=options,
        options=creevey_dask.RunOptions(npartitions=1),
    )
    assert (second["status"] == "ok").all()
    assert second["key"].tolist() == first.loc[[1, 6], "key"].tolist()  # a row keeps its key
    after = _snapshot(out)
    for name, value in before.items():
        assert after[name] == value
    new = set(after) - set(before)
    assert len(new) == 2  # one new shard: its tar and its records
    samples = _tar_samples([str(p) for p in out.glob("*.tar")])
    assert sorted(samples) == sorted(first["key"])


def test_skip_existing_false_rewrites(image_server: Any, tmp_path: Path) -> None:
    df = _frame(image_server, MANY[:3])
    out = tmp_path / "o"
    kwargs: dict[str, Any] = {"output_format": "parquet", "progress": False}
    df.creevey.download(str(out), **kwargs)
    again = df.creevey.download(str(out), skip_existing=False, **kwargs)
    assert (again["status"] == "ok").all()


# ---- cluster ---------------------------------------------------------------------------


@pytest.mark.cluster
def test_local_cluster_writes_the_same_samples(
    image_server: Any, tmp_path: Path, local_cluster_client: Any
) -> None:
    import dask.dataframe as dd

    df = _frame(image_server, MANY[:14], missing=1)
    ddf = dd.from_pandas(df, npartitions=3)
    outputs = {}
    for where in ("cluster", "local"):
        out = tmp_path / where
        lazy = ddf.creevey.download(
            str(out),
            format="png",
            progress=False,
            output_format=creevey_dask.ShardOptions("webdataset", shard_size=3),
        )
        if where == "cluster":
            result = local_cluster_client.compute(lazy).result()
        else:
            result = lazy.compute(scheduler="sync")
        assert (result["status"] == "ok").sum() == 14
        tars = sorted(out.glob("*.tar"))
        outputs[where] = (
            [p.name for p in tars],
            _tar_samples([str(p) for p in tars]),
            result.reset_index(drop=True),
        )
    # names are unique to their writing; the partition and chunk parts are the same
    parts = {w: [n.split("-")[2:4] for n in names] for w, (names, _, _) in outputs.items()}
    assert parts["cluster"] == parts["local"]
    assert outputs["cluster"][1] == outputs["local"][1]
    pd.testing.assert_frame_equal(
        outputs["cluster"][2].drop(columns="outpath"), outputs["local"][2].drop(columns="outpath")
    )


# ---- resize and Pipeline.run ---------------------------------------------------------


def test_resize_and_pipeline_to_shards(image_files: list[str], tmp_path: Path, memfs: Any) -> None:
    df = pd.DataFrame({"path": image_files, "tag": [f"t{i}" for i in range(len(image_files))]})
    result = df.creevey.resize(
        str(tmp_path / "r"), shape=(16, 16), format="jpeg", output_format="webdataset",
        progress=False,
    )  # fmt: skip
    assert (result["status"] == "ok").all()
    samples = _tar_samples([str(p) for p in (tmp_path / "r").glob("*.tar")])
    for key in result["key"]:
        assert Image.open(io.BytesIO(samples[key]["jpg"])).size == (16, 16)
        assert json.loads(samples[key]["json"])["tag"] in set(df["tag"])

    pipeline = creevey_dask.Pipeline(creevey_dask.load_image, ops=[creevey_dask.ops.grayscale])
    run = pipeline.run(df, "memory://shards", inpath_col="path", output_format="parquet",
                       progress=False)  # fmt: skip
    assert (run["status"] == "ok").all()
    assert run["outpath"].str.startswith("memory://").all()
    records = creevey_dask.read_shards("memory://shards").compute()
    assert sorted(records["key"]) == sorted(run["key"])


def test_bad_arguments(image_server: Any, tmp_path: Path) -> None:
    df = _frame(image_server, MANY[:2])
    with pytest.raises(ValueError, match="output_format 'zip' is not one of"):
        df.creevey.download(str(tmp_path), output_format="zip")
    with pytest.raises(ValueError, match="shard_size must be a positive int"):
        df.creevey.download(
            str(tmp_path), output_format=creevey_dask.ShardOptions("webdataset", shard_size=0)
        )
    with pytest.raises(ColumnError, match="nope"):
        df.creevey.download(
            str(tmp_path),
            output_format=creevey_dask.ShardOptions("webdataset", carry_cols=["nope"]),
        )
    with pytest.raises(ValueError, match="the shard format 'files' is not one of"):
        creevey_dask.ShardOptions("files", caption_col="caption")
    pipeline = creevey_dask.Pipeline(creevey_dask.load_image, write_func=lambda im, p: None)
    with pytest.raises(TypeError, match="encode_for"):
        pipeline.run(["a.png"], str(tmp_path), output_format="webdataset", progress=False)


def test_row_keys_are_unique_and_dot_free() -> None:
    keys = sinks.row_keys([0, 0, 1], ["a.jpg", "a.jpg", "a.jpg"])
    assert len(set(keys)) == 3
    assert all("." not in k for k in keys)
    assert sinks.row_keys([5], ["x"]) == sinks.row_keys([5], ["x"])


def test_command_line_writes_shards(image_server: Any, tmp_path: Path) -> None:
    from creevey_dask.cli.main import main

    df = _frame(image_server, MANY[:7])
    table = tmp_path / "in.csv"
    df.to_csv(table, index=False)
    out = tmp_path / "shards"
    code = main(
        [
            "download", str(table), "--outdir", str(out), "--output", str(tmp_path / "r.parquet"),
            "--format", "jpeg", "--output-format", "webdataset", "--shard-size", "3",
            "--caption-col", "caption", "--carry-col", "caption", "--carry-col", "label",
            "--npartitions", "1", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    result = pd.read_parquet(tmp_path / "r.parquet")
    assert (result["status"] == "ok").all()
    samples = _tar_samples(sorted(str(p) for p in out.glob("*.tar")))
    assert len(list(out.glob("*.tar"))) == 3
    assert sorted(samples) == sorted(result["key"])
    for key, caption in zip(result["key"], result["caption"], strict=True):
        meta = json.loads(samples[key]["json"])
        assert set(meta) == {"url", "caption", "label", "key", "http_status", "bytes",
                             "attempts", "width", "height", "sha256"}  # fmt: skip
        assert samples[key]["txt"].decode() == caption
        Image.open(io.BytesIO(samples[key]["jpg"])).load()


def _noise_pngs(n: int, seed: int = 2) -> dict[str, bytes]:
    """``n`` random-noise PNGs of ~90 KB each (they do not compress)."""
    rng = np.random.default_rng(seed)
    files = {}
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)).save(buffer, "PNG")
        files[f"n{i:02d}.png"] = buffer.getvalue()
    return files


def _assert_complete_shards(outdir: Path, result: pd.DataFrame) -> None:
    """Every ok/skipped row's shard exists with its records and holds the row's sample."""
    done = result[result["status"].isin(["ok", "skipped"])]
    for shard, rows in done.groupby("outpath"):
        assert os.path.getsize(shard) > 0
        assert os.path.exists(str(shard)[: -len(".tar")] + ".parquet"), shard
        with tarfile.open(shard) as tar:
            names = {m.name.split(".", 1)[0] for m in tar.getmembers()}
        assert set(rows["key"]) <= names
    assert not [p for p in outdir.iterdir() if p.name.startswith(".")]  # no temporaries


@pytest.mark.parametrize("output_format", ["webdataset", "parquet"])
def test_a_shard_that_cannot_be_written_gives_error_rows(
    tmpfs_2m: Path, output_format: str
) -> None:
    """A full disk: the shards that fit commit, the others' rows are one-line errors."""
    from creevey_dask.testing import ImageServer

    files = _noise_pngs(28)  # ~2.5 MB: 7 shards of 4, not all fit in 2 MiB
    with ImageServer(files) as server:
        df = pd.DataFrame({"url": [server.url(f"/img/{name}") for name in files]})
        result = df.creevey.download(
            str(tmpfs_2m),
            format="original",
            progress=False,
            output_format=creevey_dask.ShardOptions(output_format, shard_size=4),
            options=creevey_dask.RunOptions(npartitions=2),
        )
    counts = result["status"].value_counts()
    assert counts["ok"] >= 4, counts
    assert counts["error"] >= 4, counts
    errors = result.loc[result["status"] == "error"]
    for message in errors["error"]:
        assert "could not be written" in message, message
        assert "No space left" in message, message
        assert str(tmpfs_2m) in message, message
        assert "\n" not in message
    assert errors["outpath"].isna().all()
    listing = sorted(os.listdir(tmpfs_2m))
    assert not [name for name in listing if name.startswith(".")]  # no temporaries
    ok = result[result["status"] == "ok"]
    for shard, rows in ok.groupby("outpath"):
        if output_format == "webdataset":
            with tarfile.open(shard) as tar:
                images = {
                    m.name[: -len(".png")]: tar.extractfile(m).read()  # type: ignore[union-attr]
                    for m in tar
                    if m.name.endswith(".png")
                }
            records = pd.read_parquet(str(shard)[: -len(".tar")] + ".parquet")
        else:
            records = pd.read_parquet(shard)
            images = {
                k: img["bytes"]
                for k, img in zip(records["key"], records["image"], strict=True)
                if img is not None
            }
        assert set(images) == set(rows["key"])
        assert set(records["key"]) == set(rows["key"])
        for key, url in zip(rows["key"], rows["url"], strict=True):
            assert images[key] == files[url.rsplit("/", 1)[1]]  # the row's own image
    if output_format == "webdataset":  # a tar only with its records (the commit marker)
        tars = {n[: -len(".tar")] for n in listing if n.endswith(".tar")}
        assert tars <= {n[: -len(".parquet")] for n in listing if n.endswith(".parquet")}
        assert len(tars) == ok["outpath"].nunique()
    time.sleep(0.3)
    assert sorted(os.listdir(tmpfs_2m)) == listing  # nothing written after the call returned


def test_a_missing_empty_or_cut_shard_is_redone(image_server: Any, tmp_path: Path) -> None:
    """Skip only complete shards: a missing, empty or truncated tar is written again."""
    df = _frame(image_server, MANY[:16])
    out = tmp_path / "o"
    kwargs: dict[str, Any] = {
        "output_format": creevey_dask.ShardOptions("webdataset", shard_size=4),
        "progress": False,
    }
    kwargs["format"] = "original"
    first = df.creevey.download(str(out), **kwargs, options=creevey_dask.RunOptions(npartitions=1))
    assert (first["status"] == "ok").all()
    tars = sorted(first["outpath"].unique())
    assert len(tars) == 4
    os.remove(tars[0])
    Path(tars[1]).write_bytes(b"")
    with open(tars[2], "r+b") as f:
        f.truncate(os.path.getsize(tars[2]) // 2)
    intact = _snapshot(out)[Path(tars[3]).name]
    again = df.creevey.download(str(out), **kwargs, options=creevey_dask.RunOptions(npartitions=1))
    redone = first["outpath"].isin(tars[:3]).to_numpy()
    assert (again.loc[redone, "status"] == "ok").all()
    assert not again.loc[redone, "outpath"].isin(tars).any()  # into new shards
    assert again.loc[redone, "outpath"].nunique() == 3  # of 4 rows each
    assert (again.loc[~redone, "status"] == "skipped").all()
    assert int(redone.sum()) == 12
    assert _snapshot(out)[Path(tars[3]).name] == intact  # the complete shard untouched
    samples = _tar_samples(sorted(str(p) for p in again["outpath"].unique()))
    assert set(samples) == set(first["key"])
    for key, url in zip(again["key"], again["url"], strict=True):
        assert samples[key]["jpg"] == served_files()[url.split("/img/", 1)[1]]


def test_an_empty_parquet_shard_is_redone(image_server: Any, tmp_path: Path) -> None:
    df = _frame(image_server, MANY[:8])
    out = tmp_path / "o"
    kwargs: dict[str, Any] = {
        "output_format": creevey_dask.ShardOptions("parquet", shard_size=4),
        "progress": False,
    }
    first = df.creevey.download(
        str(out), format="original", **kwargs, options=creevey_dask.RunOptions(npartitions=1)
    )
    shards = sorted(first["outpath"].unique())
    Path(shards[0]).write_bytes(b"")
    again = df.creevey.download(
        str(out), format="original", **kwargs, options=creevey_dask.RunOptions(npartitions=1)
    )
    redone = (first["outpath"] == shards[0]).to_numpy()
    assert (again.loc[redone, "status"] == "ok").sum() == 4
    assert (again.loc[~redone, "status"] == "skipped").sum() == 4
    (new,) = again.loc[redone, "outpath"].unique()
    assert new not in shards
    records = pd.read_parquet(new)
    for key, image in zip(records["key"], records["image"], strict=True):
        url = first.loc[first["key"] == key, "url"].item()
        assert image["bytes"] == served_files()[url.split("/img/", 1)[1]]


def test_dead_shard_writers_temporaries_are_swept(image_server: Any, tmp_path: Path) -> None:
    """An all-skipped rerun still removes the temporaries of killed shard writers."""
    df = _frame(image_server, MANY[:4])
    out = tmp_path / "o"
    kwargs: dict[str, Any] = {
        "output_format": creevey_dask.ShardOptions("webdataset", shard_size=2),
        "progress": False,
    }
    first = df.creevey.download(str(out), **kwargs)
    shard = first["outpath"].iloc[0]
    writer = textwrap.dedent(
        """
        import os, sys
        from creevey_dask import storage
        with storage.atomic_writer(sys.argv[1]) as f:
            f.write(b"half a shard")
            f.flush()
            os._exit(0)  # killed mid-write: the temporary stays
        """
    )
    subprocess.run([sys.executable, "-c", writer, shard], check=True)
    dead = [p for p in out.iterdir() if p.name.startswith(".")]
    assert len(dead) == 1
    assert dead[0].name.startswith(f".{Path(shard).name}.")
    before = _snapshot(out)
    again = df.creevey.download(str(out), **kwargs)
    assert (again["status"] == "skipped").all()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert _snapshot(out) == before


def _sample_keys(out: Path, output_format: str) -> list[str]:
    """The key of every sample on disk, over all the shards (repeats kept)."""
    if output_format == "webdataset":
        keys = []
        for path in sorted(out.glob("*.tar")):
            with tarfile.open(path) as tar:
                keys += [m.name[: -len(".jpg")] for m in tar if m.name.endswith(".jpg")]
        return keys
    keys = []
    for path in sorted(out.glob("*.parquet")):
        records = pd.read_parquet(path)
        keys += [k for k, img in zip(records["key"], records["image"], strict=True) if img]
    return keys


@pytest.mark.parametrize("output_format", ["webdataset", "parquet"])
def test_reruns_with_other_partitioning_or_fed_back_write_no_row_twice(
    image_server: Any, tmp_path: Path, output_format: str
) -> None:
    """Rows committed ok in any complete shard are skipped, found by key."""
    df = _frame(image_server, MANY[:20], missing=2)
    out = tmp_path / "o"
    kwargs: dict[str, Any] = {
        "output_format": creevey_dask.ShardOptions(output_format, shard_size=5),
        "progress": False,
    }
    first = df.creevey.download(str(out), **kwargs, options=creevey_dask.RunOptions(npartitions=2))
    assert (first["status"] == "ok").sum() == 20
    ok_keys = set(first.loc[first["status"] == "ok", "key"])
    where = dict(zip(first["key"], first["outpath"], strict=True))
    committed = _snapshot(out)
    feeds = {
        "npartitions=3": (df, {"options": creevey_dask.RunOptions(npartitions=3)}),
        "n_jobs=1": (df, {"n_jobs": 1}),
        "result frame": (first, {"options": creevey_dask.RunOptions(npartitions=3)}),
        "read_shards": (
            creevey_dask.read_shards(str(out)).compute(),
            {"options": creevey_dask.RunOptions(npartitions=1)},
        ),
    }
    for label, (frame, extra) in feeds.items():
        again = frame.creevey.download(str(out), **kwargs, **extra)
        done = again[again["key"].isin(ok_keys)]
        assert (done["status"] == "skipped").all(), label
        assert [where[k] for k in done["key"]] == done["outpath"].tolist(), label
        assert (again.loc[~again["key"].isin(ok_keys), "status"] == "error").all(), label
        keys = _sample_keys(out, output_format)
        assert sorted(keys) == sorted(ok_keys), label  # each ok key exactly once
        now = _snapshot(out)
        assert {n: now[n] for n in committed} == committed, label  # committed shards untouched


def test_webdataset_json_is_valid_and_faithful(image_server: Any, tmp_path: Path) -> None:
    """inf/-inf/NaN → null, bytes → base64, numpy arrays → lists, in strict JSON."""
    df = _frame(image_server, MANY[:3])
    df["score"] = [float("inf"), float("-inf"), float("nan")]
    df["blob"] = [b"\x00\xff", b"", b"abc"]
    df["vec"] = [np.arange(3), np.array([0.5, np.inf]), np.array([], dtype="int64")]
    out = tmp_path / "o"
    result = df.creevey.download(str(out), output_format="webdataset", progress=False)
    assert (result["status"] == "ok").all()
    samples = _tar_samples(sorted(str(p) for p in out.glob("*.tar")))
    meta = {
        json.loads(s["json"], parse_constant=pytest.fail)["n"]: json.loads(s["json"])
        for s in samples.values()
    }
    assert [meta[i]["score"] for i in range(3)] == [None, None, None]
    assert [meta[i]["blob"] for i in range(3)] == ["AP8=", "", "YWJj"]
    assert [meta[i]["vec"] for i in range(3)] == [[0, 1, 2], [0.5, None], []]


def test_a_full_disk_before_the_run_gives_error_rows_not_a_crash(tmpfs_2m: Path) -> None:
    """Nothing fits, not even ``_stats.json``: every row is an error row, no raise."""
    from creevey_dask.testing import ImageServer

    filler = tmpfs_2m / "filler"
    with pytest.raises(OSError, match="No space"):
        filler.write_bytes(b"x" * (4 << 20))  # twice the disk
    files = _noise_pngs(4)
    with ImageServer(files) as server:
        df = pd.DataFrame({"url": [server.url(f"/img/{name}") for name in files]})
        result = df.creevey.download(
            str(tmpfs_2m),
            format="original",
            progress=False,
            output_format=creevey_dask.ShardOptions("webdataset", shard_size=2),
        )
    assert (result["status"] == "error").all()
    assert result["error"].str.contains("No space left").all()
    assert sorted(os.listdir(tmpfs_2m)) == ["filler"]  # no shard, no temporary


# ---- the dataset: latest attempt wins, stats, shard sizes --------------------------------


def _records_of(out: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_parquet(p) for p in sorted(out.glob("*.parquet"))}


def test_a_rerun_after_a_retry_reports_the_latest_attempt(
    fresh_image_server: Any, tmp_path: Path
) -> None:
    """Retried rows stay ok in a rerun of the full table; other errors are tried again."""
    server = fresh_image_server
    df = _frame(server, MANY[:20], missing=3)  # 3 rows are 404 for ever
    flaky = [2, 7, 11, 15, 19]
    df.loc[flaky, "url"] = [u + "?fail=1" for u in df.loc[flaky, "url"]]  # fail once
    out = tmp_path / "out"
    kwargs: dict[str, Any] = {
        "output_format": creevey_dask.ShardOptions("webdataset", shard_size=1000),
        "http_options": HttpOptions(retries=0),
        "progress": False,
    }
    first = df.creevey.download(str(out), **kwargs)
    assert (first["status"] == "error").sum() == 8
    assert len(_records_of(out)) == 1  # 23 rows, shard_size=1000: one shard
    stats = json.loads((out / "_stats.json").read_text())
    assert (stats["rows"], stats["status"]) == (23, {"ok": 15, "error": 8})

    # retry the failed rows from the shards' records: 5 now work, into one new shard
    failed = creevey_dask.read_shards(str(out)).compute()
    failed = failed[failed["status"] == "error"]
    retried = failed.creevey.download(str(out), **kwargs)
    assert sorted(retried.loc[retried["status"] == "ok", "key"]) == sorted(first.loc[flaky, "key"])
    assert len(_records_of(out)) == 2
    stats = json.loads((out / "_stats.json").read_text())
    assert (stats["rows"], stats["status"]) == (23, {"ok": 20, "error": 3})  # the dataset
    assert stats["errors_by_type"] == {"HttpError": 3}
    assert stats["last_run"]["status"] == {"ok": 5, "skipped": 0, "error": 3}

    # a rerun of the full table: the retried rows are skipped (ok), the 404s tried again
    missing = [server.url(f"/img/missing-{i}.jpg").split("127.0.0.1", 1)[1] for i in range(3)]
    missing = ["/" + m.split("/", 1)[1] for m in missing]
    before = {m: server.hits[m] for m in missing}
    rerun = df.creevey.download(str(out), **kwargs)
    assert (rerun.loc[flaky, "status"] == "skipped").all()
    assert (
        rerun.loc[flaky, "outpath"].tolist()
        == retried.set_index("key").loc[first.loc[flaky, "key"], "outpath"].tolist()
    )
    assert (rerun["status"] == "skipped").sum() == 20
    assert (rerun["status"] == "error").sum() == 3
    assert {m: server.hits[m] for m in missing} == {m: before[m] + 1 for m in missing}
    assert len(_records_of(out)) == 3  # the 3 retried errors: one more (short) shard
    tars = sorted(str(p) for p in out.glob("*.tar"))
    assert sorted(_tar_samples(tars)) == sorted(first["key"][:20])  # every ok key once

    # retry_errors=False: the recorded errors are reported, not tried
    before = {m: server.hits[m] for m in missing}
    opts = creevey_dask.RunOptions(retry_errors=False)
    quiet = df.creevey.download(str(out), options=opts, **kwargs)
    assert {m: server.hits[m] for m in missing} == before
    assert (quiet["status"] == "error").sum() == 3
    assert quiet.loc[quiet["status"] == "error", "error"].str.startswith("HttpError").all()
    assert len(_records_of(out)) == 3  # nothing written
    # the same from the command line
    from creevey_dask.cli.main import main

    table = tmp_path / "in.csv"
    df.to_csv(table, index=False)
    code = main(
        ["download", str(table), "--outdir", str(out), "--output", str(tmp_path / "r.parquet"),
         "--output-format", "webdataset", "--shard-size", "1000", "--retries", "0",
         "--no-retry-errors", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    assert {m: server.hits[m] for m in missing} == before
    assert (pd.read_parquet(tmp_path / "r.parquet")["status"] == "skipped").sum() == 20


def _many_rows(image_files: list[str], n: int) -> pd.DataFrame:
    """``n`` rows over the five image files (each row its own key: its index label)."""
    return pd.DataFrame({"path": [image_files[i % 5] for i in range(n)], "n": np.arange(n)})


def test_shard_size_is_honoured(image_files: list[str], tmp_path: Path) -> None:
    import dask.dataframe as dd

    df = _many_rows(image_files, 300)
    kwargs: dict[str, Any] = {"shape": (8, 8), "progress": False}
    out = tmp_path / "pandas"
    result = df.creevey.resize(
        str(out), **kwargs, output_format=creevey_dask.ShardOptions("webdataset", shard_size=1000)
    )
    assert (result["status"] == "ok").all()
    assert [len(r) for r in _records_of(out).values()] == [300]  # one shard, not 9
    out = tmp_path / "pandas_cut"
    df.creevey.resize(
        str(out),
        **kwargs,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=40),
        options=creevey_dask.RunOptions(npartitions=3),
    )
    sizes = [len(r) for r in _records_of(out).values()]
    assert sorted(sizes) == [20] + [40] * 7  # whole shards; only the call's last is short
    # dask input: shards of shard_size rows but the last of each partition
    out = tmp_path / "dask"
    lazy = dd.from_pandas(df, npartitions=3).creevey.resize(
        str(out), **kwargs, output_format=creevey_dask.ShardOptions("webdataset", shard_size=40)
    )
    result = lazy.compute()
    assert (result["status"] == "ok").all()
    by_partition: dict[str, list[int]] = {}
    for name, records in _records_of(out).items():
        by_partition.setdefault(name.split("-")[2], []).append(len(records))
    assert sorted(sorted(v) for v in by_partition.values()) == [[20, 40, 40]] * 3
    stats = json.loads((out / "_stats.json").read_text())  # written by the dask run itself
    assert (stats["rows"], stats["status"], stats["shards"]) == (300, {"ok": 300, "error": 0}, 9)


def test_shard_names_are_unique_and_sort_by_call(image_files: list[str], tmp_path: Path) -> None:
    df = _many_rows(image_files, 6)
    out = tmp_path / "o"
    kwargs: dict[str, Any] = {"shape": (8, 8), "progress": False}
    first = df.creevey.resize(
        str(out),
        skip_existing=False,
        **kwargs,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=2),
    )
    second = df.creevey.resize(
        str(out),
        skip_existing=False,
        **kwargs,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=2),
    )
    names1 = sorted(Path(p).stem for p in first["outpath"].unique())
    names2 = sorted(Path(p).stem for p in second["outpath"].unique())
    assert len(names1) == len(names2) == 3
    assert not set(names1) & set(names2)  # the same rows, written twice: other names
    assert max(names1) < min(names2)  # ordered by call
    for name in names1 + names2:
        parts = name.split("-")
        assert [len(p) for p in parts] == [21, 4, 5, 4, 8]
    # both writings are whole; a rerun finds each key once, in the latest writing
    again = df.creevey.resize(
        str(out), **kwargs, output_format=creevey_dask.ShardOptions("webdataset", shard_size=2)
    )
    assert (again["status"] == "skipped").all()
    assert again["outpath"].tolist() == second["outpath"].tolist()
    assert first["outpath"].map(os.path.exists).all()  # never removed


_WRITER = textwrap.dedent(
    """
    import sys, pandas as pd, creevey_dask
    from creevey_dask.http import HttpOptions
    df = pd.read_csv(sys.argv[1])
    result = df.creevey.download(sys.argv[2], format="png",
                                 output_format=creevey_dask.ShardOptions("webdataset",
                                                                         shard_size=4),
                                 options=creevey_dask.RunOptions(npartitions=2), n_jobs=4,
                                 http_options=HttpOptions(retries=0), progress=False)
    result.to_parquet(sys.argv[3])
    """
)


def test_two_writers_never_replace_each_others_shards(
    fresh_image_server: Any, tmp_path: Path
) -> None:
    df = _frame(fresh_image_server, MANY[:16])
    df["url"] = [u + f"?stall=0.05&fail={i % 2}" for i, u in enumerate(df["url"])]
    csv = tmp_path / "in.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "out"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    results = [tmp_path / f"r{i}.parquet" for i in range(2)]
    writers = [
        subprocess.Popen([sys.executable, str(script), str(csv), str(out), str(r)]) for r in results
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    for path in results:
        result = pd.read_parquet(path)
        ok = result[result["status"] == "ok"]
        assert len(ok)
        for shard, rows in ok.groupby("outpath"):  # each ok row is in the shard it names
            samples = _tar_samples([str(shard)])
            assert set(rows["key"]) <= set(samples)
            for key, url in zip(rows["key"], rows["url"], strict=True):
                image = Image.open(io.BytesIO(samples[key]["png"])).convert("RGB")
                expected = _source_image(url.split("?")[0])
                assert np.array_equal(np.asarray(image), np.asarray(expected))
    # a rerun: every key ok once (the latest writing), the rest retried
    again = df.creevey.download(
        str(out),
        format="png",
        progress=False,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=4),
    )
    assert (again["status"] != "error").all()
    assert again["key"].is_unique


# ---- commits that cannot lie -----------------------------------------------------------


def _small_table(image_files: list[str], tmp_path: Path) -> tuple[pd.DataFrame, Path, Any]:
    """Five rows, their output folder and the arguments of a one-shard resize."""
    kwargs: dict[str, Any] = {"shape": (8, 8), "output_format": "webdataset", "progress": False}
    return _many_rows(image_files, 5), tmp_path / "o", kwargs


def test_a_rewrite_whose_records_fail_keeps_the_committed_shard(
    image_files: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """skip_existing=False on a disk that takes the tar but not its records."""
    import errno

    from creevey_dask.storage import fs as storage

    df, out, kwargs = _small_table(image_files, tmp_path)
    first = df.creevey.resize(str(out), **kwargs)
    committed = _snapshot(out)
    real = storage.write_bytes_atomic

    def full_disk(path: str, data: Any, storage_options: Any = None) -> None:
        if path.endswith(".parquet"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real(path, data, storage_options)

    monkeypatch.setattr(storage, "write_bytes_atomic", full_disk)
    again = df.creevey.resize(str(out), skip_existing=False, **kwargs)
    assert (again["status"] == "error").all()
    assert again["error"].str.contains("could not be written: OSError").all()
    assert _snapshot(out) == committed  # the previous shard whole; the new tar taken back
    monkeypatch.setattr(storage, "write_bytes_atomic", real)
    rerun = df.creevey.resize(str(out), **kwargs)
    assert (rerun["status"] == "skipped").all()
    assert rerun["outpath"].tolist() == first["outpath"].tolist()


_KILLED_AFTER_TAR = textwrap.dedent(
    """
    import os, sys, pandas as pd, creevey_dask
    from creevey_dask.storage import fs as storage
    real = storage.write_bytes_atomic
    def killed(path, data, storage_options=None):
        if path.endswith(".parquet"):
            os._exit(9)  # killed between the tar's rename and the records' rename
        real(path, data, storage_options)
    storage.write_bytes_atomic = killed
    df = pd.read_csv(sys.argv[1])
    df.creevey.resize(sys.argv[2], shape=(8, 8), output_format="webdataset",
                      skip_existing=sys.argv[3] == "skip", progress=False)
    """
)


def test_records_vouch_only_for_their_own_tar(image_files: list[str], tmp_path: Path) -> None:
    """A kill after the new tar's rename, a replaced tar of the same size: no lie."""
    df = _many_rows(image_files, 5)
    csv = tmp_path / "in.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "o"
    kwargs: dict[str, Any] = {"shape": (8, 8), "output_format": "webdataset", "progress": False}
    first = pd.read_csv(csv).creevey.resize(str(out), **kwargs)
    (tar,) = first["outpath"].unique()
    os.remove(image_files[4])  # a source vanishes, then a refresh is killed mid-commit
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_AFTER_TAR)
    code = subprocess.run([sys.executable, str(script), str(csv), str(out), "refresh"]).returncode
    assert code == 9
    tars = sorted(str(p) for p in out.glob("*.tar"))
    assert len(tars) == 2  # the old shard and an orphan tar without records
    orphan = next(t for t in tars if t != tar)
    assert not os.path.exists(orphan[: -len(".tar")] + ".parquet")
    again = pd.read_csv(csv).creevey.resize(str(out), **kwargs)
    assert (again["status"] == "skipped").all()  # the old records describe the old tar
    assert (again["outpath"] == tar).all()
    assert sorted(_tar_samples([tar])) == sorted(first["key"])

    # a tar replaced after its records by another of the same size: it does not count
    other = Path(orphan).read_bytes()  # 4 samples: a valid tar, padded to the old size
    assert len(other) <= os.path.getsize(tar)
    time.sleep(0.02)
    Path(tar).write_bytes(other + b"\0" * (os.path.getsize(tar) - len(other)))
    redone = pd.read_csv(csv).creevey.resize(str(out), **kwargs)
    assert (redone.iloc[:4]["status"] == "ok").all()
    assert redone.iloc[4]["status"] == "error"  # its source is gone; no old record vouches
    assert not redone["outpath"].isin([tar]).any()


def test_keys_fed_back_are_validated(image_files: list[str], tmp_path: Path) -> None:
    hostile = ["../../../../tmp/evil", "/etc/cron.d/x", "a.b.c", "dup", "dup", "good_key-1"]
    kwargs: dict[str, Any] = {"shape": (8, 8), "output_format": "webdataset", "progress": False}
    df = _many_rows(image_files, 6).creevey.resize(str(tmp_path / "first"), **kwargs)
    df["key"] = pd.Series(hostile, dtype="string")  # a result frame fed back, keys edited
    out = tmp_path / "o"
    result = df.creevey.resize(str(out), shape=(8, 8), output_format="webdataset", progress=False)
    assert (result["status"] == "ok").all()
    keys = result["key"].tolist()
    assert [keys[3], keys[5]] == ["dup", "good_key-1"]  # valid and first: kept
    assert len(set(keys)) == 6
    assert all(sinks.valid_key(k) for k in keys)
    (tar,) = out.glob("*.tar")
    with tarfile.open(tar) as archive:
        names = archive.getnames()
    assert all("/" not in n for n in names)
    assert all(n.count(".") == 1 for n in names)
    assert not list(Path("/tmp").glob("evil*"))
    # and through the command line
    from creevey_dask.cli.main import main

    table = tmp_path / "in.parquet"
    df.to_parquet(table)
    cli_out = tmp_path / "cli"
    code = main(
        ["resize", str(table), "--outdir", str(cli_out), "--output", str(tmp_path / "r.csv"),
         "--shape", "8x8", "--output-format", "webdataset", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    (tar,) = cli_out.glob("*.tar")
    with tarfile.open(tar) as archive:
        assert all(sinks.valid_key(n.split(".", 1)[0]) for n in archive.getnames())


@pytest.mark.parametrize("output_format", ["webdataset", "parquet"])
def test_a_row_that_cannot_be_stored_fails_alone(
    image_files: list[str], tmp_path: Path, output_format: str
) -> None:
    folder = Path(image_files[0]).parent
    odd = os.fsdecode(os.fsencode(folder) + b"/\xff\xfe.png")  # a file name that is not UTF-8
    with open(os.fsencode(odd), "wb") as f:
        f.write(Path(image_files[0]).read_bytes())
    paths = pd.Series([*image_files, odd], dtype=object)
    df = pd.DataFrame({"path": paths, 7: 1, "x": np.arange(6, dtype=np.longdouble)})
    out = tmp_path / "o"
    result = df.creevey.resize(str(out), shape=(8, 8), output_format=output_format, progress=False)
    assert (result["status"].iloc[:5] == "ok").all()
    assert result["status"].iloc[5] == "error"
    assert "not valid UTF-8" in result["error"].iloc[5]
    (records,) = _records_of(out).values()
    assert records["status"].tolist() == ["ok"] * 5 + ["error"]
    assert records["7"].tolist() == [1] * 6
    assert records["x"].tolist()[:2] == ["0.0", "1.0"]  # longdouble kept as text


def test_a_refresh_after_the_sources_vanished_keeps_the_samples(
    image_files: list[str], tmp_path: Path
) -> None:
    df, out, kwargs = _small_table(image_files, tmp_path)
    first = df.creevey.resize(str(out), **kwargs)
    committed = _snapshot(out)
    for path in image_files:
        os.remove(path)
    refresh = df.creevey.resize(str(out), skip_existing=False, **kwargs)
    assert (refresh["status"] == "error").all()  # this attempt failed, and says so
    after = _snapshot(out)
    assert {n: after[n] for n in committed} == committed  # the old shard untouched
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["status"] == {"ok": 5, "error": 0}  # an ok beats a later error
    rerun = df.creevey.resize(str(out), **kwargs)
    assert (rerun["status"] == "skipped").all()
    assert rerun["outpath"].tolist() == first["outpath"].tolist()


# ---- the sample index: one ranged read per sample -------------------------------------


def test_records_index_every_sample_in_its_tar(image_server: Any, tmp_path: Path) -> None:
    import hashlib

    df = _frame(image_server, MANY[:9], missing=2)
    out = tmp_path / "o"
    df.creevey.download(
        str(out),
        format="png",
        progress=False,
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=5, caption_col="caption"),
        options=creevey_dask.RunOptions(npartitions=1),
    )
    for name, records in _records_of(out).items():
        if not (records["status"] == "ok").any():
            assert records[sinks.DIGEST_COL].isna().all()  # no sample, no tar
            continue
        tar = out / name.replace(".parquet", ".tar")
        data = tar.read_bytes()
        assert str(records[sinks.OFFSET_COL].dtype) == "Int64"
        assert str(records[sinks.SIZE_COL].dtype) == "Int64"
        assert (records[sinks.DIGEST_COL] == hashlib.sha256(data).hexdigest()).all()
        for row in records.itertuples():
            offset, size = row.tar_offset, row.tar_size
            if row.status != "ok":
                assert pd.isna(offset)
                assert pd.isna(size)
                continue
            assert offset % 512 == 0
            assert size % 512 == 0
            with tarfile.open(fileobj=io.BytesIO(data[offset : offset + size])) as part:
                members = part.getmembers()
                names = [m.name for m in members]
                assert names == [f"{row.key}.png", f"{row.key}.json", f"{row.key}.txt"]
                image = part.extractfile(members[0]).read()  # type: ignore[union-attr]
                meta = json.loads(part.extractfile(members[1]).read())  # type: ignore[union-attr]
            assert meta["sha256"] == hashlib.sha256(image).hexdigest()
            assert members[-1].offset_data + members[-1].size <= size
            assert np.array_equal(
                np.asarray(Image.open(io.BytesIO(image)).convert("RGB")),
                np.asarray(_source_image(row.url)),
            )


def test_a_dask_task_run_twice_finds_its_own_shard(image_files: list[str], tmp_path: Path) -> None:
    """A partition computed again (as dask does after a worker died) writes nothing new."""
    import dask.dataframe as dd

    df = _many_rows(image_files, 8)
    out = tmp_path / "o"
    lazy = dd.from_pandas(df, npartitions=2).creevey.resize(
        str(out),
        progress=False,
        shape=(8, 8),
        output_format=creevey_dask.ShardOptions("webdataset", shard_size=4),
    )
    first = lazy.partitions[0].compute()
    assert (first["status"] == "ok").all()
    committed = _snapshot(out)
    again = lazy.partitions[0].compute()  # the same task, the same writing
    assert (again["status"] == "skipped").all()
    assert again["outpath"].tolist() == first["outpath"].tolist()
    assert set(_snapshot(out)) == set(committed)
    rest = lazy.compute()  # the other partition, then the whole: every key once
    assert (rest["status"] != "error").all()
    assert sorted(_tar_samples(sorted(str(p) for p in out.glob("*.tar")))) == sorted(rest["key"])


@pytest.mark.parametrize("output_format", ["webdataset", "parquet"])
def test_write_stats_by_hand_finds_the_format(
    image_files: list[str], tmp_path: Path, output_format: str
) -> None:
    out = tmp_path / "o"
    df = _many_rows(image_files, 5)
    df.creevey.resize(str(out), shape=(8, 8), output_format=output_format, progress=False)
    (out / "_stats.json").unlink()
    stats = sinks.write_stats(None, str(out))
    assert stats["status"] == {"ok": 5, "error": 0}
    assert json.loads((out / "_stats.json").read_text())["shards"] == 1


@pytest.mark.parametrize("output_format", ["webdataset", "parquet"])
def test_a_rerun_with_a_fresh_index_finds_its_rows_by_source(
    image_server: Any, tmp_path: Path, output_format: str
) -> None:
    """Rows already written are found by source when the index was rebuilt: no repeats."""
    df = _frame(image_server, MANY[:8], missing=1)
    out = tmp_path / "o"
    kwargs: dict[str, Any] = {
        "output_format": creevey_dask.ShardOptions(output_format, shard_size=4),
        "progress": False,
    }
    first = df.creevey.download(str(out), **kwargs)
    assert (first["status"] == "ok").sum() == 8
    committed = _snapshot(out)
    key_of = dict(zip(first["url"], first["key"], strict=True))
    fresh = df.iloc[::-1].reset_index(drop=True)  # reordered, and a fresh index
    fresh.index += 100
    again = fresh.creevey.download(
        str(out), **kwargs, options=creevey_dask.RunOptions(npartitions=2)
    )
    ok = again["url"].map(key_of).isin(set(first.loc[first["status"] == "ok", "key"]))
    assert (again.loc[ok, "status"] == "skipped").all()
    assert again["key"].tolist() == [key_of[u] for u in again["url"]]  # the recorded keys
    assert again.loc[~ok, "status"].tolist() == ["error"]  # the failed row is retried
    now = _snapshot(out)
    assert {n: now[n] for n in committed} == committed
    new = [n for n in now if n not in committed]
    assert len(new) == 1  # the retry's shard: its one failed row, no sample
    assert sorted(_sample_keys(out, output_format)) == sorted(
        first.loc[first["status"] == "ok", "key"]
    )
    latest = creevey_dask.read_shards(str(out)).compute()
    assert len(latest) == len(df)
    assert latest["url"].is_unique  # one row per source
    done = latest[latest["status"] == "ok"]
    assert len(done) == 8
    for url, sample in zip(done["url"], done["sample"], strict=True):
        image = Image.open(io.BytesIO(read_sample(sample)))
        assert image.size == _source_image(url).size
        got = np.asarray(image.convert("RGB"), dtype=float)
        assert np.abs(got - np.asarray(_source_image(url), dtype=float)).mean() < 8


def test_keys_are_matched_by_source_only_where_no_key_holds_them() -> None:
    recorded = {"k1": 0, "k2": 0, "k3": 0}
    by_source = {"a": ["k1", "k2"], "b": ["k3"]}
    keys = sinks.matched_keys(
        ["x", "y", "z", "k3", "w"], ["a", "a", "a", "b", "b"], [False, False, False, False, True],
        recorded, by_source,
    )  # fmt: skip
    assert keys == ["k1", "k2", "z", "k3", "w"]  # given keys (w) and recorded ones win
