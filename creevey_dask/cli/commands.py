"""The command line's subcommands: each runs the library function of its name on the
parsed arguments."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from .tables import UsageError, print_summary, read_table, storage_options_from, write_result

__all__ = [
    "dedup_command",
    "demo_command",
    "pipeline_command",
    "run_download",
    "run_resize",
    "split_command",
]

_FILTERS = (
    "min_image_size",
    "max_image_area",
    "max_aspect_ratio",
    "max_pixels",
    "compute_hash",
    "verify_hash",
)
_SHARDS = {
    "shard_size": "--shard-size",
    "caption_col": "--caption-col",
    "carry_cols": "--carry-col",
}
_HTTP = ("retries", "per_host_limit", "user_agent")


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options among ``names`` given on the command line (None: the library's default)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _run_options(args: argparse.Namespace, storage_options: Any) -> Any:
    """``options=`` for the run: the RunOptions that the flags ask for."""
    from ..options import RunOptions

    return RunOptions(
        skip_existing=args.skip_existing,
        progress=args.progress,
        retry_errors=args.retry_errors,
        storage_options=storage_options or None,
        parallel_strategy="processes" if args.processes else None,
        **_given(args, "n_jobs", "npartitions", "result_suffix"),
    )


def _output_format(args: argparse.Namespace) -> Any:
    """``output_format=``: ``"files"``, or the ShardOptions of the shard flags."""
    from ..sinks.shard_options import ShardOptions

    given = _given(args, *_SHARDS)
    if args.output_format in (None, "files"):
        if given:
            flags = ", ".join(_SHARDS[name] for name in given)
            verb = "applies" if len(given) == 1 else "apply"
            raise UsageError(f"{flags} {verb} to --output-format webdataset or parquet")
        return "files"
    return ShardOptions(args.output_format, **given)


def _filters(args: argparse.Namespace) -> Any:
    from ..image.filters import FilterOptions

    return FilterOptions(**_given(args, *_FILTERS))


def run_download(args: argparse.Namespace) -> Any:
    from ..download import download
    from ..sources.http import HttpOptions

    options = storage_options_from(args.storage_option)
    df = read_table(args.input, args.column, lazy=args.lazy, storage_options=options)
    ops = []
    if args.resize is not None:
        from ..ops import resize

        ops.append(resize(shape=args.resize, only_shrink=args.only_shrink, **_given(args, "mode")))
    else:
        for flag, given in (("--only-shrink", args.only_shrink), ("--mode", args.mode)):
            if given:
                raise UsageError(f"{flag} applies to --resize; give --resize HxW too")
    http = HttpOptions().replace(timeout=args.timeout, **_given(args, *_HTTP))
    return download(
        df,
        args.outdir,
        url_col=args.column,
        ops=ops,
        naming=args.naming,
        output_format=_output_format(args),
        filters=_filters(args),
        http_options=http,
        options=_run_options(args, options),
        **_given(args, "format", "quality"),
    )


def run_resize(args: argparse.Namespace) -> Any:
    from ..ops import resize as resize_op
    from ..resize import resize

    options = storage_options_from(args.storage_option)
    if sum(x is not None for x in (args.shape, args.min_dim, args.max_dim)) != 1:
        raise UsageError("give exactly one of --shape, --min-dim and --max-dim")
    if args.mode is not None and args.shape is None:
        raise UsageError("--mode applies to --shape; --min-dim and --max-dim keep the aspect ratio")
    df = read_table(args.input, args.column, lazy=args.lazy, storage_options=options)
    size = resize_op(
        args.shape,
        min_dim=args.min_dim,
        max_dim=args.max_dim,
        only_shrink=args.only_shrink,
        **_given(args, "mode"),
    )
    return resize(
        df,
        args.outdir,
        path_col=args.column,
        shape=size,
        output_format=_output_format(args),
        filters=_filters(args),
        options=_run_options(args, options),
        **_given(args, "format", "quality"),
    )


def _size(flag: str, text: str) -> float:
    """A split size: an int count, or a float proportion if it has a point."""
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise UsageError(f"{flag} must be a number, got {text!r}") from None


def split_command(args: argparse.Namespace) -> int:
    from ..layout.imagenet import KEEP_STATUSES, imagenet_symlinks
    from ..layout.split import split

    options = storage_options_from(args.storage_option)
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


def dedup_command(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..duplicates import check_distance, duplicates
    from ..reports.sheets import duplicate_sheet
    from ..storage import fs as storage

    check_distance(args.max_distance)  # the arguments first, then the table
    options = storage_options_from(args.storage_option)
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


def pipeline_command(
    run: Callable[[argparse.Namespace], Any],
) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        result = _with_client(args, run)
        options = storage_options_from(args.storage_option)
        write_result(result, args.output, options)
        print_summary(result, args.output)
        return 0

    return command


def demo_command(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.outdir, n_images=args.n_images)
    return 0
