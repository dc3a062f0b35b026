"""Benchmark: download -> centre-crop -> 256x256 -> JPEG q95 -> files, against a bare baseline.

What it does, in one run:

1. Generates ``--n`` photo-like JPEGs once into ``--cache-dir`` (mostly 400x300 to
   1280x960, about 10% up to 2400x1800; seeded, reused by later runs).
2. Serves them on 127.0.0.1 with nginx if it is installed (a generated config, no
   access log, sendfile, keep-alive), else with a threaded Python server.
3. Times, ``--repeats`` times each and alternating the order:

   - **baseline**: a bare hand-written downloader: a process per core, each with a
     thread pool, a ``requests.Session`` per thread, Pillow with ``Image.draft``;
   - **creevey**: ``creevey_dask.download(..., format="jpeg", quality=95,
     ops=[centre crop + resize])``.

   Each contender runs in a fresh child process; the parent samples the summed RSS of
   that process and all its descendants every 20 ms, so the peak RSS of a process
   pool counts every process.
4. Prints images/s (median of the repeats) for both, the ratio, and the peak RSS of
   both with their ratio. The targets: throughput >= 0.9x, RSS <= 1.5x the baseline.

Run ``python benchmarks/bench_download.py --help`` for the options; the defaults take
a few minutes on 2 cores (the first run also spends about a minute making images).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 256
QUALITY = 95
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# -- the shared image op ------------------------------------------------------------------


def center_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square of a ``width`` x ``height`` image."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return (left, top, left + side, top + side)


def draft_size(size: tuple[int, int]) -> tuple[int, int]:
    """The smallest decode size whose centre square is still at least SIZE x SIZE."""
    width, height = size
    scale = SIZE / min(width, height)
    return (math.ceil(width * scale), math.ceil(height * scale))


def crop_resize(image: Image.Image) -> Image.Image:
    """Centre-crop to a square and resize to SIZE x SIZE (the same code for both)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image.resize((SIZE, SIZE), Image.Resampling.BICUBIC, box=center_box(*image.size))


class CenterCropResize:
    """The op for creevey: ``crop_resize`` plus the ``draft_size`` reduced-decode hint."""

    def draft_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return draft_size(size)

    def __call__(self, image: Image.Image) -> Image.Image:
        return crop_resize(image)


# -- test images ---------------------------------------------------------------------------


def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    if rng.random() < 0.1:
        width = int(rng.integers(1280, 2401))
        return width, int(width * 3 / 4)
    width = int(rng.integers(400, 1281))
    aspect = rng.choice([4 / 3, 4 / 3, 4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4])
    height = int(np.clip(round(width / aspect), 300, 1280))
    return width, height


def _make_image(args: tuple[int, str]) -> int:
    seed, path = args
    rng = np.random.default_rng(seed)
    width, height = _image_size(rng)
    # smooth colour fields (upsampled noise) + gradient + fine grain: compresses like a photo
    small = rng.integers(
        0, 256, size=(max(2, height // 48), max(2, width // 48), 3), dtype=np.uint8
    )
    field = np.asarray(
        Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    )
    y = np.linspace(0, 60, height, dtype=np.float32)[:, None, None]
    grain = rng.normal(0, 6, size=(height, width, 1)).astype(np.float32)
    array = np.clip(field.astype(np.float32) * 0.8 + y + grain, 0, 255).astype(np.uint8)
    Image.fromarray(array, "RGB").save(path, quality=88)
    return os.path.getsize(path)


def ensure_images(cache_dir: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` JPEGs in ``cache_dir/images`` (made once); return their names."""
    folder = cache_dir / "images"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"img_{i:05d}.jpg" for i in range(n)]
    todo = [(seed * 1_000_003 + i, str(folder / name)) for i, name in enumerate(names)]
    todo = [t for t in todo if not os.path.exists(t[1])]
    if todo:
        print(f"generating {len(todo)} images into {folder} ...", flush=True)
        start = time.perf_counter()
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(_make_image, todo, chunksize=16))
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    for path in (cache_dir, folder):
        path.chmod(0o755)
    return names


# -- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
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
            print("nginx is not installed; falling back to a threaded Python server", flush=True)
    with python_server(root) as url:
        yield "python", url


# -- the contenders (each runs in a fresh child process) -------------------------------------

_local = threading.local()


def _baseline_session():  # type: ignore[no-untyped-def]
    import requests

    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def _baseline_one(args: tuple[str, str]) -> bool:
    url, outpath = args
    try:
        response = _baseline_session().get(url, timeout=(5, 20))
        response.raise_for_status()
        image = Image.open(io.BytesIO(response.content))
        image.draft("RGB", draft_size(image.size))
        crop_resize(image).save(outpath, format="JPEG", quality=QUALITY)
        return True
    except Exception:
        return False


def _baseline_chunk(args: tuple[list[tuple[str, str]], int]) -> int:
    jobs, threads = args
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(_baseline_one, jobs))


def run_baseline(urls: list[str], outdir: str, processes: int, threads: int) -> int:
    """A process per core, each with a thread pool; the URLs split evenly."""
    jobs = [(u, os.path.join(outdir, os.path.basename(u))) for u in urls]
    chunks = [(jobs[i::processes], threads) for i in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        return sum(pool.map(_baseline_chunk, chunks))


def run_creevey(urls: list[str], outdir: str, processes: int, threads: int, strategy: str) -> int:
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from creevey_dask import download

    result = download(
        pd.DataFrame({"url": urls}),
        outdir,
        format="jpeg",
        quality=QUALITY,
        ops=[CenterCropResize()],
        n_jobs=threads,
        parallel_strategy=strategy,
        progress=False,
        skip_existing=False,
    )
    ok = int((result["status"] == "ok").sum())
    if ok != len(urls):
        print(result.loc[result.status != "ok", "error"].value_counts().head(), file=sys.stderr)
    return ok


def child_main(args: argparse.Namespace) -> None:
    """Run one contender and print a JSON line with its count and time."""
    spec = json.loads(Path(args.child).read_text())
    urls = spec["urls"]
    outdir = spec["outdir"]
    if spec["who"] == "creevey":
        # warm the imports outside the timing, as the baseline's are (requests, PIL)
        import dask.dataframe  # noqa: F401
        import pandas  # noqa: F401

        sys.path.insert(0, str(ROOT))
        import creevey_dask  # noqa: F401
    else:
        import requests  # noqa: F401
    import resource

    def cpu_seconds() -> float:  # this process and its finished children (process pools)
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    cpu_start = cpu_seconds()
    start = time.perf_counter()
    if spec["who"] == "baseline":
        ok = run_baseline(urls, outdir, spec["processes"], spec["threads"])
    else:
        ok = run_creevey(urls, outdir, spec["processes"], spec["threads"], spec["strategy"])
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    print(json.dumps({"ok": ok, "seconds": elapsed, "cpu": cpu}), flush=True)


def run_child(spec: dict[str, object]) -> tuple[int, float, float, float]:
    """Run a contender in a child process.

    Returns (images ok, seconds, peak summed RSS in MiB, CPU seconds of the timed work,
    counting the child and its process pool, not interpreter start-up and imports).
    """
    import psutil

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", f.name]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    peak = 0
    try:
        while proc.poll() is None:
            total = 0
            with contextlib.suppress(psutil.Error):
                for p in [parent, *parent.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
            peak = max(peak, total)
            time.sleep(0.02)
    finally:
        if proc.poll() is None:  # interrupted: stop the child and its pool
            for p in parent.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    p.terminate()
            proc.terminate()
            proc.wait()
        os.unlink(f.name)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['who']} failed with exit code {proc.returncode}")
    line = [x for x in out.splitlines() if x.startswith("{")][-1]
    result = json.loads(line)
    return int(result["ok"]), float(result["seconds"]), peak / 2**20, float(result["cpu"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="images (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each contender")
    parser.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "creevey-bench"))
    parser.add_argument("--server", choices=["auto", "nginx", "python"], default="auto")
    parser.add_argument("--server-workers", type=int, default=1, help="nginx worker processes")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=8, help="threads per process")
    parser.add_argument(
        "--strategy",
        choices=["threads", "processes"],
        default="threads",
        help="creevey's parallel_strategy",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a JSON spec file: run one contender
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return

    cache = Path(args.cache_dir)
    names = ensure_images(cache, args.n)
    total_mb = sum(os.path.getsize(cache / "images" / n) for n in names) / 2**20
    print(f"{len(names)} images, {total_mb:.0f} MiB, mean {1024 * total_mb / len(names):.0f} KiB")
    results: dict[str, list[tuple[float, float]]] = {"baseline": [], "creevey": []}
    with static_server(args.server, cache / "images", args.server_workers) as (kind, base):
        urls = [f"{base}/{n}" for n in names]
        print(
            f"server: {kind} at {base}; {args.processes} processes x {args.threads} threads; "
            f"creevey parallel_strategy={args.strategy!r}; {args.repeats} repeats",
            flush=True,
        )
        for repeat in range(args.repeats):
            order = ["baseline", "creevey"] if repeat % 2 == 0 else ["creevey", "baseline"]
            for who in order:
                outdir = tempfile.mkdtemp(prefix=f"creevey-bench-{who}-")
                try:
                    spec = {
                        "who": who,
                        "urls": urls,
                        "outdir": outdir,
                        "processes": args.processes,
                        "threads": args.threads,
                        "strategy": args.strategy,
                    }
                    ok, seconds, rss, cpu = run_child(spec)
                    written = len(os.listdir(outdir))
                finally:
                    shutil.rmtree(outdir, ignore_errors=True)
                rate = ok / seconds
                results[who].append((rate, rss))
                print(
                    f"  {who:8s} run {repeat + 1}: {ok}/{len(urls)} ok, {written} files, "
                    f"{seconds:.1f} s, {rate:.1f} images/s, peak RSS {rss:.0f} MiB, "
                    f"CPU {1000 * cpu / max(ok, 1):.1f} ms/image",
                    flush=True,
                )
    base_rate = statistics.median(r for r, _ in results["baseline"])
    ours_rate = statistics.median(r for r, _ in results["creevey"])
    base_rss = statistics.median(m for _, m in results["baseline"])
    ours_rss = statistics.median(m for _, m in results["creevey"])
    print()
    for who, rate, rss in (("baseline", base_rate, base_rss), ("creevey", ours_rate, ours_rss)):
        median = f"(median of {args.repeats})"
        print(f"{who + ':':9s} {rate:7.1f} images/s  peak RSS {rss:6.0f} MiB {median}")
    print(
        f"ratio:    {ours_rate / base_rate:7.2f}x throughput (target >= 0.9)  "
        f"{ours_rss / base_rss:.2f}x RSS (target <= 1.5)"
    )


if __name__ == "__main__":
    main()
