"""The engine's own overhead per row, and the cost of committing an output.

Three pipelines over many rows, each against the bare loop a user would write for the
same job, in the same run:

``no-op``
    the pipeline loads nothing and its writer writes nothing (a run kept for its
    reporters): all the time is the engine's — partitioning, the thread pool, the skip
    check (a ``stat`` of a missing local file), the writer's temporary name, per-row
    bookkeeping, assembling the result columns. Bare loop: outpath, ``os.path.exists``,
    load, write, append a row.
``tiny files``
    the writer writes a 64-byte file at the path it is given; the engine commits it
    (proof as an xattr, exclusive link, unlink of the temporary). Bare loop: ``open`` +
    ``write`` of the same bytes at the final path (no atomicity, no proof).
``rerun``
    the ``tiny files`` run again with ``skip_existing=True``: every row is skipped after
    reading the file's proof (``stat`` + ``getxattr``). Bare loop: ``os.path.exists``.

    python benchmarks/bench_engine.py [--rows 50000] [--repeats 5]

Prints µs/row for pandas input, dask input (computed, no-op only) and the bare loops,
medians over the repeats, and the engine's overhead over the bare loop. The whole
process is not timed here (start-up is measured by bench_resize/bench_download); each
call is, as a notebook user runs it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

import dask.dataframe as dd
import pandas as pd

from creevey_dask import Pipeline

PAYLOAD = bytes(range(64))


def load(source: str) -> str:
    return source


def write_nothing(image: str, outpath: str) -> None:
    return None


def write_tiny(image: str, path: str) -> None:
    with open(path, "wb") as f:
        f.write(PAYLOAD)


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-jobs", type=int, default=4)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-engine-")
    sources = [f"img{i:07d}" for i in range(args.rows)]
    frame = pd.DataFrame({"path": sources, "label": [i % 10 for i in range(args.rows)]})
    noop, tiny = Pipeline(load, write_func=write_nothing), Pipeline(load, write_func=write_tiny)
    run = {"n_jobs": args.n_jobs, "inpath_col": "path"}

    def namer(folder: str) -> Callable[[str], str]:
        return lambda source: f"{folder}/{source}.png"

    def fresh(name: str) -> str:
        folder = os.path.join(root, name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        return folder

    def bare(folder: str, write: Callable[[str, str], None]) -> list[tuple[str, str]]:
        rows = []
        outpath = namer(folder)
        for source in sources:
            path = outpath(source)
            if not os.path.exists(path):
                write(load(source), path)
            rows.append((path, "ok"))
        return rows

    times: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    def one_repeat() -> None:
        add("no-op: bare loop", timed(lambda: bare(fresh("b0"), write_nothing)))
        out = namer(fresh("e0"))
        add("no-op: pandas input", timed(lambda: noop.run(frame, out, progress=False, **run)))
        lazy = noop.run(dd.from_pandas(frame, npartitions=max(1, args.rows // 10_000)), out, **run)
        add("no-op: dask input", timed(lazy.compute))

        folder = fresh("b1")
        add("tiny files: bare loop", timed(lambda: bare(folder, write_tiny)))
        add("rerun: bare loop", timed(lambda: bare(folder, write_tiny)))
        out = namer(fresh("e1"))
        results: list[pd.DataFrame] = []

        def tiny_run() -> None:
            results.append(tiny.run(frame, out, progress=False, **run))

        add("tiny files: pandas input", timed(tiny_run))
        add("rerun: pandas input", timed(tiny_run))
        assert (results[0].status == "ok").all()
        assert (results[1].status == "skipped").all()
        assert len(os.listdir(os.path.dirname(out("x")))) == args.rows  # nothing beside them

    check = noop.run(frame, namer(fresh("warm")), progress=False, **run)
    assert (check.status == "ok").all()
    assert check.outpath.isna().all()
    for _ in range(args.repeats):
        one_repeat()

    per_row = {k: 1e6 * statistics.median(v) / args.rows for k, v in times.items()}
    print(
        f"{args.rows:,} rows, n_jobs={args.n_jobs}, median of {args.repeats}, CPUs={os.cpu_count()}"
    )
    for name, us in per_row.items():
        print(f"  {name:26s} {us:7.2f} µs/row")
    for job in ("no-op", "tiny files", "rerun"):
        base = per_row[f"{job}: bare loop"]
        for kind in ("pandas input", "dask input"):
            key = f"{job}: {kind}"
            if key in per_row:
                print(
                    f"  {key}: {per_row[key] / base:.2f}x the bare loop; engine overhead "
                    f"{per_row[key] - base:.2f} µs/row"
                )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
