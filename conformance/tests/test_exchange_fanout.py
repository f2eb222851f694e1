"""Fanout exchanges: every bound queue, routing key ignored (spec 3.1.3.2)."""

from __future__ import annotations

from conformance.tests.routing_helpers import bind_queues, routed_to

AREA = "exchange: fanout"


def setup(channel, names, bindings):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "fanout")
    return exchange, bind_queues(channel, names, exchange, bindings)


def test_every_bound_queue_gets_a_copy(channel, names):
    exchange, queues = setup(channel, names, {"a": ("", None), "b": ("", None)})
    assert routed_to(channel, exchange, queues, "") == {"a": 1, "b": 1}


def test_routing_key_is_ignored(channel, names):
    exchange, queues = setup(channel, names, {"a": ("x", None), "b": ("y", None)})
    assert routed_to(channel, exchange, queues, "anything") == {"a": 1, "b": 1}


def test_queue_bound_twice_gets_one_copy(channel, names):
    exchange, queues = setup(channel, names, {"a": ("one", None)})
    channel.queue_bind(queues["a"], exchange, "two")
    assert routed_to(channel, exchange, queues, "whatever") == {"a": 1}


def test_no_bindings_drops_the_message(channel, names):
    exchange, queues = setup(channel, names, {})
    assert routed_to(channel, exchange, queues, "") == {}


def test_unbind_with_its_key_removes_the_binding(channel, names):
    exchange, queues = setup(channel, names, {"a": ("x", None), "b": ("y", None)})
    channel.queue_unbind(queues["a"], exchange, "x")
    assert routed_to(channel, exchange, queues, "x") == {"b": 1}
