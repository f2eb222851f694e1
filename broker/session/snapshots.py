"""Frozen views of the sessions (connections, channels, consumers) for statistics.

Like the core's `QueueSnapshot`: taken synchronously on the event loop, so
each is consistent, and taking one changes nothing. The management plane
turns them into RabbitMQ's JSON and rates; nothing here knows JSON.

Names follow RabbitMQ: a connection is "PEER -> LOCAL" ("127.0.0.1:51234 ->
127.0.0.1:5672", IPv6 addresses in brackets) and a channel is its
connection's name and " (N)".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from broker.session.channel import Channel
from broker.session.connection import ClientConnection
from broker.session.counters import ChannelCounters
from broker.session.info import ConnectionInfo, TLSInfo

__all__ = [
    "ChannelSnapshot",
    "ConnectionSnapshot",
    "ConsumerSnapshot",
    "channel_name",
    "connection_name",
    "snapshot_channel",
    "snapshot_channels",
    "snapshot_connection",
    "snapshot_consumers",
]


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def connection_name(info: ConnectionInfo) -> str:
    """RabbitMQ's connection name: "peer_host:peer_port -> host:port"."""
    return (
        f"{_host(info.peer_host)}:{info.peer_port} -> {_host(info.local_host)}:{info.local_port}"
    )


def channel_name(info: ConnectionInfo, number: int) -> str:
    """RabbitMQ's channel name: the connection's and " (N)"."""
    return f"{connection_name(info)} ({number})"


@dataclass(frozen=True, slots=True)
class ConnectionSnapshot:
    """One client connection (RabbitMQ's /api/connections fields, where Warren has them)."""

    name: str
    peer_host: str
    peer_port: int
    host: str
    port: int
    #: The listener that accepted it: "amqp" or "amqp/ssl".
    listener: str
    tls: TLSInfo | None
    #: "starting" (before connection.open-ok), "running", "blocked", "closing".
    state: str
    user: str | None
    vhost: str | None
    auth_mechanism: str | None
    channel_max: int
    frame_max: int
    #: The negotiated heartbeat, seconds (RabbitMQ's `timeout`).
    heartbeat: int
    client_properties: dict[str, Any]
    #: ms since the epoch.
    connected_at: int
    channels: int
    recv_oct: int
    recv_cnt: int
    send_oct: int
    send_cnt: int
    #: Bytes written but not yet sent.
    send_pend: int

    @property
    def user_provided_name(self) -> str | None:
        """The `connection_name` client property, when the client gave one."""
        name = self.client_properties.get("connection_name")
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return name if isinstance(name, str) else None


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """One channel (RabbitMQ's /api/channels fields, where Warren has them)."""

    name: str
    number: int
    connection_name: str
    peer_host: str
    peer_port: int
    user: str | None
    vhost: str
    #: "running", "flow" (paused for a commit), "closing".
    state: str
    confirm: bool
    transactional: bool
    #: basic.qos for the consumers created from now on (global=false)...
    prefetch_count: int
    #: ... and for the channel as a whole (global=true).
    global_prefetch_count: int
    consumer_count: int
    messages_unacknowledged: int
    messages_unconfirmed: int
    messages_uncommitted: int
    acks_uncommitted: int
    counters: ChannelCounters
    #: An opaque, stable id for Prometheus' per-object `channel` label.
    id: str = ""


@dataclass(frozen=True, slots=True)
class ConsumerSnapshot:
    """One consumer (RabbitMQ's /api/consumers fields)."""

    consumer_tag: str
    queue: str
    vhost: str
    channel_name: str
    channel_number: int
    connection_name: str
    peer_host: str
    peer_port: int
    user: str | None
    ack_required: bool
    exclusive: bool
    #: The consumer's own prefetch (0: none).
    prefetch_count: int
    arguments: dict[str, Any] = field(default_factory=dict)
    #: Could it take a message now (credit, no backpressure)?
    has_credit: bool = True
    #: RabbitMQ's `activity_status`: "up", or with single active consumer
    #: "single_active" / "waiting" (`Queue.consumer_activity`).
    activity_status: str = "up"


def _state(connection: ClientConnection) -> str:
    if connection.closing:
        return "closing"
    if not connection.opened:
        return "starting"
    if connection.context.alarms.active and connection.publisher:
        return "blocked"
    return "running"


def snapshot_connection(connection: ClientConnection) -> ConnectionSnapshot:
    """The connection now; changes nothing."""
    info = connection.info
    handshake = connection.handshake
    amqp = connection.amqp
    output = connection.output
    return ConnectionSnapshot(
        name=connection_name(info),
        peer_host=info.peer_host,
        peer_port=info.peer_port,
        host=info.local_host,
        port=info.local_port,
        listener=info.listener,
        tls=info.tls,
        state=_state(connection),
        user=handshake.user,
        vhost=connection.vhost.name if connection.vhost is not None else None,
        auth_mechanism=handshake.mechanism,
        channel_max=amqp.channel_max,
        frame_max=handshake.frame_max,
        heartbeat=amqp.heartbeat,
        client_properties=dict(handshake.client_properties),
        connected_at=connection.connected_at,
        channels=len(connection.channels),
        recv_oct=connection.recv_oct,
        recv_cnt=connection.recv_cnt,
        send_oct=output.send_oct,
        send_cnt=output.send_cnt,
        send_pend=output.pending,
    )


def snapshot_channel(connection: ClientConnection, channel: Channel) -> ChannelSnapshot:
    """One channel of `connection` now; changes nothing."""
    info = connection.info
    transaction = channel.transaction
    if channel.closing:
        state = "closing"
    elif channel.paused:
        state = "flow"
    else:
        state = "running"
    return ChannelSnapshot(
        name=channel_name(info, channel.number),
        number=channel.number,
        connection_name=connection_name(info),
        peer_host=info.peer_host,
        peer_port=info.peer_port,
        user=connection.user,
        vhost=channel.vhost.name,
        state=state,
        confirm=channel.confirms.enabled,
        transactional=transaction is not None,
        prefetch_count=channel.prefetch_count,
        global_prefetch_count=channel.global_prefetch,
        consumer_count=len(channel.consumers),
        messages_unacknowledged=len(channel.acks.unacked),
        messages_unconfirmed=len(channel.confirms.owed),
        messages_uncommitted=len(transaction.publishes) if transaction is not None else 0,
        acks_uncommitted=(
            sum(len(taken) for _kind, taken, _requeue in transaction.acks)
            if transaction is not None else 0
        ),
        counters=channel.counters(),
        id=f"<{id(connection):x}.{channel.number}>",
    )


def snapshot_channels(connection: ClientConnection) -> list[ChannelSnapshot]:
    """Every channel of `connection`, by number."""
    return [
        snapshot_channel(connection, connection.channels[number])
        for number in sorted(connection.channels)
    ]


def snapshot_consumers(connection: ClientConnection) -> Iterator[ConsumerSnapshot]:
    """Every consumer on `connection`'s channels."""
    info = connection.info
    for number in sorted(connection.channels):
        channel = connection.channels[number]
        for consumer in channel.consumers.values():
            yield ConsumerSnapshot(
                consumer_tag=consumer.tag,
                queue=consumer.queue.name,
                vhost=consumer.queue.vhost_name,
                channel_name=channel_name(info, number),
                channel_number=number,
                connection_name=connection_name(info),
                peer_host=info.peer_host,
                peer_port=info.peer_port,
                user=connection.user,
                ack_required=not consumer.no_ack,
                exclusive=consumer.exclusive,
                prefetch_count=consumer.prefetch_count,
                arguments=dict(consumer.arguments),
                has_credit=consumer.has_credit(),
                activity_status=consumer.queue.consumer_activity(consumer),
            )
