"""The ``creevey`` command line: download, resize, split, dedup and an offline demo.

Each subcommand reads a table (a text file of URLs or paths, CSV/TSV, JSON/JSON Lines or
Parquet, optionally gzipped; local or any fsspec URL), runs the library function of the
same name, writes the result table as Parquet and prints a summary. The exit code is 0
when the run completed, even with error rows (the summary counts them), and 2 with a
one-line message for unusable input.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from .._redact import redact_text

__all__ = ["build_parser", "main", "read_table"]

logger = logging.getLogger(__name__)

#: ``creevey_dask.duplicates.DEFAULT_MAX_DISTANCE``, spelled here so that building the
#: parser imports neither numpy nor pandas (tests/test_cli.py checks that they agree).
DEFAULT_MAX_DISTANCE = 4


class UsageError(Exception):
    """Unusable input: printed as ``creevey: error: ...`` with exit code 2."""


# ----------------------------------------------------------------------------- input/output


#: Input kinds by extension (each may also end in ``.gz``, except Parquet).
_KINDS = (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".txt", ".lst")


def _suffix(path: str) -> tuple[str, bool]:
    """``(kind, gzipped)`` of ``path`` from its name: ``("csv", True)`` for ``a.csv.gz``."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[: -len(".gz")]
    for ext in _KINDS:
        if name.endswith(ext):
            return ext, gzipped
    return "", gzipped


def read_table(
    path: str,
    column: str,
    *,
    lazy: bool = False,
    storage_options: dict[str, Any] | None = None,
    text_cols: tuple[str, ...] = (),
) -> Any:
    """Read the input table at ``path``; a text file becomes one column named ``column``.

    ``text_cols`` of a CSV/TSV are read as text, not numbers (64-bit hashes do not fit a
    float, which is what a column of integers with a missing value becomes).

    Understood, from any fsspec path, by extension: ``.parquet``/``.pq`` (a file or a
    folder), ``.csv``, ``.tsv``, ``.json`` (records or columns), ``.jsonl``/``.ndjson``
    (one JSON object per line) and ``.txt``/``.lst`` or no extension (one source per
    line; blank lines and lines starting with ``#`` are skipped); all but Parquet may be
    gzipped (``.csv.gz``, ``.txt.gz``, ...). With ``lazy``, Parquet, CSV/TSV and JSON
    Lines are read as dask frames (a gzipped file as one partition).
    """
    import pandas as pd

    from ..storage import fs as storage

    options = storage_options or {}
    try:
        exists = storage.exists(path, options)
    except (ValueError, ImportError) as err:
        raise UsageError(str(err)) from err
    if not exists:
        raise UsageError(f"input {path!r} does not exist")
    kind, gzipped = _suffix(path)
    compression = "gzip" if gzipped else None
    fsspec_options = options or None
    if kind in (".parquet", ".pq"):
        if gzipped:
            raise UsageError(f"cannot read {path!r}: Parquet is compressed inside; drop the .gz")
        if lazy:
            import dask.dataframe as dd

            return dd.read_parquet(path, storage_options=fsspec_options)
        return pd.read_parquet(path, storage_options=fsspec_options)
    if kind in (".csv", ".tsv"):
        sep = "\t" if kind == ".tsv" else ","
        if lazy:
            import dask.dataframe as dd

            return dd.read_csv(
                path,
                sep=sep,
                compression=compression,
                blocksize=None if gzipped else "default",
                storage_options=fsspec_options,
            )
        return pd.read_csv(
            path,
            sep=sep,
            compression=compression,
            storage_options=fsspec_options,
            dtype=dict.fromkeys(text_cols, "string") or None,
        )
    if kind in (".jsonl", ".ndjson"):
        if lazy:
            import dask.dataframe as dd

            return dd.read_json(
                path,
                lines=True,
                compression=compression,
                blocksize=None if gzipped else 2**26,
                storage_options=fsspec_options,
            )
        return pd.read_json(
            path, lines=True, compression=compression, storage_options=fsspec_options
        )
    if kind == ".json":
        import io

        data = _read_capped(path, options, compression)
        table = pd.read_json(io.BytesIO(data))
        if list(table.columns) == [0]:  # a JSON list of sources
            table = table.rename(columns={0: column})
        return table
    if kind in (".txt", ".lst", ""):
        rows = _read_lines(path, options, compression)
        if not rows:
            raise UsageError(f"input {path!r} has no sources (blank lines and #comments only)")
        return pd.DataFrame({column: rows})
    raise UsageError(  # pragma: no cover - every kind is handled above
        f"cannot read {path!r}: use a .txt, .csv, .tsv, .json, .jsonl or .parquet file"
    )


#: Bounds on a text or JSON input, checked while it is read (a gzipped input is
#: inflated as a stream, never whole): the longest line, the most lines, the most bytes.
MAX_LINE_BYTES = 64 * 1024
MAX_LINES = 10_000_000
MAX_JSON_BYTES = 2**30

#: What a damaged or undecodable input raises while it is read.
_READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error)


def _read_lines(path: str, options: dict[str, Any], compression: str | None) -> list[str]:
    """The sources of a text input, one per line, streamed under the bounds above."""
    import fsspec

    rows: list[str] = []
    try:
        with fsspec.open(path, "rb", compression=compression, **options) as f:
            for number in itertools.count(1):
                line = f.readline(MAX_LINE_BYTES + 1)
                if not line:
                    return rows
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    raise UsageError(
                        f"cannot read {path!r}: line {number:,} is longer than "
                        f"{MAX_LINE_BYTES:,} bytes"
                    )
                if number > MAX_LINES:
                    raise UsageError(
                        f"cannot read {path!r}: it has more than {MAX_LINES:,} lines; "
                        "split it, or use a CSV or Parquet table (read with --lazy)"
                    )
                text = line.decode("utf-8-sig" if number == 1 else "utf-8").strip()
                if text and not text.startswith("#"):
                    rows.append(text)
    except _READ_ERRORS as err:
        raise UsageError(f"cannot read {path!r}: {type(err).__name__}: {err}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _read_capped(path: str, options: dict[str, Any], compression: str | None) -> bytes:
    """The bytes of an input (inflated as a stream), refused past :data:`MAX_JSON_BYTES`."""
    import fsspec

    try:
        with fsspec.open(path, "rb", compression=compression, **options) as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except _READ_ERRORS as err:
        raise UsageError(f"cannot read {path!r}: {type(err).__name__}: {err}") from None
    if len(data) > MAX_JSON_BYTES:
        raise UsageError(
            f"cannot read {path!r}: it holds more than {MAX_JSON_BYTES:,} bytes of JSON; "
            "use JSON Lines (read with --lazy) or Parquet"
        )
    return bytes(data)


def _write_result(result: Any, output: str, storage_options: dict[str, Any]) -> None:
    """Write a pandas result, or stream a lazy dask one, to Parquet."""
    result.to_parquet(output, storage_options=storage_options or None)


def _print_summary(result: Any, output: str, *, top: int = 5) -> None:
    from .._dask_types import is_dask_frame
    from ..engine.runner import error_causes
    from ..schema import STATUSES

    if is_dask_frame(result):
        import dask.dataframe as dd

        result = dd.read_parquet(output, columns=["status", "error"]).compute()
    counts = result["status"].value_counts()
    print(f"\n{len(result)} rows: " + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in STATUSES))
    causes = error_causes(result.loc[result["status"] == "error", "error"], top)
    if causes:
        print("most common errors (root causes):")
        for cause, n in causes:
            print(f"  {n:6d}  {cause if len(cause) <= 110 else cause[:109] + '…'}")
    print(f"result table: {output}")


def _storage_options(pairs: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option takes KEY=VALUE, got {pair!r}")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
    return options


def _shape(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        height, width = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a shape: use HEIGHTxWIDTH (e.g. 224x224) or one number"
        ) from None
    return height, width


# ----------------------------------------------------------------------------- subcommands


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option whose help does not say its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or action.required:
            return text
        if not action.option_strings or isinstance(action.default, bool):
            return text
        return text + " (default: %(default)s)"


_INPUT_HELP = (
    "the table: .txt (one source per line), .csv, .tsv, .json, .jsonl or .parquet; "
    ".gz for all but Parquet; a local path or any fsspec URL"
)


def _common(parser: argparse.ArgumentParser, column: str, default_output: str) -> None:
    parser.add_argument("input", help=_INPUT_HELP)
    parser.add_argument(
        "--outdir", required=True, help="where to write images (local or fsspec URL)"
    )
    parser.add_argument(
        f"--{column.replace('_', '-')}",
        dest="column",
        default=column.removesuffix("_col"),
        help="the column of sources in a table input (a .txt input becomes this column)",
    )
    parser.add_argument(
        "--output", default=default_output, help="where to write the result table as Parquet"
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        help="rows in flight per partition (default: 16 for downloads, 2 per core otherwise)",
    )
    parser.add_argument(
        "--npartitions",
        type=int,
        default=None,
        help="dask partitions of an in-memory table (default: from the rows and the cores)",
    )
    parser.add_argument(
        "--processes",
        action="store_true",
        help="always use worker processes (default: a process per core for tables of 200 "
        "rows or more on Linux, else threads)",
    )
    parser.add_argument(
        "--no-skip-existing",
        dest="skip_existing",
        action="store_false",
        help="redo rows whose output already exists (default: skip them)",
    )
    parser.add_argument(
        "--lazy",
        action="store_true",
        help="read Parquet, CSV/TSV or JSON Lines with dask and stream the result to a "
        "Parquet dataset without collecting it (default: in memory)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="address of a dask.distributed scheduler to run on "
        "(default: local threads or processes)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar and no end-of-run line on stderr (default: shown)",
    )
    _storage_option_flag(parser)
    _checks(parser)
    parser.add_argument(
        "--output-format",
        default=None,
        choices=["files", "webdataset", "parquet"],
        help="one file per row, or WebDataset / Parquet shards in --outdir (default: files)",
    )
    parser.add_argument(
        "--shard-size", type=int, default=None, help="rows per shard (default: 1000)"
    )
    parser.add_argument(
        "--caption-col",
        default=None,
        help="a column written as each WebDataset sample's .txt (default: none)",
    )
    parser.add_argument(
        "--carry-col",
        dest="carry_cols",
        action="append",
        default=None,
        metavar="COLUMN",
        help="an input column stored with each sample, repeatable (default: all columns)",
    )


def _checks(parser: argparse.ArgumentParser) -> None:
    """The size filters, source hashes and result-column naming of download and resize."""
    parser.add_argument(
        "--min-image-size",
        type=int,
        default=None,
        help="refuse images whose shorter side is smaller (an error row; default: none)",
    )
    parser.add_argument(
        "--max-image-area",
        type=int,
        default=None,
        help="refuse images of more pixels, width x height (default: none)",
    )
    parser.add_argument(
        "--max-aspect-ratio",
        type=float,
        default=None,
        help="refuse images whose longer side / shorter side is larger (default: none)",
    )
    parser.add_argument(
        "--compute-hash",
        default=None,
        choices=["sha256", "md5"],
        help="add a source_<algorithm> column: the digest of the bytes read (default: none)",
    )
    parser.add_argument(
        "--verify-hash",
        type=_verify_hash,
        default=None,
        metavar="COLUMN[:ALGORITHM]",
        help="a row whose bytes do not have the hex digest in COLUMN is an error row; "
        "ALGORITHM is sha256 or md5 (default: no check; sha256 if only COLUMN is given)",
    )
    parser.add_argument(
        "--result-suffix",
        default=None,
        help="an input column named like a result column (width, height, bytes, ...) is "
        "kept; the result's gets this suffix (default: _result)",
    )


def _verify_hash(text: str) -> tuple[str, str]:
    column, _, algorithm = text.partition(":")
    if not column:
        raise argparse.ArgumentTypeError(f"{text!r} is not COLUMN or COLUMN:ALGORITHM")
    return column, algorithm or "sha256"


#: The options of size filters and hashes (see creevey_dask.image.checks), for download and resize.
_CHECK_OPTIONS = (
    "min_image_size",
    "max_image_area",
    "max_aspect_ratio",
    "compute_hash",
    "verify_hash",
)


def _run_options(args: argparse.Namespace) -> Any:
    """``options=`` for the run: a RunOptions when --result-suffix is given, else None."""
    if args.result_suffix is None:
        return None
    from ..options import RunOptions

    return RunOptions(result_suffix=args.result_suffix)


def _storage_option_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an fsspec option for inputs and outputs, repeatable (default: none)",
    )


def _verbose_flag(parser: argparse.ArgumentParser, default: Any) -> None:
    """``-v`` on the main parser and on every subcommand, so it works on either side."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="log what happens at INFO level on stderr (default: warnings only)",
    )


#: The options of sharded outputs (see creevey_dask.sinks.shards), for download and resize.
_SINK_OPTIONS = ("output_format", "shard_size", "caption_col", "carry_cols")


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options among ``names`` given on the command line (None: the library's default)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _run_download(args: argparse.Namespace) -> Any:
    from ..download import download

    options = _storage_options(args.storage_option)
    df = read_table(args.input, args.column, lazy=args.lazy, storage_options=options)
    ops = []
    if args.resize is not None:
        from ..ops import resize

        ops.append(resize(shape=args.resize, only_shrink=args.only_shrink, **_given(args, "mode")))
    elif args.only_shrink:
        raise UsageError("--only-shrink applies to --resize; give --resize HxW too")
    return download(
        df,
        args.outdir,
        url_col=args.column,
        ops=ops,
        naming=args.naming,
        skip_existing=args.skip_existing,
        parallel_strategy="processes" if args.processes else None,
        progress=args.progress,
        storage_options=options,
        **_given(
            args,
            "format",
            "quality",
            "timeout",
            "retries",
            "per_host_limit",
            "user_agent",
            "n_jobs",
            "npartitions",
            *_SINK_OPTIONS,
            *_CHECK_OPTIONS,
        ),
        options=_run_options(args),
    )


def _run_resize(args: argparse.Namespace) -> Any:
    from ..resize import resize

    options = _storage_options(args.storage_option)
    if sum(x is not None for x in (args.shape, args.min_dim, args.max_dim)) != 1:
        raise UsageError("give exactly one of --shape, --min-dim and --max-dim")
    df = read_table(args.input, args.column, lazy=args.lazy, storage_options=options)
    return resize(
        df,
        args.outdir,
        path_col=args.column,
        shape=args.shape,
        min_dim=args.min_dim,
        max_dim=args.max_dim,
        only_shrink=args.only_shrink,
        skip_existing=args.skip_existing,
        parallel_strategy="processes" if args.processes else None,
        storage_options=options,
        progress=args.progress,
        options=_run_options(args),
        **_given(
            args,
            "mode",
            "format",
            "quality",
            "n_jobs",
            "npartitions",
            *_SINK_OPTIONS,
            *_CHECK_OPTIONS,
        ),
    )


def _size(flag: str, text: str) -> float:
    """A split size: an int count, or a float proportion if it has a point."""
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise UsageError(f"{flag} must be a number, got {text!r}") from None


def _split(args: argparse.Namespace) -> int:
    from ..layout.imagenet import KEEP_STATUSES, imagenet_symlinks
    from ..layout.split import split

    options = _storage_options(args.storage_option)
    df = read_table(args.input, args.path_col, storage_options=options)
    valid_size = _size("--valid-size", args.valid_size)
    test_size = None if args.test_size is None else _size("--test-size", args.test_size)
    if args.imagenet_dir:
        # a result table: link only the rows whose file exists, unless --all-rows
        manifest = imagenet_symlinks(
            df,
            args.imagenet_dir,
            label_col=args.label_col,
            path_col=args.path_col,
            valid_size=valid_size,
            test_size=test_size,
            groupby=args.groupby,
            stratify=args.stratify,
            random_state=args.seed,
            link=args.link,
            relative=not args.absolute,
            keep_status=None if args.all_rows else KEEP_STATUSES,
            storage_options=options,
        )
        manifest.to_parquet(args.output, storage_options=options or None)
        counts = manifest["split"].value_counts()
        print(
            ", ".join(f"{int(n)} {s}" for s, n in counts.items())
            + f" in {args.imagenet_dir}; manifest: {args.output}"
        )
        return 0
    result = split(
        df,
        valid_size,
        groupby=args.groupby,
        stratify=args.stratify,
        test_size=test_size,
        random_state=args.seed,
    )
    result.to_parquet(args.output, storage_options=options or None)
    counts = result["split"].value_counts()
    print(", ".join(f"{int(n)} {s}" for s, n in counts.items()) + f"; result table: {args.output}")
    return 0


def _dedup(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..duplicates import check_distance, duplicates
    from ..reports.sheets import duplicate_sheet
    from ..storage import fs as storage

    check_distance(args.max_distance)  # the arguments first, then the table
    options = _storage_options(args.storage_option)
    hash_col = args.hash_col or None
    df = read_table(
        args.input,
        args.path_col,
        storage_options=options,
        text_cols=(hash_col,) if hash_col else (),
    )
    if hash_col in df.columns and df[hash_col].dtype == "string":  # a CSV's decimal digits
        try:
            df[hash_col] = pd.array(
                [None if pd.isna(v) else int(v) for v in df[hash_col]], dtype="UInt64"
            )
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(
                f"the {hash_col!r} column of {args.input!r} must be an integer column of 64-bit "
                f"hashes, written in decimal: {err}"
            ) from err
    result = duplicates(
        df,
        hash_col=args.hash_col or None,
        max_distance=args.max_distance,
        exact_col=args.exact_col,
    )
    sizes = result["dup_group"].value_counts()
    n_groups, n_copies = int((sizes > 1).sum()), int(len(result) - len(sizes))
    if args.sheet and n_groups:
        duplicate_sheet(
            result,
            path_col=args.path_col,
            hash_col=args.hash_col or None,
            storage_options=options,
            save_to=args.sheet,
        )
    written = result[result["dup_keep"]] if args.drop_copies else result
    folder = storage.local_folder(args.output)
    if folder is not None:  # as for the sheet: the folder is made
        os.makedirs(folder, exist_ok=True)
    written.to_parquet(args.output, storage_options=options or None)
    print(
        f"{len(result)} rows: {n_groups} duplicate groups, {n_copies} copies "
        f"({'dropped' if args.drop_copies else 'dup_keep is False'}); result table: {args.output}"
        + (f"; sheet: {args.sheet}" if args.sheet and n_groups else "")
    )
    return 0


def _with_client(args: argparse.Namespace, run: Callable[[argparse.Namespace], Any]) -> Any:
    if not args.scheduler:
        return run(args)
    from distributed import Client

    with Client(args.scheduler) as client:
        print(f"running on the cluster at {args.scheduler}; dashboard: {client.dashboard_link}")
        return run(args)


def _pipeline_command(
    run: Callable[[argparse.Namespace], Any],
) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        result = _with_client(args, run)
        options = _storage_options(args.storage_option)
        _write_result(result, args.output, options)
        _print_summary(result, args.output)
        return 0

    return command


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.outdir, n_images=args.n_images)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``creevey`` command."""
    parser = argparse.ArgumentParser(
        prog="creevey",
        description="Image pipelines over tables of URLs and paths, on pandas and dask.",
        formatter_class=_HelpFormatter,
    )
    _verbose_flag(parser, False)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        made = sub.add_parser(
            name, help=help, description=description, formatter_class=_HelpFormatter
        )
        _verbose_flag(made, argparse.SUPPRESS)  # -v after the subcommand too
        return made

    download = command(
        "download",
        "download images from a table of URLs",
        "Download the images at the URLs in INPUT into OUTDIR.",
    )
    _common(download, "url_col", "download-results.parquet")
    download.add_argument(
        "--format",
        default=None,
        help="jpeg, png, webp, or original (the bytes as received) (default: jpeg)",
    )
    download.add_argument(
        "--quality", type=int, default=None, help="JPEG/WebP quality, 1-100 (default: 95)"
    )
    download.add_argument(
        "--naming",
        default="url",
        help="file names: url (the URL's file name), url_hash (that name with a hash of "
        "the URL) or hash (the content's hash, in sharded folders)",
    )
    download.add_argument(
        "--resize",
        type=_shape,
        default=None,
        metavar="HxW",
        help="resize each image to HEIGHTxWIDTH (default: keep the size)",
    )
    download.add_argument(
        "--mode",
        default=None,
        help="how --resize treats the aspect ratio: stretch, cover, fit, pad or contain "
        "(default: stretch)",
    )
    download.add_argument(
        "--only-shrink",
        action="store_true",
        help="with --resize, never enlarge an image (default: enlarge small ones too)",
    )
    download.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to connect and to wait for data (default: 5 and 20)",
    )
    download.add_argument(
        "--retries",
        type=int,
        default=None,
        help="retries on connection errors, timeouts, 5xx and 429 (default: 3)",
    )
    download.add_argument(
        "--per-host-limit",
        type=int,
        default=None,
        help="requests in flight per host and worker process (default: 8)",
    )
    download.add_argument(
        "--user-agent",
        default=None,
        help="the User-Agent header (default: creevey_dask/<version> (...))",
    )
    download.set_defaults(func=_pipeline_command(_run_download))

    resize = command(
        "resize", "resize image files", "Resize the images listed in INPUT into OUTDIR."
    )
    _common(resize, "path_col", "resize-results.parquet")
    resize.add_argument(
        "--shape",
        type=_shape,
        default=None,
        metavar="HxW",
        help="the output HEIGHTxWIDTH, or one number for a square (default: none; give "
        "one of --shape, --min-dim, --max-dim)",
    )
    resize.add_argument(
        "--min-dim", type=int, default=None, help="scale the shorter side to this (default: none)"
    )
    resize.add_argument(
        "--max-dim", type=int, default=None, help="scale the longer side to this (default: none)"
    )
    resize.add_argument(
        "--mode",
        default=None,
        help="how --shape treats the aspect ratio: stretch, cover, fit, pad or contain "
        "(default: stretch)",
    )
    resize.add_argument(
        "--only-shrink",
        action="store_true",
        help="never enlarge an image (default: enlarge small ones too)",
    )
    resize.add_argument(
        "--format",
        default=None,
        help="the output format, e.g. jpeg, png or webp (default: each file keeps its own)",
    )
    resize.add_argument(
        "--quality",
        type=int,
        default=None,
        help="JPEG/WebP quality, 1-100 (default: Pillow's, 75)",
    )
    resize.set_defaults(func=_pipeline_command(_run_resize))

    split = command(
        "split",
        "train/valid split and ImageNet-style folders",
        "Add a train/valid split column to INPUT, or build an ImageNet-style tree of its images.",
    )
    split.add_argument("input", help=_INPUT_HELP + " (e.g. a download's result table)")
    split.add_argument(
        "--valid-size", required=True, help="a count (int) or a proportion (float in (0, 1))"
    )
    split.add_argument(
        "--test-size",
        default=None,
        help="also a test split: a count (int) or a proportion (float in (0, 1)) (default: none)",
    )
    split.add_argument("--label-col", default="label", help="the column of labels")
    split.add_argument(
        "--path-col", default="outpath", help="the column of image paths (for --imagenet-dir)"
    )
    split.add_argument(
        "--groupby",
        default=None,
        help="a column whose rows stay on one side, e.g. a patient id (default: none)",
    )
    split.add_argument(
        "--stratify",
        default=None,
        help="a column whose value mix every split follows, e.g. the label (default: none)",
    )
    split.add_argument(
        "--seed", type=int, default=None, help="the seed of the split (default: random)"
    )
    split.add_argument(
        "--imagenet-dir",
        default=None,
        help="build train/valid/<label>/ links (or copies) here (default: only add the "
        "split column)",
    )
    split.add_argument(
        "--link",
        "--mode",
        dest="link",
        default="symlink",
        choices=["symlink", "copy"],
        help="symlink the files into the tree, or copy them (needed off the local disk); "
        "--mode is the old name (default: symlink)",
    )
    split.add_argument(
        "--absolute", action="store_true", help="absolute symlinks (default: relative)"
    )
    split.add_argument(
        "--all-rows",
        action="store_true",
        help="also link rows whose status is not ok or skipped (default: only those)",
    )
    split.add_argument(
        "--output",
        default="split.parquet",
        help="where to write the result table as Parquet (with --imagenet-dir: the tree's "
        "manifest)",
    )
    _storage_option_flag(split)
    split.set_defaults(func=_split)

    dedup = command(
        "dedup",
        "exact and near-duplicate groups",
        "Add dup_group and dup_keep to INPUT: rows whose hashes are at most --max-distance "
        "bits apart, or whose --exact-col digests are equal, share a group.",
    )
    dedup.add_argument("input", help=_INPUT_HELP + " (e.g. a result table with dhash)")
    dedup.add_argument(
        "--hash-col",
        default="dhash",
        help="the column of 64-bit perceptual hashes; an empty string to group on --exact-col only",
    )
    dedup.add_argument(
        "--max-distance",
        type=int,
        default=DEFAULT_MAX_DISTANCE,
        help="the largest Hamming distance, in bits, between near-duplicates",
    )
    dedup.add_argument(
        "--exact-col",
        default=None,
        help="a column of byte digests (e.g. sha256) that are equal for copies (default: none)",
    )
    dedup.add_argument(
        "--path-col", default="outpath", help="the column of image paths (for --sheet)"
    )
    dedup.add_argument(
        "--sheet",
        default=None,
        help="also draw the largest groups, one per row, into this image (default: none)",
    )
    dedup.add_argument(
        "--drop-copies",
        action="store_true",
        help="write only the kept row of each group (default: every row, with dup_keep)",
    )
    dedup.add_argument(
        "--output", default="dedup.parquet", help="where to write the result table as Parquet"
    )
    _storage_option_flag(dedup)
    dedup.set_defaults(func=_dedup)

    demo = command(
        "demo",
        "run the whole job offline on generated images",
        "Serve generated images on 127.0.0.1 (some URLs failing on purpose), download, "
        "resize and split them.",
    )
    demo.add_argument("--outdir", default="creevey-demo-output", help="where to write")
    demo.add_argument("--n-images", type=int, default=24, help="how many sample images")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except (UsageError, ValueError, TypeError, FileNotFoundError, KeyError) as err:
        print(f"creevey: error: {redact_text(str(err))}", file=sys.stderr)
        return 2
