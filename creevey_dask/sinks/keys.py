"""Sample keys: derived from a row's index label and source, validated, matched by source.

This module owns what a key is (:func:`valid_key`), how a row's key is derived
(:func:`row_keys`), when a key fed back in is kept (:func:`checked_keys`) and how a
derived key that no record holds finds its source's recorded key (:func:`matched_keys`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["checked_keys", "matched_keys", "row_keys", "valid_key"]

logger = logging.getLogger(__name__)

_KEY_HEX = 16
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def valid_key(key: Any) -> bool:
    """Whether ``key`` can name a sample: 1-64 ASCII letters, digits, ``_`` or ``-``.

    One safe path segment: no dot (webdataset splits member names at the first dot),
    no slash, nothing that a tar would resolve outside its folder.

    Examples
    --------
    >>> valid_key("e439d64aed980bad"), valid_key("../../x"), valid_key("a.b")
    (True, False, False)
    """
    return isinstance(key, str) and _KEY_RE.fullmatch(key) is not None


def row_keys(labels: Iterable[Any], sources: Iterable[Any]) -> list[str]:
    """The sample keys of rows: 16 hex digits of the sha256 of ``(index label, source)``.

    A key repeated within the rows (the same label and source twice) gets ``-2``,
    ``-3``, ... appended. Keys contain no dots, as webdataset requires.

    Examples
    --------
    >>> row_keys([0, 1], ["a.jpg", "a.jpg"])
    ['e439d64aed980bad', '8b978fcb1820e3c5']
    """
    keys: list[str] = []
    seen: dict[str, int] = {}
    for label, source in zip(labels, sources, strict=True):
        text = f"{label}\x00{source}".encode("utf-8", "surrogatepass")
        key = hashlib.sha256(text).hexdigest()[:_KEY_HEX]
        n = seen.get(key, 0) + 1
        seen[key] = n
        keys.append(key if n == 1 else f"{key}-{n}")
    return keys


def checked_keys(given: list[Any], derived: list[str]) -> list[str]:
    """The given keys where valid and first in the partition, else the derived ones."""
    keys: list[str] = []
    seen: set[str] = set()
    replaced = 0
    for key, new in zip(given, derived, strict=True):
        if not valid_key(key) or key in seen:
            replaced += key is not None and not (isinstance(key, float) and math.isnan(key))
            key = new
        n = 1
        base = key
        while key in seen:  # a derived key that a given one took already
            n += 1
            key = f"{base}-{n}"
        seen.add(key)
        keys.append(key)
    if replaced:
        logger.warning(
            "creevey: %d key(s) fed back were not one safe name (1-64 of A-Z a-z 0-9 _ -, "
            "unique) and were derived again from the index label and source",
            replaced,
        )
    return keys


def matched_keys(
    keys: list[str],
    sources: Iterable[Any],
    fixed: Iterable[bool],
    recorded: Mapping[str, Any],
    by_source: Mapping[str, list[str]],
) -> list[str]:
    """``keys`` with each row whose key has no record matched to its source's record.

    A row whose key is not ``fixed`` (given by the user) and not in ``recorded`` takes,
    in table order, the first key recorded for its source (``by_source``, oldest first)
    that no row of ``keys`` holds; else it keeps its own. So a rerun over a fresh index
    finds the samples it wrote, and a source twice in the table keeps two samples.

    Examples
    --------
    >>> matched_keys(["new1", "new2", "k2"], ["a.jpg", "a.jpg", "b.jpg"], [False] * 3,
    ...              {"k1": 0, "k2": 0}, {"a.jpg": ["k1"], "b.jpg": ["k2"]})
    ['k1', 'new2', 'k2']
    """
    out = list(keys)
    held = set(keys)
    for i, (key, source, given) in enumerate(zip(keys, sources, fixed, strict=True)):
        if given or key in recorded:
            continue
        for old in by_source.get(str(source), ()):
            if old not in held:
                out[i] = old
                held.add(old)
                break
    return out
