"""The command line's tables: reading an input table of sources (text, CSV/TSV,
JSON/JSON Lines or Parquet, optionally gzipped, under size and line caps), writing the
result table and printing its summary."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_LINES",
    "MAX_LINE_BYTES",
    "UsageError",
    "print_summary",
    "read_table",
    "storage_options_from",
    "write_result",
]


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


def write_result(result: Any, output: str, storage_options: dict[str, Any]) -> None:
    """Write a pandas result, or stream a lazy dask one, to Parquet."""
    result.to_parquet(output, storage_options=storage_options or None)


def print_summary(result: Any, output: str, *, top: int = 5) -> None:
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


def storage_options_from(pairs: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option takes KEY=VALUE, got {pair!r}")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
    return options
