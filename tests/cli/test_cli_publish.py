"""`warren publish` and `warren consume` against a real broker (Warren, or RabbitMQ
when WARREN_REFERENCE_URL is set)."""

from __future__ import annotations

import base64
import json
import os
import pty
import signal
import subprocess
import time

import pytest
import trio
from cli_helpers import WARREN

from broker.client import open_connection


async def _declare(url: str, queue: str) -> None:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        await ch.queue_declare(queue, auto_delete=False)


async def _delete(url: str, queue: str) -> None:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        await ch.queue_delete(queue)


async def _count(url: str, queue: str) -> int:
    async with open_connection(url) as conn, conn.open_channel() as ch:
        return (await ch.queue_declare(queue, passive=True)).message_count


@pytest.fixture
def queue(warren_url: str, unique):
    name = unique("q")
    trio.run(_declare, warren_url, name)
    yield name
    trio.run(_delete, warren_url, name)


def message_count_becomes(url: str, queue: str, expected: int) -> bool:
    # RabbitMQ counts an ack a moment after it arrives: poll for a few seconds.
    deadline = time.monotonic() + 5
    while trio.run(_count, url, queue) != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def consume_json(warren, url: str, queue: str, *extra: str) -> list[dict]:
    result = warren("consume", "--url", url, queue, "--json", *extra)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_publish_from_stdin_then_consume_as_json(warren, warren_url, queue) -> None:
    result = warren(
        "publish", "--url", warren_url, "", queue,
        "--header", "urgent=true", "--header", "n=5", "--header", 'label="5"',
        "--persistent", "--content-type", "application/json",
        "--property", "timestamp=1700000000", "--property", "app-id=billing",
        "--property", "correlation_id=c-1", "--property", "priority=3",
        input='{"id": 42}\n',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"published 1 message to the default exchange with routing key '{queue}': 1 confirmed\n"
    )
    [message] = consume_json(warren, warren_url, queue, "--count", "1")
    assert message == {
        "exchange": "",
        "routing_key": queue,
        "redelivered": False,
        "delivery_tag": 1,
        "properties": {
            "content_type": "application/json",
            "headers": {"urgent": True, "n": 5, "label": "5"},
            "delivery_mode": 2,
            "priority": 3,
            "correlation_id": "c-1",
            "timestamp": 1700000000,
            "app_id": "billing",
        },
        "body": '{"id": 42}\n',
        "body_encoding": "utf-8",
    }
    assert message_count_becomes(warren_url, queue, 0)  # acked


def test_consume_prints_readably(warren, warren_url, queue) -> None:
    warren("publish", "--url", warren_url, "", queue, "--body", "hello\nworld",
           "--header", "region=eu", "--property", "timestamp=1700000000")
    result = warren("consume", "--url", warren_url, queue, "--count", "1")
    assert result.returncode == 0
    assert result.stdout == (
        "--- message 1\n"
        'exchange:      "" (the default exchange)\n'
        f"routing_key:   {queue}\n"
        "redelivered:   false\n"
        "headers:       region=eu\n"
        "timestamp:     1700000000 (2023-11-14T22:13:20Z)\n"
        "body:          11 bytes\n"
        "hello\n"
        "world\n"
    )


def test_a_binary_body(warren, warren_url, queue) -> None:
    body = bytes(range(256))
    assert warren("publish", "--url", warren_url, "", queue, input=body).returncode == 0
    [message] = consume_json(warren, warren_url, queue, "--count", "1", "--requeue")
    assert message["body_encoding"] == "base64"
    assert base64.b64decode(message["body"]) == body
    text = warren("consume", "--url", warren_url, queue, "--count", "1")
    assert "body:          256 bytes, binary, base64:\n" in text.stdout
    assert base64.b64encode(body).decode() in text.stdout


def test_many_messages_lines_and_count(warren, warren_url, queue) -> None:
    result = warren("publish", "--url", warren_url, "", queue, "--lines", "--count", "2",
                    input="a\nb\nc\n")
    assert result.stdout == (
        f"published 6 messages to the default exchange with routing key '{queue}': "
        "6 confirmed\n"
    )
    bodies = [m["body"] for m in consume_json(warren, warren_url, queue, "--count", "6")]
    assert bodies == ["a", "b", "c", "a", "b", "c"]


@pytest.mark.parametrize("prefetch", ["1000", "2"])
def test_consume_count_takes_exactly_that_many(warren, warren_url, queue, prefetch) -> None:
    warren("publish", "--url", warren_url, "", queue, "--lines", input="".join(
        f"{i}\n" for i in range(10)))
    taken = consume_json(warren, warren_url, queue, "--count", "5", "--prefetch", prefetch)
    assert [m["body"] for m in taken] == ["0", "1", "2", "3", "4"]
    # Nothing beyond the fifth was delivered: the rest were never redelivered.
    rest = consume_json(warren, warren_url, queue, "--count", "5")
    assert [m["body"] for m in rest] == ["5", "6", "7", "8", "9"]
    assert not any(m["redelivered"] for m in rest)


def test_requeue_looks_without_taking(warren, warren_url, queue) -> None:
    warren("publish", "--url", warren_url, "", queue, "--lines", input="x\ny\nz\n")
    looked = consume_json(warren, warren_url, queue, "--count", "2", "--requeue")
    assert [m["body"] for m in looked] == ["x", "y"]
    assert message_count_becomes(warren_url, queue, 3)
    everything = consume_json(warren, warren_url, queue, "--count", "3")
    assert sorted(m["body"] for m in everything) == ["x", "y", "z"]


def test_consume_timeout_when_the_queue_runs_dry(warren, warren_url, queue) -> None:
    warren("publish", "--url", warren_url, "", queue, "--body", "only")
    result = warren("consume", "--url", warren_url, queue, "--count", "2", "--timeout", "0.5",
                    "--json")
    assert result.returncode == 1
    assert [json.loads(line)["body"] for line in result.stdout.splitlines()] == ["only"]
    assert result.stderr == "warren consume: 1 of 2 messages within 0.5s\n"


def test_unroutable_is_reported(warren, warren_url, unique) -> None:
    nowhere = unique("nowhere")
    result = warren("publish", "--url", warren_url, "", nowhere, "--body", "x", "--count", "2")
    assert result.returncode == 1
    assert result.stdout == (
        f"published 2 messages to the default exchange with routing key '{nowhere}': "
        "0 confirmed, 2 unroutable (312 NO_ROUTE: no queue is bound for it; the broker "
        "returned it)\n"
    )
    dropped = warren("publish", "--url", warren_url, "", nowhere, "--body", "x",
                     "--no-mandatory")
    assert dropped.returncode == 0


def test_broker_errors_are_one_line(warren, warren_url, unique) -> None:
    exchange = unique("x")
    result = warren("publish", "--url", warren_url, exchange, "k", "--body", "x")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"warren publish: NOT_FOUND - no exchange '{exchange}' in vhost '/' (reply code 404)\n"
    )
    missing = unique("missing")
    result = warren("consume", "--url", warren_url, missing, "--count", "1")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"warren consume: NOT_FOUND - no queue '{missing}' in vhost '/' (reply code 404)\n"
    )


def test_bad_arguments_are_one_line(warren, warren_url) -> None:
    bad = warren("publish", "--url", warren_url, "", "q", "--body", "x",
                 "--property", "priority=high")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == (
        "warren publish: error: argument --property: priority must be an integer, got 'high'"
    )
    unknown = warren("publish", "--url", warren_url, "", "q", "--body", "x",
                     "--property", "colour=red")
    assert "unknown property 'colour'" in unknown.stderr
    long = "k" * 256
    for args, message in [
        (["", long], "argument ROUTING_KEY: an AMQP name or routing key is at most 255 bytes, "
                     "got 256"),
        (["", "q", "--property", f"message_id={long}"],
         "argument --property: message_id is at most 255 bytes, got 256"),
        (["", "q", "--property", "priority=256"],
         "argument --property: priority must be from 0 to 255, got 256"),
        (["", "q", "--header", f"{long}=1"],
         "argument --header: a header name is at most 255 bytes, got 256"),
        (["", "q", "--header", "n=99999999999999999999999"],
         "argument --header: n: 99999999999999999999999 does not fit an AMQP field value"),
        (["", "q", "--header", f"n={2**64}"],
         f"argument --header: n: {2**64} does not fit an AMQP field value"),
        (["", "q", "--header", f"n={-(2**63) - 1}"],
         f"argument --header: n: {-(2**63) - 1} does not fit an AMQP field value"),
    ]:
        result = warren("publish", "--url", warren_url, *args, "--body", "x")
        assert result.returncode == 2
        assert result.stderr.splitlines()[-1] == f"warren publish: error: {message}"
    timeout = warren("consume", "--url", warren_url, "q", "--timeout", "nan")
    assert timeout.stderr == "warren consume: --timeout must be more than 0 seconds\n"
    requeue = warren("consume", "--url", warren_url, "q", "--requeue")
    assert (requeue.returncode, requeue.stderr) == (
        2, "warren consume: --requeue needs --count N with N at most 65535\n"
    )


def run_on_a_terminal(args: list[str], stdin_data: bytes | None) -> tuple[int, str, str]:
    """Run warren with stderr (and stdin, when no data is given) on a terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(WARREN), *args],
        stdin=slave if stdin_data is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    if stdin_data is not None:
        proc.stdin.write(stdin_data)
        proc.stdin.close()
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=30), stdout, b"".join(chunks).decode()


def test_publish_progress_on_a_terminal(warren_url, queue) -> None:
    code, stdout, stderr = run_on_a_terminal(
        ["publish", "--url", warren_url, "", queue, "--lines"],
        b"".join(b"%d\n" % i for i in range(2000)),
    )
    assert code == 0
    assert "\r\x1b[Kpublishing: 1/2000 (0%)" in stderr
    assert "\r\x1b[Kpublishing: 2000/2000 (100%)" in stderr
    assert "Traceback" not in stderr
    assert stdout.endswith("2000 confirmed\n")


def test_publish_without_a_body_on_a_terminal_says_so(warren_url, queue) -> None:
    code, stdout, stderr = run_on_a_terminal(["publish", "--url", warren_url, "", queue], None)
    assert code == 2
    assert stderr.strip() == "warren publish: no body: give --body TEXT, or pipe the body on stdin"


def test_ctrl_c_ends_consume_quietly(warren, warren_url, queue) -> None:
    warren("publish", "--url", warren_url, "", queue, "--body", "first")
    proc = subprocess.Popen(
        [str(WARREN), "consume", "--url", warren_url, queue, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    line = proc.stdout.readline()  # the first message arrived: the consumer is running
    assert json.loads(line)["body"] == "first"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert stderr.strip() == b""


def test_header_integers_take_the_configuration_language_range() -> None:
    """`--header` reads integers as `warren config` does: from -2^63 (signed
    64-bit) up to 2^64 - 1 (unsigned 64-bit), and no further."""
    import argparse

    from broker.commands._common import header_argument
    from routing.config.options import FIELD_INT_MAX, FIELD_INT_MIN

    assert header_argument(f"n={FIELD_INT_MAX}") == ("n", 2**64 - 1)
    assert header_argument(f"n={FIELD_INT_MIN}") == ("n", -(2**63))
    for value in (FIELD_INT_MAX + 1, FIELD_INT_MIN - 1):
        with pytest.raises(argparse.ArgumentTypeError):
            header_argument(f"n={value}")
