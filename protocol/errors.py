"""AMQP errors: a reply code, a text, and the method that caused them.

Spec 1.4.2 splits reply codes into soft errors, which close only the channel
(403, 404, 405, 406), and hard errors, which close the whole connection
(320, 402, 501-506, 530, 540, 541). The I/O layer turns a `ChannelException`
into channel.close and a `ConnectionException` into connection.close, carrying
`class_id`/`method_id` of the offending method so the peer can tell what failed.
"""

from __future__ import annotations

from .constants import HARD_ERRORS


class AMQPError(Exception):
    """An AMQP protocol error with its reply code (see `constants.ReplyCode`)."""

    def __init__(
        self, reply_code: int, reply_text: str, class_id: int = 0, method_id: int = 0
    ) -> None:
        super().__init__(reply_code, reply_text, class_id, method_id)
        self.reply_code = int(reply_code)
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id

    @property
    def closes_connection(self) -> bool:
        """True for hard errors (connection.close), False for soft ones (channel.close).

        The subclass decides when there is one: a 403 ACCESS_REFUSED during the
        handshake is a `ConnectionException` although 403 is a soft code.
        """
        if isinstance(self, ConnectionException):
            return True
        if isinstance(self, ChannelException):
            return False
        return self.reply_code in HARD_ERRORS

    def __str__(self) -> str:
        where = f" (class {self.class_id}, method {self.method_id})" if self.class_id else ""
        return f"{self.reply_code} {self.reply_text}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.reply_code}, {self.reply_text!r}, "
            f"class_id={self.class_id}, method_id={self.method_id})"
        )


class ConnectionException(AMQPError):
    """A hard error: the connection must be closed with connection.close."""


class ChannelException(AMQPError):
    """A soft error: only the channel is closed, with channel.close."""


class BadProtocolHeader(ConnectionException):
    """The peer did not send `PROTOCOL_HEADER` (spec 4.2.2).

    The server answers by writing its own protocol header and closing the socket;
    no connection.close is sent because no connection exists yet.
    """

    def __init__(self, received: bytes) -> None:
        super().__init__(501, f"bad protocol header {received!r}")
        self.received = received


def error_for(
    reply_code: int, reply_text: str, class_id: int = 0, method_id: int = 0
) -> AMQPError:
    """Build the right exception class for a reply code (hard or soft)."""
    cls = ConnectionException if int(reply_code) in HARD_ERRORS else ChannelException
    return cls(reply_code, reply_text, class_id, method_id)


def syntax_error(text: str, class_id: int = 0, method_id: int = 0) -> ConnectionException:
    """502 SYNTAX_ERROR: the frame could not be decoded."""
    return ConnectionException(502, text, class_id, method_id)


def frame_error(text: str) -> ConnectionException:
    """501 FRAME_ERROR: a malformed frame (bad size, bad frame-end, too large)."""
    return ConnectionException(501, text)


def unexpected_frame(text: str, class_id: int = 0, method_id: int = 0) -> ConnectionException:
    """505 UNEXPECTED_FRAME: a frame arrived where the protocol does not allow it."""
    return ConnectionException(505, text, class_id, method_id)
