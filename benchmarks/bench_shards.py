"""Benchmark: files vs WebDataset shards, to a local folder and to S3 (moto).

2,000 loopback images (``creevey_dask.testing.sample_images``: 320x240 to 900x700
JPEGs, served by ``ImageServer`` on 127.0.0.1) are downloaded, resized to 256x256
(``ops.resize(shape=(256, 256), mode="cover")``) and written as JPEG, four ways:

- ``files``       one file per row (``output_format="files"``)
- ``webdataset``  tar shards of 500 samples plus a records Parquet each

each to a local folder and to ``s3://`` on a moto server in this process (port 0).
Every run is in-memory pandas input on the threads scheduler with 4 partitions, so the
shards are full.

Reported per run: images/s (ok rows / wall time of the call) and the storage requests:

- ``storage ops``: calls into ``creevey_dask.storage`` and ``creevey_dask.storage.provenance``
  that touch the store (``exists``, ``file_state``, ``read_bytes``,
  ``write_bytes_atomic``, ``provenance.inspect``, a payload's commit), counted by
  wrapping them in this process (a sharded run's skip check, one Parquet open per
  shard, goes to the filesystem directly and shows only in the S3 count);
- ``S3 requests``: the HTTP requests the s3fs client sent to the moto server, counted
  with a botocore ``before-send`` hook (PUT, HEAD, GET, LIST, ...).

Then, on each WebDataset output, **random access** (``creevey_dask.shard_sources``): the
per-sample time of reading every sample's image with one ranged read
(``read_sample("<shard>.tar#<member>")``, in a shuffled order, the shards' indexes
loaded) against the bare baseline of reading the whole tars sequentially with
``tarfile`` and taking each member's bytes; medians of ``--repeats`` runs and their
ratio (ranged / sequential). A ranged read costs one seek (locally) or one GET (S3) per
sample, so its overhead per sample is the price of reading only what a selection needs.

Run ``python benchmarks/bench_shards.py`` (``--n 200`` for a quick check).

``--memory`` measures instead the peak memory of building one shard of 1,000 samples
(random-noise 200x160 PNGs, ~96 KB each, that do not compress; read from local files,
written as PNG, ``n_jobs=4``, one partition), for ``files`` (the baseline: no shard
buffers), ``webdataset`` and ``parquet``. Each case runs in fresh subprocesses, after
a warm-up run of 8 rows: the peak RSS (``ru_maxrss``) above the RSS before the run; the
peak of Python's allocations (``tracemalloc``, in a second run) and of Arrow's memory
pool; and the shard's own buffers, that Python + Arrow peak above the files run's, in
units of one sample. ``--code DIR`` runs the cases on another checkout (e.g. the main
branch, for a before/after); ``--repeats`` runs each case that often (medians).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

import creevey_dask
from creevey_dask import ops
from creevey_dask.sinks import reading as shard_records
from creevey_dask.storage import fs as storage
from creevey_dask.storage import provenance
from creevey_dask.storage import samples as shard_sources
from creevey_dask.testing import ImageServer, sample_images

COUNTS: collections.Counter[str] = collections.Counter()
ACCESS: list[dict[str, Any]] = []  # the random-access rows
_HERE = os.path.dirname(os.path.abspath(__file__))


def _counted(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        COUNTS[name] += 1
        return func(*args, **kwargs)

    return wrapper


def _count_storage() -> None:
    """Count every call into creevey_dask.storage's functions that touch the store."""
    for name in ("exists", "file_state", "read_bytes", "write_bytes_atomic"):
        setattr(storage, name, _counted(f"storage.{name}", getattr(storage, name)))
    provenance.inspect = _counted("storage.provenance.inspect", provenance.inspect)  # type: ignore[assignment]
    for cls in (provenance.BytesPayload, provenance.FilePayload):
        cls.commit = _counted(f"storage.{cls.__name__}.commit", cls.commit)  # type: ignore[method-assign]


def _count_s3(fs: Any) -> None:
    """Count the HTTP requests the s3fs client sends (a botocore before-send hook)."""

    def on_send(request: Any, **kwargs: Any) -> None:
        COUNTS[f"s3.{request.method}"] += 1

    fs.s3.meta.events.register("before-send.s3", on_send)


def _moto() -> tuple[Any, dict[str, str]]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ[name] = value
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "bench", "secret": "bench"}
    return server, options


def _sequential(tars: list[str], options: dict[str, Any]) -> int:
    """The baseline: every member's bytes, reading each whole tar from start to end."""
    count = 0
    for tar in tars:
        with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(tar, options))) as archive:
            for member in archive:
                handle = archive.extractfile(member)
                if handle is not None and not member.name.endswith((".json", ".txt")):
                    handle.read()
                    count += 1
    return count


def random_access(
    target: str, outdir: str, options: dict[str, Any], repeats: int
) -> dict[str, Any]:
    """Median seconds per sample: one ranged read each vs whole tars read in sequence."""
    records = shard_records.read_records(outdir, options).compute()  # indexes the shards
    sources = records["sample"].dropna().tolist()
    tars = sorted({shard_sources.split_sample(s)[0] for s in sources})  # type: ignore[index]
    ranged, sequential = [], []
    for repeat in range(repeats):
        random.Random(repeat).shuffle(sources)
        started = time.perf_counter()
        for source in sources:
            shard_sources.read_sample(source, options)
        ranged.append((time.perf_counter() - started) / len(sources))
        started = time.perf_counter()
        count = _sequential(tars, options)
        sequential.append((time.perf_counter() - started) / count)
    ranged_us, sequential_us = statistics.median(ranged) * 1e6, statistics.median(sequential) * 1e6
    row = {
        "target": target,
        "samples": len(sources),
        "ranged us/sample": round(ranged_us, 1),
        "sequential us/sample": round(sequential_us, 1),
        "ratio": round(ranged_us / sequential_us, 2),
    }
    print(row, flush=True)
    return row


def run(n: int, shard_size: int, repeats: int = 5) -> list[dict[str, Any]]:
    images = sample_images(n, seed=7)
    server, s3_options = _moto()
    fs, _ = storage.get_fs("s3://bench", s3_options)
    fs.mkdir("bench")
    _count_s3(fs)
    _count_storage()
    local_root = tempfile.mkdtemp(prefix="bench_shards_")
    rows = []
    try:
        with ImageServer(images) as web:
            df = pd.DataFrame({"url": [web.url(f"/img/{name}") for name in images]})
            df["label"] = [name.split("_")[0] for name in images]
            for target in ("local", "s3"):
                for fmt in ("files", "webdataset"):
                    if target == "local":
                        outdir = os.path.join(local_root, fmt)
                        options: dict[str, Any] = {}
                    else:
                        outdir = f"s3://bench/{fmt}"
                        options = s3_options
                    COUNTS.clear()
                    started = time.perf_counter()
                    result = df.creevey.download(
                        outdir,
                        format="jpeg",
                        quality=90,
                        ops=[ops.resize(shape=(256, 256), mode="cover")],
                        progress=False,
                        output_format=creevey_dask.ShardOptions(fmt, shard_size=shard_size),
                        options=creevey_dask.RunOptions(npartitions=4, storage_options=options),
                    )
                    seconds = time.perf_counter() - started
                    ok = int((result["status"] == "ok").sum())
                    storage_ops = sum(v for k, v in COUNTS.items() if k.startswith("storage."))
                    s3_requests = sum(v for k, v in COUNTS.items() if k.startswith("s3."))
                    rows.append(
                        {
                            "target": target,
                            "format": fmt,
                            "ok": ok,
                            "seconds": round(seconds, 2),
                            "images/s": round(ok / seconds, 1),
                            "storage ops": storage_ops,
                            "S3 requests": s3_requests if target == "s3" else None,
                            "by kind": dict(sorted(COUNTS.items())),
                        }
                    )
                    print(rows[-1], flush=True)
                    if fmt == "webdataset":
                        ACCESS.append(random_access(target, outdir, options, repeats))
    finally:
        server.stop()
        shutil.rmtree(local_root, ignore_errors=True)
    return rows


_MEMORY_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, tracemalloc
    import pandas as pd
    import pyarrow as pa
    import creevey_dask

    folder, fmt, out = sys.argv[1:4]
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
    pipeline = creevey_dask.Pipeline(creevey_dask.load_image)
    one_partition = creevey_dask.RunOptions(npartitions=1)

    def run(rows, target):
        df = pd.DataFrame({"path": rows})
        if fmt == "files":
            namer = lambda p: os.path.join(target, os.path.basename(p))
            return pipeline.run(df, namer, inpath_col="path", n_jobs=4, progress=False,
                                options=one_partition)
        shards = creevey_dask.ShardOptions(fmt, shard_size=len(rows))
        return pipeline.run(df, target, inpath_col="path", output_format=shards, n_jobs=4,
                            progress=False, options=one_partition)

    run(paths[:8], out + "-warm")

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before = rss()
    if sys.argv[4] == "traced":
        tracemalloc.start()
    result = run(paths, out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    traced = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else None
    arrow = pa.default_memory_pool().max_memory()
    ok = int((result["status"] == "ok").sum())
    print(json.dumps({"ok": ok, "peak_above": peak - before, "traced": traced, "arrow": arrow,
                      "code": creevey_dask.__file__}))
    """
)


def _noise_folder(folder: str, n: int) -> int:
    """``n`` noise PNGs in ``folder`` (made once); their mean size in bytes."""
    import io

    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(3)
    sizes = []
    for i in range(n):
        path = os.path.join(folder, f"noise-{i:04d}.png")
        if not os.path.exists(path):
            buffer = io.BytesIO()
            pixels = rng.integers(0, 255, (160, 200, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, "PNG")
            with open(path, "wb") as f:
                f.write(buffer.getvalue())
        sizes.append(os.path.getsize(path))
    return int(sum(sizes) / len(sizes))


def memory(n: int, code: str | None, workdir: str, repeats: int) -> list[dict[str, Any]]:
    """Peak RSS of building one shard of ``n`` samples, per format (median of repeats)."""
    import statistics

    folder = os.path.join(workdir, "inputs")
    sample = _noise_folder(folder, n)
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    rows = []
    for fmt in ("files", "webdataset", "parquet"):
        answers: dict[str, list[dict[str, Any]]] = {"rss": [], "traced": []}
        for i in range(repeats):
            for mode in answers:  # RSS without tracemalloc's cost; Python's peak with it
                out = os.path.join(workdir, f"out-{fmt}-{i}-{mode}")
                for old in (out, out + "-warm"):
                    shutil.rmtree(old, ignore_errors=True)
                child = subprocess.run(
                    [sys.executable, "-c", _MEMORY_CHILD, folder, fmt, out, mode],
                    env=env,
                    cwd=workdir,  # not a checkout: the child imports the code asked for
                    capture_output=True,
                    text=True,
                    check=True,
                )
                answer = json.loads(child.stdout.strip().splitlines()[-1])
                assert answer["ok"] == n, answer
                assert answer["code"].startswith(code or os.path.dirname(_HERE)), answer
                answers[mode].append(answer)
        rss = statistics.median(a["peak_above"] for a in answers["rss"])
        traced = statistics.median(a["traced"] for a in answers["traced"])
        arrow = statistics.median(a["arrow"] for a in answers["rss"])
        rows.append(
            {
                "format": fmt,
                "RSS peak MB": round(rss / 1e6, 1),
                "Python peak MB": round(traced / 1e6, 2),
                "Arrow peak MB": round(arrow / 1e6, 2),
                "heap": traced + arrow,
            }
        )
        print(rows[-1], flush=True)
    base = rows[0]["heap"]
    for row in rows:  # the shard's own buffers: Python + Arrow heap above the files run
        row["over files (samples)"] = round((row.pop("heap") - base) / sample, 2)
    print(f"one sample: {sample / 1e3:.1f} KB; all {n}: {n * sample / 1e6:.1f} MB")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=2000, help="how many images")
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--memory", action="store_true", help="peak memory of one shard")
    parser.add_argument("--code", help="with --memory: the checkout to measure")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per case (--memory) or random-access repeats"
    )
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bench_mem"))
    args = parser.parse_args()
    if args.memory:
        n = 1000 if args.n == 2000 else args.n
        rows = memory(n, args.code, args.workdir, args.repeats)
        print()
        print(pd.DataFrame(rows).to_string(index=False))
        return
    print(f"creevey_dask {creevey_dask.__version__}; {os.cpu_count()} CPUs; n={args.n}")
    rows = run(args.n, args.shard_size, args.repeats)
    table = pd.DataFrame(rows).drop(columns=["by kind"])
    print()
    print(table.to_string(index=False))
    print()
    print(pd.DataFrame(ACCESS).to_string(index=False))


if __name__ == "__main__":
    main()
