"""Scale-out figures: worker scaling, engine overhead on a cluster, bounded memory.

    python benchmarks/bench_scale.py [--images 400] [--repeats 3] [--rows 100000 1000000]

1. **Throughput with 1 and 2 worker processes** (``distributed.LocalCluster``): a
   CPU-bound pipeline (load local JPEGs → centre-crop → 256x256 → JPEG q95), images/s and
   the ratio 2 workers / 1 worker. On a 2-core machine the ideal is 2.0.
2. **Engine overhead per row on a cluster**: a no-op pipeline over many rows on the
   2-worker cluster, µs/row, against the same run on the local threads scheduler.
3. **Bounded memory**: a table of N URLs written to Parquet, read lazily with
   ``dd.read_parquet``, run through a pipeline that skips the network, and written to
   Parquet with ``to_parquet`` (nothing collected), each size in a fresh process; peak
   RSS for each N. Memory should follow the partition size, not the table size.

Medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import creevey_dask  # noqa: E402
from creevey_dask import Pipeline, load_image  # noqa: E402


def make_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"img{i:05d}.jpg"
        paths.append(str(path))
        if path.exists():
            continue
        w, h = int(rng.integers(400, 1280)), int(rng.integers(300, 960))
        y, x = np.mgrid[0:h, 0:w]
        array = np.stack([(x * 7 + y) % 256, (y * 3) % 256, (x ^ y) % 256], -1).astype(np.uint8)
        noise = rng.integers(0, 24, array.shape, dtype=np.uint8)
        Image.fromarray(array + noise).save(path, quality=90)
    return paths


def centre_crop_256(image: Image.Image) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.resize(
        (256, 256), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side)
    )


def noop_load(source: str) -> str:
    return source


def noop_write(image: object, outpath: str) -> None:
    return None


def scaling(paths: list[str], repeats: int) -> dict[str, float]:
    from distributed import Client, LocalCluster

    from creevey_dask import ImageWriter

    pipeline = Pipeline(load_image, ops=[centre_crop_256], write_func=ImageWriter("jpeg", 95))
    rates: dict[str, float] = {}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: __import__("creevey_dask"))
            times = []
            for r in range(repeats):
                outdir = tempfile.mkdtemp(prefix=f"scale{workers}-{r}-")
                start = time.perf_counter()
                res = pipeline.run(
                    paths,
                    lambda p, o=outdir: f"{o}/{Path(p).stem}.jpg",
                    n_jobs=2,
                    progress=False,
                    options=creevey_dask.RunOptions(npartitions=8 * workers),
                )
                times.append(time.perf_counter() - start)
                assert (res.status == "ok").all(), res.error.dropna().head()
            rates[f"{workers} worker(s)"] = len(paths) / statistics.median(times)
    return rates


def overhead(rows: int, repeats: int) -> dict[str, float]:
    from distributed import Client, LocalCluster

    sources = [f"img{i:07d}" for i in range(rows)]
    outdir = tempfile.mkdtemp(prefix="overhead-")
    pipeline = Pipeline(noop_load, write_func=noop_write)
    result: dict[str, float] = {}

    def timed_runs() -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            pipeline.run(sources, lambda s: f"{outdir}/{s}", n_jobs=4, progress=False)
            times.append(time.perf_counter() - start)
        return 1e6 * statistics.median(times) / rows

    result["local threads"] = timed_runs()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        result["2-worker cluster"] = timed_runs()
    return result


MEMORY_CHILD = """
import json, os, sys, threading, time
import dask.dataframe as dd
from creevey_dask import Pipeline

# Peak RSS by sampling /proc/self/statm: getrusage's ru_maxrss can carry over the
# high-water mark of the (large) parent process that forked this one.
PAGE = os.sysconf("SC_PAGE_SIZE")
peak = [0]
done = threading.Event()

def sample():
    while not done.is_set():
        with open("/proc/self/statm") as f:
            peak[0] = max(peak[0], int(f.read().split()[1]) * PAGE)
        time.sleep(0.005)

def load(url):
    return url

def write(image, outpath):
    return None

sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
table, out = sys.argv[1], sys.argv[2]
start = time.perf_counter()
lazy = Pipeline(load, write_func=write).run(
    dd.read_parquet(table), lambda u: "/nonexistent/" + u.rsplit("/", 1)[-1],
    inpath_col="url", n_jobs=4,
)
lazy.to_parquet(out)
done.set()
sampler.join()
print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mib": peak[0] / 2**20}))
"""


def write_table(rows: int, workdir: Path) -> Path:
    """A table of ``rows`` URLs as a Parquet dataset of 50,000-row files."""
    import dask.dataframe as dd

    table = workdir / f"urls-{rows}.parquet"
    if not table.exists():
        frame = pd.DataFrame(
            {
                "url": [f"http://127.0.0.1:9/images/{i:09d}.jpg" for i in range(rows)],
                "label": np.arange(rows) % 1000,
            }
        )
        dd.from_pandas(frame, chunksize=50_000).to_parquet(table)
        del frame
    return table


def memory(table: Path, workdir: Path) -> dict[str, float]:
    """Run the lazy Parquet → pipeline → Parquet job in a fresh process; its peak RSS."""
    import dask.dataframe as dd

    out = workdir / f"out-{table.name}"
    child = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(table), str(out)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    figures["rows_written"] = int(dd.read_parquet(out).shape[0].compute())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-rows", type=int, default=100_000)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 2_000_000])
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "creevey-bench"))
    parser.add_argument("--skip", nargs="*", default=[], choices=["scaling", "overhead", "memory"])
    args = parser.parse_args()
    cache = Path(args.cache)

    print(f"CPUs: {os.cpu_count()}; medians of {args.repeats}")
    if "scaling" not in args.skip:
        paths = make_images(cache / "scale-images", args.images)
        rates = scaling(paths, args.repeats)
        for name, rate in rates.items():
            print(f"throughput, {name:12s} {rate:7.1f} images/s")
        ratio = rates["2 worker(s)"] / rates["1 worker(s)"]
        print(f"throughput ratio 2 workers / 1 worker: {ratio:.2f}x")
    if "overhead" not in args.skip:
        per_row = overhead(args.overhead_rows, args.repeats)
        for name, us in per_row.items():
            print(f"engine overhead, {name:17s} {us:6.2f} µs/row ({args.overhead_rows:,} rows)")
        print(f"cluster / local: {per_row['2-worker cluster'] / per_row['local threads']:.2f}x")
    if "memory" not in args.skip:
        with tempfile.TemporaryDirectory(prefix="creevey-mem-") as tmp:
            tables = {rows: write_table(rows, Path(tmp)) for rows in args.rows}
            figures = {rows: memory(table, Path(tmp)) for rows, table in tables.items()}
        for rows, fig in figures.items():
            print(
                f"memory: {rows:>9,} rows from Parquet -> Parquet: peak RSS "
                f"{fig['peak_rss_mib']:7.1f} MiB, {fig['seconds']:6.1f} s, "
                f"{fig['rows_written']:,} rows written"
            )
        small, large = min(figures), max(figures)
        print(
            f"peak RSS ratio {large:,} / {small:,} rows: "
            f"{figures[large]['peak_rss_mib'] / figures[small]['peak_rss_mib']:.2f}x "
            f"for {large / small:.0f}x the rows"
        )


if __name__ == "__main__":
    main()
