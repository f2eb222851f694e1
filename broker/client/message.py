"""A message delivered to us (basic.deliver or basic.get-ok), and its settlement."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.properties import BasicProperties

if TYPE_CHECKING:
    from .channel import Channel


class Message:
    """One delivered message.

    ``properties`` is decoded from the raw header bytes on first access, so a
    consumer that only reads ``body`` never pays for decoding.
    ``ack``/``nack``/``reject`` answer on the channel the message came from
    (delivery tags are per channel, spec 1.8.2.4.2). They are buffered and
    written together with whatever else this connection sends next, so acking
    every message in a loop costs no socket write per message.
    """

    __slots__ = (
        "channel",
        "delivery_tag",
        "redelivered",
        "exchange",
        "routing_key",
        "body",
        "consumer_tag",
        "message_count",
        "_raw_properties",
        "_properties",
        "_settled",
    )

    def __init__(
        self,
        channel: Channel,
        delivery_tag: int,
        redelivered: bool,
        exchange: str,
        routing_key: str,
        raw_properties: bytes | None,
        body: bytes,
        consumer_tag: str = "",
        message_count: int | None = None,
        settled: bool = False,
    ) -> None:
        self.channel = channel
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = routing_key
        self._raw_properties = raw_properties
        self._properties: BasicProperties | None = None
        self.body = body
        self.consumer_tag = consumer_tag
        #: Only for basic.get-ok: how many messages the queue still held.
        self.message_count = message_count
        self._settled = settled

    @property
    def properties(self) -> BasicProperties:
        """The message's 14 content properties (decoded once, on first use)."""
        if self._properties is None:
            raw = self._raw_properties
            self._properties = BasicProperties.decode(raw) if raw else BasicProperties()
        return self._properties

    @property
    def headers(self) -> dict:
        """Shortcut for ``properties.headers`` (an empty dict if there are none)."""
        return self.properties.headers or {}

    async def ack(self, multiple: bool = False) -> None:
        """basic.ack this delivery (and all earlier ones on the channel if ``multiple``)."""
        self._check_settle()
        await self.channel.basic_ack(self.delivery_tag, multiple)
        self._settled = True

    async def nack(self, requeue: bool = True, multiple: bool = False) -> None:
        """basic.nack (RabbitMQ's extension): requeue it, or dead-letter/drop it."""
        self._check_settle()
        await self.channel.basic_nack(self.delivery_tag, multiple, requeue)
        self._settled = True

    async def reject(self, requeue: bool = True) -> None:
        """basic.reject this delivery: requeue it, or dead-letter/drop it."""
        self._check_settle()
        await self.channel.basic_reject(self.delivery_tag, requeue)
        self._settled = True

    def _check_settle(self) -> None:
        # Settling twice is a 406 PRECONDITION_FAILED "unknown delivery tag" that
        # would close the channel; say so here instead, where the bug is.
        if self._settled:
            raise RuntimeError(
                f"delivery {self.delivery_tag} was already acked, nacked or rejected "
                "(or consumed with no_ack)"
            )

    def __repr__(self) -> str:
        return (
            f"Message(delivery_tag={self.delivery_tag}, exchange={self.exchange!r}, "
            f"routing_key={self.routing_key!r}, body={self.body[:40]!r}"
            f"{'...' if len(self.body) > 40 else ''})"
        )
