"""HTTP that cannot be talked past: safety, deadlines and politeness, one module each.

:func:`fetch` downloads one URL with the knobs of a frozen :class:`HttpOptions`::

    _options      HttpOptions: every knob, validated once
    _address      which URLs and IP addresses are refused (the rule)
    _transport    per-thread urllib3 pools; the one place connections are made: the
                  address is resolved, checked and connected to as checked; every socket
                  operation bounded by the fetch's deadline
    _politeness   requests in flight and started per host (cluster-wide on dask
                  workers), Retry-After pauses, X-Robots-Tag
    redact_url    (from the leaf ``creevey_dask._redact``) a URL with its secrets hidden,
                  for every message that names one
    _fetch        the attempt loop: retries with backoff, redirects by hand, the body
                  under caps, transport errors mapped to our exceptions by type

- **Timeouts.** A connect and a read timeout per socket operation, and a total
  ``deadline`` per URL that bounds the request's own time: every attempt, redirect,
  backoff sleep, connect, TLS handshake, header and body read. A server that
  trickles bytes cannot stretch it (each socket operation waits at most what is left).
  The wait for a politeness slot has its own bound, ``slot_wait``: a host busy with
  other requests makes a row wait, never fail its deadline.
- **Retries** with exponential backoff and full jitter on connection errors, timeouts,
  truncated bodies, 5xx and 429; ``Retry-After`` (seconds or an HTTP date) is
  honoured, capped at ``retry_after_cap``. Other 4xx are final at once.
- **Politeness.** At most ``per_host_limit`` requests in flight per host, and with
  ``per_host_rate`` at most that many starts per second per host; both hold across
  threads, and on a ``dask.distributed`` cluster across all workers. A
  ``Retry-After`` on a 429 or 503 pauses every request of the process to that
  server. An honest default User-Agent. ``X-Robots-Tag`` opt-outs are honoured.
- **Safety.** Only ``http`` and ``https``, checked again at every redirect hop
  (redirects are followed by hand, up to ``max_redirects``). Link-local and cloud
  metadata addresses are refused always, private and loopback ones too with
  ``refuse_private=True``: the check runs on the exact addresses a new connection is
  made to, whatever the URL's spelling, before any byte is sent, and fails closed.
  Credential headers (``Authorization``, ``Cookie``, ``Proxy-Authorization`` and any
  named in ``sensitive_headers``) go to the URL's origin only: a redirect to another
  scheme, host or port drops them for the rest of the attempt, as requests does.
  The body is streamed with a cap (``max_bytes``), and a body shorter than its
  ``Content-Length`` is an error, never a short file.
"""

from __future__ import annotations

from ..._redact import redact_url
from ._address import check_address, check_url, is_http_url
from ._fetch import FetchResult, fetch, parse_retry_after
from ._options import DEFAULT_USER_AGENT, HttpOptions
from ._politeness import ROBOTS_OPT_OUTS, host_limit, robots_opt_out

__all__ = [
    "DEFAULT_USER_AGENT",
    "ROBOTS_OPT_OUTS",
    "FetchResult",
    "HttpOptions",
    "check_address",
    "check_url",
    "fetch",
    "host_limit",
    "is_http_url",
    "parse_retry_after",
    "redact_url",
    "robots_opt_out",
]
