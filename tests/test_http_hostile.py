"""The HTTP client against servers and URLs that try to talk past it.

Every connection the tests make goes to 127.0.0.1: an audit hook refuses any other
address, so a spelling of a link-local or metadata address that got past the checks
would fail the test instead of sending traffic anywhere.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import pytest
from PIL import Image

import creevey_dask
from creevey_dask import download, resize_multiple_files
from creevey_dask.exceptions import (
    ContentEncodingError,
    DownloadTimeoutError,
    HttpError,
    ImageDecodeError,
    ImageTooLargeError,
    UnsafeSourceError,
)
from creevey_dask.image.imagefile import decode_image
from creevey_dask.sources.http import HttpOptions, fetch
from creevey_dask.testing import ImageServer

# -- a guard: no connection leaves loopback ----------------------------------------------

_connects: list[str] = []
_guard = threading.local()


def _audit(event: str, args: tuple) -> None:
    if event != "socket.connect" or not getattr(_guard, "on", False):
        return
    address = args[1]
    if isinstance(address, tuple):
        host = str(address[0]).split("%")[0]
        _connects.append(host)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return
        if not ip.is_loopback:
            raise RuntimeError(f"the test tried to connect to {host}")


sys.addaudithook(_audit)


@pytest.fixture
def loopback_only() -> Iterator[list[str]]:
    """Refuse (in this thread) every connection not to loopback; yield the addresses tried."""
    _connects.clear()
    _guard.on = True
    try:
        yield _connects
    finally:
        _guard.on = False


# -- a raw server that misbehaves on purpose ----------------------------------------------


class RawServer:
    """Accept connections on 127.0.0.1 and hand each to ``handler(conn)`` in a thread."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop = threading.Thread(target=self._serve, daemon=True)
        self._loop.start()

    def url(self, path: str = "/x.jpg", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                _read_request(conn)
                self.handler(conn)
            except OSError:
                pass

    def trickle(self, conn: socket.socket, data: bytes, every: float = 0.25) -> None:
        for i in range(len(data)):
            if self._stop.wait(every):
                return
            conn.sendall(data[i : i + 1])

    def close(self) -> None:
        self._stop.set()
        self._loop.join(5)
        self.sock.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _jpeg(size: tuple[int, int] = (32, 24), **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


@pytest.fixture
def quick() -> HttpOptions:
    return HttpOptions(
        connect_timeout=1.0, read_timeout=5.0, deadline=10.0, retries=0, backoff_base=0.01
    )


# -- spellings of loopback and link-local addresses ----------------------------------------

LOOPBACK_SPELLINGS = [
    "%31%32%37.0.0.1",  # percent-encoded
    "2130706433",  # decimal
    "0x7f000001",  # hex
    "0177.0.0.1",  # octal
    "127.1",  # short form
]
LOOPBACK_IN_IPV6 = [
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::127.0.0.1]",  # IPv4-compatible
    "[64:ff9b::7f00:1]",  # NAT64
    "[2002:7f00:1::1]",  # 6to4
]
LINK_LOCAL_SPELLINGS = [
    "%31%36%39.254.169.254",
    "2852039166",
    "0xa9.0xfe.0xa9.0xfe",
    "0251.0376.0251.0376",
    "[::ffff:169.254.169.254]",
    "[::a9fe:a9fe]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
    "[fe80::1%25lo]",
    "[fd00:ec2::254]",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_loopback_spellings_reach_loopback_and_are_refused_when_private(
    fresh_image_server: ImageServer, fast_http: HttpOptions, host: str, loopback_only: list[str]
) -> None:
    server = fresh_image_server
    url = f"http://{host}:{server.port}/img/photo.jpg"
    # allowed by default: the spelling means 127.0.0.1, and that is where it goes
    assert fetch(url, fast_http).body == server.files["photo.jpg"]
    assert set(loopback_only) <= {"127.0.0.1", "::1"}
    server.reset_counters()
    with pytest.raises(UnsafeSourceError, match="private, loopback"):
        fetch(url, fast_http.replace(refuse_private=True))
    assert not server.hits


@pytest.mark.parametrize("host", LOOPBACK_IN_IPV6)
def test_ipv6_forms_of_loopback_are_refused_when_private(
    fresh_image_server: ImageServer, fast_http: HttpOptions, host: str, loopback_only: list[str]
) -> None:
    url = f"http://{host}:{fresh_image_server.port}/img/photo.jpg"
    with pytest.raises(UnsafeSourceError, match="refused"):
        fetch(url, fast_http.replace(refuse_private=True))
    assert loopback_only == []  # refused before any connection
    assert not fresh_image_server.hits


@pytest.mark.parametrize("private", [False, True])
@pytest.mark.parametrize("host", LINK_LOCAL_SPELLINGS)
def test_link_local_spellings_are_refused_before_connecting(
    fast_http: HttpOptions, host: str, private: bool, loopback_only: list[str]
) -> None:
    with pytest.raises(UnsafeSourceError, match="link-local or cloud-metadata"):
        fetch(f"http://{host}/latest/meta-data/", fast_http.replace(refuse_private=private))
    assert loopback_only == []


def test_redirect_to_an_encoded_metadata_address_is_refused(
    image_server: ImageServer, fast_http: HttpOptions, loopback_only: list[str]
) -> None:
    target = "http://%31%36%39.254.169.254/latest/meta-data/"
    with pytest.raises(UnsafeSourceError, match="link-local or cloud-metadata"):
        fetch(image_server.url(f"/redirect-to?url={target.replace('%', '%25')}"), fast_http)
    assert set(loopback_only) <= {"127.0.0.1"}


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: image/jpeg\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
def test_private_refused_whatever_the_server_answers(quick: HttpOptions, answer: bytes) -> None:
    def handler(conn: socket.socket) -> None:
        conn.sendall(answer + _jpeg())

    with RawServer(handler) as server:
        assert fetch(server.url(), quick).body == _jpeg()  # the server works
        accepted = server.accepted
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(UnsafeSourceError, match="private, loopback"):
                fetch(server.url(host=host), quick.replace(refuse_private=True))
        assert server.accepted == accepted  # the check ran before connecting


# -- the deadline bounds the whole request ---------------------------------------------------

BODY = _jpeg()


def _trickled_headers(server: RawServer, conn: socket.socket) -> None:
    server.trickle(conn, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n")


def _trickled_length_body(server: RawServer, conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY))
    server.trickle(conn, BODY)


def _trickled_close_body(server: RawServer, conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    server.trickle(conn, BODY)


@pytest.mark.parametrize(
    "behaviour", [_trickled_headers, _trickled_length_body, _trickled_close_body]
)
def test_deadline_bounds_a_trickling_server(quick: HttpOptions, behaviour: Callable) -> None:
    holder: list[RawServer] = []
    with RawServer(lambda conn: behaviour(holder[0], conn)) as server:
        holder.append(server)
        options = quick.replace(deadline=1.5, retries=3)
        start = time.monotonic()
        with pytest.raises(DownloadTimeoutError, match=r"deadline of 1\.5 s per URL passed"):
            fetch(server.url(), options)
        assert time.monotonic() - start < 1.5 + 1


def test_deadline_row_through_download(quick: HttpOptions, tmp_path: Path) -> None:
    from creevey_dask import download

    holder: list[RawServer] = []
    with RawServer(lambda conn: _trickled_length_body(holder[0], conn)) as server:
        holder.append(server)
        start = time.monotonic()
        result = download(
            pd.DataFrame({"url": [server.url()]}),
            str(tmp_path / "out"),
            http_options=quick.replace(deadline=1.0),
            progress=False,
        )
        assert time.monotonic() - start < 1.0 + 1 + 2  # + the run's own overhead
    row = result.iloc[0]
    assert row["status"] == "error"
    assert row["error"].startswith("DownloadTimeoutError: the deadline of 1 s per URL passed")
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


# -- decode limits ----------------------------------------------------------------------------


def _many_scans(count: int) -> bytes:
    """A progressive JPEG whose last scan is repeated until it has ``count`` scans."""
    data = _jpeg((64, 48), progressive=True)
    last_sos = data.rindex(b"\xff\xda")
    scan = data[last_sos:-2]  # the last scan, up to EOI
    body = data[:-2] + scan * (count - data.count(b"\xff\xda")) + b"\xff\xd9"
    return body


def test_many_scans_are_refused_before_decoding() -> None:
    data = _many_scans(5000)
    assert data.count(b"\xff\xda") == 5000
    start = time.monotonic()
    with pytest.raises(ImageTooLargeError, match=r"5,000 scans, more than max_scans=256"):
        decode_image(data, "bomb.jpg")
    assert time.monotonic() - start < 1
    assert decode_image(_many_scans(20)).size == (64, 48)
    assert decode_image(_many_scans(300), max_scans=None).size == (64, 48)


def test_a_single_scan_jpeg_is_not_counted_and_extra_scans_are_refused_by_the_decoder() -> None:
    from creevey_dask.image.decode import _one_scan_only

    baseline, progressive = _jpeg((64, 48)), _jpeg((64, 48), progressive=True)
    assert _one_scan_only(baseline)  # sequential, every component in the first scan
    assert not _one_scan_only(progressive)
    assert not _one_scan_only(_many_scans(20))
    for cut in range(len(baseline)):  # any truncation of the headers: an answer, no error
        assert isinstance(_one_scan_only(baseline[:cut]), bool)
    # the walk takes only the plain layout: a restart marker (no length for libjpeg),
    # stray bytes or a second frame make it count the scans; here a fake one-scan header
    # hides in a comment after "FF D0 00 06", which a walk that read a length after every
    # marker would have jumped into, while libjpeg decodes the progressive frame after it
    fake = bytes.fromhex("FFC0000B080010001001011100") + bytes.fromhex("FFDA000801010000003F00")
    comment = b"\xff\xfe" + len(fake + b"..").to_bytes(2, "big") + fake
    desync = b"\xff\xd8\xff\xd0\x00\x06" + comment + _many_scans(300)[2:]
    assert not _one_scan_only(desync)
    with pytest.raises(ImageTooLargeError, match=r"30\d scans, more than max_scans=256"):
        decode_image(desync, "desync.jpg")
    sof = baseline.index(b"\xff\xc0")
    segment = baseline[sof : sof + 2 + int.from_bytes(baseline[sof + 2 : sof + 4], "big")]
    assert not _one_scan_only(baseline[:sof] + segment + baseline[sof:])  # two frames
    assert not _one_scan_only(baseline[:2] + b"\xff" + baseline[2:])  # a fill byte
    # the scan count is skipped for such a file: 5,000 repeated scans are refused by
    # libjpeg itself at the second one, at once, as a corrupt image
    sos = baseline.index(b"\xff\xda")
    bomb = baseline[:-2] + baseline[sos:-2] * 4999 + b"\xff\xd9"
    assert bomb.count(b"\xff\xda") == 5000
    start = time.monotonic()
    with pytest.raises(ImageDecodeError, match="corrupt JPEG data"):
        decode_image(bomb, "bomb.jpg")
    assert time.monotonic() - start < 1


def test_many_scans_give_an_error_row(image_server: ImageServer, tmp_path: Path) -> None:
    from creevey_dask import download

    image_server.files["scans.jpg"] = _many_scans(3000)
    start = time.monotonic()
    result = download(
        pd.DataFrame({"url": [image_server.url("/img/scans.jpg")]}),
        str(tmp_path / "out"),
        progress=False,
    )
    row = result.iloc[0]
    assert row["status"] == "error"
    assert "3,000 scans, more than max_scans=256" in row["error"]
    assert time.monotonic() - start < 5  # the run, not the decode (refused in microseconds)


# -- every entry point uses the same client ---------------------------------------------------


def test_resize_of_http_urls_goes_through_the_client(
    image_server: ImageServer, tmp_path: Path, loopback_only: list[str]
) -> None:
    urls = [
        image_server.url("/img/wide.jpg"),
        image_server.url("/img/gone.jpg?status=404"),
        "http://%31%36%39.254.169.254/latest/meta-data/x.jpg",
    ]
    result = resize_multiple_files(urls, (30, 60), str(tmp_path / "out"), progress=False)
    ok, missing, metadata = (result.iloc[i] for i in range(3))
    assert ok["status"] == "ok"
    with Image.open(ok["outpath"]) as image:
        assert image.size == (60, 30)
        expected = Image.open(io.BytesIO(image_server.files["wide.jpg"])).convert("RGB")
        assert image.convert("RGB").getpixel((0, 0)) == pytest.approx(
            expected.resize((60, 30)).getpixel((0, 0)), abs=40
        )
    assert missing["status"] == "error"
    assert missing["error"] == "HttpError: HTTP 404 Not Found"
    assert metadata["status"] == "error"
    assert metadata["error"].startswith("UnsafeSourceError:")
    assert "link-local or cloud-metadata" in metadata["error"]


# -- politeness across a cluster ------------------------------------------------------------


class CountingServer(RawServer):
    """Answer every request with a small JPEG after ``delay``; record arrivals and concurrency."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.arrivals: list[float] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        super().__init__(self._answer)

    def _answer(self, conn: socket.socket) -> None:
        with self._lock:
            self.arrivals.append(time.monotonic())
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self._stop.wait(self.delay)
        finally:
            with self._lock:
                self.active -= 1
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
        )


def _run_on_cluster(server: CountingServer, options: HttpOptions, tmp_path: Path, n: int) -> None:
    from creevey_dask import download

    urls = pd.DataFrame({"url": [server.url(f"/img{i:03d}.jpg") for i in range(n)]})
    result = download(
        urls,
        str(tmp_path),
        n_jobs=4,
        progress=False,
        http_options=options,
        options=creevey_dask.RunOptions(npartitions=2),
    )
    assert list(result["status"]) == ["ok"] * n, result["error"].dropna().tolist()
    for path in result["outpath"]:
        with Image.open(path) as image:
            assert image.size == (32, 24)


def test_per_host_limit_holds_across_the_cluster(
    local_cluster_client: object, quick: HttpOptions, tmp_path: Path
) -> None:
    # 2 worker processes x 2 threads x n_jobs=4: without a cluster-wide limit, up to 4
    # requests (2 per process) would be in flight at once
    with CountingServer(delay=0.15) as server:
        _run_on_cluster(server, quick.replace(per_host_limit=2), tmp_path, 24)
        assert server.max_active == 2


def test_per_host_rate_holds_across_the_cluster(
    local_cluster_client: object, quick: HttpOptions, tmp_path: Path
) -> None:
    with CountingServer(delay=0.0) as server:
        _run_on_cluster(server, quick.replace(per_host_rate=4, per_host_limit=8), tmp_path, 12)
        times = sorted(server.arrivals)
    assert len(times) == 12
    busiest = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    assert busiest <= 4
    assert times[-1] - times[0] >= 2.0  # 12 starts at 4 per second: 3 one-second windows


def test_deadline_bounds_a_stalled_tls_handshake(quick: HttpOptions) -> None:
    # a server that accepts the connection and never answers the TLS ClientHello
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        conn, _ = listener.accept()
        held.append(conn)
        stop.wait(10)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        options = quick.replace(deadline=1.5, retries=2, connect_timeout=5.0)
        start = time.monotonic()
        with pytest.raises(DownloadTimeoutError, match=r"deadline of 1\.5 s per URL passed"):
            fetch(f"https://127.0.0.1:{port}/x.jpg", options)
        assert time.monotonic() - start < 1.5 + 1
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


# -- headers scoped to their origin ---------------------------------------------------------

SECRET_HEADERS = (
    ("Authorization", "Bearer s3cr3t"),
    ("Cookie", "session=s3cr3t"),
    ("Proxy-Authorization", "Basic s3cr3t"),
    ("X-Api-Key", "s3cr3t"),
    ("X-Trace", "kept"),
)


@pytest.fixture
def two_servers() -> Iterator[tuple[ImageServer, ImageServer]]:
    """Two real image servers on loopback, on different ports (two origins)."""
    files = {"a.jpg": _jpeg()}
    with ImageServer(files) as first, ImageServer(files) as second:
        yield first, second


def test_credentials_are_dropped_on_a_redirect_to_another_origin(
    quick: HttpOptions, two_servers: tuple[ImageServer, ImageServer]
) -> None:
    first, second = two_servers
    options = quick.replace(headers=SECRET_HEADERS, sensitive_headers=("x-api-key",))
    target = second.url("/img/a.jpg")
    result = fetch(first.url("/redirect-to", url=target), options)
    assert result.status == 200
    assert result.final_url == target
    sent_first = first.headers_seen["/redirect-to?" + urlencode({"url": target})]
    assert sent_first["authorization"] == "Bearer s3cr3t"
    assert sent_first["cookie"] == "session=s3cr3t"
    assert sent_first["x-api-key"] == "s3cr3t"
    sent_second = second.headers_seen["/img/a.jpg"]
    for name in ("authorization", "cookie", "proxy-authorization", "x-api-key"):
        assert name not in sent_second, name
    assert sent_second["x-trace"] == "kept"  # a header not marked sensitive travels


def test_credentials_are_dropped_when_the_host_spelling_changes(
    quick: HttpOptions, two_servers: tuple[ImageServer, ImageServer]
) -> None:
    """localhost and 127.0.0.1 are two origins to a browser: the secret stays behind."""
    first, _ = two_servers
    options = quick.replace(headers=SECRET_HEADERS)
    target = first.url("/img/a.jpg", host="localhost")
    fetch(first.url("/redirect-to", url=target), options)
    assert "authorization" not in first.headers_seen["/img/a.jpg"]
    assert "cookie" not in first.headers_seen["/img/a.jpg"]


def test_credentials_follow_a_redirect_on_the_same_origin(
    quick: HttpOptions, two_servers: tuple[ImageServer, ImageServer]
) -> None:
    first, _ = two_servers
    fetch(first.url("/redirect/2/a.jpg"), quick.replace(headers=SECRET_HEADERS))
    assert first.headers_seen["/img/a.jpg"]["authorization"] == "Bearer s3cr3t"
    assert first.headers_seen["/img/a.jpg"]["cookie"] == "session=s3cr3t"


def test_credentials_stay_dropped_after_a_redirect_back(
    quick: HttpOptions, two_servers: tuple[ImageServer, ImageServer]
) -> None:
    """Away to another origin and back: the other origin chose the way back."""
    first, second = two_servers
    back = first.url("/img/a.jpg")
    away = second.url("/redirect-to", url=back)
    fetch(first.url("/redirect-to", url=away), quick.replace(headers=SECRET_HEADERS))
    assert "authorization" not in first.headers_seen["/img/a.jpg"]


def test_sensitive_headers_are_checked() -> None:
    with pytest.raises(TypeError, match="sensitive_headers"):
        HttpOptions(sensitive_headers="X-Api-Key")  # type: ignore[arg-type]
    assert HttpOptions(sensitive_headers=["X-Api-Key"]).sensitive_headers == ("x-api-key",)


# -- no secret in a result, a log or a summary ----------------------------------------------


def _png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares ``width`` x ``height`` (a bomb by its header)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def test_no_secret_of_a_url_reaches_the_error_the_summary_or_the_log(
    quick: HttpOptions,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = {"bomb.png": _png_declaring(20_000, 20_000), "a.jpg": _jpeg()}
    with ImageServer(files) as server:
        base = f"http://bobby7:hunter2@127.0.0.1:{server.port}"
        urls = [
            f"{base}/img/bomb.png?size=2&token=tok3n&X-Amz-Signature=s1gn4ture",
            # a redirect to a refused scheme: the refused URL is named in the message
            server.url("/redirect-to", url="ftp://mallory9:pa55word@example.com/a.jpg?api_key=k3y"),
        ]
        frame = pd.DataFrame({"url": urls})
        with caplog.at_level("INFO", logger="creevey_dask"):
            result = download(frame, tmp_path, http_options=quick, progress=True)
    assert result["status"].tolist() == ["error", "error"]
    assert result["url"].tolist() == urls  # the url column stays as given
    assert result["error"].iloc[0].startswith("ImageTooLargeError: ")
    assert "127.0.0.1" in result["error"].iloc[0]  # the URL is still named, redacted
    assert result["error"].iloc[1].startswith("UnsafeSourceError: ")
    shown = " ".join(result["error"]) + capfd.readouterr().err + caplog.text
    for secret in ("hunter2", "bobby7", "tok3n", "s1gn4ture", "pa55word", "mallory9", "k3y"):
        assert secret not in shown, secret
    assert "token=***" in shown
    assert "size=2" in shown  # what is not a credential stays


def test_redact_url_hides_userinfo_and_credential_parameters() -> None:
    from creevey_dask.sources.http import redact_url

    url = "https://u:p@h.example:8443/a.jpg?sig=1&Signature=2&password=3&secret=4&w=5#x"
    assert redact_url(url) == (
        "https://***@h.example:8443/a.jpg?sig=***&Signature=***&password=***&secret=***&w=5#x"
    )
    assert redact_url("https://[::1/a?token=1") == "https://***"


# -- politeness by address ------------------------------------------------------------------

ONE_SERVER_SPELLINGS = ["127.0.0.1", "localhost", "127.1", "2130706433", "[::ffff:127.0.0.1]"]


def test_spellings_of_one_server_share_one_per_host_limit(quick: HttpOptions, overlap: Any) -> None:
    body = _jpeg()

    def slow(conn: socket.socket) -> None:
        with overlap:
            pass
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    options = quick.replace(per_host_limit=2)
    errors: list[BaseException] = []

    def get(url: str) -> None:
        try:
            fetch(url, options)
        except BaseException as err:  # reported below
            errors.append(err)

    with RawServer(slow) as server:
        urls = [server.url(f"/{i}.jpg", host=h) for h in ONE_SERVER_SPELLINGS for i in range(2)]
        threads = [threading.Thread(target=get, args=(url,)) for url in urls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert server.accepted == len(urls)
    assert overlap.most == 2  # ten requests, five spellings, one server: two at a time


# -- an encoding chain is an error of its own kind, fetched once ----------------------------


def test_a_stack_of_content_encodings_is_refused_once(quick: HttpOptions) -> None:
    body = _jpeg()
    for _ in range(7):
        body = gzip.compress(body)

    def stacked(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
            + b"Content-Encoding: "
            + b", ".join([b"gzip"] * 7)
            + b"\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    with RawServer(stacked) as server:
        with pytest.raises(ContentEncodingError, match="stacks 7 Content-Encodings") as info:
            fetch(server.url(), quick.replace(retries=3))
        assert server.accepted == 1  # final at once: not retried
    assert isinstance(info.value, ValueError)
    assert info.value.attempts == 1


def test_two_content_encodings_are_decoded(quick: HttpOptions) -> None:
    body = _jpeg()
    wrapped = gzip.compress(gzip.compress(body))

    def two(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
            + b"Content-Encoding: gzip, gzip\r\n"
            + f"Content-Length: {len(wrapped)}\r\n\r\n".encode()
            + wrapped
        )

    with RawServer(two) as server:
        assert fetch(server.url(), quick).body == body


def test_a_server_asked_pause_holds_for_every_spelling_of_it(
    fresh_image_server: ImageServer, quick: HttpOptions
) -> None:
    server = fresh_image_server
    options = quick.replace(retry_after_cap=5)
    with pytest.raises(HttpError, match="HTTP 503"):
        fetch(server.url("/img/photo.jpg", fail=9, code=503, retry_after=3), options)
    for host in ("localhost", "127.1", "[::ffff:127.0.0.1]"):
        with pytest.raises(DownloadTimeoutError, match=r"asked \(Retry-After\) for a pause"):
            fetch(server.url("/img/icon.png", host=host), options.replace(deadline=1))
    assert server.hits["/img/icon.png"] == 0
