"""Warren's own decisions on queue and consumer arguments (docs/compatibility.md,
"Queue arguments, one by one"): what RabbitMQ acts on and Warren does not is
refused with a 406 that says so; what changes nothing on one node, or what
RabbitMQ ignores too, is accepted and logged once per (vhost, queue, argument).

RabbitMQ accepts these declarations, so they cannot be conformance tests.
"""

from __future__ import annotations

from typing import Any

import pika
import pytest
from structlog.testing import capture_logs

from broker.core.features import arguments as arguments_module
from broker.core.features.arguments import validate_queue_arguments
from broker.core.vhost import VHost


def refusal(queue: str, key: str, why: str) -> str:
    return f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{queue}' in vhost '/': {why}"


@pytest.mark.parametrize(
    "arguments, durable, key, why",
    [
        ({"x-queue-mode": "lazy"}, False, "x-queue-mode",
         "\"x-queue-mode 'lazy' is not supported by Warren\""),
        ({"x-queue-version": 2}, False, "x-queue-version",
         '"x-queue-version is not supported by Warren"'),
        ({"x-queue-version": 1}, False, "x-queue-version",
         '"x-queue-version is not supported by Warren"'),
        # Streams are taken (tests/features/test_streams.py); a bad x-max-age
        # is a 406 here where RabbitMQ 3.10.8 answers 541 INTERNAL_ERROR.
        ({"x-queue-type": "stream", "x-max-age": "1w"}, True, "x-max-age",
         "\"invalid max age '1w' (units Y, M, D, h, m, s)\""),
        ({"x-queue-type": "quorum", "x-max-in-memory-length": 5}, True,
         "x-max-in-memory-length", '"x-max-in-memory-length is not supported by Warren"'),
        ({"x-queue-type": "quorum", "x-max-in-memory-bytes": 5}, True,
         "x-max-in-memory-bytes", '"x-max-in-memory-bytes is not supported by Warren"'),
        ({"x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once"}, True,
         "x-dead-letter-strategy",
         "\"x-dead-letter-strategy 'at-least-once' is not supported by Warren\""),
        ({"x-queue-master-locator": "bad"}, False, "x-queue-master-locator",
         "invalid_queue_locator_arg"),
    ],
)  # fmt: skip
def test_unsupported_argument_is_refused(
    channel: Any, arguments: dict[str, Any], durable: bool, key: str, why: str
) -> None:
    queue = "decisions-refused"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.queue_declare(queue, durable=durable, arguments=arguments)
    assert closed.value.reply_code == 406
    assert closed.value.reply_text == refusal(queue, key, why)


@pytest.mark.parametrize(
    "arguments",
    [
        {"x-queue-mode": "default"},
        {"x-queue-master-locator": "client-local"},
        {"x-queue-type": "quorum", "x-queue-leader-locator": "balanced"},
        {"x-queue-type": "quorum", "x-quorum-initial-group-size": 3},
        {"x-queue-type": "quorum", "x-dead-letter-strategy": "at-most-once"},
        {"x-foo": "bar"},
    ],
)
def test_argument_without_effect_is_accepted(channel: Any, arguments: dict[str, Any]) -> None:
    durable = arguments.get("x-queue-type") == "quorum"
    channel.queue_declare("decisions-accepted", durable=durable, arguments=arguments)
    channel.queue_delete("decisions-accepted")


def test_consumer_x_credit_is_refused(channel: Any) -> None:
    queue = channel.queue_declare("", exclusive=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.basic_consume(queue, lambda *a: None, arguments={"x-credit": 1})
    assert closed.value.reply_text == refusal(
        queue, "x-credit", '"x-credit is not supported by Warren"'
    )


def test_ignored_argument_is_logged_once_per_queue() -> None:
    arguments_module._logged.clear()
    with capture_logs() as logs:
        for name in ("a", "a", "b"):
            validate_queue_arguments(name, {"x-foo": 1, "x-queue-master-locator": "random"}, "/")
    ignored = [(e["queue"], e["argument"]) for e in logs if e["event"] == "argument.ignored"]
    assert sorted(ignored) == [
        ("a", "x-foo"), ("a", "x-queue-master-locator"),
        ("b", "x-foo"), ("b", "x-queue-master-locator"),
    ]  # fmt: skip


def test_implemented_arguments_are_not_logged() -> None:
    arguments_module._logged.clear()
    with capture_logs() as logs:
        VHost().declare_queue(None, "q", arguments={
            "x-max-priority": 5, "x-single-active-consumer": True, "x-message-ttl": 5,
            "x-queue-mode": "default",
        })  # fmt: skip
    assert not [e for e in logs if e["event"] == "argument.ignored"]


def test_unknown_exchange_arguments_are_logged_once_known_ones_not() -> None:
    # RabbitMQ ignores exchange arguments it does not know; Warren keeps them
    # too (definitions, redeclare) and says once that it does nothing with them.
    arguments_module._logged.clear()
    vhost = VHost()
    with capture_logs() as logs:
        vhost.declare_exchange("x", "direct", arguments={"x-foo": 1, "alternate-exchange": "ae"})
        vhost.declare_exchange("x", "direct", arguments={"x-foo": 1, "alternate-exchange": "ae"})
        vhost.declare_exchange("h", "x-consistent-hash", arguments={"hash-header": "h", "x-bar": 2})
    ignored = [
        (e["kind"], e["exchange"], e["argument"]) for e in logs if e["event"] == "argument.ignored"
    ]
    assert ignored == [("exchange", "x", "x-foo"), ("exchange", "h", "x-bar")]


def test_deduplication_arguments_are_read_by_every_exchange_type() -> None:
    arguments_module._logged.clear()
    with capture_logs() as logs:
        VHost().declare_exchange("d", "topic", arguments={
            "x-message-deduplication": True, "x-cache-size": 10, "x-cache-ttl": 1000,
            "x-deduplication-header": "id", "x-cache-persistence": "disk",
        })  # fmt: skip
    ignored = [e["argument"] for e in logs if e["event"] == "argument.ignored"]
    assert ignored == ["x-cache-persistence"]  # the plugin's: Warren persists anyway
