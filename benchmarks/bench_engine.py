"""The engine's own overhead per row: a no-op pipeline over many rows.

The pipeline loads nothing and writes nothing, so all the time is the engine's:
partitioning, the thread pool, the skip check (a ``stat`` of a missing local file),
per-row bookkeeping, and assembling the result columns. In the same run, a bare loop
does the same per-row calls (outpath, stat, load, write) with no engine around them.

    python benchmarks/bench_engine.py [--rows 200000] [--repeats 5]

Prints µs/row for pandas input, dask input (computed) and the bare loop, medians over
the repeats, and the engine's overhead over the bare loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import dask.dataframe as dd
import pandas as pd

from creevey_dask import Pipeline


def load(source: str) -> str:
    return source


def write(image: str, outpath: str) -> None:
    return None


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-jobs", type=int, default=4)
    args = parser.parse_args()

    outdir = tempfile.mkdtemp(prefix="bench-engine-")

    def outpath(source: str) -> str:
        return f"{outdir}/{source}.png"

    sources = [f"img{i:07d}" for i in range(args.rows)]
    frame = pd.DataFrame({"path": sources, "label": [i % 10 for i in range(args.rows)]})
    pipeline = Pipeline(load, write_func=write)

    def bare() -> list[tuple[str, str]]:
        rows = []
        for source in sources:
            path = outpath(source)
            if not os.path.exists(path):
                write(load(source), path)
            rows.append((path, "ok"))
        return rows

    def on_pandas() -> pd.DataFrame:
        return pipeline.run(frame, outpath, n_jobs=args.n_jobs, inpath_col="path", progress=False)

    def on_dask() -> pd.DataFrame:
        ddf = dd.from_pandas(frame, npartitions=max(1, args.rows // 10_000))
        lazy = pipeline.run(ddf, outpath, n_jobs=args.n_jobs, inpath_col="path")
        return lazy.compute()

    result = on_pandas()  # warm up imports and caches; check the result once
    assert (result.status == "ok").all()
    assert len(result) == args.rows
    times: dict[str, list[float]] = {"bare loop": [], "pandas input": [], "dask input": []}
    for _ in range(args.repeats):
        times["bare loop"].append(timed(bare))
        times["pandas input"].append(timed(on_pandas))
        times["dask input"].append(timed(on_dask))

    per_row = {k: 1e6 * statistics.median(v) / args.rows for k, v in times.items()}
    print(
        f"{args.rows:,} rows, n_jobs={args.n_jobs}, median of {args.repeats}, CPUs={os.cpu_count()}"
    )
    for name, us in per_row.items():
        print(f"  {name:13s} {us:7.2f} µs/row")
    for name in ("pandas input", "dask input"):
        ratio = per_row[name] / per_row["bare loop"]
        print(
            f"  {name}: {ratio:.2f}x the bare loop; engine overhead "
            f"{per_row[name] - per_row['bare loop']:.2f} µs/row (target: total <= 30 µs/row)"
        )


if __name__ == "__main__":
    main()
