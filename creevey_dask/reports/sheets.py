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

import dask.dataframe as dd
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from .. import ops
from .._dask_types import require_frame
from ..exceptions import require_columns
from ..image.encode import ImageWriter
from ..storage import fs as storage
from . import charts as _charts
from ._common import _BACKGROUND, Frame, _check_int, _root_cause
from .charts import Font

__all__ = [
    "CAPTION_GAP",
    "PADDING",
    "cell_size",
    "contact_sheet",
    "duplicate_sheet",
    "sample_rows",
]

#: Pixels of white around each thumbnail box of a contact sheet.
PADDING = 4
#: Pixels between a thumbnail box and its caption.
CAPTION_GAP = 2

Caption: TypeAlias = str | Sequence[str] | Callable[[pd.Series], Any] | None

_KEY, _PART, _POS = "__creevey_key", "__creevey_part", "__creevey_pos"
_THUMB_BACKGROUND = (242, 242, 242)
_PLACEHOLDER = (200, 200, 200)
_PLACEHOLDER_TEXT = (60, 60, 60)
_ERROR_TEXT = (160, 20, 20)
_MASK64 = (1 << 64) - 1  # a signed int64 hash is read as its 64 bits


# --- argument checks ------------------------------------------------------------------


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
    require_frame(df)
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
    require_frame(df)
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
    require_frame(df)
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
