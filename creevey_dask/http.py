"""HTTP done right: per-thread sessions, timeouts, retries, politeness and safety checks.

:func:`fetch` downloads one URL with the knobs of a frozen :class:`HttpOptions`:

- **Sessions.** One ``requests.Session`` per thread, made lazily on the thread that
  uses it (so nothing unpicklable travels to dask workers), with keep-alive connection
  reuse. A thread runs one request at a time, so the connections open at once in a
  process are bounded by the number of threads: the pool is sized to the concurrency.
- **Timeouts.** A connect and a read timeout per attempt, and a total ``deadline`` per
  URL that covers every attempt, redirect, backoff sleep and the streaming of the body.
- **Retries** with exponential backoff and full jitter on connection errors, timeouts,
  truncated bodies, 5xx and 429; ``Retry-After`` (seconds or an HTTP date) is
  honoured, capped at ``retry_after_cap``. Other 4xx are final at once.
- **Politeness.** At most ``per_host_limit`` requests in flight per host, shared by
  all threads of a *process* (a module-level registry of semaphores: on a cluster each
  worker process has its own, so the limit per host for the cluster is
  ``per_host_limit`` times the worker processes). A ``Retry-After`` on a 429 or 503
  pauses every request of the process to that server, not just the retried one. An
  honest default User-Agent. ``X-Robots-Tag`` opt-outs (``noai``, ``noimageai``,
  ``noindex``, ``noimageindex``, ``none``) are honoured by default.
- **Safety.** Only ``http`` and ``https``, checked again at every redirect hop
  (redirects are followed by hand, up to ``max_redirects``). Link-local and cloud
  metadata addresses are refused by default, private and loopback ones too with
  ``refuse_private=True``; the address is checked when the host name is resolved
  (the verdict cached per host for a minute) and again on the connected socket once
  the response headers arrive, before any of the body is read (a defence against DNS
  rebinding; the request itself has been sent by then). The body is streamed with a
  cap (``max_bytes``), and a body shorter than its ``Content-Length`` is an error,
  never a short file.
"""

from __future__ import annotations

import calendar
import dataclasses
import email.utils
import ipaddress
import random
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from .exceptions import (
    DownloadConnectionError,
    DownloadError,
    DownloadTimeoutError,
    HttpError,
    RobotsTagError,
    SizeLimitError,
    TooManyRedirectsError,
    TruncatedBodyError,
    UnsafeSourceError,
)

__all__ = [
    "DEFAULT_USER_AGENT",
    "ROBOTS_OPT_OUTS",
    "FetchResult",
    "HttpOptions",
    "check_address",
    "check_url",
    "fetch",
    "host_limit",
    "http_options",
    "parse_retry_after",
    "robots_opt_out",
]


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("creevey_dask")
    except Exception:  # pragma: no cover - running from a source tree
        return "0+unknown"


#: The User-Agent sent unless another is given: the library, its version and its home.
DEFAULT_USER_AGENT = (
    f"creevey_dask/{_package_version()} (image pipelines over DataFrames; "
    f"python-requests/{requests.__version__})"
)
#: ``X-Robots-Tag`` directives that opt an image out of being downloaded by default.
ROBOTS_OPT_OUTS = frozenset({"noai", "noimageai", "noindex", "noimageindex", "none"})
_ALLOWED_SCHEMES = ("http", "https")
#: Statuses worth another attempt: 429 Too Many Requests and every 5xx.
_RETRY_STATUSES = frozenset({429, *range(500, 600)})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
#: Addresses refused by default: link-local (incl. 169.254.169.254) and cloud metadata.
_METADATA_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
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
        Total seconds per URL, across attempts, redirects, backoff and streaming.
    retries : int, default 3
        Extra attempts after the first, on connection errors, timeouts, truncated
        bodies, 5xx and 429.
    backoff_base, backoff_cap : float, default 0.5 and 8
        Before retry ``k`` (1, 2, ...) sleep a random time in
        ``[0, min(backoff_cap, backoff_base * 2 ** (k - 1))]`` (full jitter).
    retry_after_cap : float, default 30
        The longest ``Retry-After`` honoured; a longer one is waited for this long.
    per_host_limit : int, default 8
        Requests in flight at once per host, per process.
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
        Extra request headers.

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
    max_bytes: int = 50 * 2**20
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    respect_robots_tag: bool = True
    refuse_private: bool = False
    headers: tuple[tuple[str, str], ...] = ()

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
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(
                f"HttpOptions has no option(s) {unknown}; "
                f"the options are {[f.name for f in dataclasses.fields(self)]}"
            )
        return dataclasses.replace(self, **changes)


def _split_timeout(timeout: Any) -> tuple[float, float]:
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return timeout[0], timeout[1]
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return float(timeout), float(timeout)
    raise TypeError(
        f"timeout must be seconds (a positive number) or a (connect, read) pair, got {timeout!r}"
    )


_POSITIVE = ("connect_timeout", "read_timeout", "deadline")
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


def http_options(
    options: HttpOptions | None = None,
    *,
    timeout: float | tuple[float, float] | None = None,
    retries: int | None = None,
    per_host_limit: int | None = None,
    user_agent: str | None = None,
) -> HttpOptions:
    """``options`` (default :class:`HttpOptions()`) with the keyword shortcuts applied.

    Examples
    --------
    >>> http_options(timeout=(2, 10), retries=0).read_timeout
    10.0
    """
    if options is None:
        options = HttpOptions()
    elif not isinstance(options, HttpOptions):
        raise TypeError(f"options must be a creevey_dask.HttpOptions, got {options!r}")
    changes: dict[str, Any] = {}
    if retries is not None:
        changes["retries"] = retries
    if per_host_limit is not None:
        changes["per_host_limit"] = per_host_limit
    if user_agent is not None:
        changes["user_agent"] = user_agent
    if timeout is None and not changes:
        return options
    return options.replace(timeout=timeout, **changes)


# -- safety ---------------------------------------------------------------------------


def check_url(url: Any) -> str:
    """Return ``url`` if it is an http(s) URL with a host; raise :class:`UnsafeSourceError`.

    Examples
    --------
    >>> check_url("https://example.com/a.jpg")
    'https://example.com/a.jpg'
    """
    if not isinstance(url, str):
        raise TypeError(f"a URL must be a str, got {type(url).__name__} {url!r}")
    if "\x00" in url or any(c in url for c in "\r\n"):
        raise UnsafeSourceError(f"the URL {url[:200]!r} contains control characters")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        what = f"the scheme {scheme!r}" if scheme else "no scheme"
        raise UnsafeSourceError(
            f"{url[:200]!r} has {what}; only {' and '.join(_ALLOWED_SCHEMES)} URLs are downloaded"
        )
    if not parts.hostname:
        raise UnsafeSourceError(f"{url[:200]!r} has no host")
    return url.strip()


def _address_refused(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, refuse_private: bool
) -> str:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _METADATA_NETWORKS if net.version == ip.version):
        return "a link-local or cloud-metadata address"
    if refuse_private and (
        ip.is_private or ip.is_loopback or ip.is_reserved or ip.is_multicast or not ip.is_global
    ):
        return "a private, loopback or reserved address (refuse_private=True)"
    return ""


def check_address(address: str, refuse_private: bool = False) -> None:
    """Raise :class:`UnsafeSourceError` if the IP ``address`` is one that is refused.

    Examples
    --------
    >>> check_address("93.184.216.34")
    >>> check_address("169.254.169.254")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    creevey_dask.exceptions.UnsafeSourceError: 169.254.169.254 is a link-local ...; refused
    """
    ip = ipaddress.ip_address(address.split("%")[0])
    reason = _address_refused(ip, refuse_private)
    if reason:
        raise UnsafeSourceError(f"{address} is {reason}; refused")


#: How long a host's checked addresses are trusted before it is resolved again (seconds).
_HOST_CHECK_TTL = 60.0
_host_checks: dict[tuple[str, bool], tuple[float, str]] = {}


def _check_host(url: str, options: HttpOptions) -> None:
    """Resolve the URL's host and refuse it if any of its addresses is refused.

    The verdict is cached per host for a minute, so a busy host costs one lookup a
    minute, not one per request; the connected peer is checked on every request anyway
    (:func:`_check_peer`), which also covers a host that resolves differently later.
    """
    host = urlsplit(url).hostname or ""
    key = (host, options.refuse_private)
    cached = _host_checks.get(key)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        if cached[1]:
            raise UnsafeSourceError(cached[1])
        return
    verdict = _host_verdict(host, urlsplit(url).port, options.refuse_private)
    if len(_host_checks) > 10_000:
        _host_checks.clear()
    _host_checks[key] = (now + _HOST_CHECK_TTL, verdict)
    if verdict:
        raise UnsafeSourceError(verdict)


def _host_verdict(host: str, port: int | None, refuse_private: bool) -> str:
    """``""`` if every address of ``host`` is allowed, else the reason it is refused."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        addresses: Iterable[str] = [host]
    else:
        try:
            infos = socket.getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
        except OSError:
            return ""  # the request itself will fail with a clear connection error
        addresses = {str(info[4][0]) for info in infos}
    for address in addresses:
        try:
            check_address(address, refuse_private)
        except UnsafeSourceError as err:
            return f"{host!r} resolves to {err}"
    return ""


def _check_peer(response: requests.Response, options: HttpOptions) -> None:
    """Check the address actually connected to (guards against DNS rebinding)."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        peer = sock.getpeername()[0]
    except (OSError, IndexError, TypeError):
        return
    check_address(str(peer), options.refuse_private)


# -- politeness ------------------------------------------------------------------------

_host_limits: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_host_limits_lock = threading.Lock()


def host_limit(host: str, limit: int) -> threading.BoundedSemaphore:
    """The semaphore bounding requests in flight to ``host`` in this process.

    One registry per process, shared by all its threads: a dask worker process (or the
    local process, for the ``threads`` scheduler) holds at most ``limit`` requests to a
    host at once.
    """
    key = (host.lower(), limit)
    semaphore = _host_limits.get(key)
    if semaphore is None:
        with _host_limits_lock:
            semaphore = _host_limits.setdefault(key, threading.BoundedSemaphore(limit))
    return semaphore


#: Per server (``host:port``): the monotonic time before which no request may start,
#: set from a ``Retry-After`` on a 429 or 503 and honoured by every thread of the process.
_host_pauses: dict[str, float] = {}


def _pause_host(netloc: str, seconds: float) -> None:
    """Hold back every request of this process to ``netloc`` for ``seconds``."""
    until = time.monotonic() + seconds
    if until > _host_pauses.get(netloc, 0.0):
        _host_pauses[netloc] = until


def _wait_for_host(
    netloc: str, deadline: float, url: str, state: _Attempt, options: HttpOptions
) -> None:
    """Sleep while the server asked (``Retry-After``) for a pause; fail if past the deadline."""
    until = _host_pauses.get(netloc)
    if until is None:
        return
    wait = until - time.monotonic()
    if wait <= 0:
        _host_pauses.pop(netloc, None)
        return
    if time.monotonic() + wait >= deadline:
        raise DownloadTimeoutError(
            f"the server asked (Retry-After) for a pause of {wait:.1f} s more, past the "
            f"deadline of {options.deadline:g} s per URL",
            url=url,
            status=state.status,
            attempts=state.attempts,
        )
    time.sleep(wait)


def robots_opt_out(values: Iterable[str], user_agent: str = DEFAULT_USER_AGENT) -> str | None:
    """The first opt-out directive in ``X-Robots-Tag`` header values that applies to us.

    Directives scoped to another crawler (``otherbot: noindex``) do not apply; ones
    scoped to ``*`` or to our User-Agent's product name do.

    Examples
    --------
    >>> robots_opt_out(["noai, noimageai"])
    'noai'
    >>> robots_opt_out(["googlebot: noindex", "max-image-preview:large"]) is None
    True
    """
    product = user_agent.split("/")[0].strip().lower()
    for value in values:
        scope: str | None = None
        for raw in value.split(","):
            token = raw.strip().lower()
            if ":" in token:
                head, _, rest = token.partition(":")
                head, rest = head.strip(), rest.strip()
                if head in ROBOTS_OPT_OUTS or head.startswith(("max-", "unavailable_after")):
                    continue  # a directive with a value, e.g. max-image-preview:large
                scope, token = head, rest
            if scope not in (None, "*", product):
                continue
            if token in ROBOTS_OPT_OUTS:
                return token
    return None


# -- sessions --------------------------------------------------------------------------

_local = threading.local()


def _session() -> requests.Session:
    """This thread's session (made on first use, on the worker)."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no .netrc credentials or proxies sent to random hosts
        # One request at a time per thread: a single kept-alive connection per host,
        # for up to 32 hosts; across threads the pool is sized to the concurrency.
        adapter = HTTPAdapter(pool_connections=32, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _local.session = session
    return session


# -- fetching --------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchResult:
    """A successful download: the body and what it took to get it."""

    url: str
    final_url: str
    status: int
    body: bytes
    attempts: int
    content_type: str | None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None.

    Examples
    --------
    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_tz(value)
    except (TypeError, ValueError):
        return None
    if parsed is None:
        return None
    when = calendar.timegm(parsed[:9]) - (parsed[9] or 0)
    return max(0.0, when - (time.time() if now is None else now))


class _RetryableError(Exception):
    """An attempt failed in a way worth retrying; ``final`` is what to raise if not."""

    def __init__(self, final: DownloadError, wait_hint: float | None = None) -> None:
        super().__init__(str(final))
        self.final = final
        self.wait_hint = wait_hint


class _Attempt:
    """Mutable per-URL state shared by the attempts of one fetch."""

    __slots__ = ("attempts", "nbytes", "status")

    def __init__(self) -> None:
        self.attempts = 0
        self.status: int | None = None
        self.nbytes: int | None = None


def fetch(url: str, options: HttpOptions | None = None) -> FetchResult:
    """Download ``url`` with retries, politeness and safety checks; see the module docs.

    Raises
    ------
    UnsafeSourceError
        A scheme other than http(s), or a refused address, at the start or after a redirect.
    DownloadError
        Its subclasses say why: :class:`HttpError` (``.status``), timeouts, connection
        errors, truncated or oversized bodies, too many redirects, an ``X-Robots-Tag``
        opt-out. Every one carries ``.attempts`` and ``.status``.
    """
    options = options or HttpOptions()
    url = check_url(url)
    state = _Attempt()
    start = time.monotonic()
    deadline = start + options.deadline
    while True:
        state.attempts += 1
        try:
            return _attempt(url, options, state, deadline)
        except UnsafeSourceError as err:
            err.attempts = state.attempts  # type: ignore[attr-defined]
            err.status = state.status  # type: ignore[attr-defined]
            raise
        except _RetryableError as retry:
            error = retry.final
            error.attempts = state.attempts
            if state.attempts > options.retries:
                if options.retries:
                    error.args = (f"{error} (after {state.attempts} attempts)",)
                raise error from None
            backoff = min(options.backoff_cap, options.backoff_base * 2 ** (state.attempts - 1))
            wait = random.uniform(0, backoff)
            if retry.wait_hint is not None:
                wait = max(wait, min(retry.wait_hint, options.retry_after_cap))
            if time.monotonic() + wait >= deadline:
                raise DownloadTimeoutError(
                    f"gave up after {state.attempts} attempt(s): the deadline of "
                    f"{options.deadline:g} s per URL would pass before the next retry; "
                    f"last error: {error}",
                    url=url,
                    status=error.status,
                    attempts=state.attempts,
                    nbytes=error.nbytes,
                ) from None
            time.sleep(wait)


def _remaining(deadline: float, url: str, state: _Attempt, options: HttpOptions) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DownloadTimeoutError(
            f"the deadline of {options.deadline:g} s per URL passed",
            url=url,
            status=state.status,
            attempts=state.attempts,
            nbytes=state.nbytes,
        )
    return left


def _attempt(url: str, options: HttpOptions, state: _Attempt, deadline: float) -> FetchResult:
    """One attempt: follow redirects by hand, then stream the body."""
    session = _session()
    headers = {"User-Agent": options.user_agent, "Accept": "image/*,*/*;q=0.8"}
    headers.update(options.headers)
    current = url
    for _hop in range(options.max_redirects + 1):
        check_url(current)
        _check_host(current, options)
        parts = urlsplit(current)
        host = (parts.hostname or "").lower()
        _wait_for_host(parts.netloc.lower(), deadline, url, state, options)
        semaphore = host_limit(host, options.per_host_limit)
        if not semaphore.acquire(timeout=_remaining(deadline, url, state, options)):
            raise DownloadTimeoutError(
                f"the deadline of {options.deadline:g} s per URL passed while waiting for "
                f"one of the {options.per_host_limit} request slots for {host!r}",
                url=url,
                attempts=state.attempts,
            )
        try:
            left = _remaining(deadline, url, state, options)
            timeout = (min(options.connect_timeout, left), min(options.read_timeout, left))
            try:
                response = session.get(
                    current, headers=headers, timeout=timeout, stream=True, allow_redirects=False
                )
            except requests.exceptions.Timeout as err:
                raise _RetryableError(
                    DownloadTimeoutError(_timeout_message(err, options), url=url)
                ) from None
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
            ) as err:
                raise _RetryableError(
                    DownloadConnectionError(_connection_message(err), url=url)
                ) from None
            except requests.exceptions.RequestException as err:
                raise DownloadError(
                    f"the request failed: {err}", url=url, attempts=state.attempts
                ) from None
            with response:
                _check_peer(response, options)
                state.status = response.status_code
                if response.status_code in _REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise HttpError(
                            f"HTTP {response.status_code} redirect without a Location header",
                            url=url,
                            status=response.status_code,
                            attempts=state.attempts,
                        )
                    current = urljoin(current, location)
                    try:
                        check_url(current)
                    except UnsafeSourceError as err:
                        raise UnsafeSourceError(f"redirect refused: {err}") from None
                    continue
                return _read(response, url, current, options, state, deadline)
        finally:
            semaphore.release()
    raise TooManyRedirectsError(
        f"more than {options.max_redirects} redirects (max_redirects={options.max_redirects})",
        url=url,
        status=state.status,
        attempts=state.attempts,
    )


def _timeout_message(err: Exception, options: HttpOptions) -> str:
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return f"no connection within the connect timeout of {options.connect_timeout:g} s"
    return f"no data within the read timeout of {options.read_timeout:g} s"


def _connection_message(err: Exception) -> str:
    text = " ".join(str(err).split())
    for needle, message in (
        ("Connection reset", "the connection was reset by the server"),
        ("RemoteDisconnected", "the server closed the connection without a response"),
        ("Connection refused", "the connection was refused"),
        ("Name or service not known", "the host name could not be resolved"),
        ("nodename nor servname", "the host name could not be resolved"),
        ("No address associated", "the host name could not be resolved"),
        ("Temporary failure in name resolution", "the host name could not be resolved"),
    ):
        if needle in text:
            return message
    return f"the connection failed: {text[:200]}"


def _read(
    response: requests.Response,
    url: str,
    final_url: str,
    options: HttpOptions,
    state: _Attempt,
    deadline: float,
) -> FetchResult:
    status = response.status_code
    reason = response.reason or ""
    if status in _RETRY_STATUSES:
        hint = parse_retry_after(response.headers.get("Retry-After"))
        if hint is not None:
            _pause_host(urlsplit(final_url).netloc.lower(), min(hint, options.retry_after_cap))
        raise _RetryableError(
            HttpError(f"HTTP {status} {reason}".strip(), url=url, status=status), wait_hint=hint
        )
    if status >= 400 or status < 200:
        raise HttpError(
            f"HTTP {status} {reason}".strip(), url=url, status=status, attempts=state.attempts
        )
    if status != 200 and status != 203:
        raise HttpError(
            f"HTTP {status} {reason} is not a full response".strip(),
            url=url,
            status=status,
            attempts=state.attempts,
        )
    if options.respect_robots_tag:
        tags = [v for k, v in response.headers.items() if k.lower() == "x-robots-tag"]
        opt_out = robots_opt_out(tags, options.user_agent) if tags else None
        if opt_out:
            raise RobotsTagError(
                f"the server opted out with X-Robots-Tag {opt_out!r}; "
                "pass respect_robots_tag=False in HttpOptions to download anyway",
                url=url,
                status=status,
                attempts=state.attempts,
            )
    expected = _content_length(response)
    if expected is not None and expected > options.max_bytes:
        raise SizeLimitError(
            f"the body of {expected} bytes (Content-Length) is larger than "
            f"max_bytes={options.max_bytes}",
            url=url,
            status=status,
            attempts=state.attempts,
            nbytes=0,
        )
    chunks: list[bytes] = []
    received = 0
    state.nbytes = 0
    try:
        for chunk in response.raw.stream(_CHUNK, decode_content=True):
            received += len(chunk)
            state.nbytes = received
            if received > options.max_bytes:
                raise SizeLimitError(
                    f"the body is larger than max_bytes={options.max_bytes}; stopped after "
                    f"{received} bytes",
                    url=url,
                    status=status,
                    attempts=state.attempts,
                    nbytes=received,
                )
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise DownloadTimeoutError(
                    f"the deadline of {options.deadline:g} s per URL passed while reading "
                    f"the body ({received} bytes so far)",
                    url=url,
                    status=status,
                    attempts=state.attempts,
                    nbytes=received,
                )
    except DownloadError:
        raise
    except Exception as err:
        raw_sent = response.raw.tell() if hasattr(response.raw, "tell") else received
        if _is_timeout(err):
            raise _RetryableError(
                DownloadTimeoutError(
                    f"{_timeout_message(err, options)} while reading the body "
                    f"({received} bytes so far)",
                    url=url,
                    status=status,
                    nbytes=received,
                )
            ) from None
        if expected is not None and raw_sent < expected:
            state.nbytes = raw_sent
            raise _RetryableError(
                TruncatedBodyError(
                    f"the body ended after {raw_sent} of the {expected} bytes its "
                    "Content-Length announced",
                    url=url,
                    status=status,
                    nbytes=raw_sent,
                )
            ) from None
        raise _RetryableError(
            DownloadConnectionError(
                f"the connection broke while reading the body: {_connection_message(err)}",
                url=url,
                status=status,
                nbytes=received,
            )
        ) from None
    body = b"".join(chunks)
    encoded = response.headers.get("Content-Encoding", "identity").lower()
    if expected is not None and encoded in ("", "identity") and len(body) < expected:
        raise _RetryableError(
            TruncatedBodyError(
                f"the body ended after {len(body)} of the {expected} bytes its "
                "Content-Length announced",
                url=url,
                status=status,
                nbytes=len(body),
            )
        )
    return FetchResult(
        url=url,
        final_url=final_url,
        status=status,
        body=body,
        attempts=state.attempts,
        content_type=response.headers.get("Content-Type"),
    )


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value.split(",")[0].strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def _is_timeout(err: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if isinstance(current, (socket.timeout, TimeoutError)) or "Timeout" in name:
            return True
        current = current.__cause__ or current.__context__
    return False
