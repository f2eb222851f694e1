"""A follower's AMQP listener: every connection is told who leads, then closed.

Only the leader serves AMQP (docs/cluster.md). A follower still listens on the
AMQP port so that a client is not left with "connection refused": it answers
the handshake up to connection.open and then closes the connection with
530 NOT_ALLOWED and a text naming the leader, e.g.

    NOT_ALLOWED - warren-2 is a follower in cluster prod; the leader is warren-1 at 10.0.0.11:5672

530 is what RabbitMQ sends on connection.open for a vhost the connection may
not use: every client reports it as a failed connection attempt with this
text, and its reconnect logic (a list of URLs, a load balancer's next
backend) moves on. Nothing is authenticated and nothing is stored: a follower
has no users of its own, only a copy of the leader's files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from broker.logging import get_logger
from protocol import methods as m
from protocol.connection import (
    Command,
    Connection,
    ProtocolFailure,
    ProtocolHeaderReceived,
    Role,
    server_start,
)
from protocol.constants import ReplyCode
from protocol.errors import AMQPError

__all__ = ["serve_refusals"]

log = get_logger("warren.cluster")

#: Seconds a client has to reach connection.open (and then to answer close-ok).
REFUSAL_TIMEOUT = 10.0


async def refuse_one(stream: trio.abc.Stream, reason: Callable[[], str]) -> None:
    """Run one connection's handshake to connection.open, then close it with `reason()`."""
    connection = Connection(Role.SERVER)
    try:
        with trio.move_on_after(REFUSAL_TIMEOUT):
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                try:
                    events = connection.receive_data(bytes(data))
                except AMQPError:
                    await stream.send_all(b"AMQP\x00\x00\x09\x01")
                    return
                for event in events:
                    if isinstance(event, ProtocolFailure):
                        return
                    if isinstance(event, ProtocolHeaderReceived):
                        await stream.send_all(connection.send(0, server_start(
                            {"product": "Warren", "cluster_role": "follower"})))
                        continue
                    if not isinstance(event, Command):
                        continue  # a heartbeat
                    method = event.method
                    if isinstance(method, m.ConnectionStartOk):
                        await stream.send_all(connection.send(
                            0, m.ConnectionTune(channel_max=1, frame_max=131072, heartbeat=0)))
                    elif isinstance(method, m.ConnectionOpen):
                        text = f"NOT_ALLOWED - {reason()}"
                        log.info("cluster.client_refused", reason=text)
                        await stream.send_all(connection.send(0, m.ConnectionClose(
                            reply_code=int(ReplyCode.NOT_ALLOWED), reply_text=text[:255],
                            class_id=m.ConnectionOpen.CLASS_ID, method_id=m.ConnectionOpen.METHOD_ID)))
                    elif isinstance(method, m.ConnectionCloseOk | m.ConnectionClose):
                        return
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        await stream.aclose()


async def serve_refusals(
    listeners: list[trio.abc.Listener[Any]], reason: Callable[[], str],
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Refuse every AMQP connection on `listeners` until cancelled."""
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(trio.serve_listeners, lambda s: refuse_one(s, reason), [listener])
        task_status.started()
