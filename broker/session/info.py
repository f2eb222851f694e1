"""Who is on the other end of a connection: a value the listener hands the session.

As LavinMQ's listeners do: each accepted socket comes with a
`ConnectionInfo` (peer and local address, the listener's name, TLS details
when the stream is a TLS one), built before the session exists, so that the
session, authentication and the management plane read the same facts and
none of them needs the socket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import trio

__all__ = ["ConnectionInfo", "TLSInfo", "connection_info"]


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """The TLS session of a connection (RabbitMQ's `ssl_*` connection fields)."""

    protocol: str
    cipher: str
    #: The client certificate's subject as RFC 4514 text ("CN=alice,O=Example"),
    #: and its common name, when the client sent a certificate.
    peer_subject: str | None = None
    peer_common_name: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """Addresses, listener and TLS details of one client connection."""

    peer_host: str
    peer_port: int
    local_host: str = ""
    local_port: int = 0
    #: The listener that accepted it ("amqp", "amqp/ssl"), for logs and management.
    listener: str = "amqp"
    tls: TLSInfo | None = None

    @property
    def peer_text(self) -> str:
        """`host:port` (`[v6]:port` for IPv6), as logs show the peer."""
        host = f"[{self.peer_host}]" if ":" in self.peer_host else self.peer_host
        return f"{host}:{self.peer_port}"

    @property
    def is_loopback(self) -> bool:
        """From 127.0.0.0/8 or ::1 (RabbitMQ's `loopback_users` rule)."""
        try:
            address = ipaddress.ip_address(self.peer_host)
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback


def _address(value: Any) -> tuple[str, int]:
    try:
        return str(value[0]), int(value[1])
    except (TypeError, ValueError, IndexError):
        return "?", 0


def connection_info(stream: trio.abc.Stream, listener: str = "amqp") -> ConnectionInfo:
    """The `ConnectionInfo` of a socket stream (plain or TLS-wrapped) just accepted."""
    tls: TLSInfo | None = None
    inner: Any = stream
    if isinstance(stream, trio.SSLStream):
        inner = stream.transport_stream
        tls = _tls_info(stream)
    socket = getattr(inner, "socket", None)
    peer: tuple[str, int] = ("?", 0)
    local: tuple[str, int] = ("", 0)
    if socket is not None:
        try:
            peer = _address(socket.getpeername())
            local = _address(socket.getsockname())
        except OSError:
            pass
    return ConnectionInfo(peer[0], peer[1], local[0], local[1], listener, tls)


def _tls_info(stream: trio.SSLStream[Any]) -> TLSInfo | None:
    """What the handshake settled (it must have completed)."""
    try:
        version = stream.version() or ""
        cipher = (stream.cipher() or ("",))[0]
        cert = stream.getpeercert()
    except (trio.NeedHandshakeError, AttributeError):
        return None
    subject = common_name = None
    if cert:
        # getpeercert(): subject is a tuple of RDNs, each a tuple of (key, value).
        rdns = [(key, value) for rdn in cert.get("subject", ()) for key, value in rdn]
        subject = ",".join(f"{_short(key)}={value}" for key, value in reversed(rdns))
        common_name = next((value for key, value in rdns if key == "commonName"), None)
    return TLSInfo(version, cipher, subject, common_name)


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "domainComponent": "DC",
    "emailAddress": "emailAddress",
}


def _short(key: str) -> str:
    return _SHORT.get(key, key)
