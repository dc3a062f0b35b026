"""Visual reports: contact sheets and summary figures of real pipeline results."""

from __future__ import annotations

import io
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFont

import creevey_dask as cd
from creevey_dask import Pipeline, load_image, report
from creevey_dask.reports import _common
from creevey_dask.reports import sheets as reports
from creevey_dask.reports.sheets import CAPTION_GAP, PADDING, cell_size, contact_sheet, sample_rows
from creevey_dask.reports.summary import summary_figure, summary_table
from tests.conftest import encode, make_photo

THUMB_BG = (242, 242, 242)
PLACEHOLDER = (200, 200, 200)
FONT = ImageFont.load_default(size=10)
LINE = sum(FONT.getmetrics())


def sizes_pipeline(load=load_image) -> Pipeline:
    return Pipeline(
        load,
        ops=[
            report("width", lambda im: im.width, "Int64"),
            report("height", lambda im: im.height, "Int64"),
        ],
    )


def to_png(outdir: str):
    return lambda source: f"{outdir}/{Path(source).stem}.png"


@pytest.fixture
def sources(image_files, tmp_path) -> list[str]:
    """Five good images (40..44 x 30), one that is not an image, one that is missing."""
    junk = tmp_path / "junk.jpg"
    junk.write_text("not a JPEG")
    return [*image_files, str(junk), str(tmp_path / "missing.jpg")]


@pytest.fixture
def results(sources, tmp_path) -> pd.DataFrame:
    df = pd.DataFrame({"path": sources, "label": [f"label-{i}" for i in range(len(sources))]})
    res = sizes_pipeline().run(df, to_png(str(tmp_path / "out")), inpath_col="path", progress=False)
    assert res.status.tolist() == ["ok"] * 5 + ["error"] * 2
    return res


def cell_origin(i: int, columns: int, cell: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of cell ``i``'s thumbnail box."""
    return (i % columns) * cell[0] + PADDING, (i // columns) * cell[1] + PADDING


# --- contact sheet: geometry and thumbnails ------------------------------------------------


def test_sheet_geometry_is_exact(results):
    sheet = contact_sheet(
        results, caption_cols=("label", "status"), ncols=3, thumb_size=64, font=FONT
    )
    cell = cell_size(64, 2, FONT)
    assert cell == (64 + 2 * PADDING, 64 + 2 * PADDING + CAPTION_GAP + 2 * LINE)
    assert sheet.mode == "RGB"
    assert sheet.size == (3 * cell[0], 3 * cell[1])  # 7 rows on a 3-wide grid: 3 grid rows


@pytest.mark.parametrize(
    ("n", "columns", "grid_rows"), [(1, 4, 1), (4, 4, 1), (5, 2, 3), (36, 6, 2)]
)
def test_sheet_has_columns_times_rows_cells(results, n, columns, grid_rows):
    sheet = contact_sheet(results, n=n, ncols=columns, thumb_size=32, random_state=0)
    width, height = cell_size(32, 1)
    assert sheet.size == (columns * width, grid_rows * height)


def test_thumbnails_keep_their_aspect_centred_in_the_box(tmp_path):
    big = make_photo(200, 100, seed=3)
    small = make_photo(40, 30, seed=4)
    paths = []
    for name, image in (("big", big), ("small", small)):
        path = tmp_path / f"{name}.png"
        path.write_bytes(encode(image, "PNG"))
        paths.append(str(path))
    res = sizes_pipeline().run(paths, to_png(str(tmp_path / "out")), progress=False)
    sheet = contact_sheet(res, n=2, ncols=2, thumb_size=64, caption_cols=None)
    assert sheet.size == (2 * (64 + 2 * PADDING), 64 + 2 * PADDING)

    # the big image is shrunk to 64 x 32 and centred: background above and below it
    x0, y0 = cell_origin(0, 2, cell_size(64, 0))
    assert sheet.getpixel((x0 + 32, y0 + 2)) == THUMB_BG
    assert sheet.getpixel((x0 + 32, y0 + 61)) == THUMB_BG
    expected = big.resize((64, 32), Image.Resampling.LANCZOS)
    got = sheet.crop((x0, y0 + 16, x0 + 64, y0 + 48))
    diff = np.abs(np.asarray(got, dtype=int) - np.asarray(expected, dtype=int))
    assert diff.mean() < 8  # the same picture, give or take the filter

    # the small image is never enlarged: pasted pixel for pixel in the middle
    x1, y1 = cell_origin(1, 2, cell_size(64, 0))
    left, top = x1 + (64 - 40) // 2, y1 + (64 - 30) // 2
    assert sheet.crop((left, top, left + 40, top + 30)).tobytes() == small.tobytes()
    assert sheet.getpixel((left - 1, top + 10)) == THUMB_BG


def test_captions_are_drawn_and_can_be_turned_off(results):
    columns, thumb = 4, 48
    sheet = contact_sheet(results, caption_cols="label", ncols=columns, thumb_size=thumb, font=FONT)
    cell = cell_size(thumb, 1, FONT)
    for i in range(len(results)):
        x, y = cell_origin(i, columns, cell)
        caption = np.asarray(
            sheet.crop((x, y + thumb + CAPTION_GAP, x + thumb, y + thumb + CAPTION_GAP + LINE))
        )
        assert caption.min() < 128  # dark text on white
        assert (caption == 255).any()
    bare = contact_sheet(results, caption_cols=None, ncols=columns, thumb_size=thumb)
    assert bare.size == (columns * (thumb + 2 * PADDING), 2 * (thumb + 2 * PADDING))
    # the thumbnails themselves are the same with and without captions
    x, y = cell_origin(0, columns, cell)
    assert (
        sheet.crop((x, y, x + thumb, y + thumb)).tobytes()
        == bare.crop((x, y, x + thumb, y + thumb)).tobytes()
    )


def test_caption_function_sets_the_caption_lines(results):
    def caption(row):
        return f"{row['label']}\n{row['width']} px\n{row['status']}"

    sheet = contact_sheet(results, caption_cols=caption, ncols=7, thumb_size=40, font=FONT)
    assert sheet.size == (7 * (40 + 2 * PADDING), 40 + 2 * PADDING + CAPTION_GAP + 3 * LINE)
    lines = [
        np.asarray(sheet.crop((PADDING, top, PADDING + 40, top + LINE)))
        for top in (PADDING + 40 + CAPTION_GAP + k * LINE for k in range(3))
    ]
    assert all(line.min() < 128 for line in lines)


def test_long_captions_are_cut_to_the_cell(results):
    res = results.assign(label="a very long label " * 10)
    sheet = contact_sheet(res, caption_cols="label", ncols=7, thumb_size=40, font=FONT)
    cell = cell_size(40, 1, FONT)
    gutter = np.asarray(sheet.crop((0, cell[1] - LINE, PADDING, cell[1])))
    assert (gutter == 255).all()  # nothing spills into the padding left of the first cell
    from creevey_dask.reports.charts import fit_text

    cut = fit_text("a very long label " * 10, FONT, 40)
    assert cut.endswith("…")
    assert FONT.getlength(cut) <= 40


# --- contact sheet: sampling -------------------------------------------------------------


@pytest.fixture
def many(results) -> pd.DataFrame:
    """The results repeated to 70 rows with distinct labels."""
    many = pd.concat([results] * 10, ignore_index=True)
    return many.assign(label=[f"row-{i}" for i in range(len(many))])


def test_seeded_sample_is_reproducible_and_in_table_order(many):
    first = sample_rows(many, 12, random_state=7)
    assert len(first) == 12
    assert first.equals(sample_rows(many, 12, random_state=7))
    assert list(first.index) == sorted(first.index)
    assert not first.index.equals(sample_rows(many, 12, random_state=8).index)
    a = contact_sheet(many, caption_cols="label", n=12, ncols=4, thumb_size=32, random_state=7)
    b = contact_sheet(many, caption_cols="label", n=12, ncols=4, thumb_size=32, random_state=7)
    assert a.tobytes() == b.tobytes()


def test_a_small_frame_is_shown_whole_in_order(results):
    picked = sample_rows(results, 36, random_state=1)
    assert picked.index.tolist() == results.index.tolist()


@pytest.mark.parametrize("npartitions", [1, 3, 7])
def test_dask_frames_give_the_pandas_sample(many, npartitions):
    ddf = dd.from_pandas(many, npartitions=npartitions)
    expected = sample_rows(many, 10, random_state=3)
    got = sample_rows(ddf, 10, random_state=3)
    assert got.index.tolist() == expected.index.tolist()
    assert got["label"].tolist() == expected["label"].tolist()
    sheet = contact_sheet(ddf, caption_cols="label", n=10, ncols=5, thumb_size=32, random_state=3)
    assert (
        sheet.tobytes()
        == contact_sheet(
            many, caption_cols="label", n=10, ncols=5, thumb_size=32, random_state=3
        ).tobytes()
    )


def test_a_lazy_pipeline_result_runs_once_for_a_sheet(sources, tmp_path):
    loads = []

    def load(path):
        loads.append(path)
        return load_image(path)

    ddf = dd.from_pandas(pd.DataFrame({"path": sources}), npartitions=3)
    lazy = sizes_pipeline(load).run(ddf, to_png(str(tmp_path / "out")), inpath_col="path")
    assert loads == []
    sheet = contact_sheet(lazy, n=4, ncols=2, thumb_size=32, random_state=0)
    assert sheet.size == (2 * (32 + 2 * PADDING), 2 * cell_size(32, 1)[1])
    assert sorted(loads) == sorted(sources)


# --- contact sheet: rows without an image -------------------------------------------------


def test_error_missing_and_unreadable_rows_are_placeholders(results):
    res = results.copy()
    Path(res.outpath.iloc[0]).unlink()  # a missing file
    Path(res.outpath.iloc[1]).write_bytes(b"garbage")  # an unreadable file
    sheet = contact_sheet(res, ncols=7, thumb_size=48, font=FONT)
    cell = cell_size(48, 1, FONT)
    for i, placeholder in enumerate([True, True, False, False, False, True, True]):
        x, y = cell_origin(i, 7, cell)
        top_middle = sheet.getpixel((x + 24, y + 3))
        assert (top_middle == PLACEHOLDER) is placeholder, i
        if placeholder:  # a text line in the middle of the grey box
            middle = np.asarray(sheet.crop((x + 4, y + 10, x + 44, y + 38)))
            assert middle.min() < 120


def test_placeholder_texts_name_the_cause(results):
    res = results.copy()
    Path(res.outpath.iloc[0]).unlink()
    thumbs = [
        reports._thumbnail(p, s, e, 32, None)
        for p, s, e in zip(res.outpath, res.status, res.error, strict=True)
    ]
    assert (thumbs[0].headline, thumbs[0].detail) == ("missing", "file not found")
    assert isinstance(thumbs[1], Image.Image)
    assert thumbs[5].headline == "error"
    assert thumbs[5].detail.splitlines()[0] == "ImageDecodeError"  # the type, then the message
    assert thumbs[6].detail.splitlines()[0] == "FileNotFoundError"
    assert thumbs[6].detail.splitlines()[1] in res.error.iloc[6]


def test_memory_outpaths_and_save_to(sources, memfs, tmp_path):
    res = sizes_pipeline().run(sources, to_png("memory://out"), progress=False)
    assert res.outpath.iloc[0].startswith("memory://")
    sheet = contact_sheet(res, n=7, ncols=7, thumb_size=48, save_to="memory://sheets/sheet.png")
    x, y = cell_origin(0, 7, cell_size(48, 1))
    centre = sheet.getpixel((x + 24, y + 24))
    assert centre not in (THUMB_BG, PLACEHOLDER)
    with Image.open(io.BytesIO(memfs.cat_file("/sheets/sheet.png"))) as saved:
        assert saved.format == "PNG"
        assert saved.size == sheet.size
        assert saved.convert("RGB").tobytes() == sheet.tobytes()
    local = tmp_path / "sheet.jpg"
    contact_sheet(res, n=7, thumb_size=48, save_to=str(local))
    with Image.open(local) as saved:
        assert saved.format == "JPEG"


# --- summary table and figure --------------------------------------------------------------


def test_summary_table_numbers(results):
    table = summary_table(results)
    assert table["rows"] == 7
    assert table["status"] == {"ok": 5, "skipped": 0, "error": 2}
    assert table["error_kinds"] == {"FileNotFoundError": 1, "ImageDecodeError": 1}
    assert table["other_error_kinds"] == 0
    assert sum(table["error_causes"].values()) == 2
    assert all(cause.split(":")[0] in table["error_kinds"] for cause in table["error_causes"])
    assert set(table["histograms"]) == {"width", "height"}
    width = table["histograms"]["width"]
    assert width == {"edges": [39.5, 40.5, 41.5, 42.5, 43.5, 44.5], "counts": [1, 1, 1, 1, 1]}
    assert table["histograms"]["height"] == {"edges": [29.5, 30.5], "counts": [5]}


def test_summary_table_bins_and_top_errors(results):
    res = results.assign(score=[0.0, 0.5, 1.0, 1.0, np.nan, np.nan, 2.0])
    res.loc[6, "error"] = "ValueError: boom"
    table = summary_table(res, top_errors=1, bins=2, columns=["width", "score"])
    assert table["error_kinds"] == {"ImageDecodeError": 1}  # a tie, broken by name
    assert table["other_error_kinds"] == 1
    assert table["histograms"]["width"] == {"edges": [39.5, 42.5, 45.5], "counts": [3, 2]}
    assert table["histograms"]["score"] == {"edges": [0.0, 1.0, 2.0], "counts": [2, 3]}


def test_summary_table_groups_errors_by_cause():
    errors = [
        "FileNotFoundError: [Errno 2] No such file or directory: '/data/a.jpg'",
        "FileNotFoundError: [Errno 2] No such file or directory: '/data/b.jpg'",
        "ImageDecodeError: cannot decode '/x.jpg': truncated JPEG data: image file is "
        "truncated (7 bytes not processed)",
        "UpstreamError: the previous step failed: HttpError: HTTP 404 Not Found",
        "HttpError: HTTP 503 Service Unavailable",
    ]
    df = pd.DataFrame({"status": ["ok", *["error"] * 5], "error": [None, *errors]})
    table = summary_table(df)
    assert table["error_causes"] == {
        "FileNotFoundError: [Errno 2] No such file or directory: '…'": 2,
        "HttpError: HTTP 404 Not Found": 1,
        "HttpError: HTTP 503 Service Unavailable": 1,
        "ImageDecodeError: cannot decode '…': truncated JPEG data: image file is truncated "
        "(N bytes not processed)": 1,
    }
    assert table["error_kinds"] == {"FileNotFoundError": 2, "HttpError": 2, "ImageDecodeError": 1}


def test_summary_table_of_a_rerun_counts_skipped_rows(sources, tmp_path):
    outdir = str(tmp_path / "out")
    sizes_pipeline().run(sources, to_png(outdir), progress=False)
    rerun = sizes_pipeline().run(sources, to_png(outdir), progress=False)
    table = summary_table(rerun)
    assert table["status"] == {"ok": 0, "skipped": 5, "error": 2}
    assert table["histograms"] == {}  # skipped rows load nothing, so record no sizes


@pytest.mark.parametrize("npartitions", [1, 3])
def test_summary_table_of_a_dask_frame_equals_pandas(results, npartitions):
    ddf = dd.from_pandas(results, npartitions=npartitions)
    assert summary_table(ddf, bins=3) == summary_table(results, bins=3)


def test_a_lazy_pipeline_result_runs_once_for_a_summary(sources, tmp_path):
    loads = []

    def load(path):
        loads.append(path)
        return load_image(path)

    ddf = dd.from_pandas(pd.DataFrame({"path": sources}), npartitions=3)
    lazy = sizes_pipeline(load).run(ddf, to_png(str(tmp_path / "out")), inpath_col="path")
    table = summary_table(lazy)
    assert sorted(loads) == sorted(sources)
    assert table["status"] == {"ok": 5, "skipped": 0, "error": 2}


def _has_color(image: Image.Image, box: tuple[int, int, int, int], color) -> int:
    region = np.asarray(image.crop(box)).reshape(-1, 3)
    return int((region == np.array(color)).all(axis=1).sum())


def test_summary_figure_panels(results):
    figure = summary_figure(results)
    assert figure.size == (960, 640)
    assert figure.mode == "RGB"
    top, bottom = (0, 0, 960, 320), (0, 320, 960, 640)
    assert _has_color(figure, top, _common._STATUS_COLORS["ok"]) > 100
    assert _has_color(figure, top, _common._STATUS_COLORS["error"]) > 100
    assert _has_color(figure, top, _common._ERROR_BARS) > 100
    assert _has_color(figure, bottom, _common._HIST_BARS) > 100
    # two histograms side by side: bars in both halves
    assert _has_color(figure, (0, 320, 480, 640), _common._HIST_BARS) > 100
    assert _has_color(figure, (480, 320, 960, 640), _common._HIST_BARS) > 100


def test_summary_figure_without_errors_or_sizes(tmp_path, image_files):
    res = Pipeline(load_image).run(image_files, to_png(str(tmp_path / "out")), progress=False)
    figure = summary_figure(res, size=(400, 300), title="five images")
    assert figure.size == (400, 300)
    assert _has_color(figure, (0, 0, 400, 300), _common._STATUS_COLORS["ok"]) > 50
    assert _has_color(figure, (0, 0, 400, 300), _common._HIST_BARS) == 0
    assert _has_color(figure, (0, 0, 400, 300), _common._ERROR_BARS) == 0


def test_summary_figure_draws_bars_far_below_the_peak():
    # one error among 5000 rows and one outlier width: bars thinner than a pixel
    status = pd.Categorical(["ok"] * 4999 + ["error"], categories=["ok", "skipped", "error"])
    df = pd.DataFrame(
        {
            "status": status,
            "error": pd.array([None] * 4999 + ["OSError: x"], dtype="string"),
            "width": pd.array([100] * 4998 + [9000, None], dtype="Int64"),
        }
    )
    table = summary_table(df)
    assert table["status"] == {"ok": 4999, "skipped": 0, "error": 1}
    assert table["histograms"]["width"]["counts"][0] == 4998
    assert table["histograms"]["width"]["counts"][-1] == 1
    assert summary_figure(df).size == (960, 640)


def test_summary_figure_save_to(results, tmp_path):
    target = tmp_path / "figs" / "summary.png"
    figure = summary_figure(results, save_to=str(target), size=(500, 400))
    with Image.open(target) as saved:
        assert saved.size == (500, 400)
        assert saved.convert("RGB").tobytes() == figure.tobytes()


# --- the accessor and the public names ----------------------------------------------------


def test_accessor_methods(results):
    sheet = results.creevey.contact_sheet(n=4, ncols=2, thumb_size=32, random_state=5)
    assert (
        sheet.tobytes()
        == contact_sheet(results, n=4, ncols=2, thumb_size=32, random_state=5).tobytes()
    )
    assert results.creevey.summary_figure(size=(480, 320)).size == (480, 320)
    assert results.creevey.summary_table() == summary_table(results)
    ddf = dd.from_pandas(results, npartitions=2)
    assert ddf.creevey.summary_table(bins=4) == summary_table(results, bins=4)
    assert ddf.creevey.contact_sheet(n=4, ncols=2, thumb_size=32, random_state=5).tobytes() == (
        sheet.tobytes()
    )


def test_public_names():
    from creevey_dask.reports import summary

    for name, module in (
        ("contact_sheet", reports),
        ("summary_figure", summary),
        ("summary_table", summary),
    ):
        assert name in cd.__all__
        assert getattr(cd, name) is getattr(module, name)


# --- bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be an int >= 1, got 0"),
        ({"n": True}, "n must be an int >= 1"),
        ({"ncols": 0}, "ncols must be an int >= 1"),
        ({"thumb_size": 8}, "thumb_size must be an int >= 16"),
        ({"caption_cols": ("label", "nope")}, r"no column\(s\) \['nope'\] \(caption_cols="),
        ({"path_col": "where"}, r"no column\(s\) \['where'\] \(path_col='where'\); its columns"),
        ({"font": 2}, "font size must be an int >= 6"),
    ],
)
def test_contact_sheet_bad_arguments(results, kwargs, message):
    with pytest.raises(ValueError, match=message):
        contact_sheet(results, **kwargs)


def test_bad_inputs_are_refused(results):
    with pytest.raises(TypeError, match="pandas or dask DataFrame"):
        contact_sheet(results.outpath)
    with pytest.raises(TypeError, match="random_state must be an int or None"):
        contact_sheet(results, random_state="seven")
    with pytest.raises(ValueError, match="no rows to show"):
        contact_sheet(results.iloc[:0])
    with pytest.raises(ValueError, match=r"no column\(s\) \['status'\]"):
        summary_table(results.drop(columns="status"))
    with pytest.raises(ValueError, match=r"histogram column\(s\) \['label'\] are not numeric"):
        summary_table(results, columns=["label"])
    with pytest.raises(ValueError, match=r"no column\(s\) \['nope'\] \(columns="):
        summary_table(results, columns=["nope"])
    with pytest.raises(ValueError, match="bins must be an int >= 1"):
        summary_table(results, bins=0)
    with pytest.raises(ValueError, match="size must be"):
        summary_figure(results, size=(100, 100))


# --- rows that failed upstream show their root cause -----------------------------------


def test_rows_failed_upstream_show_the_root_cause(image_server, fast_http, tmp_path, caplog):
    urls = [image_server.url("/img/photo.jpg"), image_server.url("/img/nothing.jpg")]
    downloaded = pd.DataFrame({"url": urls, "label": ["a", "b"]}).creevey.download(
        str(tmp_path / "raw"), http_options=fast_http, progress=False
    )
    with caplog.at_level("INFO", logger="creevey_dask"):
        small = downloaded.creevey.resize(
            str(tmp_path / "small"), path_col="outpath", shape=(16, 16), progress=False
        )
    assert small.status.tolist() == ["ok", "error"]
    assert (
        small.error[1] == "UpstreamError: the previous step failed: HttpError: HTTP 404 Not Found"
    )
    assert "1 x HttpError: HTTP 404 Not Found" in caplog.text  # the run's log names it too
    table = summary_table(small)
    assert table["error_kinds"] == {"HttpError": 1}
    assert reports._captions(small, ("label", "error")) == [
        ["a", "NA"],
        ["b", "HttpError: HTTP 404 Not Found"],
    ]
    placeholder = reports._thumbnail(None, "error", small.error[1], 64, None)
    assert placeholder.detail.splitlines() == ["HttpError", "HTTP 404 Not Found"]
    # the drawn sheet is the one of a row that failed with that error itself
    direct = small.assign(
        error=small.error.str.removeprefix("UpstreamError: the previous step failed: ")
    )
    kwargs = {"caption_cols": ("label", "error"), "n": 2, "ncols": 2, "thumb_size": 64}
    sheet = contact_sheet(small, **kwargs, random_state=0, font=FONT)
    assert sheet.tobytes() == contact_sheet(direct, **kwargs, random_state=0, font=FONT).tobytes()
    plain = small.assign(error=small.error.where(small.status != "error", "UpstreamError"))
    assert sheet.tobytes() != contact_sheet(plain, **kwargs, random_state=0, font=FONT).tobytes()
