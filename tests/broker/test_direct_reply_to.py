"""Direct reply-to inside Warren: the broker-wide table of reply consumers
never keeps a channel that is gone, and replies take the requester's frame
size. The behaviour as clients see it is in conformance/tests/test_direct_reply_to.py."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pika

from broker.core.direct_reply_to import REPLY_TO, DirectReplyTo, reply_keys
from broker.testing import BrokerThread

ROUTE = "amq.rabbitmq.reply-to."


def registered(warren: BrokerThread) -> int:
    assert warren.broker is not None
    return warren.run_sync(lambda: len(warren.broker.vhosts.replies))


def wait(connection, until, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.02)
    assert until(), "timed out"


def test_reply_consumers_are_forgotten_with_their_channel(fresh_warren: BrokerThread) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(fresh_warren.url))
    cancelled, closed, failed, kept = (connection.channel() for _ in range(4))
    tag = cancelled.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    for channel in (closed, failed, kept):
        channel.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    assert registered(fresh_warren) == 4
    cancelled.basic_cancel(tag)
    closed.close()
    try:  # a channel error closes the channel: its reply consumer goes
        failed.queue_declare("no-such-queue", passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        pass
    assert registered(fresh_warren) == 1
    connection.close()
    deadline = time.monotonic() + 3
    while registered(fresh_warren) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert registered(fresh_warren) == 0


def test_large_reply_is_split_to_the_requesters_frame_max(fresh_warren: BrokerThread) -> None:
    params = pika.URLParameters(fresh_warren.url)
    params.frame_max = 4096
    requester = pika.BlockingConnection(params)
    channel = requester.channel()
    got: list[bytes] = []
    channel.basic_consume(REPLY_TO, lambda ch, m, p, body: got.append(body), auto_ack=True)
    channel.queue_declare("requests", exclusive=True)
    channel.basic_publish("", "requests", b"?", pika.BasicProperties(reply_to=REPLY_TO))
    _, properties, _ = channel.basic_get("requests", auto_ack=True)
    responder = pika.BlockingConnection(pika.URLParameters(fresh_warren.url))
    body = bytes(range(256)) * 200  # 51 200 bytes: thirteen body frames of 4 KiB
    responder.channel().basic_publish("", properties.reply_to, body)
    wait(requester, lambda: bool(got))
    assert got == [body]
    responder.close()
    requester.close()


def test_names_are_opaque_and_never_reused() -> None:
    table = DirectReplyTo()

    class Sink:
        def __init__(self) -> None:
            self.got: list[object] = []

        def deliver_reply(self, message: object) -> None:
            self.got.append(message)

    first, second = Sink(), Sink()
    name = table.register(first)
    other = table.register(second)
    assert name.startswith(ROUTE) and other.startswith(ROUTE) and name != other
    assert table.exists(name) and table.exists(REPLY_TO) and not table.exists(ROUTE + "x")
    table.deliver([other, name, name, "not-a-reply"], "message")  # type: ignore[arg-type]
    assert first.got == ["message"] and second.got == ["message"]
    table.unregister(name)
    assert not table.exists(name)
    table.deliver([name], "late")  # type: ignore[arg-type]
    assert first.got == ["message"]


def test_reply_keys_come_from_the_routing_key_cc_and_bcc() -> None:
    name = ROUTE + "abc"
    assert reply_keys(name, None) == [name]
    assert reply_keys("q", None) == []
    assert reply_keys("q", {"CC": [name, "other"], "BCC": [name.encode()]}) == [name, name]
    assert reply_keys("q", {"CC": name}) == []  # not an array: the router refused it


def test_the_rpc_example_in_docs_broker_md_works(fresh_warren: BrokerThread) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "broker.md").read_text()
    section = doc[doc.index("\n## Direct reply-to\n"):doc.index("\n## Consumer acknowledgement")]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    code = code.replace("amqp://guest:guest@127.0.0.1:5672/", fresh_warren.url)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "b'42'\n"
