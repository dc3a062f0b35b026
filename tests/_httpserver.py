"""Fixtures for HTTP tests: a loopback image server with fault routes, and fast options.

Registered from ``conftest.py`` through ``pytest_plugins``. The server is
:class:`creevey_dask.testing.ImageServer` (see its docs for the fault routes); the
images it serves are generated once per session, seeded.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from creevey_dask.sources.http import HttpOptions
from creevey_dask.testing import ImageServer

#: name -> (width, height, format) of the images the server holds.
SERVED_IMAGES = {
    "photo.jpg": (64, 48, "JPEG"),
    "wide.jpg": (320, 120, "JPEG"),
    "big.jpg": (800, 600, "JPEG"),
    "icon.png": (30, 20, "PNG"),
    "alpha.png": (24, 24, "PNG"),
    "pic.webp": (40, 30, "WEBP"),
}
for i in range(40):
    SERVED_IMAGES[f"many/{i:03d}.jpg"] = (32 + i, 24, "JPEG")


def _image_bytes(width: int, height: int, fmt: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1
    )
    noise = rng.integers(-10, 11, size=base.shape)
    array = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(array, "RGB")
    if fmt == "PNG" and seed % 2:
        image = image.convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def served_files() -> dict[str, bytes]:
    """The generated files (seeded, so the same bytes every session)."""
    files = {
        name: _image_bytes(w, h, fmt, seed)
        for seed, (name, (w, h, fmt)) in enumerate(SERVED_IMAGES.items())
    }
    files["broken.jpg"] = files["big.jpg"][:2000]  # a JPEG cut short, served in full
    return files


@pytest.fixture(scope="session")
def image_server_session() -> Iterator[ImageServer]:
    """One :class:`ImageServer` on 127.0.0.1 for the whole session."""
    with ImageServer(served_files()) as server:
        yield server


@pytest.fixture
def image_server(image_server_session: ImageServer) -> ImageServer:
    """The session's image server with its counters reset for this test."""
    image_server_session.reset_counters()
    return image_server_session


@pytest.fixture
def fresh_image_server() -> Iterator[ImageServer]:
    """An image server of its own for this test: no requests left over from others."""
    with ImageServer(served_files()) as server:
        yield server


@pytest.fixture
def fast_http() -> HttpOptions:
    """HTTP options with short timeouts and backoffs, so fault tests run fast."""
    return HttpOptions(
        connect_timeout=1.0,
        read_timeout=0.4,
        deadline=10.0,
        retries=2,
        backoff_base=0.01,
        backoff_cap=0.05,
        retry_after_cap=0.5,
    )
