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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from broker import __version__
from broker.auth.access import AccessControl, LoginRefused, UserAccess
from broker.core import errors
from broker.core.vhost import VHost, limit_reached
from broker.logging import get_logger
from broker.session.info import ConnectionInfo
from protocol import methods as m
from protocol.connection import parse_sasl_response, server_start
from protocol.constants import FRAME_MIN_SIZE, ReplyCode
from protocol.errors import AMQPError, ConnectionException, error_for

__all__ = [
    "CAPABILITIES",
    "MECHANISMS",
    "Handshake",
    "LoginFailed",
    "SessionLimits",
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
    "direct_reply_to": True,  # amq.rabbitmq.reply-to (broker.core.direct_reply_to)
    "consumer_priorities": True,  # x-priority (broker.core.features.consumers)
}

#: SASL mechanisms Warren implements. EXTERNAL (a TLS client certificate
#: names the user) is offered on TLS connections only, as RabbitMQ does.
MECHANISMS = ("PLAIN", "AMQPLAIN", "EXTERNAL")


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """What a connection is allowed; proposed in connection.tune.

    Defaults are RabbitMQ 3.10's: channel_max 2047, frame_max 131072,
    heartbeat 60 s, handshake_timeout 10 s, max_message_size 128 MiB,
    consumer_timeout 30 minutes.
    """

    channel_max: int = 2047
    frame_max: int = 131072
    heartbeat: int = 60
    #: A peer that has not finished opening the connection by then is dropped.
    handshake_timeout: float = 10.0
    #: The largest message body accepted (406 PRECONDITION_FAILED beyond).
    max_message_size: int = 134_217_728
    #: Open connections the node allows (None: no limit, RabbitMQ's infinity).
    connection_max: int | None = None
    #: Mechanisms offered (RabbitMQ's `auth_mechanisms`), in preference order.
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "AMQPLAIN")
    #: What names the user of an EXTERNAL login (RabbitMQ's `ssl_cert_login_from`).
    ssl_cert_login_from: str = "distinguished_name"
    #: Milliseconds a delivery may stay unacknowledged before its channel is
    #: closed (RabbitMQ's `consumer_timeout`, 30 minutes); None: no limit
    #: but the queues' own (`Queue.consumer_timeout`).
    consumer_timeout: int | None = 1_800_000


def server_properties() -> dict[str, Any]:
    """connection.start's server-properties: who we are and `CAPABILITIES`."""
    return {
        "product": "Warren",
        "version": __version__,
        "platform": "Python/trio",
        "copyright": "Warren contributors",
        "information": "AMQP 0-9-1 broker; see docs/compatibility.md",
        "capabilities": dict(CAPABILITIES),
    }


class LoginFailed(ConnectionException):
    """A refused login, answered as RabbitMQ answers it (rabbit_reader
    auth_fail): 403 with a fixed text naming only the mechanism, class and
    method 0 (not start-ok's), and only to a client that announced the
    `authentication_failure_close` capability; to others the socket is just
    closed. Either way the socket closes after `delay` seconds, which slows
    password guessing down."""

    def __init__(
        self, mechanism: str, notify: bool, delay: float,
        on_answered: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            ReplyCode.ACCESS_REFUSED,
            f"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. "
            "For details see the broker logfile.",
            0,
            0,
        )
        self.notify = notify
        self.delay = delay
        #: Called once the answer is sent (the throttle counts waiting answers).
        self.on_answered = on_answered


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
        access: AccessControl,
        limits: SessionLimits,
        open_connections: Callable[[], int] = lambda: 0,
    ) -> None:
        self.info = info
        self.vhosts = vhosts
        self.access_control = access
        self.limits = limits
        self.open_connections = open_connections
        self.user: str | None = None
        self.mechanism: str | None = None
        self.client_properties: dict[str, Any] = {}
        self.frame_max = FRAME_MIN_SIZE
        self.vhost: VHost | None = None
        #: The user's permissions in the vhost, once it is open.
        self.access: UserAccess | None = None

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

    def mechanisms(self) -> tuple[str, ...]:
        """The mechanisms offered on this connection: EXTERNAL only over TLS."""
        return tuple(
            mechanism for mechanism in self.limits.auth_mechanisms
            if mechanism != "EXTERNAL" or self.info.tls is not None
        )

    def start(self) -> m.ConnectionStart:
        """connection.start, answering the protocol header."""
        return server_start(server_properties(), " ".join(self.mechanisms()))

    def on_start_ok(self, method: m.ConnectionStartOk) -> m.ConnectionTune:
        self.client_properties = method.client_properties or {}
        mechanism = method.mechanism
        if mechanism not in self.mechanisms():
            raise errors.command_invalid(f"unknown authentication mechanism '{mechanism}'")
        username = ""
        notify = bool(self._client_capabilities().get("authentication_failure_close"))
        waiting = self.access_control.login_shed(self.info)
        if waiting:
            # Parallel guessing from one address: refused before the
            # credentials are looked at (broker.auth.access.LoginThrottle).
            log.warning(
                "connection.refused",
                peer=self.info.peer_text,
                mechanism=mechanism,
                reason="too many failed logins from this address waiting for their answer; "
                "credentials not checked",
                pending_answers=waiting,
                shed=self.access_control.throttle.shed,
            )
            self.access_control.login_refused_unchecked()
            raise LoginFailed(mechanism, notify, 0.0)
        try:
            if mechanism == "EXTERNAL":
                username = self._certificate_user()
                self.user = self.access_control.authenticate_external(username, self.info)
            else:
                try:
                    username, password = parse_sasl_response(mechanism, bytes(method.response))
                except AMQPError:
                    raise LoginRefused(f"malformed {mechanism} response") from None
                self.user = self.access_control.authenticate(username, password, self.info)
        except LoginRefused as refused:
            delay = self.access_control.login_failed(self.info)
            log.warning(
                "connection.refused",
                peer=self.info.peer_text,
                user=username,
                mechanism=mechanism,
                reason=str(refused),
                failed_logins=self.access_control.failed_logins,
                answer_delay=delay,
            )
            answered = partial(self.access_control.login_answered, self.info) if delay else None
            raise LoginFailed(mechanism, notify, delay, answered) from None
        self.access_control.login_succeeded()
        self.mechanism = mechanism
        limits = self.limits
        return m.ConnectionTune(
            channel_max=limits.channel_max, frame_max=limits.frame_max, heartbeat=limits.heartbeat
        )

    def _certificate_user(self) -> str:
        """The user an EXTERNAL login names: the client certificate's subject
        (RFC 4514 distinguished name) or its common name."""
        tls = self.info.tls
        subject = tls.peer_subject if tls is not None else None
        if subject is None:
            raise LoginRefused("the client presented no certificate")
        if self.limits.ssl_cert_login_from == "common_name":
            if tls is None or tls.peer_common_name is None:
                raise LoginRefused("the client certificate has no common name")
            return tls.peer_common_name
        return subject

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
        """The vhost to serve, checked in RabbitMQ's order (rabbit_reader
        handle_method0 connection.open): the vhost exists, its connection
        limit, the user's (max-connections), the node's, then the user's
        access to it. Each refusal is 530."""
        user = self.user
        if user is None:
            raise errors.command_invalid("connection.open before connection.start-ok")
        name = method.virtual_host
        vhost = self.vhosts.get(name)
        if vhost is None:
            raise errors.not_allowed(f"vhost {name} not found")
        limit = vhost.limits.max_connections
        if limit_reached(limit, vhost.connection_count):
            raise errors.not_allowed(
                f"access to vhost '{name}' refused for user '{user}': "
                f"connection limit ({limit}) is reached"
            )
        # The user's max-connections (over all vhosts), then as RabbitMQ 3.10.
        self.access_control.check_user_connection_limit(user)
        node_limit = self.limits.connection_max
        if node_limit is not None and self.open_connections() >= node_limit:
            raise errors.not_allowed(
                f"connection refused: node connection limit ({node_limit}) is reached"
            )
        if not self.access_control.may_open(user, name):
            raise errors.not_allowed(f"access to vhost '{name}' refused for user '{user}'")
        self.vhost = vhost
        self.access = self.access_control.access(user, name)
        return vhost
