"""Pipeline construction and reporters."""

from __future__ import annotations

import pickle
from typing import ClassVar

import pytest
from PIL import Image

from creevey_dask import Pipeline, Reporter, load_image, record, report, write_image


def test_defaults():
    pipeline = Pipeline(load_image)
    assert pipeline.ops == []
    assert pipeline.write_func is write_image
    assert pipeline.parallel_strategy == "auto"
    assert pipeline.result_columns == {}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"load_func": "x"}, TypeError, "load_func must be callable"),
        ({"ops": [len, 3]}, TypeError, r"ops\[1\] must be callable"),
        ({"ops": 3}, TypeError, "ops must be a callable or a list of callables"),
        ({"ops": "grayscale"}, TypeError, "ops must be a callable or a list of callables"),
        ({"write_func": 1}, TypeError, "write_func must be callable"),
        (
            {"parallel_strategy": "gpu"},
            ValueError,
            r"not one of \['auto', 'threads', 'processes'\]",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kwargs = {"load_func": load_image, **kwargs}
    with pytest.raises(error, match=match):
        Pipeline(**kwargs)


def test_a_single_op_is_a_one_op_list(tmp_path):
    """Pipeline(ops=f), as the original creevey allowed, runs f on every row."""
    from creevey_dask import ops

    source = tmp_path / "a.png"
    Image.new("RGB", (6, 4), "red").save(source)
    pipeline = Pipeline(load_image, ops=ops.flip_horiz)
    assert pipeline.ops == [ops.flip_horiz]
    result = pipeline.run([str(source)], lambda p: str(tmp_path / "out.png"), progress=False)
    assert result["status"].tolist() == ["ok"]
    with Image.open(source) as src, Image.open(tmp_path / "out.png") as out:
        expected = src.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        assert out.tobytes() == expected.tobytes()


def test_reporter_passes_the_image_through_and_declares_its_column():
    reporter = report("width", lambda im: im.width, "Int64")
    image = Image.new("L", (7, 3))
    assert reporter(image) is image
    assert reporter.result_columns == {"width": "Int64"}
    assert isinstance(reporter, Reporter)


def test_reporters_pickle():
    reporter = report("mode", str, "string")
    clone = pickle.loads(pickle.dumps(reporter))
    assert (clone.name, clone.func, clone.dtype) == ("mode", str, "string")


def test_result_columns_in_stage_order_and_conflicts():
    class Loader:
        result_columns: ClassVar = {"http_status": "Int64"}

        def __call__(self, source):
            return source

    pipeline = Pipeline(Loader(), ops=[report("a", len, "Int64"), report("b", len, "Int64")])
    assert list(pipeline.result_columns) == ["http_status", "a", "b"]
    conflicting = Pipeline(load_image, ops=[report("a", len, "Int64"), report("a", str, "string")])
    with pytest.raises(ValueError, match="declared as 'Int64'"):
        _ = conflicting.result_columns


def test_bad_reporters():
    with pytest.raises(TypeError, match="name"):
        report("", len)
    with pytest.raises(TypeError, match="callable"):
        report("x", 3)


def test_record_outside_a_run_is_ignored():
    record(anything=1)


def test_load_passes_the_draft_hint_to_loaders_that_take_it():
    class Op:
        def draft_size(self, size):
            return (size[0] // 2, size[1] // 2)

        def __call__(self, image):
            return image

    class DraftLoader:
        accepts_draft = True

        def __call__(self, source, draft=None):
            return draft

    op = Op()
    hint = Pipeline(DraftLoader(), ops=[op]).load("x")
    assert hint((10, 8)) == (5, 4)
    assert Pipeline(DraftLoader()).load("x") is None
    assert Pipeline(lambda s: s.upper(), ops=[op]).load("x") == "X"


@pytest.mark.parametrize("output_format", ["files", "parquet"])
def test_a_verifying_loader_needs_its_digest_column_up_front(image_files, tmp_path, output_format):
    """Pipeline.run binds a loader's verify_hash: a table without the column is refused
    before any row runs, naming it (not a KeyError from a partition)."""
    import pandas as pd

    from creevey_dask import ColumnError, ImageWriter
    from creevey_dask.sources.hashing import with_source_hash

    pipeline = Pipeline(
        with_source_hash(load_image, None, ("sha", "sha256")), write_func=ImageWriter("png")
    )
    out = tmp_path / "out"
    outpath = str(out) if output_format != "files" else (lambda s: str(out / "x.png"))
    for inpaths in (pd.DataFrame({"path": image_files, "label": "a"}), image_files):
        with pytest.raises(ColumnError, match=r"verify_hash names the column 'sha', which"):
            pipeline.run(inpaths, outpath, inpath_col="path", output_format=output_format)
    assert not out.exists()


def test_the_folder_of_shards_may_be_a_path(image_files, tmp_path):
    """As download(outdir=Path) and resize(outdir=Path) do, Pipeline.run takes a Path."""
    from creevey_dask import ImageWriter, RunOptions, read_shards

    pipeline = Pipeline(load_image, write_func=ImageWriter("png"))
    result = pipeline.run(
        image_files,
        tmp_path / "shards",
        output_format="webdataset",
        options=RunOptions(progress=False),
    )
    assert (result.status == "ok").all()
    assert len(read_shards(str(tmp_path / "shards"))) == len(image_files)
