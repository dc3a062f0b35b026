"""The row context: what a stage records for the row its thread is running.

Stages add result columns in two steps. They *declare* them, as a ``result_columns``
attribute mapping column names to dtypes (so the engine can state the output schema up
front, as dask requires), and they *record* values while a row runs, with
:func:`record`. A value recorded before a stage raises is kept, so an error row can
still say, for example, which HTTP status it got.

A leaf module: it imports nothing of ours, so loaders, ops and writers
(:mod:`creevey_dask.image.imagefile`, :mod:`creevey_dask.ops`, ...) can record values without
importing the pipeline or the engine.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

_Factory = TypeVar("_Factory", bound=Callable[..., Any])

__all__ = [
    "Reporter",
    "check_op",
    "end_row",
    "makes_op",
    "on_row_end",
    "record",
    "report",
    "result_columns_of",
    "start_row",
]

_row = threading.local()


def record(**values: Any) -> None:
    """Record result-column values for the row that the current thread is processing.

    Call it from a loader, an op or a writer. Outside a running pipeline it does
    nothing, so stages stay usable as plain functions.

    Examples
    --------
    >>> record(http_status=200)  # outside a run: ignored
    """
    current = getattr(_row, "values", None)
    if current is not None:
        current.update(values)


def start_row() -> dict[str, Any]:
    """Start recording for a row on this thread; returns the dict its values go into."""
    values: dict[str, Any] = {}
    _row.values = values
    _row.at_end = []
    return values


def on_row_end(callback: Callable[[], None]) -> bool:
    """Call ``callback`` when the row running on this thread ends, however it ends.

    Returns False (and does nothing) outside a running row.
    """
    at_end = getattr(_row, "at_end", None)
    if at_end is None or getattr(_row, "values", None) is None:
        return False
    at_end.append(callback)
    return True


def end_row() -> None:
    """Stop recording on this thread (values recorded later are ignored); run the
    :func:`on_row_end` callbacks."""
    _row.values = None
    at_end, _row.at_end = getattr(_row, "at_end", None) or [], None
    for callback in reversed(at_end):
        callback()


def result_columns_of(stage: object) -> dict[str, Any]:
    """The result columns a stage declares (its ``result_columns`` attribute)."""
    declared = getattr(stage, "result_columns", None) or {}
    if not isinstance(declared, Mapping):
        raise TypeError(
            f"{stage!r}.result_columns must map column names to dtypes, "
            f"got {type(declared).__name__}"
        )
    return dict(declared)


class Reporter:
    """An op that measures the image into a result column and passes it through.

    Make one with :func:`report`. Reporters are plain picklable objects, so they
    travel to dask workers.
    """

    __slots__ = ("dtype", "func", "name")

    def __init__(self, name: str, func: Callable[[Any], Any], dtype: Any) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a reporter's name must be a non-empty str, got {name!r}")
        if not callable(func):
            raise TypeError(f"a reporter's func must be callable, got {func!r}")
        self.name = name
        self.func = func
        self.dtype = dtype

    @property
    def result_columns(self) -> dict[str, Any]:
        return {self.name: self.dtype}

    def __call__(self, image: Any) -> Any:
        record(**{self.name: self.func(image)})
        return image

    def __getstate__(self) -> tuple[str, Callable[[Any], Any], Any]:
        return (self.name, self.func, self.dtype)

    def __setstate__(self, state: tuple[str, Callable[[Any], Any], Any]) -> None:
        self.name, self.func, self.dtype = state

    def __repr__(self) -> str:
        return f"report({self.name!r}, {self.func!r}, {self.dtype!r})"


def makes_op(factory: _Factory) -> _Factory:
    """Mark ``factory`` as a function that makes an op (``ops.resize(...)``), not an op.

    :func:`check_op` then refuses it as an op with how to call it: ``ops=[ops.resize]``
    would otherwise make every row an error.
    """
    factory.makes_op = True  # type: ignore[attr-defined]
    return factory


def as_ops(ops: Any) -> list[Callable[[Any], Any]]:
    """The list of ops that ``ops=`` stands for: None is none, one callable is one.

    Each op is checked by :func:`check_op`; a str, bytes or non-iterable is refused.
    """
    if ops is None:
        return []
    if callable(ops):  # one op, as the original creevey allowed
        ops_list = [ops]
    elif isinstance(ops, (str, bytes)) or not isinstance(ops, Iterable):
        raise TypeError(f"ops must be a callable or a list of callables, got {ops!r}")
    else:
        ops_list = list(ops)
    for i, op in enumerate(ops_list):
        check_op(f"ops[{i}]", op)
    return ops_list


def check_op(what: str, op: Any) -> None:
    """Raise TypeError, up front, unless ``op`` can be called as ``op(image) -> image``.

    Refused: non-callables, functions marked with :func:`makes_op` (``ops.resize``
    instead of ``ops.resize(...)``), and functions whose signature cannot take exactly
    one image (no parameter, or more than one without a default).
    """
    if not callable(op):
        raise TypeError(f"{what} must be callable, got {op!r} ({type(op).__name__})")
    name = getattr(op, "__qualname__", repr(op))
    module = getattr(op, "__module__", "") or ""
    if getattr(op, "makes_op", False) is True:
        public = f"ops.{name}" if module == "creevey_dask.ops" else name
        raise TypeError(
            f"{what} is {public}, which makes an op rather than being one: call it with "
            f"its settings, e.g. {public}(...) (see help({public}))"
        )
    try:
        signature = inspect.signature(op)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    try:
        signature.bind(object())
    except TypeError:
        raise TypeError(
            f"{what} ({name}{signature}) must take one argument, the image, and return "
            "the new image"
        ) from None


@makes_op
def report(name: str, func: Callable[[Any], Any], dtype: Any = "object") -> Reporter:
    """Make an op that stores ``func(image)`` in the result column ``name``.

    Parameters
    ----------
    name : str
        The result column.
    func : callable
        Called with the image; its return value becomes the row's value.
    dtype : pandas dtype or str, default "object"
        The column's dtype, declared in the result's schema (e.g. ``"Int64"``,
        ``"float64"``, ``"string"``).

    Examples
    --------
    >>> from PIL import Image
    >>> width = report("width", lambda im: im.width, "Int64")
    >>> width(Image.new("RGB", (4, 3))).size  # the image passes through
    (4, 3)
    """
    return Reporter(name, func, dtype)
