"""The run knobs, in one small frozen object: :class:`RunOptions`.

Every entry point that runs a pipeline (:meth:`~creevey_dask.Pipeline.run`,
:func:`~creevey_dask.download`, :func:`~creevey_dask.resize.resize`, the accessor, the
original creevey's functions) takes ``options=RunOptions(...)`` and keyword shortcuts
for the few fields typed every day (``n_jobs=``, ``skip_existing=``, ``progress=``; see
each function). A shortcut that is given (not None) overrides the field;
:func:`run_options` applies that rule, once, at the entry point, and the layers below
pass the one object along. The other option groups are objects too, each defined once:
``HttpOptions`` (``http_options=``), ``ShardOptions`` (``output_format=``) and
``FilterOptions`` (``filters=``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "DEFAULT_RESULT_SUFFIX",
    "KEEP_STATUSES",
    "LOCAL_JOBS",
    "NETWORK_JOBS",
    "PARALLEL_STRATEGIES",
    "RunOptions",
    "check_parallel_strategy",
    "run_options",
]

#: The allowed values of ``parallel_strategy``: ``"auto"`` (the default: worker processes
#: where they win, else threads; see :class:`~creevey_dask.Pipeline`) or one of dask's
#: local schedulers.
PARALLEL_STRATEGIES = ("auto", "threads", "processes")


def check_parallel_strategy(value: object) -> None:
    """Refuse a ``parallel_strategy`` that is not one of :data:`PARALLEL_STRATEGIES`."""
    if value not in PARALLEL_STRATEGIES:
        raise ValueError(f"parallel_strategy {value!r} is not one of {list(PARALLEL_STRATEGIES)}")


_Options = TypeVar("_Options", bound="DataclassInstance")

#: Rows in flight per partition by default when the sources are local files: dask runs
#: a partition per core, so twice the cores in all; more threads in one process only
#: contend for the cores and the GIL (measured in ``benchmarks/bench_resize.py``).
LOCAL_JOBS = 2
#: Rows in flight per partition by default when the sources are URLs or remote files
#: (network-bound): downloads, and reads from object stores.
NETWORK_JOBS = 16

#: What a stage's result column (``width``, ``bytes``, ...) is named after when the
#: input already has a column of its name: the input column is kept as it is, and the
#: result's is ``width_result``.
DEFAULT_RESULT_SUFFIX = "_result"

#: The statuses whose rows an ImageNet-style tree keeps by default: those whose file
#: exists (written now, or by an earlier run); the one default of the functions, the
#: accessor and the CLI.
KEEP_STATUSES = ("ok", "skipped")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run is run: threads, skipping, progress, partitions, storage, scheduler.

    Immutable and picklable; ``options.replace(n_jobs=4)`` gives a changed copy.

    Parameters
    ----------
    n_jobs : int, optional
        Rows in flight at once per partition (threads). By default 2 for local files
        (:data:`LOCAL_JOBS`; a partition runs per core) and 16 for URLs and remote files
        (:data:`NETWORK_JOBS`, network-bound), chosen from a partition's first source.
    skip_existing : bool, default True
        Rows whose output already exists are ``"skipped"``: nothing loaded or written.
    progress : bool, default True
        Show a progress bar of rows on stderr (a widget in a notebook with ipywidgets; on a
        cluster too) and end with a one-line summary; a failing display never stops a run.
    npartitions : int, optional
        For in-memory input, how many dask partitions (tasks) to cut it into.
    storage_options : mapping, optional
        fsspec options for reading and writing (e.g. s3fs's ``endpoint_url``).
    parallel_strategy : {"auto", "threads", "processes"}, optional
        How in-memory input runs when no distributed Client is active; by default the
        pipeline's (``Pipeline(parallel_strategy=...)``, itself ``"auto"``: a pool
        of worker processes where they win, else threads; see :class:`Pipeline`).
    result_suffix : str, default "_result"
        Input columns named like a result column that a stage adds (``width`` and
        ``height`` of a LAION table, ``bytes``, ...) are kept as they are; the run's
        column is then named with this suffix (``width_result``). ``outpath``,
        ``status``, ``error`` and ``error_type`` are never renamed: an input with one of
        them must be a result table of an earlier run, or be renamed.
    retry_errors : bool, default True
        Sharded outputs: with ``skip_existing``, a rerun retries the rows whose latest
        record in the shards is an error; False reports them from their records instead.

    Examples
    --------
    >>> opts = RunOptions(n_jobs=4, progress=False)
    >>> opts.replace(skip_existing=False).skip_existing
    False
    >>> RunOptions(n_jobs=0)
    Traceback (most recent call last):
    ...
    ValueError: n_jobs must be at least 1 (a positive int), got 0
    """

    n_jobs: int | None = None
    skip_existing: bool = True
    progress: bool = True
    npartitions: int | None = None
    storage_options: Mapping[str, Any] | None = None
    parallel_strategy: str | None = None
    result_suffix: str = DEFAULT_RESULT_SUFFIX
    retry_errors: bool = True

    def __post_init__(self) -> None:
        for name in ("n_jobs", "npartitions"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be a positive int, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1 (a positive int), got {value}")
        for name in ("skip_existing", "retry_errors", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.result_suffix, str) or not self.result_suffix.strip():
            raise ValueError(
                f"result_suffix must be a non-empty str such as '_result', got "
                f"{self.result_suffix!r}"
            )
        if self.storage_options is not None:
            if not isinstance(self.storage_options, Mapping):
                raise TypeError(f"storage_options must be a mapping, got {self.storage_options!r}")
            object.__setattr__(self, "storage_options", dict(self.storage_options))
        if self.parallel_strategy is not None:
            check_parallel_strategy(self.parallel_strategy)

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` applied (field names as in the constructor)."""
        return replace_fields(self, changes)


def replace_fields(options: _Options, changes: Mapping[str, Any]) -> _Options:
    """``dataclasses.replace(options, **changes)``, refusing names that are not its fields.

    The one rule behind :meth:`RunOptions.replace` and ``HttpOptions.replace``.
    """
    names = [f.name for f in dataclasses.fields(options)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise TypeError(
            f"{type(options).__name__} has no option(s) {unknown}; the options are {names}"
        )
    return dataclasses.replace(options, **changes)


def run_options(options: RunOptions | None = None, /, **shortcuts: Any) -> RunOptions:
    """``options`` (default ``RunOptions()``) with the shortcuts that are not None applied.

    Examples
    --------
    >>> run_options(RunOptions(n_jobs=2), n_jobs=None, progress=False)
    RunOptions(n_jobs=2, skip_existing=True, progress=False, npartitions=None, storage_options=None, parallel_strategy=None, result_suffix='_result', retry_errors=True)
    """  # noqa: E501
    if options is None:
        options = RunOptions()
    elif not isinstance(options, RunOptions):
        hint = ""
        if type(options).__name__ == "HttpOptions":
            hint = "; HTTP settings go to http_options="
        raise TypeError(f"options must be a creevey_dask.RunOptions, got {options!r}{hint}")
    given = {name: value for name, value in shortcuts.items() if value is not None}
    return options.replace(**given) if given else options
