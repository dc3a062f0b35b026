"""Measurements of an image (brightness, dHash, Hamming distance) and their reporters."""

from __future__ import annotations

import numbers

import numpy as np
from PIL import Image

from ..engine.rows import Reporter, record
from ._edit import _as_grey_source, _brightness


def mean_brightness(image: Image.Image) -> float:
    """The mean brightness on a 0-1 scale (0 black, 1 white; alpha ignored).

    Examples
    --------
    >>> from PIL import Image
    >>> mean_brightness(Image.new("RGB", (4, 4), (255, 255, 255)))
    1.0
    """
    return float(_brightness(image).mean())


def dhash(image: Image.Image) -> int:
    """A 64-bit difference hash: similar images have hashes a small Hamming distance apart.

    The same 64 bits as the ``imagehash`` package's ``dhash`` (``int(str(h), 16)`` of
    ``imagehash.dhash(image)``), so stored hashes interoperate: the image is converted to
    8-bit grey (Pillow's ``convert("L")``), reduced to 9 x 8 pixels with Lanczos, and bit
    ``8 * row + col`` (most significant first) is set when a pixel is darker than its
    right neighbour. Returns an int from 0 to 2**64 - 1.

    16-bit and float images (modes ``I;16``, ``I``, ``F``) are first scaled to 8 bits
    (:func:`creevey_dask.image.imagefile.to_8bit`), where ``imagehash`` would clip them, and a
    ``LAB`` image is hashed on its lightness channel, where ``imagehash`` raises; for
    every other mode the bits are ``imagehash``'s.

    Examples
    --------
    >>> from PIL import Image
    >>> dhash(Image.new("L", (64, 64), 128))
    0
    """
    grey = _as_grey_source(image)  # only 16-bit, float and LAB images change
    small = np.asarray(grey.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """The number of bits in which two hashes differ.

    Examples
    --------
    >>> hamming(0b1011, 0b0001)
    2
    """
    for name, value in (("a", a), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise TypeError(f"{name} must be a non-negative int hash, got {value!r}")
    return bin(int(a) ^ int(b)).count("1")


class _SizeReporter:
    """Records ``width`` and ``height`` of the image at this point of the pipeline."""

    result_columns = {"width": "Int64", "height": "Int64"}  # noqa: RUF012

    def __call__(self, image: Image.Image) -> Image.Image:
        record(width=image.width, height=image.height)
        return image

    def __reduce__(self) -> str:
        return "report_size"

    def __repr__(self) -> str:
        return "report_size"


#: A reporter op: the result columns ``width`` and ``height`` (Int64) of the image at
#: its place in the ops.
report_size = _SizeReporter()
#: A reporter op: the result column ``mean_brightness`` (float64, 0-1).
report_mean_brightness = Reporter("mean_brightness", mean_brightness, "float64")
#: A reporter op: the result column ``dhash`` (UInt64), see :func:`dhash`.
report_dhash = Reporter("dhash", dhash, "UInt64")
