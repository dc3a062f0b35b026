"""How much of a JPEG to decode for a cover resize: quality (PSNR) against decode cost.

For every image of the benchmark set (real photos, synthetic photos, line art; see
``_images.py``) and every rule below, decode + centre-crop + resize to 256x256 in this
one thread, and compare the result with the reference (full decode, centre crop,
Lanczos). The rules run interleaved image by image, so machine load hits them alike;
the cost is the CPU time of decode + resize (``time.thread_time``), summed per rule.

Rules:

* ``full``: full decode, bicubic (the bare full-decode loop);
* ``draft1``: ``Image.draft`` at the target (the bare + draft loop), bicubic;
* ``mX``: draft so that the crop keeps at least ``X`` times the output size, then the
  library's resize (bicubic or lanczos, ``reducing_gap``); ``m2`` is the old rule.

``--encode 95`` scores the outputs after a JPEG q95 round trip, as the benchmarks write
them.

Run: ``python benchmarks/bench_draft_rule.py [--n 400] [--encode 95]``.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _images import SETS, TARGET, cover_box, ensure_images, psnr, reference

CAP = 60.0  # dB: a per-image PSNR counts at most this (identical images are inf)
LIBRARY = "creevey_dask default"
BICUBIC = Image.Resampling.BICUBIC
LANCZOS = Image.Resampling.LANCZOS


def decode_resize(
    data: str, margin: float | None, resample: Image.Resampling, gap: float | None
) -> np.ndarray:
    with Image.open(data) as image:
        full = image.size
        box = cover_box(*full)
        if margin is not None:
            sx = margin * TARGET / (box[2] - box[0])
            sy = margin * TARGET / (box[3] - box[1])
            if sx < 1 or sy < 1:
                drafted = image.draft("RGB", (math.ceil(full[0] * sx), math.ceil(full[1] * sy)))
                if drafted is not None and image.size != full:
                    f = drafted[1][2] / full[0]  # 1/scale: decoded pixel i covers [i*s, (i+1)*s)
                    box = (
                        box[0] * f,
                        box[1] * f,
                        min(box[2] * f, image.width),
                        min(box[3] * f, image.height),
                    )
        image = image.convert("RGB")
        out = image.resize((TARGET, TARGET), resample, box=box, reducing_gap=gap)
    return np.asarray(out)


def library(path: str) -> np.ndarray:
    """creevey_dask's default: its draft rule and ``ops.resize(mode="cover")``."""
    from creevey_dask import ops
    from creevey_dask.image.imagefile import decode_image

    op = ops.resize(shape=(TARGET, TARGET), mode="cover")
    with open(path, "rb") as f:
        data = f.read()
    return np.asarray(op(decode_image(data, draft=op.draft_size)).convert("RGB"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "creevey_dask_bench"
    )
    parser.add_argument("--margins", default="1,1.25,1.5,2")
    parser.add_argument(
        "--encode", type=int, default=None, help="score after a JPEG round trip at this quality"
    )
    args = parser.parse_args(argv)
    kinds = ensure_images(args.cache_dir, args.n)
    folder = args.cache_dir / f"mixed_{args.n}_0"
    rules: dict[str, tuple[float | None, Image.Resampling, float | None]] = {
        "full bicubic": (None, BICUBIC, None),
        "draft1 bicubic": (1.0, BICUBIC, None),
    }
    for m in (float(x) for x in args.margins.split(",")):
        rules[f"m{m:g} bicubic gap2"] = (m, BICUBIC, 2.0)
        rules[f"m{m:g} lanczos gap2"] = (m, LANCZOS, 2.0)
    rules["full bicubic gap2"] = (None, BICUBIC, 2.0)
    rules[LIBRARY] = (None, LANCZOS, None)  # (the parameters are the library's own)
    cost = dict.fromkeys(rules, 0.0)
    scores: dict[str, dict[str, list[float]]] = {r: {k: [] for k in SETS} for r in rules}
    for name, kind in kinds.items():
        path = str(folder / name)
        ref = reference(path)
        for rule, (margin, resample, gap) in rules.items():
            start = time.thread_time()
            out = library(path) if rule == LIBRARY else decode_resize(path, margin, resample, gap)
            cost[rule] += time.thread_time() - start
            if args.encode:
                buffer = io.BytesIO()
                Image.fromarray(out).save(buffer, "JPEG", quality=args.encode)
                out = np.asarray(Image.open(buffer).convert("RGB"))
            scores[rule][kind].append(min(psnr(out, ref), CAP))
    n = len(kinds)
    base = cost["full bicubic"]
    print(f"{n} images; reference: full decode + centre crop + Lanczos {TARGET}x{TARGET}")
    print(f"{'rule':24s} {'ms/img':>7s} {'cost':>5s}  " + "  ".join(f"{k:>9s}" for k in SETS))
    for rule in rules:
        means = [
            statistics.mean(scores[rule][k]) if scores[rule][k] else float("nan") for k in SETS
        ]
        mins = [min(scores[rule][k]) if scores[rule][k] else float("nan") for k in SETS]
        print(
            f"{rule:24s} {1000 * cost[rule] / n:7.2f} {cost[rule] / base:5.2f}  "
            + "  ".join(f"{m:9.2f}" for m in means)
            + "   min "
            + " ".join(f"{m:5.1f}" for m in mins)
        )


if __name__ == "__main__":
    main()
