"""Visual reports of a result table: a contact sheet and a summary figure.

:func:`contact_sheet` draws a grid of thumbnails of a seeded sample of rows, each with
a caption; rows without a readable image get a grey placeholder cell that says why.
:func:`duplicate_sheet` draws the largest duplicate groups, one group per grid row.
:func:`summary_table` counts rows by status, the most common error kinds and the
distributions of ``width``, ``height`` and ``bytes``; :func:`summary_figure` draws
those numbers as one image. Everything is drawn with Pillow and its bundled default
font.

Both work on pandas and dask frames. A dask frame is computed, once: call them on a
persisted frame or one read back from Parquet, not on a lazy pipeline result you have
not persisted, which would run the pipeline again.
"""

from __future__ import annotations

import hashlib
import io
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from .. import ops
from ..engine.runner import error_cause
from ..exceptions import UpstreamError, require_columns
from ..image.imagefile import ImageWriter
from ..schema import STATUSES
from ..storage import fs as storage
from . import charts as _charts
from .charts import Font

__all__ = [
    "CAPTION_GAP",
    "PADDING",
    "cell_size",
    "contact_sheet",
    "duplicate_sheet",
    "sample_rows",
    "summary_figure",
    "summary_table",
]

#: Pixels of white around each thumbnail box of a contact sheet.
PADDING = 4
#: Pixels between a thumbnail box and its caption.
CAPTION_GAP = 2
#: The numeric result columns that :func:`summary_table` draws histograms of.
HISTOGRAM_COLUMNS = ("width", "height", "bytes")

Caption: TypeAlias = str | Sequence[str] | Callable[[pd.Series], Any] | None
Frame: TypeAlias = pd.DataFrame | dd.DataFrame

_KEY, _PART, _POS = "__creevey_key", "__creevey_part", "__creevey_pos"
_BACKGROUND = (255, 255, 255)
_THUMB_BACKGROUND = (242, 242, 242)
_PLACEHOLDER = (200, 200, 200)
_PLACEHOLDER_TEXT = (60, 60, 60)
_ERROR_TEXT = (160, 20, 20)
_STATUS_COLORS = {"ok": (60, 150, 80), "skipped": (90, 120, 170), "error": (200, 60, 50)}
_ERROR_BARS = (200, 60, 50)
_HIST_BARS = (70, 130, 180)
_MASK64 = (1 << 64) - 1  # a signed int64 hash is read as its 64 bits


# --- argument checks ------------------------------------------------------------------


def _check_frame(df: Any) -> None:
    if not isinstance(df, (pd.DataFrame, dd.DataFrame)):
        raise TypeError(f"expected a pandas or dask DataFrame, got {type(df).__name__}")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _hash_key(random_state: Any) -> str:
    """The 16-character key that seeds the row hashes of :func:`sample_rows`."""
    if random_state is None:
        return secrets.token_hex(8)
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise TypeError(f"random_state must be an int or None, got {random_state!r}")
    return hashlib.sha256(f"creevey-sample-{int(random_state)}".encode()).hexdigest()[:16]


# --- sampling ---------------------------------------------------------------------------


def _smallest_keys(
    part: pd.DataFrame,
    n: int,
    key_col: str,
    hash_key: str,
    columns: list[str],
    partition_info: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The ``n`` rows of a partition with the smallest seeded hashes, with their place."""
    number = partition_info["number"] if partition_info else 0
    keys = pd.util.hash_pandas_object(part[key_col], index=True, hash_key=hash_key)
    out = part[columns].assign(
        **{_KEY: keys.to_numpy(), _PART: number, _POS: np.arange(len(part), dtype="int64")}
    )
    return out.nsmallest(n, _KEY, keep="first")


def sample_rows(
    df: Frame,
    n: int = 36,
    *,
    random_state: int | None = None,
    key_col: str = "outpath",
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A seeded sample of at most ``n`` rows, in table order, as a pandas frame.

    Each row gets a hash of its index and its ``key_col`` value, keyed by
    ``random_state``; the ``n`` rows with the smallest hashes are the sample. So the
    same seed picks the same rows from a pandas frame and from any partitioning of
    it as a dask frame, and a frame of ``n`` rows or fewer is shown whole. A dask
    frame is computed once, each partition reduced to its ``n`` candidates before
    they are gathered.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
    n : int
        How many rows, at least 1.
    random_state : int, optional
        The seed; ``None`` draws a new sample on each call.
    key_col : str
        The column hashed with the index (the output path by default).
    columns : sequence of str, optional
        The columns to keep (all by default); with a dask frame, only these are
        gathered.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"outpath": [f"{i}.png" for i in range(10)]})
    >>> sample_rows(df, 3, random_state=0).equals(sample_rows(df, 3, random_state=0))
    True
    """
    _check_frame(df)
    n = _check_int("n", n, 1)
    keep = list(df.columns) if columns is None else list(dict.fromkeys(columns))
    require_columns(df.columns, key_col=key_col, columns=keep)
    hash_key = _hash_key(random_state)
    if isinstance(df, dd.DataFrame):
        meta = _smallest_keys(df._meta, n, key_col, hash_key, keep)
        candidates = df.map_partitions(
            _smallest_keys, n, key_col, hash_key, keep, meta=meta, align_dataframes=False
        ).compute()
    else:
        candidates = _smallest_keys(df, n, key_col, hash_key, keep)
    picked = candidates.nsmallest(n, _KEY, keep="first").sort_values([_PART, _POS], kind="stable")
    return picked.drop(columns=[_KEY, _PART, _POS])


# --- the contact sheet ----------------------------------------------------------------


def cell_size(
    thumb_size: int, caption_lines: int, font: Font | int | None = None
) -> tuple[int, int]:
    """The ``(width, height)`` of one contact-sheet cell, in pixels.

    A cell is the ``thumb_size`` square box with :data:`PADDING` around it, and below
    it :data:`CAPTION_GAP` plus ``caption_lines`` lines of text in ``font`` (nothing
    when there are no caption lines). A sheet is ``columns`` cells wide and as many
    rows high as the sample needs.
    """
    thumb_size = _check_int("thumb_size", thumb_size, 16)
    caption_lines = _check_int("caption_lines", caption_lines, 0)
    font = _charts.resolve_font(font, _default_font_size(thumb_size))
    caption = CAPTION_GAP + caption_lines * _charts.line_height(font) if caption_lines else 0
    return thumb_size + 2 * PADDING, thumb_size + 2 * PADDING + caption


def _default_font_size(thumb_size: int) -> int:
    return max(9, min(16, thumb_size // 10))


def _format_value(value: Any) -> str:
    if value is None or (not isinstance(value, (list, tuple, np.ndarray)) and pd.isna(value)):
        return "NA"
    return " ".join(str(value).split())


def _captions(rows: pd.DataFrame, caption: Caption) -> list[list[str]]:
    if caption is None:
        return [[] for _ in range(len(rows))]
    if callable(caption):
        out = []
        for _, row in rows.iterrows():
            text = caption(row)
            out.append([] if text is None else str(text).splitlines())
        return out
    names = [caption] if isinstance(caption, str) else list(caption)
    return [
        [_root_cause(row[c]) or "NA" if c == "error" else _format_value(row[c]) for c in names]
        for _, row in rows.iterrows()
    ]


class _Placeholder:
    """Why a cell has no thumbnail: a headline and optional detail lines."""

    def __init__(self, headline: str, detail: str = "", error: bool = False) -> None:
        self.headline, self.detail, self.error = headline, detail, error


def _root_cause(message: Any) -> str:
    """The error a row's failure started with (an UpstreamError gives the earlier error)."""
    if message is None or pd.isna(message):
        return ""
    return UpstreamError.root_cause(" ".join(str(message).split()))


def _error_kind(message: Any) -> str:
    """The exception type of the root cause, e.g. ``"HttpError"``."""
    return _root_cause(message).split(":", 1)[0].strip()


def _thumbnail(
    path: Any, status: Any, error: Any, thumb_size: int, storage_options: Mapping[str, Any] | None
) -> Image.Image | _Placeholder:
    """The thumbnail of the image at ``path``, or a placeholder saying why there is none."""
    if path is None or pd.isna(path):
        if str(status) == "error":
            kind, _, message = _root_cause(error).partition(": ")
            return _Placeholder("error", f"{kind}\n{message}".strip(), error=True)
        return _Placeholder("no image", str(status) if status is not None else "")
    try:
        data = storage.read_bytes(str(path), storage_options)
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (thumb_size, thumb_size))
            image.thumbnail((thumb_size, thumb_size))
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, _THUMB_BACKGROUND)
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat
            return image.convert("RGB")
    except FileNotFoundError:
        return _Placeholder("missing", "file not found")
    except Exception as err:  # any unreadable file is a placeholder, not a crash
        return _Placeholder("unreadable", type(err).__name__)


def _draw_placeholder(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], why: _Placeholder, font: Font
) -> None:
    left, top, right, bottom = box
    draw.rectangle([left, top, right - 1, bottom - 1], fill=_PLACEHOLDER)
    draw.line([(left, top), (right - 1, bottom - 1)], fill=(185, 185, 185))
    draw.line([(left, bottom - 1), (right - 1, top)], fill=(185, 185, 185))
    lines = [why.headline, *why.detail.splitlines()]
    lh = _charts.line_height(font)
    y = top + (bottom - top - lh * len(lines)) / 2
    for i, text in enumerate(lines):
        text = _charts.fit_text(text, font, right - left - 4)
        x = left + (right - left - _charts.text_width(font, text)) / 2
        color = _ERROR_TEXT if why.error and i == 0 else _PLACEHOLDER_TEXT
        draw.rectangle(
            [x - 2, y + i * lh, x + _charts.text_width(font, text) + 2, y + (i + 1) * lh],
            fill=_PLACEHOLDER,
        )
        draw.text((x, y + i * lh), text, font=font, fill=color)


def _draw_sheet(
    cells: Sequence[tuple[Any, Any, Any] | None],
    captions: list[list[str]],
    ncols: int,
    thumb_size: int,
    font: Font,
    storage_options: Mapping[str, Any] | None,
) -> Image.Image:
    """The grid of ``(path, status, error)`` cells (None: blank), captioned, in order."""
    caption_lines = max((len(c) for c in captions), default=0)
    cell_w, cell_h = cell_size(thumb_size, caption_lines, font)
    grid_rows = math.ceil(len(cells) / ncols)
    sheet = Image.new("RGB", (ncols * cell_w, grid_rows * cell_h), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    jobs = [(i, cell) for i, cell in enumerate(cells) if cell is not None]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(jobs)))) as pool:
        made = pool.map(
            lambda job: _thumbnail(job[1][0], job[1][1], job[1][2], thumb_size, storage_options),
            jobs,
        )
        thumbs: list[Image.Image | _Placeholder | None] = [None] * len(cells)
        for (i, _), one in zip(jobs, made, strict=True):
            thumbs[i] = one

    lh = _charts.line_height(font)
    for i, (thumb, caption) in enumerate(zip(thumbs, captions, strict=True)):
        left = (i % ncols) * cell_w + PADDING
        top = (i // ncols) * cell_h + PADDING
        box = (left, top, left + thumb_size, top + thumb_size)
        if thumb is None:  # a blank cell
            continue
        if isinstance(thumb, _Placeholder):
            _draw_placeholder(draw, box, thumb, font)
        else:
            draw.rectangle(
                [left, top, left + thumb_size - 1, top + thumb_size - 1], fill=_THUMB_BACKGROUND
            )
            sheet.paste(
                thumb,
                (left + (thumb_size - thumb.width) // 2, top + (thumb_size - thumb.height) // 2),
            )
        for j, line in enumerate(caption):
            text = _charts.fit_text(line, font, thumb_size)
            x = left + (thumb_size - _charts.text_width(font, text)) / 2
            draw.text(
                (x, top + thumb_size + CAPTION_GAP + j * lh), text, font=font, fill=_charts.TEXT
            )

    return sheet


def contact_sheet(
    df: Frame,
    path_col: str = "outpath",
    caption_cols: Caption = ("status",),
    n: int = 36,
    ncols: int = 6,
    thumb_size: int = 128,
    random_state: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    font: Font | int | None = None,
    *,
    save_to: str | None = None,
) -> Image.Image:
    """A grid of thumbnails of a sample of result rows, each captioned.

    The rows are :func:`sample_rows` ``(df, n, random_state=...)``, shown in table
    order, ``ncols`` cells per row of the grid. Each cell holds the image at
    ``path_col`` shrunk to fit a ``thumb_size`` square (aspect kept, centred; JPEGs
    are decoded at a reduced size with ``Image.draft``) and the caption below it.
    Rows without a readable image never fail the sheet: an error row (null outpath)
    shows a grey ``error`` cell with its root cause (for a row whose earlier step
    failed, that step's error, e.g. ``HttpError: HTTP 404 Not Found``, not
    ``UpstreamError``), a missing file ``missing``, an
    undecodable file ``unreadable`` with the exception type.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        A result table. A dask frame is computed once, each partition reduced to its
        ``n`` sample candidates (with only the columns the sheet needs when the
        captions name columns); the images are read from the driver.
    path_col : str
        The column of image paths (any fsspec URL: local, ``memory://``, ``s3://``).
    caption_cols : str, sequence of str, callable or None
        The columns whose values make the caption, one line each (``error`` is shown
        as its root cause); or a function
        ``row (pandas.Series) -> str`` whose lines make it (the sheet leaves room for
        the longest); or None for no captions. Long lines are cut with an ellipsis.
    n : int
        At most how many rows to show (at least 1).
    ncols : int
        Cells per grid row (at least 1); the sheet is always this many cells wide.
    thumb_size : int
        The side of each thumbnail's box in pixels (at least 16).
    random_state : int, optional
        The seed of the sample; ``None`` draws a new one each call.
    storage_options : mapping, optional
        fsspec options to read the images and to write ``save_to``.
    font : PIL.ImageFont, int or None
        The caption font, or a size in pixels for Pillow's default font; by default
        that font at ``thumb_size // 10`` pixels (from 9 to 16).
    save_to : str, optional
        Also write the sheet there (the format from the extension), atomically.

    Returns
    -------
    PIL.Image.Image
        An RGB image of ``ncols * cell_width`` by ``rows * cell_height`` pixels, with
        the cell size from :func:`cell_size` and ``rows = ceil(shown / ncols)``.

    Raises
    ------
    ValueError
        For a bad ``n``, ``ncols`` or ``thumb_size``, a column the frame lacks
        (the message lists its columns), or a frame without rows.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"outpath": [None], "status": ["error"], "error": ["OSError: x"]})
    >>> contact_sheet(df, ncols=2, thumb_size=64).size[0] == 2 * cell_size(64, 1)[0]
    True
    """
    _check_frame(df)
    n = _check_int("n", n, 1)
    ncols = _check_int("ncols", ncols, 1)
    thumb_size = _check_int("thumb_size", thumb_size, 16)
    if callable(caption_cols):
        needed = list(df.columns)
    else:
        names = (
            []
            if caption_cols is None
            else ([caption_cols] if isinstance(caption_cols, str) else list(caption_cols))
        )
        require_columns(df.columns, caption_cols=names)
        needed = [path_col, *names, *(c for c in ("status", "error") if c in df.columns)]
    require_columns(df.columns, path_col=path_col)
    font = _charts.resolve_font(font, _default_font_size(thumb_size))

    rows = sample_rows(df, n, random_state=random_state, key_col=path_col, columns=needed)
    if rows.empty:
        raise ValueError("the frame has no rows to show in a contact sheet")
    statuses = rows["status"] if "status" in rows.columns else pd.Series("", index=rows.index)
    errors = rows["error"] if "error" in rows.columns else pd.Series(None, index=rows.index)
    cells = list(zip(rows[path_col], statuses, errors, strict=True))
    sheet = _draw_sheet(
        cells, _captions(rows, caption_cols), ncols, thumb_size, font, storage_options
    )
    if save_to is not None:
        ImageWriter(storage_options=storage_options)(sheet, save_to)
    return sheet


def duplicate_sheet(
    df: Frame,
    path_col: str = "outpath",
    hash_col: str | None = "dhash",
    n_groups: int = 8,
    ncols: int = 6,
    thumb_size: int = 128,
    storage_options: Mapping[str, Any] | None = None,
    font: Font | int | None = None,
    *,
    save_to: str | None = None,
) -> Image.Image:
    """The largest duplicate groups drawn as a contact sheet, one group per grid row.

    For judging a ``max_distance`` by eye: each grid row holds one group of
    :func:`creevey_dask.duplicates`' output, its kept row first and then its other rows
    in table order (at most ``ncols``; a longer group says how many are not shown). Each
    caption gives the group id and size, and for the other rows their distance in bits
    to the kept row's ``hash_col``.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        The output of :func:`creevey_dask.duplicates` (``dup_group``, ``dup_keep``). A
        dask frame is computed twice: the group sizes, then the rows of the groups shown.
    path_col : str
        The column of image paths (any fsspec URL).
    hash_col : str or None
        The hash column of the distances in the captions; None for no distances.
    n_groups : int
        At most how many groups (the largest; equal sizes by group id), at least 1.
    ncols, thumb_size, storage_options, font, save_to
        As for :func:`contact_sheet`.

    Returns
    -------
    PIL.Image.Image
        ``ncols`` cells wide, a row per group shown; blank cells after a short group.

    Raises
    ------
    ValueError
        A bad ``n_groups``, ``ncols`` or ``thumb_size``, a missing column, or a frame
        without any group of two rows or more.
    """
    _check_frame(df)
    n_groups = _check_int("n_groups", n_groups, 1)
    ncols = _check_int("ncols", ncols, 1)
    thumb_size = _check_int("thumb_size", thumb_size, 16)
    require_columns(
        df.columns, path_col=path_col, hash_col=hash_col, groups=["dup_group", "dup_keep"]
    )
    font = _charts.resolve_font(font, _default_font_size(thumb_size))
    sizes = df["dup_group"].value_counts()
    if isinstance(sizes, dd.Series):
        sizes = sizes.compute()
    sizes = sizes[sizes > 1]
    if sizes.empty:
        raise ValueError("the frame has no duplicate group of two rows or more to show")
    table = pd.DataFrame({"group": sizes.index.to_numpy(), "size": sizes.to_numpy()})
    shown = table.sort_values(["size", "group"], ascending=[False, True]).head(n_groups)
    wanted = [c for c in dict.fromkeys([path_col, "dup_group", "dup_keep", hash_col]) if c]
    wanted += [c for c in ("status", "error") if c in df.columns and c not in wanted]
    rows = df[df["dup_group"].isin(shown["group"].tolist())][wanted]
    if isinstance(rows, dd.DataFrame):
        rows = rows.compute()
    cells: list[tuple[Any, Any, Any] | None] = []
    captions: list[list[str]] = []
    for group, size in zip(shown["group"], shown["size"], strict=True):
        members = rows[rows["dup_group"] == group]
        keep = members["dup_keep"].astype(bool)  # also as read back from CSV or JSON
        members = pd.concat([members[keep], members[~keep]])
        kept_hash: Any = members[hash_col].iloc[0] if hash_col else None
        for i in range(ncols):
            if i >= len(members):
                cells.append(None)
                captions.append([])
                continue
            row = members.iloc[i]
            status = row["status"] if "status" in row.index else ""
            error = row["error"] if "error" in row.index else None
            cells.append((row[path_col], status, error))
            first = f"group {group} ({size})" if i == 0 else ""
            if i == 0:
                second = "kept"
            elif hash_col is None or pd.isna(row[hash_col]) or pd.isna(kept_hash):
                second = "copy"
            else:
                second = (
                    f"{ops.hamming(int(row[hash_col]) & _MASK64, int(kept_hash) & _MASK64)} bits"
                )
            if i == ncols - 1 and len(members) > ncols:
                second += f" (+{len(members) - ncols} more)"
            captions.append([first, second])
    sheet = _draw_sheet(cells, captions, ncols, thumb_size, font, storage_options)
    if save_to is not None:
        ImageWriter(storage_options=storage_options)(sheet, save_to)
    return sheet


# --- the summary ----------------------------------------------------------------------


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
    _check_frame(df)
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
