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
* ``bare-rule``: the same loop doing creevey_dask's decode + resize rule (so
  ``creevey / bare-rule`` is the engine's own cost, ``bare-rule / bare-draft`` the rule's);
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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import add_arguments, images, measure_all, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    folder, kinds, refs = images(args)
    results = measure_all(args, [str(folder / name) for name in kinds], kinds, refs)
    report(results, f"{len(kinds)} local JPEGs -> centre crop -> 256x256 -> JPEG q95")


if __name__ == "__main__":
    main()
