"""Shared fixtures: sample images on disk, a clean ``memory://`` filesystem, a cluster."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

# -- downloading: the loopback image server and fast HTTP options (tests/_httpserver.py)
pytest_plugins = ["tests._httpserver"]


def make_photo(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A photo-like test image: smooth gradients plus seeded noise, reproducible."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            (x * 255 // max(width - 1, 1)),
            (y * 255 // max(height - 1, 1)),
            ((x + y) * 255 // max(width + height - 2, 1)),
        ],
        axis=-1,
    ).astype(np.int16)
    noise = rng.integers(-12, 13, size=base.shape, dtype=np.int16)
    array = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(array, "RGB")
    return image if mode == "RGB" else image.convert(mode)


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def image_files(tmp_path: Path) -> list[str]:
    """Five small JPEGs and PNGs in a temporary folder."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(5):
        fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
        path = folder / f"img{i}.{ext}"
        path.write_bytes(encode(make_photo(40 + i, 30, seed=i), fmt))
        paths.append(str(path))
    return paths


@pytest.fixture
def memfs() -> Iterator[fsspec.AbstractFileSystem]:
    """The ``memory://`` filesystem, emptied before and after the test."""
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
    yield fs
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")


@pytest.fixture(scope="session")
def local_cluster_client() -> Iterator[object]:
    """A ``distributed.LocalCluster`` with 2 worker processes and its Client."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # a free port: a fixed 8787 clashes with parallel runs
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
