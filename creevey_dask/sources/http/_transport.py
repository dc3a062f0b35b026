"""The transport: urllib3 pools whose connections check and bound themselves.

- **One place where connections are made.** :class:`_CheckedConnection` (and its TLS
  twin) replace urllib3's ``_new_conn``: the host urllib3 is about to connect to (after
  it decoded percent-encoding, IDNA and a trailing dot) is resolved once, every address
  is checked (``_address.resolve_checked``), and the socket is connected only to those
  checked addresses; the connected peer is read back from the socket and checked
  again before a byte of the request is sent. This holds for every new connection of
  every attempt and every redirect hop, whatever the server answers afterwards
  (``Connection: close``, HTTP/1.0), and fails closed when the peer cannot be read.
- **A deadline on every socket operation.** The sockets are :class:`_DeadlineSocket`
  (and :class:`_DeadlineSSLSocket` under TLS): before every send and receive (and the
  TLS handshake) the socket's timeout is cut to what is left of the current fetch's
  deadline, so trickled headers, a slow ``Content-Length`` body or a close-delimited
  body cannot hold a thread past ``deadline``. Running out raises
  :class:`DeadlineExceededError`. DNS resolution uses the system resolver and its own
  timeouts.
- **Sessions.** One ``PoolManager`` per thread (and per ``refuse_private`` setting,
  so a connection checked under the laxer rule is never reused under the stricter
  one), made lazily on the thread that uses it, so nothing unpicklable travels to dask
  workers; one kept-alive connection per host per thread, closed when the thread ends.
  All of them share the process's one TLS context (loading the CA bundle for each
  thread of each partition cost more than the downloads' decoding).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.ssl_ import create_urllib3_context

from ..._fork import reset_in_child
from ...exceptions import UnsafeSourceError
from ._address import check_address, resolve_checked

__all__ = ["Budget", "DeadlineExceededError", "budget", "pool_manager"]


class DeadlineExceededError(TimeoutError):
    """The fetch's deadline ran out during a socket operation."""


@dataclass
class Budget:
    """What the connections of the current fetch on this thread must respect."""

    deadline: float  # time.monotonic() value; moved on by the fetch's waits for a slot
    refuse_private: bool

    def left(self) -> float:
        return self.deadline - time.monotonic()


_local = threading.local()


@contextlib.contextmanager
def budget(deadline: float, refuse_private: bool) -> Iterator[Budget]:
    """Make ``Budget(deadline, refuse_private)`` current on this thread for the block."""
    previous = getattr(_local, "budget", None)
    current = Budget(deadline, refuse_private)
    _local.budget = current
    try:
        yield current
    finally:
        _local.budget = previous


def _current() -> Budget | None:
    return getattr(_local, "budget", None)


class _DeadlineMixin:
    """Cut the socket timeout to what is left of the current budget before every I/O."""

    _creevey_timeout: float | None = None

    def settimeout(self, value: float | None) -> None:
        self._creevey_timeout = value
        super().settimeout(value)  # type: ignore[misc]

    def _bounded(self, call: Any, *args: Any) -> Any:
        current = _current()
        if current is None:
            return call(*args)
        left = current.left()
        if left <= 0:
            raise DeadlineExceededError("the deadline passed")
        base = self._creevey_timeout
        if base is not None and base <= left:
            return call(*args)
        super().settimeout(left)  # type: ignore[misc]
        try:
            return call(*args)
        except TimeoutError as err:
            raise DeadlineExceededError("the deadline passed") from err
        finally:
            with contextlib.suppress(OSError):
                super().settimeout(base)  # type: ignore[misc]

    def recv(self, *args: Any) -> Any:
        return self._bounded(super().recv, *args)  # type: ignore[misc]

    def recv_into(self, *args: Any) -> Any:
        return self._bounded(super().recv_into, *args)  # type: ignore[misc]

    def send(self, *args: Any) -> Any:
        return self._bounded(super().send, *args)  # type: ignore[misc]

    def sendall(self, *args: Any) -> Any:
        return self._bounded(super().sendall, *args)  # type: ignore[misc]

    def connect(self, *args: Any) -> Any:
        return self._bounded(super().connect, *args)  # type: ignore[misc]


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    """A plain socket bounded by the current fetch's deadline."""


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    """A TLS socket bounded by the current fetch's deadline (reads, writes, handshake)."""

    def do_handshake(self, *args: Any) -> Any:
        return self._bounded(super().do_handshake, *args)

    def read(self, *args: Any) -> Any:
        return self._bounded(super().read, *args)

    def write(self, *args: Any) -> Any:
        return self._bounded(super().write, *args)


def open_checked_socket(host: str, port: int, timeout: float | None) -> socket.socket:
    """Resolve ``host``, check every address, connect to a checked one, check the peer.

    Raises
    ------
    UnsafeSourceError
        An address (or the connected peer) is refused, or the peer cannot be read.
    socket.gaierror, OSError, TimeoutError, DeadlineExceededError
        As a socket connect would.
    """
    current = _current()
    refuse_private = current.refuse_private if current is not None else False
    last: OSError | None = None
    for family, kind, proto, sockaddr in resolve_checked(host, port, refuse_private):
        sock = _DeadlineSocket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            try:
                peer = sock.getpeername()[0]
            except (OSError, IndexError, TypeError) as err:
                raise UnsafeSourceError(
                    f"the address connected to for {host!r} cannot be read; refused"
                ) from err
            check_address(str(peer), refuse_private)
            return sock
        except DeadlineExceededError:
            sock.close()
            raise
        except OSError as err:
            sock.close()
            last = err
        except BaseException:
            sock.close()
            raise
    assert last is not None
    raise last


class _CheckedConnection(HTTPConnection):
    """An HTTP connection that connects only to checked addresses (see the module docs)."""

    def _new_conn(self) -> socket.socket:
        try:
            return open_checked_socket(self._dns_host, self.port, self.timeout)
        except socket.gaierror as err:
            raise NameResolutionError(self.host, self, err) from err
        except TimeoutError as err:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from err
        except OSError as err:
            raise NewConnectionError(self, f"Failed to establish a new connection: {err}") from err


class _CheckedTLSConnection(_CheckedConnection, HTTPSConnection):
    """The TLS twin of :class:`_CheckedConnection`."""


class _Pool(HTTPConnectionPool):
    ConnectionCls = _CheckedConnection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedTLSConnection


_tls_lock = threading.Lock()
reset_in_child(globals(), locks=["_tls_lock"])
_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """The process's one TLS context (loading the CA bundle costs tens of milliseconds)."""
    global _tls
    with _tls_lock:
        if _tls is None:
            context = create_urllib3_context()
            try:
                import certifi

                context.load_verify_locations(certifi.where())
            except ImportError:  # pragma: no cover - certifi comes with requests
                context.load_default_certs()
            context.sslsocket_class = _DeadlineSSLSocket
            _tls = context
        return _tls


def pool_manager(refuse_private: bool) -> urllib3.PoolManager:
    """This thread's pool manager for ``refuse_private`` (made on first use).

    One per thread, so its kept-alive connections close when the thread ends (a
    partition's row threads live as long as the partition); all of them share the
    process's one TLS context.
    """
    pools = getattr(_local, "pools", None)
    if pools is None:
        pools = _local.pools = {}
    manager = pools.get(refuse_private)
    if manager is None:
        # One request at a time per thread: a single kept-alive connection per host,
        # for up to 32 hosts; across threads the pools are sized to the concurrency.
        manager = urllib3.PoolManager(
            num_pools=32, maxsize=1, block=False, retries=False, ssl_context=_tls_context()
        )
        manager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
        pools[refuse_private] = manager
    return manager


def closed_by_refusal(err: BaseException) -> UnsafeSourceError | None:
    """The :class:`UnsafeSourceError` behind ``err``, if a refusal caused it."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UnsafeSourceError):
            return current
        current = current.__cause__ or current.__context__
    return None
