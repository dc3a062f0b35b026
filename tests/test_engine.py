"""The engine over pandas and dask frames: result columns, skipping, errors, meta."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import ClassVar

import dask.dataframe as dd
import pandas as pd
import pytest
from PIL import Image

import creevey_dask as cd
from creevey_dask import Pipeline, load_image, report
from creevey_dask.exceptions import format_error
from creevey_dask.resize import resize
from creevey_dask.schema import RESULT_COLUMNS, STATUS_DTYPE


def to_png(outdir: Path):
    """An outpath function: the source's stem as a PNG in ``outdir``."""

    def outpath(source: str) -> str:
        return str(outdir / (Path(source).stem + ".png"))

    return outpath


def _visible(folder: Path) -> list[Path]:
    """The entries of ``folder`` that are not hidden (temporaries)."""
    return [p for p in folder.iterdir() if not p.name.startswith(".")]


def width_pipeline(**kwargs) -> Pipeline:
    return Pipeline(load_image, ops=[report("width", lambda im: im.width, "Int64")], **kwargs)


def test_pandas_input_returns_pandas_with_result_columns(image_files, tmp_path):
    df = pd.DataFrame({"path": image_files, "label": list("abcde")})
    res = width_pipeline().run(df, to_png(tmp_path / "out"), inpath_col="path", progress=False)
    assert isinstance(res, pd.DataFrame)
    assert list(res.columns) == [
        "path",
        "label",
        "outpath",
        "status",
        "error",
        "error_type",
        "width",
    ]
    assert res.index.equals(df.index)
    assert (res.status == "ok").all()
    assert res.error.isna().all()
    assert res.width.tolist() == [40, 41, 42, 43, 44]
    for path in res.outpath:
        with Image.open(path) as im:
            assert im.format == "PNG"
    # the input columns are kept as they were
    assert res.label.tolist() == list("abcde")
    assert res["path"].dtype == df["path"].dtype


def test_result_dtypes(image_files, tmp_path):
    res = width_pipeline().run(image_files, to_png(tmp_path), progress=False)
    assert res.columns[0] == "inpath"
    assert res.dtypes["outpath"] == pd.StringDtype()
    assert res.dtypes["error"] == pd.StringDtype()
    assert res.dtypes["status"] == STATUS_DTYPE
    assert list(res.status.cat.categories) == ["ok", "skipped", "error"]
    assert res.dtypes["width"] == pd.Int64Dtype()


@pytest.mark.parametrize("kind", ["list", "tuple", "generator", "series", "named_series"])
def test_in_memory_input_kinds(kind, image_files, tmp_path):
    inputs = {
        "list": lambda: list(image_files),
        "tuple": lambda: tuple(image_files),
        "generator": lambda: (p for p in image_files),
        "series": lambda: pd.Series(image_files),
        "named_series": lambda: pd.Series(image_files, name="src"),
    }[kind]()
    res = width_pipeline().run(inputs, to_png(tmp_path), progress=False)
    assert res.columns[0] == ("src" if kind == "named_series" else "inpath")
    assert (res.status == "ok").all()


@pytest.mark.parametrize("npartitions", [1, 3, 5])
def test_dask_input_is_lazy_and_meta_matches_compute(image_files, tmp_path, npartitions):
    df = pd.DataFrame({"path": image_files, "n": range(5)})
    ddf = dd.from_pandas(df, npartitions=npartitions)
    calls = []

    def load(path):
        calls.append(path)
        return load_image(path)

    res = Pipeline(load, ops=[report("width", lambda im: im.width, "Int64")]).run(
        ddf, to_png(tmp_path), inpath_col="path"
    )
    assert isinstance(res, dd.DataFrame)
    assert calls == []  # nothing ran yet, not even on fake meta rows
    assert res.npartitions == npartitions
    out = res.compute()
    assert list(out.columns) == list(res.columns)
    # error_type's categories are the exception names seen: unknown until computed
    assert out.dtypes.drop("error_type").equals(res._meta.dtypes.drop("error_type"))
    assert isinstance(out.error_type.dtype, pd.CategoricalDtype)
    assert isinstance(res._meta.error_type.dtype, pd.CategoricalDtype)
    assert sorted(calls) == sorted(image_files)
    assert (out.status == "ok").all()
    assert out.sort_index()["n"].tolist() == list(range(5))


def test_dask_series_input(image_files, tmp_path):
    series = dd.from_pandas(pd.Series(image_files, name="p"), npartitions=2)
    res = width_pipeline().run(series, to_png(tmp_path))
    out = res.compute()
    assert list(out.columns[:1]) == ["p"]
    assert (out.status == "ok").all()


def test_skip_existing_on_rerun(image_files, tmp_path):
    outdir = tmp_path / "out"
    loads = []

    def load(path):
        loads.append(path)
        return load_image(path)

    pipeline = Pipeline(load)
    first = pipeline.run(image_files, to_png(outdir), progress=False)
    assert (first.status == "ok").all()
    mtimes = {p: os.stat(p).st_mtime_ns for p in first.outpath}
    loads.clear()
    second = pipeline.run(image_files, to_png(outdir), progress=False)
    assert (second.status == "skipped").all()
    assert loads == []
    assert second.outpath.tolist() == first.outpath.tolist()
    assert {p: os.stat(p).st_mtime_ns for p in second.outpath} == mtimes
    third = pipeline.run(image_files, to_png(outdir), skip_existing=False, progress=False)
    assert (third.status == "ok").all()
    assert len(loads) == 5


def test_bad_rows_are_errors_and_the_rest_completes(image_files, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is text, not a JPEG")
    unreadable = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(unreadable)
    unreadable.chmod(0)
    sources = [*image_files, str(tmp_path / "missing.png"), str(not_an_image), None]
    if os.geteuid() != 0:  # root reads any file
        sources.append(str(unreadable))
    res = Pipeline(load_image).run(sources, to_png(tmp_path / "out"), progress=False)
    assert (res.status.iloc[:5] == "ok").all()
    bad = res.iloc[5:]
    assert (bad.status == "error").all()
    assert bad.outpath.isna().all()
    errors = bad.error.tolist()
    assert errors[0].startswith("FileNotFoundError: ")
    assert "missing.png" in errors[0]
    assert errors[1].startswith("ImageDecodeError: cannot decode")
    assert errors[2] == "ValueError: the source is missing (null)"
    if len(errors) > 3:
        assert errors[3].startswith("PermissionError: ")
    assert all("\n" not in e for e in errors)
    assert not (tmp_path / "out" / "missing.png").exists()
    assert not (tmp_path / "out" / "notes.png").exists()


def test_an_op_that_raises_is_an_error_row(image_files, tmp_path):
    def picky(image):
        if image.width == 42:
            raise RuntimeError("width 42\nis not allowed")
        return image

    res = Pipeline(load_image, ops=[picky]).run(image_files, to_png(tmp_path), progress=False)
    assert res.status.tolist() == ["ok", "ok", "error", "ok", "ok"]
    assert res.error.iloc[2] == "RuntimeError: width 42 is not allowed"
    assert not Path(to_png(tmp_path)(image_files[2])).exists()


def test_values_recorded_before_an_error_are_kept(image_files, tmp_path):
    class Loader:
        result_columns: ClassVar = {"attempts": "Int64"}

        def __call__(self, source):
            cd.record(attempts=3)
            raise ConnectionError("gave up")

    res = Pipeline(Loader()).run(image_files[:2], to_png(tmp_path), progress=False)
    assert res.status.tolist() == ["error", "error"]
    assert res.attempts.tolist() == [3, 3]
    assert res.error.iloc[0] == "ConnectionError: gave up"


def test_a_custom_writer_that_fails_mid_write_leaves_nothing_and_the_rerun_writes(
    image_files, tmp_path
):
    """A user's write_func writes part of its file, then raises (a full disk): the rows are
    errors and nothing is at their outpaths. A rerun with a writer that works writes every
    row (none is taken for done), and every file decodes as its own row's image."""

    def failing(image, path):
        with open(path, "wb") as f:  # the path the engine hands over: a temporary
            f.write(b"\x89PNG half")
            raise OSError("disk full")

    def working(image, path):
        image.save(path)  # the temporary keeps the extension: Pillow picks PNG

    outdir = tmp_path / "out"
    res = Pipeline(load_image, write_func=failing).run(image_files, to_png(outdir), progress=False)
    assert (res.status == "error").all()
    assert res.error.iloc[0] == "OSError: disk full"
    assert os.listdir(outdir) == []  # no partial file and no temporary

    rerun = Pipeline(load_image, write_func=working).run(
        image_files, to_png(outdir), progress=False
    )
    assert rerun.status.tolist() == ["ok"] * len(image_files)
    assert sorted(os.listdir(outdir)) == sorted(Path(p).name for p in rerun.outpath)
    for source, outpath in zip(rerun.inpath, rerun.outpath, strict=True):
        with Image.open(source) as want, Image.open(outpath) as got:
            assert got.format == "PNG"
            assert got.convert("RGB").tobytes() == want.convert("RGB").tobytes()


def test_atomic_writer_failing_mid_write_leaves_nothing(image_files, tmp_path):
    """The library's atomic write fails after its temporary file exists: nothing remains."""
    outdir = tmp_path / "out"
    opened = []

    class Unwritable:
        """Not a buffer: ``file.write`` raises after the temporary file was opened."""

    def writer(image, outpath):
        opened.append(outpath)
        cd.storage.write_bytes_atomic(outpath, Unwritable())  # type: ignore[arg-type]

    res = Pipeline(load_image, write_func=writer).run(image_files, to_png(outdir), progress=False)
    assert len(opened) == 5
    assert (res.status == "error").all()
    assert res.error.str.startswith("TypeError: ").all()
    assert _visible(outdir) == []  # no output and no *.creevey-tmp
    assert not list(outdir.rglob(f"*{cd.storage.TEMP_SUFFIX}"))


def test_memory_output(image_files, memfs):
    res = width_pipeline().run(
        image_files, lambda p: f"memory://out/{Path(p).stem}.webp", progress=False
    )
    assert (res.status == "ok").all()
    assert sorted(memfs.glob("/out/*.webp")) == [f"/out/img{i}.webp" for i in range(5)]
    again = width_pipeline().run(
        image_files, lambda p: f"memory://out/{Path(p).stem}.webp", progress=False
    )
    assert (again.status == "skipped").all()
    with memfs.open("/out/img0.webp") as f, Image.open(f) as im:
        assert im.format == "WEBP"
        assert im.size == (40, 30)


def test_memory_input(image_files, memfs):
    for path in image_files:
        memfs.pipe(f"/in/{Path(path).name}", Path(path).read_bytes())
    sources = [f"memory://in/{Path(p).name}" for p in image_files]
    res = Pipeline(load_image).run(sources, lambda s: s.replace("/in/", "/out/"), progress=False)
    assert (res.status == "ok").all()
    assert len(memfs.glob("/out/img*")) == 5


def test_result_frame_fed_back_retries_failed_rows(image_files, tmp_path):
    broken = {"flag": True}

    def flaky(image):
        if broken["flag"] and image.width % 2:
            raise RuntimeError("flaky")
        return image

    pipeline = Pipeline(load_image, ops=[flaky, report("width", lambda im: im.width, "Int64")])
    df = pd.DataFrame({"path": image_files, "label": list("abcde")})
    first = pipeline.run(df, to_png(tmp_path), inpath_col="path", progress=False)
    assert first.status.tolist() == ["ok", "error", "ok", "error", "ok"]
    broken["flag"] = False
    failed = first[first.status == "error"]
    retry = pipeline.run(failed, to_png(tmp_path), inpath_col="path", progress=False)
    assert list(retry.columns) == list(first.columns)  # replaced, not duplicated
    assert retry.status.tolist() == ["ok", "ok"]
    assert retry.error.isna().all()
    assert retry.index.tolist() == [1, 3]
    combined = first.copy()
    combined.update(retry)
    assert (combined.status == "ok").all()


def test_clash_with_a_result_column_is_a_value_error(image_files, tmp_path):
    df = pd.DataFrame({"path": image_files, "status": "new"})
    with pytest.raises(ValueError, match=r"rename them first.*'status': 'status_in'"):
        width_pipeline().run(df, to_png(tmp_path), inpath_col="path")
    for core in ("outpath", "error", "error_type"):
        with pytest.raises(cd.ColumnError, match=rf"\['{core}'\].*rename them first"):
            width_pipeline().run(
                df.drop(columns="status").assign(**{core: "x"}), to_png(tmp_path), inpath_col="path"
            )


def test_input_columns_named_like_stage_results_are_kept(image_files, tmp_path):
    # a LAION-style table: its own width/height, which the run's reporters also add
    df = pd.DataFrame({"path": image_files, "width": 1, "height": 2})
    res = width_pipeline().run(df, to_png(tmp_path / "a"), inpath_col="path", progress=False)
    assert list(res.columns) == ["path", "width", "height", *RESULT_COLUMNS, "width_result"]
    assert res.width.tolist() == [1] * 5  # the user's, untouched
    assert res.height.tolist() == [2] * 5
    assert (res.status == "ok").all()
    for outpath, width in zip(res.outpath, res.width_result, strict=True):
        with Image.open(outpath) as image:
            assert image.width == width
    # the suffix is a run knob; a second run on the result replaces its own column
    again = width_pipeline().run(
        res, to_png(tmp_path / "b"), inpath_col="path", skip_existing=False, progress=False
    )
    assert list(again.columns) == list(res.columns)
    assert again.width.tolist() == [1] * 5
    other = width_pipeline().run(
        df, to_png(tmp_path / "c"), inpath_col="path", options=cd.RunOptions(result_suffix="_px")
    )
    assert other.width_px.tolist() == res.width_result.tolist()
    # lazy dask input: the same names
    lazy = width_pipeline().run(
        dd.from_pandas(df, npartitions=2), to_png(tmp_path / "d"), inpath_col="path"
    )
    assert list(lazy.columns) == list(res.columns)
    assert lazy.compute().width.tolist() == [1] * 5
    with pytest.raises(cd.ColumnError, match="result_suffix="):
        width_pipeline().run(
            df.assign(width_result=0), to_png(tmp_path / "e"), inpath_col="path", progress=False
        )


def test_source_column_named_like_a_result_column(image_files, tmp_path):
    first = width_pipeline().run(image_files, to_png(tmp_path / "a"), progress=False)
    # a result frame fed back: its outpath becomes the sources, under a free name
    second = width_pipeline().run(first, to_png(tmp_path / "b"), inpath_col="outpath")
    assert list(second.columns) == ["inpath", "inpath_1", *RESULT_COLUMNS, "width"]
    assert second.inpath_1.tolist() == first.outpath.tolist()
    assert (second.status == "ok").all()
    # a user's own column named like a result column is refused, with how to rename
    own = pd.DataFrame({"outpath": image_files})
    with pytest.raises(cd.ColumnError, match=r"rename them first.*'outpath': 'outpath_in'"):
        width_pipeline().run(own, to_png(tmp_path / "c"), inpath_col="outpath")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"inpath_col": "nope"}, cd.ColumnError, r"no column\(s\) \['nope'\].*\['path', 'label'\]"),
        ({}, ValueError, r"say which holds the sources with inpath_col="),
        ({"inpath_col": "path", "n_jobs": 0}, ValueError, "n_jobs must be at least 1"),
        ({"inpath_col": "path", "n_jobs": 2.5}, TypeError, "n_jobs must be a positive int"),
        ({"inpath_col": "path", "npartitions": 2}, TypeError, "field of RunOptions: pass options="),
    ],
)
def test_bad_arguments_fail_before_anything_runs(kwargs, error, match, tmp_path):
    loads = []
    pipeline = Pipeline(lambda p: loads.append(p))
    df = pd.DataFrame({"path": ["a.png"], "label": ["x"]})
    with pytest.raises(error, match=match):
        pipeline.run(df, to_png(tmp_path), **kwargs)
    assert loads == []


def test_odd_inputs_are_refused(tmp_path):
    pipeline = Pipeline(load_image)
    with pytest.raises(TypeError, match="wrap it in a list"):
        pipeline.run("one.png", to_png(tmp_path))
    with pytest.raises(TypeError, match="iterable"):
        pipeline.run(42, to_png(tmp_path))
    with pytest.raises(TypeError, match="outpath_func must be callable"):
        pipeline.run(["a.png"], "out/")
    # the fifth argument names the source column (the original creevey took exceptions there)
    for odd in ((OSError,), OSError, 3):
        with pytest.raises(TypeError, match=r"^inpath_col names the source column \(a str\), got"):
            pipeline.run(["a.png"], to_png(tmp_path), 1, True, odd)
        with pytest.raises(TypeError, match=r"^inpath_col names the source column \(a str\), got"):
            pipeline.run(pd.Series(["a.png"]), to_png(tmp_path), 1, True, odd)


def test_outpath_func_errors_are_row_errors(image_files, tmp_path):
    def outpath(source):
        if source.endswith("img1.jpg"):
            raise KeyError("no name for img1")
        return to_png(tmp_path)(source)

    res = Pipeline(load_image).run(image_files, outpath, progress=False)
    assert res.status.tolist() == ["ok", "error", "ok", "ok", "ok"]
    assert res.error.iloc[1] == "KeyError: 'no name for img1'"


def test_outpath_func_may_return_a_path_object(image_files, tmp_path):
    res = Pipeline(load_image).run(
        image_files, lambda s: tmp_path / (Path(s).stem + ".png"), progress=False
    )
    assert (res.status == "ok").all()
    assert res.outpath.iloc[0] == str(tmp_path / "img0.png")


@pytest.mark.parametrize("n_jobs", [1, 3, 16])
def test_n_jobs_and_partitions_do_not_change_the_result(n_jobs, tmp_path):
    sources = [f"src-{i}" for i in range(57)]
    seen = []
    pipeline = Pipeline(
        lambda s: seen.append(s) or s,
        ops=[report("length", len, "Int64")],
        write_func=lambda image, outpath: None,
    )
    res = pipeline.run(sources, lambda s: str(tmp_path / s), n_jobs=n_jobs, progress=False)
    assert res.inpath.tolist() == sources
    assert res.length.tolist() == [len(s) for s in sources]
    assert sorted(seen) == sorted(sources)


def test_processes_strategy(image_files, tmp_path):
    res = width_pipeline(parallel_strategy="processes").run(
        image_files, to_png(tmp_path), progress=False, options=cd.RunOptions(npartitions=2)
    )
    assert (res.status == "ok").all()
    assert res.width.tolist() == [40, 41, 42, 43, 44]


def test_reporter_of_the_wrong_type_does_not_crash_the_run(image_files, tmp_path, caplog):
    pipeline = Pipeline(load_image, ops=[report("width", lambda im: "wide", "Int64")])
    res = pipeline.run(image_files, to_png(tmp_path), progress=False)
    assert (res.status == "ok").all()
    assert res.width.isna().all()
    assert "width" in caplog.text


def test_summary_is_logged_and_warns_when_most_rows_fail(tmp_path, caplog):
    caplog.set_level("INFO", logger="creevey_dask")
    sources = [str(tmp_path / f"missing{i}.png") for i in range(3)]
    Pipeline(load_image).run(sources, to_png(tmp_path / "out"), progress=False)
    assert "3 rows: 0 ok, 0 skipped, 3 error" in caplog.text
    assert any(r.levelname == "WARNING" and "3 of 3 rows" in r.message for r in caplog.records)


def test_format_error_is_one_bounded_line():
    assert format_error(ValueError("")) == "ValueError"
    long = format_error(OSError("x" * 2000))
    assert len(long) == 500
    assert long.endswith("…")


def test_result_columns_constant():
    assert list(RESULT_COLUMNS) == ["outpath", "status", "error", "error_type"]


@pytest.mark.slow
def test_local_cluster_with_two_worker_processes(local_cluster_client, image_files, tmp_path):
    client = local_cluster_client
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2
    assert os.getpid() not in pids
    sources = image_files * 4
    outpath = lambda s: str(tmp_path / "out" / (Path(s).stem + ".png"))  # noqa: E731
    res = width_pipeline().run(
        sources, outpath, skip_existing=False, options=cd.RunOptions(npartitions=4)
    )
    assert len(res) == 20
    assert set(res.status) == {"ok"}
    # dask input on the cluster: lazy until computed, then computed by the workers
    pids_seen = []

    def load(path):
        pids_seen.append(os.getpid())
        return load_image(path)

    ddf = dd.from_pandas(pd.DataFrame({"path": image_files}), npartitions=5)
    lazy = Pipeline(load).run(
        ddf, lambda s: str(tmp_path / "dask" / Path(s).name), inpath_col="path"
    )
    out = client.compute(lazy).result()
    assert (out.status == "ok").all()
    assert pids_seen == []  # the loads ran in the worker processes, not here
    assert len(_visible(tmp_path / "dask")) == 5


@pytest.mark.slow
def test_two_runs_at_once_on_one_client_get_their_own_rows(local_cluster_client, tmp_path):
    import threading

    client = local_cluster_client
    sources = {}
    for name, colour in (("red", (250, 0, 0)), ("blue", (0, 0, 250))):
        folder = tmp_path / name
        folder.mkdir()
        sources[name] = []
        for i in range(6):
            path = folder / f"{i}.png"
            Image.new("RGB", (20 + i, 10), colour).save(path)
            sources[name].append(str(path))

    def slow(image):
        time.sleep(0.2)  # both runs' tasks are on the cluster at the same time
        return image

    results = {}

    def run(name):
        with client.as_current():
            results[name] = Pipeline(load_image, ops=[slow]).run(
                sources[name],
                lambda s, name=name: str(tmp_path / f"out-{name}" / Path(s).name),
                progress=False,
                options=cd.RunOptions(npartitions=1),
            )

    threads = [threading.Thread(target=run, args=(name,)) for name in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, colour in (("red", (250, 0, 0)), ("blue", (0, 0, 250))):
        result = results[name]
        assert list(result["inpath"]) == sources[name]
        assert (result["status"] == "ok").all()
        for outpath in result["outpath"]:
            assert f"out-{name}" in outpath
            with Image.open(outpath) as image:
                assert image.convert("RGB").getpixel((0, 0)) == colour


def test_runs_stay_local_without_a_current_client(image_files, tmp_path):
    """The session's cluster fixture must not leak into other tests."""
    seen = []
    pipeline = Pipeline(lambda s: seen.append(os.getpid()) or load_image(s))
    pipeline.run(image_files, to_png(tmp_path), progress=False)
    assert set(seen) == {os.getpid()}


def test_a_run_sweeps_temporaries_left_by_killed_writers(image_files, tmp_path):
    import subprocess
    import sys

    outdir = tmp_path / "out"
    outdir.mkdir()
    dead_pid = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    leftover = outdir / f".img0.png.{cd.storage.fs._HOST}-{dead_pid}-deadbeef.creevey-tmp"
    leftover.write_bytes(b"half a PNG")
    res = Pipeline(load_image).run(image_files, to_png(outdir), progress=False)
    assert (res.status == "ok").all()
    assert sorted(p.name for p in outdir.iterdir()) == [f"img{i}.png" for i in range(5)]


def test_rows_that_failed_upstream_carry_the_earlier_error(image_files, tmp_path):
    """A result frame fed into the next step: rows without a source say why."""
    first = Pipeline(load_image).run(
        [image_files[0], str(tmp_path / "gone.png")], to_png(tmp_path / "a"), progress=False
    )
    assert first.status.tolist() == ["ok", "error"]
    second = Pipeline(load_image).run(
        first, to_png(tmp_path / "b"), inpath_col="outpath", progress=False
    )
    # the earlier results are replaced and the aside column is gone again
    assert list(second.columns) == ["inpath", "inpath_1", *RESULT_COLUMNS]
    assert second.status.tolist() == ["ok", "error"]
    assert second.error.iloc[1] == (
        "UpstreamError: the previous step failed: " + first.error.iloc[1]
    )
    # a third step keeps the first cause instead of nesting the messages
    third = Pipeline(load_image).run(
        second.drop(columns=["inpath_1"]),
        to_png(tmp_path / "c"),
        inpath_col="outpath",
        progress=False,
    )
    assert third.error.iloc[1] == second.error.iloc[1]
    assert isinstance(cd.UpstreamError("x"), ValueError)


def test_a_run_with_progress_ends_with_one_line_on_stderr(image_files, tmp_path, capfd):
    missing = str(tmp_path / "missing.jpg")
    df = pd.DataFrame({"path": [*image_files, missing, missing.replace("missing", "gone")]})
    res = width_pipeline().run(df, to_png(tmp_path / "out"), inpath_col="path", progress=True)
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("creevey: ")]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("creevey: 7 rows in ")
    assert " s: 5 ok, 0 skipped, 2 error; 5 images written (" in line
    # the two missing files are one cause: their paths differ, nothing else
    assert "; top errors: 2 x FileNotFoundError: " in line
    rate = float(line.split("images written (", 1)[1].split(" images/s", 1)[0])
    assert rate > 0  # images written / seconds: the arithmetic is checked in the next test
    assert "creevey: " not in out
    # a rerun: all skipped; without progress, no line
    width_pipeline().run(df, to_png(tmp_path / "out"), inpath_col="path", progress=True)
    assert ": 0 ok, 5 skipped, 2 error;" in capfd.readouterr().err
    width_pipeline().run(df, to_png(tmp_path / "out"), inpath_col="path", progress=False)
    assert "creevey: " not in capfd.readouterr().err
    assert res.status.tolist() == ["ok"] * 5 + ["error"] * 2


def test_summary_line_counts_root_causes() -> None:
    from creevey_dask.engine.summary import error_causes, summary_line

    upstream = "UpstreamError: the previous step failed: "
    errors = [
        "HttpError: HTTP 404 Not Found",
        upstream + "HttpError: HTTP 404 Not Found",
        upstream + "HttpError: HTTP 503 Service Unavailable (after 4 attempts)",
        "ImageDecodeError: " + "x" * 200,
    ]
    result = pd.DataFrame({"status": ["ok", *["error"] * 4], "error": [None, *errors]})
    assert error_causes(result.error, top=2) == [
        ("HttpError: HTTP 404 Not Found", 2),
        ("HttpError: HTTP 503 Service Unavailable (after 4 attempts)", 1),
    ]
    line = summary_line(result, 0.5, top=5)
    assert line.startswith(
        "creevey: 5 rows in 0.5 s: 1 ok, 0 skipped, 4 error; 1 images written (2.0 images/s); "
    )
    assert "; top errors: 2 x HttpError: HTTP 404 Not Found; 1 x HttpError: HTTP 503 " in line
    assert "UpstreamError" not in line
    assert "\n" not in line
    assert ("1 x ImageDecodeError: " + "x" * 61 + "…") in line  # causes cut to 80 characters
    assert (
        summary_line(result.iloc[:1], 0.0)
        == "creevey: 1 rows in 0.0 s: 1 ok, 0 skipped, 0 error; 1 images written (- images/s)"
    )


# ---------------------------------------------------------------------------------------
# memory:// is one process's memory: rows in other processes would lose their writes.
def _memory_run(sources, outdir: str, **kwargs):
    return resize(
        pd.DataFrame({"path": sources}),
        outdir,
        "path",
        progress=False,
        **kwargs,
        shape=cd.ops.resize(max_dim=20),
    )


@pytest.mark.parametrize("output_format", ["files", "webdataset"])
def test_memory_outdir_with_processes_is_refused_up_front(image_files, memfs, output_format):
    with pytest.raises(ValueError, match=r"memory://.*threads"):
        _memory_run(
            image_files,
            "memory://proc",
            options=cd.RunOptions(parallel_strategy="processes"),
            output_format=output_format,
        )
    assert not memfs.exists("memory://proc")  # nothing written, nothing reported
    res = _memory_run(image_files, "memory://thr", output_format=output_format)
    assert (res.status == "ok").all()
    for path in res.outpath:  # threads: every ok row's output is visible to the caller
        assert memfs.exists(path)
        assert memfs.size(path) > 0


def test_memory_outdir_refused_with_a_client_of_worker_processes(
    local_cluster_client, image_files, memfs
):
    with pytest.raises(ValueError, match=r"Client's workers are other processes"):
        _memory_run(image_files, "memory://cluster")
    with pytest.raises(ValueError, match=r"Client's workers are other processes"):
        resize(
            dd.from_pandas(pd.DataFrame({"path": image_files}), npartitions=2),
            "memory://cluster",
            "path",
            shape=cd.ops.resize(max_dim=20),
        )
    assert not memfs.exists("memory://cluster")


def test_lazy_dask_memory_outdir_computed_on_processes_raises(image_files, memfs):
    ddf = dd.from_pandas(pd.DataFrame({"path": image_files}), npartitions=2)
    lazy = resize(ddf, "memory://lazy", "path", shape=cd.ops.resize(max_dim=20))
    with pytest.raises(ValueError, match=r"memory://.*another process"):
        lazy.compute(scheduler="processes")
    res = lazy.compute(scheduler="threads")
    assert (res.status == "ok").all()
    for path in res.outpath:
        with memfs.open(path) as f, Image.open(f) as im:
            assert max(im.size) == 20


# ---------------------------------------------------------------------------------------
# Clashing names in a dask partition: the row order decides, not thread timing.
class _SlowFor:
    """A loader that takes longer for sources under ``slow_dir`` (a picklable object)."""

    def __init__(self, slow_dir: str) -> None:
        self.slow_dir = slow_dir

    def __call__(self, source: str) -> Image.Image:
        if source.startswith(self.slow_dir):
            time.sleep(0.3)  # the first rows finish last
        return load_image(source)


def test_dask_partition_clashes_follow_row_order(tmp_path):
    from creevey_dask.storage.naming import UrlNamer, disambiguate

    sources = []
    for folder, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / folder).mkdir()
        for name in ("w", "x", "y"):
            path = tmp_path / folder / f"{name}.png"
            Image.new("RGB", (8, 6), colour).save(path)
            sources.append(str(path))
    ddf = dd.from_pandas(pd.DataFrame({"path": sources}), npartitions=1)
    pipeline = Pipeline(_SlowFor(str(tmp_path / "a")))
    for run in range(2):  # the same table twice: the same names
        namer = UrlNamer(str(tmp_path / f"out{run}"), ".png")
        res = pipeline.run(ddf, namer, inpath_col="path", n_jobs=6).compute()
        assert (res.status == "ok").all()
        expected = [namer(s) for s in sources[:3]]
        expected += [disambiguate(namer(s), s) for s in sources[3:]]
        assert res.outpath.tolist() == expected
        for source, outpath in zip(sources, res.outpath, strict=True):
            with Image.open(source) as want, Image.open(outpath) as got:
                assert got.getpixel((0, 0)) == want.getpixel((0, 0))


def test_error_causes_ignore_the_parts_that_vary_between_rows():
    from creevey_dask.engine.summary import error_causes
    from creevey_dask.exceptions import error_cause

    errors = pd.Series(
        [
            f"ImageFilteredError: min_image_size=64: the image is {w} x {h}, smaller"
            for w, h in [(40, 30), (20, 60), (63, 63)]
        ]
        + [f"DownloadConnectionError: cannot connect to 127.0.0.1:{p}" for p in (9, 4321, 65000)]
        + ["HttpError: HTTP 404 Not Found", "HttpError: HTTP 503 Service Unavailable"]
    )
    assert error_causes(errors, top=5) == [  # ties by name
        ("DownloadConnectionError: cannot connect to 127.0.0.1:N", 3),
        ("ImageFilteredError: min_image_size=64: the image is N x N, smaller", 3),
        ("HttpError: HTTP 404 Not Found", 1),
        ("HttpError: HTTP 503 Service Unavailable", 1),
    ]
    assert error_cause("OSError: wrote 12 of 2768 bytes in 1.5 s") == (
        "OSError: wrote 12 of N bytes in N s"
    )
