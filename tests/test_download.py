"""download() and download_images_as_png() against a real loopback server."""

from __future__ import annotations

import datetime
import io
import logging
import os
import pickle
import re
from pathlib import Path

import dask.dataframe as dd
import pandas as pd
import pytest
from PIL import Image

import creevey_dask
from creevey_dask import ColumnError, HttpLoader, HttpOptions, download, download_images_as_png
from creevey_dask.storage.fs import TEMP_SUFFIX
from creevey_dask.storage.naming import url_hash
from creevey_dask.testing import ImageServer

RESULT_DTYPES = {
    "http_status": "Int64",
    "bytes": "Int64",
    "attempts": "Int64",
    "width": "Int64",
    "height": "Int64",
}


def files_in(folder: Path) -> list[str]:
    """Every file below ``folder`` (hidden and temporary ones included), relative."""
    if not folder.exists():
        return []
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
    )


# name in the table -> (path on the server, status, error pattern, attempts, http_status)
FAULTS = {
    "ok": ("/img/photo.jpg", "ok", None, 1, 200),
    "not_found": ("/img/nf.jpg?status=404", "error", r"^HttpError: HTTP 404 Not Found$", 1, 404),
    "forbidden": ("/img/fb.jpg?status=403", "error", r"^HttpError: HTTP 403 Forbidden$", 1, 403),
    "flaky": ("/img/photo.jpg?fail=1&code=500&n=flaky", "ok", None, 2, 200),
    "always_500": (
        "/img/a5.jpg?fail=99&code=500",
        "error",
        r"^HttpError: HTTP 500 Internal Server Error \(after 3 attempts\)$",
        3,
        500,
    ),
    "unavailable": ("/img/photo.jpg?fail=1&code=503&retry_after=0.2&n=u", "ok", None, 2, 200),
    "too_many": ("/img/photo.jpg?fail=2&code=429&retry_after=0.1&n=t", "ok", None, 3, 200),
    "reset": (
        "/img/rs.jpg?reset=99",
        "error",
        r"^DownloadConnectionError: the connection was reset by the server \(after 3 attempts\)$",
        3,
        None,
    ),
    "stall": (
        "/img/st.jpg?stall=5",
        "error",
        r"^DownloadTimeoutError: no data within the read timeout of 0.4 s \(after 3 attempts\)$",
        3,
        None,
    ),
    "short": (
        "/img/photo.jpg?short=1&n=s",
        "error",
        r"^TruncatedBodyError: the body ended after \d+ of the \d+ bytes its Content-Length "
        r"announced \(after 3 attempts\)$",
        3,
        200,
    ),
    "html": (
        "/html/page.jpg",
        "error",
        r"^ImageDecodeError: the response \(text/html; charset=utf-8\) is not an "
        r"image Pillow can decode: ",
        1,
        200,
    ),
    "oversized": (
        "/big/300000",
        "error",
        r"^SizeLimitError: the body of 300000 bytes \(Content-Length\) is larger than "
        r"max_bytes=200000$",
        1,
        200,
    ),
    "oversized_stream": (
        "/big/3000000?nolength=1",
        "error",
        r"^SizeLimitError: the body is larger than max_bytes=200000; stopped after \d+ bytes$",
        1,
        200,
    ),
    "redirects": ("/redirect/3/wide.jpg", "ok", None, 1, 200),
    "redirect_loop": (
        "/redirect/9/wide.jpg",
        "error",
        r"^TooManyRedirectsError: more than 5 redirects \(max_redirects=5\)$",
        1,
        302,
    ),
    "redirect_file": (
        "/redirect-to?url=file:///etc/passwd",
        "error",
        r"^UnsafeSourceError: redirect refused: 'file:///etc/passwd' has the scheme 'file'; "
        r"only http and https URLs are downloaded$",
        1,
        302,
    ),
    "robots": (
        "/img/photo.jpg?robots=noimageai&n=r",
        "error",
        r"^RobotsTagError: the server opted out with X-Robots-Tag 'noimageai'; pass "
        r"respect_robots_tag=False in HttpOptions to download anyway$",
        1,
        200,
    ),
}


@pytest.fixture
def fault_table(image_server: ImageServer) -> pd.DataFrame:
    names = list(FAULTS)
    urls = [image_server.url(FAULTS[n][0]) for n in names]
    # the outpath is named after the case, so every row has its own file
    return pd.DataFrame({"case": names, "url": urls})


def test_every_fault_gives_an_honest_row(
    fault_table: pd.DataFrame, tmp_path: Path, fast_http: HttpOptions
) -> None:
    outdir = tmp_path / "out"
    cases = dict(zip(fault_table.url, fault_table.case, strict=True))
    result = download(
        fault_table,
        None,
        format="png",
        outpath_func=lambda url: str(outdir / f"{cases[url]}.png"),
        http_options=fast_http.replace(max_bytes=200_000),
        n_jobs=8,
        progress=False,
    )
    assert list(result.columns[:2]) == ["case", "url"]
    for name, dtype in RESULT_DTYPES.items():
        assert str(result[name].dtype) == dtype, name
    written = files_in(outdir)
    for row in result.itertuples():
        _, status, pattern, attempts, http_status = FAULTS[row.case]
        assert row.status == status, (row.case, row.error)
        assert row.attempts == attempts, (row.case, row.attempts)
        if http_status is None:
            assert pd.isna(row.http_status), row.case
        else:
            assert row.http_status == http_status, row.case
        if status == "ok":
            assert pd.isna(row.error)
            assert row.outpath == str(outdir / f"{row.case}.png")
            with Image.open(row.outpath) as image:
                assert image.format == "PNG"
                assert image.size == (row.width, row.height)
            assert row.bytes > 0
        else:
            assert isinstance(row.error, str), row.case
            assert re.match(pattern, row.error), (row.case, row.error)
            assert pd.isna(row.outpath)
            assert pd.isna(row.width)
            assert pd.isna(row.height)
            assert f"{row.case}.png" not in written
    # nothing but the finished files: no partial or temporary ones
    assert written == sorted(f"{c}.png" for c in result.loc[result.status == "ok", "case"])
    assert not [f for f in written if f.endswith(TEMP_SUFFIX)]


def test_formats_sizes_and_original_bytes(
    image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions
) -> None:
    urls = [image_server.url(p) for p in ("/img/photo.jpg", "/img/alpha.png", "/img/pic.webp")]
    expected_sizes = [(64, 48), (24, 24), (40, 30)]
    for fmt, pil_format in [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP"), ("original", None)]:
        outdir = tmp_path / fmt
        result = download(urls, str(outdir), format=fmt, http_options=fast_http, progress=False)
        assert (result.status == "ok").all(), result.error.tolist()
        assert list(zip(result.width, result.height, strict=True)) == expected_sizes
        for row, served in zip(
            result.itertuples(), ["photo.jpg", "alpha.png", "pic.webp"], strict=True
        ):
            if fmt == "original":
                assert row.outpath == str(outdir / served)
                assert Path(row.outpath).read_bytes() == image_server.files[served]
            else:
                with Image.open(row.outpath) as image:
                    assert image.format == pil_format
            assert row.bytes == len(image_server.files[served])


@pytest.mark.parametrize("fmt", ["png", "original"])
def test_corrupt_image_is_an_error_row(
    image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions, fmt: str
) -> None:
    result = download(
        [image_server.url("/img/broken.jpg")],
        str(tmp_path),
        format=fmt,
        http_options=fast_http,
        progress=False,
    )
    assert result.status[0] == "error"
    assert result.error[0].startswith(
        "ImageDecodeError: the response (image/jpeg) is not an image Pillow can decode"
    )
    assert (result.http_status[0], result.bytes[0], result.attempts[0]) == (200, 2000, 1)
    assert files_in(tmp_path) == []


def test_truncated_downloads_of_any_length_are_one_error(tmp_path: Path) -> None:
    """16 JPEGs cut at 16 lengths: one error text, one error_type, one summary cause."""
    from creevey_dask.engine.summary import error_causes
    from creevey_dask.testing import ImageServer
    from tests.conftest import encode, make_photo

    whole = encode(make_photo(120, 90))
    files = {f"cut{i}.jpg": whole[: len(whole) - 40 - 7 * i] for i in range(16)}
    with ImageServer(files) as server:
        urls = [server.url(f"/img/{name}") for name in files]
        result = download(
            urls, str(tmp_path), progress=False, http_options=creevey_dask.HttpOptions(retries=0)
        )
    assert (result.status == "error").all()
    assert result.bytes.tolist() == [len(data) for data in files.values()]  # the sizes
    assert result.error.nunique() == 1, result.error.unique()
    assert result.error[0].startswith("ImageDecodeError: the response (image/jpeg) ")
    assert "bytes" not in result.error[0]
    assert result.error_type.astype(str).tolist() == ["ImageDecodeError"] * 16
    assert error_causes(result.error) == [(result.error[0], 16)]
    assert files_in(tmp_path) == []


def test_original_refuses_ops(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"format='original' .* takes no ops"):
        download(
            ["http://127.0.0.1:9/a.jpg"], str(tmp_path), format="original", ops=[lambda im: im]
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"format": "gif"},
            ValueError,
            r"format 'gif' is not one of \['png', 'jpeg', 'webp', 'original'\]",
        ),
        ({"naming": "md5"}, ValueError, r"naming 'md5' is not one of"),
        # the HTTP knobs live in HttpOptions (validated there: tests/test_http.py)
        ({"retries": 1}, TypeError, r"'retries'; it is a field of HttpOptions: pass http_opt"),
        ({"timeout": 5}, TypeError, r"pass http_options=HttpOptions\(connect_timeout="),
        (
            {"http_options": {"retries": 1}},
            TypeError,
            "options must be a creevey_dask.HttpOptions",
        ),
        (
            {"options": HttpOptions()},
            TypeError,
            "options must be a creevey_dask.RunOptions, .*; HTTP settings go to http_options=",
        ),
        ({"path_func": str}, TypeError, "unexpected keyword argument 'path_func'"),
        ({"n_jobs": 0}, ValueError, "n_jobs must be at least 1"),
        ({"url_col": "link"}, ColumnError, r"no column\(s\) \['link'\] \(url_col='link'\)"),
    ],
)
def test_bad_arguments_fail_up_front(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        download(pd.DataFrame({"url": ["http://127.0.0.1:9/a.jpg"]}), str(tmp_path), **kwargs)
    with pytest.raises(ValueError, match=r"give outdir= .* or outpath_func="):
        download(["http://127.0.0.1:9/a.jpg"], None)


def test_unsafe_sources_are_error_rows_without_requests(
    image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions
) -> None:
    urls = ["file:///etc/passwd", "ftp://example.com/a.jpg", "example.com/b.jpg", None, 42]
    result = download(urls, str(tmp_path / "out"), http_options=fast_http, progress=False)
    assert (result.status == "error").all()
    only = "only http and https URLs are downloaded"
    assert result.error.tolist() == [
        f"UnsafeSourceError: 'file:///etc/passwd' has the scheme 'file'; {only}",
        f"UnsafeSourceError: 'ftp://example.com/a.jpg' has the scheme 'ftp'; {only}",
        f"UnsafeSourceError: 'example.com/b.jpg' has no scheme; {only}",
        "ValueError: the source is missing (null)",
        "TypeError: a URL must be a str, got int 42",
    ]
    assert result.attempts.tolist()[:3] == [0, 0, 0]
    assert files_in(tmp_path / "out") == []


def test_download_images_as_png_like_the_original(
    image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions
) -> None:
    urls = [image_server.url("/img/big.jpg"), image_server.url("/img/icon.png")]
    result = download_images_as_png(
        urls, str(tmp_path), resize_shape=(20, 30), http_options=fast_http, progress=False
    )
    assert result.outpath.tolist() == [str(tmp_path / "big.png"), str(tmp_path / "icon.png")]
    assert (result.width == 30).all()
    assert (result.height == 20).all()
    with Image.open(tmp_path / "big.png") as image:
        assert (image.format, image.size) == ("PNG", (30, 20))
    square = download_images_as_png(
        urls[:1],
        path_func=lambda u: str(tmp_path / "sq" / "x.png"),
        resize_shape=16,
        progress=False,
    )
    assert (square.width[0], square.height[0]) == (16, 16)
    # a resize op, as resize_multiple_files' shape takes: the other ways to size an image
    longest = download_images_as_png(
        urls[:1],
        str(tmp_path / "op"),
        resize_shape=creevey_dask.ops.resize(max_dim=40),
        progress=False,
    )
    assert (longest.width[0], longest.height[0]) == (40, 30)  # big.jpg is 800 x 600
    with pytest.raises(
        TypeError, match=r"resize_shape must be an int, \(height, width\) or a resize op"
    ):
        download_images_as_png(urls[:1], str(tmp_path / "bad"), resize_shape="16")


def test_download_images_as_png_takes_the_originals_positional_order(
    image_server: ImageServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(urls, outdir, path_func, skip_existing, write_log_path, n_jobs, resize_shape)."""
    urls = [image_server.url("/img/big.jpg"), image_server.url("/img/icon.png"), None]
    out, log = tmp_path / "out", tmp_path / "log.csv"
    # the sixth argument is n_jobs (it once was resize_shape: 2 x 2 images)
    result = download_images_as_png(urls, str(out), None, True, str(log), 2)
    assert result.status.tolist() == ["ok", "ok", "error"]
    with Image.open(out / "big.png") as image:
        assert (image.format, image.size) == ("PNG", (800, 600))
    lines = log.read_text().splitlines()
    assert lines[0] == "timestamp,url,local_path"
    rows = [line.split(",") for line in lines[1:]]
    assert sorted((u, p) for _, u, p in rows) == [
        (urls[0], str(out / "big.png")),
        (urls[1], str(out / "icon.png")),
    ]
    for stamp, _, _ in rows:
        datetime.datetime.fromisoformat(stamp)  # str(datetime.now()), as the original wrote
    # a rerun skips both files and writes no log row; the seventh argument is resize_shape
    again = download_images_as_png(urls[:2], str(out), None, True, str(log), 2, 8)
    assert again.status.tolist() == ["skipped", "skipped"]
    assert len(log.read_text().splitlines()) == 3
    fresh = download_images_as_png(urls[:1], str(tmp_path / "small"), None, False, None, 1, 8)
    assert fresh.status.tolist() == ["ok"]
    with Image.open(tmp_path / "small" / "big.png") as image:
        assert image.size == (8, 8)
    # every newer parameter is keyword-only
    with pytest.raises(TypeError, match="positional"):
        download_images_as_png(urls, str(out), None, True, None, 2, 8, "url")  # type: ignore[misc]
    # neither outdir nor path_func: the working directory, as in the original
    monkeypatch.chdir(tmp_path)
    here = download_images_as_png(urls[1:2], progress=False)
    assert here.status.tolist() == ["ok"]
    assert (tmp_path / "icon.png").is_file()


def test_download_images_as_png_refuses_outdir_with_path_func(tmp_path: Path) -> None:
    """The original raised rather than ignore one of them; so do we, before any request."""
    with pytest.raises(ValueError, match="give outdir= or path_func=, not both"):
        download_images_as_png(
            ["http://127.0.0.1:9/a.jpg"], str(tmp_path / "out"), lambda u: str(tmp_path / "x.png")
        )
    for bad in ("log.txt", "memory://log.csv"):
        with pytest.raises(ValueError, match="write_log_path must"):
            download_images_as_png(["http://127.0.0.1:9/a.jpg"], str(tmp_path), None, True, bad)
    # a call refused up front writes no log either
    log = str(tmp_path / "log.csv")
    frame = pd.DataFrame({"url": ["http://127.0.0.1:9/a.jpg"]})
    for kwargs, error in [
        ({"path_func": 3}, "path_func must be callable"),
        ({"url_col": "link"}, r"no column\(s\) \['link'\]"),
        ({"filters": creevey_dask.FilterOptions(verify_hash=("md5", "md5"))}, "verify_hash names"),
        ({"path_func": str, "output_format": "webdataset"}, "but output_format='webdataset'"),
        # shards are no files: the log would stay empty
        (
            {"outdir": str(tmp_path / "shards"), "output_format": "parquet"},
            r"^write_log_path logs the files written, but output_format='parquet' writes shards",
        ),
    ]:
        with pytest.raises((TypeError, ValueError), match=error):
            download_images_as_png(frame, write_log_path=log, **kwargs)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("format", r"'format'; download_images_as_png writes PNG .*download\(format=\.\.\.\)"),
        ("quality", r"'quality'; .*download\(format=\.\.\., quality=\.\.\.\)"),
        ("ops", r"'ops'; pass resize_shape=, or call creevey_dask\.download\(ops="),
        ("outpath_func", r"'outpath_func'; it is path_func= here"),
        ("df", r"'df'; it is urls= here"),
    ],
)
def test_download_images_as_png_names_what_it_sets_itself(name: str, hint: str) -> None:
    """download()'s keywords that the PNG download fills itself say so (no look-alike)."""
    with pytest.raises(TypeError, match=rf"^download_images_as_png\(\) .*{hint}"):
        download_images_as_png(["http://127.0.0.1:9/a.jpg"], **{name: None})


def test_an_outpath_function_with_shards_is_refused_by_its_callers_name() -> None:
    """Shards are named by the run; the refusal names the parameter the caller passed."""
    urls = ["http://127.0.0.1:9/a.jpg"]
    with pytest.raises(ValueError, match=r"^outpath_func= names files, but output_format='we"):
        download(urls, None, outpath_func=str, output_format="webdataset")
    with pytest.raises(ValueError, match=r"^path_func= names files, but output_format='parq"):
        download_images_as_png(urls, path_func=str, output_format="parquet")
    with pytest.raises(TypeError, match=r"^path_func must be callable, got 3"):
        download_images_as_png(urls, path_func=3)  # type: ignore[arg-type]


def _quantization(data: bytes) -> object:
    with Image.open(io.BytesIO(data)) as image:
        return image.quantization  # the JPEG quantization tables: set by the quality


def test_accessor_download_defaults_to_jpeg_95_and_the_original_call_to_png(
    image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions
) -> None:
    df = pd.DataFrame(
        {"url": [image_server.url("/img/big.jpg"), image_server.url("/img/icon.png")]}
    )
    result = df.creevey.download(str(tmp_path / "a"), http_options=fast_http, progress=False)
    assert result.outpath.tolist() == [str(tmp_path / "a" / n) for n in ("big.jpg", "icon.jpg")]
    reference = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(reference, "JPEG", quality=95)
    for outpath in result.outpath:
        data = Path(outpath).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG"
        assert _quantization(data) == _quantization(reference.getvalue())
    lower = df.creevey.download(
        str(tmp_path / "b"), quality=60, http_options=fast_http, progress=False
    )
    assert _quantization(Path(lower.outpath[0]).read_bytes()) != _quantization(reference.getvalue())
    png = download_images_as_png(
        df.url, str(tmp_path / "c"), http_options=fast_http, progress=False
    )
    for outpath in png.outpath:
        assert outpath.endswith(".png")
        with Image.open(outpath) as image:
            assert image.format == "PNG"


def test_draft_decodes_large_jpegs_at_reduced_scale(image_server: ImageServer) -> None:
    loader = HttpLoader(HttpOptions())
    full = loader(image_server.url("/img/big.jpg"))
    reduced = loader(image_server.url("/img/big.jpg"), draft=lambda size: (100, 75))
    assert full.size == (800, 600)
    assert reduced.size == (100, 75)  # decoded at 1/8 scale, still >= the size asked for
    between = loader(image_server.url("/img/big.jpg"), draft=lambda size: (101, 75))
    assert between.size == (200, 150)  # 1/8 would be too small: 1/4
    assert pickle.loads(pickle.dumps(loader)).options == loader.options


def test_resume_skips_and_retry_redoes_only_failures(
    image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions
) -> None:
    good = [image_server.url(f"/img/many/{i:03d}.jpg") for i in range(6)]
    flaky = image_server.url("/img/many/010.jpg?fail=4&code=503")  # 4 failures, then fine
    df = pd.DataFrame({"url": [*good, flaky], "label": list("aaabbbc")})
    options = fast_http.replace(retries=1)
    first = download(df, str(tmp_path), http_options=options, progress=False)
    assert first.status.tolist() == ["ok"] * 6 + ["error"]
    assert first.attempts.iloc[-1] == 2

    again = download(df, str(tmp_path), http_options=options, progress=False)
    assert again.status.tolist() == ["skipped"] * 6 + ["error"]
    assert again.outpath.iloc[:6].tolist() == first.outpath.iloc[:6].tolist()
    assert pd.isna(again.attempts.iloc[:6]).all()  # no request made for skipped rows
    assert all(image_server.hits[u.split(str(image_server.port))[1]] == 1 for u in good)

    retried = download(
        again[again.status == "error"], str(tmp_path), http_options=options, progress=False
    )
    assert retried.status.tolist() == ["ok"]
    assert retried.label.tolist() == ["c"]
    assert list(retried.columns) == list(first.columns)
    assert retried.outpath.iloc[0] == str(tmp_path / "010.jpg")  # JPEG by default


def test_clashing_names_never_overwrite(
    image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions
) -> None:
    urls = [
        image_server.url("/img/photo.jpg"),
        image_server.url("/img/many/000.jpg"),
        image_server.url("/redirect/1/photo.jpg"),  # the file name is again photo.jpg
    ]
    result = download(urls, str(tmp_path), http_options=fast_http, progress=False)
    assert result.status.tolist() == ["ok", "ok", "ok"]
    assert result.outpath.tolist() == [
        f"{tmp_path}/photo.jpg",
        f"{tmp_path}/000.jpg",
        f"{tmp_path}/photo_{url_hash(urls[2])[:16]}.jpg",
    ]
    # the same table again: the same names, every row skipped
    again = download(urls, str(tmp_path), http_options=fast_http, progress=False)
    assert again.outpath.tolist() == result.outpath.tolist()
    assert (again.status == "skipped").all()
    # the later row alone: it still never takes the other URL's file
    alone = download(urls[2:], str(tmp_path), http_options=fast_http, progress=False)
    assert alone.outpath.tolist() == result.outpath.tolist()[2:]
    assert alone.status.tolist() == ["skipped"]
    hashed = download(
        urls, str(tmp_path / "h"), naming="url_hash", http_options=fast_http, progress=False
    )
    assert (hashed.status == "ok").all()
    assert hashed.outpath.nunique() == 3


def test_accessor_on_pandas_and_dask(
    image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions
) -> None:
    pdf = pd.DataFrame(
        {
            "link": [image_server.url(f"/img/many/{i:03d}.jpg") for i in range(8)]
            + [image_server.url("/img/gone.jpg?status=404")],
            "y": range(9),
        }
    )
    res = pdf.creevey.download(
        str(tmp_path / "p"),
        url_col="link",
        format="jpeg",
        naming="hash",
        http_options=fast_http,
        progress=False,
    )
    assert res.status.tolist() == ["ok"] * 8 + ["error"]
    assert all(p.endswith(".jpg") and p.count("/") >= 3 for p in res.outpath[:8])

    ddf = dd.from_pandas(pdf, npartitions=3, sort=False)
    lazy = ddf.creevey.download(str(tmp_path / "d"), url_col="link", http_options=fast_http)
    assert isinstance(lazy, dd.DataFrame)
    assert not files_in(tmp_path / "d")  # lazy: nothing downloaded yet
    computed = lazy.compute()
    assert computed.status.tolist() == ["ok"] * 8 + ["error"]
    assert computed.http_status.tolist()[-1] == 404
    for name, dtype in RESULT_DTYPES.items():
        assert str(computed[name].dtype) == dtype


def test_dask_input_resolves_clashes_across_partitions(
    image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions
) -> None:
    urls = [image_server.url(f"/img/many/{i:03d}.jpg") for i in range(6)]
    urls.append(image_server.url("/redirect/1/many/002.jpg"))  # same file name as row 2
    ddf = dd.from_pandas(pd.DataFrame({"url": urls}), npartitions=3, sort=False)
    result = download(ddf, str(tmp_path), http_options=fast_http).compute()
    assert result.status.tolist() == ["ok"] * 7
    assert result.outpath.nunique() == 7  # one of the two 002.png rows got a hashed name
    assert len(files_in(tmp_path)) == 7


def test_summary_is_logged_and_warns_when_most_fail(
    image_server: ImageServer,
    tmp_path: Path,
    fast_http: HttpOptions,
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls = [image_server.url(f"/img/nothere{i}.jpg") for i in range(3)] + [
        image_server.url("/img/photo.jpg")
    ]
    with caplog.at_level(logging.INFO, logger="creevey_dask"):
        download(urls, str(tmp_path), http_options=fast_http, progress=False)
    text = caplog.text
    assert "4 rows: 1 ok, 0 skipped, 3 error" in text
    assert "3 x HttpError: HTTP 404 Not Found" in text
    assert "failed downloads by last HTTP status: 3 x HTTP 404" in text
    assert any(
        r.levelno == logging.WARNING and "3 of 4 rows (75%) failed" in r.message
        for r in caplog.records
    )


def test_per_host_limit_holds_through_the_engine(
    fresh_image_server: ImageServer, tmp_path: Path, fast_http: HttpOptions
) -> None:
    image_server = fresh_image_server
    # 2 partitions run at once, 8 threads each: 16 rows could be in flight per host
    urls = [image_server.url(f"/img/many/{i:03d}.jpg?stall=0.1") for i in range(24)]
    urls += [
        image_server.url(f"/img/many/{i:03d}.jpg?stall=0.1", host="localhost") for i in range(24)
    ]
    result = download(
        urls,
        None,
        outpath_func=lambda u: str(tmp_path / f"{abs(hash(u))}.png"),
        n_jobs=8,
        progress=False,
        http_options=fast_http.replace(per_host_limit=3, read_timeout=5),
        options=creevey_dask.RunOptions(npartitions=2),
    )
    assert (result.status == "ok").all()
    # 127.0.0.1 and localhost are one server (one address): one limit for both spellings
    assert image_server.max_active_total == 3
    assert image_server.max_active["127.0.0.1"] >= 1
    assert image_server.max_active["localhost"] >= 1


def test_download_to_fsspec_memory(
    image_server: ImageServer, memfs, fast_http: HttpOptions
) -> None:
    urls = [image_server.url("/img/photo.jpg"), image_server.url("/img/gone.jpg?status=404")]
    result = download(
        urls, "memory://bucket/out", format="webp", http_options=fast_http, progress=False
    )
    assert result.status.tolist() == ["ok", "error"]
    assert result.outpath[0] == "memory://bucket/out/photo.webp"
    assert [p for p in memfs.ls("/bucket/out", detail=False) if "/." not in p] == [
        "/bucket/out/photo.webp"
    ]
    with Image.open(io.BytesIO(memfs.cat_file("/bucket/out/photo.webp"))) as image:
        assert (image.format, image.size) == ("WEBP", (64, 48))


@pytest.mark.cluster
def test_download_on_a_local_cluster(
    local_cluster_client: object,
    fresh_image_server: ImageServer,
    tmp_path: Path,
    fast_http: HttpOptions,
) -> None:
    image_server = fresh_image_server
    urls = [image_server.url(f"/img/many/{i:03d}.jpg") for i in range(20)]
    urls += [
        image_server.url("/img/x.jpg?status=404"),
        image_server.url("/img/photo.jpg?fail=1&code=500&c=1"),
    ]
    result = download(
        pd.DataFrame({"url": urls}),
        str(tmp_path),
        progress=False,
        http_options=fast_http.replace(per_host_limit=2),
        options=creevey_dask.RunOptions(npartitions=4),
    )
    assert result.status.tolist() == ["ok"] * 20 + ["error", "ok"]
    assert result.attempts.tolist()[-2:] == [1, 2]
    assert len(files_in(tmp_path)) == 21
    # the limit is per worker process; the cluster has 2 of them
    assert image_server.max_active["127.0.0.1"] <= 2 * 2


def test_the_http_loader_has_a_memory_budget_per_row(image_server, fast_http):
    from creevey_dask import ImageTooLargeError

    url = image_server.url("/img/big.jpg")  # 800 x 600 RGB
    assert HttpLoader(fast_http)(url).size == (800, 600)
    with pytest.raises(ImageTooLargeError, match="max_row_bytes=1,000,000"):
        HttpLoader(fast_http, max_row_bytes=1_000_000)(url)
    assert pickle.loads(pickle.dumps(HttpLoader(max_row_bytes=7))).max_row_bytes == 7
