"""The result schema: its constants and the one wording of a missing column (the import
graph it untangles is checked by tests/test_layers.py)."""

from __future__ import annotations

import pathlib

import pandas as pd
import pytest

import creevey_dask as cd
from creevey_dask import schema


def test_pipeline_has_no_process_method() -> None:
    assert not hasattr(cd.Pipeline, "process")  # dead code, removed


def test_schema_constants_are_the_public_ones() -> None:
    assert cd.RESULT_COLUMNS is schema.RESULT_COLUMNS
    assert cd.STATUSES == ("ok", "skipped", "error")
    assert schema.RESULT_COLUMNS["status"] == pd.CategoricalDtype(["ok", "skipped", "error"])


def test_every_missing_column_check_has_one_wording_and_type(tmp_path: pathlib.Path) -> None:
    df = pd.DataFrame({"a": ["x.png"], "b": ["cat"]})
    calls = [
        ("inpath_col", lambda: cd.Pipeline(cd.load_image).run(df, str, inpath_col="nope")),
        ("path_col", lambda: df.creevey.resize(str(tmp_path), path_col="nope", shape=(4, 4))),
        ("url_col", lambda: cd.download(df, str(tmp_path), url_col="nope")),
        ("groupby", lambda: cd.split(df, valid_size=0.5, groupby="nope")),
        (
            "label_colname",
            lambda: cd.create_imagenet_style_symlinks(df, "nope", "a", 0.5, str(tmp_path / "t")),
        ),
        ("path_col", lambda: cd.contact_sheet(df, path_col="nope", caption_cols=[])),
    ]
    for argument, call in calls:
        with pytest.raises(cd.ColumnError) as info:
            call()
        expected = f"the frame has no column(s) ['nope'] ({argument}='nope'); its columns are"
        assert str(info.value).startswith(expected), str(info.value)
