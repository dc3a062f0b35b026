"""The result schema: the columns every run adds, their dtypes and the statuses.

A leaf module: it imports nothing of ours, so every other module (the engine, the
splits, the reports, the future sinks) can share these constants without import cycles.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = [
    "DEFAULT_INPATH_COL",
    "RESULT_COLUMNS",
    "STATUSES",
    "STATUS_DTYPE",
    "STRING_DTYPE",
    "UPSTREAM_ERROR_COL",
]

#: The values of the ``status`` column.
STATUSES = ("ok", "skipped", "error")
#: The dtype of the ``status`` column.
STATUS_DTYPE = pd.CategoricalDtype(list(STATUSES))
#: The dtype of text result columns (``outpath``, ``error``, ``split``).
STRING_DTYPE = pd.StringDtype()
#: The result columns every run adds, with their dtypes.
RESULT_COLUMNS: dict[str, Any] = {
    "outpath": STRING_DTYPE,
    "status": STATUS_DTYPE,
    "error": STRING_DTYPE,
}
#: The name given to the source column of a list or an unnamed Series.
DEFAULT_INPATH_COL = "inpath"
#: Where a result frame fed back in keeps its earlier ``error`` while a run needs it.
UPSTREAM_ERROR_COL = "_creevey_upstream_error"
