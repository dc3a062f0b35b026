"""Benchmark: local JPEGs → centre crop → 256x256 → JPEG q95, creevey_dask vs bare Pillow loops.

The images (``_images.py``): 70% real photos (scikit-learn/scikit-image sample photos
tiled and cropped to 400-2400 px), 15% synthetic photos, 15% line art; made once into
``--cache-dir``.

Contenders (``_contenders.py``), each a fresh interpreter timed from outside as a
user's script runs (start-up and imports included), pinned to ``--cores`` CPUs:

* ``bare-draft``: a process per core x ``--threads`` threads, ``Image.draft`` at the
  target, bicubic (the obvious fast loop; the throughput bar);
* ``bare-draft2x``: the same, ``draft`` at twice the target (the old baseline);
* ``bare-full``: the same without ``draft`` (the quality bar);
* ``creevey``: ``df.creevey.resize(outdir, path_col="path", shape=(256, 256),
  mode="cover", format="jpeg", quality=95)``, the default call.

For each: images/s, CPU ms per image of the process tree and peak PSS of the tree
(medians of ``--repeats``, contenders rotated each repeat), and the mean PSNR per image
set of the outputs against a reference (full decode, centre crop, Lanczos) over the
first ``--psnr-n`` images. ``--cores 1,2`` runs both and prints the scaling.

Run: ``python benchmarks/bench_resize.py [--n 2000] [--repeats 3] [--cores 1,2]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _images import ensure_images, references
from _report import CONTENDERS, measure, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; medians count")
    parser.add_argument("--cores", default="2", help="CPUs to pin to, e.g. 2 or 1,2")
    parser.add_argument("--threads", type=int, default=16, help="bare loop threads/process")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--psnr-n", type=int, default=300, help="images scored for PSNR")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "creevey_dask_bench"
    )
    args = parser.parse_args(argv)
    kinds = ensure_images(args.cache_dir, args.n)
    folder = args.cache_dir / f"mixed_{args.n}_0"
    names = list(kinds)
    refs = references(args.cache_dir, folder, names[: args.psnr_n])
    work = Path(tempfile.mkdtemp(prefix="bench_resize_"))
    try:
        results = measure(
            sources=[str(folder / name) for name in names],
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
    report(results, f"{len(names)} local JPEGs -> centre crop -> 256x256 -> JPEG q95")


if __name__ == "__main__":
    main()
