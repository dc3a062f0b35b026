"""How a sample inside a shard is named: sample sources and member names.

A *sample source* is ``<shard>.tar#<member>`` or ``<shard>.parquet#<member>``
(:func:`split_sample`, :func:`sample_source`, :func:`is_sample`); a member's name is
``<key>.<ext>``, grouped into samples by webdataset's rule (:func:`split_member`,
:func:`member_key`); :func:`is_image_ext` tells an image member from webdataset's
metadata members. :mod:`creevey_dask.storage.samples` reads the samples so named.
"""

from __future__ import annotations

import os
import re
from typing import Any

from . import fs as storage

__all__ = [
    "SAMPLE_SEP",
    "is_image_ext",
    "is_sample",
    "member_key",
    "sample_source",
    "split_member",
    "split_sample",
]

#: Between a shard's path and a member's name in a sample source.
SAMPLE_SEP = "#"

_SHARD_EXTS = (".tar", ".parquet")
# webdataset's rule: the key is the path up to the first dot of the last segment
_KEY_EXT = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$", re.S)
_NON_IMAGE = frozenset({"json", "txt", "cls", "cls2", "caption", "npy", "pyd", "pickle"})


def is_image_ext(ext: str) -> bool:
    """Whether a member extension names an image (not webdataset's metadata members)."""
    return ext.lower() not in _NON_IMAGE


def split_sample(source: Any) -> tuple[str, str] | None:
    """``(shard, member)`` if ``source`` names a sample inside a shard, else None.

    A sample source is ``<path>.tar#<member>`` or ``<path>.parquet#<member>`` with a
    non-empty member; the last ``#`` separates them. http(s) URLs are never samples
    (their ``#`` is a fragment).

    Examples
    --------
    >>> split_sample("out/00000.tar#000000001.jpg")
    ('out/00000.tar', '000000001.jpg')
    >>> split_sample("photos/cat#1.jpg") is None
    True
    """
    if not isinstance(source, str) or SAMPLE_SEP not in source:
        return None
    shard, _, member = source.rpartition(SAMPLE_SEP)
    if not member or not shard.lower().endswith(_SHARD_EXTS):
        return None
    if shard.startswith(("http://", "https://")):
        return None
    return shard, member


def sample_source(shard: str, member: str) -> str:
    """The sample source of ``member`` in ``shard``: ``f"{shard}#{member}"``."""
    return f"{shard}{SAMPLE_SEP}{member}"


def split_member(member: str) -> tuple[str, str] | None:
    """``(key, extension)`` of a member name, as webdataset groups members; None if no dot."""
    match = _KEY_EXT.match(member)
    return None if match is None else (match.group(1), match.group(2))


def member_key(member: str) -> str:
    """A member's sample key, as webdataset groups them: up to the first dot of its name.

    Examples
    --------
    >>> member_key("000000001.jpg"), member_key("a/b.seg.json"), member_key("plain")
    ('000000001', 'a/b', 'plain')
    """
    match = _KEY_EXT.match(member)
    return match.group(1) if match else member


def is_sample(path: Any) -> bool:
    """Whether ``path`` is read as a shard sample (:func:`split_sample`).

    A local file whose own name has the form (``a.tar#b.jpg`` on disk) is that file.
    """
    if split_sample(path) is None:
        return False
    local = storage.local_os_path(path)
    return local is None or not os.path.isfile(local)
