"""The ``creevey`` command line: download, resize, split, dedup and an offline demo.

Each subcommand reads a table (a text file of URLs or paths, CSV/TSV, JSON/JSON Lines or
Parquet, optionally gzipped; local or any fsspec URL), runs the library function of the
same name, writes the result table as Parquet and prints a summary. The exit code is 0
when the run completed, even with error rows (the summary counts them), and 2 with a
one-line message for unusable input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .._redact import redact_text
from .commands import (
    dedup_command,
    demo_command,
    pipeline_command,
    run_download,
    run_resize,
    split_command,
)
from .tables import UsageError

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

#: ``creevey_dask.duplicates.DEFAULT_MAX_DISTANCE``, spelled here so that building the
#: parser imports neither numpy nor pandas (tests/test_cli.py checks that they agree).
DEFAULT_MAX_DISTANCE = 4


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
        help="rows in flight per partition (default: 2 for local files, 16 for URLs and "
        "remote files)",
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
        "--no-retry-errors",
        dest="retry_errors",
        action="store_false",
        help="sharded outputs: report the rows whose latest record is an error from their "
        "records instead of trying them again (default: try them again)",
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
    """The size filters, pixel limit, source hashes and result-column naming of download
    and resize (:class:`~creevey_dask.FilterOptions`, and ``--result-suffix``)."""
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
        "--max-pixels",
        type=int,
        default=None,
        help="refuse images whose header declares more pixels, before decoding them "
        "(default: 89,478,485, Pillow's warning limit)",
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


def _shape(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        height, width = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a shape: use HEIGHTxWIDTH (e.g. 224x224) or one number"
        ) from None
    return height, width


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
    download.set_defaults(func=pipeline_command(run_download))

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
    resize.set_defaults(func=pipeline_command(run_resize))

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
    split.set_defaults(func=split_command)

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
    dedup.set_defaults(func=dedup_command)

    demo = command(
        "demo",
        "run the whole job offline on generated images",
        "Serve generated images on 127.0.0.1 (some URLs failing on purpose), download, "
        "resize and split them.",
    )
    demo.add_argument("--outdir", default="creevey-demo-output", help="where to write")
    demo.add_argument("--n-images", type=int, default=24, help="how many sample images")
    demo.set_defaults(func=demo_command)
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
