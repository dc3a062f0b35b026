"""Image ops: plain picklable callables ``image → image``, and measurements.

Ops with parameters are made by calling a factory with them; ops without parameters
are ops themselves::

    ops = [ops.trim_bottom(100), ops.resize(shape=(224, 224), mode="cover"), ops.grayscale]

Every op is a module-level function or an instance of a small class, so it pickles
with plain :mod:`pickle` and travels to dask worker processes. Every op accepts every
Pillow mode (1, L, LA, P, RGB, RGBA, CMYK, YCbCr, I;16, I, F).

Measurements are plain functions (:func:`mean_brightness`, :func:`dhash`,
:func:`hamming`) and reporters that store them in result columns
(:data:`report_size`, :data:`report_mean_brightness`, :data:`report_dhash`). The
SHA-256 of the written bytes is recorded by the writer:
``ImageWriter(record_sha256=True)``.

A resize op also tells the loader how small a JPEG may be decoded
(:meth:`Resize.draft_size`): when it is the first op, the loader decodes at reduced
scale (``Image.draft``), never below 1.25 times the size the resize produces (planned on
the crop for ``mode="cover"``), and the resize then resamples once with Lanczos; the
result is as close to a full decode + Lanczos as a full decode + bicubic is (measured
by ``benchmarks/bench_draft_rule.py`` on real photos, synthetic photos and line art).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from PIL import Image, ImageOps

from ..engine.rows import Reporter, makes_op, record
from ..image.imagefile import DRAFT_ORIGINAL_SIZE_KEY, draft_scale, to_8bit

__all__ = [
    # resizing
    "RESAMPLE_FILTERS",
    "RESIZE_MODES",
    "Resize",
    "resize",
    # cropping
    "CenterCrop",
    "Crop",
    "TrimBottom",
    "TrimPadding",
    "centercrop",
    "crop",
    "trim_bottom",
    "trim_padding",
    # parameterless ops
    "exif_transpose",
    "flip_horiz",
    "flip_vert",
    "grayscale",
    "rotate_90",
    "rotate_180",
    "rotate_270",
    # measurements and reporters
    "dhash",
    "hamming",
    "mean_brightness",
    "report_dhash",
    "report_mean_brightness",
    "report_size",
]

#: ``resize(mode=...)`` values, for an exact ``shape``:
#: ``"stretch"`` resizes to the shape, ignoring the aspect ratio (the original creevey);
#: ``"cover"`` (alias ``"fit"``, Pillow's ``ImageOps.fit``) scales to cover the shape and
#: centre-crops the overflow; ``"pad"`` scales to fit inside and pads with ``fill``;
#: ``"contain"`` scales to fit inside, keeping the aspect ratio (output may be smaller).
RESIZE_MODES = ("stretch", "cover", "fit", "pad", "contain")

#: ``resize(resample=...)`` values: Pillow's resampling filters by name.
RESAMPLE_FILTERS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
#: A reduced JPEG decode keeps at least this many times the resampled size along each
#: axis. With Lanczos after it, 1.25 keeps the mean PSNR against a full decode + Lanczos
#: at or above that of a full decode + bicubic on real photos, synthetic photos and line
#: art, also after a JPEG q95 encode of the output (1.1 loses 1.2 dB on line art there;
#: 1.0, the bare ``draft`` at the target, 3 dB; bicubic needs 2.0). See
#: ``benchmarks/bench_draft_rule.py``.
_DRAFT_MARGIN = 1.25


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_resample(resample: Any) -> Image.Resampling:
    if isinstance(resample, Image.Resampling):
        return resample
    if isinstance(resample, str) and resample.lower() in RESAMPLE_FILTERS:
        return RESAMPLE_FILTERS[resample.lower()]
    raise ValueError(f"resample {resample!r} is not one of {sorted(RESAMPLE_FILTERS)}")


def _resamplable(image: Image.Image) -> Image.Image:
    """The image in a mode Pillow resamples with any filter (it forces NEAREST for 1 and P)."""
    mode = image.mode
    if mode == "1":
        return image.convert("L")
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode == "PA":
        return image.convert("RGBA")
    if mode.startswith("I;16"):  # Pillow 13 cannot reduce I;16 and garbles I;16B: use I
        wide = Image.fromarray(np.asarray(image).astype(np.int32))  # numpy knows byte order
        wide.info = dict(image.info)
        return wide
    return image


def _as_i16(image: Image.Image) -> Image.Image:
    """A resampled ``I`` image back as ``I;16``: values rounded into 0-65535, info kept."""
    narrow = Image.fromarray(np.clip(np.asarray(image), 0, 65535).astype(np.uint16))
    narrow.info = dict(image.info)
    return narrow


class Resize:
    """Resize to an exact shape, a shorter side or a longer side. Make it with :func:`resize`."""

    def __init__(
        self,
        shape: Sequence[int] | int | None = None,
        *,
        min_dim: int | None = None,
        max_dim: int | None = None,
        mode: str | None = None,
        only_shrink: bool = False,
        resample: str | Image.Resampling = "lanczos",
        fill: Any = None,
        reducing_gap: float | None = 2.0,
    ) -> None:
        given = [
            n
            for n, v in (("shape", shape), ("min_dim", min_dim), ("max_dim", max_dim))
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of shape=(height, width), min_dim= or max_dim=, "
                f"got {given or 'none'}"
            )
        self.shape: tuple[int, int] | None = None
        if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
            shape = (int(shape), int(shape))  # one number: a square, as the CLI's --shape 256
        if shape is not None:
            if (
                isinstance(shape, (str, bytes))
                or not isinstance(shape, Sequence)
                or len(shape) != 2
            ):
                raise ValueError(
                    f"shape must be (height, width), two positive ints, or one int for a "
                    f"square; got {shape!r}"
                )
            self.shape = (
                _positive_int("shape[0] (height)", shape[0]),
                _positive_int("shape[1] (width)", shape[1]),
            )
        self.min_dim = None if min_dim is None else _positive_int("min_dim", min_dim)
        self.max_dim = None if max_dim is None else _positive_int("max_dim", max_dim)
        if mode is not None and mode not in RESIZE_MODES:
            raise ValueError(f"mode {mode!r} is not one of {list(RESIZE_MODES)}")
        if mode is not None and shape is None:
            raise ValueError(
                f"mode={mode!r} applies to shape= only; min_dim= and max_dim= always keep "
                "the aspect ratio"
            )
        self.mode = "cover" if mode == "fit" else (mode or "stretch")
        if not isinstance(only_shrink, bool):
            raise TypeError(f"only_shrink must be True or False, got {only_shrink!r}")
        self.only_shrink = only_shrink
        self.resample = _check_resample(resample)
        self.fill = fill
        if reducing_gap is not None and (
            isinstance(reducing_gap, bool)
            or not isinstance(reducing_gap, numbers.Real)
            or reducing_gap < 1.0
        ):
            raise ValueError(f"reducing_gap must be a number >= 1.0 or None, got {reducing_gap!r}")
        self.reducing_gap = reducing_gap

    # -- geometry ---------------------------------------------------------------------
    def _plan(
        self, size: tuple[int, int]
    ) -> tuple[tuple[float, float, float, float], tuple[int, int], tuple[int, int] | None]:
        """For an input of ``size``: (source box, resampled size, padded canvas size or None)."""
        w, h = size
        full = (0.0, 0.0, float(w), float(h))
        if self.shape is None:
            if self.min_dim is not None:
                scale = self.min_dim / min(w, h)
            else:
                scale = self.max_dim / max(w, h)  # type: ignore[operator]
            if self.only_shrink and scale >= 1.0:
                return full, (w, h), None
            out = (max(1, round(w * scale)), max(1, round(h * scale)))
            # the named side is exact whatever the rounding
            target = self.min_dim if self.min_dim is not None else self.max_dim
            named_is_width = (w <= h) == (self.min_dim is not None)
            out = (target, out[1]) if named_is_width else (out[0], target)  # type: ignore[assignment]
            return full, out, None
        height, width = self.shape
        if self.mode == "stretch":
            if self.only_shrink:
                return full, (min(width, w), min(height, h)), None
            return full, (width, height), None
        if self.mode == "cover":
            return self._plan_cover(w, h, width, height)
        # contain / pad: the same fit inside as Pillow's ImageOps.contain
        fitted = _contain_size(w, h, width, height)
        if self.only_shrink and (fitted[0] > w or fitted[1] > h):
            fitted = (w, h)
        canvas = (width, height) if self.mode == "pad" else None
        return full, fitted, canvas

    def _plan_cover(
        self, w: int, h: int, width: int, height: int
    ) -> tuple[tuple[float, float, float, float], tuple[int, int], None]:
        if self.only_shrink and (width > w or height > h) and max(width / w, height / h) > 1:
            out_w, out_h = min(width, w), min(height, h)
            left, top = (w - out_w) / 2, (h - out_h) / 2
            return (left, top, left + out_w, top + out_h), (out_w, out_h), None
        # as Pillow's ImageOps.fit with centering (0.5, 0.5) and no bleed
        live_ratio, out_ratio = w / h, width / height
        if live_ratio == out_ratio:
            crop_w, crop_h = float(w), float(h)
        elif live_ratio > out_ratio:
            crop_w, crop_h = out_ratio * h, float(h)
        else:
            crop_w, crop_h = float(w), w / out_ratio
        left, top = (w - crop_w) / 2, (h - crop_h) / 2
        return (left, top, left + crop_w, top + crop_h), (width, height), None

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The ``(width, height)`` this op gives an input of ``size`` ``(width, height)``."""
        _, resampled, canvas = self._plan(size)
        return canvas or resampled

    def draft_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """The smallest input size (width, height) a reduced decode may give, or None.

        At least 1.25 times the resampled size along each axis, planned on the part of
        the image the resize keeps (the crop of ``mode="cover"``), so that a JPEG decoded
        at reduced scale and resized with Lanczos stays as close to a full decode as a
        full decode + bicubic is. None when the op does not downscale by more than that.
        """
        w, h = size
        if w < 1 or h < 1:
            return None
        box, resampled, _ = self._plan((w, h))
        box_w, box_h = box[2] - box[0], box[3] - box[1]
        sx = min(1.0, _DRAFT_MARGIN * resampled[0] / box_w)
        sy = min(1.0, _DRAFT_MARGIN * resampled[1] / box_h)
        if sx >= 1.0 and sy >= 1.0:
            return None
        # (the epsilon keeps float error from rounding an exact size up by one)
        return (min(w, math.ceil(w * sx - 1e-9)), min(h, math.ceil(h * sy - 1e-9)))

    # -- the op -----------------------------------------------------------------------
    def __call__(self, image: Image.Image) -> Image.Image:
        drafted_from = image.info.get(DRAFT_ORIGINAL_SIZE_KEY)
        size = tuple(drafted_from) if drafted_from else image.size
        box, resampled, canvas = self._plan(size)  # type: ignore[arg-type]
        if size != image.size:  # planned on the full size; map the box onto the draft
            sx, sy = draft_scale(size, image.size)  # type: ignore[arg-type]
            box = (
                box[0] / sx,
                box[1] / sy,
                min(box[2] / sx, image.width),
                min(box[3] / sy, image.height),
            )
        source = _resamplable(image)
        if resampled == source.size and box == (0.0, 0.0, source.width, source.height):
            out = source  # nothing to resample (e.g. only_shrink on a small image)
        else:
            out = source.resize(resampled, self.resample, box=box, reducing_gap=self.reducing_gap)
        out.info.pop(DRAFT_ORIGINAL_SIZE_KEY, None)
        if canvas is not None and canvas != out.size:
            padded = _canvas(out.mode, canvas, self.fill)
            offset = (round((canvas[0] - out.width) * 0.5), round((canvas[1] - out.height) * 0.5))
            padded.paste(out, offset)
            if "transparency" in out.info:
                padded.info["transparency"] = out.info["transparency"]
            out = padded
        if image.mode.startswith("I;16"):  # 16-bit in, 16-bit (I;16) out, values kept
            out = _as_i16(out)
        return out

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((type(self), self.shape, self.min_dim, self.max_dim, self.mode))

    def __repr__(self) -> str:
        if self.shape is not None:
            what = f"shape={self.shape!r}, mode={self.mode!r}"
        elif self.min_dim is not None:
            what = f"min_dim={self.min_dim!r}"
        else:
            what = f"max_dim={self.max_dim!r}"
        return (
            f"resize({what}, only_shrink={self.only_shrink!r}, "
            f"resample={self.resample.name.lower()!r}, reducing_gap={self.reducing_gap!r})"
        )


def _canvas(mode: str, size: tuple[int, int], fill: Any) -> Image.Image:
    """A ``mode`` image filled with ``fill``: a number is a value in ``mode``; a colour
    name or tuple is an RGB(A) colour, converted to ``mode``."""
    if isinstance(fill, numbers.Number):
        return Image.new(mode, size, cast(float, fill))
    has_alpha = mode in ("RGBA", "LA", "PA")
    colour = Image.new("RGBA" if has_alpha else "RGB", size, 0 if fill is None else fill)
    return colour if colour.mode == mode else colour.convert(mode)


def _contain_size(w: int, h: int, width: int, height: int) -> tuple[int, int]:
    """The size Pillow's ``ImageOps.contain`` gives a ``w`` x ``h`` image in the box."""
    im_ratio, dest_ratio = w / h, width / height
    if im_ratio == dest_ratio:
        return width, height
    if im_ratio > dest_ratio:
        return width, max(1, round(h / w * width))
    return max(1, round(w / h * height)), height


@makes_op
def resize(
    shape: Sequence[int] | int | None = None,
    *,
    min_dim: int | None = None,
    max_dim: int | None = None,
    mode: str | None = None,
    only_shrink: bool = False,
    resample: str | Image.Resampling = "lanczos",
    fill: Any = None,
    reducing_gap: float | None = 2.0,
) -> Resize:
    """An op that resizes images; give exactly one of ``shape``, ``min_dim``, ``max_dim``.

    Parameters
    ----------
    shape : (height, width) or int, optional
        The exact output shape, **height first** (as in the original creevey and
        numpy); one int is a square (``shape=256`` is ``(256, 256)``, as the command
        line's ``--shape 256``). How the aspect ratio is treated depends on ``mode``.
    min_dim : int, optional
        The shorter side becomes ``min_dim``; the aspect ratio is kept.
    max_dim : int, optional
        The longer side becomes ``max_dim``; the aspect ratio is kept.
    mode : {"stretch", "cover", "fit", "pad", "contain"}, optional
        Only with ``shape``. ``"stretch"`` (the default) ignores the aspect ratio;
        ``"cover"`` scales the image to cover the shape and centre-crops the overflow
        (Pillow's ``ImageOps.fit``; ``"fit"`` is accepted as its Pillow name; note that
        Pillow's ``ImageOps.cover`` does not crop); ``"pad"`` scales it to fit inside
        and pads the rest with ``fill`` (``ImageOps.pad``); ``"contain"`` scales it to
        fit inside and stops there, so one side may be shorter (``ImageOps.contain``).
    only_shrink : bool, default False
        Never enlarge: an image already smaller than the target keeps its size
        (``"cover"`` still crops it to at most ``shape``, ``"pad"`` still pads it).
    resample : str or PIL.Image.Resampling, default "lanczos"
        The filter, one of ``RESAMPLE_FILTERS``. Pillow's filters antialias when
        downscaling. Lanczos (the default since the reduced-decode rule of issue 12)
        is the sharpest; after a reduced JPEG decode it keeps full-decode quality,
        where ``"bicubic"`` (a little cheaper to resample) loses ~1 dB on photos.
    fill : None, colour name, tuple or number, default None
        The padding for ``mode="pad"``: None is black (transparent for modes with
        alpha); a name (``"white"``) or tuple is an RGB(A) colour, converted to the
        image's mode (e.g. CMYK, YCbCr or L); a number is a raw pixel value in the
        image's mode.
    reducing_gap : float or None, default 2.0
        Downscale by an integer factor with ``Image.reduce()`` first, as long as the
        remaining scale is at least this factor (Pillow's ``reducing_gap``, with the
        default of Pillow's ``thumbnail()``); 3.0 is closer to a one-step resample,
        None resamples in one step. A reduced JPEG decode (``draft_size``) already
        leaves at most a 2.5x downscale, so this helps other formats.

    Returns
    -------
    Resize
        A picklable op. It converts 1-bit and palette images to L / RGB(A) first, so
        that the filter applies; other modes keep their mode.

    Raises
    ------
    ValueError
        For anything but exactly one of shape/min_dim/max_dim, non-positive sizes,
        or an unknown ``mode`` or ``resample`` (the message lists the allowed values).

    Examples
    --------
    >>> from PIL import Image
    >>> resize(shape=(224, 224), mode="cover")(Image.new("RGB", (640, 480))).size
    (224, 224)
    >>> resize(min_dim=100)(Image.new("RGB", (640, 480))).size
    (133, 100)
    >>> resize(shape=(100, 100), mode="cover").draft_size((3200, 2400))
    (167, 125)
    """
    return Resize(
        shape,
        min_dim=min_dim,
        max_dim=max_dim,
        mode=mode,
        only_shrink=only_shrink,
        resample=resample,
        fill=fill,
        reducing_gap=reducing_gap,
    )


# -- cropping ---------------------------------------------------------------------------
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
