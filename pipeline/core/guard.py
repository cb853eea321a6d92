"""Which addresses Amur may connect to: no loopback, private, link-local, multicast or
reserved destination, unless ``fetch.allow_networks`` opens it.

A feed is written by someone else, and so is every link in it; without this guard an item
linking to ``http://169.254.169.254/…`` (a cloud's metadata service) or to an intranet host
would be fetched from inside our network. A subscription's webhook URL is no safer, so
every client Amur sends or fetches with is built on it: the fetcher of the connectors and
the webhooks sink's deliveries. The check is made where the connection is opened,
in the network backend of the HTTP client (:class:`GuardedBackend`), so it covers the first
request, every redirect hop and every new connection of a pool alike; and it connects to
the address it checked rather than resolving the name again, so a DNS answer that changes
between check and connect (DNS rebinding) cannot slip past it.

A refusal is an :class:`AddressRefused` whose message names the address, why it is refused
and the setting that would allow it::

    refused: 169.254.169.254 is a link-local address (fetch.allow_networks to allow)
    refused: intranet.example resolves to 10.0.0.1, a private address (fetch.allow_networks to allow)
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence

import httpcore
import httpx

__all__ = ["AddressPolicy", "AddressRefused", "GuardedBackend", "GuardedTransport", "Network"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], list[str]]
Dial = Callable[..., httpcore.NetworkStream]


class AddressRefused(httpcore.ConnectError):
    """A connection the policy does not allow; never retried (the address will not change its kind)."""


def _kind(address: Address) -> str | None:
    """What makes ``address`` no public destination, or ``None`` for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _kind(address.ipv4_mapped)
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((kind for matches, kind in checks if matches), None)


class AddressPolicy:
    """Public addresses are allowed; others only inside one of ``allow_networks``."""

    def __init__(self, allow_networks: Iterable[Network] = ()):
        self.allow_networks = tuple(allow_networks)

    def refusal(self, address: str) -> str | None:
        """Why ``address`` (an IP literal) is refused — e.g. ``"a link-local address"`` — or ``None``."""
        parsed = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
        if any(parsed in network for network in self.allow_networks):
            return None
        return _kind(parsed)


def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` in the resolver's order, each once."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"getaddrinfo failed: {exc}") from exc
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's network backend, connecting only to addresses the policy allows.

    :param resolve: host, port → addresses (the system resolver by default).
    :param dial: opens the TCP connection to one checked address (httpcore's by default);
        tests give one that records where it was asked to connect.
    """

    def __init__(self, policy: AddressPolicy, resolve: Resolve = resolve, dial: Dial | None = None):
        self.policy = policy
        self.resolve = resolve
        self.dial = dial or super().connect_tcp
        self._streams: weakref.WeakSet[httpcore.NetworkStream] = weakref.WeakSet()
        self._lock = threading.Lock()

    def abort(self) -> None:
        """End every open connection now, waking the threads blocked reading from them (closing
        a socket does not wake them; shutting it down does)."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            connection = stream.get_extra_info("socket")
            if connection is not None:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.resolve(host, port)
        allowed = [address for address in addresses if self.policy.refusal(address) is None]
        if not allowed:
            raise AddressRefused(self._refusal_message(host, addresses))
        error: httpcore.ConnectError | None = None
        for address in allowed:  # the checked address itself: no second lookup to race
            try:
                stream = self.dial(address, port, timeout=timeout, local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            with self._lock:
                self._streams.add(stream)
            return stream
        raise error or AddressRefused(self._refusal_message(host, addresses))

    def _refusal_message(self, host: str, addresses: Sequence[str]) -> str:
        if not addresses:
            return f"DNS lookup failed for {host}: no address"
        address = addresses[0]
        kind = self.policy.refusal(address)
        what = f"{host.strip('[]')} is {kind}" if _is_literal(host) else f"{host} resolves to {address}, {kind}"
        return f"refused: {what} (fetch.allow_networks to allow)"


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool whose network backend is a :class:`GuardedBackend`."""

    def __init__(self, policy: AddressPolicy, resolve: Resolve = resolve, dial: Dial | None = None):
        super().__init__(trust_env=False)
        # httpx does not pass a network backend through to its pool, so the pool is made again
        # with the same TLS context and httpx's default limits, and the guarded backend.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self.backend = GuardedBackend(policy, resolve, dial)
        self._pool = httpcore.ConnectionPool(
            ssl_context=self._pool._ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )
