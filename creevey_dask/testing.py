"""A loopback image server with injectable faults, for docs, notebooks and your tests.

Like ``xarray.testing``, this module is public so that code built on creevey_dask can be
tested the way creevey_dask tests itself: against a real HTTP server on ``127.0.0.1``
(never the internet), started on a free port (port 0) from a background thread.

- :class:`ImageServer` serves a mapping of ``name -> bytes`` and answers with the
  faults a real web server produces, chosen by the URL, so one server covers every case.
- :func:`sample_images` makes small, seeded, labelled JPEGs to serve (a circle, a
  square or a triangle on a coloured background; the label is the file name's prefix).

The routes (``<name>`` is a key of :attr:`ImageServer.files`; add any of the query
parameters to an ``/img/`` URL, or pass them to :meth:`ImageServer.url` as keywords)::

    /img/<name>                       the file (Content-Type from the extension)
    /img/<name>?status=404            always that status (with a short text body)
    /img/<name>?fail=2&code=503       the first 2 requests for this exact URL get 503, then the file
        &retry_after=1                ... with a Retry-After header (seconds, or an HTTP date)
    /img/<name>?reset=1               the first N requests: the connection is reset (TCP RST)
    /img/<name>?stall=5               wait 5 s before answering (cut short by stop())
    /img/<name>?short=1               announce the full Content-Length, send half, close
    /img/<name>?nolength=1            no Content-Length: the body ends when the connection closes
    /img/<name>?robots=noai           an X-Robots-Tag header with that value
    /img/<name>?type=text/html        another Content-Type
    /img/<missing name>               404
    /html/<anything>                  an HTML page (200, text/html)
    /big/<n>                          n bytes of zeros (add ?nolength=1 to hide the size)
    /redirect/<k>/<name>              a chain of k redirects ending at /img/<name>
    /redirect-to?url=<url>            one redirect to any URL (e.g. file:///etc/passwd)

Query parameters other than these are ignored, so ``?name=cut.jpg`` gives the same
file a URL of its own (its own hit count, its own download file name).

The server counts requests per URL path (:attr:`ImageServer.hits`), remembers the
User-Agents seen (:attr:`ImageServer.user_agents`), and tracks the requests being
handled per ``Host`` header, from their arrival to the start of the answer
(:attr:`ImageServer.active`, :attr:`ImageServer.max_active`), so tests can check
retries, politeness and per-host limits.

Examples
--------
Serve generated images, download them with one URL failing, and stop the server:

>>> import tempfile
>>> import pandas as pd
>>> import creevey_dask  # registers df.creevey
>>> from creevey_dask.testing import ImageServer, sample_images
>>> images = sample_images(3)
>>> sorted(images)
['circle_000.jpg', 'square_001.jpg', 'triangle_002.jpg']
>>> with ImageServer(images) as server:
...     urls = [server.url(f"/img/{name}") for name in images]
...     urls.append(server.url("/img/missing.jpg"))  # not served: 404
...     res = pd.DataFrame({"url": urls}).creevey.download(tempfile.mkdtemp(), progress=False)
>>> res.status.tolist()
['ok', 'ok', 'ok', 'error']
>>> res.error.iloc[-1]
'HttpError: HTTP 404 Not Found'
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
import socket
import struct
import threading
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["LABELS", "ImageServer", "sample_images"]

#: The labels of :func:`sample_images`: the shape drawn on each image.
LABELS = ("circle", "square", "triangle")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128
    owner: ImageServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, socket.timeout, OSError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, ValueError):
            super().finish()

    def do_GET(self) -> None:
        owner = self.server.owner
        self._host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        self._counted = True
        owner._enter(self.path, self._host, self.headers.get("User-Agent"))
        with owner._lock:
            owner.headers_seen[self.path] = {k.lower(): v for k, v in self.headers.items()}
        try:
            self._route(owner)
        finally:
            self._uncount()

    def _uncount(self) -> None:
        """End this request's time in :attr:`ImageServer.active`: just before answering.

        Counting from the request's arrival to the first byte of the answer keeps the
        server's window inside the client's (which ends when the body has been read),
        so :attr:`ImageServer.max_active` never over-counts a client's concurrency.
        """
        if getattr(self, "_counted", False):
            self._counted = False
            self.server.owner._leave(self._host)

    # -- helpers ------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
        length: bool = True,
    ) -> None:
        self._uncount()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        if not length:
            self.wfile.flush()

    def _reset(self) -> None:
        """Abort the connection with a TCP RST."""
        self._uncount()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _route(self, owner: ImageServer) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = [unquote(s) for s in parts.path.split("/") if s]  # "/img/%C3%A9.jpg"
        nth = owner.hits[self.path]  # this request is the nth for this exact URL
        if "stall" in query and owner._stop.wait(float(query["stall"])):
            return
        if "reset" in query and nth <= int(query["reset"]):
            self._reset()
            return
        if "fail" in query and nth <= int(query["fail"]):
            headers = {}
            if "retry_after" in query:
                headers["Retry-After"] = query["retry_after"]
            self._send(int(query.get("code", 500)), b"failing on purpose", "text/plain", headers)
            return
        if "status" in query:
            self._send(int(query["status"]), b"status on purpose", "text/plain")
            return
        if not segments:
            self._send(404, b"not found", "text/plain")
            return
        kind = segments[0]
        if kind == "redirect-to":
            self._send(302, b"", headers={"Location": query.get("url", "/")})
            return
        if kind == "redirect" and len(segments) >= 3:
            left = int(segments[1])
            name = "/".join(segments[2:])
            target = f"/redirect/{left - 1}/{name}" if left > 1 else f"/img/{name}"
            self._send(302, b"", headers={"Location": target})
            return
        if kind == "html":
            page = b"<!doctype html><html><body><h1>Not an image</h1></body></html>"
            self._send(200, page, "text/html; charset=utf-8")
            return
        if kind == "big" and len(segments) == 2:
            body = bytes(int(segments[1]))
            self._body(body, "application/octet-stream", query)
            return
        if kind == "img":
            name = "/".join(segments[1:])
            served = owner.files.get(name)
            if served is None:
                self._send(404, b"no such file", "text/plain")
                return
            content_type = query.get("type") or (
                mimetypes.guess_type(name)[0] or "application/octet-stream"
            )
            self._body(served, content_type, query)
            return
        self._send(404, b"not found", "text/plain")

    def _body(self, body: bytes, content_type: str, query: Mapping[str, str]) -> None:
        headers = {}
        if "robots" in query:
            headers["X-Robots-Tag"] = query["robots"]
        if "short" in query:
            self._uncount()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(200, body, content_type, headers, length="nolength" not in query)


class ImageServer:
    """An HTTP server of images on the loopback interface, with faults chosen by the URL.

    The server listens on ``host`` at a port the operating system picks (port 0, so
    parallel tests never collide) and answers from a daemon thread, over HTTP/1.1 with
    keep-alive. Start it with :meth:`start` and stop it with :meth:`stop`, or use it as a
    context manager. The routes and their faults are listed in the module docs
    (:mod:`creevey_dask.testing`).

    Parameters
    ----------
    files : mapping of str to bytes, optional
        The files to serve, by name (``"cat.jpg"``, or ``"a/b.png"`` with folders); more
        can be added to :attr:`files` while the server runs.
    host : str, default "127.0.0.1"
        The address to listen on.

    Attributes
    ----------
    files : dict of str to bytes
        The files served under ``/img/<name>``.
    hits : collections.Counter
        Requests received per URL path (with its query string).
    user_agents : collections.Counter
        Requests received per ``User-Agent`` header.
    headers_seen : dict of str to dict
        The request headers (names lower-cased) of the last request per URL path.
    active, max_active : collections.Counter
        Requests being handled now, and at most at once, per ``Host`` header: from a
        request's arrival to the first byte of its answer.
    max_active_total : int
        Requests being handled at most at once, whatever their ``Host`` header.

    See Also
    --------
    sample_images : seeded, labelled JPEGs to serve.

    Examples
    --------
    >>> import requests
    >>> with ImageServer({"a.txt": b"hello"}) as server:
    ...     ok = requests.get(server.url("/img/a.txt"))
    ...     flaky = server.url("/img/a.txt", fail=1, code=503)
    ...     first, second = requests.get(flaky), requests.get(flaky)
    ...     hits = server.hits["/img/a.txt?fail=1&code=503"]
    >>> ok.content, first.status_code, second.content, hits
    (b'hello', 503, b'hello', 2)
    """

    def __init__(self, files: Mapping[str, bytes] | None = None, host: str = "127.0.0.1") -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.host = host
        self.hits: Counter[str] = Counter()
        self.user_agents: Counter[str] = Counter()
        self.headers_seen: dict[str, dict[str, str]] = {}
        self.active: Counter[str] = Counter()
        self.max_active: Counter[str] = Counter()
        self.max_active_total = 0
        self._total = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (a ``RuntimeError`` before :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the server is not running; call start() first")
        return int(self._server.server_address[1])

    def url(self, path: str = "/", host: str | None = None, **query: str | int | float) -> str:
        """The full URL of ``path`` on this server, with ``query`` as its query string.

        Parameters
        ----------
        path : str, default "/"
            The path, e.g. ``"/img/cat.jpg"`` (see the module docs for the routes).
        host : str, optional
            The host name to put in the URL instead of :attr:`host`, e.g.
            ``"localhost"`` (a second host name for the same server, for per-host tests).
        **query
            Fault parameters appended as a query string, e.g. ``status=404`` or
            ``fail=2, code=503``.

        Returns
        -------
        str

        Examples
        --------
        >>> with ImageServer() as server:
        ...     url = server.url("/img/cat.jpg", fail=2, code=503)
        >>> url.split("/", 3)[-1]
        'img/cat.jpg?fail=2&code=503'
        """
        url = f"http://{host or self.host}:{self.port}/{path.lstrip('/')}"
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return url

    def start(self) -> ImageServer:
        """Start serving from a daemon thread (a no-op if running); return ``self``."""
        if self._server is not None:
            return self
        self._stop.clear()
        server = _Server((self.host, 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end stalled answers and close the listening socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset_counters(self) -> None:
        """Forget hits, User-Agents and headers; restart :attr:`max_active` from what is active.

        Requests still in flight (a stalled one from an earlier test, say) stay counted
        in :attr:`active`; use a fresh server where that matters.
        """
        with self._lock:
            self.hits.clear()
            self.user_agents.clear()
            self.headers_seen.clear()
            self.max_active = Counter({h: n for h, n in self.active.items() if n > 0})
            self.max_active_total = self._total

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _enter(self, path: str, host: str, user_agent: str | None) -> None:
        with self._lock:
            self.hits[path] += 1
            self.user_agents[user_agent or ""] += 1
            self.active[host] += 1
            self.max_active[host] = max(self.max_active[host], self.active[host])
            self._total += 1
            self.max_active_total = max(self.max_active_total, self._total)

    def _leave(self, host: str) -> None:
        with self._lock:
            self.active[host] -= 1
            self._total -= 1


def _sample_image(label: str, rng: np.random.Generator) -> Image.Image:
    width, height = int(rng.integers(320, 900)), int(rng.integers(240, 700))
    y, x = np.mgrid[0:height, 0:width]
    colour = rng.integers(40, 215, size=3)
    background = np.stack(
        [
            np.clip(colour[c] + 40 * np.sin(x / (30 + 9 * c) + y / (45 + 7 * c)), 0, 255)
            for c in range(3)
        ],
        axis=-1,
    ).astype(np.uint8)
    image = Image.fromarray(background, "RGB")
    draw = ImageDraw.Draw(image)
    size = int(min(width, height) * rng.uniform(0.35, 0.6))
    cx, cy = int(rng.integers(size // 2 + 5, width - size // 2 - 5)), height // 2
    box = (cx - size // 2, cy - size // 2, cx + size // 2, cy + size // 2)
    fill = tuple(int(255 - c) for c in colour)
    if label == "circle":
        draw.ellipse(box, fill=fill)
    elif label == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), (cx, box[1])], fill=fill)
    return image


def sample_images(n: int = 24, seed: int = 0) -> dict[str, bytes]:
    """``n`` generated, labelled JPEGs, the same bytes for the same ``seed``.

    Each image is a circle, a square or a triangle (in turn, see :data:`LABELS`) on a
    coloured background, between 320x240 and 900x700 pixels, saved at JPEG quality 88.

    Parameters
    ----------
    n : int, default 24
        How many images.
    seed : int, default 0
        The seed of the sizes, colours and positions.

    Returns
    -------
    dict of str to bytes
        File name → JPEG bytes, named ``"<label>_<index>.jpg"`` (``"circle_000.jpg"``,
        ``"square_001.jpg"``, ...), in that order: the label is
        ``name.split("_")[0]``. Ready for :class:`ImageServer`.

    Examples
    --------
    >>> images = sample_images(4, seed=1)
    >>> list(images)
    ['circle_000.jpg', 'square_001.jpg', 'triangle_002.jpg', 'circle_003.jpg']
    >>> images == sample_images(4, seed=1)
    True
    """
    if n < 0:
        raise ValueError(f"n must be zero or more, got {n!r}")
    rng = np.random.default_rng(seed)
    images = {}
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        buffer = io.BytesIO()
        _sample_image(label, rng).save(buffer, "JPEG", quality=88)
        images[f"{label}_{i:03d}.jpg"] = buffer.getvalue()
    return images
