"""creevey_dask.naming: safe file names, hashed names, and clash detection."""

from __future__ import annotations

import os
import pickle

import dask.dataframe as dd
import pandas as pd
import pytest

from creevey_dask.exceptions import OutpathClashError
from creevey_dask.http import check_url
from creevey_dask.naming import (
    ClashGuard,
    HashNamer,
    UrlNamer,
    find_clashes,
    make_namer,
    safe_filename,
    url_hash,
)

HOSTILE = [
    "https://e.com/../../etc/passwd",
    "https://e.com/%2e%2e/%2e%2e/etc/passwd",
    "https://e.com/%2e%2e%2f%2e%2e%2fsecret.jpg",
    "https://e.com/%252e%252e%252fsecret.jpg",
    "https://e.com/..%5c..%5cwindows%5cwin.ini",
    "https://e.com/a%00b.jpg",
    "https://e.com/%00",
    "https://e.com/..",
    "https://e.com/.",
    "https://e.com/.hidden.jpg",
    "https://e.com/dir/",
    "https://e.com/",
    "https://e.com/" + "x" * 5000 + ".jpg",
    "https://e.com/" + "é" * 300 + ".jpg",
    "https://e.com/a%0Ab%0D.jpg",
    "https://e.com/C:%5Cboot.ini",
    "https://e.com/~user/$HOME.jpg",
]


@pytest.mark.parametrize("url", HOSTILE)
@pytest.mark.parametrize("ext", [".png", None])
def test_outpath_never_leaves_outdir(tmp_path, url: str, ext: str | None) -> None:
    outdir = str(tmp_path / "out")
    for namer in (
        UrlNamer(outdir, ext),
        UrlNamer(outdir, ext, hashed=True),
        HashNamer(outdir, ext),
    ):
        outpath = namer(url)
        resolved = os.path.realpath(outpath)
        assert resolved.startswith(os.path.realpath(outdir) + os.sep), (namer, url, outpath)
        name = os.path.basename(outpath)
        assert name not in ("", ".", "..")
        assert not name.startswith(".")
        assert "\x00" not in outpath
        assert "\n" not in outpath
        assert "\\" not in name
        assert len(name.encode("utf-8")) <= 200


@pytest.mark.parametrize(
    ("url", "ext", "expected"),
    [
        ("https://e.com/photos/cat.jpg", ".png", "cat.png"),
        ("https://e.com/photos/cat.jpg?size=large#frag", ".png", "cat.png"),
        ("https://e.com/photos/cat.JPG", None, "cat.jpg"),
        ("https://e.com/photos/my%20cat.jpeg", ".png", "my_cat.png"),
        ("https://e.com/%2e%2e%2f%2e%2e%2fsecret.jpg", ".png", "secret.png"),
        ("https://e.com/a%00b.jpg", None, "a_b.jpg"),
        ("https://e.com/", ".png", "image.png"),
        ("https://e.com/..", ".png", "image.png"),
        ("https://e.com/caf%C3%A9.jpg", ".webp", "café.webp"),
        ("https://e.com/noext", None, "noext"),
    ],
)
def test_safe_filename(url: str, ext: str | None, expected: str) -> None:
    assert safe_filename(url, ext) == expected


def test_long_names_are_cut_and_stay_distinct() -> None:
    a = safe_filename("https://e.com/" + "x" * 300 + "a.jpg", ".png")
    b = safe_filename("https://e.com/" + "x" * 300 + "b.jpg", ".png")
    assert a != b
    assert a.endswith(".png")
    assert len(a.encode()) <= 130


def test_hash_naming_is_sharded_and_collision_free(tmp_path) -> None:
    namer = make_namer("hash", str(tmp_path), ".png")
    a = namer("https://a.com/x/1.jpg")
    b = namer("https://b.com/y/1.jpg")
    assert a != b
    digest = url_hash("https://a.com/x/1.jpg")
    assert a == f"{tmp_path}/{digest[:2]}/{digest[2:4]}/{digest}.png"
    assert namer("https://a.com/x/1.jpg") == a  # deterministic


def test_url_hash_naming_keeps_the_name(tmp_path) -> None:
    namer = make_namer("url_hash", str(tmp_path), ".png")
    a, b = namer("https://a.com/x/1.jpg"), namer("https://b.com/y/1.jpg")
    assert os.path.basename(a).startswith("1_")
    assert a.endswith(".png")
    assert a != b


def test_bad_naming_arguments(tmp_path) -> None:
    with pytest.raises(
        ValueError, match=r"naming 'md5' is not one of \['url', 'url_hash', 'hash'\]"
    ):
        make_namer("md5", str(tmp_path), ".png")
    with pytest.raises(ValueError, match="ext must look like"):
        UrlNamer(str(tmp_path), "png/../x")
    with pytest.raises(TypeError, match="outdir"):
        UrlNamer(None, ".png")  # type: ignore[arg-type]


def test_namers_pickle(tmp_path) -> None:
    for namer in (UrlNamer(str(tmp_path), ".png"), HashNamer(str(tmp_path), ".jpg", levels=1)):
        again = pickle.loads(pickle.dumps(namer))
        assert again("https://e.com/a.jpg") == namer("https://e.com/a.jpg")


URLS = [
    "https://a.com/x/1.jpg",
    "https://b.com/y/1.jpg",  # clashes with the first
    "https://a.com/x/2.jpg",
    "https://a.com/x/1.jpg",  # the same URL again: no clash
    "https://c.com/z/1.jpg",  # clashes with the first
    "https://c.com/z/2.png",  # clashes with the third
    None,
    "file:///etc/1.jpg",  # refused by accept: takes no name
]


def test_find_clashes_pandas(tmp_path) -> None:
    namer = UrlNamer(str(tmp_path), ".png")
    losers = find_clashes(pd.DataFrame({"url": URLS}), "url", namer, accept=check_url)
    one, two = f"{tmp_path}/1.png", f"{tmp_path}/2.png"
    assert losers == {
        "https://b.com/y/1.jpg": (one, "https://a.com/x/1.jpg"),
        "https://c.com/z/1.jpg": (one, "https://a.com/x/1.jpg"),
        "https://c.com/z/2.png": (two, "https://a.com/x/2.jpg"),
    }


@pytest.mark.parametrize("npartitions", [1, 3, 8])
def test_find_clashes_dask_matches_pandas_order(tmp_path, npartitions: int) -> None:
    namer = UrlNamer(str(tmp_path), ".png")
    pdf = pd.DataFrame({"url": URLS, "label": range(len(URLS))})
    expected = find_clashes(pdf, "url", namer, accept=check_url)
    assert len(expected) == 3
    ddf = dd.from_pandas(pdf, npartitions=npartitions, sort=False)
    assert find_clashes(ddf, "url", namer, accept=check_url) == expected


def test_clash_guard_refuses_losers(tmp_path) -> None:
    namer = UrlNamer(str(tmp_path), ".png")
    guard = ClashGuard(namer, find_clashes(pd.DataFrame({"url": URLS}), "url", namer))
    assert guard("https://a.com/x/1.jpg") == f"{tmp_path}/1.png"
    with pytest.raises(
        OutpathClashError, match=r"also the name for 'https://a.com/x/1.jpg'.*url_hash"
    ):
        guard("https://b.com/y/1.jpg")
    assert pickle.loads(pickle.dumps(guard)).losers == guard.losers
