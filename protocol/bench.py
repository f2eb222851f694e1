"""Micro-benchmark of the codec's hot paths, side by side with pamqp.

Run with ``python -m protocol.bench`` (pamqp must be installed; it is a test
dependency, never imported by the codec itself). For 16-byte and 4 KiB bodies it
times, per message:

- decoding basic.publish + content header + body (the frames a publisher sends),
- encoding basic.deliver + content header + body (what the broker writes),
- decoding basic.ack,

with our codec and with pamqp on the very same bytes, in the same run.

What each row measures:

- ``codec``: `FrameReader.read_batch` (decode) or `encode_basic_deliver`
  (encode): the codec as the broker uses it, properties kept as raw bytes (the
  broker forwards them without decoding);
- ``read_frames``: the same decode through the named-tuple iterator;
- ``+props``: plus a full `BasicProperties.decode` / ``encode`` per message,
  the like-for-like comparison with pamqp, which always decodes and encodes
  properties;
- ``Connection``: `Connection.receive_data` (server role, open channel): the
  decode plus state checks and content assembly into one `Command`.

The stream is fed in 64 KiB chunks, as a socket read would hand it over, so
frames are cut at chunk boundaries. pamqp decodes a frame from the start of a
``bytes`` object, so its loop cuts each frame out of the stream first, as a
reader built on it must. Rounds of the two codecs are interleaved and the best
round is kept, which makes the ratio robust on a busy machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from . import methods as m
from .connection import Connection, Role, client_start_ok, server_start
from .constants import PROTOCOL_HEADER
from .frames import FrameReader, encode_basic_deliver, encode_content_frames, encode_method_frame
from .properties import BasicProperties

FRAME_MAX = 131072
#: What the I/O loops ask the socket for at a time.
RECEIVE_SIZE = 65536

Case = Callable[[], None]


def _properties() -> BasicProperties:
    # what pika sends for a persistent text message
    return BasicProperties(content_type="text/plain", delivery_mode=2)


def _chunks(data: bytes) -> list[bytes]:
    """The stream as a socket hands it over: RECEIVE_SIZE bytes at a time."""
    return [data[i : i + RECEIVE_SIZE] for i in range(0, len(data), RECEIVE_SIZE)]


def _publish_stream(body: bytes, n: int) -> bytes:
    method = m.BasicPublish(exchange="amq.direct", routing_key="bench.key")
    return encode_content_frames(1, method, _properties().encode(), body, FRAME_MAX) * n


def _ack_stream(n: int) -> bytes:
    return b"".join(encode_method_frame(1, m.BasicAck(delivery_tag=i + 1)) for i in range(n))


def _open_server() -> Connection:
    server = Connection(Role.SERVER)
    server.receive_data(PROTOCOL_HEADER)
    server.send(0, server_start())
    server.receive_data(encode_method_frame(0, client_start_ok("guest", "guest")))
    server.send(0, m.ConnectionTune(channel_max=2047, frame_max=FRAME_MAX, heartbeat=0))
    server.receive_data(
        encode_method_frame(0, m.ConnectionTuneOk(2047, FRAME_MAX, 0))
        + encode_method_frame(0, m.ConnectionOpen(virtual_host="/"))
    )
    server.send(0, m.ConnectionOpenOk())
    server.receive_data(encode_method_frame(1, m.ChannelOpen()))
    server.send(1, m.ChannelOpenOk())
    return server


def our_cases(body: bytes, n: int) -> dict[str, Case]:
    publish = _chunks(_publish_stream(body, n))
    acks = _chunks(_ack_stream(n))
    raw_props = _properties().encode()
    props = _properties()
    decode_props = BasicProperties.decode

    def batches(chunks: list[bytes]) -> None:
        reader = FrameReader(FRAME_MAX)
        for chunk in chunks:
            reader.feed(chunk)
            reader.read_batch()

    def frames(chunks: list[bytes]) -> None:
        reader = FrameReader(FRAME_MAX)
        for chunk in chunks:
            reader.feed(chunk)
            for _ in reader.read_frames():
                pass

    def decode_publish_props() -> None:
        reader = FrameReader(FRAME_MAX)
        for chunk in publish:
            reader.feed(chunk)
            for frame in reader.read_batch():
                if frame[0] == 2:
                    decode_props(frame[4])

    def decode_publish_connection() -> None:
        server = _open_server()
        for chunk in publish:
            server.receive_data(chunk)

    def decode_ack_connection() -> None:
        server = _open_server()
        for chunk in acks:
            server.receive_data(chunk)

    def encode_deliver() -> None:
        for i in range(n):
            encode_basic_deliver(1, "amq.ctag-bench", i + 1, False, "amq.direct", "bench.key",
                                 raw_props, body, FRAME_MAX)

    def encode_deliver_props() -> None:
        for i in range(n):
            encode_basic_deliver(1, "amq.ctag-bench", i + 1, False, "amq.direct", "bench.key",
                                 props.encode(), body, FRAME_MAX)

    return {
        "decode publish set: codec": lambda: batches(publish),
        "decode publish set: read_frames": lambda: frames(publish),
        "decode publish set: +props": decode_publish_props,
        "decode publish set: Connection": decode_publish_connection,
        "encode deliver set: codec": encode_deliver,
        "encode deliver set: +props": encode_deliver_props,
        "decode ack: codec": lambda: batches(acks),
        "decode ack: read_frames": lambda: frames(acks),
        "decode ack: Connection": decode_ack_connection,
    }


def pamqp_cases(body: bytes, n: int) -> dict[str, Case]:
    from pamqp import body as pamqp_body
    from pamqp import commands, frame, header

    publish = _chunks(_publish_stream(body, n))
    acks = _chunks(_ack_stream(n))

    def unmarshal_all(chunks: list[bytes]) -> None:
        unmarshal = frame.unmarshal
        rest = b""
        for chunk in chunks:
            data = rest + chunk if rest else chunk
            offset = 0
            end = len(data)
            while end - offset >= 7:
                size = int.from_bytes(data[offset + 3 : offset + 7], "big") + 8
                if offset + size > end:
                    break
                unmarshal(data[offset : offset + size])
                offset += size
            rest = data[offset:]

    properties = commands.Basic.Properties(content_type="text/plain", delivery_mode=2)

    def encode_deliver() -> None:
        marshal = frame.marshal
        for i in range(n):
            marshal(commands.Basic.Deliver(consumer_tag="amq.ctag-bench", delivery_tag=i + 1,
                                           redelivered=False, exchange="amq.direct",
                                           routing_key="bench.key"), 1)
            marshal(header.ContentHeader(0, len(body), properties), 1)
            marshal(pamqp_body.ContentBody(body), 1)

    return {
        "decode publish set": lambda: unmarshal_all(publish),
        "encode deliver set": encode_deliver,
        "decode ack": lambda: unmarshal_all(acks),
    }


def run(n: int, rounds: int) -> list[tuple[str, str, float, float | None]]:
    """(path, body label, ours us/msg, pamqp us/msg or None), best of interleaved rounds."""
    try:
        import pamqp  # noqa: F401
    except ImportError:  # pragma: no cover
        have_pamqp = False
    else:
        have_pamqp = True
    rows = []
    for label, body in (("16 B", b"x" * 16), ("4 KiB", b"x" * 4096)):
        ours = our_cases(body, n)
        theirs = pamqp_cases(body, n) if have_pamqp else {}
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, case in [*ours.items(), *(("pamqp " + k, v) for k, v in theirs.items())]:
                start = time.perf_counter()
                case()
                elapsed = (time.perf_counter() - start) / n * 1e6
                best[name] = min(best.get(name, elapsed), elapsed)
        for name in ours:
            rows.append((name, label, best[name], best.get("pamqp " + name.split(":")[0])))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"microseconds per message, best of {args.rounds} interleaved rounds of {args.n}")
    print(f"{'path':34} {'body':>6} {'warren':>8} {'pamqp':>8} {'speedup':>8}")
    for name, label, ours, theirs in run(args.n, args.rounds):
        if theirs is None:
            print(f"{name:34} {label:>6} {ours:8.2f}")
        else:
            print(f"{name:34} {label:>6} {ours:8.2f} {theirs:8.2f} {theirs / ours:7.1f}x")


if __name__ == "__main__":
    main()
