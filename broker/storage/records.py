"""Journal records: how one record is laid out, written and read back.

Every record is a fixed 20-byte header followed by its payload:

    offset size  field
    0      2     magic  b"WJ"  (lets recovery find the next record after damage)
    2      1     type   PUBLISH=1, ACK=2, DELIVER=3, QUEUE_DELETE=4
    3      1     flags  PUBLISH: bit 0 = delivered before (redelivered on recovery),
                        bit 1 = an expiry time follows the msg_id,
                        bit 2 = the vhost's name precedes the queue's,
                        bit 3 = held by a delayed-message exchange (below);
                        QUEUE_DELETE: bit 2 = the vhost's name precedes the queue's
    4      4     length of the payload (uint32, little-endian)
    8      4     crc32 (zlib) of bytes 2..8, 12..20 and the payload
    12     8     seq    record sequence number, +1 per record, across segments

The checksum covers everything but itself and the magic, so a flipped bit
anywhere (type, length, sequence or payload) is caught. The sequence numbers
let recovery say how many records a damaged stretch held: the gap between
the last good record before it and the first good one after.

Payloads:

- PUBLISH: msg_id (uint64), with flag bit 1 the expiry (int64, milliseconds
  since the epoch, wall clock: when the message's TTL runs out in its queue),
  with flag bit 2 the vhost, then queue, exchange, routing_key (each a uint8
  length and UTF-8 bytes, AMQP short strings), properties (uint32 length and
  the raw content-header property bytes), then the body to the end of the
  payload. Records written before expiries were journalled have bit 1 clear
  and read as before; a record without bit 2 is in the vhost `/` (so are all
  records written before vhosts existed, and `/` costs no bytes).
  With flag bit 3 (`FLAG_DELAYED`) the message is not in a queue but held
  by the `x-delayed-message` exchange named in the queue field, and the
  expiry (bit 1, always set with it) is when it is due (epoch milliseconds).
  An ACK of its msg_id means it left (released into queues, or dropped with
  its exchange); QUEUE_DELETE records never apply to it.
- ACK, DELIVER: msg_ids (uint64 each), as many as fit in the length.
- QUEUE_DELETE: with flag bit 2 the vhost (a short string), then the queue
  name (UTF-8, to the end): every message of that queue journalled before this
  record is gone. Without bit 2, the queue is in `/`.
- DEDUP: a deduplication cache entry of a durable exchange or queue
  (broker.core.features.deduplication): the owner's kind (uint8: 0 exchange,
  1 queue), vhost and name (short strings), the expiry (int64, wall-clock
  milliseconds, -1 for none), then the key (the header value as an encoded
  field table) to the end. With flag bit 3 (DEDUP_DROP) there is no expiry
  and no key: the owner was deleted, its entries journalled before are gone.
  A QUEUE_DELETE also drops the queue's entries.

`msg_id` is unique per (message, queue) pair: a message routed to two durable
queues is two PUBLISH records. Compaction may copy a PUBLISH record to a newer
segment under the same msg_id; recovery keeps one.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from protocol.errors import AMQPError
from protocol.properties import priority_of

__all__ = [
    "ACK",
    "DEDUP",
    "DEDUP_KINDS",
    "DELIVER",
    "Dedup",
    "FLAG_DEDUP_DROP",
    "FLAG_DELAYED",
    "decode_dedup",
    "encode_dedup",
    "FLAG_DELIVERED",
    "FLAG_EXPIRES",
    "FLAG_VHOST",
    "DEFAULT_VHOST",
    "HEADER",
    "MAGIC",
    "MAX_PAYLOAD",
    "PUBLISH",
    "QUEUE_DELETE",
    "Damage",
    "Publish",
    "Record",
    "ScanResult",
    "decode_publish",
    "encode_ids",
    "encode_publish",
    "encode_queue_delete",
    "decode_queue_delete",
    "queue_delete_flags",
    "encode_record",
    "publish_flags",
    "publish_summary",
    "scan",
]

MAGIC = b"WJ"
PUBLISH = 1
ACK = 2
DELIVER = 3
QUEUE_DELETE = 4
DEDUP = 5
_TYPES = frozenset((PUBLISH, ACK, DELIVER, QUEUE_DELETE, DEDUP))

FLAG_DELIVERED = 0x01
#: PUBLISH: an int64 expiry (epoch milliseconds) follows the msg_id. A new
#: flag rather than a new layout, so journals written before it still read.
FLAG_EXPIRES = 0x02
#: PUBLISH, QUEUE_DELETE: the vhost's name (a short string) precedes the queue's.
FLAG_VHOST = 0x04
#: DEDUP: the owner is gone (no expiry, no key follow).
FLAG_DEDUP_DROP = 0x08
#: DEDUP owner kinds.
DEDUP_KINDS = ("exchange", "queue")
#: PUBLISH: held by the delayed exchange named in the queue field until the
#: expiry field's time (broker.core.delayed). Journals without it read as before.
FLAG_DELAYED = 0x08
#: The vhost a record without FLAG_VHOST belongs to.
DEFAULT_VHOST = "/"

HEADER = struct.Struct("<2sBBIIQ")
_CRC_A = slice(2, 8)  # type, flags, length
_CRC_B = slice(12, 20)  # seq
#: RabbitMQ's largest message is 512 MiB (its hard cap); a length above this is damage.
MAX_PAYLOAD = 512 * 1024 * 1024 + 4096

_PUBLISH_HEAD = struct.Struct("<Q")
_EXPIRES = struct.Struct("<q")
_U32 = struct.Struct("<I")


def encode_record(type_: int, seq: int, payload: bytes, flags: int = 0) -> bytes:
    """One whole record: header and payload."""
    head = HEADER.pack(MAGIC, type_, flags, len(payload), 0, seq)
    crc = zlib.crc32(payload, zlib.crc32(head[_CRC_B], zlib.crc32(head[_CRC_A])))
    return head[:8] + _U32.pack(crc) + head[12:] + payload


def _short(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"name longer than 255 bytes: {text[:40]!r}...")
    return bytes((len(raw),)) + raw


def encode_publish(
    msg_id: int,
    queue: str,
    exchange: str,
    routing_key: str,
    properties: bytes,
    body: bytes,
    expires: int | None = None,
    vhost: str = DEFAULT_VHOST,
) -> bytes:
    """The payload of a PUBLISH record.

    `expires` (epoch milliseconds) is written only when given, the vhost only
    when it is not `/`; the record must then carry `FLAG_EXPIRES` /
    `FLAG_VHOST` (`publish_flags` says which flags).
    """
    return b"".join(
        (
            _PUBLISH_HEAD.pack(msg_id),
            b"" if expires is None else _EXPIRES.pack(expires),
            b"" if vhost == DEFAULT_VHOST else _short(vhost),
            _short(queue),
            _short(exchange),
            _short(routing_key),
            _U32.pack(len(properties)),
            properties,
            body,
        )
    )


def publish_flags(
    *, delivered: bool = False, expires: int | None = None, vhost: str = DEFAULT_VHOST
) -> int:
    """The header flags of a PUBLISH record."""
    return (
        (FLAG_DELIVERED if delivered else 0)
        | (FLAG_EXPIRES if expires is not None else 0)
        | (FLAG_VHOST if vhost != DEFAULT_VHOST else 0)
    )


@dataclass(slots=True)
class Publish:
    """A decoded PUBLISH payload (`expires`: epoch milliseconds, or None)."""

    msg_id: int
    queue: str
    exchange: str
    routing_key: str
    properties: bytes
    body: bytes
    expires: int | None = None
    vhost: str = DEFAULT_VHOST


def decode_publish(payload: bytes | memoryview, flags: int = 0) -> Publish:
    """Decode a PUBLISH payload whose record had `flags` (ValueError if malformed)."""
    try:
        (msg_id,) = _PUBLISH_HEAD.unpack_from(payload, 0)
        off = 8
        expires = None
        if flags & FLAG_EXPIRES:
            (expires,) = _EXPIRES.unpack_from(payload, off)
            off += 8
        vhost = DEFAULT_VHOST
        if flags & FLAG_VHOST:
            n = payload[off]
            vhost = bytes(payload[off + 1 : off + 1 + n]).decode("utf-8")
            off += 1 + n
        names = []
        for _ in range(3):
            n = payload[off]
            names.append(bytes(payload[off + 1 : off + 1 + n]).decode("utf-8"))
            off += 1 + n
        (plen,) = _U32.unpack_from(payload, off)
        off += 4
        if off + plen > len(payload):
            raise ValueError("properties run past the record")
        properties = bytes(payload[off : off + plen])
        body = bytes(payload[off + plen :])
    except (IndexError, struct.error, UnicodeDecodeError) as error:
        raise ValueError(f"malformed publish record: {error}") from None
    return Publish(msg_id, names[0], names[1], names[2], properties, body, expires, vhost)


def publish_summary(
    payload: bytes | memoryview, flags: int = 0
) -> tuple[int, str, str, int, int | None]:
    """(msg_id, vhost, queue, body size, expires) of a PUBLISH payload, without copying the body.

    Recovery needs only these; the message itself is read back on delivery.
    """
    try:
        (msg_id,) = _PUBLISH_HEAD.unpack_from(payload, 0)
        off = 8
        expires = None
        if flags & FLAG_EXPIRES:
            (expires,) = _EXPIRES.unpack_from(payload, 8)
            off = 16
        vhost = DEFAULT_VHOST
        if flags & FLAG_VHOST:
            n = payload[off]
            vhost = bytes(payload[off + 1 : off + 1 + n]).decode("utf-8")
            off += 1 + n
        n = payload[off]
        queue = bytes(payload[off + 1 : off + 1 + n]).decode("utf-8")
        off += 1 + n
        for _ in range(2):
            off += 1 + payload[off]
        (plen,) = _U32.unpack_from(payload, off)
        off += 4 + plen
    except (IndexError, struct.error, UnicodeDecodeError) as error:
        raise ValueError(f"malformed publish record: {error}") from None
    if off > len(payload):
        raise ValueError("properties run past the record")
    return msg_id, vhost, queue, len(payload) - off, expires


def publish_priority(payload: bytes | memoryview, flags: int = 0) -> int | None:
    """The `priority` property of a PUBLISH payload (None: not set), for
    recovering a priority queue without reading its messages back."""
    try:
        off = 16 if flags & FLAG_EXPIRES else 8
        if flags & FLAG_VHOST:
            off += 1 + payload[off]
        for _ in range(3):  # queue, exchange, routing key
            off += 1 + payload[off]
        (plen,) = _U32.unpack_from(payload, off)
        off += 4
        return priority_of(payload[off : off + plen])
    except (IndexError, struct.error, AMQPError) as error:
        raise ValueError(f"malformed publish record: {error}") from None


def encode_ids(ids: Iterable[int]) -> bytes:
    """The payload of an ACK or DELIVER record."""
    ids = list(ids)
    return struct.pack(f"<{len(ids)}Q", *ids)


def decode_ids(payload: bytes | memoryview) -> tuple[int, ...]:
    if len(payload) % 8:
        raise ValueError("id list length is not a multiple of 8")
    return struct.unpack(f"<{len(payload) // 8}Q", payload)


def encode_queue_delete(queue: str, vhost: str = DEFAULT_VHOST) -> bytes:
    """The payload of a QUEUE_DELETE record (its flags: `queue_delete_flags`)."""
    name = queue.encode("utf-8")
    return name if vhost == DEFAULT_VHOST else _short(vhost) + name


def queue_delete_flags(vhost: str = DEFAULT_VHOST) -> int:
    return 0 if vhost == DEFAULT_VHOST else FLAG_VHOST


def decode_queue_delete(payload: bytes | memoryview, flags: int = 0) -> tuple[str, str]:
    """(vhost, queue) of a QUEUE_DELETE payload (ValueError if malformed)."""
    raw = bytes(payload)
    try:
        if flags & FLAG_VHOST:
            n = raw[0]
            if 1 + n > len(raw):
                raise ValueError("vhost name runs past the record")
            return raw[1 : 1 + n].decode("utf-8"), raw[1 + n :].decode("utf-8")
        return DEFAULT_VHOST, raw.decode("utf-8")
    except (IndexError, UnicodeDecodeError) as error:
        raise ValueError(f"malformed queue-delete record: {error}") from None


def encode_dedup(kind: str, vhost: str, name: str, key: bytes | None = None,
                 expires: int | None = None) -> bytes:
    """The payload of a DEDUP record (without `key`: a DEDUP_DROP one)."""
    head = bytes((DEDUP_KINDS.index(kind),)) + _short(vhost) + _short(name)
    if key is None:
        return head
    return head + _EXPIRES.pack(-1 if expires is None else expires) + key


@dataclass(slots=True)
class Dedup:
    """A decoded DEDUP record."""

    kind: str
    vhost: str
    name: str
    key: bytes | None
    expires: int | None


def decode_dedup(payload: bytes | memoryview, flags: int = 0) -> Dedup:
    """A DEDUP payload (ValueError if malformed)."""
    raw = bytes(payload)
    try:
        kind = DEDUP_KINDS[raw[0]]
        n = raw[1]
        vhost = raw[2 : 2 + n].decode("utf-8")
        at = 2 + n
        m = raw[at]
        name = raw[at + 1 : at + 1 + m].decode("utf-8")
        at += 1 + m
        if at > len(raw):
            raise ValueError("name runs past the record")
        if flags & FLAG_DEDUP_DROP:
            return Dedup(kind, vhost, name, None, None)
        (expires,) = _EXPIRES.unpack_from(raw, at)
        return Dedup(kind, vhost, name, raw[at + _EXPIRES.size :], None if expires < 0 else expires)
    except (IndexError, UnicodeDecodeError, struct.error) as error:
        raise ValueError(f"malformed dedup record: {error}") from None


@dataclass(slots=True)
class Record:
    """One valid record found by `scan`: where it is and what it holds."""

    offset: int
    type: int
    flags: int
    seq: int
    payload: memoryview

    @property
    def size(self) -> int:
        return HEADER.size + len(self.payload)


@dataclass(slots=True)
class Damage:
    """A stretch of bytes that holds no valid record.

    `tail` is True when no valid record follows it in the data (a torn
    write at the end, typically a crash mid-append).
    """

    start: int
    end: int
    tail: bool


@dataclass(slots=True)
class ScanResult:
    records: list[Record] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)

    @property
    def valid_end(self) -> int:
        """Where the last valid record ends (where a torn tail is cut)."""
        return self.records[-1].offset + self.records[-1].size if self.records else 0


def _record_at(data: memoryview, offset: int) -> Record | None:
    """The valid record starting at `offset`, or None."""
    end = len(data)
    if offset + HEADER.size > end or data[offset : offset + 2] != MAGIC:
        return None
    _magic, type_, flags, length, crc, seq = HEADER.unpack_from(data, offset)
    if type_ not in _TYPES or length > MAX_PAYLOAD or offset + HEADER.size + length > end:
        return None
    payload = data[offset + HEADER.size : offset + HEADER.size + length]
    head = data[offset : offset + HEADER.size]
    if zlib.crc32(payload, zlib.crc32(head[_CRC_B], zlib.crc32(head[_CRC_A]))) != crc:
        return None
    return Record(offset, type_, flags, seq, payload)


def scan(data: bytes | memoryview) -> ScanResult:
    """Every valid record in `data`, in order, and the damaged stretches between.

    Never raises and never loops: after damage it searches forward for the
    next magic whose header and checksum are valid, so the work is linear in
    the size of the data (times the rare false magic).
    """
    view = memoryview(data)
    result = ScanResult()
    offset = 0
    end = len(view)
    raw = bytes(view) if not isinstance(data, bytes) else data
    while offset < end:
        record = _record_at(view, offset)
        if record is not None:
            result.records.append(record)
            offset += record.size
            continue
        # Damage: find the next valid record, if any.
        search = offset + 1
        found = None
        while True:
            search = raw.find(MAGIC, search)
            if search < 0:
                break
            found = _record_at(view, search)
            if found is not None:
                break
            search += 1
        if found is None:
            result.damage.append(Damage(offset, end, tail=True))
            break
        result.damage.append(Damage(offset, found.offset, tail=False))
        offset = found.offset
    return result
