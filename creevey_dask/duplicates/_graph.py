"""The duplicate graph of a table's rows: its edges, its components, the groups.

Rows are joined by an edge when their byte digests are equal or their 64-bit hashes at
most ``max_distance`` bits apart (see :mod:`creevey_dask.duplicates`); the groups are
the connected components, and each row is labelled with its group and whether it is the
kept one.

How the groups are found
------------------------
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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

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


@dataclass(frozen=True)
class _Spec:
    """What to group on, checked against the frame's columns."""

    hash_col: str | None
    max_distance: int
    exact_col: str | None
    width_col: str | None
    height_col: str | None


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
