"""Size filters (creevey_dask.image.filters) and source hashes (sources.hashing), on real files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

import creevey_dask
from creevey_dask.exceptions import ColumnError
from creevey_dask.image.filters import ImageFilter, make_filter
from tests._httpserver import SERVED_IMAGES, served_files

NAMES = ["photo.jpg", "wide.jpg", "big.jpg", "icon.png"]  # 64x48, 320x120, 800x600, 30x20


def _frame(server: Any) -> pd.DataFrame:
    return pd.DataFrame({"url": [server.url(f"/img/{n}") for n in NAMES], "name": NAMES})


@pytest.mark.parametrize("output_format", ["files", "webdataset"])
def test_filters_name_themselves_and_write_nothing(
    image_server: Any, tmp_path: Path, output_format: str
) -> None:
    df = _frame(image_server)
    out = tmp_path / "out"
    result = df.creevey.download(
        str(out),
        progress=False,
        output_format=output_format,
        filters=creevey_dask.FilterOptions(
            min_image_size=21, max_image_area=400 * 400, max_aspect_ratio=2.5
        ),
    ).set_index("name")
    assert result.loc["photo.jpg", "status"] == "ok"
    errors = result["error"]
    assert errors["icon.png"].startswith(
        "ImageFilteredError: min_image_size=21: the image is 30 x 20"
    )
    assert errors["big.jpg"].startswith(
        "ImageFilteredError: max_image_area=160000: the image is 800 x 600"
    )
    assert errors["wide.jpg"].startswith(
        "ImageFilteredError: max_aspect_ratio=2.5: the image is 320 x 120"
    )
    assert result.loc[["icon.png", "big.jpg", "wide.jpg"], "outpath"].isna().all()
    if output_format == "files":
        (written,) = [n for n in os.listdir(out) if not n.startswith(".")]  # only the one passed
        assert written.startswith("photo.")


def test_filter_reads_the_full_size_after_a_reduced_decode(tmp_path: Path) -> None:
    # an 800 x 600 JPEG resized to 50 x 50 is decoded at 1/4 scale; the filter still
    # judges the source's 800 x 600
    path = tmp_path / "big.jpg"
    Image.new("RGB", (800, 600), "navy").save(path)
    df = pd.DataFrame({"path": [str(path)]})
    kept = df.creevey.resize(
        str(tmp_path / "a"),
        progress=False,
        shape=(50, 50),
        filters=creevey_dask.FilterOptions(min_image_size=600),
    )
    assert kept["status"].tolist() == ["ok"]
    refused = df.creevey.resize(
        str(tmp_path / "b"),
        progress=False,
        shape=(50, 50),
        filters=creevey_dask.FilterOptions(min_image_size=601),
    )
    assert refused["error"].tolist() == [
        "ImageFilteredError: min_image_size=601: the image is 800 x 600, its smaller side 600 < 601"
    ]


def test_filter_keeps_the_next_ops_draft_hint() -> None:
    class Op:
        def draft_size(self, size: tuple[int, int]) -> tuple[int, int]:
            return (size[0] // 4, size[1] // 4)

        def __call__(self, image: Any) -> Any:
            return image

    ops = make_filter([Op()], min_image_size=2)
    assert isinstance(ops[0], ImageFilter)
    assert ops[0].draft_size((400, 200)) == (100, 50)
    assert make_filter([Op()])
    assert not isinstance(make_filter([Op()])[0], ImageFilter)


def test_bad_filter_arguments() -> None:
    with pytest.raises(ValueError, match="min_image_size must be a positive number"):
        ImageFilter(min_image_size=0)
    with pytest.raises(ValueError, match="max_aspect_ratio is longer side / shorter side"):
        ImageFilter(max_aspect_ratio=0.5)
    # a positive number that is not an int says that pixels are counted in ints
    for name in ("min_image_size", "max_image_area"):
        with pytest.raises(
            ValueError, match=rf"^{name} must be a positive number of pixels, an int; got 2\.5"
        ):
            creevey_dask.FilterOptions(**{name: 2.5})
    with pytest.raises(ValueError, match=r"^max_aspect_ratio must be a positive number, got '2'"):
        creevey_dask.FilterOptions(max_aspect_ratio="2")  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_compute_hash_of_the_source_bytes(
    image_server: Any, tmp_path: Path, algorithm: str
) -> None:
    df = _frame(image_server)
    result = df.creevey.download(
        str(tmp_path), progress=False, filters=creevey_dask.FilterOptions(compute_hash=algorithm)
    )
    files = served_files()
    expected = [hashlib.new(algorithm, files[n]).hexdigest() for n in NAMES]
    assert result[f"source_{algorithm}"].tolist() == expected
    assert str(result[f"source_{algorithm}"].dtype) == "string"


@pytest.mark.parametrize("output_format", ["files", "parquet"])
def test_verify_hash_refuses_a_mismatch(
    image_server: Any, tmp_path: Path, output_format: str
) -> None:
    files = served_files()
    df = _frame(image_server)
    df["expected"] = [hashlib.sha256(files[n]).hexdigest() for n in NAMES]
    df.loc[1, "expected"] = hashlib.sha256(b"something else").hexdigest()  # wide.jpg
    df.loc[3, "expected"] = None  # no digest: not checked
    df.loc[0, "expected"] = df.loc[0, "expected"].upper()  # hex in any case
    out = tmp_path / "out"
    result = df.creevey.download(
        str(out),
        progress=False,
        output_format=output_format,
        filters=creevey_dask.FilterOptions(verify_hash=("expected", "sha256")),
    ).set_index("name")
    assert result["status"].tolist() == ["ok", "error", "ok", "ok"]
    error = result.loc["wide.jpg", "error"]
    assert error.startswith("HashMismatchError: the source bytes have sha256 ")
    assert hashlib.sha256(files["wide.jpg"]).hexdigest() in error
    assert pd.isna(result.loc["wide.jpg", "outpath"])
    if output_format == "files":
        assert not [n for n in os.listdir(out) if n.startswith("wide.")]
        assert len([n for n in os.listdir(out) if not n.startswith(".")]) == 3


def test_verify_hash_on_resize_with_md5(image_files: list[str], tmp_path: Path) -> None:
    digests = [hashlib.md5(Path(p).read_bytes()).hexdigest() for p in image_files]
    digests[0] = "0" * 32
    df = pd.DataFrame({"path": image_files, "md5": digests})
    result = df.creevey.resize(
        str(tmp_path / "r"),
        progress=False,
        shape=(8, 8),
        filters=creevey_dask.FilterOptions(verify_hash=("md5", "md5"), compute_hash="md5"),
    )
    assert result["status"].tolist()[0] == "error"
    assert (result["status"].iloc[1:] == "ok").all()
    assert result["source_md5"].iloc[1:].tolist() == digests[1:]


def test_bad_hash_arguments(image_server: Any, tmp_path: Path) -> None:
    df = _frame(image_server)
    with pytest.raises(ValueError, match="compute_hash 'sha1' is not one of"):
        df.creevey.download(str(tmp_path), filters=creevey_dask.FilterOptions(compute_hash="sha1"))
    with pytest.raises(ColumnError, match="verify_hash names the column 'nope'"):
        df.creevey.download(
            str(tmp_path), filters=creevey_dask.FilterOptions(verify_hash=("nope", "sha256"))
        )
    with pytest.raises(TypeError, match="verify_hash must be a"):
        df.creevey.download(str(tmp_path), filters=creevey_dask.FilterOptions(verify_hash="sha256"))


def test_served_sizes_are_what_the_filters_assume() -> None:
    assert [SERVED_IMAGES[n][:2] for n in NAMES] == [(64, 48), (320, 120), (800, 600), (30, 20)]


def test_the_original_write_log_keeps_the_verification(image_server: Any, tmp_path: Path) -> None:
    """download_images_as_png's write log wraps the loader: the digests still reach it."""
    files = served_files()
    df = _frame(image_server)
    df["expected"] = [hashlib.sha256(files[n]).hexdigest() for n in NAMES]
    df.loc[1, "expected"] = hashlib.sha256(b"something else").hexdigest()  # wide.jpg
    log = tmp_path / "log.csv"
    result = creevey_dask.download_images_as_png(
        df,
        str(tmp_path / "out"),
        write_log_path=str(log),
        filters=creevey_dask.FilterOptions(verify_hash=("expected", "sha256")),
        progress=False,
    ).set_index("name")
    assert result["status"].tolist() == ["ok", "error", "ok", "ok"]
    assert result.loc["wide.jpg", "error"].startswith("HashMismatchError: ")
    logged = pd.read_csv(log)
    assert sorted(logged["local_path"]) == sorted(result["outpath"].dropna())
