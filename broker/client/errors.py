"""Exceptions raised by the trio client.

Every error that closes a channel or a connection carries what the broker said:
``reply_code``, ``reply_text`` and the ``class_id``/``method_id`` of the method
that caused it (AMQP 0-9-1 section 1.5.2.5, ``channel.close`` /
``connection.close``). ``code_name`` gives the spec's name for the reply code
(``404`` -> ``"NOT_FOUND"``).
"""

from __future__ import annotations

from protocol.constants import ReplyCode

__all__ = [
    "ClientError",
    "AMQPClosed",
    "ChannelClosed",
    "ConnectionClosed",
    "ConsumerCancelled",
    "PublishNacked",
    "Unroutable",
    "PublishFailed",
    "ReplyCode",
]


class ClientError(Exception):
    """Base class of every exception this client raises on purpose."""


class AMQPClosed(ClientError):
    """A channel or connection was closed; carries the broker's reason."""

    def __init__(
        self,
        reply_code: int = 0,
        reply_text: str = "",
        class_id: int = 0,
        method_id: int = 0,
    ) -> None:
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id
        super().__init__(reply_code, reply_text, class_id, method_id)

    @property
    def code_name(self) -> str:
        """The spec's name of ``reply_code`` (``"NOT_FOUND"``), or ``""`` if unknown."""
        try:
            return ReplyCode(self.reply_code).name
        except ValueError:
            return ""

    def __str__(self) -> str:
        where = ""
        if self.class_id or self.method_id:
            where = f" (class {self.class_id}, method {self.method_id})"
        if not self.reply_code:
            return self.reply_text  # not the broker's words: a socket error or timeout
        name = f" {self.code_name}" if self.code_name else ""
        return f"{self.reply_code}{name}: {self.reply_text}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reply_code={self.reply_code}, "
            f"reply_text={self.reply_text!r}, class_id={self.class_id}, "
            f"method_id={self.method_id})"
        )


class ChannelClosed(AMQPClosed):
    """The channel was closed, by the broker (a soft error) or by us."""


class ConnectionClosed(AMQPClosed):
    """The connection was closed by the broker, by us, or the socket was lost.

    A lost socket or a missed heartbeat has ``reply_code`` 0 and a
    ``reply_text`` saying what happened.
    """


class ConsumerCancelled(ClientError):
    """The broker cancelled our consumer (``basic.cancel`` from the server,
    e.g. because its queue was deleted; RabbitMQ's consumer_cancel_notify)."""

    def __init__(self, consumer_tag: str) -> None:
        self.consumer_tag = consumer_tag
        super().__init__(f"consumer {consumer_tag!r} was cancelled by the broker")


class PublishFailed(ClientError):
    """A confirmed publish did not succeed (base of the two cases below)."""

    def __init__(self, message: str, delivery_tag: int = 0) -> None:
        self.delivery_tag = delivery_tag
        super().__init__(message)


class PublishNacked(PublishFailed):
    """The broker answered a confirmed publish with ``basic.nack``."""


class Unroutable(PublishFailed):
    """A mandatory message reached no queue and came back in ``basic.return``.

    ``reply_code`` is normally 312 NO_ROUTE; ``exchange``, ``routing_key`` are
    those of the returned message.
    """

    def __init__(
        self,
        reply_code: int,
        reply_text: str,
        exchange: str,
        routing_key: str,
        delivery_tag: int = 0,
    ) -> None:
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.exchange = exchange
        self.routing_key = routing_key
        super().__init__(
            f"{reply_code} {reply_text}: exchange {exchange!r}, routing key {routing_key!r}",
            delivery_tag,
        )
