"""Duplicate groups: how good (per transform, per max_distance) and how fast (vs brute force).

Quality
    A corpus of distinct photos made from real photographs (``_images.real_photo_sources``:
    scikit-image's and scikit-learn's sample photos, cut into non-overlapping 128 px
    squares, near-uniform ones left out, each enlarged 1-3x; squares of one photo share
    its colours and textures: hard negatives),
    each with planted copies: JPEG re-encodes at q60/q75/q90, resizes to 0.5x and 0.25x,
    crops of 2% and 5% per side, brightness +10% and -10%, and a horizontal flip, which
    is a *negative* (a mirrored photo is another training example). Every image is
    hashed with ``ops.dhash``; :func:`creevey_dask.duplicates` groups them at each
    ``max_distance``, and its groups are checked against a brute-force comparison of
    every pair. Per transform: recall (the share of copies grouped with their photo)
    and precision (the share of a copy's group-mates that are its photo or that
    photo's other true copies). Also the share of flips grouped with their photo, and
    of distinct photos that share a group with another photo.

Speed
    Random 64-bit hashes with 10% planted copies (0 to ``max_distance`` bits flipped),
    at 10**4, 3 x 10**4, 10**5 and 10**6 rows: :func:`duplicates` on pandas (medians of
    ``--repeats``; one run at 10**6), on a ``LocalCluster`` (2 workers x 1 thread) over
    a dask frame of 8 partitions, and the brute-force NumPy baseline (``bitwise_count``
    of every pair, in blocks) up to ``--brute-max`` rows. Uniform random hashes are the
    best case of multi-index hashing; real dhashes cluster more (see the docs).

Run: ``python benchmarks/bench_duplicates.py [--photos 150] [--sizes 10000,100000,1000000]``
(needs ``pip install scikit-image`` and numpy >= 2 for ``bitwise_count``; a few minutes on 2
cores).
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from _images import real_photo_sources

from creevey_dask import ops
from creevey_dask.duplicates import duplicates

DISTANCES = (0, 1, 2, 3, 4, 5, 6, 8, 10, 12)
TRUE_COPIES = ("q60", "q75", "q90", "half", "quarter", "crop2", "crop5", "bright", "dark")
NEGATIVES = ("flip",)


# --------------------------------------------------------------------------- corpus


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def _crop(image: Image.Image, share: float) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * share), round(h * share)
    return image.crop((dx, dy, w - dx, h - dy))


def _copies(image: Image.Image) -> dict[str, Image.Image]:
    w, h = image.size
    return {
        "q60": _jpeg(image, 60),
        "q75": _jpeg(image, 75),
        "q90": _jpeg(image, 90),
        "half": image.resize((w // 2, h // 2), Image.Resampling.LANCZOS),
        "quarter": image.resize((w // 4, h // 4), Image.Resampling.LANCZOS),
        "crop2": _crop(image, 0.02),
        "crop5": _crop(image, 0.05),
        "bright": ImageEnhance.Brightness(image).enhance(1.1),
        "dark": ImageEnhance.Brightness(image).enhance(0.9),
        "flip": ImageOps.mirror(image),
    }


def _tiles(tile: int) -> list[Image.Image]:
    """Non-overlapping ``tile``-pixel squares of the real photos, near-uniform ones left out
    (a black or flat square is a near-duplicate of every other one by any hash)."""
    out = []
    for array in real_photo_sources():
        for top in range(0, array.shape[0] - tile + 1, tile):
            for left in range(0, array.shape[1] - tile + 1, tile):
                square = array[top : top + tile, left : left + tile]
                if square.std() >= 25:
                    out.append(Image.fromarray(np.ascontiguousarray(square)))
    return out


def corpus(n_photos: int, seed: int = 0, tile: int = 128) -> pd.DataFrame:
    """One row per image: photo id, transform (``original`` or a copy), dhash, size.

    The distinct photos are non-overlapping squares of the real photos, each enlarged
    1-3x (so they are 128-384 px and differ in size), saved as JPEG q92.
    """
    rng = np.random.default_rng(seed)
    tiles = _tiles(tile)
    if n_photos > len(tiles):
        raise SystemExit(f"only {len(tiles)} distinct squares in the sources; ask for fewer")
    rows = []
    for photo, index in enumerate(rng.choice(len(tiles), size=n_photos, replace=False)):
        side = round(tile * float(rng.uniform(1.0, 3.0)))
        original = _jpeg(tiles[int(index)].resize((side, side), Image.Resampling.LANCZOS), 92)
        for kind, image in {"original": original, **_copies(original)}.items():
            rows.append((photo, kind, ops.dhash(image), image.width, image.height))
    df = pd.DataFrame(rows, columns=["photo", "kind", "dhash", "width", "height"])
    df["dhash"] = df["dhash"].astype("UInt64")
    return df


def brute_force_groups(bits: np.ndarray, max_distance: int) -> np.ndarray:
    """The smallest member of each row's component, from every pair's distance."""
    n = len(bits)
    close = np.bitwise_count(bits[:, None] ^ bits[None, :]) <= max_distance
    group = np.arange(n)
    while True:  # min-label propagation until stable
        nxt = np.where(close, group[None, :], n).min(axis=1)
        nxt = np.minimum(nxt, group)
        if np.array_equal(nxt, group):
            return group
        group = nxt


def quality(df: pd.DataFrame) -> pd.DataFrame:
    bits = df["dhash"].to_numpy(dtype=np.uint64)
    photo = df["photo"].to_numpy()
    kind = df["kind"].to_numpy()
    true_member = np.isin(kind, ("original", *TRUE_COPIES))
    table = []
    for d in DISTANCES:
        group = duplicates(df, max_distance=d)["dup_group"].to_numpy()
        assert np.array_equal(group, brute_force_groups(bits, d)), f"not brute force at {d}"
        original_group = pd.Series(group[kind == "original"], index=photo[kind == "original"])
        own = original_group.reindex(photo).to_numpy()
        row: dict[str, float | int | str] = {"max_distance": d}
        for t in (*TRUE_COPIES, *NEGATIVES):
            mine = np.flatnonzero(kind == t)
            joined = group[mine] == own[mine]
            if t in NEGATIVES:
                row[f"{t} joined %"] = round(100 * joined.mean(), 1)
                continue
            precisions = []
            for i in mine:
                mates = np.flatnonzero(group == group[i])
                mates = mates[mates != i]
                if len(mates):
                    good = (photo[mates] == photo[i]) & true_member[mates]
                    precisions.append(good.mean())
            recall = 100 * joined.mean()
            precision = 100 * (np.mean(precisions) if precisions else 1.0)
            row[f"{t} R / P"] = f"{recall:.0f} / {precision:.1f}"
        originals = np.flatnonzero(kind == "original")
        per_group = pd.Series(photo[originals]).groupby(group[originals]).nunique()
        row["photos merged %"] = round(100 * per_group[per_group > 1].sum() / len(originals), 1)
        table.append(row)
    return pd.DataFrame(table)


# --------------------------------------------------------------------------- speed


def random_hashes(n: int, max_distance: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    copies = rng.choice(n, size=n // 10, replace=False)
    sources = rng.integers(0, n, size=len(copies))
    flips = rng.integers(0, max_distance + 1, size=len(copies))
    for c, s, f in zip(copies, sources, flips, strict=True):
        value = int(bits[s])
        for bit in rng.choice(64, size=int(f), replace=False):
            value ^= 1 << int(bit)
        bits[c] = value
    return pd.DataFrame({"dhash": pd.array(bits, dtype="UInt64")})


def brute_force_pairs(bits: np.ndarray, max_distance: int, block: int = 2048) -> int:
    """The number of pairs within ``max_distance``, comparing every pair (the baseline)."""
    found = 0
    for start in range(0, len(bits), block):
        chunk = bits[start : start + block]
        close = np.bitwise_count(chunk[:, None] ^ bits[None, start:]) <= max_distance
        found += int(np.triu(close, k=1).sum())
    return found


def _median_time(func, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(sizes: list[int], distances: list[int], repeats: int, brute_max: int) -> pd.DataFrame:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    duplicates(random_hashes(1000, 4), max_distance=4)  # warm up
    rows = []
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=logging.ERROR,  # p2p shuffles log each start at WARNING
        ) as cluster,
        Client(cluster) as client,
    ):
        for max_distance, n in ((d, n) for d in distances for n in sizes):
            df = random_hashes(n, max_distance)
            reps = repeats if n < 10**6 else 1
            pandas_s = _median_time(
                lambda df=df, d=max_distance: duplicates(df, max_distance=d), reps
            )
            ddf = client.persist(dd.from_pandas(df, npartitions=8, sort=False))
            dask_s = _median_time(
                lambda ddf=ddf, d=max_distance: duplicates(ddf, max_distance=d).compute(), reps
            )
            same = duplicates(ddf, max_distance=max_distance).compute()["dup_group"]
            want = duplicates(df, max_distance=max_distance)["dup_group"]
            assert np.array_equal(same.to_numpy(), want.to_numpy()), "dask differs from pandas"
            brute_s = float("nan")
            if n <= brute_max:
                bits = df["dhash"].to_numpy(dtype=np.uint64)
                brute_s = _median_time(
                    lambda bits=bits, d=max_distance: brute_force_pairs(bits, d), 1
                )
            rows.append(
                {
                    "max_distance": int(max_distance),
                    "rows": int(n),
                    "pandas s": pandas_s,
                    "pandas rows/s": n / pandas_s,
                    "dask s": dask_s,
                    "dask rows/s": n / dask_s,
                    "brute force s": brute_s,
                    "brute / pandas": brute_s / pandas_s,
                    "runs": int(reps),
                }
            )
            print(f"  {n} rows at {max_distance} done", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=150, help="distinct photos (default 150)")
    parser.add_argument("--sizes", default="10000,30000,100000,1000000", help="rows for speed")
    parser.add_argument("--max-distance", default="3,4", help="for speed (default 3,4)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size; medians")
    parser.add_argument("--brute-max", type=int, default=30000, help="largest brute force")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    if not args.skip_quality:
        start = time.perf_counter()
        df = corpus(args.photos)
        print(
            f"corpus: {len(df)} images from {args.photos} photos "
            f"({time.perf_counter() - start:.0f} s)"
        )
        table = quality(df)
        print("\nquality: recall R / precision P per transform, % (groups = brute force)")
        print(_markdown(table))
    if not args.skip_speed:
        sizes = [int(s) for s in args.sizes.split(",")]
        distances = [int(d) for d in args.max_distance.split(",")]
        print("\nspeed (seconds; medians)")
        table = speed(sizes, distances, args.repeats, args.brute_max)
        print(_markdown(table))


def _markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A Markdown table (numbers to ``digits`` significant digits; NaN as a dash)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            if np.isnan(value):
                return "-"
            if abs(value) >= 1000:
                return f"{value:,.0f}"
            return f"{value:.{digits}g}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    lines = ["| " + " | ".join(str(c) for c in table.columns) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
