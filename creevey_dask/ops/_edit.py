"""Crops, trims, grey and the lossless flips and rotations: ops that change the pixels kept."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..engine.rows import makes_op
from ..image.encode import to_8bit
from ._resize import _positive_int


class _SimpleOp:
    """Base of the parameterised ops: equality and repr from the parameters."""

    _params: tuple[str, ...] = ()
    _name = ""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((type(self), *(repr(getattr(self, p)) for p in self._params)))

    def __repr__(self) -> str:
        args = ", ".join(repr(getattr(self, p)) for p in self._params)
        return f"{self._name}({args})"


class TrimBottom(_SimpleOp):
    """Remove the bottom ``pixels`` rows. Make it with :func:`trim_bottom`."""

    _params = ("pixels",)
    _name = "trim_bottom"

    def __init__(self, pixels: int) -> None:
        self.pixels = _positive_int("pixels", pixels)

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.pixels >= image.height:
            raise ValueError(
                f"trim_bottom({self.pixels}) would remove the whole image of height {image.height}"
            )
        return image.crop((0, 0, image.width, image.height - self.pixels))


@makes_op
def trim_bottom(pixels: int) -> TrimBottom:
    """An op that removes the bottom ``pixels`` rows (e.g. a caption bar).

    An image not taller than ``pixels`` becomes an error row.

    Examples
    --------
    >>> from PIL import Image
    >>> trim_bottom(100)(Image.new("RGB", (640, 480))).size
    (640, 380)
    """
    return TrimBottom(pixels)


class Crop(_SimpleOp):
    """Crop to a box. Make it with :func:`crop`."""

    _params = ("box",)
    _name = "crop"

    def __init__(self, box: Sequence[int]) -> None:
        if isinstance(box, (str, bytes)) or not isinstance(box, Sequence) or len(box) != 4:
            raise ValueError(f"box must be (left, upper, right, lower), four ints; got {box!r}")
        for value in box:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"box must hold non-negative ints, got {box!r}")
        left, upper, right, lower = (int(v) for v in box)
        if right <= left or lower <= upper:
            raise ValueError(
                f"box {box!r} is empty: it needs left < right and upper < lower "
                "(Pillow's (left, upper, right, lower) order)"
            )
        self.box = (left, upper, right, lower)

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.box[2] > image.width or self.box[3] > image.height:
            raise ValueError(
                f"crop box {self.box} extends beyond the image of size "
                f"{image.width} x {image.height}"
            )
        return image.crop(self.box)


@makes_op
def crop(box: Sequence[int]) -> Crop:
    """An op that crops to ``box = (left, upper, right, lower)``, in pixels (Pillow's order).

    A box reaching beyond an image makes that row an error row.

    Examples
    --------
    >>> from PIL import Image
    >>> crop((10, 20, 110, 70))(Image.new("RGB", (640, 480))).size
    (100, 50)
    """
    return Crop(box)


class CenterCrop(_SimpleOp):
    """Keep the central part of the image. Make it with :func:`centercrop`."""

    _params = ("reduction_factor",)
    _name = "centercrop"
    reduction_factor: float

    def __init__(self, reduction_factor: float) -> None:
        if (
            isinstance(reduction_factor, bool)
            or not isinstance(reduction_factor, numbers.Real)
            or not 0 < reduction_factor <= 1
        ):
            raise ValueError(
                f"reduction_factor must be a number in (0, 1], got {reduction_factor!r}"
            )
        self.reduction_factor = float(reduction_factor)

    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        new_w = max(1, round(w * self.reduction_factor))
        new_h = max(1, round(h * self.reduction_factor))
        left, top = (w - new_w) // 2, (h - new_h) // 2
        return image.crop((left, top, left + new_w, top + new_h))


@makes_op
def centercrop(reduction_factor: float) -> CenterCrop:
    """An op that keeps the central ``reduction_factor`` of each side (as the original creevey).

    Examples
    --------
    >>> from PIL import Image
    >>> centercrop(0.5)(Image.new("RGB", (640, 480))).size
    (320, 240)
    """
    return CenterCrop(reduction_factor)


def _as_grey_source(image: Image.Image) -> Image.Image:
    """``L`` for the modes Pillow cannot turn into 8-bit grey itself; others unchanged.

    16-bit and float images are scaled (:func:`creevey_dask.image.imagefile.to_8bit`); a
    ``LAB`` image gives its lightness channel (Pillow has no LAB to L conversion).
    """
    if image.mode == "LAB":
        return image.getchannel("L")
    return to_8bit(image)


def _brightness(image: Image.Image) -> np.ndarray:
    """Per-pixel brightness on a 0-1 scale (alpha ignored)."""
    mode = image.mode
    if mode in ("L", "1"):
        grey = image.convert("L") if mode == "1" else image
    elif mode in ("I", "F", "LAB") or mode.startswith("I;16"):
        grey = _as_grey_source(image)
    else:
        if mode in ("P", "PA") or mode not in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
            image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
        grey = image.convert("L") if image.mode != "LA" else image.getchannel("L")
    return np.asarray(grey, dtype=np.float32) / 255.0


class TrimPadding(_SimpleOp):
    """Remove uniform borders. Make it with :func:`trim_padding`."""

    _params = ("comparison_op", "thresh")
    _name = "trim_padding"
    comparison_op: Callable[[Any, float], Any]
    thresh: float

    def __init__(self, comparison_op: Callable[[Any, float], Any], thresh: float) -> None:
        if not callable(comparison_op):
            raise TypeError(
                f"comparison_op must be callable, e.g. operator.gt, got {comparison_op!r}"
            )
        if isinstance(thresh, bool) or not isinstance(thresh, numbers.Real) or not 0 <= thresh <= 1:
            raise ValueError(f"thresh is a brightness from 0 to 1, got {thresh!r}")
        self.comparison_op = comparison_op
        self.thresh = float(thresh)

    def __call__(self, image: Image.Image) -> Image.Image:
        padding = np.asarray(self.comparison_op(_brightness(image), self.thresh), dtype=np.bool_)
        rows = np.flatnonzero(~padding.all(axis=1))
        cols = np.flatnonzero(~padding.all(axis=0))
        if rows.size == 0:
            raise ValueError(
                f"trim_padding: every pixel of the {image.width} x {image.height} image is "
                f"padding ({getattr(self.comparison_op, '__name__', self.comparison_op)} "
                f"{self.thresh})"
            )
        box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        if box == (0, 0, image.width, image.height):
            return image
        return image.crop(box)


@makes_op
def trim_padding(comparison_op: Callable[[Any, float], Any], thresh: float) -> TrimPadding:
    """An op that removes border rows and columns that are entirely padding.

    A pixel is padding when ``comparison_op(brightness, thresh)`` is true, with
    brightness on a 0-1 scale (as in the original creevey). Use
    ``trim_padding(operator.gt, 0.95)`` for near-white borders and
    ``trim_padding(operator.lt, 0.05)`` for near-black ones. Use functions from
    :mod:`operator` (or other module-level functions) so the op pickles. An image
    that is padding everywhere becomes an error row.

    Examples
    --------
    >>> import operator
    >>> from PIL import Image
    >>> image = Image.new("L", (100, 80), 255)
    >>> image.paste(0, (10, 20, 60, 70))
    >>> trim_padding(operator.gt, 0.95)(image).size
    (50, 50)
    """
    return TrimPadding(comparison_op, thresh)


# -- parameterless ops --------------------------------------------------------------------
def grayscale(image: Image.Image) -> Image.Image:
    """Convert to 8-bit grey: ``L``, or ``LA`` when the image has alpha.

    16-bit and float images are scaled to 8 bits (see
    :func:`creevey_dask.image.imagefile.to_8bit`); a ``LAB`` image gives its lightness (L*)
    channel.
    """
    mode = image.mode
    if mode == "L" or mode == "LA":
        return image
    if mode in ("I", "F", "LAB") or mode.startswith("I;16"):
        return _as_grey_source(image)
    if mode in ("RGBA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        return image.convert("RGBA").convert("LA")
    if mode in ("CMYK", "YCbCr", "P", "1"):
        return image.convert("RGB").convert("L") if mode != "1" else image.convert("L")
    return image.convert("L")


def flip_horiz(image: Image.Image) -> Image.Image:
    """Mirror left-right."""
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def flip_vert(image: Image.Image) -> Image.Image:
    """Mirror top-bottom."""
    return image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)


def rotate_90(image: Image.Image) -> Image.Image:
    """Rotate 90° counter-clockwise (as Pillow's ``rotate(90, expand=True)``, exactly)."""
    return image.transpose(Image.Transpose.ROTATE_90)


def rotate_180(image: Image.Image) -> Image.Image:
    """Rotate 180°."""
    return image.transpose(Image.Transpose.ROTATE_180)


def rotate_270(image: Image.Image) -> Image.Image:
    """Rotate 270° counter-clockwise, i.e. 90° clockwise."""
    return image.transpose(Image.Transpose.ROTATE_270)


def exif_transpose(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (the loaders already do this by default)."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a corrupt EXIF block: leave the image as it is
        return image
    if orientation in (None, 1):
        return image
    return ImageOps.exif_transpose(image)


# -- measurements ----------------------------------------------------------------------
