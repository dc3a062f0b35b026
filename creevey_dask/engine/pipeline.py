"""The pipeline contract: load → ops → write, and reporters that add result columns.

A :class:`Pipeline` is a recipe for one row: ``load_func(source)`` gives an image,
each op maps ``image → image``, and ``write_func(image, outpath)`` stores the result.
The engine (:mod:`creevey_dask.engine.runner`) runs the recipe over every row of a pandas or
dask DataFrame and records what happened.

Stages add result columns: they declare them (a ``result_columns`` attribute) and
record values while a row runs (:func:`~creevey_dask.engine.rows.record`); see
:mod:`creevey_dask.engine.rows`, which also holds :class:`Reporter` and :func:`report`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._keywords import moved_to, public_keywords
from ..image.encode import write_image
from ..options import PARALLEL_STRATEGIES, RunOptions, check_parallel_strategy, run_options
from ..sinks.shard_options import ShardOptions, shard_options
from ..sinks.shards import Sink
from .rows import Reporter, as_ops, record, report, result_columns_of
from .runner import Inpaths, run_pipeline

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MOVED_RUN_KEYWORDS",
    "PARALLEL_STRATEGIES",
    "Pipeline",
    "Reporter",
    "record",
    "report",
    "result_columns_of",
]


#: Where the old keywords of a run went: the fields of RunOptions and ShardOptions.
MOVED_RUN_KEYWORDS = {
    **moved_to("options", RunOptions),
    **moved_to("output_format", ShardOptions, exclude=("format",)),
}


def _check_callable(what: str, value: object) -> None:
    if not callable(value):
        raise TypeError(f"{what} must be callable, got {value!r} ({type(value).__name__})")


class Pipeline:
    """Load each source, apply ops, write the result; run over a table of sources.

    Parameters
    ----------
    load_func : callable
        ``load_func(source) -> image``. Raise to mark the row as an error.
    ops : callable or sequence of callables, optional
        Each ``op(image) -> image``, applied in order; a single callable is a one-op
        list. Reporters (see :func:`report`) add result columns.
    write_func : callable, optional
        ``write_func(image, path)``: write ``image`` as a file at ``path``. Defaults to
        :func:`creevey_dask.image.imagefile.write_image`, which picks the format from the
        extension. See *Writers* below.
    parallel_strategy : {"auto", "threads", "processes"}, default "auto"
        How in-memory input runs when no ``dask.distributed`` Client is active.
        ``"auto"``: the scheduler of the user's ``dask.config`` if one is set, else a
        pool of worker processes (a process per core, each with its row threads;
        forked for the run, stopped at its end) for a table of at least
        :data:`~creevey_dask.engine.processes.MIN_PROCESS_ROWS` rows on a machine with
        several cores, on Linux, when no output is ``memory://`` and the pipeline
        pickles; dask's threaded scheduler in this process otherwise. ``"threads"`` and
        ``"processes"`` (the same pool) force one. Dask input stays lazy: it runs
        on whatever scheduler computes it. See ``docs/performance.md``.

    Notes
    -----
    **Writers.** The engine owns the commit of every output, whoever writes it. A
    ``write_func`` is called with a *temporary local path* beside the output (in a
    scratch folder for remote outputs) that keeps the output's extension, so
    ``image.save(path)`` still infers the format; it writes that path and returns. The
    engine then commits the file: on a local disk an exclusive link (or rename) to the
    outpath, elsewhere one upload, with the proof of its source on the output itself
    (:mod:`creevey_dask.storage.provenance`). A writer that raises, or is interrupted, leaves
    nothing at the outpath and the row is an error naming the cause; a writer that
    returns without writing the path gives an ``ok`` row with no ``outpath`` (a run kept
    for its reporters). A writer with an ``encode_for(image, outpath) -> (bytes,
    format)`` method (the library's :class:`~creevey_dask.ImageWriter`) hands over its
    bytes instead, which the engine commits in one write or PUT. Writers never need
    :mod:`creevey_dask.storage`'s atomic helpers; those stay for code outside a run.

    **Processes.** A ``load_func`` with limits per process (the HTTP loader's per-host
    limits) has a ``for_processes(n, exact=)`` method giving the loader each of ``n``
    worker processes runs, so that ``n`` of them together keep the limits (or None when
    they cannot, ``exact=True``, and the run then stays on threads).

    Examples
    --------
    >>> from creevey_dask import Pipeline, load_image
    >>> from creevey_dask import ops
    >>> pipeline = Pipeline(load_image, ops=[ops.grayscale])
    """

    def __init__(
        self,
        load_func: Callable[[Any], Any],
        ops: Iterable[Callable[[Any], Any]] | None = None,
        write_func: Callable[[Any, str], Any] | None = None,
        parallel_strategy: str = "auto",
    ) -> None:
        _check_callable("load_func", load_func)
        ops_list = as_ops(ops)
        write_func = write_image if write_func is None else write_func
        _check_callable("write_func", write_func)
        check_parallel_strategy(parallel_strategy)
        self.load_func = load_func
        self.ops = ops_list
        self.write_func = write_func
        self.parallel_strategy = parallel_strategy

    @property
    def result_columns(self) -> dict[str, Any]:
        """The columns the stages declare, in stage order, mapped to their dtypes."""
        columns: dict[str, Any] = {}
        owners: dict[str, object] = {}
        for stage in [self.load_func, *self.ops, self.write_func]:
            for name, dtype in result_columns_of(stage).items():
                if name in columns and columns[name] != dtype:
                    raise ValueError(
                        f"result column {name!r} is declared as {columns[name]!r} by "
                        f"{owners[name]!r} and as {dtype!r} by {stage!r}; give one another name"
                    )
                columns[name] = dtype
                owners[name] = stage
        return columns

    def load(self, source: Any) -> Any:
        """Load ``source`` with ``load_func``, passing it a reduced-decode hint if it takes one.

        A loader that declares ``accepts_draft = True`` is called as
        ``load_func(source, draft=hint)``, where ``hint`` is the first op's
        ``draft_size`` method (or None): ``draft_size((width, height)) -> (w, h) | None``
        gives the smallest size that op needs from an input of that size, so the loader
        may decode a JPEG at reduced scale (``Image.draft``) without losing quality.
        """
        if getattr(self.load_func, "accepts_draft", False):
            first = self.ops[0] if self.ops else None
            draft_aware: Callable[..., Any] = self.load_func
            return draft_aware(source, draft=getattr(first, "draft_size", None))
        return self.load_func(source)

    @public_keywords("Pipeline.run", moved=MOVED_RUN_KEYWORDS)
    def run(
        self,
        inpaths: Inpaths,
        outpath_func: Callable[[Any], str] | str,
        n_jobs: int | None = None,
        skip_existing: bool | None = None,
        inpath_col: str | None = None,
        *,
        output_format: str | ShardOptions = "files",
        progress: bool | None = None,
        options: RunOptions | None = None,
    ) -> pd.DataFrame | Any:
        """Run the pipeline over every source and return the result table.

        The one way a run starts: :func:`~creevey_dask.download`,
        :func:`~creevey_dask.resize.resize` and the accessor build a pipeline and call this.

        Parameters
        ----------
        inpaths : iterable, pandas/dask Series or pandas/dask DataFrame
            The sources. For a DataFrame, ``inpath_col`` names the source column.
        outpath_func : callable or str
            ``outpath_func(source) -> str``, the output path (local or fsspec URL). For
            the sharded formats, the folder of the shards: a str or Path, or a namer with an
            ``outdir`` attribute (the library's namers), whose names then only hint at
            each sample's image extension.
        n_jobs, skip_existing, progress
            Shortcuts for the same :class:`~creevey_dask.RunOptions` fields: rows in
            flight per partition, leaving a row's own existing output alone
            (``"skipped"``; from the same source, a complete file, see
            :mod:`creevey_dask.storage.naming`; False rewrites a row's own output, never
            another source's file), a progress bar of rows on stderr.
        inpath_col : str, optional
            The source column of a DataFrame input (required when it has several
            columns). For other inputs, the name given to the source column in the
            result (default ``"inpath"``, or the Series' name).
        output_format : {"files", "webdataset", "parquet"} or ShardOptions, default "files"
            ``"files"`` writes one file per row with ``write_func``. The sharded
            formats (:class:`~creevey_dask.ShardOptions`, :mod:`creevey_dask.sinks.shards`)
            encode each image with ``write_func.encode_for`` (an
            :class:`~creevey_dask.ImageWriter` has it) and store the rows in shards. The
            image format is ``write_func``'s, or the name hint's extension.
        options : RunOptions, optional
            All the run knobs in one object (``storage_options``, ``npartitions``, ...);
            the shortcuts above, when given, override its fields.

        Returns
        -------
        pandas.DataFrame or dask.dataframe.DataFrame
            The input columns followed by ``outpath``, ``status``, ``error`` and the
            stages' result columns (sharded formats add ``key``, ``width`` and
            ``height``; ``outpath`` is then the shard). In-memory input gives a pandas
            frame; dask input a lazy dask frame.
        """
        opts = run_options(options, n_jobs=n_jobs, skip_existing=skip_existing, progress=progress)
        shards = shard_options(output_format)
        verify_hash = getattr(self.load_func, "verify_hash", None)
        sink = None
        if shards is not None:
            if isinstance(outpath_func, os.PathLike):
                outpath_func = os.fspath(outpath_func)
            outdir = getattr(outpath_func, "outdir", outpath_func)
            if isinstance(outdir, os.PathLike):
                outdir = os.fspath(outdir)
            if not isinstance(outdir, str):
                raise TypeError(
                    f"output_format={shards.format!r} writes shards into a folder: pass it "
                    f"as outpath_func (a str or Path), got {outpath_func!r}"
                )
            sink = Sink(
                shards.format,
                outdir,
                shards.shard_size,
                shards.carry_cols,
                shards.caption_col,
                opts.storage_options,
                verify_hash,
            )
            outpath_func = sink.sample_namer(outpath_func)
        elif verify_hash is not None:
            sink = Sink(storage_options=opts.storage_options, verify_hash=verify_hash)
        return run_pipeline(
            self,
            inpaths,
            outpath_func,  # type: ignore[arg-type]
            inpath_col,
            options=opts,
            sink=sink,
        )

    def __repr__(self) -> str:
        return (
            f"Pipeline(load_func={self.load_func!r}, ops={self.ops!r}, "
            f"write_func={self.write_func!r}, parallel_strategy={self.parallel_strategy!r})"
        )
