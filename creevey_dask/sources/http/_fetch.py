"""The fetch loop: attempts, redirects by hand, the body under caps, errors mapped by type."""

from __future__ import annotations

import calendar
import email.utils
import http.client
import random
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
import urllib3.exceptions as u3

from ...exceptions import (
    ContentEncodingError,
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
from ._address import check_url, politeness_key
from ._options import CREDENTIAL_HEADERS, HttpOptions
from ._politeness import HostSlot, host_pause, pause_host, robots_opt_out, take_slot
from ._transport import Budget, DeadlineExceededError, budget, pool_manager

__all__ = ["FetchResult", "fetch", "parse_retry_after"]

#: Statuses worth another attempt: 429 Too Many Requests and every 5xx.
_RETRY_STATUSES = frozenset({429, *range(500, 600)})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
#: The most codings a response's ``Content-Encoding`` may stack (``gzip, br`` is two).
MAX_CONTENT_ENCODINGS = 2


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


class _State:
    """Mutable per-URL state shared by the attempts of one fetch."""

    __slots__ = ("attempts", "budget", "deadline", "nbytes", "options", "status", "url")

    def __init__(self, url: str, options: HttpOptions) -> None:
        self.url = url
        self.options = options
        self.deadline = time.monotonic() + options.deadline
        self.budget: Budget | None = None
        self.attempts = 0
        self.status: int | None = None
        self.nbytes: int | None = None

    def not_counting(self, seconds: float) -> None:
        """Move the deadline on by ``seconds`` spent waiting for a slot (not the request's)."""
        self.deadline += seconds
        if self.budget is not None:
            self.budget.deadline += seconds

    def deadline_error(self, when: str = "") -> DownloadTimeoutError:
        return DownloadTimeoutError(
            f"the deadline of {self.options.deadline:g} s per URL passed{when}",
            url=self.url,
            status=self.status,
            attempts=self.attempts,
            nbytes=self.nbytes,
        )

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.deadline_error()
        return left


def fetch(url: str, options: HttpOptions | None = None) -> FetchResult:
    """Download ``url`` with retries, politeness and safety checks; see the package docs.

    Raises
    ------
    UnsafeSourceError
        A scheme other than http(s), or a refused address, at the start or after a redirect.
    DownloadError
        Its subclasses say why: :class:`HttpError` (``.status``), timeouts (the
        deadline per URL included), connection errors, truncated or oversized bodies,
        too many redirects, an ``X-Robots-Tag`` opt-out. Every one carries
        ``.attempts`` and ``.status``.
    """
    options = options or HttpOptions()
    url = check_url(url)
    state = _State(url, options)
    with budget(state.deadline, options.refuse_private) as current:
        state.budget = current
        while True:
            state.attempts += 1
            try:
                return _attempt(state)
            except UnsafeSourceError as err:
                err.attempts = state.attempts  # type: ignore[attr-defined]
                err.status = state.status  # type: ignore[attr-defined]
                raise
            except _RetryableError as retry:
                _before_retry(state, retry)


def _before_retry(state: _State, retry: _RetryableError) -> None:
    """Raise the final error, or sleep the backoff before the next attempt."""
    options, error = state.options, retry.final
    error.attempts = state.attempts
    if state.attempts > options.retries:
        if options.retries:
            error.args = (f"{error} (after {state.attempts} attempts)",)
        raise error from None
    backoff = min(options.backoff_cap, options.backoff_base * 2 ** (state.attempts - 1))
    wait = random.uniform(0, backoff)
    if retry.wait_hint is not None:
        wait = max(wait, min(retry.wait_hint, options.retry_after_cap))
    if time.monotonic() + wait >= state.deadline:
        raise DownloadTimeoutError(
            f"gave up after {state.attempts} attempt(s): the deadline of "
            f"{options.deadline:g} s per URL would pass before the next retry; "
            f"last error: {error}",
            url=state.url,
            status=error.status,
            attempts=state.attempts,
            nbytes=error.nbytes,
        ) from None
    time.sleep(wait)


def _attempt(state: _State) -> FetchResult:
    """One attempt: follow redirects by hand, then stream the body."""
    options = state.options
    manager = pool_manager(options.refuse_private)
    headers = {"User-Agent": options.user_agent, "Accept": "image/*,*/*;q=0.8"}
    headers.update(options.headers)
    sensitive = CREDENTIAL_HEADERS.union(options.sensitive_headers)
    origin = _origin(state.url)
    current = state.url
    for _hop in range(options.max_redirects + 1):
        parts = urlsplit(current)
        if _origin(current) != origin:  # left the origin: its credentials stay behind
            headers = {k: v for k, v in headers.items() if k.lower() not in sensitive}
        host = (parts.hostname or "").lower()
        _wait_for_server(_server(current), state)
        slot = _take_slot(host, state)
        try:
            response = _send(manager, current, headers, state)
            try:
                state.status = response.status
                if response.status in _REDIRECT_STATUSES:
                    current = _redirect_target(response, current, state)
                    continue
                return _read(response, current, state)
            finally:
                _finish(response)
        finally:
            slot.release()
    raise TooManyRedirectsError(
        f"more than {options.max_redirects} redirects (max_redirects={options.max_redirects})",
        url=state.url,
        status=state.status,
        attempts=state.attempts,
    )


def _take_slot(host: str, state: _State) -> HostSlot:
    """Wait for a politeness slot for ``host``, up to ``slot_wait``, off the URL's deadline."""
    options = state.options
    state.remaining()  # a request whose own time is up starts no other
    started = time.monotonic()
    slot = take_slot(
        politeness_key(host), options.per_host_limit, options.per_host_rate, options.slot_wait
    )
    state.not_counting(time.monotonic() - started)
    if slot is None:
        rate = f", per_host_rate={options.per_host_rate:g}" if options.per_host_rate else ""
        raise DownloadTimeoutError(
            f"no request slot for {host!r} within slot_wait={options.slot_wait:g} s "
            f"(per_host_limit={options.per_host_limit}{rate}): other requests to the host "
            "held them all",
            url=state.url,
            status=state.status,
            attempts=state.attempts,
        )
    return slot


def _server(url: str) -> str:
    """``address:port`` of the server ``url`` names, whatever the host's spelling."""
    _scheme, host, port = _origin(url)
    return f"{politeness_key(host)}:{port}"


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, the default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _send(
    manager: urllib3.PoolManager, url: str, headers: dict[str, str], state: _State
) -> urllib3.BaseHTTPResponse:
    options = state.options
    left = state.remaining()
    timeout = urllib3.Timeout(
        connect=min(options.connect_timeout, left), read=min(options.read_timeout, left)
    )
    try:
        return manager.urlopen(
            "GET",
            url,
            headers=headers,
            timeout=timeout,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=True,
        )
    except UnsafeSourceError:
        raise
    except (u3.HTTPError, OSError, http.client.HTTPException) as err:
        raise _classify(err, state, "") from None


def _finish(response: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back for reuse if its response was read to the end, else close it.

    A small unread body (a redirect's, an error page) is read first, under the
    deadline, so that the kept-alive connection can serve the next request.
    """
    length = _content_length(response)
    if length is not None and length <= _CHUNK:
        try:
            response.drain_conn()
        except Exception:  # a broken connection is simply not reused
            response.close()
    if length is None or response.tell() < length:
        response.close()  # also a close-delimited body: its connection cannot serve another
    response.release_conn()


def _redirect_target(response: urllib3.BaseHTTPResponse, current: str, state: _State) -> str:
    location = response.headers.get("Location")
    if not location:
        raise HttpError(
            f"HTTP {response.status} redirect without a Location header",
            url=state.url,
            status=response.status,
            attempts=state.attempts,
        )
    target = urljoin(current, location)
    try:
        return check_url(target)
    except UnsafeSourceError as err:
        raise UnsafeSourceError(f"redirect refused: {err}") from None


def _wait_for_server(netloc: str, state: _State) -> None:
    """Sleep while the server asked (``Retry-After``) for a pause; fail if past the deadline."""
    wait = host_pause(netloc)
    if wait <= 0:
        return
    if time.monotonic() + wait >= state.deadline:
        raise DownloadTimeoutError(
            f"the server asked (Retry-After) for a pause of {wait:.1f} s more, past the "
            f"deadline of {state.options.deadline:g} s per URL",
            url=state.url,
            status=state.status,
            attempts=state.attempts,
        )
    time.sleep(wait)


# -- the response ------------------------------------------------------------------------


def _check_status(response: urllib3.BaseHTTPResponse, final_url: str, state: _State) -> None:
    status, options = response.status, state.options
    reason = response.reason or ""
    if status in _RETRY_STATUSES:
        hint = parse_retry_after(response.headers.get("Retry-After"))
        if hint is not None:
            pause_host(_server(final_url), min(hint, options.retry_after_cap))
        raise _RetryableError(
            HttpError(f"HTTP {status} {reason}".strip(), url=state.url, status=status),
            wait_hint=hint,
        )
    if status >= 400 or status < 200:
        raise HttpError(
            f"HTTP {status} {reason}".strip(), url=state.url, status=status, attempts=state.attempts
        )
    if status != 200 and status != 203:
        raise HttpError(
            f"HTTP {status} {reason} is not a full response".strip(),
            url=state.url,
            status=status,
            attempts=state.attempts,
        )
    if options.respect_robots_tag:
        tags = response.headers.getlist("X-Robots-Tag")
        opt_out = robots_opt_out(tags, options.user_agent) if tags else None
        if opt_out:
            raise RobotsTagError(
                f"the server opted out with X-Robots-Tag {opt_out!r}; "
                "pass respect_robots_tag=False in HttpOptions to download anyway",
                url=state.url,
                status=status,
                attempts=state.attempts,
            )


def _read(response: urllib3.BaseHTTPResponse, final_url: str, state: _State) -> FetchResult:
    _check_status(response, final_url, state)
    options, status = state.options, response.status
    expected = _content_length(response)
    if expected is not None and expected > options.max_bytes:
        raise SizeLimitError(
            f"the body of {expected} bytes (Content-Length) is larger than "
            f"max_bytes={options.max_bytes}",
            url=state.url,
            status=status,
            attempts=state.attempts,
            nbytes=0,
        )
    _check_encodings(response, state)
    chunks: list[bytes] = []
    state.nbytes = 0
    try:
        for chunk in response.stream(_CHUNK, decode_content=True):
            state.nbytes += len(chunk)
            if state.nbytes > options.max_bytes:
                raise SizeLimitError(
                    f"the body is larger than max_bytes={options.max_bytes}; stopped after "
                    f"{state.nbytes} bytes",
                    url=state.url,
                    status=status,
                    attempts=state.attempts,
                    nbytes=state.nbytes,
                )
            chunks.append(chunk)
    except DownloadError:
        raise
    except (u3.HTTPError, OSError, http.client.HTTPException) as err:
        raw = response.tell() if hasattr(response, "tell") else state.nbytes
        if expected is not None and raw < expected and _truncation(err):
            state.nbytes = raw
            raise _RetryableError(_truncated(raw, expected, state)) from None
        when = f" while reading the body ({state.nbytes} bytes so far)"
        raise _classify(err, state, when) from None
    body = b"".join(chunks)
    encoded = (response.headers.get("Content-Encoding") or "identity").lower()
    if expected is not None and encoded in ("", "identity") and len(body) < expected:
        raise _RetryableError(_truncated(len(body), expected, state))
    return FetchResult(
        url=state.url,
        final_url=final_url,
        status=status,
        body=body,
        attempts=state.attempts,
        content_type=response.headers.get("Content-Type"),
    )


def _check_encodings(response: urllib3.BaseHTTPResponse, state: _State) -> None:
    """Refuse a body whose ``Content-Encoding`` stacks more than the allowed codings."""
    values = response.headers.getlist("Content-Encoding")
    codings = [c.strip().lower() for v in values for c in v.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > MAX_CONTENT_ENCODINGS:
        raise ContentEncodingError(
            f"the response stacks {len(codings)} Content-Encodings "
            f"({', '.join(codings[:8])}{', ...' if len(codings) > 8 else ''}), more than "
            f"the {MAX_CONTENT_ENCODINGS} allowed; not decoded",
            url=state.url,
            status=response.status,
            attempts=state.attempts,
            nbytes=0,
        )


def _truncated(received: int, expected: int, state: _State) -> TruncatedBodyError:
    return TruncatedBodyError(
        f"the body ended after {received} of the {expected} bytes its Content-Length announced",
        url=state.url,
        status=state.status,
        nbytes=received,
    )


def _content_length(response: urllib3.BaseHTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value.split(",")[0].strip())
    except ValueError:
        return None
    return length if length >= 0 else None


# -- errors, by type ---------------------------------------------------------------------


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err``, its causes and contexts, and exceptions carried in its args."""
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)


def _truncation(err: BaseException) -> bool:
    """Whether a body read failed because the body ended (rather than timed out)."""
    return not any(isinstance(e, (TimeoutError, u3.TimeoutError)) for e in _chain(err))


def _classify(err: BaseException, state: _State, when: str) -> Exception:
    """The library error for a transport failure, chosen by the types in its chain."""
    chain = list(_chain(err))

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    for e in chain:
        if isinstance(e, UnsafeSourceError):
            return e
    if has(DeadlineExceededError):
        return state.deadline_error(when)
    options = state.options
    if has(u3.ConnectTimeoutError) and not has(u3.NewConnectionError):
        message = f"no connection within the connect timeout of {options.connect_timeout:g} s"
        return _RetryableError(
            DownloadTimeoutError(
                message + when, url=state.url, status=state.status, nbytes=state.nbytes
            )
        )
    if has(u3.ReadTimeoutError, TimeoutError):
        message = f"no data within the read timeout of {options.read_timeout:g} s"
        return _RetryableError(
            DownloadTimeoutError(
                message + when, url=state.url, status=state.status, nbytes=state.nbytes
            )
        )
    if has(u3.NameResolutionError, socket.gaierror):
        message = "the host name could not be resolved"
    elif has(ConnectionRefusedError):
        message = "the connection was refused"
    elif has(ConnectionResetError):
        message = "the connection was reset by the server"
    elif has(http.client.RemoteDisconnected):
        message = "the server closed the connection without a response"
    elif has(ssl.SSLError, u3.SSLError):
        message = f"the TLS connection failed: {_one_line(err)}"
    else:
        message = f"the connection failed: {_one_line(err)}"
    return _RetryableError(
        DownloadConnectionError(
            message + when, url=state.url, status=state.status, nbytes=state.nbytes
        )
    )


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]
