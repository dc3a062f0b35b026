"""A loopback HTTP server of images with injectable faults, for tests and offline demos.

:class:`ImageServer` serves a dict of ``name -> bytes`` on ``127.0.0.1`` at a free port,
from a background thread, over HTTP/1.1 with keep-alive. Faults are chosen by the URL,
so one server covers every case at once::

    /img/<name>                      the file (Content-Type from the extension)
    /img/<name>?status=404           always that status
    /img/<name>?fail=2&code=503      the first 2 requests for this exact URL get 503, then the file
        &retry_after=1               ... with a Retry-After header (seconds, or an HTTP date)
    /img/<name>?reset=1              the first N requests: the connection is reset (TCP RST)
    /img/<name>?stall=5              wait 5 s before answering
    /img/<name>?short=1              announce the full Content-Length, send half, close
    /img/<name>?nolength=1           no Content-Length: the body ends when the connection closes
    /img/<name>?robots=noai          an X-Robots-Tag header
    /img/<name>?type=text/html       another Content-Type
    /html/<anything>                 an HTML page (200, text/html)
    /big/<n>                         n bytes of zeros (add ?nolength=1 to hide the size)
    /redirect/<k>/<name>             a chain of k redirects ending at /img/<name>
    /redirect-to?url=<url>           one redirect to any URL (e.g. file:///etc/passwd)

It counts requests per URL (:attr:`hits`), remembers the User-Agents seen
(:attr:`user_agents`), and tracks requests being handled per ``Host`` header, from
their arrival to the start of the answer (:attr:`active`, :attr:`max_active`), so tests
can check retries and per-host limits.

Examples
--------
>>> with ImageServer({"a.txt": b"hello"}) as server:
...     import requests
...     requests.get(server.url("/img/a.txt")).content
b'hello'
"""

from __future__ import annotations

import contextlib
import mimetypes
import socket
import struct
import threading
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["ImageServer"]


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
        segments = [s for s in parts.path.split("/") if s]
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
    """Serve ``files`` (name → bytes) at ``http://127.0.0.1:<port>/img/<name>``.

    Start it with :meth:`start` (or use it as a context manager) and stop it with
    :meth:`stop`. See the module docs for the fault routes.

    Parameters
    ----------
    files : mapping of str to bytes, optional
        The files to serve; more can be added to :attr:`files` while it runs.
    host : str, default "127.0.0.1"
        The address to listen on; the port is always chosen free by the OS.
    """

    def __init__(self, files: Mapping[str, bytes] | None = None, host: str = "127.0.0.1") -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.host = host
        self.hits: Counter[str] = Counter()
        self.user_agents: Counter[str] = Counter()
        self.active: Counter[str] = Counter()
        self.max_active: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running; call start() first")
        return int(self._server.server_address[1])

    def url(self, path: str = "/", host: str | None = None) -> str:
        """The full URL of ``path`` on this server (``host`` may be e.g. ``"localhost"``)."""
        return f"http://{host or self.host}:{self.port}/{path.lstrip('/')}"

    def start(self) -> ImageServer:
        """Start serving from a daemon thread; return self."""
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
        """Stop serving and close the listening socket."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset_counters(self) -> None:
        """Forget the hits and User-Agents; restart :attr:`max_active` from what is active now.

        Requests still in flight (a stalled one from an earlier test, say) stay counted
        in :attr:`active`; use a fresh server where that matters.
        """
        with self._lock:
            self.hits.clear()
            self.user_agents.clear()
            self.max_active = Counter({h: n for h, n in self.active.items() if n > 0})

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

    def _leave(self, host: str) -> None:
        with self._lock:
            self.active[host] -= 1
