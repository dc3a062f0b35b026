"""Every row's record is true: names, skips, atomic writes and clean-up.

Each test reproduces one finding with real parts (a tmpfs, two processes, a loopback
server, real files) and checks the files on disk: every ``ok``/``skipped`` row's file
exists, decodes and holds the pixels of *that row's* source.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import creevey_dask as cd
from creevey_dask import Pipeline, load_image, ops
from creevey_dask.schema import RESULT_COLUMNS
from creevey_dask.storage.fs import TEMP_SUFFIX
from creevey_dask.storage.naming import disambiguate, url_hash
from creevey_dask.testing import ImageServer


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _assert_rows_hold_their_images(result: pd.DataFrame, source_col: str) -> None:
    """Every ok/skipped row's file exists, decodes and has its own source's pixels."""
    done = result[result.status.isin(["ok", "skipped"])]
    assert len(done), "no row was done"
    for source, outpath in zip(done[source_col], done.outpath, strict=True):
        assert os.path.isfile(outpath), outpath
        assert np.array_equal(_pixels(outpath), _pixels(source)), (source, outpath)


def _stale_temporary(folder: Path, name: str) -> Path:
    """A temporary left by a writer that died (a real, finished process) on this host."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    path = folder / f".{name}.{cd.storage.fs._HOST}-{int(dead.stdout)}-deadbeef{TEMP_SUFFIX}"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a file")
    return path


#: A resize that keeps these small images as they are, so outputs equal their sources.
KEEP_SIZE = cd.ops.resize(max_dim=1000, only_shrink=True)
KEEP = {"shape": KEEP_SIZE, "progress": False}


@pytest.fixture
def two_sources_one_name(tmp_path: Path) -> list[str]:
    """Two different images, both called ``same.png``, in two folders."""
    paths = []
    for i, folder in enumerate(("a", "b")):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "same.png"
        _noise(24 + 8 * i, 16, seed=i).save(path)
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------- atomic writes


_BOTH_LOADED = threading.Barrier(2)
_ONE_WRITER = threading.Lock()


def _load_together(path: str) -> Image.Image:
    """Load, then wait for the other row: both pass the skip check before either writes."""
    image = load_image(path)
    _BOTH_LOADED.wait(timeout=30)
    return image


def _write_one_at_a_time(image: Image.Image, outpath: str) -> None:
    """Write after the other row: the second write meets a full disk."""
    with _ONE_WRITER:
        cd.write_image(image, outpath)


def test_a_failed_write_never_deletes_the_ok_rows_file(tmp_path: Path, tmpfs_2m: Path) -> None:
    """A duplicated source on a full disk: the row that fails deletes nothing."""
    source = tmp_path / "big.png"
    _noise(700, 700, seed=3).save(source)  # ~1.4 MiB: one fits in 2 MiB, two do not
    result = Pipeline(_load_together, write_func=_write_one_at_a_time).run(
        [str(source), str(source)], lambda s: str(tmpfs_2m / "big.png"), n_jobs=2, progress=False
    )
    assert sorted(result.status) == ["error", "ok"]
    assert result.error.dropna().str.contains("No space left on device").all()
    _assert_rows_hold_their_images(result, "inpath")
    assert not list(tmpfs_2m.rglob(f"*{TEMP_SUFFIX}"))


_WRITER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from creevey_dask import Pipeline, load_image
    from creevey_dask.resize import KeepFilename

    sources = sys.argv[1].split(",")
    result = Pipeline(load_image).run(sources, KeepFilename(sys.argv[2]), n_jobs=4, progress=False)
    result.to_pickle(sys.argv[3])
    """
)


def test_two_processes_writing_one_folder(tmp_path: Path) -> None:
    """Two real processes, different images with the same names, one output folder."""
    sources: dict[str, list[str]] = {"a": [], "b": []}
    for k, folder in enumerate(sources):
        (tmp_path / folder).mkdir()
        for i in range(12):
            path = tmp_path / folder / f"{i:02d}.png"
            _noise(16, 16, seed=100 * k + i).save(path)
            sources[folder].append(str(path))
    outdir = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                ",".join(paths),
                str(outdir),
                str(tmp_path / f"{k}.pkl"),
            ]
        )
        for k, paths in sources.items()
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    results = [pd.read_pickle(tmp_path / f"{k}.pkl") for k in sources]
    for result in results:
        assert (result.status == "ok").all(), result.error.dropna().tolist()
        _assert_rows_hold_their_images(result, "inpath")
    outpaths = pd.concat(results).outpath
    assert outpaths.is_unique  # 24 images, 24 files: the later writer of a name got a hash
    assert len(list(outdir.glob("*.png"))) == 24


# --------------------------------------------------------------------- skip = this row's


def test_a_rerun_with_another_source_of_the_same_name(
    tmp_path: Path, two_sources_one_name: list[str]
) -> None:
    first, second = two_sources_one_name
    outdir = tmp_path / "out"
    run = cd.resize_multiple_files
    one = run([first], KEEP_SIZE, str(outdir), progress=False)
    assert one.outpath.tolist() == [str(outdir / "same.png")]
    before = (outdir / "same.png").read_bytes()
    for skip_existing in (True, False):
        two = run([second], KEEP_SIZE, str(outdir), skip_existing=skip_existing, progress=False)
        assert two.status.tolist() == ["ok"], two.error
        assert two.outpath.iloc[0] == disambiguate(str(outdir / "same.png"), second)
        _assert_rows_hold_their_images(two, "path")
        assert (outdir / "same.png").read_bytes() == before  # never overwritten
    again = run([first, second], KEEP_SIZE, str(outdir), progress=False)
    assert again.status.tolist() == ["skipped", "skipped"]
    assert again.outpath.tolist() == [str(outdir / "same.png"), two.outpath.iloc[0]]
    _assert_rows_hold_their_images(again, "path")


@pytest.mark.parametrize("occupant", ["empty file", "folder", "foreign file"])
def test_what_is_at_the_outpath_is_never_taken_for_done(tmp_path: Path, occupant: str) -> None:
    source = tmp_path / "in" / "photo.png"
    source.parent.mkdir()
    _noise(20, 10, seed=7).save(source)
    outdir = tmp_path / "out"
    outdir.mkdir()
    target = outdir / "photo.png"
    if occupant == "folder":
        target.mkdir()
    else:
        target.write_bytes(b"" if occupant == "empty file" else b"someone else's data")
    result = Pipeline(load_image).run(
        [str(source)], lambda s: str(outdir / Path(s).name), progress=False
    )
    assert result.status.tolist() == ["ok"]
    assert result.outpath.iloc[0] == disambiguate(str(target), str(source))
    _assert_rows_hold_their_images(result, "inpath")
    if occupant == "folder":
        assert target.is_dir()
    else:  # untouched
        assert target.read_bytes() == (b"" if occupant == "empty file" else b"someone else's data")


def test_urls_differing_only_in_the_query_string(tmp_path: Path) -> None:
    images = {f"{k}/img": _png(_noise(12, 8, seed=k)) for k in range(3)}
    with ImageServer(images) as server:
        urls = [server.url(f"/img/{k}/img", id=k) for k in range(3)]
        urls += [server.url("/img/0/img", id=i) for i in range(3, 20)]
        result = cd.download(urls, str(tmp_path), format="png", progress=False)
        again = cd.download(urls, str(tmp_path), format="png", progress=False)
    assert (result.status == "ok").all(), result.error.dropna().tolist()
    assert result.outpath.is_unique
    assert result.outpath.iloc[0] == str(tmp_path / "img.png")  # the first row keeps the name
    assert result.outpath.iloc[1] == str(tmp_path / f"img_{url_hash(urls[1])[:16]}.png")
    assert again.outpath.tolist() == result.outpath.tolist()  # the same table: the same names
    assert (again.status == "skipped").all()
    for k in range(3):
        served = _pixels(io.BytesIO(images[f"{k}/img"]))
        assert np.array_equal(_pixels(result.outpath.iloc[k]), served)


def test_dask_resize_with_shared_basenames(tmp_path: Path, two_sources_one_name) -> None:
    ddf = dd.from_pandas(pd.DataFrame({"path": two_sources_one_name}), npartitions=2)
    result = ddf.creevey.resize(str(tmp_path / "out"), **KEEP).compute()
    assert result.status.tolist() == ["ok", "ok"]
    assert result.outpath.is_unique
    _assert_rows_hold_their_images(result, "path")


def test_a_250_byte_utf8_name(tmp_path: Path) -> None:
    name = "é" * 123 + ".png"  # 250 bytes, 127 characters
    assert len(name.encode()) == 250
    source = tmp_path / "in" / name
    source.parent.mkdir()
    _noise(10, 10, seed=1).save(source)
    result = cd.resize_multiple_files(
        [str(source)], KEEP_SIZE, str(tmp_path / "out"), progress=False
    )
    assert result.status.tolist() == ["ok"], result.error.tolist()
    assert result.outpath.iloc[0] == str(tmp_path / "out" / name)
    _assert_rows_hold_their_images(result, "path")


# --------------------------------------------------------------------- clean-up


@pytest.mark.parametrize("rerun", ["skips every row", "fails every row"])
def test_a_rerun_that_writes_nothing_still_sweeps(tmp_path: Path, image_files, rerun: str):
    outdir = tmp_path / "out"
    to_png = lambda s: str(outdir / (Path(s).stem + ".png"))  # noqa: E731
    Pipeline(load_image).run(image_files, to_png, progress=False)
    stale = _stale_temporary(outdir, "img0.png")
    live = outdir / f".img1.png.{cd.storage.fs._HOST}-{os.getpid()}-cafecafe{TEMP_SUFFIX}"
    live.write_bytes(b"being written")
    if rerun == "skips every row":
        again = Pipeline(load_image).run(image_files, to_png, progress=False)
        assert (again.status == "skipped").all()
    else:
        missing = [str(tmp_path / f"gone{i}.jpg") for i in range(3)]
        again = Pipeline(load_image).run(missing, to_png, progress=False)
        assert (again.status == "error").all()
    assert not stale.exists()
    assert live.exists()  # a live writer's temporary is left alone


# --------------------------------------------------------------------- input coercion


@pytest.mark.parametrize(
    "empty", [[], pd.DataFrame({"url": pd.Series([], dtype=object)})], ids=["list", "frame"]
)
def test_empty_input_gives_an_empty_result_frame(tmp_path: Path, empty) -> None:
    for result in (
        cd.download(empty, str(tmp_path), progress=False),
        Pipeline(load_image).run(empty, str, progress=False),
    ):
        assert len(result) == 0
        for name, dtype in RESULT_COLUMNS.items():
            if name == "error_type":  # categories: the exception names seen (none here)
                assert isinstance(result[name].dtype, pd.CategoricalDtype), name
                assert len(result[name].cat.categories) == 0
            else:
                assert result[name].dtype == dtype, name
    assert "http_status" in cd.download(empty, str(tmp_path)).columns


def test_a_multiindex_is_kept(tmp_path: Path, image_files) -> None:
    index = pd.MultiIndex.from_tuples([("a", i) for i in range(len(image_files))])
    df = pd.DataFrame({"path": image_files, "y": range(len(image_files))}, index=index)
    result = df.creevey.resize(str(tmp_path / "out"), **KEEP, options=cd.RunOptions(npartitions=2))
    assert result.index.equals(index)
    assert result.y.tolist() == df.y.tolist()
    assert (result.status == "ok").all()
    for source, outpath in zip(result.path, result.outpath, strict=True):
        assert Path(outpath).name == Path(source).name
        with Image.open(outpath) as out, Image.open(source) as im:
            assert out.size == im.size


def test_a_table_that_only_looks_like_a_result_table(tmp_path: Path, image_files) -> None:
    df = pd.DataFrame({"path": image_files, "status": "new", "error": "none"})
    with pytest.raises(cd.ColumnError, match=r"not a result table.*'outpath' is missing.*rename"):
        Pipeline(load_image).run(df, str, inpath_col="path")
    typed = df.assign(outpath="x").astype({"status": "category"})
    with pytest.raises(cd.ColumnError, match=r"'status' is category, not category"):
        Pipeline(load_image).run(typed, str, inpath_col="path")


# --------------------------------------------------------------------- one resizer


def test_download_resize_shape_is_ops_resize(tmp_path: Path) -> None:
    served = _png(_noise(64, 48, seed=5))
    with ImageServer({"n.png": served}) as server:
        result = cd.download_images_as_png(
            [server.url("/img/n.png")], str(tmp_path), resize_shape=(20, 30), progress=False
        )
    expected = ops.resize(shape=(20, 30))(Image.open(io.BytesIO(served)).convert("RGB"))
    assert np.array_equal(_pixels(result.outpath.iloc[0]), np.asarray(expected))
