"""The result schema: the columns every run adds, their dtypes and the statuses.

A leaf module: it imports nothing of ours, so every other module (the engine, the
splits, the reports, the future sinks) can share these constants without import cycles.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

__all__ = [
    "DEFAULT_INPATH_COL",
    "ERROR_TYPE_DTYPE",
    "RESULT_COLUMNS",
    "STATUSES",
    "STATUS_DTYPE",
    "STRING_DTYPE",
    "UPSTREAM_ERROR_COL",
    "concat_results",
    "error_type_column",
    "error_type_of",
]

#: The values of the ``status`` column.
STATUSES = ("ok", "skipped", "error")
#: The dtype of the ``status`` column.
STATUS_DTYPE = pd.CategoricalDtype(list(STATUSES))
#: The dtype of text result columns (``outpath``, ``error``, ``split``).
STRING_DTYPE = pd.StringDtype()
#: The dtype of ``error_type``: categorical, the categories being the exception names seen.
ERROR_TYPE_DTYPE = pd.CategoricalDtype()
#: The result columns every run adds, with their dtypes. ``error_type`` is the exception
#: class name of an error row (``"HttpError"``), null elsewhere: ``error``'s text up to
#: its first colon, so ``res.error_type.value_counts()`` groups the failures.
RESULT_COLUMNS: dict[str, Any] = {
    "outpath": STRING_DTYPE,
    "status": STATUS_DTYPE,
    "error": STRING_DTYPE,
    "error_type": ERROR_TYPE_DTYPE,
}
#: The name given to the source column of a list or an unnamed Series.
DEFAULT_INPATH_COL = "inpath"
#: Where a result frame fed back in keeps its earlier ``error`` while a run needs it.
UPSTREAM_ERROR_COL = "_creevey_upstream_error"


def error_type_of(error: Any) -> str | None:
    """The exception name a row's ``error`` text starts with (as
    ``exceptions.format_error`` writes it).

    Examples
    --------
    >>> error_type_of("HttpError: HTTP 404 Not Found"), error_type_of(None)
    ('HttpError', None)
    """
    if not isinstance(error, str) or not error:
        return None
    return error.split(":", 1)[0].strip() or None


def error_type_column(errors: Iterable[Any], index: pd.Index) -> pd.Series:
    """The ``error_type`` column of rows whose ``error`` texts are ``errors``.

    Categorical, its categories the names seen, always of str dtype (also when there are
    none), so that partitions' columns concatenate.
    """
    types = [error_type_of(e) for e in errors]
    names = pd.Index(sorted({t for t in types if t is not None}), dtype=str)
    return pd.Series(pd.Categorical(types, categories=names), index=index)


def concat_results(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The partitions' results as one frame; ``error_type`` stays categorical.

    Partitions see different exception names, and ``pd.concat`` of categoricals with
    different categories gives ``object``: the union of the categories is taken instead.
    """
    if len(parts) == 1:
        return parts[0]
    result = pd.concat(parts)
    if "error_type" in result.columns and not isinstance(
        result["error_type"].dtype, pd.CategoricalDtype
    ):
        result["error_type"] = error_type_column(result["error_type"], result.index)
    return result
