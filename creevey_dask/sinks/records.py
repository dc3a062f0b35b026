"""A shard's records as stored: cells as JSON and Arrow, rows that cannot be stored.

This module owns how a record's cells are kept: :func:`json_value` (a cell in a
sample's ``{key}.json``, and the test of what Arrow must hold as text),
:func:`arrow_table` (columns Arrow cannot hold recorded as text, names as ``str``),
:func:`unstorable_rows` (a row whose text is not valid UTF-8 fails alone, its text
kept escaped by :func:`utf8_escaped`) and :func:`records_bytes` (the records of a
shard as one Parquet file).
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "arrow_table",
    "json_value",
    "records_bytes",
    "unstorable_rows",
    "utf8_escaped",
    "with_metadata",
]


def json_value(value: Any) -> Any:
    """A faithful JSON form of a cell, for a WebDataset sample's ``{key}.json``.

    NA, NaN, inf and -inf → ``null`` (JSON has no such numbers); numpy scalars →
    Python numbers; numpy arrays, lists and tuples → lists; dicts → objects; bytes →
    a base64 string; timestamps → ISO 8601 strings; anything else → ``str(value)``.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.ndarray):
        return [json_value(v) for v in value.tolist()]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "item") and not isinstance(value, str):
        with contextlib.suppress(TypeError, ValueError):
            value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (bytes, bytearray)):  # a numpy bytes scalar's item()
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def utf8_escaped(text: str) -> str:
    """``text`` with what UTF-8 cannot hold escaped: ``\\xff`` for a file name's byte."""
    try:  # a file name's undecodable bytes (os.fsdecode's surrogates) as their bytes
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates as code points
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def unstorable_rows(records: pd.DataFrame, result: pd.DataFrame, ok: Any) -> None:
    """Make the rows whose text cannot be stored (not valid UTF-8) errors, alone.

    Their cells are kept in the records with the offending characters escaped
    (``backslashreplace``), so the records still list every row.
    """
    for col in records.columns:
        dtype = records[col].dtype
        if not (dtype == np.dtype(object) or isinstance(dtype, pd.StringDtype)):
            continue
        values = records[col].tolist()
        for i, value in enumerate(values):
            if not isinstance(value, str):
                continue
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                escaped = utf8_escaped(value)
                records.iat[i, records.columns.get_loc(col)] = escaped
                message = (
                    f"ValueError: the row cannot be stored in a shard: its {col!r} is not valid "
                    f"UTF-8: {escaped}"
                )
                label = result.index[i]
                result.loc[label, "status"] = "error"
                result.loc[label, "error"] = message
                result.loc[label, "outpath"] = None
                records.loc[i, "status"] = "error"
                records.loc[i, "error"] = message
                records.loc[i, "outpath"] = None
                ok[i] = False


def arrow_table(records: pd.DataFrame) -> pa.Table:
    import pyarrow as pa

    problems = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError)
    records = records.rename(columns=str)
    try:
        return pa.Table.from_pandas(records, preserve_index=False)
    except (*problems, ValueError):
        fixed = records.copy()
        for col in fixed.columns:
            try:
                pa.array(fixed[col], from_pandas=True)
            except (*problems, ValueError):
                fixed[col] = fixed[col].map(lambda v: None if json_value(v) is None else str(v))
        return pa.Table.from_pandas(fixed, preserve_index=False)


def with_metadata(table: pa.Table, extra: Mapping[bytes, bytes]) -> pa.Table:
    metadata = dict(table.schema.metadata or {})
    metadata.update(extra)
    return table.replace_schema_metadata(metadata)


def records_bytes(records: pd.DataFrame, metadata: Mapping[bytes, bytes] | None = None) -> bytes:
    """A shard's records as the bytes of one Parquet file, with ``metadata`` in its schema.

    Parameters
    ----------
    records : pandas.DataFrame
        The records (see :func:`arrow_table` for the columns Arrow cannot hold).
    metadata : mapping of bytes to bytes, optional
        Added to the file's metadata: for a WebDataset shard, the size and sha256 of
        the tar the records describe (:func:`creevey_dask.sinks.resume.tar_note`), so
        a rerun can tell their tar from another.

    Returns
    -------
    bytes
        The Parquet file.
    """
    import pyarrow.parquet as pq

    table = arrow_table(records)
    if metadata:
        table = with_metadata(table, metadata)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
