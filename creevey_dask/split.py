"""Group-aware train/valid(/test) splits and ImageNet-style folder trees.

Two layers:

* :func:`split` adds a ``split`` column (``"train"``, ``"valid"``, optionally
  ``"test"``) to a pandas or dask frame. Rows that share a ``groupby`` value land on
  the same side; with ``stratify`` the label mix of every split follows the whole.
* :func:`create_imagenet_style_symlinks` lays the rows out as
  ``<outdir>/<split>/<label>/<file>`` (symlinks, or copies on any fsspec filesystem)
  and writes ``manifest.csv``, the layout that torchvision's ``ImageFolder``, fastai
  and HuggingFace ``datasets``' ``imagefolder`` read.

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

import contextlib
import errno
import itertools
import logging
import math
import numbers
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from . import storage
from .exceptions import ColumnError, require_columns
from .naming import disambiguate, safe_name
from .options import KEEP_STATUSES
from .schema import STRING_DTYPE

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = [
    "LINK_MODES",
    "MANIFEST_NAME",
    "SPLITS",
    "KEEP_STATUSES",
    "create_imagenet_style_symlinks",
    "imagenet_symlinks",
    "safe_label",
    "split",
]

logger = logging.getLogger(__name__)

#: The values of the ``split`` column, in the order units are dealt to them.
SPLITS = ("train", "valid", "test")
#: How :func:`imagenet_symlinks` puts a file into the tree (its ``link=``).
LINK_MODES = ("symlink", "copy")
#: The name of the manifest written into ``outdir``.
MANIFEST_NAME = "manifest.csv"

_TRAIN, _VALID, _TEST = 0, 1, 2
_CODE_NAMES = np.array(SPLITS, dtype=object)
_MASK64 = (1 << 64) - 1
_SHOWN = 5  # how many offending values an error message shows
_COPY_THREADS = 8  # concurrent copies with link="copy"


# --------------------------------------------------------------------------- sizes


def _check_size(name: str, size: Any, *, allow_none: bool) -> None:
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


def _is_dask(df: Any) -> bool:
    import dask.dataframe as dd

    return isinstance(df, dd.DataFrame)


def _compute(is_dask: bool, *objs: Any) -> tuple[Any, ...]:
    if not is_dask:
        return objs
    import dask

    return dask.compute(*objs)


def _null_error(column: str, role: str, n_null: int, examples: Sequence[Any]) -> ValueError:
    shown = f", e.g. at index {list(examples)[:_SHOWN]}" if len(examples) else ""
    return ValueError(
        f"{n_null} row(s) have no {role} (null in column {column!r}){shown}; drop or fill "
        f"them first, e.g. df.dropna(subset=[{column!r}])"
    )


def _null_examples(df: Any, column: str) -> list[Any]:
    """The index of the first few rows where ``column`` is null (an error path only)."""
    nulls = df[df[column].isna()]
    if _is_dask(df):
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
            raise _null_error(str(stratify), "stratify label", int(labels.isna().sum()), examples)
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
            raise _null_error(stratify, "stratify label", int(n_null_l), examples)
        table = table.rename("n").reset_index()
        uniques = table[groupby]
    if int(n_null):
        raise _null_error(groupby, "group", int(n_null), _null_examples(df, groupby))
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
        one split (for example a patient or product id). Nulls are refused.
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
    _check_size("valid_size", valid_size, allow_none=False)
    _check_size("test_size", test_size, allow_none=True)
    if not isinstance(df, pd.DataFrame) and not _is_dask(df):
        raise TypeError(f"df must be a pandas or dask DataFrame, got {type(df).__name__}")
    require_columns(df.columns, groupby=groupby, stratify=stratify)
    if "split" in df.columns:
        raise ColumnError(
            "the frame already has a 'split' column; drop or rename it first, e.g. "
            "df.drop(columns='split') or df.rename(columns={'split': 'old_split'})"
        )
    is_dask = _is_dask(df)
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


# --------------------------------------------------------------------------- names


def safe_label(label: Any) -> str:
    """A safe folder name for ``label``: one path component, not hidden, never ``..``.

    :func:`creevey_dask.naming.safe_name` of the label's text: path separators,
    control characters and characters that Windows refuses become ``_``; leading dots
    become ``_`` and trailing dots and spaces go; an empty result is ``_``; Windows
    device names (``CON``, ``NUL``, ...) get a leading ``_``; names longer than 255
    bytes are cut and end in a hash of the label. The mapping is deterministic. Two
    labels with the same safe name are told apart by
    :func:`create_imagenet_style_symlinks` with a hash suffix
    (:func:`creevey_dask.naming.disambiguate`).

    Examples
    --------
    >>> safe_label("cats/dogs"), safe_label(".."), safe_label(".hidden"), safe_label(3)
    ('cats_dogs', '_', '_hidden', '3')
    """
    return safe_name(str(label))


def _label_folders(labels: Iterable[Any]) -> dict[Any, str]:
    """Distinct folder names for distinct labels, even on case-insensitive filesystems."""
    distinct = list(dict.fromkeys(labels))
    names = {label: safe_label(label) for label in distinct}
    clashes = pd.Series([n.casefold() for n in names.values()]).duplicated(keep=False).to_numpy()
    for label, clash in zip(distinct, clashes, strict=True):
        if clash:
            names[label] = disambiguate(names[label], repr(label))
    if len({n.casefold() for n in names.values()}) != len(names):  # pragma: no cover
        raise ValueError("could not give every label its own folder name")
    return names


def _basename(source: str) -> str:
    return str(source).rstrip("/").rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1]


def _file_names(folders: Sequence[str], sources: Sequence[str]) -> list[str]:
    """A file name per row, unique within its label folder, deterministic.

    A name keeps the source's basename; when two sources under one label share a
    basename (ignoring case), each of them gets a short hash of its source.
    """
    names = [safe_name(_basename(s)) for s in sources]
    keys = pd.Series([f"{f}/{n.casefold()}" for f, n in zip(folders, names, strict=True)])
    clash = keys.duplicated(keep=False).to_numpy()
    for i in map(int, np.flatnonzero(clash)):
        names[i] = disambiguate(names[i], str(sources[i]))
    keys = pd.Series([f"{f}/{n.casefold()}" for f, n in zip(folders, names, strict=True)])
    if not keys.duplicated().any():
        return names
    raise ValueError("could not give every file its own name")  # pragma: no cover


# --------------------------------------------------------------------------- the tree


def _examples(index: pd.Index, mask: Any) -> list[Any]:
    return list(index[np.asarray(mask)][:_SHOWN])


def _check_rows(frame: pd.DataFrame, label_col: str, path_col: str, group_col: str | None) -> None:
    for column, role in ((label_col, "label"), (path_col, "path"), (group_col, "group")):
        if column is None:
            continue
        nulls = frame[column].isna()
        if nulls.any():
            raise _null_error(column, role, int(nulls.sum()), _examples(frame.index, nulls))
    paths = frame[path_col]
    not_text = ~paths.map(lambda p: isinstance(p, str) and p != "").astype(bool)
    if not_text.any():
        raise ValueError(
            f"{int(not_text.sum())} path(s) in column {path_col!r} are not non-empty strings, "
            f"e.g. {list(paths[not_text.to_numpy()][:_SHOWN])}"
        )
    dup = paths.duplicated(keep=False)
    if dup.any():
        shown = list(pd.unique(paths[dup.to_numpy()])[:_SHOWN])
        raise ValueError(
            f"{int(dup.sum())} rows share {paths[dup.to_numpy()].nunique()} path(s) in column "
            f"{path_col!r}, e.g. {shown}; a file can sit in the tree only once, so "
            f"drop duplicates first, e.g. df.drop_duplicates({path_col!r})"
        )


def _check_sources(
    sources: Sequence[str], link: str, storage_options: Mapping[str, Any] | None
) -> None:
    if link == "symlink":
        remote = [s for s in sources if not storage.is_local(s)]
        if remote:
            raise ValueError(
                f"{len(remote)} source(s) are not local files, e.g. {remote[:_SHOWN]}; a "
                "symlink can point only at a local file: pass link='copy'"
            )
    missing = [s for s in sources if not _is_file(s, storage_options)]
    if missing:
        raise ValueError(
            f"{len(missing)} of {len(sources)} source(s) do not exist or are not files, "
            f"e.g. {missing[:_SHOWN]}; nothing was created"
        )


def _local(path: str) -> str:
    return path if "://" not in path else storage.get_fs(path)[1]


def _is_file(path: str, storage_options: Mapping[str, Any] | None) -> bool:
    if storage.is_local(path):
        return os.path.isfile(_local(path))
    fs, fs_path = storage.get_fs(path, storage_options)
    return bool(fs.isfile(fs_path))


def _check_outdir(outdir: str, link: str, storage_options: Mapping[str, Any] | None) -> bool:
    """Refuse unusable destinations; return whether ``outdir`` exists already."""
    if not storage.is_local(outdir):
        if link == "symlink":
            raise ValueError(
                f"outdir {outdir!r} is not on the local filesystem, which is the only one "
                "with symlinks; pass link='copy' to copy the files there instead"
            )
        fs, root = storage.get_fs(outdir, storage_options)
        if not fs.exists(root):
            return False
        if not fs.isdir(root):
            raise ValueError(f"outdir {outdir!r} is a file, not a folder")
        if fs.ls(root, detail=False):
            raise ValueError(f"outdir {outdir!r} is not empty; pass an empty or new folder")
        return True
    local = _local(outdir)
    if not os.path.lexists(local):
        return False
    if not os.path.isdir(local):
        raise ValueError(f"outdir {outdir!r} is not a folder")
    if os.listdir(local):
        raise ValueError(f"outdir {outdir!r} is not empty; pass an empty or new folder")
    return True


def _check_status(frame: Any, keep_status: Sequence[str] | None, default: bool = False) -> Any:
    if keep_status is None or (default and "status" not in frame.columns):
        return frame
    if isinstance(keep_status, str):
        keep_status = (keep_status,)
    require_columns(
        frame.columns, "the frame (pass keep_status=None to keep every row)", keep_status="status"
    )
    keep = frame["status"].astype(object).isin(list(keep_status)).to_numpy()
    dropped = frame.loc[~keep, "status"].astype(object).value_counts()
    if int(dropped.sum()):
        logger.warning(
            "imagenet folders: left out %d of %d rows whose status is not in %s (%s)",
            int(dropped.sum()),
            len(frame),
            list(keep_status),
            ", ".join(f"{k}: {v}" for k, v in dropped.items()),
        )
    return frame.loc[keep]


#: Name of the marker by which a call claims a remote ``outdir`` while it builds there.
BUILDING_SUFFIX = ".creevey-building"


def _busy(outdir: str) -> FileExistsError:
    return FileExistsError(
        f"outdir {outdir!r} was filled by another call while this one laid out its tree "
        "(two calls into one folder at once?); this call removed what it made and left "
        "the other's files alone; pass a new or empty folder"
    )


class _Tree:
    """Creates the tree; on failure removes what this call made and nothing else.

    Locally the tree is built in a hidden folder of its own beside ``outdir`` (named by
    :func:`storage.temp_path`, so a killed call's folder is swept by the next call
    there) and renamed to ``outdir`` at the end, which
    succeeds only while ``outdir`` is missing or empty: a concurrent call into the same
    folder gets a clear :class:`FileExistsError` naming it, and never touches the other
    call's files. Elsewhere (``link="copy"`` on an object store, which has no atomic
    folder rename) the call claims ``outdir`` with a marker object holding its token,
    checks the claim before finishing, and on failure removes exactly the objects it
    wrote.
    """

    def __init__(self, outdir: str, storage_options: Mapping[str, Any] | None) -> None:
        self.outdir = outdir
        self.options = storage_options
        self.local = storage.is_local(outdir)
        self.token = uuid.uuid4().hex[:12]
        self.base = outdir  # where the tree is built: the staging folder, when local
        self.made: list[str] = []  # folders this call made, in the order made
        self.written: list[str] = []  # remote: the objects this call wrote
        self.claimed = False

    def path(self, *parts: str) -> str:
        return storage.join(self.base, *parts)

    def _claim_path(self) -> str:
        return storage.get_fs(self.outdir, self.options)[1] + "/" + BUILDING_SUFFIX

    def _mkdir(self, path: str) -> None:
        """Make ``path`` and its missing parents, remembering those this call made."""
        if self.local:
            missing = []
            folder = os.path.abspath(path)
            while not os.path.lexists(folder):
                missing.append(folder)
                folder = os.path.dirname(folder)
            for folder in reversed(missing):
                try:
                    os.mkdir(folder)
                except FileExistsError:  # made by someone else meanwhile: not ours
                    continue
                self.made.append(folder)
            return
        fs, fs_path = storage.get_fs(path, self.options)
        missing = []
        folder = fs_path.rstrip("/")
        while folder and folder not in missing and not fs.exists(folder):
            missing.append(folder)
            folder = fs._parent(folder).rstrip("/")
        if missing:
            fs.makedirs(fs_path, exist_ok=True)
            self.made.extend(reversed(missing))

    def start(self) -> None:
        if self.local:
            final = os.path.abspath(_local(self.outdir))
            parent = os.path.dirname(final)
            self._mkdir(parent)
            storage.remove_stale_temporaries(parent)  # of split calls that were killed
            self.base = storage.temp_path(final)
            os.mkdir(self.base)
            self.made.append(self.base)
            return
        self._mkdir(self.outdir)
        fs = storage.get_fs(self.outdir, self.options)[0]
        claim = self._claim_path()
        if fs.exists(claim):
            raise _busy(self.outdir)
        fs.pipe_file(claim, self.token.encode())
        self.claimed = self._still_claimed()
        if not self.claimed:
            raise _busy(self.outdir)

    def _still_claimed(self) -> bool:
        fs = storage.get_fs(self.outdir, self.options)[0]
        try:
            return bytes(fs.cat_file(self._claim_path())) == self.token.encode()
        except FileNotFoundError:
            return False

    def folder(self, *parts: str) -> None:
        self._mkdir(_local(self.path(*parts)) if self.local else self.path(*parts))

    def symlink(self, source: str, parts: Sequence[str], relative: bool) -> None:
        # the staging folder is a sibling of outdir (same depth), so a relative target
        # computed here is right after the rename too
        link = self.path(*parts)
        src = _local(source)
        target = os.path.join(
            os.path.realpath(os.path.dirname(os.path.abspath(src))), os.path.basename(src)
        )
        if relative:
            final_dir = os.path.join(
                os.path.realpath(os.path.dirname(os.path.abspath(_local(self.outdir)))),
                os.path.basename(os.path.abspath(_local(self.outdir))),
                *parts[:-1],
            )
            target = os.path.relpath(target, final_dir)
        os.symlink(target, link)

    def write(self, parts: Sequence[str], data: bytes) -> None:
        path = self.path(*parts)
        storage.write_bytes_atomic(path, data, self.options)
        if not self.local:
            self.written.append(path)

    def copy(self, source: str, parts: Sequence[str]) -> None:
        self.write(parts, storage.read_bytes(source, self.options))

    def finish(self) -> None:
        """Put the built tree in place (locally: one rename); refuse if another call won."""
        if self.local:
            final = os.path.abspath(_local(self.outdir))
            try:
                os.rename(self.base, final)  # fails unless final is missing or empty
            except OSError as err:
                if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                    raise _busy(self.outdir) from err
                raise
            self.made.remove(self.base)
            return
        if not self._still_claimed():
            self.claimed = False
            raise _busy(self.outdir)
        fs = storage.get_fs(self.outdir, self.options)[0]
        fs.rm_file(self._claim_path())
        self.claimed = False

    def remove(self) -> None:
        """Remove what this call made; never anything else."""
        if self.local:
            if self.base in self.made:
                shutil.rmtree(self.base, ignore_errors=True)
                self.made.remove(self.base)
            for folder in reversed(self.made):  # parents this call made, if still empty
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
            return
        fs = storage.get_fs(self.outdir, self.options)[0]
        for path in self.written:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(storage.get_fs(path, self.options)[1])
        if self.claimed and self._still_claimed():
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(self._claim_path())
        for folder in reversed(self.made):
            with contextlib.suppress(OSError):
                if not fs.ls(folder, detail=False):
                    fs.rmdir(folder)


def _copy_all(tree: _Tree, sources: Sequence[str], places: Sequence[tuple[str, ...]]) -> None:
    """Copy the files with a few threads (object stores are latency-bound).

    On the first failure the copies not yet started are cancelled and the running
    ones finish before the error propagates, so the clean-up sees every file.
    """
    with ThreadPoolExecutor(max_workers=_COPY_THREADS) as pool:
        futures = [pool.submit(tree.copy, s, p) for s, p in zip(sources, places, strict=True)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def imagenet_symlinks(
    df: pd.DataFrame | dd.DataFrame,
    outdir: str | os.PathLike[str],
    *,
    label_col: str,
    valid_size: int | float,
    path_col: str = "outpath",
    groupby: str | None = None,
    stratify: str | None = None,
    test_size: int | float | None = None,
    random_state: int | np.random.Generator | None = None,
    link: str = "symlink",
    relative: bool = True,
    keep_status: Sequence[str] | None = KEEP_STATUSES,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Lay images out as ``<outdir>/{train,valid}/<label>/<file>``, ImageNet style.

    Rows are split with :func:`split` (``groupby`` keeps a group's rows on one side),
    then each file is linked (or copied) into the folder of its split and label.
    Every label folder exists under every split, empty if need be, because some
    frameworks pair ``train`` and ``valid`` folders by position. ``manifest.csv`` in
    ``outdir`` records, per row, ``source``, ``label``, ``split``, ``group`` and
    ``path`` (the created file, relative to ``outdir``).

    Everything is checked before anything is created. A local tree is built in a
    hidden folder beside ``outdir`` and renamed into place at the end, so there is
    never a half-built tree; if creating fails part way, the files and folders this
    call made are removed again, and nothing it did not make. A second call into the
    same folder at the same time gets a :class:`FileExistsError` naming the folder
    (the first call's tree is kept whole).

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        One row per image. A dask frame is computed (the columns named here).
    outdir : str or path-like
        A new or empty folder. With ``link="copy"`` any fsspec URL (``s3://``,
        ``memory://``); object stores have no empty folders, so there empty label
        folders cannot exist.
    label_col : str
        The column with each image's label.
    valid_size : int or float
        Groups (with ``groupby``) or rows for ``valid``: an int is a count, a float in
        (0, 1) a proportion, rounded up; see :func:`split`.
    path_col : str, default "outpath"
        The column with each image's path (a local path or, with ``link="copy"``, any
        fsspec URL). Nulls and duplicate paths are refused.
    groupby : str, optional
        Rows sharing a value of this column all go to the same split.
    stratify : str, optional
        A column (usually ``label_col``) whose proportions each split keeps close to
        the whole's.
    test_size : int or float, optional
        Also make a ``test`` folder of this size.
    random_state : int, optional
        The seed of the split.
    link : {"symlink", "copy"}, default "symlink"
        Symlinks need local files and a local ``outdir``; ``"copy"`` works anywhere.
    relative : bool, default True
        Symlinks point at their source by a relative path, so the tree survives being
        moved together with its images; ``False`` makes absolute links.
    keep_status : sequence of str or None, default ("ok", "skipped")
        Keep only rows whose ``status`` is one of these, logging how many were left
        out: by default the rows whose file exists, written now or by an earlier run.
        The default keeps every row of a frame without a ``status`` column; None keeps
        every row.
    storage_options : mapping, optional
        fsspec options for ``outdir`` and for remote sources.

    Returns
    -------
    pandas.DataFrame
        The manifest: ``source``, ``label``, ``split``, ``group``, ``path``, indexed
        like the rows used.

    Raises
    ------
    ColumnError
        A named column is missing.
    ValueError
        ``outdir`` is not empty, a label, path or group is null, paths repeat, a
        source does not exist, a size is out of range, or symlinks are asked for
        where they cannot exist. Nothing is created in these cases.
    FileExistsError
        Another call filled ``outdir`` while this one built its tree; this call's
        files are removed, the other call's are untouched.

    Examples
    --------
    >>> import os, pathlib, shutil, tempfile, pandas as pd
    >>> tmp = tempfile.mkdtemp()
    >>> paths = [os.path.join(tmp, f"{i}.jpg") for i in range(4)]
    >>> for p in paths:
    ...     _ = pathlib.Path(p).write_bytes(b"not really a jpeg")
    >>> df = pd.DataFrame({"path": paths, "label": ["cat", "cat", "dog", "dog"]})
    >>> manifest = imagenet_symlinks(
    ...     df, os.path.join(tmp, "tree"), label_col="label", path_col="path", valid_size=1,
    ...     random_state=0,
    ... )
    >>> sorted(os.listdir(os.path.join(tmp, "tree", "valid")))
    ['cat', 'dog']
    >>> manifest["split"].value_counts().to_dict()
    {'train': 3, 'valid': 1}
    >>> shutil.rmtree(tmp)
    """
    if link not in LINK_MODES:
        raise ValueError(f"link {link!r} is not one of {sorted(LINK_MODES)}")
    if not isinstance(relative, bool):
        raise TypeError(f"relative must be True or False, got {relative!r}")
    if isinstance(stratify, bool):
        raise TypeError(
            f"stratify takes a column name (or None), not {stratify!r}; to stratify on the "
            f"labels pass stratify={label_col!r}"
        )
    _check_size("valid_size", valid_size, allow_none=False)
    _check_size("test_size", test_size, allow_none=True)
    if not isinstance(df, pd.DataFrame) and not _is_dask(df):
        raise TypeError(f"df must be a pandas or dask DataFrame, got {type(df).__name__}")
    require_columns(
        df.columns, label_col=label_col, path_col=path_col, groupby=groupby, stratify=stratify
    )
    outdir = os.fspath(outdir)
    _check_outdir(outdir, link, storage_options)

    columns = list(dict.fromkeys(c for c in (path_col, label_col, groupby, stratify) if c))
    if keep_status is not None and "status" in df.columns:
        columns.append("status")
    frame = df[columns]
    if _is_dask(frame):
        frame = frame.compute()
    frame = _check_status(frame, keep_status, default=keep_status is KEEP_STATUSES)
    if frame.empty:
        raise ValueError("no rows to lay out (the frame is empty after filtering)")
    _check_rows(frame, label_col, path_col, groupby)
    work = pd.DataFrame(
        {
            "source": frame[path_col].astype(object),
            "label": frame[label_col].astype(object),
            "group": frame[groupby].astype(object) if groupby else None,
            "stratum": frame[stratify].astype(object) if stratify else None,
        },
        index=frame.index,
    )
    assigned = split(
        work,
        valid_size,
        groupby="group" if groupby else None,
        stratify="stratum" if stratify else None,
        test_size=test_size,
        random_state=random_state,
    )
    sources = list(work["source"])
    _check_sources(sources, link, storage_options)

    folders = _label_folders(work["label"])
    folder_of = [folders[label] for label in work["label"]]
    names = _file_names(folder_of, sources)
    splits = [s for s in SPLITS if s != "test" or test_size is not None]
    row_splits = assigned["split"].astype(object).tolist()
    manifest = pd.DataFrame(
        {
            "source": pd.array(sources, dtype=STRING_DTYPE),
            "label": pd.array([str(x) for x in work["label"]], dtype=STRING_DTYPE),
            "split": pd.array(row_splits, dtype=STRING_DTYPE),
            "group": pd.array(
                [None if g is None else str(g) for g in work["group"]], dtype=STRING_DTYPE
            ),
            "path": pd.array(
                [f"{s}/{f}/{n}" for s, f, n in zip(row_splits, folder_of, names, strict=True)],
                dtype=STRING_DTYPE,
            ),
        },
        index=work.index,
    )

    tree = _Tree(outdir, storage_options)
    try:
        tree.start()
        for s in splits:
            for folder in sorted(set(folders.values())):
                tree.folder(s, folder)
        places = list(zip(row_splits, folder_of, names, strict=True))
        if link == "symlink":
            for source, parts in zip(sources, places, strict=True):
                tree.symlink(source, parts, relative)
        else:
            _copy_all(tree, sources, places)
        tree.write([MANIFEST_NAME], manifest.to_csv(index=False).encode("utf-8"))
        tree.finish()
    except BaseException:
        tree.remove()
        raise
    counts = manifest["split"].value_counts().to_dict()
    logger.info("imagenet folders in %s: %s, %d labels", outdir, counts, len(folders))
    return manifest


def create_imagenet_style_symlinks(
    df: pd.DataFrame | dd.DataFrame,
    label_colname: str,
    path_colname: str,
    valid_size: int | float,
    outdir: str | os.PathLike[str],
    groupby_colname: str | None = None,
    random_state: int | np.random.Generator | None = None,
    *,
    stratify: str | None = None,
    test_size: int | float | None = None,
    link: str = "symlink",
    relative: bool = True,
    keep_status: Sequence[str] | None = KEEP_STATUSES,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The original creevey's :func:`imagenet_symlinks`, with its parameter names.

    ``create_imagenet_style_symlinks(df, label_colname, path_colname, valid_size,
    outdir, groupby_colname, random_state)`` is ``imagenet_symlinks(df, outdir,
    label_col=label_colname, path_col=path_colname, valid_size=valid_size,
    groupby=groupby_colname, random_state=random_state)``; the keyword-only parameters
    are :func:`imagenet_symlinks`'s. The original's own positional order,
    ``(df, valid_size, outdir, label_colname, path_colname, ...)``, is recognised too (a
    size is never a str), so code written for it does what it did. A float
    ``valid_size`` gives at least that proportion (rounded up), as the original did.

    Returns
    -------
    pandas.DataFrame
        The manifest (the original returned None).

    Examples
    --------
    >>> import os, pathlib, shutil, tempfile, pandas as pd
    >>> tmp = tempfile.mkdtemp()
    >>> paths = [os.path.join(tmp, f"{i}.jpg") for i in range(4)]
    >>> for p in paths:
    ...     _ = pathlib.Path(p).write_bytes(b"not really a jpeg")
    >>> df = pd.DataFrame({"path": paths, "label": ["cat", "cat", "dog", "dog"]})
    >>> manifest = create_imagenet_style_symlinks(
    ...     df, "label", "path", valid_size=1, outdir=os.path.join(tmp, "tree"), random_state=0
    ... )
    >>> manifest["split"].value_counts().to_dict()
    {'train': 3, 'valid': 1}
    >>> shutil.rmtree(tmp)
    """
    if (
        isinstance(valid_size, (str, os.PathLike))
        and isinstance(label_colname, numbers.Real)
        and not isinstance(label_colname, bool)
    ):
        # the original creevey's positional order: (df, valid_size, outdir,
        # label_colname, path_colname); a str is never a size, so this is unambiguous
        label_colname, path_colname, valid_size, outdir = (
            cast(str, valid_size),
            cast(str, outdir),
            label_colname,
            path_colname,
        )
    if isinstance(df, pd.DataFrame) or _is_dask(df):  # name the columns as the caller did
        require_columns(
            df.columns,
            label_colname=label_colname,
            path_colname=path_colname,
            groupby_colname=groupby_colname,
        )
    return imagenet_symlinks(
        df,
        outdir,
        label_col=label_colname,
        valid_size=valid_size,
        path_col=path_colname,
        groupby=groupby_colname,
        stratify=stratify,
        test_size=test_size,
        random_state=random_state,
        link=link,
        relative=relative,
        keep_status=keep_status,
        storage_options=storage_options,
    )
