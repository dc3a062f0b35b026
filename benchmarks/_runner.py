"""Run benchmark contenders as fresh processes and measure them from outside.

For each run: the wall time from start to exit (interpreter start-up and imports
included), the CPU time of the whole process tree (user + system of the child and every
descendant it reaped), and the peak PSS of the tree (summed ``Pss`` of
``/proc/PID/smaps_rollup`` over the child and its descendants, sampled every 20 ms; PSS
counts shared pages once across the tree, so a pool of forked workers is not
double-counted the way summed RSS is). ``cores`` pins the tree to that many CPUs
(``sched_setaffinity``), so 1 vs 2 cores compares the same code.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Run:
    who: str
    ok: int
    wall: float
    cpu: float
    pss_mib: float


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        return []
    out = list(kids)
    for kid in kids:
        out += _children(kid)
    return out


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reaped_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(spec: dict, cores: int) -> Run:
    """Run the contender of ``spec`` in a fresh interpreter pinned to ``cores`` CPUs."""
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    cmd = [sys.executable, str(HERE / "_contenders.py"), f.name]
    cpu0 = _reaped_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    peak = 0
    try:
        while proc.poll() is None:
            peak = max(peak, sum(_pss_kib(p) for p in [proc.pid, *_children(proc.pid)]))
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.stdout.read() if proc.stdout else ""
        proc.wait()
        os.unlink(f.name)
    wall = time.perf_counter() - start
    cpu = _reaped_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['who']} exited with {proc.returncode}")
    ok = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])["ok"]
    return Run(spec["who"], int(ok), wall, cpu, peak / 1024)
