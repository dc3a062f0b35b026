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

from ._edit import (
    CenterCrop,
    Crop,
    TrimBottom,
    TrimPadding,
    centercrop,
    crop,
    exif_transpose,
    flip_horiz,
    flip_vert,
    grayscale,
    rotate_90,
    rotate_180,
    rotate_270,
    trim_bottom,
    trim_padding,
)
from ._measure import (
    dhash,
    hamming,
    mean_brightness,
    report_dhash,
    report_mean_brightness,
    report_size,
)
from ._resize import (
    RESAMPLE_FILTERS,
    RESIZE_MODES,
    Resize,
    resize,
)

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

# The public names read as creevey_dask.ops.<name> (help(), reprs, error messages) and
# pickle by that path, wherever in the package they are defined.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(__name__ + "."):
        _obj.__module__ = __name__
del _name, _obj
