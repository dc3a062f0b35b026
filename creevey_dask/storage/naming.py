"""The one owner of output names: from the source, sanitised, byte-limited, disambiguated.

Every entry point (``Pipeline.run``, downloads, resizes, ImageNet-style trees, the
datasets) names its outputs here.

**Names.** :func:`safe_filename` takes the last path segment of a URL or path,
percent-decodes it, normalises it (NFC), replaces every run of characters other than
letters, digits, ``_``, ``-`` and ``.`` by ``_``, drops leading dots and cuts it to
:data:`~creevey_dask.storage.MAX_NAME_BYTES` (255) bytes of UTF-8; a name that had to
be cut ends in ``_<16 hex digits of the source's sha256>``, so two long names stay
distinct. :func:`safe_name` does the same for a label or a file name that is not a URL.
Three schemes, chosen with ``naming=``:

``"url"`` (default)
    ``<outdir>/<filename from the URL>.<ext>``, like the original creevey.
``"url_hash"``
    ``<outdir>/<filename>_<16 hex digits of the URL's sha256>.<ext>``.
``"hash"``
    ``<outdir>/<ab>/<cd>/<sha256 of the URL>.<ext>``, sharded into 65,536 subfolders.

**Clashes** never give an error row and never an overwrite: a source whose name is
taken by a *different* source gets :func:`disambiguate`'s name,
``<stem>_<16 hex digits of its own sha256><ext>`` in the same folder. For in-memory
input the table order decides who keeps the plain name (the first row;
:func:`find_clashes`), so the same table gives the same names in any folder; for dask
input the order within each partition decides among its rows, and between partitions
the first writer keeps it. The engine runs the rows that lost a clash after all the
others; a loser still tries the plain name first (it is free only if the winner's row
failed), so every writer of a source tries the same names in the same order and the
exclusive commit decides: two processes or workers whose tables order a clash
differently still write each source once. Across runs, the owner of a name is proved
by :class:`Outpaths` (below).

**Whose output is this?** A name that contains the first 16 hex digits of the sha256
of its source (the ``"url_hash"`` and ``"hash"`` schemes and every disambiguated name)
proves its source by itself. Any other name is proved by the proof the output carries
(:mod:`creevey_dask.storage.provenance`: an extended attribute, object metadata). A plain name
with something at the path but no valid proof of this source (another tool's file, a
folder, an output of an older version, another source's output) is never skipped and
never overwritten; the row takes its disambiguated name instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from ..exceptions import OutpathClashError, UnsafeSourceError
from . import fs as storage
from . import provenance

__all__ = [
    "NAMINGS",
    "check_naming",
    "HashNamer",
    "Outpaths",
    "UrlNamer",
    "disambiguate",
    "find_clashes",
    "fit_name",
    "make_namer",
    "proves_source",
    "safe_filename",
    "safe_name",
    "source_key",
    "url_hash",
]

#: The allowed values of ``naming=``.
NAMINGS = ("url", "url_hash", "hash")
#: Hex digits of the source's sha256 in a disambiguated or cut name.
HASH_DIGITS = 16
_UNSAFE = re.compile(r"[^\w.\-]+")
_DEFAULT_STEM = "image"
# For safe_name (labels and link names): what Windows and POSIX refuse in a name.
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}


def url_hash(url: str) -> str:
    """The sha256 hex digest of ``url`` (UTF-8).

    Examples
    --------
    >>> url_hash("https://example.com/a.jpg")[:12]
    '276a1ac00ba4'
    """
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def source_key(source: Any) -> str:
    """The text that identifies a source: ``str`` of it (``os.fspath`` for paths)."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    return source if isinstance(source, str) else str(source)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return text
    return encoded[: max(limit, 0)].decode("utf-8", "ignore")


def fit_name(stem: str, ext: str, key: str, max_bytes: int = storage.MAX_NAME_BYTES) -> str:
    """``stem + ext`` if it fits in ``max_bytes`` bytes of UTF-8; else cut, with a hash.

    A cut name is ``<stem cut by bytes>_<16 hex digits of sha256(key)><ext>``, so two
    long names that share their first ~230 bytes stay distinct.

    Examples
    --------
    >>> fit_name("cat", ".png", "https://e.com/cat.png")
    'cat.png'
    >>> name = fit_name("é" * 200, ".png", "https://e.com/long")
    >>> len(name.encode()), name[-21:]
    (255, '_5701b586450fd9b5.png')
    """
    if _utf8_len(stem) + _utf8_len(ext) <= max_bytes:
        return f"{stem}{ext}"
    room = max_bytes - _utf8_len(ext) - 1 - HASH_DIGITS
    return f"{_truncate_utf8(stem, room)}_{url_hash(key)[:HASH_DIGITS]}{ext}"


def safe_filename(url: str, ext: str | None = None) -> str:
    """A safe file name taken from the last path segment of ``url``.

    The segment is percent-decoded (repeatedly, so ``%252e`` is caught), normalised
    (NFC), and every run of characters other than letters, digits, ``_``, ``-`` and
    ``.`` becomes ``_`` (so ``/``, ``\\``, NUL and other control characters cannot
    survive). Leading dots are removed (no hidden files, no ``..``), an empty result
    becomes ``"image"``, and the name is cut to 255 bytes of UTF-8 by
    :func:`fit_name` (with a hash of the URL when cut). ``ext`` (e.g. ``".png"``)
    replaces the extension; None keeps the URL's.

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
    if ext is None:
        ext = url_ext.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", url_ext or "") else ""
    return fit_name(stem, ext, url)


def safe_name(text: str, max_bytes: int = storage.MAX_NAME_BYTES) -> str:
    """A safe name for one path component made from ``text`` (a label or a file name).

    Path separators, control characters and characters that Windows refuses become
    ``_``; leading dots become ``_`` and trailing dots and spaces go; an empty result
    is ``_``; Windows device names (``CON``, ``NUL``, ...) get a leading ``_``; the
    name is cut to ``max_bytes`` bytes by :func:`fit_name` (keeping the extension).

    Examples
    --------
    >>> safe_name("cats/dogs"), safe_name(".."), safe_name(".hidden"), safe_name("CON.txt")
    ('cats_dogs', '_', '_hidden', '_CON.txt')
    """
    key = text
    text = unicodedata.normalize("NFC", text)
    text = _UNSAFE_CHARS.sub("_", text).strip().rstrip(". ")
    if text.startswith("."):
        text = "_" + text.lstrip(".")
    if not text:
        text = "_"
    if text.split(".")[0].upper() in _RESERVED:
        text = "_" + text
    stem, dot, ext = text.rpartition(".")
    stem, ext = (stem, f".{ext}") if dot and stem and len(ext) <= 16 else (text, "")
    return fit_name(stem, ext, key, max_bytes)


def disambiguate(outpath: str, source: Any) -> str:
    """The name for ``source`` when ``outpath`` is taken by another source.

    ``<folder>/<stem>_<16 hex digits of sha256(source)><ext>``, cut to 255 bytes. A
    name that already proves ``source`` (:func:`proves_source`) is returned as it is.

    Examples
    --------
    >>> disambiguate("out/img.png", "https://e.com/img?id=17")
    'out/img_9719e2ec05bb4a9d.png'
    """
    return _disambiguate(outpath, url_hash(source_key(source))[:HASH_DIGITS])


def _disambiguate(outpath: str, short: str) -> str:
    """:func:`disambiguate` given the source's 16 hex digits ``short``."""
    folder, sep, name = outpath.rpartition("/")
    if short in name:
        return outpath
    stem, ext = os.path.splitext(name)
    if not stem:
        stem, ext = ext, ""
    room = storage.MAX_NAME_BYTES - _utf8_len(ext) - 1 - HASH_DIGITS
    return f"{folder}{sep}{_truncate_utf8(stem, room)}_{short}{ext}"


def proves_source(outpath: str, source: Any) -> bool:
    """Whether the name of ``outpath`` contains the first 16 hex digits of ``source``'s sha256.

    Such a name (``naming="url_hash"`` or ``"hash"``, a disambiguated or a cut name)
    belongs to that source without a claim.
    """
    return _names_digest(outpath, url_hash(source_key(source)))


def _names_digest(outpath: str, digest: str) -> bool:
    return digest[:HASH_DIGITS] in outpath.rstrip("/").rpartition("/")[2]


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
            filename = disambiguate(filename, url)
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


def check_naming(naming: Any) -> None:
    """Raise ``ValueError`` unless ``naming`` is one of :data:`NAMINGS` (the one check)."""
    if naming not in NAMINGS:
        raise ValueError(f"naming {naming!r} is not one of {list(NAMINGS)}")


def make_namer(naming: str, outdir: str, ext: str | None) -> UrlNamer | HashNamer:
    """The outpath function for ``naming`` (one of :data:`NAMINGS`)."""
    check_naming(naming)
    if naming == "url":
        return UrlNamer(outdir, ext)
    if naming == "url_hash":
        return UrlNamer(outdir, ext, hashed=True)
    return HashNamer(outdir, ext)  # naming == "hash"


def find_clashes(sources: Iterable[Any], outpath_func: Callable[[Any], Any]) -> frozenset[str]:
    """The sources that must not take their plain outpath because an earlier row has it.

    In table order, the first source to map to an outpath keeps it; every later,
    *different* source with the same outpath is returned (as :func:`source_key`) and
    will get :func:`disambiguate`'s name. The same source repeated is not a clash.
    Names are compared ignoring case, since two names that differ only in case are one
    file on case-insensitive disks (macOS, Windows). Sources whose outpath cannot be
    made are left out (they become error rows).

    Examples
    --------
    >>> namer = UrlNamer("out", ".png")
    >>> sorted(find_clashes(["https://a/x.jpg", "https://b/x.jpg", "https://a/x.jpg"], namer))
    ['https://b/x.jpg']
    """
    owners: dict[str, str] = {}
    losers: set[str] = set()
    for source in sources:
        if source is None or source is pd.NA or (isinstance(source, float) and source != source):
            continue
        key = source_key(source)
        try:
            outpath = os.fspath(outpath_func(source))
        except Exception:  # an unusable source is an error row later, not a clash
            continue
        folded = str(outpath).casefold()
        owner = owners.setdefault(folded, key)
        if owner != key:
            losers.add(key)
    return frozenset(losers)


class Outpaths:
    """The outpath of every row of a run: names, clashes and ownership, in one place.

    The engine asks it, per row: :meth:`plan` (the intended outpath, no storage
    access), :meth:`existing` (this source's finished output, for a skip) and
    :meth:`commit` (commit the writer's output under a name this source owns). A
    picklable object, so it travels to worker processes.

    Parameters
    ----------
    outpath_func : callable
        ``outpath_func(source) -> path``: the plain outpath.
    losers : set of str, optional
        Sources that lost an in-table clash (:func:`find_clashes`): they plan their
        disambiguated name, and the engine runs them after every other row.
    storage_options : mapping, optional
        fsspec options for reading proofs and committing outputs.
    """

    def __init__(
        self,
        outpath_func: Callable[[Any], Any],
        losers: Iterable[str] = (),
        storage_options: Mapping[str, Any] | None = None,
        *,
        files: bool = True,
        index: provenance.FolderIndex | None = None,
    ) -> None:
        self.outpath_func = outpath_func
        self.losers = frozenset(losers)
        self.storage_options = dict(storage_options or {})
        self.files = files
        self.index = index

    def _copy(self, **changes: Any) -> Outpaths:
        fields: dict[str, Any] = {
            "losers": self.losers,
            "storage_options": self.storage_options,
            "files": self.files,
            "index": self.index,
        }
        fields.update(changes)
        return Outpaths(self.outpath_func, **fields)

    def resolved(self, sources: Iterable[Any]) -> Outpaths:
        """These outpaths with the clashes among ``sources`` settled in their order.

        The first of ``sources`` to map to a name keeps it; later, different sources
        take their disambiguated names (:func:`find_clashes`). The engine resolves an
        in-memory table as a whole, and each partition of dask input before its rows run.
        """
        return self._copy(losers=self.losers | find_clashes(sources, self.outpath_func))

    def hints(self, outpath_func: Callable[[Any], Any]) -> Outpaths:
        """Names that are only hints (a sample's name inside a shard): no files, no proofs.

        :meth:`existing` is then always None and the sink that writes the shard owns its
        skip and its commit.
        """
        return Outpaths(outpath_func, self.losers, self.storage_options, files=False)

    def indexed(self, planned: Iterable[Any]) -> Outpaths:
        """These outpaths with one listing of the object-store folders of ``planned``.

        A partition's rows then skip the HEAD of their skip check where the listing shows
        nothing at their name (:class:`~creevey_dask.storage.provenance.FolderIndex`).
        """
        if not self.files:
            return self
        paths = [p for p in planned if isinstance(p, str)]
        return self._copy(index=provenance.FolderIndex.of(paths, self.storage_options))

    def plan(self, source: Any) -> str:
        """The outpath this source aims for (its disambiguated name if it lost a clash)."""
        outpath = self.outpath_func(source)
        if not isinstance(outpath, str):
            outpath = os.fspath(outpath)
        if source_key(source) in self.losers:
            return disambiguate(outpath, source)
        return outpath

    def _inspect(self, path: str) -> provenance.Entry:
        if self.index is not None:
            return self.index.inspect(path)
        return provenance.inspect(path, self.storage_options)

    @staticmethod
    def _owned(entry: provenance.Entry, path: str, digest: str) -> bool:
        """Whether ``entry`` (at ``path``) is a complete output of the source ``digest``."""
        if entry.kind != "file" or entry.size <= 0 or entry.invalid:
            return False
        if entry.digest is not None:
            return entry.digest == digest
        return _names_digest(path, digest)  # a hashed name proves itself, as it always did

    def is_loser(self, source: Any) -> bool:
        """Whether ``source`` lost an in-table clash (its rows run after the winners')."""
        return bool(self.losers) and source_key(source) in self.losers

    def _candidates(self, source: Any, planned: str, digest: str) -> Iterator[str]:
        """The names to try, in order: the plain name, then the disambiguated one.

        A clash loser tries its plain name too, but the engine runs it only after every
        row that won a clash has committed, so in one run the table order decides; and
        since every writer of a source tries the same names in the same order, two
        processes whose tables order the clash differently still write it once.
        """
        plain = planned
        if self.is_loser(source):
            plain = os.fspath(self.outpath_func(source))
        yield plain
        unique = _disambiguate(plain, digest[:HASH_DIGITS])
        if unique != plain:
            yield unique

    def existing(self, source: Any, planned: str) -> str | None:
        """This source's complete output (a file that proves it), or None."""
        return self.probe(source, planned)[0]

    def probe(
        self, source: Any, planned: str, digest: str | None = None
    ) -> tuple[str | None, bool]:
        """:meth:`existing`, and whether the first name to try was found free.

        The engine hands the second answer to :meth:`commit`, which then does not look
        at that name again before its exclusive commit (one ``stat`` or HEAD less).
        """
        if not self.files:
            return None, False
        digest = digest or url_hash(source_key(source))
        loser = self.is_loser(source)
        for i, path in enumerate(self._candidates(source, planned, digest)):
            entry = self._inspect(path)
            if self._owned(entry, path, digest):
                return path, False
            if entry.kind == "missing" and not loser:
                return None, i == 0  # its name is free: never written under another one
        return None, False

    def commit(
        self,
        source: Any,
        planned: str,
        payload: provenance.Payload,
        *,
        replace: bool,
        first_free: bool = False,
        digest: str | None = None,
    ) -> tuple[str, str]:
        """Commit ``payload`` under a name ``source`` owns: ``(outpath, status)``.

        Tries the planned name, then the disambiguated one. A free name is taken with an
        exclusive commit; a name holding this source's output is ``skipped`` (or, with
        ``replace``, overwritten: only ever this source's own output); a name holding
        anything else is passed over. The loser of a race for a free name reads the
        winner's proof: ``skipped`` if it is this source's, the next name if not.

        ``first_free`` says :meth:`probe` found the first name free a moment ago;
        ``digest`` is the source's (:func:`url_hash`), if the caller has it.

        Raises
        ------
        OutpathClashError
            Only if every name for this source belongs to something else (a file placed
            there by someone else, or a 64-bit hash collision).
        """
        digest = digest or url_hash(source_key(source))
        names = []
        options = self.storage_options
        for path in self._candidates(source, planned, digest):
            names.append(path)
            # first_free: :meth:`probe` just found it free; the exclusive commit decides
            entry = provenance.MISSING if first_free and len(names) == 1 else self._inspect(path)
            for attempt in range(2):  # once more after losing a race for a free name
                owned = self._owned(entry, path, digest)
                if owned and not replace:
                    return path, "skipped"
                if owned or (
                    entry.kind == "file" and entry.digest is None and _names_digest(path, digest)
                ):
                    payload.commit(path, digest, replace=True, storage_options=options)
                    return path, "ok"
                if entry.kind != "missing" or attempt:
                    break  # something else's: the next name
                if payload.commit(path, digest, replace=False, storage_options=options):
                    return path, "ok"
                entry = provenance.inspect(path, options)  # the winner's proof
        raise OutpathClashError(
            f"every name for this source is taken by another source's file: {names}; "
            "nothing was written. Remove or rename those files, or pass another outpath_func"
        )

    def __repr__(self) -> str:
        return f"Outpaths({self.outpath_func!r}, {len(self.losers)} clash losers)"
