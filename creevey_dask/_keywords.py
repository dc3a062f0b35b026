"""Keyword typos named in public terms: ``df.creevey.download() got an unexpected
keyword argument 'caption_column'; did you mean 'caption_col'?``.

Python's own message names the function's qualified name (``_Runs.download``, a private
class of the accessor) and suggests nothing. :func:`public_keywords` checks the keyword
names of a call against the signature before the call, with :mod:`difflib`'s nearest
match; everything else about the call is Python's.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["extends", "public_keywords", "unknown_keyword"]

_F = TypeVar("_F", bound=Callable[..., Any])


def unknown_keyword(public_name: str, name: str, known: list[str]) -> TypeError:
    """The TypeError for keyword ``name``, which ``public_name`` does not take.

    Examples
    --------
    >>> str(unknown_keyword("download", "url_column", ["url_col", "outdir"]))
    "download() got an unexpected keyword argument 'url_column'; did you mean 'url_col'?"
    """
    import difflib  # only for a typo

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; it takes {sorted(known)}"
    return TypeError(f"{public_name}() got an unexpected keyword argument {name!r}{hint}")


def public_keywords(public_name: str) -> Callable[[_F], _F]:
    """Decorate a public function so that a keyword typo names ``public_name`` and the
    nearest keyword it takes."""

    def decorate(func: _F) -> _F:
        parameters = inspect.signature(func).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return func
        names = [
            name
            for name, p in parameters.items()
            if p.kind is not inspect.Parameter.POSITIONAL_ONLY and name != "self"
        ]
        known = frozenset(names)

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            for name in kwargs:
                if name not in known:
                    raise unknown_keyword(public_name, name, names)
            return func(*args, **kwargs)

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
