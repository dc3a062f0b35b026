"""The ``creevey`` accessor on pandas and dask DataFrames and Series.

Registered by ``import creevey_dask``. The accessor is thin glue: each method is a
library function called with the frame, and takes that function's parameters and
docstring (:class:`_FrameMethod`, as dask derives its methods), so no parameter list is
written twice. It keeps no state and never
computes, because pandas and dask may construct it several times per attribute access.
On a Series of URLs or paths (``urls.creevey.download(...)``) the Series becomes the
source column of a one-column frame, named after the Series (or ``"url"``/``"path"``).
"""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._keywords import check_keywords
from ._lazy import when_imported
from .exceptions import require_columns

if TYPE_CHECKING:  # imported by the methods that use them, so that import stays cheap
    import dask.dataframe as dd
    import pandas as pd


__all__ = ["CreeveyAccessor", "CreeveySeriesAccessor"]


def _bind(
    signature: inspect.Signature, public_name: str, args: Any, kwargs: Any
) -> inspect.BoundArguments:
    """``signature.bind(*args, **kwargs)``; a wrong call's TypeError names ``public_name``
    (Python's own names no function)."""
    try:
        return signature.bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"{public_name}() {err}") from None


def _without_first_parameter(doc: str) -> str:
    """A numpydoc docstring without the entry of its first parameter (the frame)."""
    lines = doc.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}:
            first = i + 2
            entry_indent = len(lines[first]) - len(lines[first].lstrip())
            end = first + 1
            while end < len(lines) and (
                not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > entry_indent
            ):
                end += 1
            return "\n".join([*lines[:first], *lines[end:]])
    return doc


class _BuiltMethod:
    """An accessor method built on first use, once per accessor class (``_build``)."""

    def __init__(self) -> None:
        self._built: dict[type, Callable[..., Any]] = {}

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        cls = objtype if objtype is not None else type(obj)
        method = self._built.get(cls)
        if method is None:
            method = self._built[cls] = self._build(cls)
        return method if obj is None else types.MethodType(method, obj)

    def _build(self, cls: type) -> Callable[..., Any]:
        raise NotImplementedError


class _FrameMethod(_BuiltMethod):
    """An accessor method made from the library function it calls, as dask derives its
    methods: the function's parameters after the first (the frame), and its docstring.

    The function is imported on first use of the method (``import creevey_dask`` stays
    cheap). ``source`` names the function's source-column parameter and the column a
    Series becomes; a DataFrame's default is the function's own.
    """

    def __init__(self, module: str, name: str, source: tuple[str, str] | None = None) -> None:
        self._module = module
        self._name = name
        self._source = source
        self._attr = name
        super().__init__()

    def __set_name__(self, owner: type, attr: str) -> None:
        self._attr = attr

    def function(self) -> Callable[..., Any]:
        """The library function this method calls."""
        module = importlib.import_module(f"creevey_dask.{self._module}")
        return getattr(module, self._name)  # type: ignore[no-any-return]

    def _build(self, cls: type) -> Callable[..., Any]:
        func = self.function()
        signature = inspect.signature(func)
        parameters = list(signature.parameters.values())[1:]
        owner = "series" if issubclass(cls, CreeveySeriesAccessor) else "df"
        public_name = f"{owner}.creevey.{self._attr}"
        known = frozenset(
            p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY
        )
        moved = getattr(func, "moved_keywords", None)
        bare = signature.replace(parameters=parameters)
        source = self._source

        def method(accessor: Any, /, *args: Any, **kwargs: Any) -> Any:
            check_keywords(public_name, kwargs, known, moved)
            bound = _bind(bare, public_name, args, kwargs)
            if source is None:
                return func(accessor._obj, *args, **kwargs)
            param, default = source
            frame, col = accessor._source(bound.arguments.get(param), default)
            bound.arguments[param] = col
            return func(frame, *bound.args, **bound.kwargs)

        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        method.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[self_param, *parameters]
        )
        method.__name__ = self._attr
        method.__qualname__ = f"{cls.__name__}.{self._attr}"
        method.__module__ = __name__
        package = importlib.import_module("creevey_dask")
        exported = getattr(package, self._name, None) is func  # else its module's name
        target = self._name if exported else f"{self._module}.{self._name}"
        intro = f"``{public_name}(...)`` is :func:`creevey_dask.{target}` called on this " + (
            "Series (a one-column frame)." if owner == "series" else "frame."
        )
        method.__doc__ = (
            intro + "\n\n" + _without_first_parameter(inspect.cleandoc(func.__doc__ or ""))
        )
        return method


class _RunMethod(_BuiltMethod):
    """``run``: :meth:`Pipeline.run` on this frame (or Series), with its parameters.

    ``pipeline`` comes first, then, on a frame, ``inpath_col`` (required: the source
    column); every other parameter, and the docstring, is :meth:`Pipeline.run`'s, read
    when the method is first used (so that ``import creevey_dask`` stays cheap).
    """

    def _build(self, cls: type) -> Callable[..., Any]:
        from .engine.pipeline import Pipeline

        base = inspect.signature(Pipeline.run)
        given = dict(base.parameters)
        on_series = issubclass(cls, CreeveySeriesAccessor)
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        head = [inspect.Parameter("pipeline", kind, annotation="Pipeline")]
        if not on_series:
            head.append(
                given["inpath_col"].replace(default=inspect.Parameter.empty, annotation="str")
            )
        rest = [p for n, p in given.items() if n not in ("self", "inpaths", "inpath_col")]
        signature = base.replace(parameters=[*head, *rest])
        public_name = f"{'series' if on_series else 'df'}.creevey.run"
        moved = dict(getattr(Pipeline.run, "moved_keywords", {}))
        if on_series:
            moved["inpath_col"] = "this Series is the source column (rename it to name it)"

        def method(accessor: Any, /, *args: Any, **kwargs: Any) -> Any:
            check_keywords(public_name, kwargs, signature.parameters, moved)
            arguments = dict(_bind(signature, public_name, args, kwargs).arguments)
            pipeline = arguments.pop("pipeline")
            if not isinstance(pipeline, Pipeline):
                raise TypeError(f"pipeline must be a creevey_dask.Pipeline, got {pipeline!r}")
            if on_series:
                frame, col = accessor._source(None, "path")
            else:
                col = arguments.pop("inpath_col")
                require_columns(accessor._obj.columns, inpath_col=col)
                frame = accessor._obj
            return pipeline.run(frame, inpath_col=col, **arguments)

        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        method.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[self_param, *signature.parameters.values()]
        )
        method.__name__ = "run"
        method.__qualname__ = f"{cls.__name__}.run"
        method.__module__ = __name__
        method.__doc__ = (
            f"``{public_name}(pipeline, ...)`` is :meth:`creevey_dask.Pipeline.run` of "
            f"``pipeline`` on this {'Series' if on_series else 'frame'}.\n\n"
            + _without_first_parameter(inspect.cleandoc(Pipeline.run.__doc__ or ""))
        )
        return method


class _Runs:
    """The methods that run a pipeline over a source column: download and resize."""

    _obj: Any

    def _source(self, col: str | None, default: str) -> tuple[Any, str]:
        """The frame to run on and its source column (``col``, else ``default``)."""
        col = default if col is None else col
        require_columns(self._obj.columns, **{f"{default}_col": col})
        return self._obj, col

    download = _FrameMethod("download", "download", source=("url_col", "url"))
    resize = _FrameMethod("resize", "resize", source=("path_col", "path"))


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

    run = _RunMethod()

    # ---- splits, ImageNet-style folders, duplicate groups and visual reports ----
    split = _FrameMethod("layout.split", "split")
    imagenet_symlinks = _FrameMethod("layout.imagenet", "imagenet_symlinks")
    duplicates = _FrameMethod("duplicates", "duplicates")
    leaks = _FrameMethod("duplicates", "leaks")
    contact_sheet = _FrameMethod("reports.sheets", "contact_sheet")
    summary_figure = _FrameMethod("reports.summary", "summary_figure")
    summary_table = _FrameMethod("reports.summary", "summary_table")


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

    run = _RunMethod()


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
