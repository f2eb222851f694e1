"""Opening a connection (AMQP 0-9-1 section 4.2.3), in one place.

    client: protocol header
    server: connection.start     server-properties, capabilities, mechanisms
    client: connection.start-ok  mechanism + response (SASL)
    server: connection.tune      channel-max, frame-max, heartbeat
    client: connection.tune-ok
    client: connection.open      virtual-host
    server: connection.open-ok

`CAPABILITIES` is the one table of what Warren announces: a client that sees
a capability may rely on it (pika, the Java client switch features on from
it), so each entry names where it is implemented, and nothing RabbitMQ
announces that Warren lacks is listed. The server properties, the
mechanisms and the tune values all come from here, so what is announced and
what is implemented cannot drift apart.

Authentication goes through an `Authenticator` (which users exist, their
passwords, who may log in from where); the vhost named by connection.open is
looked up in the vhosts the session was handed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from broker.core import errors
from broker.core.vhost import VHost
from broker.logging import get_logger
from broker.session.info import ConnectionInfo
from protocol import methods as m
from protocol.connection import parse_sasl_response, server_start
from protocol.constants import FRAME_MIN_SIZE, ReplyCode
from protocol.errors import AMQPError, error_for

__all__ = [
    "CAPABILITIES",
    "MECHANISMS",
    "Authenticator",
    "Handshake",
    "LoginRefused",
    "SessionLimits",
    "StaticUsers",
    "server_properties",
]

log = get_logger("warren.connection")

#: What Warren announces in connection.start, and where each is implemented.
CAPABILITIES: dict[str, bool] = {
    "publisher_confirms": True,  # session.confirms
    "exchange_exchange_bindings": True,  # routing.topology (exchange.bind)
    "basic.nack": True,  # session.acks
    "consumer_cancel_notify": True,  # Channel.cancel_by_server
    "authentication_failure_close": True,  # Handshake: 403 connection.close
    "per_consumer_qos": True,  # basic.qos global=false (session.consumers)
    "connection.blocked": True,  # ClientConnection._block (broker.alarms)
}

#: SASL mechanisms offered, in preference order (RabbitMQ's default set).
MECHANISMS = ("PLAIN", "AMQPLAIN")


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """What a connection is allowed; proposed in connection.tune.

    Defaults are RabbitMQ 3.10's: channel_max 2047, frame_max 131072,
    heartbeat 60 s, handshake_timeout 10 s.
    """

    channel_max: int = 2047
    frame_max: int = 131072
    heartbeat: int = 60
    #: A peer that has not finished opening the connection by then is dropped.
    handshake_timeout: float = 10.0


class LoginRefused(Exception):
    """A login an `Authenticator` refuses; the reason goes to the log, never to the client."""


class Authenticator(Protocol):
    """Who may log in: decides a (mechanism, username, password) from a peer."""

    def authenticate(self, username: str, password: str, info: ConnectionInfo) -> str:
        """The user's name if the login is good; raises `LoginRefused(reason)` if not."""
        ...


class StaticUsers:
    """Users with plain-text passwords, and RabbitMQ's `loopback_users` rule.

    The broker's built-in users until the access-control layer: `guest`/
    `guest`, allowed from loopback only, as RabbitMQ.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        loopback_users: frozenset[str] = frozenset({"guest"}),
    ) -> None:
        self.users = dict(users if users is not None else {"guest": "guest"})
        self.loopback_users = loopback_users

    def authenticate(self, username: str, password: str, info: ConnectionInfo) -> str:
        if self.users.get(username) != password:
            raise LoginRefused("invalid credentials")
        if username in self.loopback_users and not info.is_loopback:
            raise LoginRefused(f"user '{username}' can only connect via localhost")
        return username


def server_properties() -> dict[str, Any]:
    """connection.start's server-properties: who we are and `CAPABILITIES`."""
    from broker import __version__

    return {
        "product": "Warren",
        "version": __version__,
        "platform": "Python/trio",
        "copyright": "Warren contributors",
        "information": "AMQP 0-9-1 broker; see docs/compatibility.md",
        "capabilities": dict(CAPABILITIES),
    }


def _login_refused(mechanism: str) -> AMQPError:
    return errors.access_refused(
        f"Login was refused using authentication mechanism {mechanism}. "
        "For details see the broker logfile."
    )


class Handshake:
    """The server side of connection.start .. connection.open-ok for one connection.

    Each `on_*` method checks one client method, records what it settles
    and returns the reply to send (or raises the `AMQPError` RabbitMQ would
    send, which closes the connection).
    """

    def __init__(
        self,
        info: ConnectionInfo,
        vhosts: Mapping[str, VHost],
        authenticator: Authenticator,
        limits: SessionLimits,
    ) -> None:
        self.info = info
        self.vhosts = vhosts
        self.authenticator = authenticator
        self.limits = limits
        self.user: str | None = None
        self.client_properties: dict[str, Any] = {}
        self.frame_max = FRAME_MIN_SIZE
        self.vhost: VHost | None = None

    @property
    def consumer_cancel_notify(self) -> bool:
        return bool(self._client_capabilities().get("consumer_cancel_notify"))

    @property
    def wants_blocked(self) -> bool:
        """Did the client announce the `connection.blocked` capability (RabbitMQ
        sends connection.blocked only to those)?"""
        return bool(self._client_capabilities().get("connection.blocked"))

    def _client_capabilities(self) -> dict[str, Any]:
        capabilities = self.client_properties.get("capabilities")
        return capabilities if isinstance(capabilities, dict) else {}

    def start(self) -> m.ConnectionStart:
        """connection.start, answering the protocol header."""
        return server_start(server_properties(), " ".join(MECHANISMS))

    def on_start_ok(self, method: m.ConnectionStartOk) -> m.ConnectionTune:
        self.client_properties = method.client_properties or {}
        mechanism = method.mechanism
        if mechanism not in MECHANISMS:
            raise errors.command_invalid(f"unknown authentication mechanism '{mechanism}'")
        try:
            username, password = parse_sasl_response(mechanism, bytes(method.response))
        except AMQPError as error:
            raise _login_refused(mechanism) from error
        try:
            self.user = self.authenticator.authenticate(username, password, self.info)
        except LoginRefused as refused:
            log.warning(
                "connection.refused",
                peer=self.info.peer_text,
                user=username,
                mechanism=mechanism,
                reason=str(refused),
            )
            raise _login_refused(mechanism) from None
        limits = self.limits
        return m.ConnectionTune(
            channel_max=limits.channel_max, frame_max=limits.frame_max, heartbeat=limits.heartbeat
        )

    def on_tune_ok(self, method: m.ConnectionTuneOk, negotiated_frame_max: int) -> None:
        """`negotiated_frame_max` is what the protocol machine settled (0: none)."""
        if self.user is None:
            raise errors.command_invalid("connection.tune-ok before connection.start-ok")
        frame_max = negotiated_frame_max or method.frame_max or self.limits.frame_max
        if frame_max < FRAME_MIN_SIZE:
            raise error_for(
                ReplyCode.NOT_ALLOWED,
                f"NOT_ALLOWED - frame_max={frame_max} < {FRAME_MIN_SIZE} min size",
            )
        self.frame_max = frame_max

    def on_open(self, method: m.ConnectionOpen) -> VHost:
        """The vhost to serve (404-style 530 NOT_ALLOWED if it does not exist)."""
        if self.user is None:
            raise errors.command_invalid("connection.open before connection.start-ok")
        vhost = self.vhosts.get(method.virtual_host)
        if vhost is None:
            raise errors.not_allowed(f"vhost {method.virtual_host} not found")
        self.vhost = vhost
        return vhost
