"""Exact and near-duplicate groups of a table's rows: :func:`duplicates`, :func:`leaks`.

:func:`duplicates` adds ``dup_group`` and ``dup_keep`` to a pandas or dask frame, so that
``df[df.dup_keep]`` is the deduplicated table and ``split(df, groupby="dup_group")`` keeps
every group of copies on one side. :func:`leaks` lists the near-duplicate pairs that
cross a split.

Which rows are duplicates
-------------------------
Two rows are *duplicates* when their byte digests (``exact_col``, e.g. ``sha256``) are
equal, or when their 64-bit perceptual hashes (``hash_col``, e.g. ``dhash`` as
:data:`creevey_dask.ops.report_dhash` stores it: ``UInt64``) are at most
``max_distance`` bits apart. The groups are the connected components of that relation
(so a chain of small edits can join two rows further apart than ``max_distance``).

How the groups are found without comparing every pair (multi-index hashing), on pandas
and on dask, and what it costs: :mod:`creevey_dask.duplicates._graph`, which does the
grouping; this module holds the public functions and the checks of their arguments.

The group id and the kept row
-----------------------------
``dup_group`` is the table position (0-based, in table order) of the group's first row,
so a row without duplicates is its own group and the same table gives the same ids for
pandas and for any partitioning. ``dup_keep`` marks one row per group: the one with the
largest ``width * height`` when the frame has width and height columns (rows with a
missing size count as smallest), else, and among equal sizes, the first in table order.
"""

from __future__ import annotations

import numbers
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._dask_types import is_dask_frame, require_frame
from ..exceptions import ColumnError, require_columns
from ._graph import _INDEX, _POS, _frame, _hash_bits, _plan, _popcount, _Spec

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["DEFAULT_MAX_DISTANCE", "MAX_DISTANCE_LIMIT", "duplicates", "leaks"]

#: The default ``max_distance`` for 64-bit dhashes, chosen from the quality table of
#: ``benchmarks/bench_duplicates.py`` (see ``docs/duplicates.md``).
DEFAULT_MAX_DISTANCE = 4
#: The largest ``max_distance`` accepted: past it a 64-bit hash says little, and the
#: bands become too narrow to prune any pair.
MAX_DISTANCE_LIMIT = 16
#: The columns :func:`duplicates` adds.
RESULT_COLUMNS = ("dup_group", "dup_keep")

# --------------------------------------------------------------------------- arguments


def _check_hash_dtype(dtype: Any, hash_col: str) -> None:
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_integer_dtype(dtype):
        raise TypeError(
            f"hash_col={hash_col!r} must be an integer column of 64-bit hashes (as "
            f"ops.report_dhash stores them: UInt64), got dtype {dtype}; for hex strings "
            f"(imagehash's str(h)) convert first: df[{hash_col!r}].map(lambda s: int(s, 16), "
            "na_action='ignore').astype('UInt64')"
        )


def check_distance(max_distance: Any) -> int:
    if isinstance(max_distance, bool) or not isinstance(max_distance, numbers.Integral):
        raise TypeError(f"max_distance must be an int, got {max_distance!r}")
    distance = int(max_distance)
    if not 0 <= distance <= MAX_DISTANCE_LIMIT:
        raise ValueError(
            f"max_distance must be from 0 to {MAX_DISTANCE_LIMIT} bits, got {distance}"
        )
    return distance


def _spec(
    df: Any,
    hash_col: str | None,
    max_distance: Any,
    exact_col: str | None,
    width_col: str | None,
    height_col: str | None,
) -> _Spec:
    require_frame(df)
    if hash_col is None and exact_col is None:
        raise ValueError(
            "give hash_col (a 64-bit perceptual hash such as 'dhash'), exact_col (a byte "
            "digest such as 'sha256'), or both"
        )
    max_distance = check_distance(max_distance)
    require_columns(
        df.columns,
        hash_col=hash_col,
        exact_col=exact_col,
        width_col=width_col,
        height_col=height_col,
    )
    if hash_col is not None:
        _check_hash_dtype(df[hash_col].dtype, hash_col)
    if width_col is None and height_col is None and {"width", "height"} <= set(df.columns):
        width_col, height_col = "width", "height"
    if (width_col is None) != (height_col is None):
        raise ValueError(
            "give both width_col and height_col (the kept row is the largest by area), "
            f"or neither; got width_col={width_col!r}, height_col={height_col!r}"
        )
    return _Spec(hash_col, max_distance, exact_col, width_col, height_col)


# --------------------------------------------------------------------------- public


def duplicates(
    df: pd.DataFrame | dd.DataFrame,
    hash_col: str | None = "dhash",
    max_distance: int = DEFAULT_MAX_DISTANCE,
    exact_col: str | None = None,
    *,
    width_col: str | None = None,
    height_col: str | None = None,
) -> pd.DataFrame | dd.DataFrame:
    """Add ``dup_group`` and ``dup_keep``: groups of exact and near-duplicate rows.

    Two rows are duplicates when their ``hash_col`` values are at most ``max_distance``
    bits apart, or when their ``exact_col`` values are equal; the groups are the
    connected components of that relation. The answer equals a comparison of every
    pair, without making one (multi-index hashing: see
    :mod:`creevey_dask.duplicates._graph`).

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        The table, one row per image, e.g. a result table with ``dhash`` from
        ``measure=["dhash"]`` or ``ops.report_dhash``.
    hash_col : str or None, default "dhash"
        A column of 64-bit perceptual hashes: any integer dtype (``UInt64`` as
        :data:`creevey_dask.ops.report_dhash` stores it; a signed ``int64`` is read as
        its 64 bits). Rows with a null hash (e.g. error rows) are near-duplicates of
        nothing. None to group on ``exact_col`` only.
    max_distance : int, default DEFAULT_MAX_DISTANCE
        The largest Hamming distance, in bits, of two near-duplicates (0 to
        :data:`MAX_DISTANCE_LIMIT`; 0 means equal hashes). The default was chosen from
        the quality table in ``docs/duplicates.md``.
    exact_col : str, optional
        A column of byte digests (``sha256``, ``source_sha256``) or any value that is
        equal exactly for copies. Null digests match nothing.
    width_col, height_col : str, optional
        The image size columns that decide the kept row: the largest area is kept. By
        default ``width`` and ``height`` when the frame has both; without them the
        first row of each group in table order is kept.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        ``df`` with ``dup_group`` (int64: the table position, 0-based, of the group's
        first row; a row without duplicates is its own group) and ``dup_keep`` (bool:
        one row per group). A dask frame stays lazy, but planning computes the
        verified pairs first (the frame is computed once to plan).

    Raises
    ------
    ColumnError
        A named column is missing, or ``df`` already has ``dup_group`` or ``dup_keep``.
    TypeError
        ``hash_col`` is not an integer column, or ``max_distance`` is not an int.
    ValueError
        ``max_distance`` is out of range, or neither column is given.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"dhash": pd.array([0b1111, 0b0111, 2**40, 0b0011], "UInt64"),
    ...                    "width": [10, 20, 30, 5], "height": [10, 20, 30, 5]})
    >>> out = duplicates(df, max_distance=1)
    >>> out[["dup_group", "dup_keep"]].to_dict("list")
    {'dup_group': [0, 0, 2, 0], 'dup_keep': [False, True, True, False]}
    """
    spec = _spec(df, hash_col, max_distance, exact_col, width_col, height_col)
    clash = [c for c in RESULT_COLUMNS if c in df.columns]
    if clash:
        raise ColumnError(
            f"the frame already has {clash}; drop or rename them first, e.g. "
            f"df.drop(columns={clash!r})"
        )
    is_dask = is_dask_frame(df)
    groups, with_pos = _plan(df, spec, is_dask)
    return _frame(with_pos, groups, is_dask)


def _crossing_pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """Every pair of ``rows`` of one ``dup_group`` in different splits (``row_a < row_b``).

    Built split against split, so memory follows the crossing pairs, not the square of
    the group (a group of 6,000 copies in one split and a few in another is cheap).
    """
    rows = rows.reset_index(drop=True)
    codes, _ = pd.factorize(rows["split"])
    keys = pd.DataFrame({"group": rows["dup_group"].to_numpy(), "code": codes})
    firsts, seconds = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for _, group in keys.groupby("group", sort=False):
        by_split = [g.index.to_numpy() for _, g in group.groupby("code", sort=True)]
        for i, a in enumerate(by_split):
            for b in by_split[i + 1 :]:
                firsts.append(np.repeat(a, len(b)))
                seconds.append(np.tile(b, len(a)))
    pa, pb = np.concatenate(firsts), np.concatenate(seconds)
    order = rows["row"].to_numpy()
    swap = order[pa] > order[pb]
    pa, pb = np.where(swap, pb, pa), np.where(swap, pa, pb)
    left = rows.iloc[pa].reset_index(drop=True).add_suffix("_a")
    right = rows.iloc[pb].drop(columns="dup_group").reset_index(drop=True).add_suffix("_b")
    return pd.concat([left, right], axis=1).rename(columns={"dup_group_a": "dup_group"})


def leaks(
    df: pd.DataFrame | dd.DataFrame,
    split_col: str = "split",
    hash_col: str | None = "dhash",
    max_distance: int = DEFAULT_MAX_DISTANCE,
    exact_col: str | None = None,
) -> pd.DataFrame:
    """The pairs of duplicate rows that sit in different splits.

    A pair is listed when its two rows are duplicates by themselves (hashes at most
    ``max_distance`` bits apart, or equal ``exact_col`` values) and their ``split_col``
    values differ. An empty answer means no copy crosses the split.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        A table with a split column, e.g. the output of :func:`creevey_dask.split`.
    split_col : str, default "split"
        The column naming each row's side.
    hash_col, max_distance, exact_col
        As for :func:`duplicates`.

    Returns
    -------
    pandas.DataFrame
        One row per crossing pair, ordered by ``row_a, row_b``: ``row_a < row_b`` (table
        positions, 0-based), ``index_a``, ``index_b`` (the frame's index labels),
        ``split_a``, ``split_b``, ``distance`` (Int64 bits apart; null when only the
        digests matched and a hash is missing) and ``dup_group``. Only the rows of
        groups that span more than one split are gathered from a dask frame, which is
        computed three times (the groups, the groups' splits, those rows): persist it
        first if it is costly. Every pair of such a group is compared, so a group of
        ``k`` rows costs ``k**2`` comparisons.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"dhash": pd.array([0b1111, 0b0111, 2**40], "UInt64"),
    ...                    "split": ["train", "valid", "valid"]})
    >>> leaks(df, max_distance=1)[["row_a", "row_b", "split_a", "split_b", "distance"]]
       row_a  row_b split_a split_b  distance
    0      0      1   train   valid         1
    """
    spec = _spec(df, hash_col, max_distance, exact_col, None, None)
    spec = replace(spec, width_col=None, height_col=None)  # which row is kept: no matter
    require_columns(df.columns, split_col=split_col)
    is_dask = is_dask_frame(df)
    columns = [c for c in dict.fromkeys([split_col, hash_col, exact_col]) if c is not None]
    frame = df[columns]
    groups, with_pos = _plan(frame, spec, is_dask)
    labelled = _frame(with_pos, groups, is_dask, keep_pos=True)
    labelled = labelled[labelled[split_col].notnull()]  # a row in no split crosses none
    counts = labelled.groupby("dup_group")[split_col].nunique()
    if is_dask:
        counts = counts.compute()
    spanning = np.sort(counts.index[counts.to_numpy() > 1].to_numpy(dtype=np.int64))
    rows = labelled[labelled["dup_group"].isin(spanning)]
    if is_dask:
        rows = rows.compute()
    rows = pd.DataFrame(
        {
            "row": rows[_POS].to_numpy(dtype=np.int64),
            "index": rows[_INDEX].to_numpy(),
            "split": rows[split_col].to_numpy(),
            "dup_group": rows["dup_group"].to_numpy(dtype=np.int64),
        }
    ).assign(
        **(
            {"hash": _hash_bits(rows[hash_col])[0], "has": _hash_bits(rows[hash_col])[1]}
            if hash_col is not None
            else {}
        ),
        **({"digest": rows[exact_col].to_numpy()} if exact_col is not None else {}),
    )
    pairs = _crossing_pairs(rows)
    close = np.zeros(len(pairs), dtype=bool)
    distance = pd.array([None] * len(pairs), dtype="Int64")
    if hash_col is not None:
        both = pairs["has_a"].to_numpy(bool) & pairs["has_b"].to_numpy(bool)
        bits = _popcount(pairs["hash_a"].to_numpy(np.uint64) ^ pairs["hash_b"].to_numpy(np.uint64))
        distance = pd.array(np.where(both, bits, 0), dtype="Int64")
        distance[~both] = pd.NA
        close |= both & (bits <= spec.max_distance)
    if exact_col is not None:
        a, b = pairs["digest_a"], pairs["digest_b"]
        close |= (a.notna() & b.notna() & (a == b)).to_numpy(dtype=bool)
    out = pairs.assign(distance=distance)[close]
    columns = [
        "row_a",
        "row_b",
        "index_a",
        "index_b",
        "split_a",
        "split_b",
        "distance",
        "dup_group",
    ]
    return out[columns].sort_values(["row_a", "row_b"], kind="stable").reset_index(drop=True)
