"""Image-size filters: an op, placed first in a pipeline, that refuses images by size.

:class:`ImageFilter` refuses images by their *source* size: ``min_image_size`` (the
smaller side), ``max_image_area`` (width x height) and ``max_aspect_ratio`` (longer side
/ shorter side), each turning a row into an error row whose ``error`` names the check.
After a reduced-scale JPEG decode the full size is read from the image's info, so the
filter and the reduced decode work together.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..exceptions import ImageFilteredError
from .decode import DRAFT_ORIGINAL_SIZE_KEY

__all__ = ["ImageFilter", "make_filter"]


def _positive(value: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if value is None:
        return None
    number: float = value
    if isinstance(value, bool) or not isinstance(value, kind) or not number > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


class ImageFilter:
    """An op that refuses images by their source size; place it first.

    Parameters
    ----------
    min_image_size : int, optional
        Refuse images whose smaller side is below this many pixels.
    max_image_area : int, optional
        Refuse images of more than this many pixels (width x height).
    max_aspect_ratio : float, optional
        Refuse images whose longer side is more than this many times the shorter.
    then : op, optional
        The op that follows; its ``draft_size`` is passed on, so a reduced-scale JPEG
        decode still happens (the filter reads the full size from the image's info).

    Examples
    --------
    >>> from PIL import Image
    >>> ImageFilter(min_image_size=50)(Image.new("RGB", (80, 40)))
    Traceback (most recent call last):
    ...
    creevey_dask.exceptions.ImageFilteredError: min_image_size=50: the image is 80 x 40, ...
    """

    def __init__(
        self,
        min_image_size: int | None = None,
        max_image_area: int | None = None,
        max_aspect_ratio: float | None = None,
        then: Any = None,
    ) -> None:
        self.min_image_size: int | None = _positive(min_image_size, "min_image_size", int)
        self.max_image_area: int | None = _positive(max_image_area, "max_image_area", int)
        self.max_aspect_ratio: float | None = _positive(
            max_aspect_ratio, "max_aspect_ratio", (int, float)
        )
        self.then = then
        if self.max_aspect_ratio is not None and self.max_aspect_ratio < 1:
            raise ValueError(
                f"max_aspect_ratio is longer side / shorter side, so at least 1; "
                f"got {max_aspect_ratio!r}"
            )

    def draft_size(self, size: tuple[int, int]) -> tuple[int, int] | None:
        hint = getattr(self.then, "draft_size", None)
        return hint(size) if hint is not None else None

    def __call__(self, image: Any) -> Any:
        info = getattr(image, "info", None) or {}  # a Downloaded (format="original") has none
        width, height = info.get(DRAFT_ORIGINAL_SIZE_KEY, image.size)
        shorter, longer = sorted((width, height))
        if self.min_image_size is not None and shorter < self.min_image_size:
            raise ImageFilteredError(
                f"min_image_size={self.min_image_size}: the image is {width} x {height}, "
                f"its smaller side {shorter} < {self.min_image_size}"
            )
        if self.max_image_area is not None and width * height > self.max_image_area:
            raise ImageFilteredError(
                f"max_image_area={self.max_image_area}: the image is {width} x {height} = "
                f"{width * height} pixels"
            )
        if self.max_aspect_ratio is not None and longer > self.max_aspect_ratio * max(shorter, 1):
            raise ImageFilteredError(
                f"max_aspect_ratio={self.max_aspect_ratio}: the image is {width} x {height}, "
                f"an aspect ratio of {longer / max(shorter, 1):.3g}"
            )
        return image

    def __repr__(self) -> str:
        return (
            f"ImageFilter(min_image_size={self.min_image_size!r}, "
            f"max_image_area={self.max_image_area!r}, "
            f"max_aspect_ratio={self.max_aspect_ratio!r})"
        )


def make_filter(
    ops: Iterable[Any],
    min_image_size: int | None = None,
    max_image_area: int | None = None,
    max_aspect_ratio: float | None = None,
) -> list[Any]:
    """``ops`` with an :class:`ImageFilter` in front when a filter is set (arguments checked)."""
    ops = list(ops)
    if min_image_size is None and max_image_area is None and max_aspect_ratio is None:
        return ops
    first = ops[0] if ops else None
    return [ImageFilter(min_image_size, max_image_area, max_aspect_ratio, then=first), *ops]
