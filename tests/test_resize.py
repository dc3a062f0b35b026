"""Bulk resizing: resize_multiple_files, df.creevey.resize, bad inputs, memory://, chaining."""

from __future__ import annotations

import hashlib
import io
import operator
import os
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

import creevey_dask
from creevey_dask import RunOptions, ops, resize_multiple_files
from creevey_dask.image.imagefile import decode_image
from creevey_dask.resize import KeepFilename, resize
from creevey_dask.storage.fs import TEMP_SUFFIX
from creevey_dask.storage.naming import disambiguate


def load(path):
    """Decode a file without leaving it open."""
    return decode_image(Path(path).read_bytes())


def encode(image, fmt="JPEG", **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def photos(tmp_path: Path, photo) -> list[str]:
    """Eight JPEG/PNG/WebP photos of assorted sizes and orientations."""
    folder = tmp_path / "photos"
    folder.mkdir()
    sizes = [(640, 480), (480, 640), (300, 300), (1001, 667), (120, 90), (800, 600)]
    paths = []
    for i, size in enumerate(sizes):
        path = folder / f"photo_{i}.jpg"
        path.write_bytes(encode(photo(*size, seed=i), "JPEG", quality=92))
        paths.append(str(path))
    (folder / "graphic.png").write_bytes(encode(photo(200, 100, seed=7, mode="RGBA"), "PNG"))
    (folder / "picture.webp").write_bytes(encode(photo(260, 200, seed=8), "WEBP"))
    return [*paths, str(folder / "graphic.png"), str(folder / "picture.webp")]


def test_resize_multiple_files_keeps_filenames(photos, tmp_path, psnr):
    outdir = tmp_path / "out"
    result = resize_multiple_files(photos, (64, 96), str(outdir), n_jobs=3, progress=False)
    assert isinstance(result, pd.DataFrame)
    assert list(result.columns) == [
        "path",
        "outpath",
        "status",
        "error",
        "error_type",
        "width",
        "height",
    ]
    assert result["status"].tolist() == ["ok"] * len(photos)
    assert (result["width"] == 96).all()
    assert (result["height"] == 64).all()
    assert result["outpath"].tolist() == [str(outdir / os.path.basename(p)) for p in photos]
    for source, outpath in zip(result["path"], result["outpath"], strict=True):
        out = load(outpath)
        assert out.size == (96, 64)
        assert out.format == load(source).format
        reference = load(source).resize((96, 64), Image.Resampling.LANCZOS)
        assert psnr(out.convert(reference.mode), reference) > 30
    rerun = resize_multiple_files(photos, (64, 96), str(outdir), progress=False)
    assert rerun["status"].tolist() == ["skipped"] * len(photos)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
@pytest.mark.parametrize(
    ("kwargs", "size_of"),
    [
        ({"shape": (50, 70), "mode": "cover"}, lambda w, h: (70, 50)),
        ({"shape": (50, 70), "mode": "pad"}, lambda w, h: (70, 50)),
        (
            {"shape": ops.resize(min_dim=40)},
            lambda w, h: (round(w * 40 / min(w, h)), 40) if w >= h else (40, round(h * 40 / w)),
        ),
        (
            {"shape": ops.resize(max_dim=40)},
            lambda w, h: (40, round(h * 40 / w)) if w >= h else (round(w * 40 / h), 40),
        ),
    ],
)
def test_accessor_resize_sizes_and_formats(photos, tmp_path, fmt, kwargs, size_of):
    df = pd.DataFrame({"path": photos, "label": range(len(photos))})
    result = df.creevey.resize(
        str(tmp_path / "out"), format=fmt, quality=80, progress=False, measure=["size"], **kwargs
    )
    assert list(result.columns) == [
        "path",
        "label",
        "outpath",
        "status",
        "error",
        "error_type",
        "width",
        "height",
    ]
    assert (result["status"] == "ok").all(), result["error"].tolist()
    ext = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}[fmt]
    for source, outpath, width, height in result[["path", "outpath", "width", "height"]].itertuples(
        index=False
    ):
        assert outpath == str(tmp_path / "out" / (Path(source).stem + ext))
        expected = size_of(*load(source).size)
        out = load(outpath)
        assert out.format == fmt.upper()
        assert out.size == expected == (width, height)


def test_report_columns_and_sha256(photos, tmp_path):
    df = pd.DataFrame({"path": photos})
    result = resize(
        df,
        str(tmp_path / "out"),
        shape=(32, 32),
        mode="cover",
        format="png",
        measure=["size", "mean_brightness", "dhash", "sha256"],
        progress=False,
    )
    dtypes = {
        c: str(result[c].dtype)
        for c in ["width", "height", "mean_brightness", "dhash", "sha256", "out_bytes"]
    }
    assert dtypes == {
        "width": "Int64",
        "height": "Int64",
        "mean_brightness": "float64",
        "dhash": "UInt64",
        "sha256": "string",
        "out_bytes": "Int64",
    }
    for row in result.itertuples(index=False):
        data = Path(row.outpath).read_bytes()
        assert row.sha256 == hashlib.sha256(data).hexdigest()
        assert row.out_bytes == len(data)
        image = decode_image(data)
        assert row.dhash == ops.dhash(image)
        assert row.mean_brightness == pytest.approx(ops.mean_brightness(image))


def test_ops_run_before_the_resize(tmp_path, photo):
    source = tmp_path / "captioned.png"
    image = photo(200, 150)
    image.paste((255, 255, 255), (0, 100, 200, 150))  # a white caption bar
    source.write_bytes(encode(image, "PNG"))
    result = resize(
        pd.DataFrame({"path": [str(source)]}),
        str(tmp_path / "out"),
        ops=[ops.trim_bottom(50), ops.grayscale],
        measure=["size"],
        progress=False,
        shape=creevey_dask.ops.resize(min_dim=50),
    )
    assert (result["width"].iloc[0], result["height"].iloc[0]) == (100, 50)
    out = load(result["outpath"].iloc[0])
    assert out.mode == "L"
    assert np.asarray(out).mean() < 200  # the white bar is gone


def test_bad_inputs_are_error_rows_with_no_output(photos, bad_images, bad_image_specs, tmp_path):
    outdir = tmp_path / "out"
    sources = [photos[0], *bad_images.values(), str(tmp_path / "missing.jpg"), None]
    df = pd.DataFrame({"path": sources})
    result = df.creevey.resize(
        str(outdir),
        progress=False,
        shape=(40, 40),
        mode="cover",
        options=creevey_dask.RunOptions(n_jobs=4),
    )
    assert result["status"].tolist() == ["ok"] + ["error"] * (len(sources) - 1)
    errors = dict(zip(sources[1:], result["error"].iloc[1:], strict=True))
    for name, path in bad_images.items():
        phrase = bad_image_specs[name][2]
        assert phrase in errors[path], errors[path]
        kind = "ImageTooLargeError" if name == "bomb" else "ImageDecodeError"
        assert errors[path].startswith(f"{kind}: cannot decode") or errors[path].startswith(
            f"{kind}: refused"
        )
    assert errors[str(tmp_path / "missing.jpg")].startswith("FileNotFoundError")
    assert errors[None] == "ValueError: the source is missing (null)"
    assert result["outpath"].iloc[1:].isna().all()
    assert sorted(os.listdir(outdir)) == ["photo_0.jpg"]
    assert not list(outdir.rglob(f"*{TEMP_SUFFIX}"))


def test_ops_failing_on_a_row_give_an_error_row(tmp_path, photo):
    small = tmp_path / "small.png"
    small.write_bytes(encode(photo(30, 20), "PNG"))
    big = tmp_path / "big.png"
    big.write_bytes(encode(photo(300, 200), "PNG"))
    result = resize(
        pd.DataFrame({"path": [str(small), str(big)]}),
        str(tmp_path / "out"),
        shape=(10, 10),
        ops=[ops.trim_bottom(50)],
        progress=False,
    )
    assert result["status"].tolist() == ["error", "ok"]
    assert result["error"].iloc[0] == (
        "ValueError: trim_bottom(50) would remove the whole image of height 20"
    )
    assert not (tmp_path / "out" / "small.png").exists()


def test_exif_rotated_inputs_are_upright(tmp_path, photo):
    image = photo(120, 80, seed=4)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise for display
    source = tmp_path / "rotated.jpg"
    source.write_bytes(encode(image, "JPEG", exif=exif, quality=95))
    result = resize(
        pd.DataFrame({"path": [str(source)]}),
        str(tmp_path / "out"),
        measure=["size"],
        progress=False,
        shape=creevey_dask.ops.resize(max_dim=60),
    )
    assert (result["width"].iloc[0], result["height"].iloc[0]) == (40, 60)
    out = load(result["outpath"].iloc[0])
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(source.read_bytes()))).resize(
        (40, 60), Image.Resampling.LANCZOS
    )
    diff = np.abs(np.asarray(out, dtype=int) - np.asarray(reference, dtype=int)).mean()
    assert diff < 4


def test_dask_frame_on_memory_filesystem(memfs, photo):
    for i, size in enumerate([(300, 200), (200, 300), (640, 480), (50, 40)]):
        memfs.pipe_file(f"/in/img{i}.jpg", encode(photo(*size, seed=i), "JPEG"))
    memfs.pipe_file("/in/broken.jpg", b"not an image")
    paths = [f"memory://in/img{i}.jpg" for i in range(4)] + ["memory://in/broken.jpg"]
    ddf = dd.from_pandas(pd.DataFrame({"path": paths, "i": range(5)}), npartitions=2)
    lazy = ddf.creevey.resize(
        "memory://out", shape=(32, 48), mode="cover", format="png", measure=["size", "sha256"]
    )
    assert isinstance(lazy, dd.DataFrame)
    assert not memfs.exists("/out")  # lazy: nothing ran yet
    result = lazy.compute(scheduler="threads").sort_values("i")
    assert result["status"].tolist() == ["ok"] * 4 + ["error"]
    assert result["outpath"].iloc[:4].tolist() == [f"memory://out/img{i}.png" for i in range(4)]
    assert "not an image format Pillow can read" in result["error"].iloc[4]
    for outpath, digest in zip(result["outpath"].iloc[:4], result["sha256"].iloc[:4], strict=True):
        data = memfs.cat_file(outpath.replace("memory://", "/"))
        assert hashlib.sha256(data).hexdigest() == digest
        assert Image.open(io.BytesIO(data)).size == (48, 32)
    assert not memfs.exists("/out/broken.png")


def test_chaining_on_the_outpath_of_an_earlier_run(photos, tmp_path):
    first = resize(
        pd.DataFrame({"path": photos[:3]}),
        str(tmp_path / "big"),
        format="png",
        measure=["size"],
        progress=False,
        shape=creevey_dask.ops.resize(max_dim=200),
    )
    first.loc[1, "outpath"] = None  # as if that download had failed
    second = first.creevey.resize(
        str(tmp_path / "small"),
        path_col="outpath",
        shape=(20, 20),
        measure=["size"],
        progress=False,
    )
    assert list(second.columns) == [
        "path",
        "inpath",
        "outpath",
        "status",
        "error",
        "error_type",
        "width",
        "height",
    ]
    assert second["inpath"].tolist()[0] == first["outpath"].iloc[0]
    assert second["status"].tolist() == ["ok", "error", "ok"]
    assert second["outpath"].iloc[0] == str(tmp_path / "small" / "photo_0.png")
    assert (second["width"].dropna() == 20).all()
    third = second.creevey.resize(
        str(tmp_path / "again"), path_col="outpath", shape=(10, 10), progress=False
    )
    assert third["inpath_1"].tolist() == second["outpath"].tolist()


def test_width_and_height_are_those_of_the_written_image_after_a_download(
    image_server, tmp_path, fast_http
):
    urls = [image_server.url("/img/big.jpg"), image_server.url("/img/wide.jpg")]
    downloaded = pd.DataFrame({"url": urls}).creevey.download(
        str(tmp_path / "raw"), http_options=fast_http, progress=False
    )
    assert downloaded[["width", "height"]].values.tolist() == [[800, 600], [320, 120]]
    for report in ([], ["size"]):  # with or without asking for the size
        thumbs = downloaded.creevey.resize(
            str(tmp_path / f"thumbs{len(report)}"),
            path_col="outpath",
            shape=(128, 128),
            mode="cover",
            measure=report,
            progress=False,
        )
        assert list(thumbs.columns).count("width") == 1
        assert thumbs[["width", "height"]].values.tolist() == [[128, 128], [128, 128]]
        for outpath in thumbs.outpath:
            assert load(outpath).size == (128, 128)
    contained = downloaded.creevey.resize(
        str(tmp_path / "contained"),
        path_col="outpath",
        progress=False,
        shape=creevey_dask.ops.resize(max_dim=100),
    )
    assert contained[["width", "height"]].values.tolist() == [[100, 75], [100, 38]]
    assert [load(p).size for p in contained.outpath] == [(100, 75), (100, 38)]


def test_processes_strategy(photos, tmp_path):
    result = resize_multiple_files(
        photos[:4],
        (16, 16),
        str(tmp_path / "out"),
        options=RunOptions(parallel_strategy="processes", npartitions=2, progress=False),
    )
    assert result["status"].tolist() == ["ok"] * 4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shape": (0, 10)}, ValueError, r"shape\[0\] \(height\) must be a positive int"),
        ({"min_dim": 10}, TypeError, r"keyword of ops.resize: pass shape=ops.resize\(\.\.\., min"),
        ({"mode": "cover"}, ValueError, r"give shape=: a square side"),
        ({"shape": ops.resize(max_dim=9), "mode": "cover"}, ValueError, "goes into the resize op"),
        ({"shape": (10, 10), "mode": "squash"}, ValueError, r"is not one of \['stretch'"),
        ({"shape": (10, 10), "resample": "sinc"}, TypeError, "keyword of ops.resize"),
        ({"shape": (10, 10), "format": "heic"}, ValueError, "choose from"),
        ({"shape": (10, 10), "quality": 101}, ValueError, "quality must be an int from 1 to 100"),
        ({"shape": (10, 10), "measure": ["exif"]}, ValueError, r"is not a subset of \['size'"),
        ({"shape": (10, 10), "ops": "grayscale"}, TypeError, "ops must be a callable or a list"),
        ({"shape": (10, 10), "path_col": "file"}, ValueError, "no column"),
        ({"shape": (10, 10), "parallel_strategy": "gpu"}, TypeError, "field of RunOptions"),
    ],
)
def test_bad_arguments_fail_up_front(photos, tmp_path, kwargs, error, match):
    df = pd.DataFrame({"path": photos})
    with pytest.raises(error, match=match):
        df.creevey.resize(str(tmp_path / "out"), **kwargs)
    assert not (tmp_path / "out").exists()


def test_clashing_output_names_get_distinct_names(tmp_path, photo):
    for folder, width in (("a", 20), ("b", 30)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.png").write_bytes(encode(photo(width, 20), "PNG"))
    df = pd.DataFrame(
        {"path": [str(tmp_path / "a" / "same.png"), str(tmp_path / "b" / "same.png")]}
    )
    res = resize(
        df,
        str(tmp_path / "out"),
        progress=False,
        measure=["size"],
        shape=creevey_dask.ops.resize(max_dim=10),
    )
    assert res.status.tolist() == ["ok", "ok"]
    assert res.outpath.iloc[0] == str(tmp_path / "out" / "same.png")
    assert res.outpath.iloc[1] == disambiguate(res.outpath.iloc[0], df.path.iloc[1])
    for outpath, width in zip(res.outpath, (10, 10), strict=True):
        with Image.open(outpath) as im:
            assert im.width == width
    assert res.height.tolist() == [10, 7]
    same_twice = pd.DataFrame({"path": [str(tmp_path / "a" / "same.png")] * 2})
    result = resize(same_twice, str(tmp_path / "out"), shape=(10, 10), progress=False)
    assert set(result["status"]) <= {"ok", "skipped"}


def test_keep_filename():
    assert (
        KeepFilename("s3://bucket/out")("https://x.org/a/b/c.jpeg?size=large")
        == "s3://bucket/out/c.jpeg"
    )
    assert KeepFilename("out", ".webp")("/data/p.q.png") == "out/p.q.webp"
    assert KeepFilename("out")("s3://bucket/folder/") == "out/image"  # sanitised, never empty


def test_trim_padding_in_a_resize(tmp_path, photo):
    canvas = Image.new("RGB", (300, 200), "white")
    canvas.paste(photo(150, 100).point(lambda v: v // 2), (75, 50))
    source = tmp_path / "padded.png"
    source.write_bytes(encode(canvas, "PNG"))
    result = resize(
        pd.DataFrame({"path": [str(source)]}),
        str(tmp_path / "out"),
        ops=[ops.trim_padding(operator.gt, 0.95)],
        measure=["size"],
        progress=False,
        shape=creevey_dask.ops.resize(max_dim=300),
    )
    assert (result["width"].iloc[0], result["height"].iloc[0]) == (300, 200)
    assert load(result["outpath"].iloc[0]).getpixel((0, 0)) != (255, 255, 255)


@pytest.mark.parametrize("mode", ["stretch", "pad", "cover"])
def test_resize_shape_of_a_16_bit_tiff_keeps_its_values(tmp_path, mode):
    """shape= reduces by 2 first (reducing_gap), which Pillow 13 refuses for I;16."""
    values = np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50
    source = tmp_path / "x16.tif"
    Image.fromarray(values).save(source)
    df = pd.DataFrame({"path": [str(source)]})
    res = df.creevey.resize(tmp_path / "out", "path", shape=(10, 10), mode=mode, progress=False)
    assert res.status.tolist() == ["ok"], res.error.tolist()
    with Image.open(res.outpath[0]) as out:
        assert out.mode == "I;16"
        assert out.size == (10, 10)
        got = np.asarray(out).astype(np.float64)
    # the same resize on the values as floats
    reference = ops.resize((10, 10), mode=mode)(Image.fromarray(values.astype(np.float32)))
    assert np.abs(got - np.asarray(reference)).max() <= 1.0


def test_an_outpath_function_with_shards_is_refused(image_files, tmp_path):
    """Shards are named by the run: resize and resize_multiple_files refuse outpath_func."""
    df = pd.DataFrame({"path": image_files})
    with pytest.raises(ValueError, match=r"^outpath_func= names files, but output_format='parq"):
        resize(df, str(tmp_path), shape=8, outpath_func=str, output_format="parquet")
    with pytest.raises(ValueError, match=r"^outpath_func= names files, but output_format='webd"):
        resize_multiple_files(
            image_files, 8, str(tmp_path), outpath_func=str, output_format="webdataset"
        )
    assert os.listdir(tmp_path) == ["images"]


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        (
            "path_col",
            r"'path_col'; paths= takes the paths themselves .*resize\(df, outdir, path_col",
        ),
        ("df", r"'df'; it is paths= here"),
    ],
)
def test_resize_multiple_files_names_what_it_sets_itself(name, hint):
    """resize()'s keywords that the seed function fills itself say so (no look-alike)."""
    with pytest.raises(TypeError, match=rf"^resize_multiple_files\(\) .*{hint}"):
        resize_multiple_files(["a.jpg"], 8, "out", **{name: "x"})
