"""Ctrl-C: a real SIGINT to a child process running a download stops it at once.

The child downloads many slow loopback URLs (each answer stalls) in two large
partitions. Once some files are on disk, the test sends it a real SIGINT and checks that
it exits with ``KeyboardInterrupt`` within a bound, that no temporary is left, that every
file on disk is complete, and that a rerun completes the rest. On a cluster (the
session's LocalCluster, which outlives the child) the workers must also stop writing.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

import creevey_dask as cd
from creevey_dask.storage.fs import TEMP_SUFFIX
from creevey_dask.testing import ImageServer

N_URLS = 200
STALL = 1.0  # seconds each answer waits: the rows in flight at the SIGINT are mid-load
N_JOBS = 8
#: Ctrl-C reaches the caller within ~2 s; the rest is slack for a loaded machine.
EXIT_BOUND = 2.0 + 1.5

CHILD = """
import sys
from pathlib import Path
import creevey_dask as cd

port, outdir, strategy = int(sys.argv[1]), sys.argv[2], sys.argv[3]
urls = [f"http://127.0.0.1:{{port}}/img/photo.jpg?stall={stall}&n={{i}}" for i in range({n})]

def path_func(url):
    return str(Path(outdir) / (url.rsplit("=", 1)[1] + ".png"))

if __name__ == "__main__":
    if strategy.startswith("tcp://"):  # a cluster's scheduler: the run goes there
        from distributed import Client

        client = Client(strategy)
        strategy = "threads"
    kwargs = dict(
        n_jobs={n_jobs},
        progress=False,
        http_options=cd.HttpOptions(per_host_limit=64),
        path_func=path_func,
    )
    if strategy == "lazy":  # dask input: the caller computes the lazy result itself
        import dask.dataframe as dd
        import pandas as pd

        lazy = cd.download_images_as_png(
            dd.from_pandas(pd.Series(urls, name="url"), npartitions=2), **kwargs
        )
        lazy.compute(scheduler="threads")
    else:
        cd.download_images_as_png(
            urls, options=cd.RunOptions(npartitions=2, parallel_strategy=strategy), **kwargs
        )
    print("FINISHED", flush=True)
"""


def _urls(server: ImageServer) -> list[str]:
    return [server.url(f"/img/photo.jpg?stall={STALL}&n={i}") for i in range(N_URLS)]


def _files(outdir: Path) -> list[Path]:
    return sorted(p for p in outdir.iterdir() if p.is_file()) if outdir.exists() else []


def _assert_complete(outdir: Path, expected_size: tuple[int, int]) -> list[Path]:
    """No temporaries; every file decodes in full and is the served photo."""
    names = [p.name for p in _files(outdir)]
    assert not [n for n in names if n.endswith(TEMP_SUFFIX)], names
    files = _files(outdir)
    for path in files:
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG"
            assert image.size == expected_size
    return files


def _interrupt_child(source: str, tmp_path: Path, args: list[str]) -> None:
    """Run ``source`` in a child, SIGINT it once some files exist; check it stopped at once."""
    outdir = Path(args[1])
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(source.format(stall=STALL, n=N_URLS, n_jobs=N_JOBS)), encoding="utf-8"
    )
    child = subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while len(_files(outdir)) < N_JOBS and child.poll() is None:
            assert time.monotonic() < deadline, "the child wrote no files in 60 s"
            time.sleep(0.05)
        assert child.poll() is None, child.communicate()
        # mid-run: rows of both partitions are loading (each answer stalls STALL s)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        child.wait(timeout=60)
        elapsed = time.monotonic() - sent
        out, err = child.communicate()
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    stderr = err.decode(errors="replace")
    assert child.returncode == -signal.SIGINT, (child.returncode, stderr[-2000:])
    assert "KeyboardInterrupt" in stderr, stderr[-2000:]
    assert b"FINISHED" not in out
    assert elapsed < EXIT_BOUND, f"the child took {elapsed:.1f} s to stop after SIGINT"


@pytest.mark.parametrize("strategy", ["threads", "processes", "auto", "lazy"])
def test_sigint_stops_a_run_at_once_and_a_rerun_completes_it(
    fresh_image_server: ImageServer, tmp_path: Path, strategy: str
) -> None:
    server = fresh_image_server
    outdir = tmp_path / "out"
    _interrupt_child(CHILD, tmp_path, [str(server.port), str(outdir), strategy])

    photo_size = Image.open(__import__("io").BytesIO(server.files["photo.jpg"])).size
    done = _assert_complete(outdir, photo_size)
    # it stopped: two partitions of N_JOBS threads, STALL s per row, no more than
    # a few rounds of rows between the first files and the exit
    assert N_JOBS <= len(done) < N_URLS // 2, len(done)

    # a rerun completes the rest and skips what is done
    urls = _urls(server)
    result = cd.download_images_as_png(
        urls,
        path_func=lambda url: str(outdir / (url.rsplit("=", 1)[1] + ".png")),
        n_jobs=100,
        progress=False,
        http_options=cd.HttpOptions(per_host_limit=200),
        options=cd.RunOptions(npartitions=2),
    )
    counts = result["status"].value_counts()
    assert counts["skipped"] == len(done)
    assert counts["ok"] == N_URLS - len(done)
    files = _assert_complete(outdir, photo_size)
    assert sorted(p.name for p in files) == sorted(f"{i}.png" for i in range(N_URLS))
    assert sorted(result["outpath"]) == sorted(str(p) for p in files)


@pytest.mark.cluster
@pytest.mark.slow
def test_sigint_on_a_cluster_stops_the_running_partitions(
    local_cluster_client: object, fresh_image_server: ImageServer, tmp_path: Path
) -> None:
    server = fresh_image_server
    outdir = tmp_path / "out"
    scheduler = local_cluster_client.scheduler.address  # type: ignore[attr-defined]
    _interrupt_child(CHILD, tmp_path, [str(server.port), str(outdir), scheduler])
    # the workers, still running, stopped the two partitions: the rows loading at the
    # interrupt (each answer stalls STALL s) write nothing, and no row starts again
    time.sleep(STALL + 0.5)
    stopped = [p.name for p in _files(outdir)]
    time.sleep(3 * STALL)
    assert [p.name for p in _files(outdir)] == stopped, "the workers kept writing"
    photo_size = Image.open(__import__("io").BytesIO(server.files["photo.jpg"])).size
    done = _assert_complete(outdir, photo_size)
    assert N_JOBS <= len(done) < N_URLS // 2, len(done)
