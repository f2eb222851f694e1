"""`warren publish` and `warren consume`: messages by hand, on any AMQP broker.

    warren publish [--url URL] EXCHANGE ROUTING_KEY [--body TEXT | --lines]
                   [--header KEY=VALUE]... [--persistent] [--property NAME=VALUE]...
                   [--count N] [--no-mandatory]
    warren consume [--url URL] QUEUE [--count N] [--timeout SECONDS] [--json]
                   [--prefetch N] [--requeue]

`publish` uses publisher confirms and, by default, the mandatory flag, so it
reports what the broker did with each message: confirmed, returned as
unroutable (312 NO_ROUTE), or nacked. Many messages (`--lines`, `--count`)
are published with up to 1,000 in flight.

`consume` prints each message's routing information, properties and body,
readably or as JSON lines (`--json`), and acks it once printed. With
`--count N` it takes exactly N messages: it holds back acks near the end, so
that the prefetch window never lets the broker send an N+1th message it
would then have to requeue. `--requeue` acks nothing: the messages go back
to the queue when the command ends (a way to look without taking).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import decimal
import json
import sys
from typing import Any

from ._common import (
    EXIT_NO,
    EXIT_OK,
    CommandError,
    add_url_argument,
    header_argument,
    name_argument,
    run_command,
    short_string,
)

__all__ = ["add_parser", "message_as_json", "message_as_text"]

#: Unconfirmed publishes allowed at once when publishing many messages.
MAX_IN_FLIGHT = 1000
#: basic.qos prefetch_count is a short (spec 1.8.3.1).
MAX_PREFETCH = 65535

_RAW = argparse.RawDescriptionHelpFormatter

#: The content properties `--property` sets, and how each value is read.
_PROPERTY_TYPES: dict[str, type] = {
    "content_type": str,
    "content_encoding": str,
    "delivery_mode": int,
    "priority": int,
    "correlation_id": str,
    "reply_to": str,
    "expiration": str,
    "message_id": str,
    "timestamp": int,
    "type": str,
    "user_id": str,
    "app_id": str,
    "cluster_id": str,
}


def _property_argument(text: str) -> tuple[str, Any]:
    """argparse `type=` for `--property NAME=VALUE` (NAME with - or _)."""
    name, eq, raw = text.partition("=")
    name = name.replace("-", "_")
    if not eq:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    kind = _PROPERTY_TYPES.get(name)
    if kind is None:
        choices = ", ".join(_PROPERTY_TYPES)
        raise argparse.ArgumentTypeError(
            f"unknown property {name!r} (one of: {choices}; headers go in --header)"
        )
    if name == "timestamp" and raw == "now":
        return name, int(datetime.datetime.now(datetime.UTC).timestamp())
    if kind is str:
        return name, short_string(raw, name)
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} must be an integer, got {raw!r}") from None
    # delivery_mode and priority are octets, timestamp a 64-bit count of seconds.
    top = 2**64 - 1 if name == "timestamp" else 255
    if not 0 <= value <= top:
        raise argparse.ArgumentTypeError(f"{name} must be from 0 to {top}, got {value}")
    return name, value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register `warren publish` and `warren consume` (see broker/cli.py)."""
    publish = subparsers.add_parser(
        "publish",
        help="publish a message (body from stdin or --body), with confirms",
        description="Publish a message to EXCHANGE with ROUTING_KEY, on Warren or RabbitMQ. "
        "The body is --body, or stdin; with --lines each line of stdin is a message. "
        "Publisher confirms and the mandatory flag say what became of each message: exit 0 "
        "when every one was confirmed, 1 if any was unroutable or nacked.",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  $ echo '{\"id\": 42}' | warren publish orders order.eu.created \\\n"
        "        --header urgent=true --persistent --content-type application/json\n"
        "  published 1 message to exchange 'orders' with routing key 'order.eu.created': "
        "1 confirmed\n"
        "  $ seq 10000 | warren publish '' billing --lines\n"
        "  published 10000 messages to the default exchange with routing key 'billing': "
        "10000 confirmed\n\n"
        "header values read as in the configuration language: true/false are booleans, 5 an\n"
        "integer, '\"5\"' a string; CC=a,b and BCC=a,b are arrays of routing keys.",
    )
    add_url_argument(publish)
    publish.add_argument(
        "exchange", metavar="EXCHANGE", type=name_argument,
        help='the exchange ("" for the default)',
    )
    publish.add_argument("routing_key", metavar="ROUTING_KEY", type=name_argument)
    body = publish.add_mutually_exclusive_group()
    body.add_argument("--body", default=None, help="the body (UTF-8); default: read stdin")
    body.add_argument(
        "--lines", action="store_true", help="publish each line of stdin as one message"
    )
    publish.add_argument(
        "--header",
        dest="headers",
        action="append",
        type=header_argument,
        metavar="KEY=VALUE",
        help="a header (repeatable)",
    )
    publish.add_argument(
        "--persistent", action="store_true", help="delivery_mode 2: kept on disk by durable queues"
    )
    publish.add_argument(
        "--content-type",
        default=None,
        type=lambda text: short_string(text, "content_type"),
        help="the content_type property",
    )
    publish.add_argument(
        "--property",
        dest="properties",
        action="append",
        type=_property_argument,
        metavar="NAME=VALUE",
        help="any other property: " + ", ".join(_PROPERTY_TYPES) + " (timestamp=now works)",
    )
    publish.add_argument(
        "--count", type=_positive, default=1, help="publish each body N times (default 1)"
    )
    publish.add_argument(
        "--no-mandatory",
        dest="mandatory",
        action="store_false",
        help="publish without mandatory: an unroutable message is dropped silently",
    )
    publish.set_defaults(func=lambda args: run_command("warren publish", lambda: _publish(args)))

    consume = subparsers.add_parser(
        "consume",
        help="print messages from a queue (and ack them)",
        description="Consume from QUEUE and print each message's routing information, "
        "properties and body, readably or as JSON lines. Each message is acked once printed "
        "(--requeue: none is, and they all go back to the queue at the end). Runs until "
        "--count messages, until --timeout seconds pass without one, or until Ctrl-C.",
        formatter_class=_RAW,
        epilog="example:\n"
        "  $ warren consume billing --count 1\n"
        "  --- message 1\n"
        "  exchange:      orders\n"
        "  routing_key:   order.eu.created\n"
        "  redelivered:   false\n"
        "  content_type:  application/json\n"
        "  delivery_mode: 2 (persistent)\n"
        "  headers:       urgent=true\n"
        "  body:          11 bytes\n"
        '  {"id": 42}',
    )
    add_url_argument(consume)
    consume.add_argument("queue", metavar="QUEUE", type=name_argument)
    consume.add_argument("--count", type=_positive, default=None, help="stop after N messages")
    consume.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop when no message came for this long",
    )
    consume.add_argument("--json", action="store_true", help="one JSON object per message")
    consume.add_argument(
        "--prefetch", type=_positive, default=1000, help="basic.qos prefetch (default 1000)"
    )
    consume.add_argument(
        "--requeue",
        action="store_true",
        help="ack nothing: the messages return to the queue when the command ends "
        "(needs --count, at most 65535)",
    )
    consume.set_defaults(func=lambda args: run_command("warren consume", lambda: _consume(args)))


# -- publish -------------------------------------------------------------------------


def _bodies(args: argparse.Namespace) -> list[bytes]:
    if args.body is not None:
        return [args.body.encode("utf-8")]
    if sys.stdin.isatty():
        raise CommandError("no body: give --body TEXT, or pipe the body on stdin")
    data = sys.stdin.buffer.read()
    if args.lines:
        return data.splitlines()
    return [data]


def _where(exchange: str, routing_key: str) -> str:
    target = f"exchange '{exchange}'" if exchange else "the default exchange"
    return f"{target} with routing key '{routing_key}'"


def _publish(args: argparse.Namespace) -> int:
    from collections import deque

    import trio

    from broker.client import PublishFailed, Unroutable, open_connection

    from ._common import Progress, check_url, headers_dict

    check_url(args.url)
    bodies = _bodies(args)
    properties: dict[str, Any] = dict(args.properties or ())
    headers = headers_dict(args.headers)
    if headers is not None:
        properties["headers"] = headers
    if args.content_type is not None:
        properties["content_type"] = args.content_type
    persistent = True if args.persistent else None
    total = len(bodies) * args.count
    progress = Progress("publishing", total)
    unroutable: list[Unroutable] = []
    nacked: list[PublishFailed] = []

    async def settle(confirmation: Any) -> None:
        try:
            await confirmation.wait()
        except Unroutable as error:
            unroutable.append(error)
        except PublishFailed as error:
            nacked.append(error)

    async def main() -> None:
        async with open_connection(
            args.url, client_properties={"connection_name": "warren publish"}
        ) as conn, conn.open_channel(confirms=True, max_in_flight=MAX_IN_FLIGHT) as ch:
            in_flight: deque[Any] = deque()
            sent = 0
            for _ in range(args.count):
                for body in bodies:
                    in_flight.append(await ch.publish(
                        args.exchange, args.routing_key, body, mandatory=args.mandatory,
                        persistent=persistent, wait=False, **properties))
                    sent += 1
                    while in_flight and in_flight[0].done:
                        await settle(in_flight.popleft())
                    progress.update(sent)
            while in_flight:
                await settle(in_flight.popleft())
            progress.update(sent, force=True)

    try:
        trio.run(main)
    finally:
        progress.close()
    confirmed = total - len(unroutable) - len(nacked)
    noun = "message" if total == 1 else "messages"
    parts = [f"{confirmed} confirmed"]
    if unroutable:
        first = unroutable[0]
        parts.append(
            f"{len(unroutable)} unroutable ({first.reply_code} {first.reply_text}: no queue "
            "is bound for it; the broker returned it)"
        )
    if nacked:
        parts.append(f"{len(nacked)} nacked by the broker")
    print(f"published {total} {noun} to {_where(args.exchange, args.routing_key)}: "
          + ", ".join(parts))
    return EXIT_NO if unroutable or nacked else EXIT_OK


# -- consume -------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """A field value as JSON: bytes as text when UTF-8 (else base64), times as ISO 8601."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _set_properties(message: Any) -> dict[str, Any]:
    props = message.properties
    return {
        name: getattr(props, name)
        for name in ("content_type", "content_encoding", "headers", "delivery_mode",
                     "priority", "correlation_id", "reply_to", "expiration", "message_id",
                     "timestamp", "type", "user_id", "app_id", "cluster_id")
        if getattr(props, name) is not None
    }


def _text_body(body: bytes) -> str | None:
    """The body as text if it is UTF-8 without control characters (tabs and newlines allowed)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r" or ord(c) == 127 for c in text):
        return None
    return text


def message_as_json(message: Any) -> dict[str, Any]:
    """One delivered message as a JSON object (what `--json` prints, one per line)."""
    text = _text_body(message.body)
    out: dict[str, Any] = {
        "exchange": message.exchange,
        "routing_key": message.routing_key,
        "redelivered": message.redelivered,
        "delivery_tag": message.delivery_tag,
        "properties": _jsonable(_set_properties(message)),
    }
    if text is not None:
        out["body"] = text
        out["body_encoding"] = "utf-8"
    else:
        out["body"] = base64.b64encode(message.body).decode("ascii")
        out["body_encoding"] = "base64"
    return out


def _show_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        from routing.config.options import format_generic

        return format_generic(value)
    if isinstance(value, bytes | bytearray):
        return _show_value(_jsonable(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "(void)"
    return str(value)


def message_as_text(number: int, message: Any) -> str:
    """One delivered message, readably: routing information, properties, body."""
    lines = [f"--- message {number}"]

    def field(name: str, value: str) -> None:
        lines.append(f"{name + ':':<15}{value}")

    field("exchange", message.exchange or '"" (the default exchange)')
    field("routing_key", message.routing_key)
    field("redelivered", "true" if message.redelivered else "false")
    for name, value in _set_properties(message).items():
        if name == "headers":
            shown = " ".join(f"{k}={_show_value(v)}" for k, v in value.items()) or "(empty)"
        elif name == "delivery_mode":
            shown = f"{value} ({'persistent' if value == 2 else 'transient'})"
        elif name == "timestamp":
            try:
                when = datetime.datetime.fromtimestamp(value, datetime.UTC)
                shown = f"{value} ({when.strftime('%Y-%m-%dT%H:%M:%SZ')})"
            except (OverflowError, OSError, ValueError):
                shown = str(value)
        else:
            shown = str(value)
        field(name, shown)
    body = message.body
    text = _text_body(body)
    size = f"{len(body)} byte{'' if len(body) == 1 else 's'}"
    if text is None:
        field("body", f"{size}, binary, base64:")
        lines.append(base64.b64encode(body).decode("ascii"))
    else:
        field("body", size)
        if text:
            lines.append(text.rstrip("\n"))
    return "\n".join(lines)


def _consume(args: argparse.Namespace) -> int:
    import trio

    from broker.client import open_connection

    from ._common import Progress, check_url

    check_url(args.url)
    count: int | None = args.count
    if args.requeue and (count is None or count > MAX_PREFETCH):
        raise CommandError(f"--requeue needs --count N with N at most {MAX_PREFETCH}")
    if args.timeout is not None and not args.timeout > 0:  # nan too
        raise CommandError("--timeout must be more than 0 seconds")
    prefetch = min(args.prefetch, MAX_PREFETCH)
    if count is not None and (count < prefetch or args.requeue):
        prefetch = count
    # Progress only helps when the messages themselves go elsewhere.
    progress = Progress("consumed", count)
    progress.enabled = progress.enabled and not sys.stdout.isatty()
    received = 0

    async def main() -> None:
        nonlocal received
        async with open_connection(
            args.url, client_properties={"connection_name": "warren consume"}
        ) as conn, conn.open_channel() as ch:
            held = None  # the last message printed but not acked yet
            async with ch.consume(args.queue, prefetch=prefetch) as messages:
                while count is None or received < count:
                    if args.timeout is None:
                        message = await messages.get()
                    else:
                        message = None
                        with trio.move_on_after(args.timeout):
                            message = await messages.get()
                        if message is None:
                            break
                    received += 1
                    if args.json:
                        line = json.dumps(message_as_json(message), ensure_ascii=False)
                    else:
                        line = message_as_text(received, message)
                    progress.echo(line)
                    progress.update(received)
                    if args.requeue:
                        continue
                    # The broker sends while unacked < prefetch, so delivered <=
                    # acked + prefetch: acking message i keeps delivered <= count
                    # while i + prefetch <= count. Later ones are held...
                    if count is None or received + prefetch <= count:
                        await message.ack()
                    else:
                        held = message
            # ... and acked once the consumer is cancelled (basic.cancel-ok:
            # nothing more comes), so the broker never sends an extra message.
            if held is not None:
                await held.ack(multiple=True)

    try:
        trio.run(main)
    finally:
        progress.close()
    if count is not None and received < count:
        print(
            f"warren consume: {received} of {count} message{'' if count == 1 else 's'} "
            f"within {args.timeout:g}s",
            file=sys.stderr,
        )
        return EXIT_NO
    return EXIT_OK
