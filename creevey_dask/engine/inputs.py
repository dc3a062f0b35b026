"""A run's input: the one coercion of a table of sources to a frame, and the previous
results an input carries (a result table fed back in)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union

import pandas as pd

from .._dask_types import is_dask_frame, is_dask_series
from ..exceptions import ColumnError, require_columns
from ..schema import (
    DEFAULT_INPATH_COL,
    RESULT_COLUMNS,
    STATUSES,
    UPSTREAM_ERROR_COL,
)

if TYPE_CHECKING:
    import dask.dataframe as dd


__all__ = [
    "Inpaths",
    "as_frame",
    "drop_previous_results",
    "is_missing",
    "keep_upstream_errors",
    "release_inputs",
    "source_col_for",
]

logger = logging.getLogger(__name__)

Inpaths = Union[Iterable[Any], pd.Series, pd.DataFrame, "dd.Series", "dd.DataFrame"]


def as_frame(
    inpaths: Inpaths,
    inpath_col: str | None,
    *,
    what: str = "inpaths",
    noun: str = "source",
    param: str = "inpath_col",
) -> tuple[Any, str, bool]:
    """The one coercion of a run's input to ``(frame, source column, is_dask)``.

    A DataFrame is kept (its source column must exist); a Series becomes a one-column
    frame named ``inpath_col``, else after the Series; a list or other iterable becomes a
    column ``inpath_col`` (path-like items as str). ``what`` and ``noun`` name the
    argument and its items, ``param`` the column's parameter, in the caller's words
    (``download`` says "urls", "URL" and "url_col").
    """
    if isinstance(inpaths, pd.DataFrame) or is_dask_frame(inpaths):
        is_dask = is_dask_frame(inpaths)
        columns = list(inpaths.columns)
        if inpath_col is None:
            if len(columns) != 1:
                raise ValueError(
                    f"the input frame has columns {columns}; say which holds the sources "
                    "with inpath_col="
                )
            inpath_col = columns[0]
        require_columns(columns, **{param: inpath_col})
        return inpaths, inpath_col, is_dask
    if inpath_col is not None and not isinstance(inpath_col, str):
        # a frame's columns may be named otherwise; the column made here is named by a str
        raise TypeError(f"{param} names the source column (a str), got {inpath_col!r}")
    if isinstance(inpaths, pd.Series) or is_dask_series(inpaths):
        name = inpath_col or (inpaths.name if isinstance(inpaths.name, str) else None)
        name = name or DEFAULT_INPATH_COL
        return inpaths.to_frame(name=name), name, is_dask_series(inpaths)
    if isinstance(inpaths, (str, bytes, os.PathLike)):
        raise TypeError(
            f"{what} must be a collection of {noun}s, got the single {noun} {inpaths!r}; "
            "wrap it in a list"
        )
    if not isinstance(inpaths, Iterable):
        raise TypeError(
            f"{what} must be an iterable, a pandas/dask Series or a pandas/dask DataFrame, "
            f"got {type(inpaths).__name__}"
        )
    name = inpath_col or DEFAULT_INPATH_COL
    items = [os.fspath(p) if isinstance(p, os.PathLike) else p for p in inpaths]
    return pd.DataFrame({name: items}), name, False


def _result_dtype_problem(name: str, dtype: Any) -> str | None:
    """Why ``dtype`` is not the result column ``name``'s dtype, or None if it is."""
    if name == "status":
        categories = getattr(dtype, "categories", None)
        if isinstance(dtype, pd.CategoricalDtype) and categories is not None:
            known = {str(c) for c in categories} - {"__UNKNOWN_CATEGORIES__"}
            if known <= set(STATUSES):
                return None
        return f"'status' is {dtype}, not category {list(STATUSES)}"
    if pd.api.types.is_string_dtype(dtype) or (
        name == "error_type" and isinstance(dtype, pd.CategoricalDtype)
    ):
        return None
    return f"{name!r} is {dtype}, not string"


#: The temporary name of an input column that has a stage result column's name, while
#: the run adds that result column (:func:`_hold_inputs`, :func:`release_inputs`).
_HOLD = "_creevey_input_"


def drop_previous_results(
    frame: Any, result_names: Iterable[str], inpath_col: str, suffix: str
) -> tuple[Any, list[str]]:
    """Take a previous result frame's results off; keep the user's columns of result names.

    A frame is a previous result frame only when it has every column of
    :data:`~creevey_dask.schema.RESULT_COLUMNS` with its dtype. Then the result
    columns of this run are replaced (the earlier ``error`` is kept aside for
    :class:`UpstreamError` rows), and a source column that is a result column (e.g.
    ``outpath``) is renamed to ``inpath``. Any other frame with a column named like
    ``outpath``, ``status``, ``error`` or ``error_type`` is refused with a
    :class:`ColumnError` that says how to rename. An input column named like a stage's
    result column (``width`` of a LAION table) is kept: the result's column is named
    with ``suffix`` (``width_result``). Returns the frame and those held names.
    """
    columns = list(frame.columns)
    present = [c for c in result_names if c in columns]
    if not present:
        return frame, []
    problems = [
        problem
        for c in RESULT_COLUMNS
        if (
            problem := _result_dtype_problem(c, frame.dtypes[c])
            if c in columns
            else f"{c!r} is missing"
        )
    ]
    if problems:
        core = [c for c in present if c in RESULT_COLUMNS]
        if core:
            renames = {c: f"{c}_in" for c in core}
            raise ColumnError(
                f"the input has column(s) {core}, which this run's result would overwrite, "
                f"and it is not a result table of an earlier run ({'; '.join(problems)}); "
                f"rename them first, e.g. df.rename(columns={renames}), or, for a result "
                "table read back from a file, restore its dtypes: "
                "df.astype(creevey_dask.RESULT_COLUMNS)"
            )
        return _hold_inputs(frame, present, suffix), present
    stage = [c for c in present if c not in RESULT_COLUMNS]
    # an earlier run that kept the user's ``width`` named its own ``width_result``
    held = [c for c in stage if f"{c}{suffix}" in columns]
    dropped = [f"{c}{suffix}" for c in held] + [c for c in stage if c not in held]
    dropped += [c for c in present if c in RESULT_COLUMNS and c not in ("error", inpath_col)]
    frame = frame.drop(columns=dropped)
    if inpath_col in present:
        frame = frame.rename(columns={inpath_col: source_col_for(inpath_col, columns)})
    return keep_upstream_errors(_hold_inputs(frame, held, suffix)), held


def _hold_inputs(frame: Any, names: list[str], suffix: str) -> Any:
    """``frame`` with its columns ``names`` renamed out of the way of the result's."""
    if not names:
        return frame
    taken = [f"{c}{suffix}" for c in names if f"{c}{suffix}" in frame.columns]
    if taken:
        raise ColumnError(
            f"the input has column(s) {names}, which this run also adds, and the names its "
            f"results would take instead ({taken}) are taken too; pass another "
            "result_suffix= (a RunOptions field) or rename the input columns"
        )
    return frame.rename(columns={c: _HOLD + c for c in names})


def release_inputs(result: Any, names: list[str], suffix: str) -> Any:
    """The run's result with the held input columns back under their names."""
    if not names:
        return result
    renames = {c: f"{c}{suffix}" for c in names}
    renames.update({_HOLD + c: c for c in names})
    return result.rename(columns=renames)


def is_missing(value: Any) -> bool:
    """Whether a source is missing: None, ``pd.NA`` or a float NaN."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def source_col_for(inpath_col: str, columns: Iterable[Any]) -> str:
    """The name a source column gets when it is a result column (``outpath`` fed back in).

    ``inpath``, or ``inpath_1``, ``inpath_2``, ... if that is taken (by the earlier
    run's own source column, say). Identity for any other column.
    """
    if inpath_col not in RESULT_COLUMNS:
        return inpath_col
    taken = set(columns)
    name, n = DEFAULT_INPATH_COL, 0
    while name in taken:
        n += 1
        name = f"{DEFAULT_INPATH_COL}_{n}"
    return name


def keep_upstream_errors(frame: Any) -> Any:
    """Move a result frame's ``error`` column aside, for the rows the next run cannot do.

    A row whose source is null because the earlier step failed then becomes an
    :class:`UpstreamError` carrying that step's message, instead of a bare "missing
    source". The column is removed again from the run's result.
    """
    if "error" not in frame.columns:
        return frame
    return frame.rename(columns={"error": UPSTREAM_ERROR_COL})
