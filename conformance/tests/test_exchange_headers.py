"""Headers exchanges: match on message headers with x-match all/any (spec 3.1.3.4)."""

from __future__ import annotations

import pytest

from conformance.helpers import channel_closed_with
from conformance.tests.routing_helpers import bind_queues, routed_to

AREA = "exchange: headers"


def case_id(value: object) -> str:
    """Compact test ids: {"x-match": "all", "a": "1"} -> "all(a='1')"."""
    if isinstance(value, bool):
        return "match" if value else "no-match"
    if isinstance(value, dict):
        pairs = ",".join(f"{k}={v!r}" for k, v in value.items() if k != "x-match")
        return f"{value.get('x-match', '')}({pairs})" if "x-match" in value else f"{{{pairs}}}"
    return str(value)


@pytest.fixture
def headers_exchange(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "headers")

    def matches(binding: dict, headers: dict | None, routing_key: str = "") -> bool:
        queues = bind_queues(channel, names, exchange, {"q": ("", binding)})
        result = routed_to(channel, exchange, queues, routing_key, headers) == {"q": 1}
        channel.queue_delete(queues["q"])
        return result

    return matches


@pytest.mark.parametrize(
    ("binding", "headers", "expected"),
    [
        ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1", "b": "2"}, True),
        ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"}, True),
        ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1"}, False),
        ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1", "b": "x"}, False),
        ({"x-match": "any", "a": "1", "b": "2"}, {"a": "1"}, True),
        ({"x-match": "any", "a": "1", "b": "2"}, {"b": "2", "z": "9"}, True),
        ({"x-match": "any", "a": "1", "b": "2"}, {"a": "2", "b": "1"}, False),
        ({"x-match": "any", "a": "1"}, {}, False),
        ({"a": "1", "b": "2"}, {"a": "1", "b": "2"}, True),
        ({"a": "1", "b": "2"}, {"a": "1"}, False),
        ({"x-match": "all"}, {}, True),
        ({"x-match": "all"}, {"anything": "here"}, True),
        ({}, {"anything": "here"}, True),
        ({"x-match": "any"}, {"anything": "here"}, False),
        ({"x-match": "all", "n": 1}, {"n": 1}, True),
        ({"x-match": "all", "n": 1}, {"n": "1"}, False),
        ({"x-match": "all", "n": 1}, {"n": 2}, False),
        ({"x-match": "all", "flag": True}, {"flag": True}, True),
        ({"x-match": "all", "flag": True}, {"flag": False}, False),
        ({"x-match": "all", "a": "1", "x-other": "ignored"}, {"a": "1"}, True),
        ({"x-match": "any", "x-only": "ignored"}, {"x-only": "ignored"}, False),
        ({"x-match": "all", "a": "1"}, {"A": "1"}, False),
    ],
    ids=lambda value: case_id(value),
)
def test_match(headers_exchange, binding, headers, expected):
    """One binding, one message: does the headers exchange route it?"""
    assert headers_exchange(binding, headers) is expected


def test_message_without_headers_matches_only_empty_all_binding(headers_exchange):
    assert headers_exchange({"x-match": "all", "a": "1"}, None) is False
    assert headers_exchange({"x-match": "all"}, None) is True


def test_routing_key_is_ignored(headers_exchange):
    assert headers_exchange({"x-match": "all", "a": "1"}, {"a": "1"}, "any.key") is True


def test_invalid_x_match_is_406(channel, names):
    exchange = names.exchange()
    queue = names.queue()
    channel.exchange_declare(exchange, "headers")
    channel.queue_declare(queue)
    with channel_closed_with(406):
        channel.queue_bind(queue, exchange, "", arguments={"x-match": "some"})


def test_two_bindings_with_different_arguments_are_distinct(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "headers")
    queues = bind_queues(channel, names, exchange, {"q": ("", {"x-match": "all", "a": "1"})})
    channel.queue_bind(queues["q"], exchange, "", arguments={"x-match": "all", "b": "2"})
    assert routed_to(channel, exchange, queues, "", {"b": "2"}) == {"q": 1}
    assert routed_to(channel, exchange, queues, "", {"a": "1", "b": "2"}) == {"q": 1}
    channel.queue_unbind(queues["q"], exchange, "", arguments={"x-match": "all", "a": "1"})
    assert routed_to(channel, exchange, queues, "", {"a": "1"}) == {}
    assert routed_to(channel, exchange, queues, "", {"b": "2"}) == {"q": 1}


def test_amq_match_is_a_headers_exchange(channel, names):
    queues = bind_queues(channel, names, "amq.match", {"q": ("", {"x-match": "all", "k": "v"})})
    assert routed_to(channel, "amq.match", queues, "", {"k": "v"}) == {"q": 1}
    channel.queue_unbind(queues["q"], "amq.match", "", arguments={"x-match": "all", "k": "v"})
