"""Test images for the benchmarks: real photos, synthetic photos and line art, as JPEGs.

* **photos**: real photographs shipped in PyPI packages (scikit-learn's sample photos
  ``china.jpg`` and ``flower.jpg``; scikit-image's ``astronaut``, ``chelsea``, ``coffee``,
  ``rocket``, ``motorcycle_left``, ``retina``, ``grass``, ``gravel``, ``brick``), each
  scaled by 0.6-1.0 (a camera-like downsample, so the detail stays native), tiled with
  mirroring to fill a 400-2400 px frame and cropped at a random offset. Install the
  sources with ``pip install scikit-learn scikit-image`` (not project dependencies).
* **synthetic**: smooth shading, hard-edged discs, texture and sensor noise.
* **line art**: 1-4 px black strokes, outlines and text on white (diagrams, scans of
  drawings), saved as JPEG like most line art on the web.

Sizes: mostly 400x300 to 1280x960, about 10% up to 2400 px, in landscape, portrait and
square aspects. Everything is made once into a cache folder and reused.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TARGET = 256
SETS = ("photos", "synthetic", "lineart")
#: the share of each set in the benchmark's image list
SHARES = {"photos": 0.7, "synthetic": 0.15, "lineart": 0.15}


def _size(rng: np.random.Generator) -> tuple[int, int]:
    big = rng.random() < 0.1
    long_side = int(rng.integers(1280, 2401)) if big else int(rng.integers(400, 1281))
    aspect = float(rng.choice([4 / 3, 4 / 3, 4 / 3, 3 / 2, 16 / 9, 1.0]))
    short = max(300, round(long_side / aspect))
    return (short, long_side) if rng.random() < 0.25 else (long_side, short)


def real_photo_sources() -> list[np.ndarray]:
    """The real photographs this machine has (RGB arrays), from scikit-learn/scikit-image."""
    sources: list[np.ndarray] = []
    try:
        from sklearn.datasets import load_sample_images

        sources += [np.asarray(a) for a in load_sample_images().images]
    except ImportError:
        pass
    try:
        import skimage

        folder = Path(skimage.__file__).parent / "data"
        for name in (
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "rocket.jpg",
            "motorcycle_left.png",
            "retina.jpg",
            "grass.png",
            "gravel.png",
            "brick.png",
        ):
            if (folder / name).exists():
                with Image.open(folder / name) as image:
                    sources.append(np.asarray(image.convert("RGB")))
    except ImportError:
        pass
    if not sources:
        raise SystemExit(
            "the real-photo set needs scikit-learn or scikit-image: "
            "pip install scikit-learn scikit-image"
        )
    return sources


def _make_photo(seed: int, path: str, sources: list[np.ndarray]) -> None:
    rng = np.random.default_rng(seed)
    width, height = _size(rng)
    src = sources[int(rng.integers(len(sources)))]
    factor = float(rng.uniform(0.6, 1.0))
    image = Image.fromarray(src)
    if factor < 0.99:
        image = image.resize(
            (round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS
        )
    tile = np.asarray(image)
    reps_y = math.ceil(height / tile.shape[0]) + 1
    reps_x = math.ceil(width / tile.shape[1]) + 1
    row = np.concatenate([tile if i % 2 == 0 else tile[:, ::-1] for i in range(reps_x)], axis=1)
    full = np.concatenate([row if j % 2 == 0 else row[::-1] for j in range(reps_y)], axis=0)
    top = int(rng.integers(0, full.shape[0] - height + 1))
    left = int(rng.integers(0, full.shape[1] - width + 1))
    crop = np.ascontiguousarray(full[top : top + height, left : left + width])
    Image.fromarray(crop, "RGB").save(path, quality=int(rng.integers(85, 96)))


def _make_synthetic(seed: int, path: str) -> None:
    rng = np.random.default_rng(seed)
    width, height = _size(rng)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        phase = rng.uniform(0, 6.28, 3)
        scale = rng.uniform(0.5, 2.0, 3) / max(width, height)
        channel = 110 + 50 * np.sin(x * scale[0] * 6.28 + phase[0]) * np.cos(
            y * scale[1] * 6.28 + phase[1]
        )
        channel += 25 * np.sin((x + y) * scale[2] * 40 + phase[2])
        channels.append(channel)
    image = np.stack(channels, axis=-1)
    for _ in range(6):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        r = rng.integers(min(width, height) // 12, min(width, height) // 4)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        image[mask] = image[mask] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    image += rng.normal(0, 4, size=image.shape).astype(np.float32)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB").save(path, quality=90)


def _make_lineart(seed: int, path: str) -> None:
    rng = np.random.default_rng(seed)
    width, height = _size(rng)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    ink = [(0, 0, 0), (20, 20, 120), (150, 0, 0)]
    for _ in range(int(rng.integers(20, 60))):
        colour = ink[int(rng.integers(len(ink)))]
        stroke = int(rng.integers(1, 5))
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(-300, 300)), y0 + int(rng.integers(-300, 300))
        kind = rng.random()
        if kind < 0.4:
            draw.line((x0, y0, x1, y1), fill=colour, width=stroke)
        elif kind < 0.7:
            draw.rectangle(
                (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=colour, width=stroke
            )
        else:
            draw.ellipse(
                (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=colour, width=stroke
            )
    for _ in range(int(rng.integers(3, 10))):
        size = int(rng.integers(12, 48))
        font = ImageFont.load_default(size=size)
        xy = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        draw.text(xy, "Figure 3: the quick brown fox", fill=(0, 0, 0), font=font)
    image.save(path, quality=90)


def _make(args: tuple[str, int, str]) -> None:
    kind, seed, path = args
    if kind == "photos":
        _make_photo(seed, path, _SOURCES)
    elif kind == "synthetic":
        _make_synthetic(seed, path)
    else:
        _make_lineart(seed, path)


_SOURCES: list[np.ndarray] = []


def _init(sources: list[np.ndarray]) -> None:
    global _SOURCES
    _SOURCES = sources


def ensure_images(cache_dir: Path, n: int, seed: int = 0) -> dict[str, str]:
    """``n`` JPEGs in ``cache_dir`` (made once): file name → set name."""
    folder = cache_dir / f"mixed_{n}_{seed}"
    manifest = folder / "manifest.json"
    if manifest.exists():
        return dict(json.loads(manifest.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    counts = {k: round(n * share) for k, share in SHARES.items()}
    counts["photos"] = n - counts["synthetic"] - counts["lineart"]
    rng = np.random.default_rng(seed)
    kinds = [k for k, c in counts.items() for _ in range(c)]
    rng.shuffle(kinds)
    names = {f"img_{i:05d}.jpg": kind for i, kind in enumerate(kinds)}
    jobs = [
        (kind, seed * 1_000_003 + i, str(folder / name))
        for i, (name, kind) in enumerate(names.items())
    ]
    print(f"making {n} test JPEGs in {folder} (once) ...", flush=True)
    start = time.perf_counter()
    sources = real_photo_sources()
    with multiprocessing.Pool(os.cpu_count(), initializer=_init, initargs=(sources,)) as pool:
        pool.map(_make, jobs, chunksize=8)
    manifest.write_text(json.dumps(names))
    for path in (cache_dir, folder):
        path.chmod(0o755)
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return names


# -- quality ---------------------------------------------------------------------------------
def cover_box(
    width: int, height: int, out_w: int = TARGET, out_h: int = TARGET
) -> tuple[float, ...]:
    """The centred crop box of ``ImageOps.fit`` (no bleed) for an ``out_w`` x ``out_h`` output."""
    if width / height > out_w / out_h:
        crop_w, crop_h = out_w / out_h * height, float(height)
    else:
        crop_w, crop_h = float(width), width * out_h / out_w
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return (left, top, left + crop_w, top + crop_h)


def reference(path: str) -> np.ndarray:
    """Full decode, centre crop, Lanczos to TARGET x TARGET (as uint8 RGB)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        box = cover_box(*image.size)
        out = image.resize((TARGET, TARGET), Image.Resampling.LANCZOS, box=box, reducing_gap=None)
    return np.asarray(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def references(cache_dir: Path, folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    """The reference outputs of ``names`` (computed once, cached as one .npz)."""
    store = cache_dir / f"{folder.name}_ref_{len(names)}.npz"
    if store.exists():
        with np.load(store) as data:
            return {k: data[k] for k in data.files}
    refs = {name: reference(str(folder / name)) for name in names}
    np.savez(store, **refs)  # type: ignore[arg-type]
    return refs


def mean_psnr(outdir: Path, refs: dict[str, np.ndarray], kinds: dict[str, str]) -> dict[str, float]:
    """Mean PSNR per set of the outputs in ``outdir`` (same file names) against ``refs``."""
    values: dict[str, list[float]] = {k: [] for k in SETS}
    for name, ref in refs.items():
        path = outdir / name
        if not path.exists():
            continue
        with Image.open(path) as image:
            out = np.asarray(image.convert("RGB"))
        if out.shape != ref.shape:
            values[kinds[name]].append(0.0)
            continue
        values[kinds[name]].append(min(psnr(out, ref), 99.0))
    return {k: float(np.mean(v)) for k, v in values.items() if v}
