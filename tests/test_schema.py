"""The leaf modules (result schema, row context) and the import graph they untangle."""

from __future__ import annotations

import ast
import pathlib

import pandas as pd
import pytest

import creevey_dask as cd
from creevey_dask import schema

PACKAGE = pathlib.Path(cd.__file__).parent


def _our_imports(module: str, *, runtime_only: bool) -> set[str]:
    """The creevey_dask modules that ``module`` imports (anywhere, or only at run time)."""
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text())
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(n) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            package = module.split(".")[: -node.level]
            if node.module:
                found.add(".".join([*package, *node.module.split(".")][:2]))
            else:
                found |= {".".join([*package, alias.name]) for alias in node.names}
        elif node.module and node.module.startswith("creevey_dask"):
            found.add(node.module.split(".")[1] if "." in node.module else "__init__")
    return found


@pytest.mark.parametrize("leaf", ["schema", "engine.rows"])
def test_leaf_modules_import_nothing_of_ours(leaf: str) -> None:
    assert _our_imports(leaf, runtime_only=False) == set()


def test_pipeline_engine_imagefile_have_no_import_cycle() -> None:
    graph = {
        m: _our_imports(m, runtime_only=True)
        for m in ("engine.pipeline", "engine.runner", "image.imagefile")
    }
    assert "engine.pipeline" not in graph["engine.runner"], graph["engine.runner"]
    assert "engine.pipeline" not in graph["image.imagefile"], graph["image.imagefile"]
    assert "engine.runner" not in graph["image.imagefile"], graph["image.imagefile"]
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
