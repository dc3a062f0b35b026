"""Output paths for downloads: from the URL's filename (sanitised), or hashed and sharded.

Three schemes, chosen with ``naming=``:

``"url"`` (default)
    ``<outdir>/<filename from the URL>.<ext>``, like the original creevey. The name is
    sanitised (:func:`safe_filename`), so the outpath never leaves ``outdir``. Two
    different URLs can share a filename (``a.com/x/1.jpg``, ``b.com/y/1.jpg``): the
    first row keeps the name and each later one becomes an error row
    (:class:`~creevey_dask.exceptions.OutpathClashError`) naming the URL it clashes
    with; see :func:`find_clashes`.
``"url_hash"``
    ``<outdir>/<filename>_<16 hex digits of the URL's sha256>.<ext>``: readable and
    collision-free in practice (64 bits), order-independent, no clash check needed.
``"hash"``
    ``<outdir>/<ab>/<cd>/<sha256 of the URL>.<ext>``: collision-free, sharded into
    65,536 subfolders so that millions of files stay listable.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from . import storage
from .exceptions import OutpathClashError, UnsafeSourceError

__all__ = [
    "NAMINGS",
    "ClashGuard",
    "HashNamer",
    "UrlNamer",
    "find_clashes",
    "make_namer",
    "safe_filename",
    "url_hash",
]

#: The allowed values of ``naming=``.
NAMINGS = ("url", "url_hash", "hash")
_MAX_STEM_BYTES = 120
_UNSAFE = re.compile(r"[^\w.\-]+")
_DEFAULT_STEM = "image"


def url_hash(url: str) -> str:
    """The sha256 hex digest of ``url`` (UTF-8).

    Examples
    --------
    >>> url_hash("https://example.com/a.jpg")[:12]
    '276a1ac00ba4'
    """
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", "ignore")


def safe_filename(url: str, ext: str | None = None) -> str:
    """A safe file name taken from the last path segment of ``url``.

    The segment is percent-decoded (repeatedly, so ``%252e`` is caught), normalised
    (NFC), and every run of characters other than letters, digits, ``_``, ``-`` and
    ``.`` becomes ``_`` (so ``/``, ``\\``, NUL and other control characters cannot
    survive). Leading dots are removed (no hidden files, no ``..``), the stem is cut to
    120 bytes of UTF-8 (with a short hash of the URL appended when cut, so two long
    names stay distinct), and an empty result becomes ``"image"``. ``ext`` (e.g.
    ``".png"``) replaces the extension; None keeps the URL's.

    Examples
    --------
    >>> safe_filename("https://example.com/photos/cat.jpg?size=large", ".png")
    'cat.png'
    >>> safe_filename("https://example.com/%2e%2e%2f%2e%2e%2fetc%2fpasswd")
    'etc_passwd'
    >>> safe_filename("https://example.com/")
    'image'
    """
    path = urlsplit(url).path
    segment = path.rsplit("/", 1)[-1]
    for _ in range(3):  # undo double and triple encoding of ../ tricks
        decoded = unquote(segment)
        if decoded == segment:
            break
        segment = decoded
    segment = unicodedata.normalize("NFC", segment)
    segment = segment.replace("\\", "/").rsplit("/", 1)[-1] if "\\" in segment else segment
    segment = _UNSAFE.sub("_", segment.replace("/", "_")).strip("._ ") or ""
    segment = segment.lstrip(".")
    stem, url_ext = os.path.splitext(segment)
    if not stem:
        stem, url_ext = (url_ext.lstrip(".") or _DEFAULT_STEM), ""
    stem = stem.strip("._") or _DEFAULT_STEM
    if len(stem.encode("utf-8")) > _MAX_STEM_BYTES:
        stem = f"{_truncate_utf8(stem, _MAX_STEM_BYTES - 9)}_{url_hash(url)[:8]}"
    if ext is None:
        url_ext = url_ext if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", url_ext or "") else ""
        return f"{stem}{url_ext.lower()}"
    return f"{stem}{ext}"


def _check_ext(ext: str | None) -> str | None:
    if ext is None:
        return None
    if not isinstance(ext, str) or not re.fullmatch(r"\.[A-Za-z0-9]{1,8}", ext):
        raise ValueError(
            f"ext must look like '.png' (a dot and 1-8 letters or digits), got {ext!r}"
        )
    return ext


class UrlNamer:
    """``outdir/<safe filename of the URL><ext>``; a picklable outpath function.

    Parameters
    ----------
    outdir : str
        The folder (local path or fsspec URL).
    ext : str, optional
        The extension to give every file (``".png"``); None keeps the URL's.
    hashed : bool, default False
        Append ``_<16 hex digits of the URL's sha256>`` to the stem (``naming="url_hash"``).
    """

    def __init__(self, outdir: str, ext: str | None = None, hashed: bool = False) -> None:
        self.outdir = _check_outdir(outdir)
        self.ext = _check_ext(ext)
        self.hashed = hashed

    def name(self, url: Any) -> str:
        """The file name (without the folder) for ``url``."""
        if not isinstance(url, str):
            raise TypeError(f"a URL must be a str, got {type(url).__name__} {url!r}")
        filename = safe_filename(url, self.ext)
        if self.hashed:
            stem, ext = os.path.splitext(filename)
            filename = f"{stem}_{url_hash(url)[:16]}{ext}"
        if filename in ("", ".", "..") or "/" in filename or "\x00" in filename:
            raise UnsafeSourceError(f"no safe file name can be made from {url!r}")
        return filename

    def __call__(self, url: Any) -> str:
        return storage.join(self.outdir, self.name(url))

    def __repr__(self) -> str:
        return f"UrlNamer({self.outdir!r}, ext={self.ext!r}, hashed={self.hashed!r})"


class HashNamer:
    """``outdir/<ab>/<cd>/<sha256 of the URL><ext>``: collision-free and sharded.

    Parameters
    ----------
    outdir : str
        The folder (local path or fsspec URL).
    ext : str, optional
        The extension to give every file; None keeps the URL's (if it has one).
    levels : int, default 2
        Subfolder levels, each named by two hex digits (256 folders per level).

    Examples
    --------
    >>> HashNamer("out", ".png")("https://example.com/a.jpg")  # doctest: +ELLIPSIS
    'out/27/6a/276a1ac00ba4...png'
    """

    def __init__(self, outdir: str, ext: str | None = None, levels: int = 2) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int) or not 0 <= levels <= 4:
            raise ValueError(f"levels must be an int from 0 to 4, got {levels!r}")
        self.outdir = _check_outdir(outdir)
        self.ext = _check_ext(ext)
        self.levels = levels

    def __call__(self, url: Any) -> str:
        if not isinstance(url, str):
            raise TypeError(f"a URL must be a str, got {type(url).__name__} {url!r}")
        digest = url_hash(url)
        ext = self.ext if self.ext is not None else os.path.splitext(safe_filename(url))[1]
        shards = [digest[2 * i : 2 * i + 2] for i in range(self.levels)]
        return storage.join(self.outdir, *shards, f"{digest}{ext}")

    def __repr__(self) -> str:
        return f"HashNamer({self.outdir!r}, ext={self.ext!r}, levels={self.levels!r})"


def _check_outdir(outdir: Any) -> str:
    if isinstance(outdir, os.PathLike):
        outdir = os.fspath(outdir)
    if not isinstance(outdir, str) or not outdir:
        raise TypeError(f"outdir must be a non-empty path or URL string, got {outdir!r}")
    return outdir


def make_namer(naming: str, outdir: str, ext: str | None) -> UrlNamer | HashNamer:
    """The outpath function for ``naming`` (one of :data:`NAMINGS`)."""
    if naming == "url":
        return UrlNamer(outdir, ext)
    if naming == "url_hash":
        return UrlNamer(outdir, ext, hashed=True)
    if naming == "hash":
        return HashNamer(outdir, ext)
    raise ValueError(f"naming {naming!r} is not one of {list(NAMINGS)}")


class ClashGuard:
    """An outpath function that refuses the URLs that lost a name clash.

    ``losers`` maps each refused URL to ``(outpath, the URL that keeps it)``; every
    other URL gets ``namer(url)``.
    """

    def __init__(self, namer: Any, losers: Mapping[str, tuple[str, str]]) -> None:
        self.namer = namer
        self.losers = dict(losers)

    def __call__(self, url: Any) -> str:
        lost = self.losers.get(url) if isinstance(url, str) else None
        if lost is not None:
            outpath, winner = lost
            raise OutpathClashError(
                f"the outpath {outpath!r} is also the name for {winner!r}, an earlier row "
                "with a different URL; nothing was written. Use naming='url_hash' or "
                "naming='hash' for collision-free names"
            )
        return str(self.namer(url))

    def __repr__(self) -> str:
        return f"ClashGuard({self.namer!r}, {len(self.losers)} clashing URLs)"


def _name_table(
    part: pd.DataFrame,
    namer: Any,
    col: str,
    accept: Callable[[str], Any] | None = None,
    partition_info: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Per partition: (outpath, url, order) for each distinct URL with a usable name."""
    partition = int(partition_info["number"]) if partition_info else 0
    urls = part[col]
    names: list[Any] = []
    keep: list[bool] = []
    for url in urls.tolist():
        try:
            if accept is not None:
                accept(url)
            names.append(str(namer(url)) if isinstance(url, str) else None)
        except Exception:  # an unusable URL is an error row later, not a clash
            names.append(None)
        keep.append(names[-1] is not None)
    table = pd.DataFrame(
        {
            "outpath": pd.Series(names, dtype=object),
            "url": pd.Series(urls.tolist(), dtype=object),
            "order": pd.Series(range(len(names)), dtype="int64") + (partition << 32),
        }
    )
    table = table[keep]
    return table.drop_duplicates(subset=["url"], keep="first")


def _resolve(table: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """From (outpath, url, order) rows: each URL that is not first for its outpath."""
    table = table.sort_values("order", kind="stable").drop_duplicates(subset=["url"])
    clashing = table[table.duplicated(subset=["outpath"], keep=False)]
    losers: dict[str, tuple[str, str]] = {}
    for outpath, group in clashing.groupby("outpath", sort=False):
        urls = group["url"].tolist()
        for url in urls[1:]:
            losers[url] = (str(outpath), urls[0])
    return losers


def find_clashes(
    frame: Any, col: str, namer: Any, accept: Callable[[str], Any] | None = None
) -> dict[str, tuple[str, str]]:
    """Find URLs in ``frame[col]`` whose outpath is taken by an earlier, different URL.

    Returns ``{losing URL: (outpath, the URL that keeps it)}``; the row order decides
    (for dask input, partition order then row order). The same URL repeated is not a
    clash. ``accept(url)``, if given, raises for sources that will fail anyway (e.g. a
    ``file://`` URL in a download); they take no name.

    For a dask frame this computes two passes over the URL column (only names, no
    downloads): a hash aggregation that finds the outpaths shared by several URLs,
    then the rows with those outpaths. Memory stays bounded by the clashing rows.
    """
    import dask.dataframe as dd

    if not isinstance(frame, dd.DataFrame):
        return _resolve(_name_table(frame[[col]], namer, col, accept))

    meta = pd.DataFrame(
        {
            "outpath": pd.Series([], dtype=object),
            "url": pd.Series([], dtype=object),
            "order": pd.Series([], dtype="int64"),
        }
    )
    tables = frame[[col]].map_partitions(_name_table, namer, col, accept, meta=meta)
    split_out = max(1, tables.npartitions // 16)
    pairs = tables[["outpath", "url"]].drop_duplicates(split_out=split_out)
    counts = pairs["outpath"].value_counts(split_out=split_out)
    shared = sorted(counts[counts > 1].index.compute().tolist())
    if not shared:
        return {}
    candidates = tables.map_partitions(_with_outpaths, shared, meta=meta).compute()
    return _resolve(candidates)


def _with_outpaths(table: pd.DataFrame, outpaths: list[str]) -> pd.DataFrame:
    return table[table["outpath"].isin(outpaths)]
