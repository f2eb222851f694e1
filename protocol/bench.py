"""Micro-benchmark of the codec's hot paths, side by side with pamqp.

Run with ``python -m protocol.bench`` (pamqp must be installed; it is a test
dependency, never imported by the codec itself). For 16-byte and 4 KiB bodies it
times, per message:

- decoding basic.publish + content header + body (the frames a publisher sends),
- encoding basic.deliver + content header + body (what the broker writes),
- decoding basic.ack,

with our `FrameReader` and writers and with pamqp's ``frame.unmarshal`` /
``frame.marshal`` on the very same bytes. Properties are those pika sends for a
persistent text message. Our broker forwards properties as raw bytes, so the
main rows do not decode them; the ``+props`` rows add a full
`BasicProperties.decode` / ``encode`` for the fair comparison with pamqp, which
always decodes and encodes them. The ``Connection`` row adds the state machine's
content assembly into one `Command`.

Each number is the best of several rounds of N messages, in microseconds per
message.
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


def _best(fn: Callable[[], None], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def _properties() -> BasicProperties:
    return BasicProperties(content_type="text/plain", delivery_mode=2)


def _publish_stream(body: bytes, n: int) -> bytes:
    raw = _properties().encode()
    method = m.BasicPublish(exchange="amq.direct", routing_key="bench.key")
    return encode_content_frames(1, method, raw, body, FRAME_MAX) * n


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


def _chunks(data: bytes) -> list[bytes]:
    """The stream as a socket would hand it over: RECEIVE_SIZE bytes at a time,
    cutting frames anywhere."""
    return [data[i : i + RECEIVE_SIZE] for i in range(0, len(data), RECEIVE_SIZE)]


def bench_ours(body: bytes, n: int, rounds: int) -> dict[str, float]:
    publish = _chunks(_publish_stream(body, n))
    acks = _chunks(
        b"".join(encode_method_frame(1, m.BasicAck(delivery_tag=i + 1)) for i in range(n))
    )
    raw_props = _properties().encode()
    decode = BasicProperties.decode

    def decode_publish() -> None:
        reader = FrameReader(FRAME_MAX)
        for chunk in publish:
            reader.feed(chunk)
            for _ in reader.read_frames():
                pass

    def decode_publish_raw() -> None:
        reader = FrameReader(FRAME_MAX)
        for chunk in publish:
            reader.feed(chunk)
            for _ in reader.read_batch():
                pass

    def decode_publish_props() -> None:
        reader = FrameReader(FRAME_MAX)
        for chunk in publish:
            reader.feed(chunk)
            for frame in reader.read_frames():
                if frame[0] and len(frame) == 4:
                    decode(frame[3])

    def decode_publish_connection() -> None:
        server = _open_server()
        for chunk in publish:
            server.receive_data(chunk)

    def encode_deliver() -> None:
        for i in range(n):
            encode_basic_deliver(
                1, "amq.ctag-bench", i + 1, False, "amq.direct", "bench.key",
                raw_props, body, FRAME_MAX,
            )

    props_obj = _properties()

    def encode_deliver_props() -> None:
        for i in range(n):
            encode_basic_deliver(
                1, "amq.ctag-bench", i + 1, False, "amq.direct", "bench.key",
                props_obj.encode(), body, FRAME_MAX,
            )

    def decode_ack() -> None:
        reader = FrameReader(FRAME_MAX)
        for chunk in acks:
            reader.feed(chunk)
            for _ in reader.read_frames():
                pass

    return {
        "decode publish": _best(decode_publish, n, rounds),
        "decode publish (read_batch)": _best(decode_publish_raw, n, rounds),
        "decode publish +props": _best(decode_publish_props, n, rounds),
        "decode publish via Connection": _best(decode_publish_connection, n, rounds),
        "encode deliver": _best(encode_deliver, n, rounds),
        "encode deliver +props": _best(encode_deliver_props, n, rounds),
        "decode ack": _best(decode_ack, n, rounds),
    }


def bench_pamqp(body: bytes, n: int, rounds: int) -> dict[str, float]:
    from pamqp import body as pbody
    from pamqp import commands, frame, header

    publish = _publish_stream(body, n)
    acks = b"".join(encode_method_frame(1, m.BasicAck(delivery_tag=i + 1)) for i in range(n))

    # pamqp unmarshals a frame from the start of a bytes object, so a reader
    # built on it (aiormq) cuts each frame out of the stream first; we time that
    # cut too, with the cheapest offset arithmetic.
    def unmarshal_all(data: bytes) -> None:
        offset = 0
        end = len(data)
        unmarshal = frame.unmarshal
        while offset < end:
            size = int.from_bytes(data[offset + 3 : offset + 7], "big") + 8
            unmarshal(data[offset : offset + size])
            offset += size

    def decode_publish() -> None:
        unmarshal_all(publish)

    def decode_ack() -> None:
        unmarshal_all(acks)

    properties = commands.Basic.Properties(content_type="text/plain", delivery_mode=2)

    def encode_deliver() -> None:
        for i in range(n):
            frame.marshal(
                commands.Basic.Deliver(
                    consumer_tag="amq.ctag-bench", delivery_tag=i + 1, redelivered=False,
                    exchange="amq.direct", routing_key="bench.key",
                ),
                1,
            )
            frame.marshal(header.ContentHeader(0, len(body), properties), 1)
            frame.marshal(pbody.ContentBody(body), 1)

    return {
        "decode publish": _best(decode_publish, n, rounds),
        "encode deliver": _best(encode_deliver, n, rounds),
        "decode ack": _best(decode_ack, n, rounds),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        import pamqp  # noqa: F401
    except ImportError:  # pragma: no cover
        have_pamqp = False
    else:
        have_pamqp = True
    print(f"us per message, best of {args.rounds} rounds of {args.n}")
    print(f"{'path':34} {'body':>6} {'warren':>8} {'pamqp':>8} {'speedup':>8}")
    for label, body in (("16 B", b"x" * 16), ("4 KiB", b"x" * 4096)):
        ours = bench_ours(body, args.n, args.rounds)
        theirs = bench_pamqp(body, args.n, args.rounds) if have_pamqp else {}
        for path, value in ours.items():
            base = path.split(" (")[0].replace(" +props", "").replace(" via Connection", "")
            other = theirs.get(base)
            if other is None:
                print(f"{path:34} {label:>6} {value:8.2f}")
            else:
                print(f"{path:34} {label:>6} {value:8.2f} {other:8.2f} {other / value:7.1f}x")


if __name__ == "__main__":
    main()
