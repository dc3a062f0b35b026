"""Benchmark: bulk centre-crop + resize of local JPEGs, creevey_dask vs a bare Pillow loop.

The job: ≥ 2,000 photo-like JPEGs (mostly 400x300 to 1280x960, about 10% up to
2400x1800) → centre crop to a square → 256x256 → JPEG quality 95.

* **bare baseline**: one process per core (``multiprocessing.Pool``), each running the
  obvious loop with Pillow: open, ``Image.draft`` at twice the target (the same
  quality rule the library follows), convert to RGB, crop the centre square, resize
  with the same filter (bicubic), save.
* **creevey_dask**: ``resize(df, outdir, shape=(256, 256), mode="cover", format="jpeg",
  quality=95, parallel_strategy=...)``, by default on dask's ``"threads"`` scheduler
  (Pillow releases the GIL while decoding, resampling and encoding, and threads need
  no worker start-up; ``--strategy processes`` measures the other).

Both write every image to a fresh folder in each repeat; the figure is images per
second, the median of ``--repeats`` runs (alternating the two), and their ratio.

The images are generated once into ``--cache-dir`` and reused.

Run: ``python benchmarks/bench_resize.py [--n 2000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 256
QUALITY = 95
RESAMPLE = Image.Resampling.BICUBIC
#: dask's process start method for --strategy processes (dask's default is "spawn").
MP_CONTEXT = "spawn"


# -- test images ---------------------------------------------------------------------------
def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    big = rng.random() < 0.1
    width = int(rng.integers(1280, 2401)) if big else int(rng.integers(400, 1281))
    height = width * 3 // 4
    return (height, width) if rng.random() < 0.2 else (width, height)


def _make_photo(args: tuple[int, str]) -> None:
    """A photo-like JPEG: smooth shading, a few objects with edges, texture and noise."""
    seed, path = args
    rng = np.random.default_rng(seed)
    width, height = _image_size(rng)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        phase = rng.uniform(0, 6.28, 3)
        scale = rng.uniform(0.5, 2.0, 3) / max(width, height)
        channel = 110 + 50 * np.sin(x * scale[0] * 6.28 + phase[0]) * np.cos(
            y * scale[1] * 6.28 + phase[1]
        )
        channel += 25 * np.sin((x + y) * scale[2] * 40 + phase[2])  # texture
        channels.append(channel)
    image = np.stack(channels, axis=-1)
    for _ in range(6):  # objects with hard edges
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        r = rng.integers(min(width, height) // 12, min(width, height) // 4)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        image[mask] = image[mask] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    image += rng.normal(0, 4, size=image.shape).astype(np.float32)  # sensor noise
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB").save(path, quality=90)


def ensure_images(cache_dir: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` JPEGs in ``cache_dir`` (made once, with a marker file when complete)."""
    folder = cache_dir / f"photos_{n}_{seed}"
    paths = [str(folder / f"photo_{i:05d}.jpg") for i in range(n)]
    if (folder / "COMPLETE").exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    print(f"generating {n} test JPEGs in {folder} (once) ...", flush=True)
    start = time.perf_counter()
    with multiprocessing.Pool(os.cpu_count()) as pool:
        pool.map(_make_photo, [(seed * 1_000_003 + i, p) for i, p in enumerate(paths)], chunksize=8)
    (folder / "COMPLETE").write_text("ok\n")
    print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    return paths


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# -- the bare baseline -----------------------------------------------------------------------
def _bare_one(args: tuple[str, str]) -> None:
    source, outpath = args
    with Image.open(source) as image:
        image.draft("RGB", (2 * TARGET, 2 * TARGET))
        image = image.convert("RGB")
        w, h = image.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((TARGET, TARGET), RESAMPLE)
        image.save(outpath, "JPEG", quality=QUALITY)


def run_bare(paths: list[str], outdir: str, processes: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the bare loop over ``paths``."""
    os.makedirs(outdir)
    jobs = [(p, os.path.join(outdir, os.path.basename(p))) for p in paths]
    cpu, start = _cpu_seconds(), time.perf_counter()
    with multiprocessing.Pool(processes) as pool:
        for _ in pool.imap_unordered(_bare_one, jobs, chunksize=16):
            pass
    pool.join()  # reap the workers so that their CPU time is counted
    return time.perf_counter() - start, _cpu_seconds() - cpu


# -- creevey_dask ----------------------------------------------------------------------------
def run_creevey(
    paths: list[str],
    outdir: str,
    processes: int,
    n_jobs: int,
    npartitions: int | None,
    strategy: str = "threads",
    reducing_gap: float | None = 2.0,
) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``creevey_dask.resize`` over ``paths``."""
    import dask
    import pandas as pd

    from creevey_dask.resize import resize

    df = pd.DataFrame({"path": paths})
    cpu, start = _cpu_seconds(), time.perf_counter()
    with dask.config.set({"num_workers": processes, "multiprocessing.context": MP_CONTEXT}):
        result = resize(
            df,
            outdir,
            shape=(TARGET, TARGET),
            mode="cover",
            format="jpeg",
            quality=QUALITY,
            parallel_strategy=strategy,
            reducing_gap=reducing_gap,
            n_jobs=n_jobs,
            npartitions=npartitions,
            progress=False,
        )
    elapsed, cpu_used = time.perf_counter() - start, _cpu_seconds() - cpu
    bad = result[result["status"] != "ok"]
    if len(bad):
        raise RuntimeError(f"{len(bad)} rows failed, e.g. {bad['error'].iloc[0]}")
    return elapsed, cpu_used


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of images (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each; the median counts")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--n-jobs", type=int, default=2, help="creevey threads per partition")
    parser.add_argument("--strategy", choices=["threads", "processes"], default="threads")
    parser.add_argument(
        "--reducing-gap", type=float, default=2.0, help="resize(reducing_gap=...), default 2.0"
    )
    parser.add_argument("--npartitions", type=int, default=None)
    parser.add_argument(
        "--mp-context",
        choices=["spawn", "forkserver", "fork"],
        default="spawn",
        help="dask's process start method for --strategy processes (default: dask's spawn)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "creevey_dask_bench",
        help="where the test images are generated once",
    )
    args = parser.parse_args(argv)
    global MP_CONTEXT
    MP_CONTEXT = args.mp_context

    paths = ensure_images(args.cache_dir, args.n)
    work = Path(tempfile.mkdtemp(prefix="bench_resize_"))
    n = len(paths)
    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "creevey": []}

    def creevey(paths_: list[str], outdir: Path) -> tuple[float, float]:
        return run_creevey(
            paths_,
            str(outdir),
            args.processes,
            args.n_jobs,
            args.npartitions,
            args.strategy,
            args.reducing_gap,
        )

    try:
        # warm the page cache and the imports once, untimed
        run_bare(paths[:50], str(work / "warm_bare"), args.processes)
        creevey(paths[:50], work / "warm_creevey")
        for i in range(args.repeats):  # alternate, so that load drift hits both alike
            runs["bare"].append(run_bare(paths, str(work / f"bare_{i}"), args.processes))
            runs["creevey"].append(creevey(paths, work / f"creevey_{i}"))
            (bw, bc), (cw, cc) = runs["bare"][-1], runs["creevey"][-1]
            print(
                f"repeat {i + 1}: bare {n / bw:6.1f} img/s ({1000 * bc / n:5.2f} CPU ms/img)   "
                f"creevey_dask {n / cw:6.1f} img/s ({1000 * cc / n:5.2f} CPU ms/img)   "
                f"ratio {bw / cw:4.2f}",
                flush=True,
            )
            shutil.rmtree(work / f"bare_{i}")
            shutil.rmtree(work / f"creevey_{i}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median_rate(name: str) -> float:
        return statistics.median(n / wall for wall, _ in runs[name])

    def median_cpu_ms(name: str) -> float:
        return statistics.median(1000 * cpu / n for _, cpu in runs[name])

    bare, ours = median_rate("bare"), median_rate("creevey")
    paired = statistics.median(
        b[0] / c[0] for b, c in zip(runs["bare"], runs["creevey"], strict=True)
    )
    label = (
        f"creevey_dask resize(mode='cover'), {args.strategy}, n_jobs={args.n_jobs}, "
        f"reducing_gap={args.reducing_gap}"
    )
    print(
        f"\n{n} JPEGs -> centre crop -> {TARGET}x{TARGET} -> JPEG q{QUALITY}, "
        f"{args.processes} cores, median of {args.repeats}"
    )
    print(f"bare Pillow loop, {args.processes} processes (draft at 2x, bicubic):")
    print(f"    {bare:7.1f} images/s   {median_cpu_ms('bare'):6.2f} CPU ms/image")
    print(f"{label}:")
    print(f"    {ours:7.1f} images/s   {median_cpu_ms('creevey'):6.2f} CPU ms/image")
    print(f"ratio of median rates (creevey_dask / bare):   {ours / bare:5.2f}x")
    print(f"median of per-repeat ratios:                   {paired:5.2f}x")
    print(
        "ratio of CPU per image (bare / creevey_dask):  "
        f"{median_cpu_ms('bare') / median_cpu_ms('creevey'):5.2f}x"
    )


if __name__ == "__main__":
    main()
