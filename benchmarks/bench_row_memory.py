"""Peak memory and time of one row on the hostile images of the memory budget.

Each case runs in a fresh subprocess (peak RSS is per process): it makes the input
file once (cached in ``--workdir``), then times one row through a Pipeline that
loads it with the library's loader and writes PNG, and reports the row's status, the
peak RSS above the process's RSS before the row, and the seconds. Run::

    python benchmarks/bench_row_memory.py [--workdir /tmp/creevey-row-memory]

Cases (the worst ones of the hostile review): a 0.6 MB ``.ico`` holding a 12,000²
PNG; a CMYK JPEG just under ``max_pixels`` written as PNG; a float (``F``) TIFF
written as PNG; 30 small rows alone and behind that icon (16 at once, one partition);
and, as references a budget must let through, a 6,000 x 4,000 RGB
JPEG written as PNG and the same resized to 1,024 wide.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import textwrap

CASES = (
    "ico_png_12000",
    "cmyk_jpeg_89mp",
    "float_tiff_9000",
    "rgb_jpeg_24mp",
    "rgb_24mp_resized",
    "small_rows_behind_ico",
    "small_rows_alone",
)


def make(case: str, folder: str) -> str:
    """The input file of ``case`` in ``folder`` (made once)."""
    import io

    import numpy as np
    from PIL import Image, ImageDraw

    if case.startswith("small_rows"):
        make("ico_png_12000", folder)
        for i in range(30):
            small = os.path.join(folder, f"small-{i:02d}.jpg")
            if not os.path.exists(small):
                Image.new("RGB", (320, 240), (i * 8, 100, 50)).save(small, "JPEG")
        return os.path.join(folder, "ico_png_12000.ico")
    ext = {"ico_png_12000": ".ico", "float_tiff_9000": ".tif"}.get(case, ".jpg")
    path = os.path.join(folder, case + ext)
    if os.path.exists(path):
        return path
    if case == "ico_png_12000":
        image = Image.new("RGBA", (12_000, 12_000), (20, 40, 60, 255))
        ImageDraw.Draw(image).ellipse((1000, 1000, 11000, 11000), fill=(200, 100, 50, 255))
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=9)
        png = buffer.getvalue()
        del image
        entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
        data = struct.pack("<HHH", 0, 1, 1) + entry + png
    elif case == "cmyk_jpeg_89mp":
        side = 9_400  # 88.4 Mpx, just under DEFAULT_MAX_PIXELS
        y = np.linspace(0, 255, side, dtype=np.float32)
        plane = np.add.outer(y, y[::-1]) / 2
        array = np.stack([plane, plane.T, 255 - plane, plane / 2], -1).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array, "CMYK").save(buffer, "JPEG", quality=60)
        data = buffer.getvalue()
    elif case == "float_tiff_9000":
        side = 9_000
        y = np.round(np.linspace(0, 1, side, dtype=np.float32) * 4) / 4
        array = (np.add.outer(y, y) / 2).astype(np.float32)
        buffer = io.BytesIO()
        Image.fromarray(array, "F").save(buffer, "TIFF", compression="tiff_adobe_deflate")
        data = buffer.getvalue()
    else:
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:4000, 0:6000]
        base = np.stack([x * 255 // 5999, y * 255 // 3999, (x + y) % 256], -1)
        noise = rng.integers(-12, 13, size=base.shape)
        array = np.clip(base + noise, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array, "RGB").save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return path


_ROW = textwrap.dedent(
    """
    import json, os, sys, time
    from creevey_dask import ImageWriter, Pipeline, RunOptions, load_image, ops
    from creevey_dask.engine.rows import report
    case, source, out = sys.argv[1:4]
    def status(field):  # VmHWM: this process's peak RSS (ru_maxrss survives exec)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    before = status("VmRSS")
    op = [ops.resize(shape=(683, 1024))] if case.endswith("resized") else []
    if case.startswith("small_rows"):  # 30 small rows, alone or behind the hostile icon
        folder = os.path.dirname(source)
        smalls = [os.path.join(folder, f"small-{i:02d}.jpg") for i in range(30)]
        sources = ([source] if case.endswith("behind_ico") else []) + smalls
        start = time.perf_counter()
        stamp = report("done_at", lambda im: time.perf_counter() - start, "float64")
        pipeline = Pipeline(load_image, ops=[stamp], write_func=ImageWriter("png"))
        result = pipeline.run(sources, lambda p: out + os.path.basename(p) + ".png",
                              n_jobs=16, progress=False, skip_existing=False,
                              options=RunOptions(npartitions=1))
        done = result["done_at"].dropna().sort_values()
        print(json.dumps({"case": case, "status": "ok" if len(done) == 30 else "error",
                          "small_rows_median_s": round(float(done.median()), 3),
                          "small_rows_max_s": round(float(done.max()), 3),
                          "peak_mb": round((status("VmHWM") - before) / 2**20)}))
        sys.exit(0)
    pipeline = Pipeline(load_image, ops=op, write_func=ImageWriter("png"))
    start = time.perf_counter()
    result = pipeline.run([source], lambda p: out, n_jobs=1, progress=False,
                          skip_existing=False)
    seconds = time.perf_counter() - start
    peak = status("VmHWM")
    print(json.dumps({"case": case, "status": str(result.status.iloc[0]),
                      "error": str(result.error.fillna("").iloc[0])[:160],
                      "peak_mb": round((peak - before) / 2**20), "seconds": round(seconds, 2),
                      "input_kb": round(os.path.getsize(source) / 1024)}))
    """
)


def run(case: str, folder: str) -> dict[str, object]:
    source = make(case, folder)
    out = os.path.join(folder, f"out-{case}.png")
    if os.path.exists(out):
        os.remove(out)
    proc = subprocess.run(
        [sys.executable, "-c", _ROW, case, source, out],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode:
        return {"case": case, "status": f"crashed ({proc.returncode})", "error": proc.stderr[-300:]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/creevey-row-memory")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    for case in args.cases:
        print(json.dumps(run(case, args.workdir)), flush=True)


if __name__ == "__main__":
    main()
