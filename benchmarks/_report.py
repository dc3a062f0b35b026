"""The measuring loop and the printed report shared by bench_resize and bench_download."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _images import SETS, ensure_images, mean_psnr, references
from _runner import Run, run

#: the contenders run by default; ``bare-draft2x``, ``bare-full``, ``creevey-threads`` and
#: ``creevey-processes`` can be added with ``--contenders``
CONTENDERS = ("bare-draft", "bare-rule", "creevey")
#: throughput is compared with this one, PSNR with the next
SPEED_BAR, QUALITY_BAR = "bare-draft", "bare-full"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both benchmarks take."""
    parser.add_argument("--n", type=int, default=2000, help="images (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; medians count")
    parser.add_argument("--cores", default="2", help="CPUs to pin to, e.g. 2 or 1,2")
    parser.add_argument("--threads", type=int, default=16, help="bare loop threads/process")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--psnr-n", type=int, default=300, help="images scored for PSNR")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "creevey_dask_bench",
    )


def images(
    args: argparse.Namespace,
) -> tuple[Path, dict[str, str], dict[str, np.ndarray]]:
    """(folder, file name → image set, file name → reference) for ``args``."""
    kinds = ensure_images(args.cache_dir, args.n)
    folder = args.cache_dir / f"mixed_{args.n}_0"
    refs = references(args.cache_dir, folder, list(kinds)[: args.psnr_n])
    return folder, kinds, refs


def measure_all(
    args: argparse.Namespace,
    sources: list[str],
    kinds: dict[str, str],
    refs: dict[str, np.ndarray],
) -> dict[tuple[int, str], dict]:
    """:func:`measure` with the options of :func:`add_arguments`, in a scratch folder."""
    work = Path(tempfile.mkdtemp(prefix="creevey_bench_"))
    try:
        return measure(
            sources=sources,
            contenders=args.contenders.split(","),
            cores=[int(c) for c in args.cores.split(",")],
            repeats=args.repeats,
            threads=args.threads,
            work=work,
            refs=refs,
            kinds=kinds,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def measure(
    *,
    sources: list[str],
    contenders: list[str],
    cores: list[int],
    repeats: int,
    threads: int,
    work: Path,
    refs: dict[str, np.ndarray],
    kinds: dict[str, str],
) -> dict[tuple[int, str], dict]:
    """Run every contender ``repeats`` times per core count; (cores, who) → figures."""
    results: dict[tuple[int, str], dict] = {}
    for n_cores in cores:
        runs: dict[str, list[Run]] = {who: [] for who in contenders}
        psnrs: dict[str, dict[str, float]] = {}
        print(f"\n{n_cores} core(s); {_load()}", flush=True)
        for repeat in range(repeats):
            shift = repeat % len(contenders)
            for who in contenders[shift:] + contenders[:shift]:
                outdir = work / f"{who}_{n_cores}_{repeat}"
                outdir.mkdir()
                spec = {
                    "who": who,
                    "sources": sources,
                    "outdir": str(outdir),
                    "threads": threads,
                }
                result = run(spec, n_cores)
                runs[who].append(result)
                if who not in psnrs:
                    psnrs[who] = mean_psnr(outdir, refs, kinds)
                shutil.rmtree(outdir)
                print(
                    f"  {who:17s} run {repeat + 1}: {result.ok}/{len(sources)} ok, "
                    f"{result.wall:6.2f} s, {result.ok / result.wall:6.1f} img/s, "
                    f"{1000 * result.cpu / max(result.ok, 1):5.2f} CPU ms/img, "
                    f"peak PSS {result.pss_mib:5.0f} MiB",
                    flush=True,
                )
                time.sleep(0.5)
        print(f"  ({_load()} at the end)")
        for who in contenders:
            rs = runs[who]
            results[(n_cores, who)] = {
                "rate": statistics.median(r.ok / r.wall for r in rs),
                "cpu_ms": statistics.median(1000 * r.cpu / max(r.ok, 1) for r in rs),
                "pss": statistics.median(r.pss_mib for r in rs),
                "psnr": psnrs[who],
                "n": len(rs),
            }
    return results


def report(results: dict[tuple[int, str], dict], job: str) -> None:
    cores = sorted({c for c, _ in results})
    whos = list(dict.fromkeys(w for _, w in results))
    print(f"\n{job}; medians of {results[(cores[0], whos[0])]['n']} runs")
    print("PSNR: mean per image set against full decode + centre crop + Lanczos")
    header = f"{'contender':17s} {'img/s':>7s} {'CPU ms/img':>10s} {'PSS MiB':>8s}  "
    header += "  ".join(f"{s:>9s}" for s in SETS)
    for n_cores in cores:
        print(f"\n{n_cores} core(s)\n{header}")
        for who in whos:
            r = results[(n_cores, who)]
            print(
                f"{who:17s} {r['rate']:7.1f} {r['cpu_ms']:10.2f} {r['pss']:8.0f}  "
                + "  ".join(f"{r['psnr'].get(s, float('nan')):9.2f}" for s in SETS)
            )
        if (n_cores, "creevey") in results and (n_cores, SPEED_BAR) in results:
            ours, bar = results[(n_cores, "creevey")], results[(n_cores, SPEED_BAR)]
            print(
                f"creevey / {SPEED_BAR}: throughput {ours['rate'] / bar['rate']:.2f}x, "
                f"CPU per image {ours['cpu_ms'] / bar['cpu_ms']:.2f}x, "
                f"peak PSS {ours['pss'] / bar['pss']:.2f}x"
            )
        if (n_cores, "creevey") in results and (n_cores, "bare-rule") in results:
            ours, rule = results[(n_cores, "creevey")], results[(n_cores, "bare-rule")]
            bar_rate = (
                results[(n_cores, SPEED_BAR)]["rate"] if (n_cores, SPEED_BAR) in results else None
            )
            print(
                f"creevey / bare-rule (the engine's own cost): throughput "
                f"{ours['rate'] / rule['rate']:.2f}x (goal >= 0.97x), CPU per image "
                f"{ours['cpu_ms'] / rule['cpu_ms']:.2f}x, peak PSS "
                f"{ours['pss'] - rule['pss']:+.0f} MiB (goal <= +100)"
                + (
                    f"; bare-rule / {SPEED_BAR} (the quality rule's cost): "
                    f"{rule['rate'] / bar_rate:.2f}x"
                    if bar_rate
                    else ""
                )
            )
        if (n_cores, "creevey") in results and (n_cores, QUALITY_BAR) in results:
            ours, bar = results[(n_cores, "creevey")], results[(n_cores, QUALITY_BAR)]
            diffs = ", ".join(
                f"{s} {ours['psnr'][s] - bar['psnr'][s]:+.2f} dB"
                for s in SETS
                if s in ours["psnr"] and s in bar["psnr"]
            )
            print(f"creevey PSNR - {QUALITY_BAR} PSNR: {diffs}")
    if len(cores) > 1:
        print(f"\nscaling, {cores[0]} -> {cores[-1]} cores (throughput ratio):")
        for who in whos:
            a, b = results[(cores[0], who)], results[(cores[-1], who)]
            print(f"  {who:17s} {b['rate'] / a['rate']:.2f}x")
    if 1 in cores and 2 in cores:
        project(results, 16)


def serial_fraction(rate1: float, rate2: float) -> float:
    """Amdahl's serial fraction from the rates on 1 and 2 cores: ``2 * r1 / r2 - 1``.

    ``r2 = r1 / (s + (1 - s) / 2)`` solved for ``s``; clipped to [0, 1]. The serial part
    is whatever did not scale from one core to two: the GIL within a process, the
    parent's share (scheduling, pickling), start-up, the disk and the server.
    """
    return min(1.0, max(0.0, 2 * rate1 / rate2 - 1))


def project(results: dict[tuple[int, str], dict], n: int) -> None:
    """Print each contender's serial fraction and its Amdahl projection to ``n`` cores."""
    print(f"\n{n}-core projection (Amdahl, serial fraction from the 1 -> 2 core runs):")
    for who in dict.fromkeys(w for _, w in results):
        r1, r2 = results[(1, who)]["rate"], results[(2, who)]["rate"]
        s = serial_fraction(r1, r2)
        print(
            f"  {who:17s} serial {100 * s:4.1f}%, {n} cores: "
            f"{r1 / (s + (1 - s) / n):7.0f} img/s ({1 / (s + (1 - s) / n):.1f}x one core)"
        )
