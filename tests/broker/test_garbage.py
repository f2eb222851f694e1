"""Bad input gets a reply code, never a crash: random and mangled frames,
after a real handshake, against one broker that must keep serving."""

from __future__ import annotations

import os
import random

import pytest
from broker_helpers import RawClient, connect

from broker.testing import BrokerThread
from protocol import methods as m
from protocol.frames import encode_content_frames, encode_method_frame

#: How many mangled conversations; raise it to search harder
#: (WARREN_GARBAGE_SEEDS=500 found nothing on the commit that added this).
SEEDS = int(os.environ.get("WARREN_GARBAGE_SEEDS", "40"))

# A valid conversation to mangle: declare, bind, publish, consume, ack, qos.
VALID = b"".join([
    encode_method_frame(1, m.ChannelOpen()),
    encode_method_frame(1, m.QueueDeclare(queue="g", auto_delete=True,
                                          arguments={"x-max-length": 3})),
    encode_method_frame(1, m.QueueBind(queue="g", exchange="amq.topic", routing_key="a.#")),
    encode_content_frames(1, m.BasicPublish(exchange="amq.topic", routing_key="a.b"),
                          b"\x00\x00", b"payload", 131072),
    encode_method_frame(1, m.BasicQos(prefetch_count=5)),
    encode_method_frame(1, m.BasicConsume(queue="g", consumer_tag="c")),
    encode_method_frame(1, m.BasicAck(delivery_tag=1)),
    encode_method_frame(1, m.BasicGet(queue="g")),
])


def _mangle(rng: random.Random) -> bytes:
    data = bytearray(VALID)
    kind = rng.randrange(4)
    if kind == 0:  # flip some bytes
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:  # cut and splice
        a, b = sorted(rng.sample(range(len(data)), 2))
        data = data[:a] + data[b:]
    elif kind == 2:  # pure noise
        data = bytearray(rng.randbytes(rng.randint(1, 300)))
    else:  # a valid prefix, then noise
        data = data[: rng.randrange(len(data))] + rng.randbytes(rng.randint(1, 50))
    return bytes(data)


@pytest.mark.parametrize("seed", range(SEEDS))
def test_mangled_frames_never_crash_the_broker(garbage_broker: BrokerThread, seed: int) -> None:
    rng = random.Random(seed)
    with RawClient(garbage_broker.url) as client:
        client.expect(m.ConnectionOpenOk)
        try:
            client.send(_mangle(rng))
            client.read_until(
                lambda f: getattr(f, "method", None) is not None
                and type(f.method) in (m.ConnectionClose, m.ChannelClose),
                timeout=0.3,
            )
        except (TimeoutError, EOFError, ConnectionError):
            pass  # some mangled input is still valid, or merely incomplete
    assert garbage_broker.broker.crashed_connections == 0


@pytest.fixture(scope="module")
def garbage_broker():
    thread = BrokerThread()
    thread.start()
    try:
        yield thread
        # After all that, it still serves.
        connection = connect(thread.url)
        connection.channel().queue_declare("", exclusive=True)
        connection.close()
        assert thread.broker.crashed_connections == 0
    finally:
        thread.stop()
