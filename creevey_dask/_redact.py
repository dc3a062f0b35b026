"""Secrets out of messages: the one rule for showing a URL in an error, a log or a file.

:func:`redact_url` hides what a URL carries as a credential: its userinfo
(``user:password@``) and the values of query parameters whose names look like
credentials (``token``, ``key``, ``sig``, ``signature``, ``password``, ``secret``,
``credential``, ``auth``, every ``X-Amz-*`` and ``X-Goog-*``; names matched without case,
as parts of longer names too: ``access_token``, ``api_key``, ``AWSAccessKeyId``).
:func:`redact_text` does the same to every URL inside a message. Every message that
can name a source goes through one of them: row errors (``format_error``), the summary
lines, logs and the command line's messages. A row's ``url`` column stays as given.

This module imports nothing of ours (a leaf), so every layer may use it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_text", "redact_url"]

#: What a hidden value reads as.
REDACTED = "***"

_SECRET_NAME = re.compile(
    r"token|key|sig|password|passwd|pwd|secret|credential|auth|session|^x-amz-|^x-goog-",
    re.IGNORECASE,
)
#: A URL inside free text (a repr, a message): a scheme, ``://``, then up to a quote,
#: a space or an angle bracket.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,15}://[^\s'\"<>]+")


def _redact_query(query: str) -> str:
    parts = []
    for pair in query.split("&"):
        name, sep, _value = pair.partition("=")
        if sep and _SECRET_NAME.search(name):
            pair = f"{name}={REDACTED}"
        parts.append(pair)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` with its userinfo and credential-like query values replaced by ``***``.

    Examples
    --------
    >>> redact_url("https://bob:hunter2@example.com/a.jpg?size=2&token=abc")
    'https://***@example.com/a.jpg?size=2&token=***'
    >>> redact_url("s3://bucket/a.jpg?X-Amz-Signature=f00&X-Amz-Date=1")
    's3://bucket/a.jpg?X-Amz-Signature=***&X-Amz-Date=***'
    >>> redact_url("https://example.com/plain.jpg")
    'https://example.com/plain.jpg'
    """
    if "@" not in url and "=" not in url:
        return url  # nothing to hide (most URLs): no parse
    try:
        parts = urlsplit(url)
    except ValueError:  # an unparsable netloc (a bad IPv6 literal): hide all but the scheme
        scheme = url.partition("://")[0]
        return f"{scheme}://{REDACTED}"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = _redact_query(parts.query) if parts.query else parts.query
    fragment = _redact_query(parts.fragment) if "=" in parts.fragment else parts.fragment
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted by :func:`redact_url`.

    Examples
    --------
    >>> redact_text("refused 'http://u:p@host/x.ico?sig=1': too large")
    "refused 'http://***@host/x.ico?sig=***': too large"
    """
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
