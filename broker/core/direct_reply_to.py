"""Direct reply-to: replies delivered straight to a requester's channel, no queue.

RabbitMQ's pseudo-queue `amq.rabbitmq.reply-to` (rabbit_channel.erl and
rabbit_direct_reply_to.erl, 3.10): a channel consumes from it (no-ack only)
and publishes requests with the property `reply_to = amq.rabbitmq.reply-to`;
the broker rewrites that to `amq.rabbitmq.reply-to.<opaque>`, a name that
designates the consuming channel. A reply published to the default exchange
with that routing key, from any connection (in any vhost: RabbitMQ resolves
the name to the channel, not to a queue of a vhost), goes straight to the
requester's consumer. Nothing is queued: a reply to a requester that has gone
is dropped, and the publish reaches no queue, so a `mandatory` reply is
returned (312 NO_ROUTE) whether or not it was delivered.

This module is the broker-wide table of those names. The session's channel
registers its reply consumer here (`ReplyConsumer`); the vhost's routing
hands replies over (`deliver`). The opaque part is random (RabbitMQ encodes
the channel's pid and a random key): it can be neither guessed nor reused
after the consumer is cancelled.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from typing import Protocol

from broker.core.message import Message

__all__ = [
    "REPLY_TO",
    "REPLY_TO_PREFIX",
    "DirectReplyTo",
    "ReplyConsumer",
    "is_reply_queue",
    "reply_keys",
]

#: The pseudo-queue a requester consumes from, and the `reply_to` it publishes with.
REPLY_TO = "amq.rabbitmq.reply-to"
#: What the broker rewrites `reply_to` to starts with this (rabbit_exchange
#: virtual_reply_queue/1: the default exchange routes such keys to channels).
REPLY_TO_PREFIX = REPLY_TO + "."


def is_reply_queue(name: str) -> bool:
    """Is `name` the pseudo-queue or under it? (RabbitMQ answers every
    queue.declare of such a name as a passive declare: rabbit_channel's
    `<<"amq.rabbitmq.reply-to", _/binary>>` clause.)"""
    return name.startswith(REPLY_TO)


class ReplyConsumer(Protocol):
    """A channel's consumer of `amq.rabbitmq.reply-to` (the session's `Channel`)."""

    def deliver_reply(self, message: Message) -> None:
        """Send `message` to the reply consumer now (or drop it if the channel is closing)."""
        ...


class DirectReplyTo:
    """The reply consumers of one broker, by the name replies are addressed to."""

    __slots__ = ("_consumers",)

    def __init__(self) -> None:
        self._consumers: dict[str, ReplyConsumer] = {}

    def register(self, consumer: ReplyConsumer) -> str:
        """A new name (`amq.rabbitmq.reply-to.<opaque>`) designating `consumer`."""
        while True:
            token = base64.b64encode(os.urandom(18)).decode("ascii")
            name = REPLY_TO_PREFIX + token
            if name not in self._consumers:
                self._consumers[name] = consumer
                return name

    def unregister(self, name: str) -> None:
        """The consumer was cancelled or its channel closed: replies to `name` are dropped."""
        self._consumers.pop(name, None)

    def exists(self, name: str) -> bool:
        """Does `name` designate a live reply consumer? (`amq.rabbitmq.reply-to`
        itself always exists, as in RabbitMQ.)"""
        return name == REPLY_TO or name in self._consumers

    def __len__(self) -> int:
        return len(self._consumers)

    def deliver(self, keys: Iterable[str], message: Message) -> None:
        """Hand `message` to the reply consumer of each key that names one.

        `keys` are the routing keys of a publish to the default exchange (its
        routing key, then CC and BCC): each reply name among them gets one
        copy, in sorted order (rabbit_exchange:route/2 `lists:usort`); the
        others are ignored here.
        """
        consumers = self._consumers
        for key in sorted(set(keys)):
            consumer = consumers.get(key)
            if consumer is not None:
                consumer.deliver_reply(message)


def reply_keys(routing_key: str, headers: dict[str, object] | None) -> list[str]:
    """The reply names among a message's routing keys: its routing key and
    the long strings of its CC and BCC headers (RabbitMQ's sender-selected
    distribution; the router has already refused CC/BCC that are not arrays)."""
    keys = [routing_key] if routing_key.startswith(REPLY_TO_PREFIX) else []
    if headers:
        for header in ("CC", "BCC"):
            value = headers.get(header)
            if not isinstance(value, list | tuple):
                continue
            for item in value:
                if isinstance(item, bytes):
                    item = item.decode("utf-8", "surrogateescape")
                if isinstance(item, str) and item.startswith(REPLY_TO_PREFIX):
                    keys.append(item)
    return keys
