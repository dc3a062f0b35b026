"""creevey_dask.storage.naming: safe file names, hashed names, and clash detection."""

from __future__ import annotations

import os
import pickle

import pandas as pd
import pytest

import creevey_dask
from creevey_dask.storage import fs as storage
from creevey_dask.storage.naming import (
    HashNamer,
    Outpaths,
    UrlNamer,
    disambiguate,
    find_clashes,
    make_namer,
    proves_source,
    safe_filename,
    safe_name,
    url_hash,
)
from creevey_dask.storage.provenance import BytesPayload

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
        assert len(name.encode("utf-8")) <= 255


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
    assert len(a.encode()) <= 255


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
    "https://c.com/z/1.JPG",  # a name that differs only in case: one file on macOS
]


def test_find_clashes_keeps_the_first_source_per_name(tmp_path) -> None:
    namer = UrlNamer(str(tmp_path), ".png")
    assert find_clashes(URLS, namer) == {
        "https://b.com/y/1.jpg",
        "https://c.com/z/1.jpg",
        "https://c.com/z/2.png",
        "https://c.com/z/1.JPG",
    }
    assert find_clashes([], namer) == frozenset()


def test_disambiguated_names_prove_their_source() -> None:
    url = "https://cdn.example/img?id=17"
    name = disambiguate("out/img.png", url)
    assert name == f"out/img_{url_hash(url)[:16]}.png"
    assert proves_source(name, url)
    assert not proves_source(name, "https://cdn.example/img?id=18")
    assert disambiguate(name, url) == name  # already unique: unchanged
    long = "out/" + "é" * 127 + ".png"  # 254 + 4 bytes: too long once a hash is added
    cut = disambiguate(long, url)
    assert len(cut.rpartition("/")[2].encode()) <= 255
    assert proves_source(cut, url)


def test_names_are_cut_by_bytes_not_characters() -> None:
    stem = "é" * 123  # 246 bytes
    assert safe_filename(f"https://e.com/{stem}.jpg", ".png") == f"{stem}.png"  # 250 bytes
    longer = safe_filename(f"https://e.com/{stem}éé.jpg", ".png")
    assert len(longer.encode()) <= 255
    assert longer.endswith(".png")
    assert safe_name("a" * 300 + ".jpg").endswith(".jpg")
    assert len(safe_name("a" * 300 + ".jpg").encode()) <= 255


@pytest.mark.parametrize("root", ["local", "memory"])
def test_outpaths_owns_names_by_proof_or_by_hash(tmp_path, root: str) -> None:
    outdir = str(tmp_path / "out") if root == "local" else f"memory://{tmp_path.name}/out"
    outpaths = Outpaths(UrlNamer(outdir, ".png"))
    a, b = "https://a.com/1.jpg", "https://b.com/1.jpg"
    planned = outpaths.plan(a)
    assert planned == f"{outdir}/1.png"
    assert outpaths.existing(a, planned) is None
    assert outpaths.commit(a, planned, BytesPayload(b"A"), replace=False) == (planned, "ok")
    assert outpaths.existing(a, planned) == planned
    assert outpaths.commit(a, planned, BytesPayload(b"A2"), replace=False) == (planned, "skipped")
    assert storage.read_bytes(planned) == b"A"
    assert outpaths.commit(a, planned, BytesPayload(b"A2"), replace=True) == (planned, "ok")
    assert storage.read_bytes(planned) == b"A2"  # its own output, rewritten
    # another source with the same name: never the plain name, never an error
    assert outpaths.plan(b) == planned
    assert outpaths.existing(b, planned) is None
    other, status = outpaths.commit(b, planned, BytesPayload(b"B"), replace=True)
    assert (other, status) == (disambiguate(planned, b), "ok")
    assert storage.read_bytes(planned) == b"A2"  # never another source's file
    assert outpaths.existing(b, planned) == other
    assert outpaths.existing(a, planned) == planned
    # a pickled copy (a worker process) sees the same owners
    again = pickle.loads(pickle.dumps(outpaths))
    assert again.existing(b, planned) == other
    # losers of an in-table clash go straight to their unique name
    assert Outpaths(UrlNamer(outdir, ".png"), {b}).plan(b) == other
    if root == "local":  # nothing beside the outputs
        assert sorted(os.listdir(outdir)) == ["1.png", os.path.basename(other)]


def test_outpaths_never_takes_a_foreign_or_incomplete_file(tmp_path) -> None:
    outpaths = Outpaths(UrlNamer(str(tmp_path), ".png"))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "theirs.png").write_bytes(b"not ours")
    for name in ("empty", "folder", "theirs"):
        url = f"https://e.com/{name}.jpg"
        planned = outpaths.plan(url)
        assert outpaths.existing(url, planned) is None
        for replace in (False, True):
            got = outpaths.commit(url, planned, BytesPayload(b"mine"), replace=replace)
            assert got == (disambiguate(planned, url), "skipped" if got[1] == "skipped" else "ok")
    assert (tmp_path / "empty.png").read_bytes() == b""
    assert (tmp_path / "theirs.png").read_bytes() == b"not ours"


def test_a_clash_loser_reuses_the_plain_name_proved_for_it(tmp_path) -> None:
    """Another process's table gave A the plain name; here A lost it to B: no second file."""
    from PIL import Image

    from creevey_dask.resize import resize

    sources = []
    for folder, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 6), colour).save(tmp_path / folder / "x.png")
        sources.append(str(tmp_path / folder / "x.png"))
    a, b = sources
    out = tmp_path / "out"
    first = resize(
        pd.DataFrame({"path": [a]}),
        out,
        "path",
        progress=False,
        shape=creevey_dask.ops.resize(max_dim=4),
    )
    assert first.outpath.tolist() == [str(out / "x.png")]
    second = resize(
        pd.DataFrame({"path": [b, a]}),
        out,
        "path",
        progress=False,
        shape=creevey_dask.ops.resize(max_dim=4),
    )
    assert second.status.tolist() == ["ok", "skipped"]
    assert second.outpath.tolist() == [disambiguate(str(out / "x.png"), b), str(out / "x.png")]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        os.path.basename(p) for p in second.outpath
    )  # one file per source
    for source, outpath in zip(second.path, second.outpath, strict=True):
        with Image.open(source) as want, Image.open(outpath) as got:
            assert got.getpixel((0, 0)) == want.getpixel((0, 0))
    # without skipping, A is written again over its own plain name, still one file each
    third = resize(
        pd.DataFrame({"path": [b, a]}),
        out,
        "path",
        progress=False,
        skip_existing=False,
        shape=creevey_dask.ops.resize(max_dim=4),
    )
    assert third.outpath.tolist() == second.outpath.tolist()
    assert len([p for p in out.iterdir() if not p.name.startswith(".")]) == 2


def test_a_pandas_rerun_after_a_dask_run_in_another_order_skips_all(tmp_path) -> None:
    """The dask run gave B the plain name; the pandas table says A first: nothing is redone."""
    import dask.dataframe as dd
    from PIL import Image

    from creevey_dask.resize import resize

    sources = []
    for folder, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / folder).mkdir()
        for name in ("x", "y"):
            Image.new("RGB", (8, 6), colour).save(tmp_path / folder / f"{name}.png")
            sources.append(str(tmp_path / folder / f"{name}.png"))
    out = tmp_path / "out"
    b_then_a = dd.from_pandas(pd.DataFrame({"path": sources[2:] + sources[:2]}), npartitions=1)
    first = resize(b_then_a, out, "path", shape=creevey_dask.ops.resize(max_dim=4)).compute()
    assert (first.status == "ok").all()
    again = resize(
        pd.DataFrame({"path": sources}),
        out,
        "path",
        progress=False,
        shape=creevey_dask.ops.resize(max_dim=4),
    )
    assert (again.status == "skipped").all()
    assert dict(zip(again.path, again.outpath, strict=True)) == dict(
        zip(first.path, first.outpath, strict=True)
    )
    assert len([p for p in out.iterdir() if not p.name.startswith(".")]) == 4  # one per source
    for source, outpath in zip(again.path, again.outpath, strict=True):
        with Image.open(source) as want, Image.open(outpath) as got:
            assert got.getpixel((0, 0)) == want.getpixel((0, 0))
