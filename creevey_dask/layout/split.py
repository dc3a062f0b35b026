"""Group-aware, stratified, seeded train/valid(/test) splits: :func:`split`.

:func:`split` adds a ``split`` column (``"train"``, ``"valid"``, optionally ``"test"``)
to a pandas or dask frame. Rows that share a ``groupby`` value land on the same side;
with ``stratify`` the label mix of every split follows the whole. Laying the rows out
as ImageNet-style folders is :mod:`creevey_dask.layout.imagenet`'s (its names are also
reachable from here, as before the two were separate modules).

How the assignment is made, and why it does not depend on the partitioning
--------------------------------------------------------------------------
*With* ``groupby`` the units are the distinct group values. They are computed to the
client (one small table: the distinct groups, and with ``stratify`` the number of rows
per group and label), sorted, and shuffled with ``numpy.random.default_rng(random_state)``;
the first groups in that order go to ``valid``, the next to ``test``, the rest to
``train`` (with ``stratify``, a greedy placement that follows the label mix, largest
groups first, equal sizes in that shuffled order). The group → split table is then sent
once to the partitions.

*Without* ``groupby`` every row is its own unit, identified by its position in the
frame (for dask: the partition lengths are computed, one pass). Each position gets a
score from a seeded 64-bit bijective mix (splitmix64), so distinct rows never tie; the
rows with the lowest scores go to ``valid``, the next ones to ``test``. Only the score
thresholds travel to the partitions. With ``stratify`` the label column is computed to
the client to find one pair of thresholds per label.

Either way the answer is a function of the rows, their order and the seed only: the
same seed gives the same split for a pandas frame and for any partitioning of it.
"""

from __future__ import annotations

import itertools
import logging
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._dask_types import is_dask_frame, require_frame
from .._keywords import public_keywords
from ..exceptions import ColumnError, require_columns
from ..schema import STRING_DTYPE

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["SPLITS", "split"]


logger = logging.getLogger(__name__)

#: The values of the ``split`` column, in the order units are dealt to them.
SPLITS = ("train", "valid", "test")

_TRAIN, _VALID, _TEST = 0, 1, 2
_CODE_NAMES = np.array(SPLITS, dtype=object)
_MASK64 = (1 << 64) - 1
_SHOWN = 5  # how many offending values an error message shows


# --------------------------------------------------------------------------- sizes


def check_size(name: str, size: Any, *, allow_none: bool) -> None:
    """Type and range checks that do not need the number of units."""
    if size is None and allow_none:
        return
    if isinstance(size, bool) or not isinstance(size, (numbers.Integral, numbers.Real)):
        raise TypeError(
            f"{name} must be an int (a count) or a float in (0, 1) (a proportion), got {size!r}"
        )
    if isinstance(size, numbers.Integral):
        if size < 1:
            raise ValueError(f"{name} must be at least 1 when it is a count, got {size}")
        return
    size = float(size)
    if not (0.0 < size < 1.0):
        raise ValueError(
            f"{name} must be in (0, 1) when it is a proportion, got {size!r}; "
            "pass an int for a count"
        )


def _count(name: str, size: Any, n_units: int, unit: str) -> int:
    """The number of units that ``size`` asks for, out of ``n_units``.

    An int is a count. A float is a proportion, rounded up as scikit-learn's
    ``train_test_split`` (and the original creevey) does, so the split gets at least
    that proportion: ``ceil(size * n_units)``. The product is first rounded to 9
    decimals, so that float artefacts (``0.7 * 10 == 7.000000000000001``) do not add
    a unit.
    """
    if isinstance(size, numbers.Integral):
        k = int(size)
    else:
        k = max(1, math.ceil(round(float(size) * n_units, 9)))
    if k >= n_units:
        raise ValueError(
            f"{name}={size!r} asks for {k} of the {n_units} {unit}, which leaves none for "
            f"train; it must be fewer than {n_units}"
        )
    return k


def _counts(valid_size: Any, test_size: Any, n_units: int, unit: str) -> tuple[int, int]:
    k_valid = _count("valid_size", valid_size, n_units, unit)
    k_test = 0 if test_size is None else _count("test_size", test_size, n_units, unit)
    if k_valid + k_test >= n_units:
        raise ValueError(
            f"valid_size={valid_size!r} and test_size={test_size!r} ask for {k_valid} + "
            f"{k_test} of the {n_units} {unit}, which leaves none for train"
        )
    return k_valid, k_test


# --------------------------------------------------------------------------- scoring


def _seed_key(random_state: Any) -> tuple[np.random.Generator, int]:
    """A numpy Generator and a 64-bit key, both from ``random_state``."""
    if random_state is not None and (
        isinstance(random_state, bool)
        or not isinstance(random_state, (numbers.Integral, np.random.Generator))
    ):
        raise TypeError(
            f"random_state must be None, an int or a numpy Generator, got {random_state!r}"
        )
    rng = (
        random_state
        if isinstance(random_state, np.random.Generator)
        else np.random.default_rng(None if random_state is None else int(random_state))
    )
    key = int(rng.integers(0, 1 << 64, dtype=np.uint64))
    return rng, key


def _mix(positions: np.ndarray, key: int) -> np.ndarray:
    """splitmix64 of ``positions + key``: a bijection on uint64, so no two rows tie."""
    z = positions.astype(np.uint64) + np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _apportion(sizes: np.ndarray, k: int, room: np.ndarray) -> np.ndarray:
    """Split ``k`` over strata of ``sizes`` rows in proportion (largest remainder).

    Never more than ``room`` per stratum; ties go to the earlier stratum.
    """
    n = int(sizes.sum())
    exact = sizes.astype(object) * k  # exact integers, no float rounding
    base = np.array(
        [min(int(e // n), int(r)) for e, r in zip(exact, room, strict=True)], dtype=np.int64
    )
    remainder = np.array([int(e % n) for e in exact], dtype=object)
    left = k - int(base.sum())
    order = sorted(range(len(sizes)), key=lambda i: (-remainder[i], i))
    for i in order:
        if left == 0:
            break
        if base[i] < room[i]:
            base[i] += 1
            left -= 1
    for i in range(len(sizes)):  # only reached when the floors were capped by ``room``
        while left and base[i] < room[i]:
            base[i] += 1
            left -= 1
    return base


def _kth_smallest(values: np.ndarray, k: int) -> Any:
    return np.partition(values, k - 1)[k - 1]


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class _RowPlan:
    """Rows are units: thresholds on the score of each row's position."""

    key: int
    offsets: tuple[int, ...]
    strata: pd.Index | None  # labels, or None without stratify
    valid_max: np.ndarray  # uint64 per stratum: highest score that goes to valid
    has_valid: np.ndarray  # bool per stratum
    test_max: np.ndarray
    has_test: np.ndarray
    stratify: str | None = None

    def codes(self, part: pd.DataFrame, number: int) -> np.ndarray:
        start = self.offsets[number]
        scores = _mix(np.arange(start, start + len(part), dtype=np.uint64), self.key)
        if self.strata is None:
            which = np.zeros(len(part), dtype=np.intp)
        else:
            which = self.strata.get_indexer(part[self.stratify])
            _check_known(which, part[self.stratify], "label")
        valid = self.has_valid[which] & (scores <= self.valid_max[which])
        test = ~valid & self.has_test[which] & (scores <= self.test_max[which])
        codes = np.full(len(part), _TRAIN, dtype=np.int8)
        codes[valid] = _VALID
        codes[test] = _TEST
        return codes


@dataclass(frozen=True)
class _GroupPlan:
    """Groups are units: a table from group value to split."""

    groupby: str
    groups: pd.Index
    group_codes: np.ndarray = field(repr=False)

    def codes(self, part: pd.DataFrame, number: int) -> np.ndarray:
        where = self.groups.get_indexer(part[self.groupby])
        _check_known(where, part[self.groupby], "group")
        return self.group_codes[where]


def _check_known(where: np.ndarray, values: pd.Series, what: str) -> None:
    if (where < 0).any():
        unseen = pd.unique(values[where < 0])[:_SHOWN]
        raise ValueError(
            f"{what} value(s) {list(unseen)} were not in the frame when the split was "
            "planned; did the data change between computations? persist() it first"
        )


def _assign(part: pd.DataFrame, plan: _RowPlan | _GroupPlan, number: int = 0) -> Any:
    codes = plan.codes(part, number)
    labels = _CODE_NAMES[codes] if len(codes) else np.array([], dtype=object)
    return part.assign(split=pd.Series(labels, index=part.index, dtype=STRING_DTYPE))


def _compute(is_dask: bool, *objs: Any) -> tuple[Any, ...]:
    if not is_dask:
        return objs
    import dask

    return dask.compute(*objs)


def null_error(column: str, role: str, n_null: int, examples: Sequence[Any]) -> ValueError:
    shown = f", e.g. at index {list(examples)[:_SHOWN]}" if len(examples) else ""
    return ValueError(
        f"{n_null} row(s) have no {role} (null in column {column!r}){shown}; drop or fill "
        f"them first, e.g. df.dropna(subset=[{column!r}])"
    )


def _null_examples(df: Any, column: str) -> list[Any]:
    """The index of the first few rows where ``column`` is null (an error path only)."""
    nulls = df[df[column].isna()]
    if is_dask_frame(df):
        return list(nulls.head(_SHOWN, npartitions=-1).index)
    return list(nulls.index[:_SHOWN])


def _sorted_unique(values: pd.Series) -> pd.Series:
    """Distinct values in a canonical order (sorted; mixed types by type name, repr)."""
    values = values.drop_duplicates().reset_index(drop=True)
    try:
        return values.sort_values(kind="stable").reset_index(drop=True)
    except TypeError:
        keys = values.map(lambda v: (type(v).__name__, repr(v)))
        return values.iloc[np.argsort(keys.to_numpy(), kind="stable")].reset_index(drop=True)


def _row_plan(
    df: Any,
    is_dask: bool,
    valid_size: Any,
    test_size: Any,
    stratify: str | None,
    key: int,
) -> _RowPlan:
    lengths_obj = df.map_partitions(len) if is_dask else len(df)
    if stratify is None:
        (lengths,) = _compute(is_dask, lengths_obj)
        labels = None
    else:
        lengths, labels = _compute(is_dask, lengths_obj, df[stratify])
    lengths = [int(n) for n in (lengths if is_dask else [lengths])]
    offsets = tuple(int(x) for x in np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    n = int(sum(lengths))
    if n == 0:
        raise ValueError("the frame has no rows; there is nothing to split")
    k_valid, k_test = _counts(valid_size, test_size, n, "rows")
    scores = _mix(np.arange(n, dtype=np.uint64), key)
    if labels is None:
        strata = None
        stratum_scores = [scores]
    else:
        if labels.isna().any():
            examples = list(labels.index[labels.isna().to_numpy()][:_SHOWN])
            raise null_error(str(stratify), "stratify label", int(labels.isna().sum()), examples)
        labels = labels.reset_index(drop=True)
        strata = pd.Index(_sorted_unique(labels))
        which = strata.get_indexer(labels)
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(len(strata) + 1))
        stratum_scores = [scores[order[a:b]] for a, b in itertools.pairwise(bounds)]
    sizes = np.array([len(s) for s in stratum_scores], dtype=np.int64)
    if strata is None:
        per_valid = np.array([k_valid])
        per_test = np.array([k_test])
    else:
        per_valid = _apportion(sizes, k_valid, sizes)
        per_test = _apportion(sizes, k_test, sizes - per_valid)
    m = len(sizes)
    valid_max = np.zeros(m, dtype=np.uint64)
    test_max = np.zeros(m, dtype=np.uint64)
    for i, s in enumerate(stratum_scores):
        if per_valid[i]:
            valid_max[i] = _kth_smallest(s, int(per_valid[i]))
        if per_test[i]:
            test_max[i] = _kth_smallest(s, int(per_valid[i] + per_test[i]))
    return _RowPlan(
        key=key,
        offsets=offsets,
        strata=strata,
        valid_max=valid_max,
        has_valid=per_valid > 0,
        test_max=test_max,
        has_test=per_test > 0,
        stratify=stratify,
    )


def _group_plan(
    df: Any,
    is_dask: bool,
    valid_size: Any,
    test_size: Any,
    groupby: str,
    stratify: str | None,
    rng: np.random.Generator,
) -> _GroupPlan:
    n_null_groups = df[groupby].isna().sum()
    if stratify is None:
        uniques, n_null = _compute(is_dask, df[groupby].drop_duplicates(), n_null_groups)
        table = None
    else:
        sizes = df.groupby([groupby, stratify], dropna=False, observed=True).size()
        n_null_labels = df[stratify].isna().sum()
        table, n_null, n_null_l = _compute(is_dask, sizes, n_null_groups, n_null_labels)
        if int(n_null_l):
            examples = _null_examples(df, stratify)
            raise null_error(stratify, "stratify label", int(n_null_l), examples)
        table = table.rename("n").reset_index()
        uniques = table[groupby]
    if int(n_null):
        raise null_error(groupby, "group", int(n_null), _null_examples(df, groupby))
    groups = _sorted_unique(pd.Series(uniques))
    n_groups = len(groups)
    if n_groups == 0:
        raise ValueError("the frame has no rows; there is nothing to split")
    k_valid, k_test = _counts(valid_size, test_size, n_groups, "groups")
    order = rng.permutation(n_groups)
    index = pd.Index(groups)
    if table is None:
        codes = np.full(n_groups, _TRAIN, dtype=np.int8)
        codes[order[:k_valid]] = _VALID
        codes[order[k_valid : k_valid + k_test]] = _TEST
    else:
        codes = _stratified_groups(table, groupby, stratify, index, order, k_valid, k_test)
    return _GroupPlan(groupby=groupby, groups=index, group_codes=codes)


def _stratified_groups(
    table: pd.DataFrame,
    groupby: str,
    stratify: str | None,
    groups: pd.Index,
    order: np.ndarray,
    k_valid: int,
    k_test: int,
) -> np.ndarray:
    """Deal groups to splits so that each split's label mix follows the whole.

    Groups are placed largest first (groups of equal size in the seeded random
    ``order``). Each goes to the split, among those with group slots left, whose
    squared distance to its target label counts drops the most, relative to that
    split's target size; a split's target for a label is its share of the groups
    times that label's rows. Small groups come last and fill the remaining gaps.
    """
    g = groups.get_indexer(table[groupby])
    labels = pd.Index(_sorted_unique(table[stratify]))
    lab = labels.get_indexer(table[stratify])
    n = table["n"].to_numpy(dtype=np.int64)
    n_groups, n_labels = len(groups), len(labels)
    by_group = np.argsort(g, kind="stable")
    bounds = np.searchsorted(g[by_group], np.arange(n_groups + 1))
    group_size = np.bincount(g, weights=n, minlength=n_groups)
    total = np.bincount(lab, weights=n, minlength=n_labels)
    capacity = np.array([n_groups - k_valid - k_test, k_valid, k_test], dtype=np.int64)
    share = capacity / n_groups
    target = np.outer(share, total)  # splits x labels
    target_size = np.maximum(share * total.sum(), 1e-9)
    counts = np.zeros((3, n_labels))
    rank = np.empty(n_groups, dtype=np.int64)
    rank[order] = np.arange(n_groups)
    sequence = np.lexsort((rank, -group_size))
    # rows in preference order for ties: valid, test, train (the smaller splits first)
    prefer = np.array([_VALID, _TEST, _TRAIN], dtype=np.int8)
    target, target_size, capacity = target[prefer], target_size[prefer], capacity[prefer]
    lab_sorted, n_sorted = lab[by_group], n[by_group].astype(float)
    codes = np.full(n_groups, _TRAIN, dtype=np.int8)
    for gi in sequence:
        ls = lab_sorted[bounds[gi] : bounds[gi + 1]]
        ns = n_sorted[bounds[gi] : bounds[gi + 1]]
        gap = counts[:, ls] - target[:, ls]  # splits x this group's labels
        cost = (gap @ (2 * ns) + ns @ ns) / target_size
        cost[capacity == 0] = np.inf
        best = int(np.argmin(cost))
        codes[gi] = prefer[best]
        capacity[best] -= 1
        counts[best, ls] += ns
    return codes


# --------------------------------------------------------------------------- split


@public_keywords("split")
def split(
    df: pd.DataFrame | dd.DataFrame,
    valid_size: int | float,
    groupby: str | None = None,
    stratify: str | None = None,
    test_size: int | float | None = None,
    random_state: int | np.random.Generator | None = None,
) -> pd.DataFrame | dd.DataFrame:
    """Add a ``split`` column: ``"train"``, ``"valid"`` and, with ``test_size``, ``"test"``.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        The table, one row per image.
    valid_size : int or float
        How many *units* go to ``valid``: groups with ``groupby``, else rows. An int is
        an exact count (at least 1, fewer than the units); a float in (0, 1) is a
        proportion, rounded up (``ceil(valid_size * n)``, as scikit-learn's
        ``train_test_split``), so ``valid`` gets at least that proportion.
    groupby : str, optional
        A column whose rows must stay together: every value of it lands in exactly
        one split (for example a patient or product id, or ``dup_group`` from
        :func:`creevey_dask.duplicates`, so that no copy of an image crosses sides).
        Nulls are refused.
    stratify : str, optional
        A label column. Each split's label proportions then follow the whole frame's:
        without ``groupby`` exactly, to the row (largest-remainder apportionment per
        label); with ``groupby`` as closely as the groups allow (a greedy placement,
        largest groups first). Nulls are refused.
    test_size : int or float, optional
        Like ``valid_size``, for a third split ``"test"``. At least one unit must be
        left for ``train``.
    random_state : int or numpy.random.Generator, optional
        The seed. The same int gives the same split for the same rows in the same
        order, whether the frame is pandas or dask and however it is partitioned.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        ``df`` with a ``split`` column of pandas string dtype. A dask frame stays lazy,
        but planning computes a small summary first: with ``groupby`` the distinct groups
        (and, with ``stratify``, the row count per group and label); without it the
        partition lengths (and, with ``stratify``, the label column).

    Raises
    ------
    ColumnError
        A named column is missing, or ``df`` already has a ``split`` column.
    ValueError
        A size is out of range for the number of units, or a group or label is null.
    TypeError
        A size or ``random_state`` has the wrong type.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"patient": [1, 1, 2, 3, 3, 4], "label": list("aabbab")})
    >>> out = split(df, valid_size=1, groupby="patient", random_state=0)
    >>> int(out.groupby("patient")["split"].nunique().max())  # a patient is never split
    1
    >>> int((out.drop_duplicates("patient")["split"] == "valid").sum())
    1
    """
    check_size("valid_size", valid_size, allow_none=False)
    check_size("test_size", test_size, allow_none=True)
    require_frame(df)
    require_columns(df.columns, groupby=groupby, stratify=stratify)
    if "split" in df.columns:
        raise ColumnError(
            "the frame already has a 'split' column; drop or rename it first, e.g. "
            "df.drop(columns='split') or df.rename(columns={'split': 'old_split'})"
        )
    is_dask = is_dask_frame(df)
    rng, key = _seed_key(random_state)
    plan: _RowPlan | _GroupPlan
    if groupby is None:
        plan = _row_plan(df, is_dask, valid_size, test_size, stratify, key)
    else:
        plan = _group_plan(df, is_dask, valid_size, test_size, groupby, stratify, rng)
    if not is_dask:
        return _assign(df, plan)
    import dask

    meta = df._meta.assign(split=pd.Series([], index=df._meta.index, dtype=STRING_DTYPE))
    shared = dask.delayed(plan, pure=True, traverse=False)  # one graph key, not one per task
    with dask.config.set({"dataframe.convert-string": False}):
        if isinstance(plan, _GroupPlan):
            return df.map_partitions(_assign, shared, meta=meta)
        # A row's split depends on its position, so each partition must keep its own
        # number. map_partitions' partition_info does not survive optimisations such as
        # ``result.partitions[i]`` (it would number the selected partition 0), hence one
        # explicit task per partition.
        import dask.dataframe as dd

        assign = dask.delayed(_assign, pure=True)
        parts = [assign(part, shared, i) for i, part in enumerate(df.to_delayed())]
        return dd.from_delayed(parts, meta=meta, divisions=df.divisions, verify_meta=False)
