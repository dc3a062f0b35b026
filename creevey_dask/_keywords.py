"""Keyword typos named in public terms: ``df.creevey.download() got an unexpected
keyword argument 'url_column'; did you mean 'url_col'?``, and a keyword that is an option
object's field named with where it goes (``... 'shard_size'; it is a field of
ShardOptions: pass output_format=ShardOptions(..., shard_size=...)``).

Python's own message names the function's qualified name (``_Runs.download``, a private
class of the accessor) and suggests nothing. :func:`public_keywords` checks the keyword
names of a call against the signature before the call, with :mod:`difflib`'s nearest
match; everything else about the call is Python's.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["check_keywords", "extends", "moved_to", "public_keywords", "unknown_keyword"]

_F = TypeVar("_F", bound=Callable[..., Any])


def unknown_keyword(
    public_name: str, name: str, known: list[str], moved: Mapping[str, str] | None = None
) -> TypeError:
    """The TypeError for keyword ``name``, which ``public_name`` does not take.

    ``moved`` maps the fields of option objects to where they go (:func:`moved_to`).

    Examples
    --------
    >>> str(unknown_keyword("download", "url_column", ["url_col", "outdir"]))
    "download() got an unexpected keyword argument 'url_column'; did you mean 'url_col'?"
    >>> str(unknown_keyword("run", "n_job", ["options"], {"n_jobs": "it is in options="}))
    "run() got an unexpected keyword argument 'n_job'; did you mean 'n_jobs'? it is in options="
    """
    moved = {k: v for k, v in (moved or {}).items() if k not in known}  # a taken name is no hint
    if name in moved:
        hint = f"; {moved[name]}"
    else:
        import difflib  # only for a typo

        close = difflib.get_close_matches(name, [*known, *moved], n=1, cutoff=0.6)
        if not close:
            hint = f"; it takes {sorted(known)}"
        elif close[0] in moved:
            hint = f"; did you mean {close[0]!r}? {moved[close[0]]}"
        else:
            hint = f"; did you mean {close[0]!r}?"
    return TypeError(f"{public_name}() got an unexpected keyword argument {name!r}{hint}")


def check_keywords(
    public_name: str,
    given: Iterable[str],
    names: Collection[str],
    moved: Mapping[str, str] | None = None,
) -> None:
    """Raise :func:`unknown_keyword`'s TypeError for the first of the keywords ``given``
    that is not one of ``names`` (what ``public_name`` takes)."""
    for name in given:
        if name not in names:
            raise unknown_keyword(public_name, name, list(names), moved)


def moved_to(param: str, spec: type, *, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Where each field of the dataclass ``spec`` goes, for a function that takes the
    object as ``param=`` (the hints of :func:`unknown_keyword`).

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Knobs:
    ...     size: int = 1
    >>> moved_to("knobs", Knobs)["size"]
    'it is a field of Knobs: pass knobs=Knobs(..., size=...)'
    """
    skip = set(exclude)
    name = spec.__name__
    return {
        field.name: f"it is a field of {name}: pass {param}={name}(..., {field.name}=...)"
        for field in dataclasses.fields(spec)
        if field.name not in skip
    }


def public_keywords(public_name: str, moved: Mapping[str, str] | None = None) -> Callable[[_F], _F]:
    """Decorate a public function so that a keyword typo names ``public_name`` and the
    nearest keyword it takes, and a keyword that is an option object's field says
    where it goes (``moved``, from :func:`moved_to`)."""

    def decorate(func: _F) -> _F:
        parameters = inspect.signature(func).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return func
        known = frozenset(
            name
            for name, p in parameters.items()
            if p.kind is not inspect.Parameter.POSITIONAL_ONLY and name != "self"
        )

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            check_keywords(public_name, kwargs, known, moved)
            return func(*args, **kwargs)

        checked.moved_keywords = dict(moved or {})  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate


def extends(base: Callable[..., Any], *, exclude: tuple[str, ...] = ()) -> Callable[[_F], _F]:
    """Give a function that forwards ``**options`` to ``base`` the rest of ``base``'s
    signature: its own parameters first, then ``base``'s other keywords (keyword-only),
    so that no parameter list is written twice and ``help()`` shows every option.

    ``exclude`` names parameters of ``base`` the function does not take (the ones it
    fills itself).
    """

    def decorate(func: _F) -> _F:
        own = inspect.signature(func)
        kept = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in kept} | set(exclude)
        tail = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(base).parameters.values()
            if p.name not in taken
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        func.__signature__ = own.replace(parameters=[*kept, *tail])  # type: ignore[attr-defined]
        return func

    return decorate
