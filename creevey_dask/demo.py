"""An offline demonstration of the whole job on generated sample images."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from PIL import Image

from .imagefile import load_image
from .pipeline import Pipeline, report

__all__ = ["make_sample_images", "run_demo"]


def make_sample_images(folder: str, n: int = 12, seed: int = 0) -> list[str]:
    """Write ``n`` photo-like JPEGs of assorted sizes into ``folder``; return their paths."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        width, height = int(rng.integers(320, 960)), int(rng.integers(240, 720))
        y, x = np.mgrid[0:height, 0:width]
        phase = rng.uniform(0, 6.28, size=3)
        channels = [
            127 + 127 * np.sin(x / (20 + 7 * c) + y / (31 + 5 * c) + phase[c]) for c in range(3)
        ]
        array = np.stack(channels, axis=-1).astype(np.uint8)
        path = os.path.join(folder, f"sample_{i:03d}.jpg")
        Image.fromarray(array, "RGB").save(path, quality=90)
        paths.append(path)
    return paths


def run_demo(outdir: str = "creevey-demo-output", n_images: int = 12) -> pd.DataFrame:
    """Generate sample images, resize them into ``outdir/resized`` and print the result."""
    sources = make_sample_images(os.path.join(outdir, "samples"), n=n_images)
    sources.append(os.path.join(outdir, "samples", "does_not_exist.jpg"))
    pipeline = Pipeline(
        load_image,
        ops=[
            lambda im: im.resize((128, 128)),
            report("width", lambda im: im.width, "Int64"),
            report("height", lambda im: im.height, "Int64"),
        ],
    )
    resized = os.path.join(outdir, "resized")
    result = pipeline.run(
        pd.DataFrame({"path": sources}),
        lambda p: os.path.join(resized, os.path.basename(p).replace(".jpg", ".png")),
        inpath_col="path",
        skip_existing=False,
        progress=False,
    )
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(result)
    print(f"\n{(result.status == 'ok').sum()} images written to {resized}")
    return result
