"""Who is on the other end of a connection: a value the listener hands the session.

As LavinMQ's listeners do: each accepted socket comes with a
`ConnectionInfo` (peer and local address, the listener's name, TLS details
when the stream is a TLS one), built before the session exists, so that the
session, authentication and the management plane read the same facts and
none of them needs the socket.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
from dataclasses import dataclass
from typing import Any

import trio

__all__ = [
    "ConnectionInfo",
    "RDN_NAMES",
    "TLSInfo",
    "common_names",
    "connection_info",
    "distinguished_name",
    "escape_rdn_value",
]


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """The TLS session of a connection (RabbitMQ's `ssl_*` connection fields)."""

    protocol: str
    cipher: str
    #: The client certificate's subject as RFC 4514 text, as RabbitMQ writes it
    #: ("CN=alice,OU=Team\, Inc,O=Example": `distinguished_name`), and its
    #: common name (several joined with ","), when the client sent a certificate:
    #: the user names of an EXTERNAL login.
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
        rdns = cert.get("subject", ())
        subject = distinguished_name(rdns)
        common_name = common_names(rdns)
    return TLSInfo(version, cipher, subject, common_name)


#: RabbitMQ 3.10's names for attribute types (rabbit_cert_info:format_rdn),
#: by OID; every other type is written as its dotted OID, as RabbitMQ does
#: (streetAddress, 2.5.4.9, included: RabbitMQ 3.10.8 writes "2.5.4.9=").
RDN_NAMES: dict[str, str] = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "SERIALNUMBER",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "TITLE",
    "2.5.4.42": "GIVENNAME",
    "2.5.4.43": "INITIALS",
    "2.5.4.44": "GENERATIONQUALIFIER",
    "2.5.4.65": "PSEUDONYM",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "EMAILADDRESS",
}

#: A name as `ssl.SSLObject.getpeercert()` gives it: RDNs in certificate order
#: (least specific first), each a tuple of (attribute type, value) pairs.
RDNSequence = tuple[tuple[tuple[str, str], ...], ...]


def distinguished_name(rdns: RDNSequence) -> str:
    """The RFC 4514 text of a certificate name, exactly as RabbitMQ 3.10 writes
    it for EXTERNAL logins (`ssl_cert_login_from = distinguished_name`).

    Most specific RDN first, comma-separated, no spaces; the values of a
    multi-valued RDN joined with "+" in the certificate's (DER) order; values
    escaped by `escape_rdn_value`. This is `openssl x509 -subject -nameopt
    RFC2253` except in three places where RabbitMQ differs from OpenSSL (and
    Warren follows RabbitMQ): attribute names (`EMAILADDRESS`, `GIVENNAME`,
    `SERIALNUMBER`...; dotted OIDs for the rest), the order inside a
    multi-valued RDN (OpenSSL reverses it), and `~` (RabbitMQ writes `\\7E`).
    tests/tls/test_tls_dn.py checks all three against both.
    """
    return ",".join(
        "+".join(f"{_type_name(key)}={escape_rdn_value(value)}" for key, value in rdn)
        for rdn in reversed(rdns)
    )


def common_names(rdns: RDNSequence) -> str | None:
    """The user name of `ssl_cert_login_from = common_name`: the CN value, or
    every CN joined with "," in certificate order when there are several
    (as RabbitMQ does), unescaped; None without a CN."""
    values = [value for rdn in rdns for key, value in rdn if _oid(key) == "2.5.4.3"]
    return ",".join(values) if values else None


def escape_rdn_value(value: str) -> str:
    """RFC 4514 escaping as RabbitMQ does it (rabbit_cert_info:escape_rdn_value),
    over the value's UTF-8 bytes: a leading space or `#`, a trailing space and
    `" + , ; < > \\` get a backslash; bytes below 32 or from 126 (`~`, DEL and
    every byte of a non-ASCII character) are written `\\XX` in upper-case hex."""
    data = value.encode("utf-8")
    last = len(data) - 1
    out: list[str] = []
    for index, byte in enumerate(data):
        char = chr(byte)
        if (index == 0 and char in " #") or (index == last and char == " "):
            out.append("\\" + char)
        elif char in _SPECIAL:
            out.append("\\" + char)
        elif byte < 32 or byte >= 126:
            out.append(f"\\{byte:02X}")
        else:
            out.append(char)
    return "".join(out)


_SPECIAL = frozenset('"+,;<>\\')


@functools.lru_cache(maxsize=256)
def _oid(key: str) -> str:
    """The dotted OID of an attribute type as getpeercert() names it (OpenSSL's
    long name, or the dotted OID itself for a type OpenSSL does not know)."""
    try:
        return ssl._ASN1Object.fromname(key).oid
    except ValueError:
        return key


def _type_name(key: str) -> str:
    oid = _oid(key)
    return RDN_NAMES.get(oid, oid)
