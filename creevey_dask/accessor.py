"""The ``df.creevey`` accessor on pandas and dask DataFrames.

Registered by ``import creevey_dask``. The accessor is thin glue: each method calls a
library function with the frame and returns a new frame. It keeps no state and never
computes, because pandas and dask may construct it several times per attribute access.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dask.dataframe as dd
import pandas as pd
from dask.dataframe.extensions import register_dataframe_accessor as _register_dask
from pandas.api.extensions import register_dataframe_accessor as _register_pandas

from .pipeline import Pipeline

__all__ = ["CreeveyAccessor"]


class CreeveyAccessor:
    """Image pipelines over the rows of this frame: ``df.creevey.run(...)`` and friends.

    Examples
    --------
    >>> import pandas as pd, creevey_dask
    >>> df = pd.DataFrame({"path": ["a.png", "b.png"]})
    >>> df.creevey.frame is df
    True
    """

    def __init__(self, obj: pd.DataFrame | dd.DataFrame) -> None:
        if not isinstance(obj, (pd.DataFrame, dd.DataFrame)):  # pragma: no cover
            raise AttributeError("the creevey accessor works on pandas and dask DataFrames")
        self._obj = obj

    @property
    def frame(self) -> pd.DataFrame | dd.DataFrame:
        """The frame this accessor was reached from."""
        return self._obj

    def _require(self, *columns: str) -> None:
        missing = [c for c in columns if c not in self._obj.columns]
        if missing:
            raise ValueError(
                f"this frame has no column(s) {missing}; its columns are {list(self._obj.columns)}"
            )

    def run(
        self,
        pipeline: Pipeline,
        inpath_col: str,
        outpath_func: Callable[[Any], str],
        n_jobs: int | None = None,
        skip_existing: bool = True,
        *,
        progress: bool = True,
        npartitions: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame | dd.DataFrame:
        """Run ``pipeline`` on the sources in ``inpath_col``; see :meth:`Pipeline.run`.

        Returns the frame with the result columns; a pandas frame for a pandas
        frame, a lazy dask frame for a dask frame.
        """
        self._require(inpath_col)
        return pipeline.run(
            self._obj,
            outpath_func,
            n_jobs=n_jobs,
            skip_existing=skip_existing,
            inpath_col=inpath_col,
            progress=progress,
            npartitions=npartitions,
            storage_options=storage_options,
        )

    # -- downloading (creevey_dask.download) ---------------------------------------

    def download(
        self,
        outdir: str | None,
        url_col: str = "url",
        format: str = "png",
        ops: Any = None,
        naming: str = "url",
        **kwargs: Any,
    ) -> pd.DataFrame | dd.DataFrame:
        """Download the images at ``url_col`` into ``outdir``; see :func:`creevey_dask.download`.

        Returns the frame with the result columns (``outpath``, ``status``, ``error``,
        ``http_status``, ``bytes``, ``attempts``, ``width``, ``height``): pandas for a
        pandas frame, a lazy dask frame for a dask frame.
        """
        from .download import download

        self._require(url_col)
        return download(
            self._obj, outdir, url_col=url_col, format=format, ops=ops, naming=naming, **kwargs
        )


def register() -> None:
    """Register ``creevey`` on pandas and dask DataFrames (done on import)."""
    for registrar in (_register_pandas, _register_dask):
        registrar("creevey")(CreeveyAccessor)
