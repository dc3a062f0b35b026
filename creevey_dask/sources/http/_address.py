"""Address safety: which URLs and which IP addresses are refused.

:func:`check_url` looks at a URL's text (scheme, host present, no control characters).
The address rule, :func:`address_refusal`, is applied by :func:`resolve_checked` to the
exact socket addresses a connection is about to be made to (see ``_transport``): the
host as urllib3 decoded it (percent-encoding, IDNA, a trailing dot) is resolved once,
every address it resolves to is checked, and only checked addresses are connected to.
Numeric spellings (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) are resolved by the
system the same way the connection would be, so they are checked as what they mean.
IPv6 addresses that carry an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo) are checked against it too.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from ..._fork import reset_in_child
from ...exceptions import UnsafeSourceError

__all__ = [
    "ALLOWED_SCHEMES",
    "METADATA_NETWORKS",
    "address_refusal",
    "check_address",
    "check_url",
    "is_http_url",
    "politeness_key",
    "resolve_checked",
]

ALLOWED_SCHEMES = ("http", "https")
#: Addresses refused always: link-local (incl. 169.254.169.254) and cloud metadata.
METADATA_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: RFC 8215 local-use NAT64: where the IPv4 address sits depends on the local prefix
#: length, so it cannot be checked; refused always (fail closed).
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_http_url(source: Any) -> bool:
    """Whether ``source`` is a string with an http or https scheme (any case).

    Examples
    --------
    >>> is_http_url("HTTPS://example.com/a.jpg"), is_http_url("s3://bucket/a.jpg")
    (True, False)
    """
    if not isinstance(source, str):
        return False
    scheme, sep, _ = source.strip().partition("://")
    return bool(sep) and scheme.lower() in ALLOWED_SCHEMES


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
    if scheme not in ALLOWED_SCHEMES:
        what = f"the scheme {scheme!r}" if scheme else "no scheme"
        raise UnsafeSourceError(
            f"{url[:200]!r} has {what}; only {' and '.join(ALLOWED_SCHEMES)} URLs are downloaded"
        )
    if not parts.hostname:
        raise UnsafeSourceError(f"{url[:200]!r} has no host")
    return url.strip()


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (and a network would route to)."""
    found: list[ipaddress.IPv4Address] = []
    value = int(ip)
    low = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if value >> 32 == 0 and value > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        found.append(low)
    if value >> 32 == 0xFFFF0000:  # IPv4-translated ::ffff:0:a.b.c.d (RFC 2765)
        found.append(low)
    if ip in _NAT64:
        found.append(low)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def address_refusal(ip: IPAddress, refuse_private: bool) -> str:
    """Why ``ip`` is refused (``""`` if it is allowed); embedded IPv4 addresses count."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        if ip in _NAT64_LOCAL:
            return "a local-use NAT64 address (64:ff9b:1::/48) whose IPv4 address cannot be checked"
        for inner in _embedded_ipv4(ip):
            reason = address_refusal(inner, refuse_private)
            if reason:
                return f"an IPv6 address carrying {inner}, {reason}"
    if any(ip in net for net in METADATA_NETWORKS if net.version == ip.version):
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
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as err:
        raise UnsafeSourceError(
            f"{address!r} is not an IP address that can be checked; refused"
        ) from err
    reason = address_refusal(ip, refuse_private)
    if reason:
        raise UnsafeSourceError(f"{address} is {reason}; refused")


#: One resolved socket address: (family, type, proto, sockaddr), as ``getaddrinfo`` gives.
AddrInfo = tuple[int, int, int, Any]


def resolve_checked(host: str, port: int, refuse_private: bool) -> list[AddrInfo]:
    """Resolve ``host`` and check every address; return them, or raise.

    A host any of whose addresses is refused is refused as a whole (a name that can
    point at a refused address is not trusted). An address that cannot be read as an
    IP address is refused: the check fails closed.

    Raises
    ------
    UnsafeSourceError
        An address is refused; the message names the host and the address.
    socket.gaierror
        The name could not be resolved.
    """
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    checked: list[AddrInfo] = []
    for family, kind, proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise UnsafeSourceError(f"{host!r} resolves to a non-IP address; refused")
        address = str(sockaddr[0])
        try:
            reason = address_refusal(ipaddress.ip_address(address), refuse_private)
        except ValueError:
            reason = "not an IP address that can be checked"
        if reason:
            shown = address if host == address else f"{host!r} resolves to {address}, which"
            raise UnsafeSourceError(f"{shown} is {reason}; refused")
        checked.append((family, kind, proto, sockaddr))
    if not checked:
        raise socket.gaierror(socket.EAI_NONAME, f"no address for {host!r}")
    return checked


#: How long a host's politeness key is remembered (seconds): one lookup per host per
#: minute, not one per request.
KEY_TTL = 60.0
_keys: dict[str, tuple[float, str]] = {}
_keys_lock = threading.Lock()
reset_in_child(globals(), locks=["_keys_lock"])


def _canonical(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
    return ip


def politeness_key(host: str) -> str:
    """The server ``host`` names, for per-host limits: its address, whatever the spelling.

    ``127.0.0.1``, ``localhost``, ``127.1``, ``2130706433`` and ``[::ffff:127.0.0.1]``
    are one server and get one key: the host is resolved (as a connection would) and
    the key is its lowest IPv4 address, or its lowest IPv6 one if it has none
    (IPv4-mapped IPv6 addresses count as the IPv4 address they carry). A name that
    cannot be resolved keys by its lower-cased spelling (its request fails anyway).
    Answers are remembered for :data:`KEY_TTL` seconds.

    Examples
    --------
    >>> politeness_key("127.1") == politeness_key("[::ffff:127.0.0.1]") == "127.0.0.1"
    True
    """
    name = unquote(host).strip().strip("[]").lower().rstrip(".")
    now = time.monotonic()
    cached = _keys.get(name)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
        ips = {_canonical(ipaddress.ip_address(str(info[4][0]))) for info in infos}
    except (OSError, ValueError, UnicodeError):
        ips = set()
    v4 = sorted(ip for ip in ips if isinstance(ip, ipaddress.IPv4Address))
    v6 = sorted(ip for ip in ips if isinstance(ip, ipaddress.IPv6Address))
    key = str((v4 or v6)[0]) if ips else name
    with _keys_lock:
        _keys[name] = (now + KEY_TTL, key)
    return key
