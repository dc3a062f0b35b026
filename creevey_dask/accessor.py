"""The ``creevey`` accessor on pandas and dask DataFrames and Series.

Registered by ``import creevey_dask``. The accessor is thin glue: each method calls a
library function with the frame and returns a new frame. It keeps no state and never
computes, because pandas and dask may construct it several times per attribute access.
On a Series of URLs or paths (``urls.creevey.download(...)``) the Series becomes the
source column of a one-column frame, named after the Series (or ``"url"``/``"path"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._keywords import public_keywords
from ._lazy import when_imported
from .exceptions import require_columns
from .options import KEEP_STATUSES

if TYPE_CHECKING:  # imported by the methods that use them, so that import stays cheap
    import dask.dataframe as dd
    import pandas as pd
    from PIL import Image

    from .engine.pipeline import Pipeline
    from .options import RunOptions
    from .sources.http import HttpOptions

#: ``creevey_dask.image.imagefile.DEFAULT_MAX_PIXELS``, spelled here so that importing the
#: accessor does not import Pillow (tests/test_accessor.py checks that they agree).
_DEFAULT_MAX_PIXELS = 89_478_485
#: ``creevey_dask.duplicates.DEFAULT_MAX_DISTANCE``, for the same reason (numpy, pandas).
_DEFAULT_MAX_DISTANCE = 4

__all__ = ["CreeveyAccessor", "CreeveySeriesAccessor"]


class _Runs:
    """The methods that run a pipeline over a source column: download and resize."""

    _obj: Any

    def _source(self, col: str | None, default: str) -> tuple[Any, str]:
        """The frame to run on and its source column (``col``, else ``default``)."""
        col = default if col is None else col
        require_columns(self._obj.columns, **{f"{default}_col": col})
        return self._obj, col

    @public_keywords("df.creevey.download")
    def download(
        self,
        outdir: str | None,
        url_col: str | None = None,
        format: str = "jpeg",
        ops: Any = None,
        naming: str = "url",
        *,
        outpath_func: Callable[[str], str] | None = None,
        quality: int | None = 95,
        timeout: float | tuple[float, float] | None = None,
        retries: int | None = None,
        per_host_limit: int | None = None,
        user_agent: str | None = None,
        http_options: HttpOptions | None = None,
        output_format: str = "files",
        shard_size: int = 1000,
        carry_cols: Iterable[str] | None = None,
        caption_col: str | None = None,
        min_image_size: int | None = None,
        max_image_area: int | None = None,
        max_aspect_ratio: float | None = None,
        compute_hash: str | None = None,
        verify_hash: tuple[str, str] | None = None,
        n_jobs: int | None = None,
        skip_existing: bool | None = None,
        progress: bool | None = None,
        storage_options: Mapping[str, Any] | None = None,
        parallel_strategy: str | None = None,
        npartitions: int | None = None,
        options: RunOptions | None = None,
    ) -> pd.DataFrame | dd.DataFrame:
        """Download the images at ``url_col`` (default ``"url"``) into ``outdir``.

        The parameters are those of :func:`creevey_dask.download`, except that the
        files are JPEGs at quality 95 unless ``format=`` (``"png"``, ``"webp"``,
        ``"original"``) or ``quality=`` say otherwise. Returns the frame
        with the result columns (``outpath``, ``status``, ``error``, ``http_status``,
        ``bytes``, ``attempts``, ``width``, ``height``): pandas for pandas, a lazy dask
        frame for dask.
        """
        from .download import download

        frame, url_col = self._source(url_col, "url")
        return download(
            frame,
            outdir,
            url_col,
            format,
            ops,
            naming,
            outpath_func=outpath_func,
            quality=quality,
            timeout=timeout,
            retries=retries,
            per_host_limit=per_host_limit,
            user_agent=user_agent,
            http_options=http_options,
            output_format=output_format,
            shard_size=shard_size,
            carry_cols=carry_cols,
            caption_col=caption_col,
            min_image_size=min_image_size,
            max_image_area=max_image_area,
            max_aspect_ratio=max_aspect_ratio,
            compute_hash=compute_hash,
            verify_hash=verify_hash,
            n_jobs=n_jobs,
            skip_existing=skip_existing,
            progress=progress,
            storage_options=storage_options,
            parallel_strategy=parallel_strategy,
            npartitions=npartitions,
            options=options,
        )

    @public_keywords("df.creevey.resize")
    def resize(
        self,
        outdir: str,
        path_col: str | None = None,
        *,
        shape: Sequence[int] | int | None = None,
        min_dim: int | None = None,
        max_dim: int | None = None,
        mode: str | None = None,
        only_shrink: bool = False,
        resample: str = "lanczos",
        fill: Any = None,
        reducing_gap: float | None = 2.0,
        format: str | None = None,
        quality: int | None = None,
        ops: Any = None,
        report: Iterable[str] = (),
        outpath_func: Callable[[Any], str] | None = None,
        max_pixels: int | None = _DEFAULT_MAX_PIXELS,
        n_jobs: int | None = None,
        skip_existing: bool | None = None,
        progress: bool | None = None,
        storage_options: Mapping[str, Any] | None = None,
        parallel_strategy: str | None = None,
        npartitions: int | None = None,
        output_format: str = "files",
        shard_size: int = 1000,
        carry_cols: Iterable[str] | None = None,
        caption_col: str | None = None,
        min_image_size: int | None = None,
        max_image_area: int | None = None,
        max_aspect_ratio: float | None = None,
        compute_hash: str | None = None,
        verify_hash: tuple[str, str] | None = None,
        options: RunOptions | None = None,
    ) -> pd.DataFrame | dd.DataFrame:
        """Resize the images in ``path_col`` (default ``"path"``) into ``outdir``.

        Give one of ``shape=(height, width)``, ``min_dim=`` or ``max_dim=``; the
        parameters are those of :func:`creevey_dask.resize.resize`. To resize the
        files of a download, pass ``path_col="outpath"``: that column is kept as
        ``inpath``.

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

        frame, path_col = self._source(path_col, "path")
        return resize(
            frame,
            outdir,
            path_col,
            shape=shape,
            min_dim=min_dim,
            max_dim=max_dim,
            mode=mode,
            only_shrink=only_shrink,
            resample=resample,
            fill=fill,
            reducing_gap=reducing_gap,
            format=format,
            quality=quality,
            ops=ops,
            report=report,
            outpath_func=outpath_func,
            max_pixels=max_pixels,
            n_jobs=n_jobs,
            skip_existing=skip_existing,
            progress=progress,
            storage_options=storage_options,
            parallel_strategy=parallel_strategy,
            npartitions=npartitions,
            output_format=output_format,
            shard_size=shard_size,
            carry_cols=carry_cols,
            caption_col=caption_col,
            min_image_size=min_image_size,
            max_image_area=max_image_area,
            max_aspect_ratio=max_aspect_ratio,
            compute_hash=compute_hash,
            verify_hash=verify_hash,
            options=options,
        )


class CreeveyAccessor(_Runs):
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

    @public_keywords("df.creevey.run")
    def run(
        self,
        pipeline: Pipeline,
        inpath_col: str,
        outpath_func: Callable[[Any], str],
        n_jobs: int | None = None,
        skip_existing: bool | None = None,
        *,
        progress: bool | None = None,
        npartitions: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        options: RunOptions | None = None,
    ) -> pd.DataFrame | dd.DataFrame:
        """Run ``pipeline`` on the sources in ``inpath_col``; see :meth:`Pipeline.run`.

        Returns the frame with the result columns; a pandas frame for a pandas
        frame, a lazy dask frame for a dask frame.
        """
        require_columns(self._obj.columns, inpath_col=inpath_col)
        return pipeline.run(
            self._obj,
            outpath_func,
            n_jobs,
            skip_existing,
            inpath_col,
            progress=progress,
            npartitions=npartitions,
            storage_options=storage_options,
            options=options,
        )

    # ---- splits (creevey_dask.layout.split) and ImageNet-style folders (layout.imagenet) ----

    @public_keywords("df.creevey.split")
    def split(
        self,
        valid_size: int | float,
        groupby: str | None = None,
        stratify: str | None = None,
        test_size: int | float | None = None,
        random_state: Any = None,
    ) -> pd.DataFrame | dd.DataFrame:
        """Add a ``split`` column (train/valid/test); see :func:`creevey_dask.split`.

        Rows sharing a ``groupby`` value land in one split; the same ``random_state``
        gives the same answer for pandas and any partitioning of a dask frame. For a
        split where no copy of an image crosses sides, group on the duplicate groups:
        ``df.creevey.duplicates().creevey.split(valid_size, groupby="dup_group")``
        (see :meth:`duplicates` and :meth:`leaks`).
        """
        from .layout.split import split as _split

        return _split(
            self._obj,
            valid_size,
            groupby=groupby,
            stratify=stratify,
            test_size=test_size,
            random_state=random_state,
        )

    # ---- duplicate groups and leak checks (creevey_dask.duplicates) ----

    def duplicates(
        self,
        hash_col: str | None = "dhash",
        max_distance: int = _DEFAULT_MAX_DISTANCE,
        exact_col: str | None = None,
        *,
        width_col: str | None = None,
        height_col: str | None = None,
    ) -> pd.DataFrame | dd.DataFrame:
        """Add ``dup_group`` and ``dup_keep``; see :func:`creevey_dask.duplicates`.

        ``df[df.dup_keep]`` is the deduplicated table, and ``split(...,
        groupby="dup_group")`` keeps every group of copies on one side.
        """
        from .duplicates import duplicates

        return duplicates(
            self._obj,
            hash_col=hash_col,
            max_distance=max_distance,
            exact_col=exact_col,
            width_col=width_col,
            height_col=height_col,
        )

    def leaks(
        self,
        split_col: str = "split",
        hash_col: str | None = "dhash",
        max_distance: int = _DEFAULT_MAX_DISTANCE,
        exact_col: str | None = None,
    ) -> pd.DataFrame:
        """The duplicate pairs whose rows sit in different splits (empty: no leak);
        see :func:`creevey_dask.leaks`."""
        from .duplicates import leaks

        return leaks(
            self._obj,
            split_col=split_col,
            hash_col=hash_col,
            max_distance=max_distance,
            exact_col=exact_col,
        )

    @public_keywords("df.creevey.imagenet_symlinks")
    def imagenet_symlinks(
        self,
        outdir: str,
        *,
        label_col: str,
        valid_size: int | float,
        path_col: str = "outpath",
        groupby: str | None = None,
        stratify: str | None = None,
        test_size: int | float | None = None,
        random_state: Any = None,
        link: str = "symlink",
        relative: bool = True,
        keep_status: Sequence[str] | None = KEEP_STATUSES,
        storage_options: Mapping[str, Any] | None = None,
        replace: bool = False,
    ) -> pd.DataFrame:
        """Lay the result table's images out as ``outdir/{train,valid}/<label>/``.

        Rows whose ``status`` is not in ``keep_status`` (by default: neither ``"ok"``
        nor ``"skipped"``, so a rerun's rows count) are left out and counted in the
        log; ``keep_status=None`` keeps every row. See
        :func:`creevey_dask.imagenet_symlinks` for the rest; returns the manifest.
        """
        from .layout.imagenet import imagenet_symlinks

        return imagenet_symlinks(
            self._obj,
            outdir,
            label_col=label_col,
            valid_size=valid_size,
            path_col=path_col,
            groupby=groupby,
            stratify=stratify,
            test_size=test_size,
            random_state=random_state,
            link=link,
            relative=relative,
            keep_status=keep_status,
            storage_options=storage_options,
            replace=replace,
        )

    # ---- visual reports (creevey_dask.reports.sheets) ----

    @public_keywords("df.creevey.contact_sheet")
    def contact_sheet(
        self,
        path_col: str = "outpath",
        caption_cols: Any = ("status",),
        n: int = 36,
        ncols: int = 6,
        thumb_size: int = 128,
        random_state: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        font: Any = None,
        *,
        save_to: str | None = None,
    ) -> Image.Image:
        """A grid of captioned thumbnails of a seeded sample of rows.

        See :func:`creevey_dask.reports.sheets.contact_sheet`; a dask frame is computed once,
        each partition reduced to its sample candidates.
        """
        from .reports.sheets import contact_sheet as _contact_sheet

        return _contact_sheet(
            self._obj,
            path_col=path_col,
            caption_cols=caption_cols,
            n=n,
            ncols=ncols,
            thumb_size=thumb_size,
            random_state=random_state,
            storage_options=storage_options,
            font=font,
            save_to=save_to,
        )

    @public_keywords("df.creevey.summary_figure")
    def summary_figure(
        self,
        *,
        top_errors: int = 8,
        bins: int = 20,
        columns: Sequence[str] | None = None,
        size: tuple[int, int] = (960, 640),
        font: Any = None,
        title: str | None = None,
        save_to: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> Image.Image:
        """Status counts, error kinds and size histograms drawn as one image.

        See :func:`creevey_dask.reports.sheets.summary_figure`.
        """
        from .reports.sheets import summary_figure as _summary_figure

        return _summary_figure(
            self._obj,
            top_errors=top_errors,
            bins=bins,
            columns=columns,
            size=size,
            font=font,
            title=title,
            save_to=save_to,
            storage_options=storage_options,
        )

    @public_keywords("df.creevey.summary_table")
    def summary_table(
        self, *, top_errors: int = 8, bins: int = 20, columns: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """The numbers behind :meth:`summary_figure`; see
        :func:`creevey_dask.reports.sheets.summary_table`."""
        from .reports.sheets import summary_table as _summary_table

        return _summary_table(self._obj, top_errors=top_errors, bins=bins, columns=columns)


class CreeveySeriesAccessor(_Runs):
    """Pipelines over a Series of URLs or paths: ``urls.creevey.download(...)``.

    The Series becomes a one-column frame, its column named after the Series or, for
    an unnamed Series, ``"url"`` (download) or ``"path"`` (resize, run).

    Examples
    --------
    >>> import pandas as pd, creevey_dask
    >>> urls = pd.Series(["http://127.0.0.1:9/a.jpg"], name="link")
    >>> urls.creevey.series is urls
    True
    """

    def __init__(self, obj: pd.Series | dd.Series) -> None:
        # pandas and dask construct it from their Series only (see register)
        self._obj = obj

    @property
    def series(self) -> pd.Series | dd.Series:
        """The Series this accessor was reached from."""
        return self._obj

    def _source(self, col: str | None, default: str) -> tuple[Any, str]:
        name = self._obj.name if self._obj.name is not None else default
        if col is not None and col != name:
            raise ValueError(
                f"this Series is the source column {name!r}; drop {default}_col={col!r} "
                "or rename the Series"
            )
        return self._obj.to_frame(name=name), name

    @public_keywords("series.creevey.run")
    def run(
        self,
        pipeline: Pipeline,
        outpath_func: Callable[[Any], str],
        n_jobs: int | None = None,
        skip_existing: bool | None = None,
        *,
        progress: bool | None = None,
        npartitions: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        options: RunOptions | None = None,
    ) -> pd.DataFrame | dd.DataFrame:
        """Run ``pipeline`` on the sources in this Series; see :meth:`Pipeline.run`."""
        frame, col = self._source(None, "path")
        return pipeline.run(
            frame,
            outpath_func,
            n_jobs,
            skip_existing,
            col,
            progress=progress,
            npartitions=npartitions,
            storage_options=storage_options,
            options=options,
        )


def _register_pandas(pandas: ModuleType) -> None:
    pandas.api.extensions.register_dataframe_accessor("creevey")(CreeveyAccessor)
    pandas.api.extensions.register_series_accessor("creevey")(CreeveySeriesAccessor)


def _register_dask(_: ModuleType) -> None:
    from dask.dataframe.extensions import register_dataframe_accessor, register_series_accessor

    register_dataframe_accessor("creevey")(CreeveyAccessor)
    register_series_accessor("creevey")(CreeveySeriesAccessor)


def register() -> None:
    """Register ``creevey`` on pandas and dask DataFrames and Series (done by
    ``import creevey_dask``).

    On each library as soon as the program imports it (at once if it already has), so
    that ``import creevey_dask`` imports neither.
    """
    when_imported("pandas", _register_pandas)
    when_imported("dask.dataframe", _register_dask)
