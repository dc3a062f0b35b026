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

Run ``python benchmarks/bench_shards.py`` (``--n 200`` for a quick check).
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

import creevey_dask
from creevey_dask import ops
from creevey_dask.storage import fs as storage
from creevey_dask.storage import provenance
from creevey_dask.testing import ImageServer, sample_images

COUNTS: collections.Counter[str] = collections.Counter()


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


def run(n: int, shard_size: int) -> list[dict[str, Any]]:
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
                        output_format=fmt,
                        shard_size=shard_size,
                        npartitions=4,
                        storage_options=options,
                        progress=False,
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
    finally:
        server.stop()
        shutil.rmtree(local_root, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=2000, help="how many images")
    parser.add_argument("--shard-size", type=int, default=500)
    args = parser.parse_args()
    print(f"creevey_dask {creevey_dask.__version__}; {os.cpu_count()} CPUs; n={args.n}")
    rows = run(args.n, args.shard_size)
    table = pd.DataFrame(rows).drop(columns=["by kind"])
    print()
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
