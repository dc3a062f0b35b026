"""Exact and near-duplicate groups of a table's rows: :func:`duplicates`, :func:`leaks`.

:func:`duplicates` adds ``dup_group`` and ``dup_keep`` to a pandas or dask frame, so that
``df[df.dup_keep]`` is the deduplicated table and ``split(df, groupby="dup_group")`` keeps
every group of copies on one side. :func:`leaks` lists the near-duplicate pairs that
cross a split.

How the groups are found
------------------------
Two rows are *duplicates* when their byte digests (``exact_col``, e.g. ``sha256``) are
equal, or when their 64-bit perceptual hashes (``hash_col``, e.g. ``dhash`` as
:data:`creevey_dask.ops.report_dhash` stores it: ``UInt64``) are at most
``max_distance`` bits apart. The groups are the connected components of that relation
(so a chain of small edits can join two rows further apart than ``max_distance``).

No pass compares every pair. Rows with equal hashes are first collapsed to one
representative. The 64 bits are then cut into ``max_distance + 1`` bands; by the
pigeonhole principle two hashes at most ``max_distance`` bits apart agree exactly on at
least one band (multi-index hashing, Norouzi, Punjani and Fleet, CVPR 2012). So the
candidate pairs are the pairs that share a band value, and each candidate is verified by
its exact Hamming distance: the result equals a brute-force comparison of all pairs.
The components of the verified pairs come from a union-find (hooking roots to the
smaller root, with pointer jumping) over the rows that have any duplicate.

On a dask frame the equal-digest, equal-hash and band groupings are shuffles
(``DataFrame.shuffle`` on the digest, the hash, and each band's value), and the pairs
are found inside each shuffled partition. What comes back to the client are the
verified pairs only (four int64 per pair), never the frame nor the hash column; the
union-find runs on the client over the rows that have a duplicate, and its answer (three
int64 arrays of at most that many rows) is sent once to the partitions. The frame is
computed twice: once to plan, and again when the lazy result is computed, so
``persist()`` a frame that is costly to compute.

Cost: for hashes spread evenly over the 64 bits, a band of ``b = 64 / (max_distance +
1)`` bits gives about ``(max_distance + 1) * n**2 / 2**(b + 1)`` candidates: near-linear
up to ``n`` around ``2**b`` (65,536 at distance 3, 8,192 at 4) and growing as ``n**2 /
2**b`` past it; images that hash alike (blank or near-uniform images share many bits)
make larger buckets. ``benchmarks/bench_duplicates.py`` measures it.

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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._dask_types import is_dask_frame, require_frame
from .exceptions import ColumnError, require_columns

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

_POS = "__creevey_pos"
_AREA = "__creevey_area"
_HASH = "__creevey_hash"
_HAS_HASH = "__creevey_has_hash"
_HAS_DIGEST = "__creevey_has_digest"
_ROOT = "__creevey_root"
_ROOT_AREA = "__creevey_root_area"
_KEY = "__creevey_band"
_INDEX = "__creevey_index"
_EDGE_COLUMNS = ("a", "b", "area_a", "area_b")
_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(values: np.ndarray) -> np.ndarray:
    """The number of set bits of each uint64."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(values)
    as_bytes = np.ascontiguousarray(values, dtype=np.uint64).view(np.uint8).reshape(-1, 8)
    return _BYTE_BITS[as_bytes].sum(axis=1, dtype=np.uint8)  # pragma: no cover - numpy 1


def _bands(max_distance: int) -> list[tuple[int, int]]:
    """``(shift, mask)`` of the ``max_distance + 1`` bands the 64 bits are cut into."""
    n = max_distance + 1
    widths = [64 // n + (1 if i < 64 % n else 0) for i in range(n)]
    out, shift = [], 0
    for width in widths:
        out.append((shift, (1 << width) - 1))
        shift += width
    return out


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


@dataclass(frozen=True)
class _Spec:
    """What to group on, checked against the frame's columns."""

    hash_col: str | None
    max_distance: int
    exact_col: str | None
    width_col: str | None
    height_col: str | None


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


# --------------------------------------------------------------------------- kernels
# Each takes and returns a pandas frame: the whole table for pandas, one (shuffled)
# partition for dask.


def _hash_bits(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The hashes as uint64 bits and where they are present.

    A signed int is reinterpreted as the unsigned int of its own width (an int8 ``-1``
    is ``0xFF``, one bit from ``127``), so a narrow hash keeps its own bits.
    """
    present = values.notna().to_numpy(dtype=bool)
    dtype = values.dtype
    numpy_dtype = np.dtype(getattr(dtype, "numpy_dtype", dtype))
    raw = values.to_numpy(dtype=numpy_dtype, na_value=0) if not present.all() else None
    raw = values.to_numpy(dtype=numpy_dtype) if raw is None else raw
    if numpy_dtype.kind == "i":
        unsigned = raw.view(np.dtype(f"u{numpy_dtype.itemsize}"))
        return unsigned.astype(np.uint64), present
    return raw.astype(np.uint64), present


def _prepare(part: pd.DataFrame, spec: _Spec) -> pd.DataFrame:
    """The few columns the grouping needs: position, area, hash bits, digest."""
    out = pd.DataFrame({_POS: part[_POS].to_numpy(dtype=np.int64)}, index=part.index)
    if spec.width_col is not None and spec.height_col is not None:
        width = pd.to_numeric(part[spec.width_col], errors="coerce")
        height = pd.to_numeric(part[spec.height_col], errors="coerce")
        area = (width * height).astype("float64").fillna(-1).to_numpy()
        out[_AREA] = area.astype(np.int64)
    else:
        out[_AREA] = np.zeros(len(part), dtype=np.int64)
    if spec.hash_col is not None:
        bits, present = _hash_bits(part[spec.hash_col])
        out[_HASH] = bits
        out[_HAS_HASH] = present
    if spec.exact_col is not None:
        out[spec.exact_col] = part[spec.exact_col]
        out[_HAS_DIGEST] = part[spec.exact_col].notna().to_numpy(dtype=bool)
    return out


def _with_roots(part: pd.DataFrame, on: str) -> pd.DataFrame:
    """Each row with the position and area of the first row sharing its ``on`` value."""
    root = part.groupby(on, sort=False)[_POS].transform("min").to_numpy(dtype=np.int64)
    area = pd.Series(part[_AREA].to_numpy(), index=part[_POS].to_numpy())
    root_area = area.reindex(root).to_numpy(dtype=np.int64) if len(part) else root
    return part.assign(**{_ROOT: root, _ROOT_AREA: root_area})


def _edges(a: Any, b: Any, area_a: Any, area_b: Any) -> pd.DataFrame:
    arrays = (a, b, area_a, area_b)
    return pd.DataFrame(
        {name: np.asarray(v, dtype=np.int64) for name, v in zip(_EDGE_COLUMNS, arrays, strict=True)}
    )


def _root_edges(part: pd.DataFrame) -> pd.DataFrame:
    """An edge from every row to the first row of its equal-value set."""
    other = part[part[_POS].to_numpy() != part[_ROOT].to_numpy()]
    return _edges(other[_POS], other[_ROOT], other[_AREA], other[_ROOT_AREA])


def _equal_edges(part: pd.DataFrame, on: str) -> pd.DataFrame:
    return _root_edges(_with_roots(part, on))


def _with_band(part: pd.DataFrame, shift: int, mask: int) -> pd.DataFrame:
    """The hash's band of ``mask`` bits from bit ``shift``, as ``_KEY``."""
    bits = part[_HASH].to_numpy(dtype=np.uint64)
    return part.assign(**{_KEY: (bits >> np.uint64(shift)) & np.uint64(mask)})


def _band_edges(part: pd.DataFrame, max_distance: int) -> pd.DataFrame:
    """The pairs sharing a band value (``_KEY``) whose hashes are close enough."""
    keys = part[_KEY].to_numpy()
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    bits = part[_HASH].to_numpy()[order]
    n = len(keys)
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    if n > 1:
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        lengths = np.diff(np.r_[starts, n])
        end = np.repeat(starts + lengths, lengths)
        here = np.flatnonzero(end - np.arange(n) > 1)
        step = 1
        while here.size:  # compare each row with the one ``step`` further in its bucket
            there = here + step
            close = _popcount(bits[here] ^ bits[there]) <= max_distance
            firsts.append(here[close])
            seconds.append(there[close])
            step += 1
            here = here[end[here] - here > step]
    first = np.concatenate(firsts) if firsts else np.array([], dtype=np.intp)
    second = np.concatenate(seconds) if seconds else np.array([], dtype=np.intp)
    pos = part[_POS].to_numpy()[order]
    area = part[_AREA].to_numpy()[order]
    return _edges(pos[first], pos[second], area[first], area[second])


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class _Groups:
    """The rows that have a duplicate: their positions, group ids and the kept ones."""

    nodes: np.ndarray = field(repr=False)  # sorted positions
    roots: np.ndarray = field(repr=False)  # the group id of each node
    keep: np.ndarray = field(repr=False)  # sorted positions of the kept nodes

    def label(self, part: pd.DataFrame) -> pd.DataFrame:
        pos = part[_POS].to_numpy(dtype=np.int64)
        group = pos.copy()
        kept = np.ones(len(pos), dtype=bool)
        if len(self.nodes):
            where = np.minimum(np.searchsorted(self.nodes, pos), len(self.nodes) - 1)
            found = self.nodes[where] == pos
            group[found] = self.roots[where[found]]
            at = np.minimum(np.searchsorted(self.keep, pos), len(self.keep) - 1)
            kept = ~found | (self.keep[at] == pos)
        return part.drop(columns=[_POS]).assign(
            dup_group=pd.Series(group, index=part.index, dtype="int64"),
            dup_keep=pd.Series(kept, index=part.index, dtype=bool),
        )


def _components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union-find over the edges ``a[i] - b[i]``: nodes, each node's smallest member, and
    the inverse (the node number of each endpoint of ``concatenate([a, b])``)."""
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    ea, eb = inverse[: len(a)], inverse[len(a) :]
    parent = np.arange(len(nodes))
    while len(ea):
        pa, pb = parent[ea], parent[eb]  # roots: parent is fully compressed here
        differ = pa != pb
        ea, eb, pa, pb = ea[differ], eb[differ], pa[differ], pb[differ]
        if not len(ea):
            break
        # hook the larger root under the smaller: roots only decrease, so no cycles,
        # and a component's last root is its smallest node
        np.minimum.at(parent, np.maximum(pa, pb), np.minimum(pa, pb))
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return nodes, nodes[parent], inverse


def _groups(edges: pd.DataFrame) -> _Groups:
    a = edges["a"].to_numpy(dtype=np.int64)
    b = edges["b"].to_numpy(dtype=np.int64)
    nodes, roots, inverse = _components(a, b)
    area = np.zeros(len(nodes), dtype=np.int64)
    area[inverse] = np.concatenate([edges["area_a"].to_numpy(), edges["area_b"].to_numpy()])
    order = np.lexsort((nodes, -area, roots))  # by group, largest first, then table order
    first = np.r_[True, roots[order][1:] != roots[order][:-1]] if len(order) else order
    keep = np.sort(nodes[order][first.astype(bool)])
    return _Groups(nodes=nodes, roots=roots, keep=keep)


def _positions(df: Any, is_dask: bool) -> Any:
    """``df`` with a column of table positions (0-based; for dask a cumulative sum, so
    the positions do not depend on the partitioning)."""
    if not is_dask:
        return df.assign(**{_POS: np.arange(len(df), dtype=np.int64)})
    ones = df.assign(**{_POS: 1})[_POS].astype("int64")
    return df.assign(**{_POS: ones.cumsum() - 1})


def _meta_edges() -> pd.DataFrame:
    return _edges(*([[]] * 4))


def _plan(df: Any, spec: _Spec, is_dask: bool) -> tuple[_Groups, Any]:
    """The groups, and ``df`` with its positions column."""
    with_pos = _positions(df, is_dask)
    empty = _prepare(with_pos._meta if is_dask else with_pos.iloc[:0], spec)
    if is_dask:
        prepared = with_pos.map_partitions(_prepare, spec, meta=empty)
    else:
        prepared = _prepare(with_pos, spec)

    def apply(frame: Any, func: Any, meta: pd.DataFrame, *args: Any) -> Any:
        if not is_dask:
            return func(frame, *args)
        return frame.map_partitions(func, *args, meta=meta)

    def grouped(frame: Any, on: str, func: Any, meta: pd.DataFrame, *args: Any) -> Any:
        return apply(frame.shuffle(on=on) if is_dask else frame, func, meta, *args)

    found: list[Any] = []
    if spec.exact_col is not None:
        digests = prepared[prepared[_HAS_DIGEST]][[_POS, _AREA, spec.exact_col]]
        found.append(grouped(digests, spec.exact_col, _equal_edges, _meta_edges(), spec.exact_col))
    if spec.hash_col is not None:
        hashed = prepared[prepared[_HAS_HASH]][[_POS, _AREA, _HASH]]
        meta = _with_roots(empty[[_POS, _AREA, _HASH]], _HASH)
        rooted = grouped(hashed, _HASH, _with_roots, meta, _HASH)
        found.append(apply(rooted, _root_edges, _meta_edges()))
        distinct = rooted[rooted[_POS] == rooted[_ROOT]][[_POS, _AREA, _HASH]]
        band_meta = _with_band(meta[[_POS, _AREA, _HASH]], 0, 1)
        for shift, mask in _bands(spec.max_distance) if spec.max_distance else []:
            band = apply(distinct, _with_band, band_meta, shift, mask)
            found.append(grouped(band, _KEY, _band_edges, _meta_edges(), spec.max_distance))
    if is_dask:
        import dask

        found = list(dask.compute(*found))
    edges = pd.concat(found, ignore_index=True) if found else _meta_edges()
    return _groups(edges), with_pos


def _frame(df: Any, groups: _Groups, is_dask: bool, keep_pos: bool = False) -> Any:
    """``df`` (with positions) labelled with the groups."""
    label = _label_keeping_pos if keep_pos else _label
    if not is_dask:
        return label(df, groups)
    import dask

    meta = label(df._meta, _Groups(*(np.array([], dtype=np.int64),) * 3))
    shared = dask.delayed(groups, pure=True, traverse=False)  # one graph key for all tasks
    with dask.config.set({"dataframe.convert-string": False}):
        return df.map_partitions(label, shared, meta=meta)


def _label(part: pd.DataFrame, groups: _Groups) -> pd.DataFrame:
    return groups.label(part)


def _label_keeping_pos(part: pd.DataFrame, groups: _Groups) -> pd.DataFrame:
    return groups.label(part).assign(**{_POS: part[_POS].to_numpy(), _INDEX: part.index})


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
    pair, without making one (see the module docstring: multi-index hashing).

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
