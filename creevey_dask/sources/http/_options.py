"""The options of a download: :class:`HttpOptions`, validated once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import urllib3

from ...options import replace_fields

__all__ = ["CREDENTIAL_HEADERS", "DEFAULT_USER_AGENT", "HttpOptions"]

#: Request headers that carry credentials: sent to the URL's own origin (scheme, host
#: and port) only, never on a redirect to another one.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("creevey_dask")
    except Exception:  # pragma: no cover - running from a source tree
        return "0+unknown"


#: The User-Agent sent unless another is given: the library, its version and its home.
DEFAULT_USER_AGENT = (
    f"creevey_dask/{_package_version()} (image pipelines over DataFrames; "
    f"urllib3/{urllib3.__version__})"
)


@dataclass(frozen=True)
class HttpOptions:
    """The HTTP knobs of a download, validated once; immutable and picklable.

    Parameters
    ----------
    connect_timeout : float, default 5
        Seconds to wait for a connection, per attempt.
    read_timeout : float, default 20
        Seconds to wait for the next bytes of the response, per attempt.
    deadline : float, default 60
        Total seconds per URL, across attempts, redirects, backoff, connecting, TLS,
        the headers and the body: every socket operation waits at most what is left.
        The waits for a politeness slot are not counted (see ``slot_wait``).
    retries : int, default 3
        Extra attempts after the first, on connection errors, timeouts, truncated
        bodies, 5xx and 429.
    backoff_base, backoff_cap : float, default 0.5 and 8
        Before retry ``k`` (1, 2, ...) sleep a random time in
        ``[0, min(backoff_cap, backoff_base * 2 ** (k - 1))]`` (full jitter).
    retry_after_cap : float, default 30
        The longest ``Retry-After`` honoured; a longer one is waited for this long.
    per_host_limit : int, default 8
        Requests in flight at once per host. With a ``dask.distributed`` cluster the
        limit holds across the whole cluster; otherwise across the threads of the process.
    per_host_rate : float or None, default None
        Requests per second per host: in any one-second window at most this many
        requests (attempts and redirect hops included) to one host start, across
        threads and, on a cluster, across workers. None: no rate cap.
    slot_wait : float, default 600
        Seconds a request may wait for one of its host's slots (``per_host_limit``,
        ``per_host_rate``) before it starts. The wait is not part of ``deadline``, which
        bounds the request's own time, so a busy host makes rows wait, not fail; a
        wait longer than this ends the row with a ``DownloadTimeoutError`` that names
        the host and this bound.
    max_bytes : int, default 50 MiB
        The largest body accepted; larger ones are stopped while streaming.
    max_redirects : int, default 5
        Redirect hops followed per attempt.
    user_agent : str
        The ``User-Agent`` header; by default names creevey_dask and its version.
    respect_robots_tag : bool, default True
        Refuse responses whose ``X-Robots-Tag`` opts out (``noai``, ``noimageai``,
        ``noindex``, ``noimageindex``, ``none``).
    refuse_private : bool, default False
        Also refuse private, loopback and other non-global addresses (link-local and
        cloud-metadata addresses are always refused).
    headers : tuple of (str, str), default ()
        Extra request headers. They are sent on every redirect hop, except the
        credential ones (``Authorization``, ``Cookie``, ``Proxy-Authorization`` and
        those named in ``sensitive_headers``): those only while the hop stays on the
        URL's origin (scheme, host as spelled, port). Once a redirect leaves it, they
        are not sent again in that attempt, even on a way back.
    sensitive_headers : tuple of str, default ()
        More header names (any case) to treat as credentials, e.g. ``("X-Api-Key",)``.

    Examples
    --------
    >>> options = HttpOptions(retries=1, per_host_limit=4)
    >>> options.replace(timeout=3).read_timeout
    3.0
    """

    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    deadline: float = 60.0
    retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    retry_after_cap: float = 30.0
    per_host_limit: int = 8
    per_host_rate: float | None = None
    slot_wait: float = 600.0
    max_bytes: int = 50 * 2**20
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    respect_robots_tag: bool = True
    refuse_private: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    sensitive_headers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _validate(self)

    def replace(
        self,
        *,
        timeout: float | tuple[float, float] | None = None,
        **changes: Any,
    ) -> HttpOptions:
        """A copy with ``changes``; ``timeout`` sets both timeouts, or ``(connect, read)``."""
        if timeout is not None:
            connect, read = _split_timeout(timeout)
            changes = {"connect_timeout": connect, "read_timeout": read, **changes}
        return replace_fields(self, changes)

    def for_processes(self, n: int, *, exact: bool = True) -> HttpOptions | None:
        """These options for each of ``n`` worker processes that share their per-host limits.

        The limits are kept per process, so each of ``n`` processes gets
        ``per_host_limit // n`` requests in flight per host and ``per_host_rate / n``
        requests per second; together they keep the limits. When ``per_host_limit < n``
        that cannot be exact: None with ``exact=True`` (the default run then stays on
        threads), else one request in flight per process.

        Examples
        --------
        >>> HttpOptions(per_host_limit=8).for_processes(2).per_host_limit
        4
        >>> HttpOptions(per_host_limit=1).for_processes(2) is None
        True
        """
        limit = self.per_host_limit
        if n <= 1:
            return self
        if limit < n and exact:
            return None
        rate = self.per_host_rate
        return self.replace(
            per_host_limit=max(1, limit // n), per_host_rate=None if rate is None else rate / n
        )


def _split_timeout(timeout: Any) -> tuple[float, float]:
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return timeout[0], timeout[1]
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return float(timeout), float(timeout)
    raise TypeError(
        f"timeout must be seconds (a positive number) or a (connect, read) pair, got {timeout!r}"
    )


_POSITIVE = ("connect_timeout", "read_timeout", "deadline", "slot_wait")
_NON_NEGATIVE = ("backoff_base", "backoff_cap", "retry_after_cap")
_COUNTS = {"retries": 0, "per_host_limit": 1, "max_bytes": 1, "max_redirects": 0}


def _validate(options: HttpOptions) -> None:
    """Check every option in one place; messages say what is allowed."""
    for name in (*_POSITIVE, *_NON_NEGATIVE):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"HttpOptions.{name} must be a number of seconds, got {value!r}")
        if name in _POSITIVE and not value > 0:
            raise ValueError(f"HttpOptions.{name} must be > 0 seconds, got {value!r}")
        if not value >= 0:
            raise ValueError(f"HttpOptions.{name} must be >= 0 seconds, got {value!r}")
        object.__setattr__(options, name, float(value))
    for name, low in _COUNTS.items():
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"HttpOptions.{name} must be an int >= {low}, got {value!r}")
        if value < low:
            raise ValueError(f"HttpOptions.{name} must be an int >= {low}, got {value!r}")
    rate = options.per_host_rate
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise TypeError(
                f"HttpOptions.per_host_rate must be requests per second (a number > 0) or "
                f"None, got {rate!r}"
            )
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"HttpOptions.per_host_rate must be > 0 and finite, got {rate!r}")
        object.__setattr__(options, "per_host_rate", float(rate))
    if not isinstance(options.user_agent, str) or not options.user_agent.strip():
        raise ValueError(
            f"HttpOptions.user_agent must be a non-empty str, got {options.user_agent!r}"
        )
    if any(c in options.user_agent for c in "\r\n"):
        raise ValueError("HttpOptions.user_agent must be one line")
    for name in ("respect_robots_tag", "refuse_private"):
        if not isinstance(getattr(options, name), bool):
            raise TypeError(
                f"HttpOptions.{name} must be True or False, got {getattr(options, name)!r}"
            )
    headers = options.headers
    if isinstance(headers, Mapping):
        headers = tuple(headers.items())
    try:
        headers = tuple((str(k), str(v)) for k, v in headers)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"HttpOptions.headers must be a mapping or pairs of (name, value), got {headers!r}"
        ) from err
    object.__setattr__(options, "headers", headers)
    sensitive = options.sensitive_headers
    if isinstance(sensitive, (str, bytes)) or not all(
        isinstance(name, str) for name in _iterable(sensitive)
    ):
        raise TypeError(
            "HttpOptions.sensitive_headers must be header names (a tuple of str, e.g. "
            f"('X-Api-Key',)), got {sensitive!r}"
        )
    object.__setattr__(
        options, "sensitive_headers", tuple(name.strip().lower() for name in sensitive)
    )


def _iterable(value: Any) -> tuple[Any, ...]:
    try:
        return tuple(value)
    except TypeError:
        return (None,)
