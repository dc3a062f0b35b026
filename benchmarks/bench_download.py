"""Benchmark: download → centre crop → 256x256 → JPEG q95 → files, creevey_dask vs bare loops.

The images (``_images.py``): 70% real photos (scikit-learn/scikit-image sample photos
tiled and cropped to 400-2400 px), 15% synthetic photos, 15% line art; made once into
``--cache-dir`` and served on 127.0.0.1 by nginx if it is installed (Debian's
``nginx-light``; a generated config, no access log, sendfile, keep-alive), else by a
threaded Python server.

Contenders (``_contenders.py``), each a fresh interpreter timed from outside as a
user's script runs (start-up and imports included), pinned to ``--cores`` CPUs:

* ``bare-draft``: a process per core x ``--threads`` threads, a ``requests.Session``
  per thread, ``Image.draft`` at the target, bicubic (the throughput bar);
* ``bare-draft2x``: the same, ``draft`` at twice the target (the old baseline);
* ``bare-full``: the same without ``draft`` (the quality bar);
* ``bare-rule``: the same loop doing creevey_dask's decode + resize rule (so
  ``creevey / bare-rule`` is the engine's own cost, ``bare-rule / bare-draft`` the rule's);
* ``creevey``: ``df.creevey.download(outdir, format="jpeg", quality=95,
  ops=[ops.resize(shape=(256, 256), mode="cover")])``, the default call.

Prints images/s, CPU ms per image and peak PSS of each process tree (medians of
``--repeats``, rotated), mean PSNR per image set against full decode + centre crop +
Lanczos, and the ratios; ``--cores 1,2`` also prints the scaling. The server runs in
this (parent) process or as nginx, outside the measured tree.

Run: ``python benchmarks/bench_download.py [--n 2000] [--repeats 3] [--cores 1,2]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import add_arguments, images, measure_all, report

# -- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), 0.2),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the server on port {port} did not come up")


NGINX_CONF = """
worker_processes {workers};
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120;
    open_file_cache max=10000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ image/jpeg jpg; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_server(root: Path, workers: int) -> Iterator[str]:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if nginx is None:
        raise FileNotFoundError("nginx")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="creevey-nginx-") as tmp:
        os.chmod(tmp, 0o755)
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(workers=workers, tmp=tmp, port=port, root=root, user=user)
        )
        proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", tmp, "-e", f"{tmp}/error.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(port)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class _QuietHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def python_server(root: Path) -> Iterator[str]:
    """A threaded keep-alive static server (``SimpleHTTPRequestHandler`` uses sendfile)."""

    def handler(*args: object, **kwargs: object) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def static_server(kind: str, root: Path, workers: int) -> Iterator[tuple[str, str]]:
    if kind in ("auto", "nginx"):
        try:
            with nginx_server(root, workers) as url:
                yield "nginx", url
                return
        except FileNotFoundError:
            if kind == "nginx":
                raise
            print(
                "nginx is not installed; falling back to a threaded Python server",
                flush=True,
            )
    with python_server(root) as url:
        yield "python", url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--server", choices=["auto", "nginx", "python"], default="auto")
    parser.add_argument("--server-workers", type=int, default=1, help="nginx worker processes")
    args = parser.parse_args(argv)
    folder, kinds, refs = images(args)
    with static_server(args.server, folder, args.server_workers) as (kind, base):
        print(f"server: {kind} at {base}", flush=True)
        results = measure_all(args, [f"{base}/{name}" for name in kinds], kinds, refs)
    job = f"{len(kinds)} JPEGs over HTTP ({kind}) -> centre crop -> 256x256 -> JPEG q95"
    report(results, job)


if __name__ == "__main__":
    main()
