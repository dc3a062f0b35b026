"""The ``creevey`` command line: download, resize, split and an offline demo.

Each subcommand reads a table (a text file of URLs or paths, CSV, or Parquet; local or
any fsspec URL), runs the library function of the same name, writes the result table as
Parquet and prints a summary. The exit code is 0 when the run completed, even with error
rows (the summary counts them), and 2 with a one-line message for unusable input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["build_parser", "main", "read_table"]

logger = logging.getLogger(__name__)


class UsageError(Exception):
    """Unusable input: printed as ``creevey: error: ...`` with exit code 2."""


# ----------------------------------------------------------------------------- input/output


def _suffix(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for ext in (".parquet", ".pq", ".csv", ".tsv", ".txt", ".lst"):
        if name.endswith(ext) or name.endswith(ext + ".gz"):
            return ext
    return ""


def read_table(
    path: str, column: str, *, lazy: bool = False, storage_options: dict[str, Any] | None = None
) -> Any:
    """Read the input table at ``path``; a text file becomes one column named ``column``.

    ``.parquet`` (a file or a folder), ``.csv``/``.tsv`` and ``.txt`` (one source per line;
    blank lines and lines starting with ``#`` are skipped) are understood, from any fsspec
    path. With ``lazy``, Parquet and CSV are read as dask frames.
    """
    import pandas as pd

    from . import storage

    options = storage_options or {}
    try:
        exists = storage.exists(path, options)
    except (ValueError, ImportError) as err:
        raise UsageError(str(err)) from err
    if not exists:
        raise UsageError(f"input {path!r} does not exist")
    kind = _suffix(path)
    if kind in (".parquet", ".pq"):
        if lazy:
            import dask.dataframe as dd

            return dd.read_parquet(path, storage_options=options or None)
        return pd.read_parquet(path, storage_options=options or None)
    if kind in (".csv", ".tsv"):
        sep = "\t" if kind == ".tsv" else ","
        if lazy:
            import dask.dataframe as dd

            return dd.read_csv(path, sep=sep, storage_options=options or None)
        return pd.read_csv(path, sep=sep, storage_options=options or None)
    if kind in (".txt", ".lst", ""):
        text = storage.read_bytes(path, options).decode("utf-8-sig")
        rows = [line.strip() for line in text.splitlines()]
        rows = [r for r in rows if r and not r.startswith("#")]
        if not rows:
            raise UsageError(f"input {path!r} has no sources (blank lines and #comments only)")
        return pd.DataFrame({column: rows})
    raise UsageError(f"cannot read {path!r}: use a .txt, .csv, .tsv or .parquet file")


def _write_result(result: Any, output: str, storage_options: dict[str, Any]) -> None:
    """Write a pandas result, or stream a lazy dask one, to Parquet."""
    result.to_parquet(output, storage_options=storage_options or None)


def _print_summary(result: Any, output: str, *, top: int = 5) -> None:
    import dask.dataframe as dd
    import pandas as pd

    if isinstance(result, dd.DataFrame):
        result = dd.read_parquet(output, columns=["status", "error"]).compute()
    counts = result["status"].value_counts()
    total = len(result)
    print(
        f"\n{total} rows: "
        + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in ("ok", "skipped", "error"))
    )
    errors = result.loc[result["status"] == "error", "error"]
    if len(errors):
        kinds = errors.str.split(":", n=1).str[0].value_counts().head(top)
        print("most common errors:")
        for kind, n in kinds.items():
            example = errors[errors.str.startswith(f"{kind}:") | (errors == kind)].iloc[0]
            print(f"  {n:6d}  {pd.Series([example]).str.slice(0, 110).iloc[0]}")
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


def _common(parser: argparse.ArgumentParser, column: str, default_output: str) -> None:
    parser.add_argument(
        "input", help="a .txt (one per line), .csv or .parquet file; any fsspec URL"
    )
    parser.add_argument(
        "--outdir", required=True, help="where to write images (local or fsspec URL)"
    )
    parser.add_argument(
        f"--{column.replace('_', '-')}",
        dest="column",
        default=None,
        help="the column of sources in a CSV/Parquet input",
    )
    parser.add_argument(
        "--output",
        default=default_output,
        help=f"where to write the result table as Parquet (default: {default_output})",
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="rows in flight per partition")
    parser.add_argument("--npartitions", type=int, default=None, help="dask partitions")
    parser.add_argument(
        "--processes",
        action="store_true",
        help="use worker processes instead of threads (CPU-bound work)",
    )
    parser.add_argument(
        "--no-skip-existing",
        dest="skip_existing",
        action="store_false",
        help="redo rows whose output already exists",
    )
    parser.add_argument(
        "--lazy",
        action="store_true",
        help="read CSV/Parquet with dask and write the result as a Parquet "
        "dataset without collecting it",
    )
    parser.add_argument(
        "--scheduler", default=None, help="address of a dask.distributed scheduler to run on"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an fsspec option for inputs and outputs (repeatable)",
    )
    parser.add_argument("--format", default=None, help="png, jpeg, webp (download: or original)")
    parser.add_argument("--quality", type=int, default=None, help="JPEG/WebP quality 1-100")


def _run_download(args: argparse.Namespace) -> Any:
    from .download import download

    column = args.column or "url"
    options = _storage_options(args.storage_option)
    df = read_table(args.input, column, lazy=args.lazy, storage_options=options)
    ops = []
    if args.resize is not None:
        from .ops import resize

        ops.append(resize(shape=args.resize, mode=args.mode))
    return download(
        df,
        args.outdir,
        url_col=column,
        format=args.format or "png",
        ops=ops,
        naming=args.naming,
        quality=args.quality,
        timeout=args.timeout,
        retries=args.retries,
        per_host_limit=args.per_host_limit,
        user_agent=args.user_agent,
        n_jobs=args.n_jobs,
        skip_existing=args.skip_existing,
        parallel_strategy="processes" if args.processes else "threads",
        progress=args.progress,
        npartitions=args.npartitions,
        storage_options=options,
    )


def _run_resize(args: argparse.Namespace) -> Any:
    from .resize import resize

    column = args.column or "path"
    options = _storage_options(args.storage_option)
    if sum(x is not None for x in (args.shape, args.min_dim, args.max_dim)) != 1:
        raise UsageError("give exactly one of --shape, --min-dim and --max-dim")
    df = read_table(args.input, column, lazy=args.lazy, storage_options=options)
    return resize(
        df,
        args.outdir,
        path_col=column,
        shape=args.shape,
        min_dim=args.min_dim,
        max_dim=args.max_dim,
        mode=args.mode,
        only_shrink=args.only_shrink,
        format=args.format,
        quality=args.quality,
        skip_existing=args.skip_existing,
        n_jobs=args.n_jobs,
        parallel_strategy="processes" if args.processes else "threads",
        storage_options=options,
        progress=args.progress,
        npartitions=args.npartitions,
    )


def _split(args: argparse.Namespace) -> int:
    from .split import create_imagenet_style_symlinks, split

    options = _storage_options(args.storage_option)
    df = read_table(args.input, args.path_col, storage_options=options)
    try:
        valid_size: float = (
            float(args.valid_size) if "." in args.valid_size else int(args.valid_size)
        )
    except ValueError:
        raise UsageError(f"--valid-size must be a number, got {args.valid_size!r}") from None
    if args.imagenet_dir:
        # a result table: link only the rows that worked, unless --all-rows
        keep_status = ("ok", "skipped") if "status" in df.columns and not args.all_rows else None
        manifest = create_imagenet_style_symlinks(
            df,
            args.label_col,
            args.path_col,
            valid_size,
            args.imagenet_dir,
            groupby_colname=args.groupby,
            random_state=args.seed,
            mode=args.mode,
            relative=not args.absolute,
            keep_status=keep_status,
            storage_options=options,
        )
        counts = manifest["split"].value_counts()
        print(", ".join(f"{int(n)} {s}" for s, n in counts.items()) + f" in {args.imagenet_dir}")
        return 0
    result = split(
        df, valid_size, groupby=args.groupby, stratify=args.stratify, random_state=args.seed
    )
    output = args.output or "split.parquet"
    result.to_parquet(output, storage_options=options or None)
    counts = result["split"].value_counts()
    print(", ".join(f"{int(n)} {s}" for s, n in counts.items()) + f"; result table: {output}")
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
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    download = sub.add_parser(
        "download",
        help="download images from a table of URLs",
        description="Download the images at the URLs in INPUT into OUTDIR.",
    )
    _common(download, "url_col", "download-results.parquet")
    download.add_argument("--naming", default="url", help="url, url_hash or hash (see README)")
    download.add_argument(
        "--resize",
        type=_shape,
        default=None,
        metavar="HxW",
        help="resize each image to HEIGHTxWIDTH",
    )
    download.add_argument("--mode", default=None, help="resize mode, e.g. cover or pad")
    download.add_argument("--timeout", type=float, default=None, help="seconds per request")
    download.add_argument("--retries", type=int, default=None)
    download.add_argument("--per-host-limit", type=int, default=None)
    download.add_argument("--user-agent", default=None)
    download.set_defaults(func=_pipeline_command(_run_download))

    resize = sub.add_parser(
        "resize",
        help="resize image files",
        description="Resize the images listed in INPUT into OUTDIR.",
    )
    _common(resize, "path_col", "resize-results.parquet")
    resize.add_argument("--shape", type=_shape, default=None, metavar="HxW")
    resize.add_argument("--min-dim", type=int, default=None)
    resize.add_argument("--max-dim", type=int, default=None)
    resize.add_argument("--mode", default=None, help="cover, pad, contain or fit")
    resize.add_argument("--only-shrink", action="store_true")
    resize.set_defaults(func=_pipeline_command(_run_resize))

    split = sub.add_parser(
        "split",
        help="train/valid split and ImageNet-style folders",
        description="Add a train/valid split column to INPUT, or build "
        "an ImageNet-style tree of its images.",
    )
    split.add_argument("input", help="a .csv or .parquet table (e.g. a download result)")
    split.add_argument(
        "--valid-size", required=True, help="a count (int) or a proportion (float in (0, 1))"
    )
    split.add_argument("--label-col", default="label")
    split.add_argument("--path-col", default="outpath")
    split.add_argument("--groupby", default=None, help="rows sharing a value stay together")
    split.add_argument("--stratify", default=None, help="a label column to stratify on")
    split.add_argument("--seed", type=int, default=None)
    split.add_argument(
        "--imagenet-dir", default=None, help="build train/valid/<label>/ links (or copies) here"
    )
    split.add_argument("--mode", default="symlink", choices=["symlink", "copy"])
    split.add_argument("--absolute", action="store_true", help="absolute symlinks")
    split.add_argument(
        "--all-rows", action="store_true", help="also link rows whose status is not ok"
    )
    split.add_argument("--output", default=None, help="the result table (default split.parquet)")
    split.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")
    split.set_defaults(func=_split)

    demo = sub.add_parser(
        "demo",
        help="run the whole job offline on generated images",
        description="Serve generated images on 127.0.0.1 (some URLs failing "
        "on purpose), download, resize and split them.",
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
        print(f"creevey: error: {err}", file=sys.stderr)
        return 2
