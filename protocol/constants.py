"""Wire constants of AMQP 0-9-1 (spec section 4.2 and the generated constants table).

The reply codes follow RabbitMQ's amqp-0-9-1 errata (`amqp0-9-1.extended.xml`),
which is also what every client library ships.
"""

from enum import IntEnum

#: The protocol header a client sends first (spec 4.2.2): "AMQP", 0, major 0, minor 9,
#: revision 1. A server that does not like a header answers with its own and closes.
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8

#: Every frame ends with this octet (spec 4.2.3); anything else is a 501 FRAME_ERROR.
FRAME_END = 0xCE

#: type (1) + channel (2) + size (4) before the payload, frame-end (1) after it.
FRAME_HEADER_SIZE = 7
FRAME_OVERHEAD = 8

#: Spec 4.2.1: "frame-min-size" is 4096; no peer may negotiate a smaller frame_max.
FRAME_MIN_SIZE = 4096

#: RabbitMQ's default frame_max (131072) also serves as our limit before tune has
#: been negotiated: the spec only says frames up to FRAME_MIN_SIZE MUST be accepted.
#: RabbitMQ 3.10 is stricter there (probed): before tune it takes a payload of at
#: most FRAME_MIN_SIZE octets and drops the socket, without connection.close, on
#: a bigger start-ok; we accept large client-properties tables (compatibility.md).
DEFAULT_FRAME_MAX = 131072

#: RabbitMQ's default channel_max (2047 since 3.7.x) and heartbeat (60 s).
DEFAULT_CHANNEL_MAX = 2047
DEFAULT_HEARTBEAT = 60

#: Class ids (spec 1.2).
CLASS_CONNECTION = 10
CLASS_CHANNEL = 20
CLASS_EXCHANGE = 40
CLASS_QUEUE = 50
CLASS_BASIC = 60
CLASS_CONFIRM = 85
CLASS_TX = 90


class ReplyCode(IntEnum):
    """Reply codes carried by connection.close, channel.close and basic.return."""

    REPLY_SUCCESS = 200
    CONTENT_TOO_LARGE = 311
    NO_ROUTE = 312
    NO_CONSUMERS = 313
    CONNECTION_FORCED = 320
    INVALID_PATH = 402
    ACCESS_REFUSED = 403
    NOT_FOUND = 404
    RESOURCE_LOCKED = 405
    PRECONDITION_FAILED = 406
    FRAME_ERROR = 501
    SYNTAX_ERROR = 502
    COMMAND_INVALID = 503
    CHANNEL_ERROR = 504
    UNEXPECTED_FRAME = 505
    RESOURCE_ERROR = 506
    NOT_ALLOWED = 530
    NOT_IMPLEMENTED = 540
    INTERNAL_ERROR = 541


#: Hard errors (spec 1.4.2 constants table, "hard-error"): they close the connection.
HARD_ERRORS = frozenset(
    {320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541}
)
