"""Scale-out on a real cluster started with dask's command-line tools.

``dask scheduler`` and two ``dask worker`` processes run on 127.0.0.1; a download →
resize job runs over a dask frame of 25 partitions, once undisturbed and once with a
worker killed (SIGKILL) mid-run. Workers run without a nanny, so a killed worker stays
dead and its tasks really move to the other one.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import creevey_dask
from creevey_dask.download import download
from creevey_dask.resize import resize
from creevey_dask.storage.fs import TEMP_SUFFIX
from creevey_dask.testing import ImageServer

ROOT = Path(__file__).resolve().parent.parent
N_IMAGES = 100
PARTITIONS = 25

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _jpeg(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    files = {f"p{i:03d}.jpg": _jpeg(64 + i % 17, 48 + i % 11, i) for i in range(N_IMAGES)}
    with ImageServer(files) as srv:
        yield srv


class CliCluster:
    """A scheduler and worker processes started with ``python -m dask``."""

    def __init__(self, workdir: Path, n_workers: int = 2) -> None:
        self.workdir = workdir
        self.scheduler_file = workdir / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.procs: list[subprocess.Popen[bytes]] = []
        self._spawn(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(self.scheduler_file),
        )
        deadline = time.monotonic() + 60
        while not self.scheduler_file.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the dask scheduler did not start within 60 s")
            time.sleep(0.1)
        for i in range(n_workers):
            self._spawn(
                "worker",
                "--scheduler-file",
                str(self.scheduler_file),
                "--nthreads",
                "2",
                "--no-nanny",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--name",
                f"worker-{i}",
                "--memory-limit",
                "0",
            )
        from distributed import Client

        self.client = Client(scheduler_file=str(self.scheduler_file), set_as_default=False)
        self.client.wait_for_workers(n_workers, timeout=60)

    def _spawn(self, *args: str) -> None:
        log = open(self.workdir / f"{args[0]}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "dask", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=str(ROOT),
            )
        )
        log.close()

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def close(self) -> None:
        self.client.close()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def cli_cluster(tmp_path: Path) -> Iterator[CliCluster]:
    cluster = CliCluster(_mkdir(tmp_path / "logs"))
    try:
        yield cluster
    finally:
        cluster.close()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _job(server: ImageServer, outdir: Path, stall: float = 0.0) -> dd.DataFrame:
    """The lazy download → resize job over a 25-partition dask frame."""
    query = f"?stall={stall}" if stall else ""
    urls = [server.url(f"/img/p{i:03d}.jpg{query}") for i in range(N_IMAGES)]
    frame = pd.DataFrame({"url": urls, "label": [f"class{i % 4}" for i in range(N_IMAGES)]})
    ddf = dd.from_pandas(frame, npartitions=PARTITIONS)
    downloaded = download(ddf, str(outdir / "raw"), format="jpeg", n_jobs=2, progress=False)
    return resize(
        downloaded,
        str(outdir / "small"),
        path_col="outpath",
        format="jpeg",
        quality=90,
        shape=(32, 32),
        options=creevey_dask.RunOptions(n_jobs=2),
    )


def _check_outputs(result: pd.DataFrame, outdir: Path) -> None:
    assert len(result) == N_IMAGES
    assert result.index.is_unique
    assert sorted(result.index) == list(range(N_IMAGES))
    for folder in ("raw", "small"):
        leftovers = [p.name for p in (outdir / folder).iterdir() if p.name.startswith(".")]
        assert leftovers == []  # no partial or temporary files, and no bookkeeping
        assert not list((outdir / folder).rglob(f"*{TEMP_SUFFIX}"))
    for path in result.outpath:
        with Image.open(path) as im:
            im.load()
            assert im.size == (32, 32)


def test_download_then_resize_on_a_cli_cluster(cli_cluster, server, tmp_path):
    client = cli_cluster.client
    pids = cli_cluster.worker_pids()
    assert len(pids) == 2
    assert os.getpid() not in pids.values()
    lazy = _job(server, tmp_path / "run")
    assert lazy.npartitions == PARTITIONS
    with client.as_current():
        result = lazy.compute()
    assert set(result.status) == {"ok"}
    _check_outputs(result, tmp_path / "run")
    assert result.label.tolist() == [f"class{i % 4}" for i in range(N_IMAGES)]
    # the work ran on both workers, not here: every served file was fetched once
    assert sum(server.hits.values()) >= N_IMAGES


def test_a_worker_killed_mid_run(cli_cluster, server, tmp_path):
    client = cli_cluster.client
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    with client.as_current():
        reference = _job(server, reference_dir).compute()
    assert set(reference.status) == {"ok"}

    lazy = _job(server, killed_dir, stall=0.15)
    with client.as_current():
        future = client.compute(lazy)
        victim_name, victim_pid = sorted(cli_cluster.worker_pids().items())[0]
        deadline = time.monotonic() + 120
        small = killed_dir / "small"
        while time.monotonic() < deadline and not future.done():
            if small.exists() and len(list(small.glob("*.jpg"))) >= 15:
                os.kill(victim_pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        else:
            pytest.fail("the job finished before a worker could be killed mid-run")
        result = future.result(timeout=180)
    assert len(client.scheduler_info()["workers"]) == 1  # the victim is really gone
    assert set(result.status) <= {"ok", "skipped"}
    _check_outputs(result, killed_dir)
    # the same files as the undisturbed run, byte for byte: nothing half-written or doubled
    for folder in ("raw", "small"):
        names = sorted(p.name for p in (killed_dir / folder).iterdir())
        assert names == sorted(p.name for p in (reference_dir / folder).iterdir())
        for name in names:
            assert (killed_dir / folder / name).read_bytes() == (
                reference_dir / folder / name
            ).read_bytes()
    print(
        f"killed {victim_name} (pid {victim_pid}); statuses: "
        f"{result.status.value_counts().to_dict()}"
    )


# -- a killed worker costs nothing: its politeness slots come back -----------------------

N_KILL = 400
KILL_STALL = 0.08  # seconds each answer waits: 400 URLs over 8 slots last ~4 s


def _tiny_jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size=(12, 16, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def two_process_cluster() -> Iterator[object]:
    """A LocalCluster of 2 worker processes (with nannies), 1 dask thread each."""
    from creevey_dask.cluster import start_local_cluster

    client = start_local_cluster(2, 1, dashboard=False, quiet=True)
    try:
        yield client
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()


def _semaphore_leases(dask_scheduler: object) -> int:
    """Leases held on the scheduler across creevey_dask's per-host semaphores."""
    leases = dask_scheduler.extensions["semaphores"].leases  # type: ignore[attr-defined]
    return sum(len(v) for k, v in leases.items() if k.startswith("creevey_dask-"))


def test_a_killed_worker_costs_no_row(two_process_cluster, tmp_path):
    client = two_process_cluster
    files = {f"k{i:03d}.jpg": _tiny_jpeg(i) for i in range(N_KILL)}
    outdir = tmp_path / "out"
    with ImageServer(files) as server:
        urls = [server.url(f"/img/k{i:03d}.jpg", stall=KILL_STALL) for i in range(N_KILL)]
        frame = pd.DataFrame({"url": urls})
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        done: dict[str, object] = {}

        def run() -> None:
            with client.as_current():  # the current Client is per thread
                done["result"] = download(frame, str(outdir), format="png", progress=False)
                done["workers"] = client.run(os.getpid)

        runner = threading.Thread(target=run)
        runner.start()
        deadline = time.monotonic() + 60
        while len(list(outdir.glob("*.png"))) < N_KILL // 10:
            assert runner.is_alive(), "the run ended before a worker could be killed"
            assert time.monotonic() < deadline, "no files in 60 s"
            time.sleep(0.01)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        runner.join(timeout=240)
        assert not runner.is_alive(), "the run did not end"
        # the dead worker's leases (never given back) expire within seconds, not
        # the 30 s + 10 s of distributed's defaults
        freed = None
        while time.monotonic() < killed + 20:
            if client.run_on_scheduler(_semaphore_leases) == 0:
                freed = time.monotonic() - killed
                break
            time.sleep(0.1)
    assert victim not in done["workers"].values()  # type: ignore[attr-defined]
    assert server.hits  # the workers downloaded: every file was fetched
    result = done["result"]
    assert isinstance(result, pd.DataFrame)
    errors = result.error.dropna().unique().tolist()
    assert set(result.status) <= {"ok", "skipped"}, errors[:3]
    assert freed is not None, "the dead worker's request slots were still held 20 s later"
    # exactly one decodable file per row, and it is that row's image
    assert sorted(p.name for p in outdir.iterdir()) == sorted(Path(p).name for p in result.outpath)
    assert len(set(result.outpath)) == N_KILL
    for url, outpath in zip(result.url, result.outpath, strict=True):
        name = url.split("/img/")[1].split("?")[0]
        with Image.open(io.BytesIO(files[name])) as served, Image.open(outpath) as written:
            assert written.format == "PNG"
            assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(served))
    print(f"statuses {result.status.value_counts().to_dict()}; slots free {freed:.1f} s after")


def test_a_second_in_process_cluster_gets_slots_of_its_own(tmp_path):
    # the slots of a closed cluster's worker must not be the next one's (same process)
    from distributed import Client, LocalCluster

    files = {f"k{i:03d}.jpg": _tiny_jpeg(i) for i in range(8)}
    with ImageServer(files) as server:
        urls = pd.DataFrame({"url": [server.url(f"/img/{name}") for name in files]})
        for run in range(2):
            with (
                LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster,
                Client(cluster) as client,
                client.as_current(),
            ):
                result = download(
                    urls,
                    str(tmp_path / str(run)),
                    progress=False,
                    http_options=creevey_dask.HttpOptions().replace(timeout=5),
                )
                # this cluster's scheduler holds the host's slots, not the closed one's
                known = client.run_on_scheduler(_semaphore_names)
            assert result.status.tolist() == ["ok"] * len(files), result.error.tolist()
            assert "creevey_dask-limit-8-127.0.0.1" in known


def _semaphore_names(dask_scheduler: object) -> list[str]:
    return sorted(dask_scheduler.extensions["semaphores"].max_leases)  # type: ignore[attr-defined]
