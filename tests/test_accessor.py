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
