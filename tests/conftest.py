"""Shared fixtures: sample images on disk, a clean ``memory://`` filesystem, a cluster."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

# -- downloading: the loopback image server and fast HTTP options (tests/_httpserver.py)
# fixture modules: the loopback HTTP image server and the moto S3 server
pytest_plugins = ["tests._httpserver", "tests._s3server"]


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
def _session_cluster_client() -> Iterator[object]:
    """One ``distributed.LocalCluster`` (2 worker processes) for the whole session.

    Its Client is not made the global default, so tests that do not ask for it keep
    running on the local schedulers.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # a free port: a fixed 8787 clashes with parallel runs
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture
def local_cluster_client(_session_cluster_client: object) -> Iterator[object]:
    """The session's LocalCluster Client, made the current client for this test only."""
    with _session_cluster_client.as_current():  # type: ignore[attr-defined]
        yield _session_cluster_client


# ---------------------------------------------------------------------------------------
# Image ops and resizing: images in every mode, bad image files, PSNR.


def _make_mode_image(mode: str, width: int = 40, height: int = 30, seed: int = 0) -> Image.Image:
    """A photo-like image in ``mode`` (``"P+t"``: palette with a transparent index)."""
    photo = make_photo(width, height, seed=seed)
    grey = photo.convert("L")
    alpha = Image.linear_gradient("L").resize((width, height))
    if mode in ("LA", "RGBA"):
        image = (grey if mode == "LA" else photo).convert(mode)
        image.putalpha(alpha)
        return image
    if mode in ("P", "P+t"):
        image = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        if mode == "P+t":
            image.info["transparency"] = image.getpixel((0, 0))
        return image
    if mode in ("I;16", "I"):
        array = np.asarray(grey).astype(np.int32) * 257
        return Image.fromarray(array.astype(np.uint16 if mode == "I;16" else np.int32))
    return photo.convert(mode)


def _psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of two same-size 8-bit images (inf if equal)."""
    assert a.size == b.size, (a.size, b.size)
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` and holds no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def bad_image_files() -> dict[str, tuple[str, bytes, str]]:
    """Bad inputs: name → (filename, bytes, a phrase the error message must contain)."""
    jpeg = encode(make_photo(120, 90, seed=3), "JPEG", quality=90)
    png = bytearray(encode(make_photo(40, 30, seed=4), "PNG"))
    png[29] ^= 0xFF  # the IHDR chunk's CRC
    return {
        "truncated_jpeg": ("truncated.jpg", jpeg[: len(jpeg) // 2], "truncated"),
        "zero_bytes": ("empty.jpg", b"", "empty (0 bytes)"),
        "text_as_jpg": ("notes.jpg", b"this is a text file, not a photo\n", "text starting"),
        "png_bad_crc": ("badcrc.png", bytes(png), "corrupt"),
        "bomb": ("bomb.png", _png_header_only(20_000, 20_000), "decompression bomb"),
        "unsupported": (
            "drawing.jpg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
            "SVG",
        ),
    }


@pytest.fixture
def bad_images(tmp_path: Path) -> dict[str, str]:
    """The bad inputs of :func:`bad_image_files` as files: name → path."""
    folder = tmp_path / "bad"
    folder.mkdir()
    paths = {}
    for name, (filename, data, _) in bad_image_files().items():
        path = folder / filename
        path.write_bytes(data)
        paths[name] = str(path)
    return paths


@pytest.fixture
def photo() -> object:
    """``photo(width, height, seed=0, mode="RGB")``: a photo-like test image."""
    return make_photo


@pytest.fixture
def mode_image() -> object:
    """``mode_image(mode, width=40, height=30, seed=0)``: an image in any mode (``"P+t"``:
    palette with transparency)."""
    return _make_mode_image


@pytest.fixture
def psnr() -> object:
    """``psnr(a, b)``: the PSNR in dB of two same-size 8-bit images."""
    return _psnr


@pytest.fixture
def bad_image_specs() -> dict[str, tuple[str, bytes, str]]:
    """name → (filename, bytes, a phrase the error message must contain)."""
    return bad_image_files()


@pytest.fixture
def png_header_only() -> object:
    """``png_header_only(width, height)``: PNG bytes declaring that size, with no pixels."""
    return _png_header_only


@pytest.fixture
def tmpfs_2m(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs (needs root): writes beyond it fail with ENOSPC."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the disk-full test runs as root in CI")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"could not mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


class Overlap:
    """Counts how many threads are inside ``with overlap:`` at once (``most``)."""

    def __init__(self, hold: float = 0.3) -> None:
        self.hold = hold
        self.active = 0
        self.most = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Overlap:
        with self._lock:
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(self.hold)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.active -= 1


@pytest.fixture
def overlap() -> Overlap:
    """An :class:`Overlap`: each ``with overlap:`` holds 0.3 s and counts the overlap."""
    return Overlap()
