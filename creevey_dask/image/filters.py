"""What a row's source must pass: size filters, a pixel limit, hashes of its bytes.

:class:`FilterOptions` is the one object a run takes for all of them (``filters=``).
:class:`ImageFilter`, the op it puts first in a pipeline, refuses images by their
*source* size: ``min_image_size`` (the smaller side), ``max_image_area`` (width x height)
and ``max_aspect_ratio`` (longer side / shorter side), each turning a row into an error
row whose ``error`` names the check. After a reduced-scale JPEG decode the full size is
read from the image's info, so the filter and the reduced decode work together. The
hashes are :mod:`creevey_dask.sources.hashing`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from ..exceptions import ImageFilteredError
from ..options import replace_fields
from ..sources.hashing import (
    check_hash_algorithm,
    check_verify_column,
    check_verify_hash,
    with_source_hash,
)
from .decode import DEFAULT_MAX_PIXELS, DRAFT_ORIGINAL_SIZE_KEY, check_max_pixels

__all__ = ["FilterOptions", "ImageFilter", "filter_options", "make_filter"]


def _positive(value: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if value is None:
        return None
    number: float = value
    if isinstance(value, bool) or not isinstance(value, kind) or not number > 0:
        pixels = " of pixels, an int;" if kind is int else ","
        raise ValueError(f"{name} must be a positive number{pixels} got {value!r}")
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


@dataclasses.dataclass(frozen=True)
class FilterOptions:
    """What each row's source must pass, and the digest recorded of its bytes.

    Immutable and picklable; ``filters.replace(min_image_size=64)`` gives a changed copy.
    Pass it as ``filters=`` to :func:`~creevey_dask.download` or
    :func:`~creevey_dask.resize.resize`. A refused row is an error row (nothing is
    written for it) whose ``error`` names the check.

    Parameters
    ----------
    min_image_size : int, optional
        Refuse images whose smaller side is below this many pixels
        (``ImageFilteredError``).
    max_image_area : int, optional
        Refuse images of more than this many pixels, width x height
        (``ImageFilteredError``).
    max_aspect_ratio : float, optional
        Refuse images whose longer side is more than this many times the shorter
        (``ImageFilteredError``).
    max_pixels : int or None, default 89,478,485
        Refuse images whose *header* declares more pixels, before any is decoded
        (decompression bombs; ``ImageTooLargeError``). None: no limit.
    compute_hash : {"sha256", "md5"}, optional
        Add a ``source_sha256`` (or ``source_md5``) column: the digest of the source's
        bytes.
    verify_hash : (column, algorithm), optional
        A row whose source bytes do not have the hex digest in ``column`` is an error row
        (``HashMismatchError``); rows with no digest are not checked.

    Examples
    --------
    >>> FilterOptions(min_image_size=64, compute_hash="sha256").min_image_size
    64
    >>> FilterOptions(max_aspect_ratio=0.5)
    Traceback (most recent call last):
    ...
    ValueError: max_aspect_ratio is longer side / shorter side, so at least 1; got 0.5
    """

    min_image_size: int | None = None
    max_image_area: int | None = None
    max_aspect_ratio: float | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    compute_hash: str | None = None
    verify_hash: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        # the size checks are the filter op's own, the rest their owners'
        ImageFilter(self.min_image_size, self.max_image_area, self.max_aspect_ratio)
        check_max_pixels(self.max_pixels)
        if self.compute_hash is not None:
            check_hash_algorithm(self.compute_hash)
        object.__setattr__(self, "verify_hash", check_verify_hash(self.verify_hash))

    def replace(self, **changes: Any) -> FilterOptions:
        """A copy with ``changes`` applied (field names as in the constructor)."""
        return replace_fields(self, changes)

    def check_columns(self, columns: Iterable[str]) -> None:
        """Refuse, up front, a ``verify_hash`` column that the input does not have."""
        check_verify_column(columns, self.verify_hash)

    def wrap_loader(self, loader: Callable[..., Any]) -> Callable[..., Any]:
        """``loader``, hashing (and verifying) the bytes it decodes when asked to."""
        return with_source_hash(loader, self.compute_hash, self.verify_hash)

    def wrap_ops(self, ops: Iterable[Any]) -> list[Any]:
        """``ops`` with the size filter in front when one is set."""
        return make_filter(ops, self.min_image_size, self.max_image_area, self.max_aspect_ratio)


def filter_options(filters: Any) -> FilterOptions:
    """``filters=`` as a :class:`FilterOptions` (None: no filter, the default pixel limit).

    Examples
    --------
    >>> filter_options(None) == FilterOptions()
    True
    >>> filter_options({"min_image_size": 8})
    Traceback (most recent call last):
    ...
    TypeError: filters must be a creevey_dask.FilterOptions, got {'min_image_size': 8}
    """
    if filters is None:
        return FilterOptions()
    if not isinstance(filters, FilterOptions):
        raise TypeError(f"filters must be a creevey_dask.FilterOptions, got {filters!r}")
    return filters
