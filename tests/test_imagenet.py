"""ImageNet-style folder trees (creevey_dask.layout.imagenet)."""

from __future__ import annotations

import io
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import dask.dataframe as dd
import fsspec
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import creevey_dask
from creevey_dask.exceptions import ColumnError
from creevey_dask.layout.imagenet import MANIFEST_NAME, imagenet_symlinks, safe_label
from creevey_dask.original import create_imagenet_style_symlinks


def png_bytes(width: int, height: int, seed: int) -> bytes:
    """A small seeded-noise PNG."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def photos(tmp_path: Path) -> list[str]:
    """Twelve small PNGs under tmp_path/data/images."""
    folder = tmp_path / "data" / "images"
    folder.mkdir(parents=True)
    paths = []
    for i in range(12):
        path = folder / f"img{i:02d}.png"
        path.write_bytes(png_bytes(12, 10, i))
        paths.append(str(path))
    return paths


@pytest.fixture
def labelled(photos: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "outpath": photos,
            "label": ["cat", "dog", "bird"] * 4,
            "patient": [f"p{i // 2}" for i in range(12)],
        }
    )


def tree_files(root: Path) -> dict[str, Path]:
    """``split/label/name`` -> path for every file (or link) below the split folders."""
    out = {}
    for split_dir in ("train", "valid", "test"):
        for path in sorted((root / split_dir).glob("*/*")):
            out[path.relative_to(root).as_posix()] = path
    return out


# --------------------------------------------------------------------------- split()


# --------------------------------------------------------------------------- the tree


def test_tree_layout_links_and_manifest(labelled: pd.DataFrame, tmp_path: Path) -> None:
    outdir = tmp_path / "tree"
    manifest = create_imagenet_style_symlinks(
        labelled, "label", "outpath", valid_size=2, outdir=str(outdir), groupby_colname="patient"
    )
    files = tree_files(outdir)
    assert len(files) == len(labelled)
    for split_name in ("train", "valid"):
        assert sorted(os.listdir(outdir / split_name)) == ["bird", "cat", "dog"]
    # groups on one side, two groups (4 rows) in valid
    assert manifest.groupby("group")["split"].nunique().max() == 1
    assert manifest["group"].where(manifest["split"] == "valid").nunique() == 2
    # each link is relative and resolves to its source; the manifest says where it is
    for row in manifest.itertuples():
        link = outdir / row.path
        assert link.is_symlink()
        assert not os.path.isabs(os.readlink(link))
        assert os.path.samefile(link, row.source)
        assert row.path.split("/")[:2] == [row.split, row.label]
    on_disk = pd.read_csv(outdir / MANIFEST_NAME, dtype=str)
    assert list(on_disk.columns) == ["source", "label", "split", "group", "path"]
    assert on_disk["path"].tolist() == manifest["path"].tolist()
    assert on_disk["source"].tolist() == labelled["outpath"].tolist()


def test_seed_function_in_both_positional_orders_and_rounding_up(
    photos: list[str], tmp_path: Path
) -> None:
    """The documented order and the original creevey's own give the same tree; a float
    valid_size is at least that proportion (0.1 of 14 rows is 2, as in sklearn)."""
    more = tmp_path / "data" / "more"
    more.mkdir()
    extra = [str(more / f"extra{i}.png") for i in range(2)]
    for i, path in enumerate(extra):
        Path(path).write_bytes(png_bytes(12, 10, 50 + i))
    df = pd.DataFrame({"path": photos + extra, "label": ["a", "b"] * 7})
    documented = create_imagenet_style_symlinks(
        df, "label", "path", 0.1, str(tmp_path / "t1"), None, 3
    )
    original = create_imagenet_style_symlinks(
        df, 0.1, str(tmp_path / "t2"), "label", "path", None, 3
    )
    assert (documented["split"] == "valid").sum() == 2
    pd.testing.assert_frame_equal(documented, original)
    assert tree_files(tmp_path / "t1").keys() == tree_files(tmp_path / "t2").keys()
    # the original's order with its columns by keyword: (df, valid_size, outdir, label_colname=...)
    for i, (args, kwargs) in enumerate(
        [
            ((0.1, str(tmp_path / "k1")), {"label_colname": "label", "path_colname": "path"}),
            (
                (0.1,),
                {"outdir": str(tmp_path / "k2"), "label_colname": "label", "path_colname": "path"},
            ),
        ]
    ):
        keyed = create_imagenet_style_symlinks(df, *args, random_state=3, **kwargs)
        pd.testing.assert_frame_equal(keyed, original, obj=f"call {i}")
    with pytest.raises(ColumnError):  # a size where a column goes, not the original's order
        create_imagenet_style_symlinks(df, 0.1, "path", 2, str(tmp_path / "t3"))
    with pytest.raises(TypeError, match=r"stratify takes a column name .* stratify='label'"):
        create_imagenet_style_symlinks(df, "label", "path", 2, str(tmp_path / "t4"), stratify=True)
    assert not (tmp_path / "t4").exists()


def test_every_label_folder_exists_in_every_split(photos: list[str], tmp_path: Path) -> None:
    # "rare" has one image, so it is in train or valid but never both
    df = pd.DataFrame({"path": photos, "label": ["common"] * 11 + ["rare"]})
    create_imagenet_style_symlinks(
        df, "label", "path", 3, tmp_path / "tree", random_state=1, test_size=2
    )
    for split_name in ("train", "valid", "test"):
        assert sorted(os.listdir(tmp_path / "tree" / split_name)) == ["common", "rare"]
    counts = [len(os.listdir(tmp_path / "tree" / s / "rare")) for s in ("train", "valid", "test")]
    assert sorted(counts) == [0, 0, 1]


def test_relative_links_survive_moving_tree_with_images(
    labelled: pd.DataFrame, tmp_path: Path
) -> None:
    outdir = tmp_path / "data" / "tree"
    manifest = create_imagenet_style_symlinks(labelled, "label", "outpath", 0.25, str(outdir))
    before = {k: v.read_bytes() for k, v in tree_files(outdir).items()}
    shutil.move(str(tmp_path / "data"), str(tmp_path / "moved"))
    moved = tmp_path / "moved" / "tree"
    after = {k: v.read_bytes() for k, v in tree_files(moved).items()}
    assert after == before
    assert len(after) == len(manifest)
    for path in tree_files(moved).values():
        assert str(tmp_path / "moved" / "images") in os.path.realpath(path)


def test_absolute_links_on_request(labelled: pd.DataFrame, tmp_path: Path) -> None:
    outdir = tmp_path / "tree"
    create_imagenet_style_symlinks(labelled, "label", "outpath", 3, outdir, relative=False)
    for path in tree_files(outdir).values():
        target = os.readlink(path)
        assert os.path.isabs(target)
        assert os.path.samefile(target, path)


def test_local_copy_mode(labelled: pd.DataFrame, tmp_path: Path) -> None:
    outdir = tmp_path / "tree"
    manifest = create_imagenet_style_symlinks(labelled, "label", "outpath", 3, outdir, link="copy")
    for row in manifest.itertuples():
        path = outdir / row.path
        assert path.is_file()
        assert not path.is_symlink()
        assert path.read_bytes() == Path(row.source).read_bytes()


def test_copy_mode_to_memory(labelled: pd.DataFrame, memfs: fsspec.AbstractFileSystem) -> None:
    df = labelled.assign(label=["cat"] * 11 + ["lonely"])
    manifest = create_imagenet_style_symlinks(
        df, "label", "outpath", 2, "memory://tree", "patient", random_state=3, link="copy"
    )
    for row in manifest.itertuples():
        assert memfs.cat_file(f"/tree/{row.path}") == Path(row.source).read_bytes()
    for split_name in ("train", "valid"):
        assert sorted(
            p.rsplit("/", 1)[-1] for p in memfs.ls(f"/tree/{split_name}", detail=False)
        ) == [
            "cat",
            "lonely",
        ]
    written = pd.read_csv(memfs.open("/tree/manifest.csv"), dtype=str)
    assert written["path"].tolist() == manifest["path"].tolist()
    assert manifest.groupby("group")["split"].nunique().max() == 1


@pytest.fixture(scope="module")
def s3_options() -> Iterator[dict]:
    """A moto S3 server on 127.0.0.1 (port 0) with an empty bucket ``trees``."""
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        _, port = server.get_host_and_port()
        options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "k", "secret": "s"}
        s3fs.S3FileSystem(**options).mkdir("trees")
        yield options
    finally:
        server.stop()
        patch.undo()


def test_copy_mode_to_s3(labelled: pd.DataFrame, s3_options: dict) -> None:
    import s3fs

    manifest = create_imagenet_style_symlinks(
        labelled,
        "label",
        "outpath",
        2,
        "s3://trees/one",
        "patient",
        random_state=1,
        link="copy",
        storage_options=s3_options,
    )
    fs = s3fs.S3FileSystem(**s3_options)
    for row in manifest.itertuples():
        assert fs.cat_file(f"trees/one/{row.path}") == Path(row.source).read_bytes()
    assert fs.cat_file("trees/one/manifest.csv").startswith(b"source,label,split,group,path")
    with pytest.raises(ValueError, match="not empty"):
        create_imagenet_style_symlinks(
            labelled,
            "label",
            "outpath",
            2,
            "s3://trees/one",
            link="copy",
            storage_options=s3_options,
        )
    with pytest.raises(ValueError, match="link='copy'"):
        create_imagenet_style_symlinks(
            labelled, "label", "outpath", 2, "s3://trees/two", storage_options=s3_options
        )


def test_symlinks_to_memory_are_refused(
    labelled: pd.DataFrame, memfs: fsspec.AbstractFileSystem
) -> None:
    with pytest.raises(ValueError, match="link='copy'"):
        create_imagenet_style_symlinks(labelled, "label", "outpath", 2, "memory://tree")
    assert not memfs.exists("/tree")


def test_memory_sources_need_copy_mode(memfs: fsspec.AbstractFileSystem, tmp_path: Path) -> None:
    sources = []
    for i in range(4):
        memfs.pipe_file(f"/src/{i}.png", png_bytes(5, 5, i))
        sources.append(f"memory://src/{i}.png")
    df = pd.DataFrame({"p": sources, "label": ["x", "y"] * 2})
    with pytest.raises(ValueError, match="not local files"):
        create_imagenet_style_symlinks(df, "label", "p", 1, tmp_path / "tree")
    assert not (tmp_path / "tree").exists()
    manifest = create_imagenet_style_symlinks(df, "label", "p", 1, tmp_path / "tree", link="copy")
    for row in manifest.itertuples():
        assert (tmp_path / "tree" / row.path).read_bytes() == memfs.cat_file(row.source)


def test_same_filename_from_two_sources_both_survive(tmp_path: Path) -> None:
    sources = []
    for i, folder in enumerate(["a", "b", "c", "c"]):
        name = "photo.jpg" if i < 3 else "PHOTO.jpg"  # clashes on case-insensitive disks
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_bytes(png_bytes(6, 6, i))
        sources.append(str(tmp_path / folder / name))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "photo.jpg").write_bytes(png_bytes(6, 6, 9))
    sources.append(str(tmp_path / "d" / "photo.jpg"))
    df = pd.DataFrame({"p": sources, "label": ["cat"] * 4 + ["dog"]})
    names = []
    for run in ("one", "two"):
        manifest = create_imagenet_style_symlinks(
            df, "label", "p", 1, tmp_path / run, random_state=0
        )
        names.append([p.rsplit("/", 1)[-1] for p in manifest["path"]])
        for row in manifest.itertuples():
            assert os.path.samefile(tmp_path / run / row.path, row.source)
    assert names[0] == names[1]  # deterministic
    cat_names = names[0][:4]
    assert len({n.casefold() for n in cat_names}) == 4
    assert all(n.startswith(("photo_", "PHOTO_")) and n.endswith(".jpg") for n in cat_names)
    assert names[0][4] == "photo.jpg"  # alone under its label: the name is kept


def test_labels_become_safe_distinct_folders(photos: list[str], tmp_path: Path) -> None:
    labels = ["a/b", "a_b", "..", ".hidden", "", "x\\y", "Cat", "cat", "CON", "ok", 7, "7"]
    df = pd.DataFrame({"p": photos, "label": pd.Series(labels, dtype=object)})
    outdir = tmp_path / "tree"
    manifest = create_imagenet_style_symlinks(df, "label", "p", 2, outdir, random_state=0)
    folders = sorted(os.listdir(outdir / "train"))
    assert folders == sorted(os.listdir(outdir / "valid"))
    assert len(folders) == len(labels)  # distinct labels stay distinct
    assert len({f.casefold() for f in folders}) == len(labels)
    for folder in folders:
        assert "/" not in folder
        assert "\\" not in folder
        assert not folder.startswith(".")
        assert (outdir / "train" / folder).resolve().parent == (outdir / "train").resolve()
    assert "ok" in folders  # a safe label keeps its name
    assert manifest["label"].tolist() == [str(label) for label in labels]
    assert safe_label("a/b") == safe_label("a/b") == "a_b"
    assert safe_label("..") == "_"
    assert safe_label(".hidden") == "_hidden"


def test_stratified_tree_and_dask_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "img"
    folder.mkdir()
    paths = []
    for i in range(40):
        path = folder / f"{i}.png"
        path.write_bytes(b"x")  # only linked, never decoded
        paths.append(str(path))
    df = pd.DataFrame({"p": paths, "label": rng.choice(["a", "b"], 40, p=[0.75, 0.25])})
    expected = create_imagenet_style_symlinks(
        df, "label", "p", 0.25, tmp_path / "one", random_state=2, stratify="label"
    )
    got = create_imagenet_style_symlinks(
        dd.from_pandas(df, npartitions=3),
        "label",
        "p",
        0.25,
        tmp_path / "two",
        random_state=2,
        stratify="label",
    )
    pd.testing.assert_frame_equal(got, expected)
    n_b = int((df["label"] == "b").sum())
    valid_b = int(((expected["split"] == "valid") & (expected["label"] == "b")).sum())
    assert abs(valid_b - n_b * 10 / 40) < 1


def test_accessor_on_result_table_leaves_out_failed_rows(
    labelled: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = labelled.assign(
        status=pd.Categorical(
            ["ok"] * 9 + ["error", "skipped", "error"], ["ok", "skipped", "error"]
        )
    )
    table.loc[table["status"] == "error", "outpath"] = None  # as the engine leaves them
    with caplog.at_level(logging.WARNING, logger="creevey_dask"):
        manifest = table.creevey.imagenet_symlinks(
            tmp_path / "tree", label_col="label", valid_size=2, groupby="patient", random_state=0
        )
    # one default everywhere: the rows whose file exists, "ok" and "skipped" (a rerun's)
    assert len(manifest) == 10
    assert manifest["source"].tolist() == table["outpath"][[*range(9), 10]].tolist()
    assert "left out 2 of 12 rows" in caplog.text
    assert "error: 2" in caplog.text
    only_ok = table.iloc[:11].creevey.imagenet_symlinks(
        tmp_path / "ok", label_col="label", valid_size=2, keep_status=("ok",)
    )
    assert len(only_ok) == 9  # the skipped row at 10 and the error row at 9 are left out
    # a rerun: every row skipped, and the tree is still made from them
    rerun = labelled.assign(status=pd.Categorical(["skipped"] * 12, ["ok", "skipped", "error"]))
    assert (
        len(rerun.creevey.imagenet_symlinks(tmp_path / "re", label_col="label", valid_size=2)) == 12
    )
    # without a status column the default keeps every row; an explicit filter needs one
    assert (
        len(labelled.creevey.imagenet_symlinks(tmp_path / "x", label_col="label", valid_size=2))
        == 12
    )
    with pytest.raises(ColumnError, match="keep_status=None"):
        labelled.creevey.imagenet_symlinks(
            tmp_path / "z", label_col="label", valid_size=2, keep_status=("ok",)
        )
    assert not (tmp_path / "z").exists()
    everything = labelled.creevey.imagenet_symlinks(
        tmp_path / "y", label_col="label", valid_size=2, keep_status=None
    )
    assert len(everything) == 12


# --------------------------------------------------------------------------- bad input


def bad_input_cases(labelled: pd.DataFrame, photos: list[str]) -> list[tuple]:
    nulls = labelled.copy()
    nulls.loc[[1, 5], "label"] = None
    null_paths = labelled.copy()
    null_paths.loc[[3], "outpath"] = None
    dup = labelled.copy()
    dup.loc[4, "outpath"] = dup.loc[2, "outpath"]
    missing = labelled.copy()
    missing.loc[[0, 7], "outpath"] = [photos[0] + ".gone", "/no/such/dir/x.png"]
    return [
        (labelled, {"label_colname": "nope"}, "label_colname='nope'"),
        (labelled, {"path_colname": "nope"}, "path_colname='nope'"),
        (labelled, {"groupby_colname": "nope"}, "groupby_colname='nope'"),
        (nulls, {}, r"2 row\(s\) have no label .* \[1, 5\]"),
        (null_paths, {}, r"1 row\(s\) have no path .* \[3\]"),
        (labelled, {"valid_size": 0}, "at least 1"),
        (labelled, {"valid_size": -1}, "at least 1"),
        (
            labelled,
            {"valid_size": 6, "groupby_colname": "patient"},
            "6 of the 6 groups",
        ),
        (labelled, {"valid_size": 12}, "leaves none for train"),
        (labelled, {"valid_size": 1.0}, r"in \(0, 1\)"),
        (dup, {}, "2 rows share 1 path"),
        (missing, {}, r"2 of 12 source\(s\) do not exist"),
        (labelled, {"link": "hardlink"}, "link 'hardlink' is not one of"),
    ]


def test_bad_input_creates_nothing(
    labelled: pd.DataFrame, photos: list[str], tmp_path: Path
) -> None:
    for i, (df, changes, match) in enumerate(bad_input_cases(labelled, photos)):
        kwargs = {
            "label_colname": "label",
            "path_colname": "outpath",
            "valid_size": 2,
            "outdir": tmp_path / f"tree{i}",
            **changes,
        }
        with pytest.raises(ValueError, match=match):
            create_imagenet_style_symlinks(df, **kwargs)
        assert not (tmp_path / f"tree{i}").exists(), changes
        # an existing empty outdir stays empty
        (tmp_path / f"empty{i}").mkdir()
        kwargs["outdir"] = tmp_path / f"empty{i}"
        with pytest.raises(ValueError, match=match):
            create_imagenet_style_symlinks(df, **kwargs)
        assert os.listdir(tmp_path / f"empty{i}") == []


def test_non_empty_outdir_is_refused(labelled: pd.DataFrame, tmp_path: Path) -> None:
    outdir = tmp_path / "tree"
    outdir.mkdir()
    (outdir / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        create_imagenet_style_symlinks(labelled, "label", "outpath", 2, outdir)
    assert os.listdir(outdir) == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        create_imagenet_style_symlinks(labelled, "label", "outpath", 2, tmp_path / "file")


def test_non_empty_memory_outdir_is_refused(
    labelled: pd.DataFrame, memfs: fsspec.AbstractFileSystem
) -> None:
    memfs.pipe_file("/tree/old.txt", b"x")
    with pytest.raises(ValueError, match="not empty"):
        create_imagenet_style_symlinks(
            labelled, "label", "outpath", 2, "memory://tree", link="copy"
        )
    assert memfs.ls("/tree", detail=False) == ["/tree/old.txt"]


class InjectedError(OSError):
    pass


@pytest.mark.parametrize("outdir_exists", [False, True])
@pytest.mark.parametrize("mode", ["symlink", "copy"])
def test_failure_midway_removes_what_was_created(
    labelled: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    outdir_exists: bool,
) -> None:
    # Fault injection: the 6th file fails as a full disk or a vanished source would.
    from creevey_dask.layout.imagenet import _Tree

    calls = {"n": 0}
    lock = threading.Lock()
    original = getattr(_Tree, mode)

    def failing(self, *args, **kwargs):
        with lock:  # copies run in threads
            calls["n"] += 1
            fail = calls["n"] == 6
        if fail:
            raise InjectedError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_Tree, mode, failing)
    outdir = tmp_path / "new" / "nested" / "tree"
    if outdir_exists:
        outdir.mkdir(parents=True)
    with pytest.raises(InjectedError):
        create_imagenet_style_symlinks(labelled, "label", "outpath", 2, outdir, link=mode)
    assert calls["n"] >= 6  # copies run in a few threads: some may follow the failure
    if outdir_exists:
        assert os.listdir(outdir) == []
    else:  # the folders this call made on the way to outdir go too
        assert not (tmp_path / "new").exists()
    assert all(Path(p).is_file() for p in labelled["outpath"])  # sources untouched


def test_failure_midway_in_memory_removes_what_was_created(
    labelled: pd.DataFrame, memfs: fsspec.AbstractFileSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    from creevey_dask.layout.imagenet import _Tree

    calls = {"n": 0}
    lock = threading.Lock()
    original = _Tree.copy

    def failing(self, *args, **kwargs):
        with lock:  # copies run in threads
            calls["n"] += 1
            fail = calls["n"] == 4
        if fail:
            raise InjectedError("connection lost")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_Tree, "copy", failing)
    with pytest.raises(InjectedError):
        create_imagenet_style_symlinks(
            labelled, "label", "outpath", 2, "memory://tree", link="copy"
        )
    assert not memfs.exists("/tree")
    assert memfs.find("/") == []


# --------------------------------------------------------------------------- a consumer


def test_huggingface_imagefolder_reads_the_tree(
    labelled: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never the network, never the home cache: the environment covers a first import,
    # the config attributes an import made earlier in the session.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", tmp_path / "hf_modules")

    outdir = tmp_path / "tree"
    manifest = create_imagenet_style_symlinks(
        labelled, "label", "outpath", 2, outdir, "patient", random_state=7, test_size=1
    )
    loaded = datasets.load_dataset(
        "imagefolder", data_dir=str(outdir), cache_dir=str(tmp_path / "hf_cache")
    )
    expected = manifest["split"].value_counts().to_dict()
    assert expected == {"train": 6, "valid": 4, "test": 2}  # 3, 2 and 1 patients
    assert {name: ds.num_rows for name, ds in loaded.items()} == {
        "train": 6,
        "validation": 4,  # datasets' name for the "valid" folder
        "test": 2,
    }
    names = loaded["train"].features["label"].names
    assert names == ["bird", "cat", "dog"]
    for name, folder in (("train", "train"), ("validation", "valid"), ("test", "test")):
        got = sorted(names[i] for i in loaded[name]["label"])
        assert got == sorted(manifest.loc[manifest["split"] == folder, "label"])
    first = loaded["train"][0]["image"]
    assert first.size == (12, 10)


def test_exports() -> None:
    for name in ("split", "create_imagenet_style_symlinks", "safe_label"):
        assert name in creevey_dask.__all__
        assert hasattr(creevey_dask, name)


# --------------------------------------------------------------------------- concurrent calls

TREE_CHILD = """
import sys, time
from pathlib import Path
import pandas as pd
from creevey_dask.original import create_imagenet_style_symlinks

frame, outdir, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
df = pd.read_csv(frame)
print("READY", flush=True)
while not go.exists():
    time.sleep(0.005)
create_imagenet_style_symlinks(df, "label", "path", 0.25, outdir, random_state=0)
print("BUILT", flush=True)
"""


def test_concurrent_calls_into_one_folder_keep_the_winners_tree(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    src = tmp_path / "src"
    src.mkdir()
    frames = {}
    for who, n in (("slow", 2000), ("fast", 8)):
        paths = []
        for i in range(n):
            path = src / f"{who}{i}.jpg"
            path.write_bytes(who.encode())
            paths.append(str(path))
        frames[who] = tmp_path / f"{who}.csv"
        labels = [f"label{i % 4}" for i in range(n)]
        pd.DataFrame({"path": paths, "label": labels}).to_csv(frames[who], index=False)
    script = tmp_path / "child.py"
    script.write_text(TREE_CHILD, encoding="utf-8")
    data = tmp_path / "data"
    outdir = data / "tree"
    children = {
        who: subprocess.Popen(
            [sys.executable, str(script), str(frames[who]), str(outdir), str(tmp_path / who)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for who in ("slow", "fast")
    }
    try:
        for child in children.values():  # both have imported and wait for their go file
            assert child.stdout is not None
            assert child.stdout.readline() == b"READY\n", child.communicate()
        (tmp_path / "slow").touch()
        deadline = time.monotonic() + 60
        # the slow call has checked the folder and is building its tree ...
        while not (data.exists() and os.listdir(data)):
            assert time.monotonic() < deadline
            assert children["slow"].poll() is None
            time.sleep(0.002)
        (tmp_path / "fast").touch()  # ... when the fast one starts, and wins
        results = {who: (c.communicate(timeout=120), c.returncode) for who, c in children.items()}
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.communicate()
    # Usually the fast call wins while the slow one is still linking; on a loaded machine
    # the slow one may finish first. Either way exactly one wins and its tree is whole.
    winners = [who for who, (_, rc) in results.items() if rc == 0]
    assert len(winners) == 1, {who: err.decode()[-1000:] for who, ((_, err), _) in results.items()}
    winner = winners[0]
    loser = "slow" if winner == "fast" else "fast"
    (loser_out, loser_err), _ = results[loser]
    assert b"BUILT" not in loser_out
    last = loser_err.decode().strip().splitlines()[-1]
    # the race (FileExistsError), or the loser checked after the winner had finished
    assert last.startswith(("FileExistsError: outdir ", "ValueError: outdir ")), last
    assert repr(str(outdir)) in last, last

    # the winner's tree is whole; nothing of the loser's is left anywhere
    manifest = pd.read_csv(outdir / MANIFEST_NAME)
    assert len(manifest) == len(pd.read_csv(frames[winner]))
    assert all(Path(p).name.startswith(winner) for p in manifest["source"])
    on_disk = sorted(
        str(p.relative_to(outdir)) for p in outdir.rglob("*") if p.is_symlink() or p.is_file()
    )
    assert on_disk == sorted([*manifest["path"], MANIFEST_NAME])
    for row in manifest.itertuples():
        assert (outdir / row.path).resolve() == Path(row.source).resolve()
        assert (outdir / row.path).read_bytes() == winner.encode()
    assert os.listdir(data) == ["tree"]  # no building folder of the loser's


def test_a_killed_calls_building_folder_is_swept_by_the_next_call(
    labelled: pd.DataFrame, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from creevey_dask.storage import fs as storage

    # a building folder left by a call whose process is gone (a real, finished pid)
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        gone.wait()
    pid = gone.pid
    outdir = tmp_path / "tree"
    leftover = Path(storage.temp_path(str(outdir)).replace(f"-{os.getpid()}-", f"-{pid}-"))
    (leftover / "train" / "cat").mkdir(parents=True)
    (leftover / "train" / "cat" / "half.jpg").write_bytes(b"x")
    # and one of a live process (this one), which must stay
    alive = Path(storage.temp_path(str(tmp_path / "other")))
    alive.mkdir()
    create_imagenet_style_symlinks(labelled, "label", "outpath", 2, outdir, random_state=0)
    assert sorted(os.listdir(tmp_path)) == sorted(["tree", alive.name, *_others(tmp_path)])
    assert not leftover.exists()


def _others(folder: Path) -> list[str]:
    """Entries of ``folder`` that are neither trees nor temporaries (the sources)."""
    return [n for n in os.listdir(folder) if n != "tree" and not n.startswith(".")]


def test_the_same_call_run_again_finds_its_tree(labelled: pd.DataFrame, tmp_path: Path) -> None:
    """A notebook cell (or the README's quickstart) run twice: the tree is there, unchanged."""
    outdir = tmp_path / "tree"
    first = create_imagenet_style_symlinks(labelled, "label", "outpath", 2, outdir, random_state=0)
    before = sorted((p.relative_to(outdir), p.is_symlink()) for p in outdir.rglob("*"))
    again = create_imagenet_style_symlinks(labelled, "label", "outpath", 2, outdir, random_state=0)
    pd.testing.assert_frame_equal(first, again)
    assert sorted((p.relative_to(outdir), p.is_symlink()) for p in outdir.rglob("*")) == before
    for row in again.itertuples():
        assert (outdir / row.path).resolve() == Path(row.source).resolve()
    # another split into the same folder is still refused, and changes nothing
    with pytest.raises(ValueError, match=r"not empty.*does not hold the tree"):
        create_imagenet_style_symlinks(labelled, "label", "outpath", 1, outdir, random_state=0)
    assert sorted((p.relative_to(outdir), p.is_symlink()) for p in outdir.rglob("*")) == before


def test_replace_swaps_an_earlier_tree_of_ours_only(labelled: pd.DataFrame, tmp_path: Path) -> None:
    outdir = tmp_path / "tree"
    create_imagenet_style_symlinks(labelled, "label", "outpath", 2, outdir, random_state=0)
    fewer = labelled.iloc[1:]
    manifest = imagenet_symlinks(
        fewer, outdir, label_col="label", valid_size=1, random_state=0, replace=True
    )
    links = sorted(str(p.relative_to(outdir)) for p in outdir.rglob("*") if p.is_symlink())
    assert links == sorted(manifest["path"])
    for row in manifest.itertuples():
        assert (outdir / row.path).resolve() == Path(row.source).resolve()
    assert [p.name for p in tmp_path.iterdir() if "creevey-tmp" in p.name] == []
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"no manifest\.csv"):
        imagenet_symlinks(labelled, mine, label_col="label", valid_size=1, replace=True)
    assert os.listdir(mine) == ["keep.txt"]
