"""tx.commit-ok waits for the fsync of the transaction's records (as RabbitMQ's does).

The in-process tests slow the journal's group commit down (`journal.delay`),
so that a commit-ok sent before the fsync would be caught every time: at
commit-ok the transaction's publishes and acks must already be in the
segment files, frames on the committing channel stay in order, other
channels are not held up. The crash test SIGKILLs a `warren serve`
subprocess right after pika received a commit-ok, under a concurrent
persistent load that keeps the journal busy, and checks every committed
publish and ack after the restart.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pika
from durability_helpers import PERSISTENT, Publisher, journal_bodies
from test_crash import start_broker

from broker.testing import BrokerThread
from protocol import methods as m
from protocol.constants import PROTOCOL_HEADER
from protocol.frames import (
    BodyFrame,
    FrameReader,
    HeaderFrame,
    MethodFrame,
    encode_content_frames,
    encode_method_frame,
)

#: The group commit waits this long before each batch (normally 0).
SLOW_COMMIT = 0.5


@contextmanager
def slow_broker(data_dir: Path) -> Iterator[BrokerThread]:
    thread = BrokerThread(data_dir=data_dir)
    thread.start()
    journal = thread.broker.vhost.journal

    def slow() -> None:
        journal.delay = SLOW_COMMIT

    thread.run_sync(slow)
    try:
        yield thread
    finally:
        thread.stop()


class Frames:
    """A raw AMQP client that records every frame it receives, in order."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=10)
        self.reader = FrameReader(0)
        self.frames: list[Any] = []
        self.sock.sendall(PROTOCOL_HEADER)
        self.expect(0, m.ConnectionStart)
        self.method(
            0,
            m.ConnectionStartOk(
                client_properties={"capabilities": {"consumer_cancel_notify": True}},
                mechanism="PLAIN",
                response=b"\x00guest\x00guest",
            ),
        )
        tune = self.expect(0, m.ConnectionTune)
        self.method(0, m.ConnectionTuneOk(channel_max=10, frame_max=tune.frame_max, heartbeat=0))
        self.method(0, m.ConnectionOpen(virtual_host="/"))
        self.expect(0, m.ConnectionOpenOk)

    def method(self, channel: int, method: Any) -> None:
        self.sock.sendall(encode_method_frame(channel, method))

    def publish_bytes(self, channel: int, routing_key: str, body: bytes) -> bytes:
        method = m.BasicPublish(exchange="", routing_key=routing_key)
        return encode_content_frames(channel, method, PERSISTENT, body, 131072)

    def methods(self, channel: int) -> list[Any]:
        return [
            f.method for f in self.frames if isinstance(f, MethodFrame) and f.channel == channel
        ]

    def expect(self, channel: int, kind: type, count: int = 1, timeout: float = 10.0) -> Any:
        """Read until `count` `kind` methods arrived on `channel`; return the last."""
        deadline = time.monotonic() + timeout
        while True:
            found = [x for x in self.methods(channel) if isinstance(x, kind)]
            if len(found) >= count:
                return found[-1]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind.__name__} on channel {channel}")
            self.sock.settimeout(remaining)
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("broker closed the connection")
            self.reader.feed(data)
            self.frames.extend(self.reader.read_frames())

    def close(self) -> None:
        self.sock.close()


def declare(url: str, *queues: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in queues:
        channel.queue_declare(queue, durable=True)
    connection.close()


def test_commit_ok_only_once_publishes_and_acks_are_on_disk(tmp_path: Path) -> None:
    with slow_broker(tmp_path) as thread:
        declare(thread.url, "tx")
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        channel.tx_select()
        persistent = pika.BasicProperties(delivery_mode=2)
        for round_ in range(3):
            for i in range(5):
                channel.basic_publish("", "tx", b"r%d-%d" % (round_, i), persistent)
            channel.tx_commit()
            # commit-ok came after the batch's delay and write: the records are in the file.
            on_disk = journal_bodies(tmp_path)["tx"]
            assert on_disk[-5:] == [b"r%d-%d" % (round_, i) for i in range(5)]
        # Acks in a transaction: journalled by the time commit-ok arrives.
        tags = [channel.basic_get("tx")[0].delivery_tag for _ in range(4)]
        channel.basic_ack(tags[1], multiple=True)  # r0-0, r0-1
        channel.basic_reject(tags[2], requeue=False)  # r0-2
        assert len(journal_bodies(tmp_path)["tx"]) == 15  # nothing settled before commit
        channel.tx_commit()
        assert journal_bodies(tmp_path)["tx"][:2] == [b"r0-3", b"r0-4"]
        # A transaction that journals nothing is answered at once.
        started = time.monotonic()
        channel.tx_commit()
        assert time.monotonic() - started < SLOW_COMMIT
        connection.close()


def test_frames_after_commit_ok_wait_for_it_other_channels_do_not(tmp_path: Path) -> None:
    with slow_broker(tmp_path) as thread:
        declare(thread.url, "tx", "work")
        client = Frames(thread.url)
        for number in (1, 2):
            client.method(number, m.ChannelOpen())
            client.expect(number, m.ChannelOpenOk)
        client.method(1, m.BasicConsume(queue="work", consumer_tag="c1", no_ack=True))
        client.expect(1, m.BasicConsumeOk)
        client.method(1, m.QueueDeclare(queue="gone"))
        client.expect(1, m.QueueDeclareOk)
        client.method(1, m.BasicConsume(queue="gone", consumer_tag="c2", no_ack=True))
        client.expect(1, m.BasicConsumeOk, count=2)
        client.method(1, m.TxSelect())
        client.expect(1, m.TxSelectOk)
        # One write: publish, commit, then more work on channel 1 pipelined
        # behind the commit; channel 2 declares a queue.
        burst = b"".join(
            (
                client.publish_bytes(1, "tx", b"committed"),
                encode_method_frame(1, m.TxCommit()),
                encode_method_frame(1, m.QueueDeclare(queue="tx", passive=True)),
                encode_method_frame(1, m.BasicGet(queue="tx", no_ack=False)),
                encode_method_frame(1, m.TxCommit()),
                encode_method_frame(2, m.QueueDeclare(queue="tx", passive=True)),
            )
        )
        client.sock.sendall(burst)
        client.expect(2, m.QueueDeclareOk)
        # Channel 2 was answered while channel 1 waits for its fsync; a message
        # for channel 1's consumer arrives meanwhile, and c2's queue is
        # deleted (a basic.cancel from the broker): both must wait too.
        assert not any(isinstance(x, m.TxCommitOk) for x in client.methods(1))
        other = pika.BlockingConnection(pika.URLParameters(thread.url))
        other_channel = other.channel()
        other_channel.basic_publish("", "work", b"for c1")
        other_channel.queue_delete("gone")
        other.close()
        client.expect(1, m.TxCommitOk, count=2)
        kinds = [type(x) for x in client.methods(1)]
        after_select = kinds[kinds.index(m.TxSelectOk) + 1 :]
        first_ok = after_select.index(m.TxCommitOk)
        assert first_ok == 0, after_select  # nothing on channel 1 overtook the commit-ok
        rest = after_select[1:]
        assert rest.index(m.QueueDeclareOk) < rest.index(m.BasicGetOk) < rest.index(m.TxCommitOk)
        assert m.BasicCancel in rest  # after the commit-ok, not before
        if m.BasicDeliver in rest:
            assert rest.index(m.BasicDeliver) > 0  # after the commit-ok, never before
        declare_ok = next(
            x for x in client.methods(1) if isinstance(x, m.QueueDeclareOk) and x.queue == "tx"
        )
        assert declare_ok.message_count == 1  # handled after the commit, which it follows
        bodies = [f.payload for f in client.frames if isinstance(f, BodyFrame) and f.channel == 1]
        assert b"committed" in bodies
        assert any(isinstance(f, HeaderFrame) for f in client.frames)
        client.close()


def test_sigkill_right_after_commit_ok_loses_no_committed_publish_or_ack(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "broker.log"
    process, url = start_broker(data_dir, log)
    declare(url, "tx", "load")
    committed: list[bytes] = []  # published in committed transactions, in order
    acked: set[bytes] = set()  # acknowledged in committed transactions
    counter = 0
    try:
        for round_ in range(3):
            stop = threading.Event()
            load = threading.Thread(target=_load, args=(url, stop), daemon=True)
            load.start()
            connection = pika.BlockingConnection(pika.URLParameters(url))
            channel = connection.channel()
            channel.tx_select()
            persistent = pika.BasicProperties(delivery_mode=2)
            for commit in range(10 + 5 * round_):
                batch = []
                for _ in range(20):
                    body = b"tx-%06d" % counter
                    counter += 1
                    channel.basic_publish("", "tx", body, persistent)
                    batch.append(body)
                got = []
                for _ in range(5):  # and settle a few older ones in the same transaction
                    method, _props, body = channel.basic_get("tx")
                    if method is None:
                        break
                    got.append((method.delivery_tag, body))
                if got:
                    channel.basic_ack(got[-1][0], multiple=True)
                channel.tx_commit()
                if commit == 9 + 5 * round_:
                    process.send_signal(signal.SIGKILL)  # the moment commit-ok arrived
                committed.extend(batch)
                acked.update(body for _tag, body in got)
            process.wait()
            stop.set()
            load.join(timeout=20)
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - the broker is gone
                pass
            process, url = start_broker(data_dir, log)
            found = _read(url, "tx")
            assert len(found) == len(set(found)), "a message came back twice"
            missing = [body for body in committed if body not in acked and body not in found]
            assert not missing, f"committed publishes lost in round {round_}: {missing[:5]}"
            back = [body for body in found if body in acked]
            assert not back, f"committed acks lost in round {round_}: {back[:5]}"
            assert found == [body for body in committed if body not in acked]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    assert "Traceback" not in log.read_text()


def _load(url: str, stop: threading.Event) -> None:
    """Confirmed persistent publishes, to keep the journal's fsyncs busy."""
    try:
        publisher = Publisher(url)
    except (OSError, EOFError):
        return
    try:
        while not stop.is_set():
            seq = publisher.publish_many("load", [b"x" * 4096] * 50, PERSISTENT)
            publisher.wait_confirms(seq, timeout=5)
    except (OSError, EOFError, TimeoutError):
        return
    finally:
        publisher.close()


def _read(url: str, queue: str) -> list[bytes]:
    """The bodies in `queue`, in order, without consuming them."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    out = []
    while True:
        method, _props, body = channel.basic_get(queue)
        if method is None:
            break
        out.append(body)
    connection.close()
    return out
