"""UrlListDataset, the worked example dataset: end to end against the loopback image server."""

from __future__ import annotations

import doctest
import os
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest
from PIL import Image

import creevey_dask.datasets.url_list
from creevey_dask import ColumnError, UrlListDataset
from creevey_dask.datasets.base import RAW_MARKER
from creevey_dask.sources.http import HttpOptions
from creevey_dask.storage import fs as storage
from creevey_dask.testing import ImageServer

GOOD = [f"many/{i:03d}.jpg" for i in range(10)]
BAD = {  # URL path -> the error kind it must produce
    "/img/missing.jpg": "HttpError",  # 404
    "/img/broken.jpg": "ImageDecodeError",  # a JPEG cut short
    "/html/page": "ImageDecodeError",  # not an image at all
}


def url_table(server: ImageServer) -> pd.DataFrame:
    """Ten good URLs labelled cat/dog, and three bad ones, with a column of the user's."""
    paths = [f"/img/{name}" for name in GOOD] + list(BAD)
    return pd.DataFrame(
        {
            "url": [server.url(p) for p in paths],
            "label": ["cat" if i % 2 else "dog" for i in range(len(paths))],
            "note": [f"row {i}" for i in range(len(paths))],
        }
    )


def make(base: str, server: ImageServer, http: HttpOptions, **kwargs: Any) -> UrlListDataset:
    return UrlListDataset(
        base, url_table(server), shape=(24, 32), valid_size=0.3, http_options=http, **kwargs
    )


def check_results(ds: UrlListDataset) -> None:
    """The download and resize tables: good rows ok, each bad row an error of its kind."""
    down = ds.download_result()
    assert list(down.columns[:3]) == ["url", "label", "note"]
    good = down["url"].str.contains("/img/many/")
    assert (down.loc[good, "status"] == "ok").all()
    bad = down.loc[~good]
    assert (bad["status"] == "error").all()
    assert bad["outpath"].isna().all()
    for url, error in zip(bad["url"], bad["error"], strict=True):
        kind = BAD["/" + url.split("/", 3)[3]]
        assert error.startswith(f"{kind}:"), (url, error)

    resized = ds.resize_result()
    assert resized["inpath"].equals(down["outpath"])  # chained on the download's outpath
    assert resized.loc[good, "status"].isin(["ok", "skipped"]).all()
    assert (resized.loc[~good, "status"] == "error").all()
    fs, _ = storage.get_fs(ds.base_dir, ds.storage_options)
    for outpath in resized.loc[good, "outpath"]:
        assert outpath.startswith(storage.join(ds.processed_dir, "images") + "/")
        with fs.open(storage.get_fs(outpath)[1], "rb") as f, Image.open(f) as im:
            assert im.size == (32, 24)  # shape is (height, width)


def check_manifest(ds: UrlListDataset) -> pd.DataFrame:
    manifest = ds.manifest()
    assert len(manifest) == len(GOOD)  # error rows left out of the tree
    assert manifest["split"].value_counts().to_dict() == {"train": 7, "valid": 3}
    resized = ds.resize_result()
    assert set(manifest["source"]) == set(resized["outpath"].dropna())
    return manifest


def test_local_end_to_end(
    image_server: ImageServer, fast_http: HttpOptions, tmp_path: Path
) -> None:
    ds = make(str(tmp_path / "pets"), image_server, fast_http).build()

    assert (tmp_path / "pets" / RAW_MARKER).is_file()
    raw = tmp_path / "pets" / "raw"
    assert pd.read_parquet(raw / "urls.parquet").equals(url_table(image_server))
    assert len(list((raw / "images").iterdir())) == len(GOOD)
    check_results(ds)
    manifest = check_manifest(ds)

    tree = tmp_path / "pets" / "processed" / "imagenet"
    for rel, source in zip(manifest["path"], manifest["source"], strict=True):
        link = tree / rel
        assert link.is_symlink()
        assert not os.path.isabs(os.readlink(link))  # relative: the tree can move
        assert link.resolve() == Path(source).resolve()
    assert sorted(p.name for p in (tree / "valid").iterdir()) == ["cat", "dog"]

    files = ds.files("processed")
    images = files[files["path"].str.contains("/processed/images/")]
    assert len(images) == len(GOOD)
    assert (images["size"] > 0).all()


def test_memory_end_to_end(
    image_server: ImageServer, fast_http: HttpOptions, memfs: fsspec.AbstractFileSystem
) -> None:
    ds = make("memory://pets", image_server, fast_http).build()

    assert memfs.exists(f"/pets/{RAW_MARKER}")
    assert len(memfs.ls("/pets/raw/images")) == len(GOOD)
    check_results(ds)
    manifest = check_manifest(ds)
    for rel, source in zip(manifest["path"], manifest["source"], strict=True):
        copy = memfs.cat_file(f"/pets/processed/imagenet/{rel}")
        assert copy == memfs.cat_file(storage.get_fs(source)[1])  # a copy, not a link
    listed = ds.files("processed")
    assert listed["path"].str.startswith("memory://pets/processed/").all()


@pytest.mark.parametrize("where", ["local", "memory"])
def test_rebuild_downloads_and_resizes_nothing(
    fresh_image_server: ImageServer,
    fast_http: HttpOptions,
    tmp_path: Path,
    memfs: fsspec.AbstractFileSystem,
    where: str,
) -> None:
    base = str(tmp_path / "pets") if where == "local" else "memory://pets"
    ds = make(base, fresh_image_server, fast_http).build()
    first_hits = dict(fresh_image_server.hits)
    assert sum(first_hits.values()) >= len(GOOD) + len(BAD)
    first_manifest = ds.manifest()

    again = make(base, fresh_image_server, fast_http).build()
    assert dict(fresh_image_server.hits) == first_hits  # not one request more
    resized = again.resize_result()
    good = resized["inpath"].notna()
    assert (resized.loc[good, "status"] == "skipped").all()
    assert again.manifest().equals(first_manifest)  # same seed, same tree
    check_results(again)

    again.build(force=True)  # fetches everything again, the failing URLs too
    for url in url_table(fresh_image_server)["url"]:
        path = url.split(str(fresh_image_server.port), 1)[1]
        assert fresh_image_server.hits[path] > first_hits[path]


def test_urls_table_from_a_file(
    image_server: ImageServer, fast_http: HttpOptions, tmp_path: Path
) -> None:
    table = url_table(image_server).rename(columns={"url": "link", "label": "kind"})
    table.to_csv(tmp_path / "urls.csv", index=False)
    ds = UrlListDataset(
        str(tmp_path / "pets"),
        str(tmp_path / "urls.csv"),
        url_col="link",
        label_col="kind",
        shape=(16, 16),
        valid_size=2,
        http_options=fast_http,
    ).build()
    assert pd.read_parquet(tmp_path / "pets" / "raw" / "urls.parquet").equals(table)
    assert (ds.download_result()["status"] == "ok").sum() == len(GOOD)
    assert ds.manifest()["split"].value_counts().to_dict() == {"train": 8, "valid": 2}


def test_bad_arguments_are_refused_up_front(tmp_path: Path) -> None:
    table = pd.DataFrame({"url": ["http://127.0.0.1:9/a.jpg"], "label": ["a"]})
    with pytest.raises(ColumnError, match=r"no column\(s\) \['label'\]"):
        UrlListDataset(str(tmp_path), table[["url"]])
    with pytest.raises(TypeError, match="urls_table must be a pandas DataFrame"):
        UrlListDataset(str(tmp_path), ["http://127.0.0.1:9/a.jpg"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"neither a \.parquet/\.pq nor a \.csv"):
        UrlListDataset(str(tmp_path), "urls.txt")
    with pytest.raises(ValueError, match="shape must be"):
        UrlListDataset(str(tmp_path), table, shape=(10,))
    with pytest.raises(ValueError, match="nosuch"):
        UrlListDataset("nosuch://x", table)
    # download()'s keywords are checked here, in download's terms, not at build()
    with pytest.raises(TypeError, match=r"^UrlListDataset\(\) .* 'retries'; it is a field of Http"):
        UrlListDataset(str(tmp_path), table, retries=1)
    with pytest.raises(TypeError, match=r"^UrlListDataset\(\) .* 'timeout'; pass http_options="):
        UrlListDataset(str(tmp_path), table, timeout=5)
    with pytest.raises(TypeError, match=r"^UrlListDataset\(\) .* 'naming'; UrlListDataset names"):
        UrlListDataset(str(tmp_path), table, naming="hash")
    with pytest.raises(TypeError, match=r"^UrlListDataset\(\) .* 'formt'; did you mean 'format'\?"):
        UrlListDataset(str(tmp_path), table, formt="png")
    assert UrlListDataset(str(tmp_path), table, format="png", n_jobs=2).download_kwargs


def test_missing_column_in_a_file_fails_get_raw_without_a_marker(tmp_path: Path) -> None:
    pd.DataFrame({"url": ["http://127.0.0.1:9/a.jpg"]}).to_parquet(tmp_path / "urls.parquet")
    ds = UrlListDataset(str(tmp_path / "ds"), str(tmp_path / "urls.parquet"))
    with pytest.raises(ColumnError, match=r"no column\(s\) \['label'\]"):
        ds.build()
    assert not ds.raw_complete


def test_docstring_example_runs() -> None:
    result = doctest.testmod(creevey_dask.datasets.url_list, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
