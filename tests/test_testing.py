"""creevey_dask.testing: the public loopback image server and its documented routes.

Checked with plain ``requests`` and raw sockets (not our own HTTP client), so the server's
promises are tested independently of the code it is used to test.
"""

from __future__ import annotations

import io
import re
import socket
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from PIL import Image

import creevey_dask.testing as testing
from creevey_dask.testing import LABELS, ImageServer, sample_images

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server():
    with ImageServer({"a.png": b"PNGDATA" * 10, "dir/b.jpg": b"JPEGDATA"}) as running:
        yield running


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def test_port_zero_context_manager_and_stop() -> None:
    with ImageServer() as one, ImageServer() as two:
        assert one.port != two.port
        assert one.port > 0
        assert one.url("/img/x.jpg") == f"http://127.0.0.1:{one.port}/img/x.jpg"
        port = one.port
    with pytest.raises(RuntimeError, match="call start"):
        _ = one.port
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))  # the listening socket is closed
    one.stop()  # idempotent


def test_start_returns_self_and_url_takes_query_and_host(server: ImageServer) -> None:
    assert server.start() is server
    assert server.url("img/a.png", fail=2, code=503).endswith("/img/a.png?fail=2&code=503")
    assert server.url("/img/a.png?x=1", status=404).endswith("/img/a.png?x=1&status=404")
    assert server.url("/", host="localhost").startswith("http://localhost:")


def test_files_and_content_types(server: ImageServer, http: requests.Session) -> None:
    answer = http.get(server.url("/img/a.png"))
    assert (answer.status_code, answer.content) == (200, b"PNGDATA" * 10)
    assert answer.headers["Content-Type"] == "image/png"
    assert http.get(server.url("/img/dir/b.jpg")).headers["Content-Type"] == "image/jpeg"
    assert http.get(server.url("/img/nope.jpg")).status_code == 404
    assert http.get(server.url("/img/a.png", type="text/html")).headers["Content-Type"] == (
        "text/html"
    )
    server.files["new.jpg"] = b"added while running"
    assert http.get(server.url("/img/new.jpg")).content == b"added while running"


def test_status_fail_and_retry_after(server: ImageServer, http: requests.Session) -> None:
    assert http.get(server.url("/img/a.png", status=418)).status_code == 418
    flaky = server.url("/img/a.png", fail=2, code=503, retry_after=7, name="t1")
    first, second, third = (http.get(flaky) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.headers["Retry-After"] == "7"
    assert server.hits["/img/a.png?fail=2&code=503&retry_after=7&name=t1"] == 3


def test_reset_short_and_nolength(server: ImageServer) -> None:
    with requests.Session() as http, pytest.raises(requests.ConnectionError):
        http.get(server.url("/img/a.png", reset=1, name="t2"))
    with requests.Session() as http:
        assert http.get(server.url("/img/a.png", reset=1, name="t2")).status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            http.get(server.url("/img/a.png", short=1))
        whole = http.get(server.url("/img/a.png", nolength=1))
        assert "Content-Length" not in whole.headers
        assert whole.content == b"PNGDATA" * 10


def test_stall_is_cut_short_by_a_read_timeout(server: ImageServer, http: requests.Session) -> None:
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(server.url("/img/a.png", stall=5), timeout=(1, 0.2))


def test_html_big_robots_and_redirects(server: ImageServer, http: requests.Session) -> None:
    page = http.get(server.url("/html/anything.jpg"))
    assert page.headers["Content-Type"].startswith("text/html")
    assert b"<html>" in page.content
    assert http.get(server.url("/big/1000")).content == bytes(1000)
    assert http.get(server.url("/img/a.png", robots="noai")).headers["X-Robots-Tag"] == "noai"
    chain = http.get(server.url("/redirect/3/a.png"))
    assert len(chain.history) == 3
    assert chain.content == b"PNGDATA" * 10
    one = http.get(server.url("/redirect-to", url="file:///etc/passwd"), allow_redirects=False)
    assert (one.status_code, one.headers["Location"]) == (302, "file:///etc/passwd")


def test_counters_user_agents_and_reset(http: requests.Session) -> None:
    with ImageServer({"a.png": b"PNGDATA"}) as server:  # no stalled request of other tests
        http.get(server.url("/img/a.png"), headers={"User-Agent": "probe/1"})
        assert server.hits == {"/img/a.png": 1}
        assert server.user_agents["probe/1"] == 1
        assert server.max_active["127.0.0.1"] == 1
        assert server.active["127.0.0.1"] == 0
        server.reset_counters()
        assert not server.hits
        assert not server.user_agents


def test_sample_images_are_seeded_labelled_jpegs() -> None:
    images = sample_images(5, seed=3)
    assert list(images) == [f"{LABELS[i % 3]}_{i:03d}.jpg" for i in range(5)]
    assert images == sample_images(5, seed=3)
    assert images != sample_images(5, seed=4)
    for data in images.values():
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG"
            assert 320 <= image.width < 900
            assert 240 <= image.height < 700
    assert sample_images(0) == {}
    with pytest.raises(ValueError, match="n must be zero or more"):
        sample_images(-1)


def test_public_docs_import_no_private_module() -> None:
    """Docstrings, the README, the docs, the notebooks and the demo use only public modules."""
    private = re.compile(r"(from|import)\s+creevey_dask\._\w+|from \._testserver")
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    sources += sorted((ROOT / "notebooks").glob("*.py"))
    sources += sorted((ROOT / "notebooks").glob("*.ipynb"))
    sources += sorted((ROOT / "creevey_dask").glob("*.py"))
    offenders = [str(p.relative_to(ROOT)) for p in sources if private.search(p.read_text())]
    assert offenders == []
    assert testing.__all__ == ["LABELS", "ImageServer", "sample_images"]


def test_serves_non_ascii_names_percent_encoded(tmp_path: Path) -> None:
    """A 250-byte UTF-8 name is served at its percent-encoded path, and downloaded whole."""
    import pandas as pd

    import creevey_dask  # noqa: F401  (registers df.creevey)

    name = "é" * 123 + ".jpg"  # 250 bytes of UTF-8
    data = sample_images(1)["circle_000.jpg"]
    with ImageServer({name: data}) as srv:
        url = srv.url("/img/" + quote(name))
        with requests.get(url, timeout=10) as response:
            assert response.status_code == 200
            assert response.content == data
        df = pd.DataFrame({"url": [url]})
        res = df.creevey.download(tmp_path, format="original", progress=False)
    assert res.status.tolist() == ["ok"], res.error.tolist()
    outpath = Path(res.outpath[0])
    assert outpath.name == name
    assert outpath.read_bytes() == data
