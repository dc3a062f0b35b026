"""The df.creevey accessor."""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import pandas as pd
import pytest

import creevey_dask
from creevey_dask import Pipeline, load_image


def test_registered_on_pandas_and_dask():
    df = pd.DataFrame({"path": ["a"]})
    assert isinstance(df.creevey, creevey_dask.CreeveyAccessor)
    assert df.creevey.frame is df
    ddf = dd.from_pandas(df, npartitions=1)
    assert isinstance(ddf.creevey, creevey_dask.CreeveyAccessor)


def test_run_on_pandas_and_dask(image_files, tmp_path):
    df = pd.DataFrame({"path": image_files})
    outpath = lambda s: str(tmp_path / (Path(s).stem + ".png"))  # noqa: E731
    res = df.creevey.run(Pipeline(load_image), inpath_col="path", outpath_func=outpath)
    assert (res.status == "ok").all()
    lazy = dd.from_pandas(df, npartitions=2).creevey.run(
        Pipeline(load_image), inpath_col="path", outpath_func=outpath
    )
    assert isinstance(lazy, dd.DataFrame)
    assert (lazy.compute().status == "skipped").all()


def test_missing_column_is_named():
    df = pd.DataFrame({"url": ["a"]})
    with pytest.raises(ValueError, match=r"no column\(s\) \['path'\].*\['url'\]"):
        df.creevey.run(Pipeline(load_image), inpath_col="path", outpath_func=str)


def test_series_accessor_downloads_and_resizes(image_server, fast_http, tmp_path):
    """Series.creevey, pandas and dask: the Series is the source column, named after it."""
    urls = pd.Series(
        [image_server.url("/img/big.jpg"), image_server.url("/img/icon.png")], name="link"
    )
    assert isinstance(urls.creevey, creevey_dask.CreeveySeriesAccessor)
    got = urls.creevey.download(str(tmp_path / "d"), http_options=fast_http, progress=False)
    assert list(got.columns[:3]) == ["link", "outpath", "status"]
    assert got["status"].tolist() == ["ok", "ok"]
    for outpath in got["outpath"]:
        assert Path(outpath).is_file()
    lazy = dd.from_pandas(urls, npartitions=2).creevey.download(
        str(tmp_path / "lazy"), http_options=fast_http
    )
    assert isinstance(lazy, dd.DataFrame)
    assert lazy.compute()["status"].tolist() == ["ok", "ok"]

    paths = pd.Series(got["outpath"].tolist())  # unnamed: the column is "path"
    small = paths.creevey.resize(str(tmp_path / "s"), shape=(8, 8), progress=False)
    assert small["status"].tolist() == ["ok", "ok"]
    assert "path" in small.columns
    ran = paths.creevey.run(Pipeline(load_image), lambda p: str(tmp_path / "r" / Path(p).name))
    assert ran["status"].tolist() == ["ok", "ok"]
    with pytest.raises(ValueError, match="this Series is the source column 'link'"):
        urls.creevey.download(str(tmp_path / "x"), url_col="url")


def test_run_options_reach_the_run(image_files, tmp_path):
    """One RunOptions object, or its shortcuts, steers every layer below."""
    df = pd.DataFrame({"path": image_files})
    out = lambda s: str(tmp_path / (Path(s).stem + ".png"))  # noqa: E731
    first = df.creevey.run(Pipeline(load_image), "path", out, options=cd_options(progress=False))
    assert set(first["status"]) == {"ok"}
    again = df.creevey.run(Pipeline(load_image), "path", out, options=cd_options(progress=False))
    assert set(again["status"]) == {"skipped"}
    redo = df.creevey.run(
        Pipeline(load_image), "path", out, options=cd_options(progress=False, skip_existing=False)
    )
    assert set(redo["status"]) == {"ok"}
    # a shortcut overrides the object's field
    shortcut = df.creevey.run(
        Pipeline(load_image),
        "path",
        out,
        skip_existing=True,
        options=cd_options(progress=False, skip_existing=False),
    )
    assert set(shortcut["status"]) == {"skipped"}
    resized = df.creevey.resize(
        str(tmp_path / "small"),
        shape=(4, 4),
        options=cd_options(progress=False, parallel_strategy="processes", npartitions=2),
    )
    assert set(resized["status"]) == {"ok"}


def cd_options(**fields):
    return creevey_dask.RunOptions(**fields)


ACCESSOR_FUNCTIONS = [
    ("download", "download"),
    ("resize", "resize.resize"),
    ("split", "split"),
    ("imagenet_symlinks", "imagenet_symlinks"),
    ("duplicates", "duplicates"),
    ("leaks", "leaks"),
    ("contact_sheet", "contact_sheet"),
    ("summary_figure", "summary_figure"),
    ("summary_table", "summary_table"),
]


def _function(dotted: str):
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(f"creevey_dask.{module}".rstrip(".")), name)


@pytest.mark.parametrize(("method", "function"), ACCESSOR_FUNCTIONS)
def test_accessor_methods_take_the_functions_parameters_and_docs(method, function):
    """No parameter list is written twice: a method is its function minus the frame."""
    import inspect

    func = _function(function)
    for accessor in (creevey_dask.CreeveyAccessor, creevey_dask.CreeveySeriesAccessor):
        if not hasattr(accessor, method):
            continue
        mine = list(inspect.signature(getattr(accessor, method)).parameters.values())
        theirs = list(inspect.signature(func).parameters.values())
        assert mine[0].name == "self"
        assert mine[1:] == theirs[1:], (accessor, method)
        doc = getattr(accessor, method).__doc__
        assert inspect.cleandoc(func.__doc__).splitlines()[0] in doc
        first = theirs[0].name
        assert f"\n{first} :" not in doc  # the frame's entry is dropped


def test_the_docs_link_the_function_a_method_calls():
    """``df.creevey.resize`` is ``creevey_dask.resize.resize`` (``creevey_dask.resize`` is
    the module); ``df.creevey.download`` is ``creevey_dask.download``."""
    df = pd.DataFrame({"path": ["a.jpg"]})
    assert ":func:`creevey_dask.resize.resize` called on this frame" in df.creevey.resize.__doc__
    assert ":func:`creevey_dask.download` called on this Series" in df.path.creevey.download.__doc__
    assert ":func:`creevey_dask.split` called on this frame" in df.creevey.split.__doc__


def test_a_typo_names_the_public_method():
    df = pd.DataFrame({"url": ["http://127.0.0.1:9/a.jpg"]})
    with pytest.raises(TypeError, match=r"df\.creevey\.download\(\).*'url_col'"):
        df.creevey.download("out", url_column="url")
    with pytest.raises(TypeError, match=r"series\.creevey\.resize\(\).*'shape'"):
        df["url"].creevey.resize("out", shap=5)


def test_a_wrong_call_names_the_public_method():
    """Missing, extra or doubled arguments are named as the user called them."""
    df = pd.DataFrame({"path": ["a.jpg"]})
    pipeline = Pipeline(load_image)
    cases = [
        (lambda: df.creevey.run(pipeline, "out"), r"^df\.creevey\.run\(\) missing .*'outpath_f"),
        (lambda: df.path.creevey.run(pipeline), r"^series\.creevey\.run\(\) missing .*'outpath_f"),
        (
            lambda: df.creevey.run(pipeline, "path", str, 1, True, 3),
            r"^df\.creevey\.run\(\) too many",
        ),
        (lambda: df.creevey.resize("out", "path", 8), r"^df\.creevey\.resize\(\) too many"),
        (
            lambda: df.path.creevey.download("out", "path", url_col="path"),
            r"^series\.creevey\.download\(\) multiple values for argument 'url_col'",
        ),
    ]
    for call, match in cases:
        with pytest.raises(TypeError, match=match):
            call()
    with pytest.raises(TypeError, match=r"'inpath_col'; this Series is the source column"):
        df.path.creevey.run(pipeline, str, inpath_col="path")


def test_the_seed_resize_keeps_resize_defaults():
    import inspect

    from creevey_dask.resize import resize

    mine = inspect.signature(creevey_dask.resize_multiple_files).parameters
    theirs = inspect.signature(resize).parameters
    for name, param in mine.items():
        if name in theirs and name not in ("path_col", "shape"):
            assert param.default == theirs[name].default, name
