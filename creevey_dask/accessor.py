"""The ``df.creevey`` accessor on pandas and dask DataFrames.

Registered by ``import creevey_dask``. The accessor is thin glue: each method calls a
library function with the frame and returns a new frame. It keeps no state and never
computes, because pandas and dask may construct it several times per attribute access.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._lazy import when_imported
from .exceptions import require_columns

if TYPE_CHECKING:  # imported by the methods that use them, so that import stays cheap
    import dask.dataframe as dd
    import pandas as pd
    from PIL import Image

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
        # pandas and dask construct it from their DataFrames only (see register)
        self._obj = obj

    @property
    def frame(self) -> pd.DataFrame | dd.DataFrame:
        """The frame this accessor was reached from."""
        return self._obj

    def _require(self, **columns: str) -> None:
        require_columns(self._obj.columns, **columns)

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
        self._require(inpath_col=inpath_col)
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

    # ---- splits and ImageNet-style folders (creevey_dask.split) ----

    def split(
        self,
        valid_size: int | float,
        groupby: str | None = None,
        stratify: str | None = None,
        test_size: int | float | None = None,
        random_state: Any = None,
    ) -> pd.DataFrame | dd.DataFrame:
        """Add a ``split`` column (train/valid/test); see :func:`creevey_dask.split.split`.

        Rows sharing a ``groupby`` value land in one split; the same ``random_state``
        gives the same answer for pandas and any partitioning of a dask frame.
        """
        from .split import split as _split

        return _split(
            self._obj,
            valid_size,
            groupby=groupby,
            stratify=stratify,
            test_size=test_size,
            random_state=random_state,
        )

    def imagenet_symlinks(
        self,
        outdir: str,
        *,
        label_col: str,
        valid_size: int | float,
        path_col: str = "outpath",
        groupby: str | None = None,
        stratify: bool = False,
        test_size: int | float | None = None,
        random_state: Any = None,
        mode: str = "symlink",
        relative: bool = True,
        keep_status: Sequence[str] | None = ("ok",),
        storage_options: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Lay the result table's images out as ``outdir/{train,valid}/<label>/``.

        Rows whose ``status`` is not in ``keep_status`` (by default: not ``"ok"``) are
        left out and counted in the log; ``keep_status=None`` keeps every row (and
        allows a frame without a ``status`` column). See
        :func:`creevey_dask.split.create_imagenet_style_symlinks` for the rest; returns
        the manifest.
        """
        from .split import create_imagenet_style_symlinks

        return create_imagenet_style_symlinks(
            self._obj,
            label_col,
            path_col,
            valid_size,
            outdir,
            groupby_colname=groupby,
            random_state=random_state,
            stratify=stratify,
            test_size=test_size,
            mode=mode,
            relative=relative,
            keep_status=keep_status,
            storage_options=storage_options,
        )

    # ---- visual reports (creevey_dask.reports) ----

    def contact_sheet(
        self,
        path_col: str = "outpath",
        caption_cols: Any = ("status",),
        n: int = 36,
        columns: int = 6,
        thumb_size: int = 128,
        random_state: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        font: Any = None,
        *,
        save_to: str | None = None,
    ) -> Image.Image:
        """A grid of captioned thumbnails of a seeded sample of rows.

        See :func:`creevey_dask.reports.contact_sheet`; a dask frame is computed once,
        each partition reduced to its sample candidates.
        """
        from .reports import contact_sheet as _contact_sheet

        return _contact_sheet(
            self._obj,
            path_col=path_col,
            caption_cols=caption_cols,
            n=n,
            columns=columns,
            thumb_size=thumb_size,
            random_state=random_state,
            storage_options=storage_options,
            font=font,
            save_to=save_to,
        )

    def summary_figure(self, **kwargs: Any) -> Image.Image:
        """Status counts, error kinds and size histograms drawn as one image.

        Keyword arguments as for :func:`creevey_dask.reports.summary_figure`.
        """
        from .reports import summary_figure as _summary_figure

        return _summary_figure(self._obj, **kwargs)

    def summary_table(self, **kwargs: Any) -> dict[str, Any]:
        """The numbers behind :meth:`summary_figure`; see
        :func:`creevey_dask.reports.summary_table`."""
        from .reports import summary_table as _summary_table

        return _summary_table(self._obj, **kwargs)

    # -- resizing (creevey_dask.resize) ----------------------------------------------------
    def resize(
        self, outdir: str, path_col: str = "path", **kwargs: Any
    ) -> pd.DataFrame | dd.DataFrame:
        """Resize the images in ``path_col`` into ``outdir``; see :func:`.resize.resize`.

        Give one of ``shape=(height, width)``, ``min_dim=`` or ``max_dim=``; the other
        keywords (``mode``, ``format``, ``quality``, ``ops``, ``report``, ...) are those
        of :func:`~creevey_dask.resize.resize`. To resize the files of a download, pass
        ``path_col="outpath"``: that column is kept as ``inpath``.

        Examples
        --------
        >>> import pandas as pd, creevey_dask
        >>> df = pd.DataFrame({"path": ["a.jpg"]})
        >>> df.creevey.resize("out", shape=(0, 10))
        Traceback (most recent call last):
        ...
        ValueError: shape[0] (height) must be a positive int, got 0
        """
        from .resize import resize

        self._require(path_col=path_col)
        return resize(self._obj, outdir, path_col, **kwargs)

    # -- downloading (creevey_dask.download) ---------------------------------------

    def download(
        self,
        outdir: str | None,
        url_col: str = "url",
        format: str = "jpeg",
        ops: Any = None,
        naming: str = "url",
        **kwargs: Any,
    ) -> pd.DataFrame | dd.DataFrame:
        """Download the images at ``url_col`` into ``outdir``; see :func:`creevey_dask.download`.

        The files are JPEGs at quality 95 unless ``format=`` (``"png"``, ``"webp"``,
        ``"original"``) or ``quality=`` say otherwise.

        Returns the frame with the result columns (``outpath``, ``status``, ``error``,
        ``http_status``, ``bytes``, ``attempts``, ``width``, ``height``): pandas for a
        pandas frame, a lazy dask frame for a dask frame.
        """
        from .download import download

        self._require(url_col=url_col)
        return download(
            self._obj, outdir, url_col=url_col, format=format, ops=ops, naming=naming, **kwargs
        )


def _register_pandas(pandas: ModuleType) -> None:
    pandas.api.extensions.register_dataframe_accessor("creevey")(CreeveyAccessor)


def _register_dask(_: ModuleType) -> None:
    from dask.dataframe.extensions import register_dataframe_accessor

    register_dataframe_accessor("creevey")(CreeveyAccessor)


def register() -> None:
    """Register ``creevey`` on pandas and dask DataFrames (done by ``import creevey_dask``).

    On each library as soon as the program imports it (at once if it already has), so
    that ``import creevey_dask`` imports neither.
    """
    when_imported("pandas", _register_pandas)
    when_imported("dask.dataframe", _register_dask)
