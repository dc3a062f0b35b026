"""The cost of a cluster-wide politeness slot per request, against the process-local one.

On a ``distributed.LocalCluster`` of worker processes, each worker fetches the same
number of small images from one loopback host with ``threads`` threads, three ways, in
the same run:

``bare``
    a urllib3 ``PoolManager.request`` per URL: no politeness, no retries, no checks.
``process``
    ``creevey_dask.http.fetch`` with the host's slots held in the worker process only
    (what a run without a cluster does): the library's path without the scheduler.
``cluster``
    ``fetch`` as it runs on a cluster: the host's slots are leases of a
    ``distributed.Semaphore`` on the scheduler.

``per_host_limit`` is set far above the threads in flight, so no request ever waits
for another: what the ``cluster`` row adds over ``process`` is the slots' own cost
(scheduler round trips), not politeness.

    python benchmarks/bench_slots.py [--workers 2] [--threads 8] [--requests 400] [--repeats 5]

Prints, per way, the median over the repeats of the median time of one request (ms)
and of the requests per second of the cluster, and ``cluster`` ÷ ``process``. Run it
from a checkout to compare versions (``PYTHONPATH=<checkout>``): it finds the slot code
through ``creevey_dask.http.fetch`` whatever the layout.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image

from creevey_dask.http import HttpOptions, fetch

WAYS = ("bare", "process", "cluster")


def _politeness() -> Any:
    """The module that decides whether slots are cluster-wide (``_cluster_worker``)."""
    fetch_module = sys.modules[fetch.__module__]
    return sys.modules[fetch_module.take_slot.__module__]


def _one_way(way: str, urls: list[str], threads: int, limit: int) -> tuple[float, float]:
    """On a worker: ``(median ms per request, seconds for all)`` for ``way``."""
    import urllib3

    options = HttpOptions(per_host_limit=limit, retries=0)
    politeness = _politeness()
    cluster_worker = politeness._cluster_worker
    manager = urllib3.PoolManager(maxsize=threads)

    def one(url: str) -> float:
        start = time.perf_counter()
        if way == "bare":
            response = manager.request("GET", url)
            assert response.status == 200
        else:
            fetch(url, options)
        return time.perf_counter() - start

    if way == "process":
        politeness._cluster_worker = lambda: None
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, urls[:threads]))  # warm: connections, the lease pool
            start = time.perf_counter()
            times = list(pool.map(one, urls))
            total = time.perf_counter() - start
    finally:
        politeness._cluster_worker = cluster_worker
    return statistics.median(times) * 1000, total


def _jpeg() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    """Serves the one image for any path, keep-alive, without Nagle's delay."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else a 40 ms delayed ACK per answer hides the rest
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def _server(body: bytes) -> Iterator[str]:
    """A loopback server of ``body`` on a free port; yields its base URL."""
    _Handler.body = body
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400, help="per worker and way")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    limit = 4 * args.threads * args.workers  # never reached: no request waits
    with (
        _server(_jpeg()) as base,
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        workers = sorted(client.scheduler_info()["workers"])
        medians: dict[str, list[float]] = {way: [] for way in WAYS}
        rates: dict[str, list[float]] = {way: [] for way in WAYS}
        for repeat in range(args.repeats):
            for way in WAYS:
                futures = [
                    client.submit(
                        _one_way,
                        way,
                        [
                            f"{base}/tiny.jpg?w={k}&r={repeat}&i={i}&way={way}"
                            for i in range(args.requests)
                        ],
                        args.threads,
                        limit,
                        workers=[address],
                        pure=False,
                    )
                    for k, address in enumerate(workers)
                ]
                answers = client.gather(futures)
                medians[way].append(statistics.median(ms for ms, _ in answers))
                slowest = max(total for _, total in answers)
                rates[way].append(args.requests * len(workers) / slowest)
    print(
        f"{args.workers} worker processes x {args.threads} threads, {args.requests} requests "
        f"per worker and way, medians of {args.repeats}"
    )
    print(f"{'way':<10}{'ms/request':>12}{'requests/s':>12}")
    for way in WAYS:
        print(
            f"{way:<10}{statistics.median(medians[way]):>12.2f}"
            f"{statistics.median(rates[way]):>12.0f}"
        )
    process, cluster = (statistics.median(medians[w]) for w in ("process", "cluster"))
    print(
        f"cluster - process: {cluster - process:+.2f} ms per request; "
        f"cluster / process: {cluster / process:.2f}x"
    )


if __name__ == "__main__":
    main()
