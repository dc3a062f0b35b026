"""Mistakes caught before the first row, in public terms: an outdir that cannot be
written, ops that are not ``image -> image``, keyword typos, shapes the CLI takes."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import creevey_dask as cd
from creevey_dask import Pipeline, load_image, ops
from creevey_dask.cli.main import main


def _frame(image_files: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"path": image_files, "caption": "a cat"})


@pytest.mark.parametrize("under", [False, True])
def test_an_outdir_that_is_a_file_is_refused_before_any_row(image_files, tmp_path, under):
    afile = tmp_path / "afile"
    afile.write_bytes(b"not a folder")
    outdir = str(afile / "sub") if under else str(afile)
    calls = []

    def load(path):
        calls.append(path)
        return load_image(path)

    with pytest.raises(ValueError, match=r"outdir .*afile.* a file, not a folder"):
        _frame(image_files).creevey.resize(outdir, shape=cd.ops.resize(max_dim=8))
    with pytest.raises(ValueError, match="a file, not a folder"):
        cd.download(["http://127.0.0.1:9/a.jpg"], outdir)
    with pytest.raises(ValueError, match="a file, not a folder"):
        Pipeline(load).run(image_files, lambda p: os.path.join(outdir, Path(p).name))
    assert calls == []  # no row ran
    assert afile.read_bytes() == b"not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "images"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_outdir_that_is_not_writable_is_refused(image_files, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="is not writable"):
            _frame(image_files).creevey.resize(str(locked / "out"), shape=cd.ops.resize(max_dim=8))
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (ops.resize, r"ops\[0\] is ops.resize, which makes an op.*ops.resize\(\.\.\.\)"),
        (ops.trim_bottom, r"ops\[0\] is ops.trim_bottom, which makes an op"),
        (cd.report, r"ops\[0\] is report, which makes an op"),
        (lambda: None, r"ops\[0\] \(.*\(\)\) must take one argument, the image"),
        (ops.hamming, r"ops\[0\] \(hamming\(a: .*, b: .*\) must take one argument"),
        ("grayscale", "must be a callable or a list of callables"),
    ],
)
def test_ops_that_are_not_image_to_image_are_refused_up_front(image_files, tmp_path, bad, match):
    with pytest.raises(TypeError, match=match):
        _frame(image_files).creevey.resize(
            str(tmp_path / "out"),
            ops=[bad] if not isinstance(bad, str) else bad,
            shape=cd.ops.resize(max_dim=8),
        )
    with pytest.raises(TypeError, match=match.replace("ops\\[0\\]", "ops\\[\\d\\]")):
        cd.download(
            ["http://127.0.0.1:9/a.jpg"],
            str(tmp_path / "d"),
            ops=[bad] if not isinstance(bad, str) else bad,
        )
    assert not (tmp_path / "out").exists()
    # what is fine: ops made by the factories, plain image functions, one-argument lambdas
    Pipeline(load_image, ops=[ops.resize(shape=8), ops.grayscale, lambda im: im])


def test_a_keyword_typo_names_the_public_function_and_the_nearest_keyword(image_files, tmp_path):
    df = _frame(image_files)
    cases = [
        (
            lambda: df.creevey.download(str(tmp_path), caption_column="caption"),
            "df.creevey.download",
            "caption_col",
        ),
        (lambda: df.creevey.resize(str(tmp_path), shap=(8, 8)), "df.creevey.resize", "shape"),
        (
            lambda: df.path.creevey.download(str(tmp_path), n_job=2),
            "series.creevey.download",
            "n_jobs",
        ),
        (lambda: cd.download(df, str(tmp_path), url_column="path"), "download", "url_col"),
        (
            lambda: Pipeline(load_image).run(df, str, inpath_column="path"),
            "Pipeline.run",
            "inpath_col",
        ),
        (lambda: df.creevey.split(valid_sise=0.2), "df.creevey.split", "valid_size"),
    ]
    for call, public, nearest in cases:
        with pytest.raises(TypeError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{public}() got an unexpected keyword argument "), message
        assert f"did you mean {nearest!r}?" in message, message
        if nearest == "caption_col":  # a field of an option object: where it goes
            assert message.endswith("pass output_format=ShardOptions(..., caption_col=...)")
        else:
            assert message.endswith(f"did you mean {nearest!r}?"), message
        assert "_Runs" not in message
    with pytest.raises(TypeError, match=r"it takes \["):
        df.creevey.resize(str(tmp_path), zzzzzz=1)


def test_api_and_cli_take_the_same_shapes(image_files, tmp_path):
    api = _frame(image_files).creevey.resize(str(tmp_path / "api"), shape=16, progress=False)
    pd.DataFrame({"path": image_files}).to_csv(tmp_path / "in.csv", index=False)
    argv = ["resize", str(tmp_path / "in.csv"), "--outdir", str(tmp_path / "cli")]
    assert (
        main([*argv, "--shape", "16", "--no-progress", "--output", str(tmp_path / "r.parquet")])
        == 0
    )
    cli = pd.read_parquet(tmp_path / "r.parquet")
    for a, c in zip(api.outpath, cli.outpath, strict=True):
        with Image.open(a) as one, Image.open(c) as two:
            assert one.size == two.size == (16, 16)
    for bad in [(16,), "16", 0, True]:
        with pytest.raises((ValueError, TypeError), match="shape"):
            ops.resize(shape=bad)
