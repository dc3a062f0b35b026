"""Summary tables and figures of a result table: status counts, error kinds, size
histograms (drawn with Pillow only)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from .._dask_types import require_frame
from ..exceptions import error_cause, require_columns
from ..image.encode import ImageWriter
from ..schema import STATUSES
from . import charts as _charts
from ._common import (
    _BACKGROUND,
    _ERROR_BARS,
    _HIST_BARS,
    _STATUS_COLORS,
    Frame,
    _check_int,
    _error_kind,
)
from .charts import Font

__all__ = ["HISTOGRAM_COLUMNS", "summary_figure", "summary_table"]

#: The numeric result columns that :func:`summary_table` draws histograms of.
HISTOGRAM_COLUMNS = ("width", "height", "bytes")


def _error_kinds(errors: pd.Series) -> pd.Series:
    """The exception type of each error's root cause (an UpstreamError's earlier error)."""
    return errors.dropna().astype(str).map(_error_kind).astype("string")


def _error_causes(errors: pd.Series) -> pd.Series:
    """Each error's cause (:func:`creevey_dask.engine.runner.error_cause`): one text per cause."""
    return errors.dropna().astype(str).map(error_cause).astype("string")


def _edges(lo: float, hi: float, bins: int, integer: bool) -> np.ndarray:
    """Equal-width bin edges from ``lo`` to ``hi``; for integers, whole-number-wide bins
    centred on the integers, at most ``bins`` of them."""
    if integer:
        width = math.ceil((hi - lo + 1) / bins)
        count = math.ceil((hi - lo + 1) / width)
        return lo - 0.5 + width * np.arange(count + 1, dtype="float64")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _partition_histogram(
    values: pd.Series, lo: Any, hi: Any, bins: int, integer: bool
) -> pd.DataFrame:
    counts = np.zeros(bins, dtype="int64")
    clean = values.dropna().to_numpy(dtype="float64")
    if clean.size and not (pd.isna(lo) or pd.isna(hi)):
        found, _ = np.histogram(clean, bins=_edges(float(lo), float(hi), bins, integer))
        counts[: len(found)] = found
    return pd.DataFrame([counts], columns=[f"bin{i}" for i in range(bins)])


def _histogram_columns(df: Frame, columns: Sequence[str] | None) -> list[str]:
    def numeric(name: str) -> bool:
        dtype = df[name].dtype
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)

    if columns is None:
        return [c for c in HISTOGRAM_COLUMNS if c in df.columns and numeric(c)]
    names = [columns] if isinstance(columns, str) else list(columns)
    require_columns(df.columns, columns=names)
    bad = [c for c in names if not numeric(c)]
    if bad:
        raise ValueError(f"histogram column(s) {bad} are not numeric; pick from numeric columns")
    return names


def summary_table(
    df: Frame,
    *,
    top_errors: int = 8,
    bins: int = 20,
    columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The numbers behind :func:`summary_figure`, as plain Python data.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        A result table with a ``status`` column (``error`` is used when present). A
        dask frame is computed once, in a single graph, reading only these columns.
    top_errors : int
        How many error kinds to keep (at least 1).
    bins : int
        Bins per histogram (at least 1), of equal width from the column's minimum to
        its maximum. For an integer column, at most this many bins of a whole-number
        width, centred on the integers (edges at half-integers), so no bin is empty
        just by falling between two integers.
    columns : sequence of str, optional
        Numeric columns to histogram; by default those of ``width``, ``height`` and
        ``bytes`` that the frame has.

    Returns
    -------
    dict
        ``rows``: the number of rows; ``status``: ``{"ok": n, "skipped": n,
        "error": n}`` (every status, zeros included, then any other value seen);
        ``error_kinds``: ``{"<Type>": n}`` for the ``top_errors`` most common types
        of root cause (the part of ``error`` before the first colon; for an
        ``UpstreamError``, of the earlier step's error it carries), most common
        first, ties by name; ``other_error_kinds``: how many error rows have a type not listed;
        ``error_causes``: ``{"<Type>: <message>": n}``, the ``top_errors`` most common
        causes, messages that differ only in a path, a byte count or a size counted as
        one (:func:`creevey_dask.engine.runner.error_cause`), as the end-of-run summary does;
        ``histograms``: ``{column: {"edges": [...], "counts": [...]}}`` over the
        non-null values, for the columns that have any.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"status": ["ok", "error"], "error": [None, "OSError: boom"]})
    >>> summary_table(df)["error_kinds"]
    {'OSError': 1}
    """
    require_frame(df)
    top_errors = _check_int("top_errors", top_errors, 1)
    bins = _check_int("bins", bins, 1)
    require_columns(df.columns, "the frame (a result table)", status="status")
    hist_cols = _histogram_columns(df, columns)

    frame = df if isinstance(df, dd.DataFrame) else dd.from_pandas(df, npartitions=1, sort=False)
    lazy: dict[str, Any] = {
        "rows": frame.shape[0],
        "status": frame["status"].astype("string").value_counts(dropna=False),
    }
    if "error" in frame.columns:
        lazy["kinds"] = (
            frame["error"]
            .map_partitions(_error_kinds, meta=pd.Series(dtype="string", name="error"))
            .value_counts()
        )
        lazy["causes"] = (
            frame["error"]
            .map_partitions(_error_causes, meta=pd.Series(dtype="string", name="error"))
            .value_counts()
        )
    for name in hist_cols:
        lo, hi = frame[name].min(), frame[name].max()
        meta = pd.DataFrame({f"bin{i}": pd.Series(dtype="int64") for i in range(bins)})
        integer = pd.api.types.is_integer_dtype(frame[name].dtype)
        hist = frame[name].map_partitions(
            _partition_histogram, lo, hi, bins, integer, meta=meta, enforce_metadata=False
        )
        lazy[f"hist:{name}"] = (lo, hi, integer, hist.sum())
    scheduler = None if isinstance(df, dd.DataFrame) else "sync"
    (done,) = dask.compute(lazy, scheduler=scheduler)

    counts = {str(k): int(v) for k, v in done["status"].items() if not pd.isna(k)}
    status = {s: counts.pop(s, 0) for s in STATUSES}
    status.update(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    kinds = done.get("kinds", pd.Series(dtype="int64"))
    ranked = sorted(((str(k), int(v)) for k, v in kinds.items()), key=lambda kv: (-kv[1], kv[0]))
    causes = done.get("causes", pd.Series(dtype="int64"))
    by_cause = sorted(((str(k), int(v)) for k, v in causes.items()), key=lambda kv: (-kv[1], kv[0]))
    histograms = {}
    for name in hist_cols:
        lo, hi, integer, hist = done[f"hist:{name}"]
        if pd.isna(lo) or pd.isna(hi):
            continue
        edges = _edges(float(lo), float(hi), bins, integer)
        histograms[name] = {
            "edges": [float(e) for e in edges],
            "counts": [int(hist[f"bin{i}"]) for i in range(len(edges) - 1)],
        }
    return {
        "rows": int(done["rows"]),
        "status": status,
        "error_kinds": dict(ranked[:top_errors]),
        "other_error_kinds": sum(v for _, v in ranked[top_errors:]),
        "error_causes": dict(by_cause[:top_errors]),
        "histograms": histograms,
    }


def summary_figure(
    df: Frame,
    *,
    top_errors: int = 8,
    bins: int = 20,
    columns: Sequence[str] | None = None,
    size: tuple[int, int] = (960, 640),
    font: Font | int | None = None,
    title: str | None = None,
    save_to: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Image.Image:
    """One image summarising a result table: statuses, error kinds and histograms.

    The top row holds a bar chart of the rows by status and horizontal bars of the
    most common error kinds with their counts; the bottom row a histogram of each
    numeric column (``width``, ``height``, ``bytes`` when present), with the y axis
    from 0 to the largest bin count and the x axis labelled with bin edges. Without
    numeric columns, the top row fills the figure. Drawn with Pillow from
    :func:`summary_table`'s numbers.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        A result table (see :func:`summary_table` for how a dask frame is computed).
    top_errors, bins, columns
        As for :func:`summary_table`.
    size : (int, int)
        The figure's ``(width, height)`` in pixels, at least ``(320, 240)``.
    font : PIL.ImageFont, int or None
        The font, or a size for Pillow's default font (by default 13 pixels).
    title : str, optional
        The heading; by default the row counts by status.
    save_to : str, optional
        Also write the figure there (the format from the extension), atomically.
    storage_options : mapping, optional
        fsspec options for ``save_to``.

    Returns
    -------
    PIL.Image.Image
        An RGB image of exactly ``size``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"status": ["ok", "error"], "error": [None, "OSError: boom"]})
    >>> summary_figure(df, size=(400, 300)).size
    (400, 300)
    """
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
        or size[0] < 320
        or size[1] < 240
    ):
        raise ValueError(
            f"size must be (width, height) of at least (320, 240) pixels, got {size!r}"
        )
    numbers = summary_table(df, top_errors=top_errors, bins=bins, columns=columns)
    font = _charts.resolve_font(font, 13)
    width, height = int(size[0]), int(size[1])
    figure = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(figure)
    margin, gap = 12, 24
    lh = _charts.line_height(font)

    status = numbers["status"]
    if title is None:
        title = f"{numbers['rows']} rows: " + ", ".join(f"{v} {k}" for k, v in status.items())
    draw.text(
        (margin, margin),
        _charts.fit_text(title, font, width - 2 * margin),
        font=font,
        fill=_charts.TEXT,
    )
    top = margin + lh + 10
    hists = numbers["histograms"]
    split = top + (height - top - margin) * (0.5 if hists else 1.0)

    status_right = margin + (width - 2 * margin - gap) // 3
    _charts.draw_vbars(
        draw,
        (margin, top, status_right, int(split) - gap // 2),
        list(status),
        list(status.values()),
        [_STATUS_COLORS.get(k, (150, 150, 150)) for k in status],
        font,
        "rows by status",
    )
    kinds = numbers["error_kinds"]
    labels, values = list(kinds), list(kinds.values())
    if numbers["other_error_kinds"]:
        labels.append("(other kinds)")
        values.append(numbers["other_error_kinds"])
    _charts.draw_hbars(
        draw,
        (status_right + gap, top, width - margin, int(split) - gap // 2),
        labels,
        values,
        _ERROR_BARS,
        font,
        "most common errors",
        empty="no errors",
    )
    if hists:
        panel = (width - 2 * margin - gap * (len(hists) - 1)) / len(hists)
        for i, (name, hist) in enumerate(hists.items()):
            left = int(margin + i * (panel + gap))
            _charts.draw_histogram(
                draw,
                (left, int(split) + gap // 2, int(left + panel), height - margin),
                hist["edges"],
                hist["counts"],
                _HIST_BARS,
                font,
                f"{name}: rows per bin ({sum(hist['counts'])} values)",
                name,
            )
    if save_to is not None:
        ImageWriter(storage_options=storage_options)(figure, save_to)
    return figure
