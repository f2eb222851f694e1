"""Topic exchanges: dotted words, * one word, # zero or more words (spec 3.1.3.3)."""

from __future__ import annotations

import pytest

from conformance.tests.routing_helpers import bind_queues, routed_to

AREA = "exchange: topic"


@pytest.fixture
def topic(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "topic")

    def matches(pattern: str, routing_key: str) -> bool:
        queues = bind_queues(channel, names, exchange, {"q": (pattern, None)})
        result = routed_to(channel, exchange, queues, routing_key) == {"q": 1}
        channel.queue_delete(queues["q"])
        return result

    return matches


@pytest.mark.parametrize(
    ("pattern", "routing_key", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.b", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.*.c", "a.b.b.c", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("*.*", "a.b", True),
        ("a.*", "a", False),
        ("a.#", "a", True),
        ("a.#", "a.b", True),
        ("a.#", "a.b.c.d", True),
        ("a.#", "b.a", False),
        ("#", "", True),
        ("#", "a.b.c", True),
        ("#.c", "c", True),
        ("#.c", "a.b.c", True),
        ("#.c", "a.b.cd", False),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.b.x.c", True),
        ("a.#.c", "a.b.x.d", False),
        ("#.#", "a.b", True),
        ("#.*", "", False),
        ("#.*", "a", True),
        ("*.#", "a.b.c", True),
        ("a.#.#", "a", True),
        ("", "", True),
        ("", "a", False),
        ("*", "", False),  # RabbitMQ: an empty key has no word for * to take
        ("a.*.c", "a..c", True),
        ("a..c", "a..c", True),
        ("a", "A", False),
        ("a*", "ab", False),
        ("a*", "a*", True),
        ("a.#.b.#.c", "a.x.b.y.z.c", True),
        ("a.#.b.#.c", "a.b.c", True),
        ("a.#.b.#.c", "a.c.b", False),
    ],
)
def test_pattern(topic, pattern, routing_key, expected):
    assert topic(pattern, routing_key) is expected


def test_queue_matching_two_patterns_gets_one_copy(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "topic")
    queues = bind_queues(channel, names, exchange, {"q": ("a.*", None)})
    channel.queue_bind(queues["q"], exchange, "#.b")
    channel.queue_bind(queues["q"], exchange, "#")
    assert routed_to(channel, exchange, queues, "a.b") == {"q": 1}


def test_many_queues_each_get_their_matches(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "topic")
    queues = bind_queues(
        channel,
        names,
        exchange,
        {
            "logs": ("logs.#", None),
            "errors": ("*.error", None),
            "all": ("#", None),
            "eu": ("*.*.eu", None),
        },
    )
    assert routed_to(channel, exchange, queues, "logs.error") == {
        "logs": 1,
        "errors": 1,
        "all": 1,
    }
    assert routed_to(channel, exchange, queues, "app.info.eu") == {"all": 1, "eu": 1}
    assert routed_to(channel, exchange, queues, "logs.info.eu") == {"logs": 1, "all": 1, "eu": 1}


def test_unbind_removes_only_that_pattern(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "topic")
    queues = bind_queues(channel, names, exchange, {"q": ("a.*", None)})
    channel.queue_bind(queues["q"], exchange, "#.z")
    channel.queue_unbind(queues["q"], exchange, "a.*")
    assert routed_to(channel, exchange, queues, "a.b") == {}
    assert routed_to(channel, exchange, queues, "a.z") == {"q": 1}


def test_topic_routing_is_case_sensitive(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "topic")
    queues = bind_queues(channel, names, exchange, {"q": ("Stock.*", None)})
    assert routed_to(channel, exchange, queues, "stock.usd") == {}
    assert routed_to(channel, exchange, queues, "Stock.usd") == {"q": 1}
