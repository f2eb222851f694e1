"""Direct exchanges: exact routing-key match (spec 3.1.3.1)."""

from __future__ import annotations

from conformance.tests.routing_helpers import bind_queues, routed_to

AREA = "exchange: direct"


def setup(channel, names, bindings):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "direct")
    return exchange, bind_queues(channel, names, exchange, bindings)


def test_exact_key_match(channel, names):
    exchange, queues = setup(channel, names, {"a": ("alpha", None), "b": ("beta", None)})
    assert routed_to(channel, exchange, queues, "alpha") == {"a": 1}
    assert routed_to(channel, exchange, queues, "beta") == {"b": 1}


def test_no_match_is_dropped(channel, names):
    exchange, queues = setup(channel, names, {"a": ("alpha", None)})
    assert routed_to(channel, exchange, queues, "gamma") == {}
    assert routed_to(channel, exchange, queues, "alph") == {}
    assert routed_to(channel, exchange, queues, "ALPHA") == {}


def test_same_key_bound_to_many_queues_reaches_each_once(channel, names):
    exchange, queues = setup(
        channel, names, {"a": ("k", None), "b": ("k", None), "c": ("k", None)}
    )
    assert routed_to(channel, exchange, queues, "k") == {"a": 1, "b": 1, "c": 1}


def test_queue_bound_with_two_keys_gets_one_copy_per_matching_message(channel, names):
    exchange, queues = setup(channel, names, {"a": ("k1", None)})
    channel.queue_bind(queues["a"], exchange, "k2")
    assert routed_to(channel, exchange, queues, "k1") == {"a": 1}
    assert routed_to(channel, exchange, queues, "k2") == {"a": 1}


def test_duplicate_binding_is_idempotent(channel, names):
    exchange, queues = setup(channel, names, {"a": ("k", None)})
    channel.queue_bind(queues["a"], exchange, "k")
    assert routed_to(channel, exchange, queues, "k") == {"a": 1}


def test_empty_routing_key_binding(channel, names):
    exchange, queues = setup(channel, names, {"a": ("", None), "b": ("x", None)})
    assert routed_to(channel, exchange, queues, "") == {"a": 1}


def test_unbind_stops_routing(channel, names):
    exchange, queues = setup(channel, names, {"a": ("k", None)})
    channel.queue_unbind(queues["a"], exchange, "k")
    assert routed_to(channel, exchange, queues, "k") == {}


def test_unbind_of_missing_binding_is_ok(channel, names):
    # RabbitMQ treats queue.unbind of a binding that does not exist as success.
    exchange, queues = setup(channel, names, {"a": ("k", None)})
    channel.queue_unbind(queues["a"], exchange, "other")
    assert routed_to(channel, exchange, queues, "k") == {"a": 1}


def test_topic_wildcards_are_literal_in_direct(channel, names):
    exchange, queues = setup(channel, names, {"a": ("a.*", None), "b": ("#", None)})
    assert routed_to(channel, exchange, queues, "a.b") == {}
    assert routed_to(channel, exchange, queues, "a.*") == {"a": 1}
    assert routed_to(channel, exchange, queues, "#") == {"b": 1}


def test_utf8_routing_key(channel, names):
    exchange, queues = setup(channel, names, {"a": ("ключ.日本", None)})
    assert routed_to(channel, exchange, queues, "ключ.日本") == {"a": 1}
