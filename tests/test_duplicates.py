"""Duplicate groups: equal to a brute-force comparison of every pair, for pandas and dask."""

from __future__ import annotations

import io
import itertools

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from creevey_dask import ops
from creevey_dask.duplicates import duplicates, leaks
from creevey_dask.exceptions import ColumnError
from creevey_dask.layout.split import split
from creevey_dask.testing import sample_images

# --------------------------------------------------------------------------- brute force


def _bits(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    present = values.notna().to_numpy()
    raw = np.array([int(v) if p else 0 for v, p in zip(values, present, strict=True)], dtype=object)
    return np.array([v & (2**64 - 1) for v in raw], dtype=np.uint64), present


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per uint64, by a byte table (any numpy; independent of the library's)."""
    values = np.asarray(values, dtype=np.uint64)
    flat = np.ascontiguousarray(values.reshape(-1))
    return _BYTE_BITS[flat.view(np.uint8).reshape(-1, 8)].sum(axis=1).reshape(values.shape)


def brute_force_pairs(df, hash_col, max_distance, exact_col=None):
    """Every pair (i < j) of duplicate rows, by comparing all n**2 pairs."""
    n = len(df)
    close = np.zeros((n, n), dtype=bool)
    if hash_col is not None:
        bits, present = _bits(df[hash_col])
        xor = bits[:, None] ^ bits[None, :]
        distance = popcount(xor)
        close |= (distance <= max_distance) & present[:, None] & present[None, :]
    if exact_col is not None:
        present = df[exact_col].notna().to_numpy()
        digest = df[exact_col].astype(object).where(present, "").to_numpy(dtype=object)
        same = digest[:, None] == digest[None, :]
        close |= same & present[:, None] & present[None, :]
    i, j = np.nonzero(np.triu(close, k=1))
    return i, j


def brute_force(df, hash_col="dhash", max_distance=4, exact_col=None, area=None):
    """dup_group and dup_keep from all pairs and a plain Python union-find."""
    n = len(df)
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(*brute_force_pairs(df, hash_col, max_distance, exact_col), strict=True):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    group = np.array([find(i) for i in range(n)], dtype=np.int64)  # the smallest member
    area = np.zeros(n) if area is None else area
    keep = np.zeros(n, dtype=bool)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        best = max(members, key=lambda m: (area[m], -m))
        keep[best] = True
    return group, keep


def planted(n_base=300, seed=0, spread_bits=64):
    """Random hashes with planted copies: bit flips, chains, equal hashes, nulls."""
    rng = np.random.default_rng(seed)
    mask = (1 << spread_bits) - 1
    hashes = [int(rng.integers(0, 2**63)) * 2 + int(rng.integers(2)) & mask for _ in range(n_base)]
    for _ in range(n_base):  # a copy of a random row, 0-8 bits flipped
        h = hashes[int(rng.integers(len(hashes)))]
        for bit in rng.choice(64, size=int(rng.integers(0, 9)), replace=False):
            h ^= 1 << int(bit)
        hashes.append(h)
    values = pd.array(hashes, dtype="UInt64")
    order = rng.permutation(len(values))
    values = values[order]
    values[rng.choice(len(values), size=len(values) // 20, replace=False)] = pd.NA
    return pd.DataFrame(
        {
            "dhash": values,
            "width": rng.integers(10, 100, size=len(values)),
            "height": rng.integers(10, 100, size=len(values)),
            "label": rng.choice(list("abc"), size=len(values)),
        },
        index=pd.Index(rng.permutation(len(values)) * 10, name="key"),
    )


def _same(got, want):
    """The same frame (dask's from_pandas turns text columns into its own string dtype)."""
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    for column in {"dup_group", "dup_keep"} & set(want.columns):
        assert got[column].dtype == want[column].dtype


def _check(out, df, group, keep):
    assert list(out.columns) == [*df.columns, "dup_group", "dup_keep"]
    assert out.index.equals(df.index)
    assert out["dup_group"].dtype == np.int64
    assert out["dup_keep"].dtype == bool
    np.testing.assert_array_equal(out["dup_group"].to_numpy(), group)
    np.testing.assert_array_equal(out["dup_keep"].to_numpy(), keep)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("max_distance", [0, 1, 2, 3, 4, 6, 8])
def test_groups_equal_brute_force_on_random_hashes_with_planted_copies(max_distance):
    df = planted(seed=max_distance)
    area = (df["width"] * df["height"]).to_numpy()
    group, keep = brute_force(df, "dhash", max_distance, area=area)
    assert len(np.unique(group)) < len(df)  # there are groups to find
    _check(duplicates(df, max_distance=max_distance), df, group, keep)


@pytest.mark.parametrize("spread_bits", [12, 20])
def test_groups_equal_brute_force_when_hashes_crowd_together(spread_bits):
    # hashes in a few low bits: big buckets, long chains, one giant component
    df = planted(n_base=200, seed=spread_bits, spread_bits=spread_bits).drop(
        columns=["width", "height"]
    )
    group, keep = brute_force(df, "dhash", 3)
    _check(duplicates(df, max_distance=3), df, group, keep)


@pytest.mark.parametrize("npartitions", [1, 2, 5, 13])
@pytest.mark.parametrize("max_distance", [0, 3, 5])
def test_dask_equals_pandas_for_every_partitioning(npartitions, max_distance):
    df = planted(seed=7)
    want = duplicates(df, max_distance=max_distance)
    ddf = dd.from_pandas(df, npartitions=npartitions, sort=False)
    got = duplicates(ddf, max_distance=max_distance)
    assert isinstance(got, dd.DataFrame)
    _same(got.compute(), want)


def test_dask_with_uneven_and_empty_partitions():
    df = planted(n_base=100, seed=3)
    want = duplicates(df, max_distance=4)
    cuts = [0, 0, 7, 7, 150, 151, len(df)]
    parts = [df.iloc[a:b] for a, b in itertools.pairwise(cuts)]
    ddf = dd.from_delayed([dask.delayed(p) for p in parts], meta=df.iloc[:0])
    _same(duplicates(ddf, max_distance=4).compute(), want)


def test_exact_digests_alone_and_together_with_hashes():
    df = planted(n_base=150, seed=11)
    rng = np.random.default_rng(1)
    digests = pd.array([f"d{int(v)}" for v in rng.integers(0, 200, size=len(df))], dtype="string")
    digests[rng.choice(len(df), size=20, replace=False)] = pd.NA
    df["sha256"] = digests
    area = (df["width"] * df["height"]).to_numpy()
    for hash_col in (None, "dhash"):
        group, keep = brute_force(df, hash_col, 2, exact_col="sha256", area=area)
        out = duplicates(df, hash_col=hash_col, max_distance=2, exact_col="sha256")
        _check(out, df, group, keep)
        got = duplicates(
            dd.from_pandas(df, npartitions=4, sort=False), hash_col, 2, "sha256"
        ).compute()
        _same(got, out)


def test_signed_int64_hashes_are_read_as_their_bits():
    df = planted(n_base=100, seed=5)
    bits = df["dhash"].to_numpy(dtype=np.uint64, na_value=0)
    signed = df.assign(dhash=bits.view(np.int64))
    unsigned = df.assign(dhash=bits)
    assert (signed["dhash"] < 0).any()
    want = duplicates(unsigned, max_distance=3)
    pd.testing.assert_frame_equal(
        duplicates(signed, max_distance=3).drop(columns="dhash"), want.drop(columns="dhash")
    )


def test_kept_row_is_the_largest_then_the_first():
    df = pd.DataFrame(
        {
            "dhash": pd.array([5, 5, 5, 5, 1 << 50], dtype="UInt64"),
            "width": [10, 30, 30, None, 1],
            "height": [10, 20, 20, 99, 1],
        }
    )
    out = duplicates(df, max_distance=0)
    assert out["dup_group"].tolist() == [0, 0, 0, 0, 4]
    assert out["dup_keep"].tolist() == [False, True, False, False, True]
    # without size columns: the first in table order
    out = duplicates(df.drop(columns=["width", "height"]), max_distance=0)
    assert out["dup_keep"].tolist() == [True, False, False, False, True]
    # other names for the size columns
    renamed = df.rename(columns={"width": "w", "height": "h"})
    out = duplicates(renamed, max_distance=0, width_col="w", height_col="h")
    assert out["dup_keep"].tolist() == [False, True, False, False, True]


def test_null_hashes_are_singletons_and_an_all_null_frame_works():
    df = pd.DataFrame({"dhash": pd.array([None, None, 3], dtype="UInt64")})
    out = duplicates(df)
    assert out["dup_group"].tolist() == [0, 1, 2]
    assert out["dup_keep"].all()
    assert duplicates(df.iloc[:0])["dup_group"].tolist() == []
    assert duplicates(dd.from_pandas(df, npartitions=2, sort=False)).compute()[
        "dup_group"
    ].tolist() == [0, 1, 2]


def test_dedup_then_split_keeps_every_group_on_one_side():
    df = planted(seed=2)
    out = split(duplicates(df, max_distance=4), 0.3, groupby="dup_group", random_state=0)
    assert (out.groupby("dup_group")["split"].nunique() == 1).all()
    assert leaks(out, max_distance=4).empty
    # a plain split leaks, and leaks() finds exactly the brute-force crossing pairs
    plain = split(df, 0.3, random_state=0)
    found = leaks(plain, max_distance=4)
    i, j = brute_force_pairs(plain, "dhash", 4)
    sides = plain["split"].to_numpy()
    crossing = [(a, b) for a, b in zip(i, j, strict=True) if sides[a] != sides[b]]
    assert len(crossing) > 0
    assert list(zip(found["row_a"], found["row_b"], strict=True)) == crossing
    assert (found["split_a"] != found["split_b"]).all()
    assert found["index_a"].tolist() == [plain.index[a] for a, _ in crossing]
    bits, _ = _bits(plain["dhash"])
    want = [int(popcount(bits[a] ^ bits[b])) for a, b in crossing]
    assert found["distance"].tolist() == want
    dask_found = leaks(dd.from_pandas(plain, npartitions=3, sort=False), max_distance=4)
    _same(dask_found, found)


def test_leaks_by_digest_when_a_hash_is_missing():
    df = pd.DataFrame(
        {
            "dhash": pd.array([1, None, 2**40 - 1], dtype="UInt64"),
            "sha256": ["x", "x", "y"],
            "split": ["train", "valid", "valid"],
        }
    )
    found = leaks(df, exact_col="sha256")
    assert found[["row_a", "row_b"]].values.tolist() == [[0, 1]]
    assert found["distance"].isna().all()


def _variants(data: bytes) -> dict[str, Image.Image]:
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
    w, h = image.size
    return {
        "jpeg_q60": Image.open(_jpeg(image, 60)),
        "half": image.resize((w // 2, h // 2), Image.Resampling.LANCZOS),
        "crop": image.crop((w // 40, h // 40, w - w // 40, h - h // 40)),
        "flip": ImageOps.mirror(image),
    }


def _jpeg(image: Image.Image, quality: int) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return buffer


def test_groups_equal_brute_force_on_images_with_planted_copies():
    rows = []
    for name, data in sample_images(18, seed=4).items():
        with Image.open(io.BytesIO(data)) as image:
            rows.append((name, "original", ops.dhash(image), image.width, image.height))
        for kind, variant in _variants(data).items():
            rows.append((name, kind, ops.dhash(variant), variant.width, variant.height))
    df = pd.DataFrame(rows, columns=["name", "kind", "dhash", "width", "height"])
    df["dhash"] = df["dhash"].astype("UInt64")
    area = (df["width"] * df["height"]).to_numpy()
    for max_distance in (2, 4, 8):
        group, keep = brute_force(df, "dhash", max_distance, area=area)
        out = duplicates(df, max_distance=max_distance)
        _check(out, df, group, keep)
        dask_out = duplicates(
            dd.from_pandas(df, npartitions=4, sort=False), max_distance=max_distance
        )
        _same(dask_out.compute(), out)
    # at the default distance, re-encoded and halved copies join their original
    out = duplicates(df)
    originals = out[out["kind"] == "original"].set_index("name")["dup_group"]
    for kind in ("jpeg_q60", "half"):
        copies = out[out["kind"] == kind].set_index("name")["dup_group"]
        assert (copies == originals).all(), kind
    kept = out[out["dup_keep"]]
    assert (kept.groupby("dup_group")["name"].nunique() >= 1).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hash_col": "label"}, TypeError, "integer column of 64-bit hashes"),
        ({"hash_col": "f"}, TypeError, "integer column"),
        ({"hash_col": "b"}, TypeError, "integer column"),
        ({"max_distance": 17}, ValueError, "from 0 to 16"),
        ({"max_distance": -1}, ValueError, "from 0 to 16"),
        ({"max_distance": 2.0}, TypeError, "must be an int"),
        ({"max_distance": True}, TypeError, "must be an int"),
        ({"hash_col": None}, ValueError, "give hash_col"),
        ({"hash_col": "nope"}, ColumnError, "nope"),
        ({"exact_col": "nope"}, ColumnError, "nope"),
        ({"width_col": "width"}, ValueError, "both width_col and height_col"),
    ],
)
def test_bad_arguments_are_refused_up_front(kwargs, error, match):
    df = pd.DataFrame(
        {
            "dhash": pd.array([1], dtype="UInt64"),
            "label": ["a"],
            "f": [1.0],
            "b": [True],
            "width": [1],
            "height": [1],
        }
    )
    with pytest.raises(error, match=match):
        duplicates(df, **kwargs)


def test_existing_result_columns_and_non_frames_are_refused():
    df = pd.DataFrame({"dhash": pd.array([1], dtype="UInt64"), "dup_group": [0]})
    with pytest.raises(ColumnError, match="dup_group"):
        duplicates(df)
    with pytest.raises(TypeError, match="pandas or dask DataFrame"):
        duplicates(df["dhash"])
    with pytest.raises(ColumnError, match="split_col"):
        leaks(df.drop(columns="dup_group"))


def test_the_accessor_dedups_splits_and_checks_for_leaks():
    df = planted(seed=9)
    for frame in (df, dd.from_pandas(df, npartitions=3, sort=False)):
        grouped = frame.creevey.duplicates(max_distance=3)
        want = duplicates(df, max_distance=3)
        out = grouped.creevey.split(0.25, groupby="dup_group", random_state=1)
        if isinstance(out, dd.DataFrame):
            grouped, out = grouped.compute(), out.compute()
        _same(grouped, want)
        assert out.creevey.leaks(max_distance=3).empty
        assert not df.assign(split=out["split"].to_numpy()).creevey.leaks(max_distance=4).empty
        deduped = out[out["dup_keep"]]
        assert deduped["dup_group"].is_unique
        assert set(deduped["dup_group"]) == set(out["dup_group"])


@pytest.fixture
def copies_on_disk(tmp_path):
    """Six images, each with a half-size copy and a re-encoded copy, as a result table."""
    rows = []
    for name, data in sample_images(6, seed=8).items():
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
        w, h = image.size
        for kind, made in (
            ("original", image),
            ("half", image.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
            ("q60", Image.open(_jpeg(image, 60))),
        ):
            path = tmp_path / f"{kind}_{name}"
            made.save(path, "JPEG", quality=90)
            with Image.open(path) as written:
                rows.append((str(path), name, kind, ops.dhash(written), w, h, "ok"))
    df = pd.DataFrame(
        rows, columns=["outpath", "name", "kind", "dhash", "width", "height", "status"]
    )
    df["dhash"] = df["dhash"].astype("UInt64")
    df.loc[df["kind"] == "half", ["width", "height"]] //= 2
    return df


def _thumb(path, size):
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        image.thumbnail((size, size))
        return np.asarray(image.convert("RGB"), dtype=float)


def test_duplicate_sheet_draws_a_group_per_row_kept_first(copies_on_disk):
    from creevey_dask.reports.sheets import PADDING, cell_size, duplicate_sheet

    out = duplicates(copies_on_disk)
    assert out.groupby("name")["dup_group"].nunique().eq(1).all()  # the copies were found
    assert out["dup_group"].nunique() == 6
    sheet = duplicate_sheet(out, n_groups=4, ncols=4, thumb_size=64)
    cell_w, cell_h = cell_size(64, 2)
    assert sheet.size == (4 * cell_w, 4 * cell_h)
    pixels = np.asarray(sheet, dtype=float)
    sizes = out["dup_group"].value_counts()
    groups = sorted(sizes.index, key=lambda g: (-sizes[g], g))[:4]
    for r, group in enumerate(groups):
        members = out[out["dup_group"] == group]
        kept = members[members["dup_keep"]]
        assert kept["kind"].tolist() == ["original"]  # the largest
        order = [*kept["outpath"], *members.loc[~members["dup_keep"], "outpath"]]
        for c, path in enumerate(order):  # each cell shows that row's image
            want = _thumb(path, 64)
            th, tw = want.shape[:2]
            top = r * cell_h + PADDING + (64 - th) // 2
            left = c * cell_w + PADDING + (64 - tw) // 2
            got = pixels[top : top + th, left : left + tw]
            assert np.abs(got - want).mean() < 2, (r, c)
        blank = pixels[r * cell_h : (r + 1) * cell_h, 3 * cell_w : 4 * cell_w]
        assert (blank == 255).all()  # a group of three leaves the fourth cell blank
    dask_sheet = duplicate_sheet(
        dd.from_pandas(out, npartitions=3, sort=False), n_groups=4, ncols=4, thumb_size=64
    )
    assert np.array_equal(np.asarray(dask_sheet), np.asarray(sheet))


def test_duplicate_sheet_refuses_a_table_without_groups():
    from creevey_dask.reports.sheets import duplicate_sheet

    df = duplicates(pd.DataFrame({"outpath": ["a"], "dhash": pd.array([1], dtype="UInt64")}))
    with pytest.raises(ValueError, match="no duplicate group"):
        duplicate_sheet(df)
    with pytest.raises(ColumnError, match="dup_group"):
        duplicate_sheet(df.drop(columns="dup_group"))


def test_rows_in_no_split_cross_none():
    """A null split label is no side: no pair with it, in any group."""
    df = pd.DataFrame(
        {
            "dhash": pd.array([1, 1, 2**40, 2**40, 2**40, 2**40], dtype="UInt64"),
            "split": ["train", None, "train", "valid", None, np.nan],
        }
    )
    found = leaks(df, max_distance=0)
    assert found[["row_a", "row_b"]].values.tolist() == [[2, 3]]
    assert set(found.split_a) | set(found.split_b) == {"train", "valid"}


def test_a_narrow_signed_hash_keeps_its_own_bits():
    """int8 -1 is 0xFF: one bit from 127 (0x7F), not 57 bits as a sign-extended int64."""
    df = pd.DataFrame({"dhash": np.array([-1, 127, 0], dtype=np.int8)})
    assert duplicates(df, max_distance=1)["dup_group"].tolist() == [0, 0, 2]
