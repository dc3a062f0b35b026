"""The resize op: exact shapes, shorter or longer sides, and the reduced decode it allows."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from PIL import Image

from ..engine.rows import makes_op
from ..image.decode import DRAFT_ORIGINAL_SIZE_KEY, as_i16, draft_scale

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
            out = as_i16(out)
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
        downscaling. Lanczos (the default, which the reduced-decode rule is measured with)
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
