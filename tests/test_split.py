"""Train/valid/test splits (creevey_dask.split)."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from creevey_dask import split as split_func
from creevey_dask.exceptions import ColumnError


def grouped_frame(seed: int = 0, n_groups: int = 60) -> pd.DataFrame:
    """Rows of ``n_groups`` groups (1-6 rows each, one label each), shuffled together."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_groups)
    labels = rng.choice(["a", "b", "c"], n_groups, p=[0.7, 0.2, 0.1])
    df = pd.DataFrame(
        {
            "g": np.repeat([f"g{i:03d}" for i in range(n_groups)], sizes),
            "label": np.repeat(labels, sizes),
        }
    )
    # interleave groups, so that a dask partitioning spreads each over partitions
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


def groups_in(out: pd.DataFrame, which: str, col: str = "g") -> set:
    return set(out.loc[out["split"] == which, col])


def worst_label_gap(out: pd.DataFrame, splits=("train", "valid")) -> float:
    """Largest gap between a split's label proportion and the whole frame's."""
    whole = out["label"].value_counts(normalize=True)
    gaps = []
    for s in splits:
        part = out.loc[out["split"] == s, "label"].value_counts(normalize=True)
        gaps.append((part.reindex(whole.index, fill_value=0) - whole).abs().max())
    return float(max(gaps))


@pytest.mark.parametrize("seed", range(40))
def test_groups_never_straddle_splits(seed: int) -> None:
    df = grouped_frame(seed)
    out = split_func(df, valid_size=0.25, test_size=5, groupby="g", random_state=seed)
    assert out.groupby("g")["split"].nunique().max() == 1
    assert set(out["split"]) == {"train", "valid", "test"}


@pytest.mark.parametrize("seed", range(10))
def test_stratified_groups_never_straddle_splits(seed: int) -> None:
    df = grouped_frame(seed)
    out = split_func(df, 0.2, groupby="g", stratify="label", test_size=0.1, random_state=seed)
    assert out.groupby("g")["split"].nunique().max() == 1


def test_split_keeps_frame_and_adds_string_column() -> None:
    df = grouped_frame(1)
    df.index = df.index * 10  # a non-default index survives
    out = split_func(df, 3, groupby="g", random_state=0)
    assert list(out.columns) == [*df.columns, "split"]
    assert out["split"].dtype == pd.StringDtype()
    assert out.index.equals(df.index)
    pd.testing.assert_frame_equal(out.drop(columns="split"), df)
    assert "split" not in df.columns  # the input is not modified


@pytest.mark.parametrize(
    ("valid_size", "expected"),
    [(7, 7), (1, 1), (0.25, 8), (0.1, 3), (0.01, 1), (0.95, 29)],
)
def test_exact_group_counts(valid_size: float, expected: int) -> None:
    df = grouped_frame(2, n_groups=30)
    out = split_func(df, valid_size, groupby="g", random_state=5)
    assert len(groups_in(out, "valid")) == expected
    assert len(groups_in(out, "train")) == 30 - expected


@pytest.mark.parametrize(
    ("valid_size", "n_rows", "expected"),
    [
        (3, 10, 3),
        (0.25, 10, 3),
        (0.15, 10, 2),
        (0.149, 10, 2),
        (0.5, 7, 4),
        (0.001, 10, 1),
        (0.1, 14, 2),  # at least the proportion asked for, as sklearn's train_test_split
        (0.7, 10, 7),  # 0.7 * 10 is 7.000000000000001 in floats: still 7
        (0.3, 10, 3),
    ],
)
def test_exact_row_counts_round_up(valid_size: float, n_rows: int, expected: int) -> None:
    df = pd.DataFrame({"x": range(n_rows)})
    out = split_func(df, valid_size, random_state=0)
    assert (out["split"] == "valid").sum() == expected
    assert (out["split"] == "train").sum() == n_rows - expected


def test_test_split_counts_rows_and_groups() -> None:
    rows = split_func(pd.DataFrame({"x": range(100)}), 0.2, test_size=15, random_state=1)
    assert rows["split"].value_counts().to_dict() == {"train": 65, "valid": 20, "test": 15}
    df = grouped_frame(3, n_groups=40)
    out = split_func(df, 10, groupby="g", test_size=0.25, random_state=1)
    assert len(groups_in(out, "valid")) == 10
    assert len(groups_in(out, "test")) == 10
    assert len(groups_in(out, "train")) == 20


def test_stratified_rows_are_exact_per_label() -> None:
    rng = np.random.default_rng(4)
    labels = rng.choice(["a", "b", "c", "d"], 997, p=[0.55, 0.3, 0.1, 0.05])
    df = pd.DataFrame({"label": labels})
    out = split_func(df, 0.2, stratify="label", test_size=0.1, random_state=9)
    counts = out["split"].value_counts()
    assert counts["valid"] == 200  # ceil(0.2 * 997)
    assert counts["test"] == 100
    for label, n_label in df["label"].value_counts().items():
        mine = out[out["label"] == label]["split"].value_counts()
        for name, k in (("valid", 200), ("test", 100)):
            ideal = n_label * k / len(df)
            assert abs(mine.get(name, 0) - ideal) < 1, (label, name)


def test_stratified_groups_follow_the_whole() -> None:
    stratified, plain = [], []
    for seed in range(8):
        df = grouped_frame(seed, n_groups=300)
        stratified.append(
            worst_label_gap(split_func(df, 0.2, groupby="g", stratify="label", random_state=seed))
        )
        plain.append(worst_label_gap(split_func(df, 0.2, groupby="g", random_state=seed)))
    # 300 single-label groups of 1-6 rows: the greedy placement lands within half a
    # percentage point of the whole; an unstratified draw is off by several points.
    assert max(stratified) < 0.005
    assert np.mean(plain) > 5 * np.mean(stratified)


def test_stratified_group_counts_are_still_exact() -> None:
    df = grouped_frame(5, n_groups=50)
    out = split_func(df, 0.3, groupby="g", stratify="label", test_size=4, random_state=2)
    assert len(groups_in(out, "valid")) == 15
    assert len(groups_in(out, "test")) == 4
    assert len(groups_in(out, "train")) == 31


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"groupby": "g"},
        {"stratify": "label"},
        {"groupby": "g", "stratify": "label"},
        {"groupby": "g", "test_size": 0.2},
        {"test_size": 17},
    ],
    ids=["rows", "groups", "rows-stratified", "groups-stratified", "groups-test", "rows-test"],
)
def test_same_seed_same_split_whatever_the_partitioning(kwargs: dict) -> None:
    df = grouped_frame(6, n_groups=80)
    expected = split_func(df, 0.2, random_state=11, **kwargs)
    for npartitions in (1, 3, 7):
        ddf = dd.from_pandas(df, npartitions=npartitions, sort=False)
        lazy = split_func(ddf, 0.2, random_state=11, **kwargs)
        assert isinstance(lazy, dd.DataFrame)
        assert lazy.npartitions == ddf.npartitions
        got = lazy.compute()
        assert got["split"].dtype == pd.StringDtype()
        pd.testing.assert_series_equal(got["split"], expected["split"], check_dtype=False)
        # a piece of the lazy result agrees with the whole (positions survive selection)
        last = lazy.partitions[npartitions - 1].compute()
        assert last["split"].tolist() == expected.loc[last.index, "split"].tolist()
        tail = lazy.tail(4, compute=True)
        assert tail["split"].tolist() == expected["split"].iloc[-4:].tolist()
    # the same frame, again: the same answer; another seed: another answer
    again = split_func(df, 0.2, random_state=11, **kwargs)
    pd.testing.assert_series_equal(again["split"], expected["split"])
    other = split_func(df, 0.2, random_state=12, **kwargs)
    assert not other["split"].equals(expected["split"])


def test_dask_frame_with_repeated_index_splits_by_position() -> None:
    df = pd.DataFrame({"x": range(30)})
    parts = [df.iloc[:10].reset_index(drop=True), df.iloc[10:].reset_index(drop=True)]
    ddf = dd.concat([dd.from_pandas(p, npartitions=1) for p in parts])  # index 0..9, 0..19
    got = split_func(ddf, 6, random_state=3).compute()
    expected = split_func(df, 6, random_state=3)
    assert got["split"].tolist() == expected["split"].tolist()
    assert (got["split"] == "valid").sum() == 6


def test_unseeded_split_still_has_exact_counts() -> None:
    out = split_func(pd.DataFrame({"x": range(20)}), 5)
    assert (out["split"] == "valid").sum() == 5


def test_accessor_split_on_pandas_and_dask() -> None:
    df = grouped_frame(7)
    out = df.creevey.split(0.2, groupby="g", random_state=4)
    pd.testing.assert_frame_equal(out, split_func(df, 0.2, groupby="g", random_state=4))
    lazy = dd.from_pandas(df, npartitions=3).creevey.split(0.2, groupby="g", random_state=4)
    assert lazy.compute()["split"].tolist() == out["split"].tolist()


@pytest.mark.parametrize(
    ("valid_size", "test_size", "error", "match"),
    [
        (0, None, ValueError, "at least 1"),
        (-3, None, ValueError, "at least 1"),
        (0.0, None, ValueError, r"in \(0, 1\)"),
        (-0.2, None, ValueError, r"in \(0, 1\)"),
        (1.0, None, ValueError, r"in \(0, 1\)"),
        (1.5, None, ValueError, r"in \(0, 1\)"),
        (60, None, ValueError, "leaves none for train"),
        (61, None, ValueError, "leaves none for train"),
        (0.995, None, ValueError, "asks for 60 of the 60 groups"),
        (30, 30, ValueError, "leaves none for train"),
        (0.5, 0.5, ValueError, "leaves none for train"),
        (True, None, TypeError, "int"),
        ("0.2", None, TypeError, "int"),
        (0.2, 0, ValueError, "test_size must be at least 1"),
    ],
)
def test_bad_sizes(valid_size: object, test_size: object, error: type, match: str) -> None:
    df = grouped_frame(0, n_groups=60)
    with pytest.raises(error, match=match):
        split_func(df, valid_size, groupby="g", test_size=test_size)


def test_bad_columns_and_values() -> None:
    df = grouped_frame(0)
    with pytest.raises(ColumnError, match="groupby='nope'"):
        split_func(df, 0.2, groupby="nope")
    with pytest.raises(ColumnError, match="stratify='nope'"):
        split_func(df, 0.2, stratify="nope")
    with pytest.raises(ColumnError, match="already has a 'split' column"):
        split_func(df.assign(split="x"), 0.2)
    with pytest.raises(TypeError, match="random_state"):
        split_func(df, 0.2, random_state="seed")
    with pytest.raises(TypeError, match="pandas or dask DataFrame"):
        split_func(df["g"], 0.2)
    nulls = df.copy()
    nulls.loc[[1, 4, 5], "g"] = None
    with pytest.raises(ValueError, match=r"3 row\(s\) have no group .*\[1, 4, 5\]"):
        split_func(nulls, 0.2, groupby="g")
    with pytest.raises(ValueError, match=r"3 row\(s\) have no group .*\[1, 4, 5\]"):
        split_func(dd.from_pandas(nulls, npartitions=3), 0.2, groupby="g")
    nulls = df.copy()
    nulls.loc[[2], "label"] = None
    for frame in (nulls, dd.from_pandas(nulls, npartitions=3)):
        with pytest.raises(ValueError, match=r"1 row\(s\) have no stratify label .*\[2\]"):
            split_func(frame, 0.2, stratify="label")
        with pytest.raises(ValueError, match=r"1 row\(s\) have no stratify label .*\[2\]"):
            split_func(frame, 0.2, groupby="g", stratify="label")
    with pytest.raises(ValueError, match="no rows"):
        split_func(df.iloc[:0], 0.2)


@pytest.mark.cluster
def test_split_on_a_distributed_cluster(local_cluster_client: object) -> None:
    # worker processes: the plans and the per-partition tasks must travel by pickle
    df = grouped_frame(8, n_groups=50)
    ddf = dd.from_pandas(df, npartitions=4)
    for kwargs in ({"stratify": "label"}, {"groupby": "g", "stratify": "label"}):
        expected = split_func(df, 0.2, random_state=2, **kwargs)
        got = split_func(ddf, 0.2, random_state=2, **kwargs).compute()
        assert got["split"].tolist() == expected["split"].tolist()
