"""Is this a dask collection? Answered without importing ``dask.dataframe``.

``import dask.dataframe`` costs about half a second (it pulls in dask.array and, when
installed, parts of SciPy). A run over a pandas frame never needs it: an object can only
be a dask DataFrame or Series if ``dask.dataframe`` has already been imported, so these
checks look in ``sys.modules`` first.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["is_dask_frame", "is_dask_series", "require_frame"]


def _module() -> Any | None:
    return sys.modules.get("dask.dataframe")


def is_dask_frame(obj: Any) -> TypeGuard[dd.DataFrame]:
    """Whether ``obj`` is a ``dask.dataframe.DataFrame``."""
    dd = _module()
    return dd is not None and isinstance(obj, dd.DataFrame)


def is_dask_series(obj: Any) -> TypeGuard[dd.Series]:
    """Whether ``obj`` is a ``dask.dataframe.Series``."""
    dd = _module()
    return dd is not None and isinstance(obj, dd.Series)


def require_frame(obj: Any, what: str = "df") -> None:
    """Raise TypeError unless ``obj`` is a pandas or dask DataFrame (the one wording)."""
    pandas = sys.modules.get("pandas")
    if not ((pandas is not None and isinstance(obj, pandas.DataFrame)) or is_dask_frame(obj)):
        raise TypeError(f"{what} must be a pandas or dask DataFrame, got {type(obj).__name__}")
