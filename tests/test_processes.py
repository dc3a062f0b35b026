"""The default strategy: a process per core, forked per run, where processes win.

Real worker processes throughout: the rows record the process they ran in, the pool's
workers are real forked processes (new for each run, killed with a real SIGKILL),
and Ctrl-C is a real SIGINT to a child process running a default call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dask
import pandas as pd
import pytest
from PIL import Image

import creevey_dask as cd
from creevey_dask import Pipeline, load_image, report
from creevey_dask.download import HttpLoader
from creevey_dask.engine import processes as _processes
from creevey_dask.engine.runner import local_cores
from creevey_dask.exceptions import WorkerProcessError
from creevey_dask.storage import TEMP_SUFFIX, is_temporary
from creevey_dask.testing import ImageServer
from tests.conftest import make_photo

pytestmark = pytest.mark.skipif(
    not _processes.process_pool_works() or local_cores() < 2,
    reason="the default picks processes only on Linux with 2 or more cores",
)

N_ROWS = _processes.MIN_PROCESS_ROWS + 40


@pytest.fixture(scope="module")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``N_ROWS`` small JPEGs, each a different photo."""
    folder = tmp_path_factory.mktemp("many")
    paths = []
    for i in range(N_ROWS):
        path = folder / f"p{i:04d}.jpg"
        make_photo(48 + i % 7, 36 + i % 5, seed=i).save(path, quality=90)
        paths.append(str(path))
    return paths


def _pid_pipeline(*ops: object, **kwargs: object) -> Pipeline:
    """Resize to 16x16 and record the process each row ran in (column ``pid``)."""
    steps = [*ops, cd.ops.resize(shape=(16, 16)), report("pid", lambda im: os.getpid(), "Int64")]
    return Pipeline(load_image, ops=steps, **kwargs)


def _to(outdir: Path):
    def outpath(source: str) -> str:
        return str(outdir / (Path(source).stem + ".png"))

    return outpath


def _pids(result: pd.DataFrame) -> set[int]:
    return set(result["pid"].dropna().astype(int))


def test_a_large_local_run_goes_to_worker_processes_and_equals_the_threaded_run(
    many_files: list[str], tmp_path: Path
) -> None:
    auto = _pid_pipeline().run(many_files, _to(tmp_path / "auto"), progress=False)
    workers = _pids(auto)
    assert 2 <= len(workers) <= local_cores()
    assert os.getpid() not in workers
    assert _processes.worker_pids() == []  # no process outlives its run
    assert not [p for p in workers if _alive(p)]

    threads = _pid_pipeline(parallel_strategy="threads").run(
        many_files, _to(tmp_path / "threads"), progress=False
    )
    assert _pids(threads) == {os.getpid()}
    assert (auto["status"] == "ok").all()
    pd.testing.assert_frame_equal(
        auto.drop(columns=["pid", "outpath"]), threads.drop(columns=["pid", "outpath"])
    )
    assert list(auto["outpath"].str.rsplit("/", n=1).str[1]) == list(
        threads["outpath"].str.rsplit("/", n=1).str[1]
    )
    for a, b, source in zip(auto["outpath"], threads["outpath"], many_files, strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()  # the same pixels, encoded alike
        with Image.open(a) as image, Image.open(source) as original:
            assert image.size == (16, 16)
            assert abs(image.getpixel((0, 0))[0] - original.getpixel((0, 0))[0]) < 60

    # the next default call forks workers of its own
    again = _pid_pipeline().run(many_files, _to(tmp_path / "again"), progress=False)
    assert _pids(again).isdisjoint(workers)
    assert os.getpid() not in _pids(again)


def test_clashing_names_settle_as_on_threads(many_files: list[str], tmp_path: Path) -> None:
    # the same file names in two folders: the first row of each name keeps it, the other
    # row runs in the second phase and takes the hashed name, on processes as on threads
    copies = tmp_path / "copies"
    copies.mkdir()
    for source in many_files[:60]:
        (copies / Path(source).name).write_bytes(Path(source).read_bytes())
    sources = [*many_files, *sorted(str(p) for p in copies.iterdir())]
    runs = {}
    for strategy in ("auto", "threads"):
        outdir = tmp_path / strategy
        runs[strategy] = _pid_pipeline(parallel_strategy=strategy).run(
            sources, _to(outdir), progress=False
        )
        assert (runs[strategy]["status"] == "ok").all()
    assert os.getpid() not in _pids(runs["auto"])
    names = {k: [Path(p).name for p in r["outpath"]] for k, r in runs.items()}
    assert names["auto"] == names["threads"]
    assert len(set(names["auto"])) == len(sources)  # every row its own file
    assert names["auto"][:N_ROWS] == [Path(s).stem + ".png" for s in many_files]


def test_the_default_resize_call_uses_the_pool(many_files: list[str], tmp_path: Path) -> None:
    result = pd.DataFrame({"path": many_files}).creevey.resize(
        tmp_path / "out",
        path_col="path",
        shape=(16, 16),
        progress=False,
        ops=[report("pid", lambda im: os.getpid(), "Int64")],
    )
    assert (result["status"] == "ok").all()
    assert len(_pids(result)) >= 2
    assert os.getpid() not in _pids(result)
    for path in result["outpath"]:
        with Image.open(path) as image:
            assert image.size == (16, 16)


@pytest.mark.parametrize("case", ["tiny", "memory", "threads-config", "sync-config", "one-core"])
def test_threads_where_processes_do_not_win_or_are_not_asked_for(
    many_files: list[str], tmp_path: Path, case: str, memfs: object
) -> None:
    sources = many_files[:20] if case == "tiny" else many_files
    outpath = _to(tmp_path / "out")
    if case == "memory":
        outpath = lambda s: f"memory://out/{Path(s).stem}.png"  # noqa: E731
    pipeline = _pid_pipeline()
    if case.endswith("-config"):
        with dask.config.set(scheduler=case.split("-")[0]):
            result = pipeline.run(sources, outpath, progress=False)
    elif case == "one-core":
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(affinity)})
        try:
            result = pipeline.run(sources, outpath, progress=False)
        finally:
            os.sched_setaffinity(0, affinity)
    else:
        result = pipeline.run(sources, outpath, progress=False)
    assert (result["status"] == "ok").all(), result["error"].dropna().head()
    assert _pids(result) == {os.getpid()}


def test_an_active_client_is_used_not_the_pool(
    many_files: list[str], tmp_path: Path, local_cluster_client: object
) -> None:
    workers = local_cluster_client.run(os.getpid)  # type: ignore[attr-defined]
    result = _pid_pipeline().run(many_files, _to(tmp_path / "out"), progress=False)
    assert (result["status"] == "ok").all()
    assert _pids(result) <= set(workers.values())


def test_the_http_loader_shares_its_per_host_limits_between_processes() -> None:
    loader = HttpLoader(cd.HttpOptions(per_host_limit=8, per_host_rate=3.0))
    shared = loader.for_processes(2)
    assert shared is not None
    assert (shared.options.per_host_limit, shared.options.per_host_rate) == (4, 1.5)
    assert loader.options.per_host_limit == 8  # the caller's loader is unchanged
    assert loader.for_processes(1) is loader
    one = HttpLoader(cd.HttpOptions(per_host_limit=1))
    assert one.for_processes(2) is None  # cannot be shared exactly: the default keeps threads
    assert one.for_processes(2, exact=False).options.per_host_limit == 1  # type: ignore[union-attr]


def test_a_download_whose_host_limit_cannot_be_shared_stays_on_threads(
    image_server: ImageServer, tmp_path: Path
) -> None:
    urls = [image_server.url(f"/img/photo.jpg?n={i}") for i in range(N_ROWS)]
    result = cd.download(
        urls,
        tmp_path / "out",
        n_jobs=4,
        progress=False,
        ops=[report("pid", lambda im: os.getpid(), "Int64")],
        http_options=cd.HttpOptions(per_host_limit=1),
    )
    assert (result["status"] == "ok").all()
    assert _pids(result) == {os.getpid()}
    assert image_server.max_active_total <= 1


def _slow(image: Image.Image) -> Image.Image:
    time.sleep(0.05)
    return image


def _writes_then_waits(image: Image.Image, path: str) -> None:
    """A writer caught mid-write: its temporary is on disk while it waits."""
    image.save(path)
    time.sleep(0.5)


def test_a_run_whose_worker_is_killed_mid_write_leaves_no_temporary(
    many_files: list[str], tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    pipeline = Pipeline(load_image, write_func=_writes_then_waits)
    caught: list[str] = []

    def kill_while_writing() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = _processes.worker_pids()
            temporaries = [p.name for p in outdir.glob(".*") if is_temporary(p.name)]
            if workers and temporaries:
                caught.extend(temporaries)
                os.kill(workers[0], signal.SIGKILL)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_while_writing, daemon=True)
    killer.start()
    with pytest.raises(WorkerProcessError):
        pipeline.run(many_files, _to(outdir), progress=False, n_jobs=2)
    killer.join(5)
    assert caught  # the run was stopped with temporaries on disk
    assert _processes.worker_pids() == []
    left = [p.name for p in outdir.iterdir() if is_temporary(p.name)]
    assert left == []  # every worker is gone, so the run removed what they left
    for path in outdir.iterdir():  # what is there is whole
        with Image.open(path) as image:
            image.load()


def test_a_killed_worker_fails_the_run_clearly_and_the_next_run_completes_it(
    many_files: list[str], tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    pipeline = _pid_pipeline(_slow)
    victims: list[int] = []

    def committed() -> set[str]:
        """The outputs on disk: a temporary (``.name.png.<id>.creevey-tmp.png``) is not."""
        if not outdir.exists():
            return set()
        return {p.name for p in outdir.glob("*.png") if not is_temporary(p.name)}

    def kill_when_started() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = _processes.worker_pids()
            if workers and len(committed()) >= 10:
                victims.append(workers[0])
                os.kill(workers[0], signal.SIGKILL)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_when_started, daemon=True)
    killer.start()
    with pytest.raises(WorkerProcessError, match=r"worker process .* died"):
        pipeline.run(many_files, _to(outdir), progress=False, n_jobs=2)
    killer.join(5)
    assert victims
    assert _processes.worker_pids() == []
    # the failed run leaves no temporary of its workers (the killed one's, or one the
    # pool stopped mid-write): every worker is gone, so the run removed them
    assert not [p.name for p in outdir.iterdir() if is_temporary(p.name)]
    written = committed()
    assert 10 <= len(written) < N_ROWS

    result = pipeline.run(many_files, _to(outdir), progress=False)
    assert set(result["status"]) <= {"ok", "skipped"}
    assert (result["status"] == "skipped").sum() >= len(written)
    assert victims[0] not in _pids(result)
    names = sorted(p.name for p in outdir.iterdir())
    assert names == sorted(Path(s).stem + ".png" for s in many_files)  # no temporaries
    for path in result["outpath"]:
        with Image.open(path) as image:
            image.load()
            assert image.size == (16, 16)


CHILD = """
import os, sys, time
from pathlib import Path
import creevey_dask as cd
from creevey_dask.engine import processes as _processes

sources, outdir, stall = sys.argv[1].split(","), Path(sys.argv[2]), float(sys.argv[3])

def slow(image):
    time.sleep(stall)
    return image

def outpath(source):
    return str(outdir / (Path(source).stem + ".png"))

pid = cd.report("pid", lambda image: os.getpid(), "Int64")
pipeline = cd.Pipeline(cd.load_image, ops=[slow, cd.ops.resize(shape=(16, 16)), pid])
tiny = pipeline.run(sources[:{tiny}], outpath, progress=False)  # threads
print("TINY", sorted(set(tiny["pid"].astype(int))), flush=True)
print("CALLER", os.getpid(), flush=True)
result = pipeline.run(sources, outpath, progress=False, skip_existing=False)
print("FINISHED", sorted(set(result["pid"].astype(int))), flush=True)
"""


def _run_child(
    tmp_path: Path, sources: list[str], stall: float
) -> tuple[subprocess.Popen[bytes], Path]:
    outdir = tmp_path / "out"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD.format(tiny=5)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(cd.__file__).parents[1])}
    child = subprocess.Popen(
        [sys.executable, str(script), ",".join(sources), str(outdir), str(stall)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    return child, outdir


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _listed(line: str) -> list[int]:
    return [int(p) for p in line.split("[")[1].rstrip("]").split(",") if p.strip()]


def test_a_default_call_in_a_script_forks_its_workers_and_exits_cleanly(
    many_files: list[str], tmp_path: Path
) -> None:
    child, outdir = _run_child(tmp_path, many_files, 0.0)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode(errors="replace")[-2000:]
    lines = out.decode().splitlines()
    caller = int(lines[1].split()[1])
    assert _listed(lines[0]) == [caller]  # the tiny first call ran on threads
    pids = _listed(lines[2])
    assert 2 <= len(pids) <= local_cores()
    assert caller not in pids
    assert not [p for p in pids if _alive(p)]  # the workers ended with their run
    assert len(list(outdir.glob("*.png"))) == N_ROWS


def test_a_caller_killed_mid_run_leaves_no_worker_behind(
    many_files: list[str], tmp_path: Path
) -> None:
    child, outdir = _run_child(tmp_path, many_files, 0.2)
    try:
        deadline = time.monotonic() + 60
        while len(list(outdir.glob("*.png"))) < 12 and child.poll() is None:
            assert time.monotonic() < deadline, "the child wrote no files in 60 s"
            time.sleep(0.02)
        workers = _children(child.pid)
        assert len(workers) >= 2, "the run is not on worker processes"
        child.kill()  # SIGKILL: the caller gets no chance to stop its workers
        child.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while [p for p in workers if _alive(p)] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in workers if _alive(p)], "orphaned workers"
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


@pytest.mark.parametrize("target", ["group", "caller"])
def test_sigint_stops_a_process_pool_run_promptly_without_partial_files(
    many_files: list[str], tmp_path: Path, target: str
) -> None:
    child, outdir = _run_child(tmp_path, many_files, 0.2)
    try:
        deadline = time.monotonic() + 60
        while len(list(outdir.glob("*.png"))) < 12 and child.poll() is None:
            assert time.monotonic() < deadline, "the child wrote no files in 60 s"
            time.sleep(0.02)
        assert child.poll() is None, child.communicate()
        workers = _children(child.pid)
        assert len(workers) >= 2, "the run is not on worker processes"
        sent = time.monotonic()
        if target == "group":  # Ctrl-C in a terminal: the whole foreground group
            os.killpg(child.pid, signal.SIGINT)
        else:  # the caller alone (a notebook's interrupt): it passes it on
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
    assert elapsed < 3.5, f"the child took {elapsed:.1f} s to stop after SIGINT"
    assert not [p for p in workers if _alive(p)]
    names = [p.name for p in outdir.iterdir()]
    assert not [n for n in names if n.endswith(TEMP_SUFFIX) or n.startswith(".")], names
    assert 12 <= len(names) < N_ROWS - 40
    for name in names:
        with Image.open(outdir / name) as image:
            image.load()
            assert image.size == (16, 16)


def _module(folder: Path, name: str, value: int) -> None:
    (folder / f"{name}.py").write_text(
        f"VALUE = {value}\n\n\ndef value(image):\n    return VALUE\n", encoding="utf-8"
    )


def test_workers_run_the_callers_code_as_it_is_now(
    many_files: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a notebook edits and reloads a module between calls, and imports another after
    # the first call: each run's workers see the caller's modules of that moment
    import importlib

    folder = tmp_path / "mods"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    _module(folder, "cd_edited_op", 1)
    edited = importlib.import_module("cd_edited_op")
    first = _pid_pipeline(report("value", edited.value, "Int64")).run(
        many_files, _to(tmp_path / "a"), progress=False
    )
    assert os.getpid() not in _pids(first)
    assert set(first["value"]) == {1}

    _module(folder, "cd_edited_op", 2)
    importlib.invalidate_caches()
    os.utime(folder / "cd_edited_op.py", (time.time() + 5, time.time() + 5))  # a new mtime
    importlib.reload(edited)
    _module(folder, "cd_later_op", 3)
    later = importlib.import_module("cd_later_op")
    second = _pid_pipeline(
        report("value", edited.value, "Int64"), report("later", later.value, "Int64")
    ).run(many_files, _to(tmp_path / "b"), progress=False)
    assert (second["status"] == "ok").all(), second["error"].dropna().head()
    assert os.getpid() not in _pids(second)
    assert set(second["value"]) == {2}
    assert set(second["later"]) == {3}


class _Heavy:
    """A big object an op holds; counts how often the caller pickles it."""

    pickled = 0

    def __init__(self) -> None:
        self.table = bytes(1 << 20)

    def __getstate__(self) -> dict[str, object]:
        if os.getpid() == _CALLER:
            type(self).pickled += 1
        return self.__dict__

    def __call__(self, image: Image.Image) -> int:
        return len(self.table)


_CALLER = os.getpid()


def test_an_op_is_pickled_once_per_run_not_once_per_partition(
    many_files: list[str], tmp_path: Path
) -> None:
    heavy = _Heavy()
    result = _pid_pipeline(report("size", heavy, "Int64")).run(
        many_files, _to(tmp_path / "out"), progress=False, options=cd.RunOptions(npartitions=12)
    )
    assert (result["status"] == "ok").all()
    assert os.getpid() not in _pids(result)
    assert set(result["size"]) == {1 << 20}
    assert _Heavy.pickled <= 2  # the check that it pickles, and the one copy shipped


def test_a_resize_of_http_sources_keeps_the_per_host_limit_across_processes(
    image_server: ImageServer, tmp_path: Path
) -> None:
    urls = [image_server.url(f"/img/photo.jpg?stall=0.05&n={i}") for i in range(N_ROWS)]
    image_server.reset_counters()
    result = pd.DataFrame({"url": urls}).creevey.resize(
        tmp_path / "out",
        path_col="url",
        progress=False,
        ops=[report("pid", lambda im: os.getpid(), "Int64")],
        shape=(16, 16),
        options=cd.RunOptions(n_jobs=16),
    )
    assert (result["status"] == "ok").all(), result["error"].dropna().head()
    assert len(_pids(result)) >= 2  # processes, each with 16 row threads
    assert image_server.max_active_total <= cd.HttpOptions().per_host_limit
