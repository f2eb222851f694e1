"""A trio-native AMQP 0-9-1 client, on the client role of `protocol/`.

    from broker.client import open_connection

    async with open_connection("amqp://guest:guest@localhost/") as conn:
        async with conn.open_channel(confirms=True) as ch:
            await ch.queue_declare("billing", durable=True)
            await ch.publish("", "billing", b"hello", persistent=True)
            async with ch.consume("billing", prefetch=100) as messages:
                async for message in messages:
                    await message.ack()

See docs/client.md.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from protocol.properties import BasicProperties

from ._open import open_plain_connection
from .channel import Channel, DeclaredQueue
from .confirms import Confirmation
from .connection import Connection
from .consumer import Consumer
from .errors import (
    AMQPClosed,
    ChannelClosed,
    ClientError,
    ConnectionClosed,
    ConsumerCancelled,
    PublishFailed,
    PublishNacked,
    ReplyCode,
    Unroutable,
)
from .message import Message
from .url import ConnectionParameters, parse_url

__all__ = [
    "AMQPClosed",
    "BasicProperties",
    "Channel",
    "ChannelClosed",
    "ClientError",
    "Confirmation",
    "Connection",
    "ConnectionClosed",
    "ConnectionParameters",
    "Consumer",
    "ConsumerCancelled",
    "DeclaredQueue",
    "Message",
    "PublishFailed",
    "PublishNacked",
    "ReplyCode",
    "Unroutable",
    "open_connection",
    "parse_url",
]


@asynccontextmanager
async def open_connection(
    url: str = "amqp://guest:guest@localhost/",
    *,
    ssl_context: ssl.SSLContext | None = None,
    heartbeat: int | None = None,
    client_properties: dict[str, Any] | None = None,
    reconnect: bool = False,
) -> AsyncIterator[Connection]:
    """Connect, log in and open the vhost of ``url``; close everything on exit.

    ``heartbeat`` (seconds, 0 disables) overrides the URL's query option.
    ``ssl_context`` is used for ``amqps://`` URLs (default: the system's
    trusted CAs). With ``reconnect=True`` the connection survives outages
    (see `broker.client.robust`).

    Raises `ConnectionClosed` if the broker cannot be reached, refuses the
    login (403 ACCESS_REFUSED) or the vhost (530 NOT_ALLOWED). If the broker
    closes the connection while the block runs and no code inside it saw the
    error, leaving the block raises it.
    """
    params = parse_url(url)
    if ssl_context is not None:
        params.ssl_context = ssl_context
    if heartbeat is not None:
        params.heartbeat = heartbeat
    if reconnect:
        from .robust import open_robust_connection

        async with open_robust_connection(params, client_properties) as robust:
            yield robust  # type: ignore[misc]
        return
    async with open_plain_connection(params, client_properties) as conn:
        yield conn
