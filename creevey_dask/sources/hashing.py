"""Hashes of a row's source bytes: ``compute_hash=`` records them, ``verify_hash=`` checks.

:class:`SourceHash` wraps a loader. ``compute_hash="sha256"`` (or ``"md5"``) records the
hex digest of the bytes the loader decodes in a ``source_sha256`` (``source_md5``)
column; ``verify_hash=(col, "sha256")`` makes a row whose bytes do not have the digest in
its column ``col`` an error row (:class:`~creevey_dask.exceptions.HashMismatchError`)
before anything is written. Rows with no expected digest are not checked.

The loaders hand their bytes over in :func:`creevey_dask.image.imagefile.decode_image`,
which calls :func:`observe_source`; outside a :class:`SourceHash` call that does nothing.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..engine.rows import record, result_columns_of
from ..exceptions import ColumnError, HashMismatchError

__all__ = [
    "HASH_ALGORITHMS",
    "SourceHash",
    "check_verify_column",
    "hash_column",
    "observe_source",
    "check_hash_algorithm",
    "check_verify_hash",
    "with_source_hash",
]

#: The allowed values of ``compute_hash=`` and of the algorithm in ``verify_hash=``.
HASH_ALGORITHMS = ("sha256", "md5")

_current = threading.local()


def hash_column(algorithm: str) -> str:
    """The result column that ``compute_hash=algorithm`` adds (``"source_sha256"``)."""
    return f"source_{algorithm}"


def check_hash_algorithm(algorithm: Any, what: str = "compute_hash") -> str:
    """``algorithm`` if it is one of :data:`HASH_ALGORITHMS`; else a ValueError naming ``what``."""
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"{what} {algorithm!r} is not one of {list(HASH_ALGORITHMS)}")
    return str(algorithm)


def check_verify_hash(verify_hash: Any) -> tuple[str, str] | None:
    """``verify_hash`` as a ``(column, algorithm)`` pair (None stays None); else a ValueError."""
    if verify_hash is None:
        return None
    if (
        not isinstance(verify_hash, (tuple, list))
        or len(verify_hash) != 2
        or not isinstance(verify_hash[0], str)
    ):
        raise TypeError(
            f"verify_hash must be a (column, algorithm) pair such as ('sha256', 'sha256'), "
            f"got {verify_hash!r}"
        )
    column, algorithm = verify_hash
    return column, check_hash_algorithm(algorithm, "the verify_hash algorithm")


def check_verify_column(columns: Iterable[str], verify_hash: Any) -> None:
    """Refuse ``verify_hash=(col, algo)`` up front when the frame has no column ``col``."""
    checked = check_verify_hash(verify_hash)
    columns = list(columns)
    if checked is not None and checked[0] not in columns:
        raise ColumnError(
            f"verify_hash names the column {checked[0]!r}, which the frame does not have "
            f"(its columns: {columns}); pass the column of expected digests"
        )


def observe_source(data: bytes | bytearray | memoryview) -> None:
    """Hash the source bytes of the row being loaded, if a :class:`SourceHash` asked to.

    Called by :func:`~creevey_dask.image.imagefile.decode_image` with the bytes it decodes;
    only the first call of a row counts (the source, not anything decoded later).

    Raises
    ------
    HashMismatchError
        If the row expects another digest.
    """
    spec = getattr(_current, "spec", None)
    if spec is None:
        return
    _current.spec = None
    compute, verify, expected = spec
    digests = {name: hashlib.new(name, data).hexdigest() for name in {compute, verify} if name}
    if compute:
        record(**{hash_column(compute): digests[compute]})
    if verify and expected:
        found = digests[verify]
        if len(expected) > 1:
            raise HashMismatchError(
                f"the source appears in several rows with different expected {verify} "
                f"digests ({sorted(expected)}); its bytes have {found}"
            )
        (wanted,) = expected
        if found != wanted:
            raise HashMismatchError(
                f"the source bytes have {verify} {found}, but the row expects {wanted}"
            )


class SourceHash:
    """A loader that hashes (and optionally verifies) the bytes its inner loader decodes.

    Parameters
    ----------
    loader : callable
        The loader to wrap (e.g. an :class:`~creevey_dask.HttpLoader`).
    compute_hash : {"sha256", "md5"}, optional
        Record the digest in the column ``source_<algorithm>``.
    verify_hash : (column, algorithm), optional
        The column of expected hex digests and their algorithm. The digests of a
        partition's rows are bound with :meth:`with_expected` by the run.
    """

    def __init__(
        self,
        loader: Callable[..., Any],
        compute_hash: str | None = None,
        verify_hash: tuple[str, str] | None = None,
        expected: Mapping[Any, frozenset[str]] | None = None,
    ) -> None:
        self.loader = loader
        self.compute_hash = (
            None if compute_hash is None else check_hash_algorithm(compute_hash, "compute_hash")
        )
        self.verify_hash = check_verify_hash(verify_hash)
        self.expected = dict(expected or {})

    @property
    def accepts_draft(self) -> bool:
        return bool(getattr(self.loader, "accepts_draft", False))

    @property
    def result_columns(self) -> dict[str, Any]:
        columns = result_columns_of(self.loader)
        if self.compute_hash:
            columns[hash_column(self.compute_hash)] = "string"
        return columns

    def with_expected(self, sources: Iterable[Any], digests: Iterable[Any]) -> SourceHash:
        """A copy that expects ``digests`` (hex, any case) for the matching ``sources``."""
        expected: dict[Any, set[str]] = {}
        for source, digest in zip(sources, digests, strict=True):
            if isinstance(digest, str) and digest.strip():
                expected.setdefault(source, set()).add(digest.strip().lower())
        clone = copy.copy(self)
        clone.expected = {k: frozenset(v) for k, v in expected.items()}
        return clone

    def for_processes(self, n: int, *, exact: bool = True) -> SourceHash | None:
        """This loader for each of ``n`` worker processes: its inner loader's share of the
        per-host limits, where the inner loader has one (``for_processes``)."""
        split = getattr(self.loader, "for_processes", None)
        if split is None:
            return self
        inner = split(n, exact=exact)
        if inner is None:
            return None
        clone = copy.copy(self)
        clone.loader = inner
        return clone

    def __call__(self, source: Any, draft: Any = None) -> Any:
        verify = self.verify_hash[1] if self.verify_hash else None
        expected = self.expected.get(source) if verify else None
        _current.spec = (self.compute_hash, verify, expected)
        try:
            image = self.loader(source, draft=draft) if self.accepts_draft else self.loader(source)
            if getattr(_current, "spec", None) is not None and expected:
                raise HashMismatchError(
                    f"cannot verify the {verify} digest: the loader {self.loader!r} does not "
                    "decode through creevey_dask.decode_image, so its bytes are not seen"
                )
            return image
        finally:
            _current.spec = None

    def __repr__(self) -> str:
        return (
            f"SourceHash({self.loader!r}, compute_hash={self.compute_hash!r}, "
            f"verify_hash={self.verify_hash!r})"
        )


def with_source_hash(
    loader: Callable[..., Any], compute_hash: str | None, verify_hash: Any
) -> Callable[..., Any]:
    """``loader`` wrapped in a :class:`SourceHash` if a hash is asked for, else itself."""
    if compute_hash is None and verify_hash is None:
        return loader
    return SourceHash(loader, compute_hash, verify_hash)
