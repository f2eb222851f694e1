"""Exchange-to-exchange bindings (RabbitMQ extension: exchange.bind / exchange.unbind)."""

from __future__ import annotations

from conformance.helpers import channel_closed_with
from conformance.tests.routing_helpers import bind_queues, routed_to

AREA = "exchange-to-exchange bindings"


def test_message_flows_from_source_to_destination(channel, names):
    source, destination = names.exchange("src"), names.exchange("dst")
    channel.exchange_declare(source, "direct")
    channel.exchange_declare(destination, "fanout")
    channel.exchange_bind(destination, source, "k")
    queues = bind_queues(channel, names, destination, {"q": ("", None)})
    assert routed_to(channel, source, queues, "k") == {"q": 1}
    assert routed_to(channel, source, queues, "other") == {}


def test_destination_applies_its_own_routing(channel, names):
    source, destination = names.exchange("src"), names.exchange("dst")
    channel.exchange_declare(source, "topic")
    channel.exchange_declare(destination, "direct")
    channel.exchange_bind(destination, source, "a.#")
    queues = bind_queues(channel, names, destination, {"ab": ("a.b", None), "ac": ("a.c", None)})
    assert routed_to(channel, source, queues, "a.b") == {"ab": 1}
    assert routed_to(channel, source, queues, "a.c") == {"ac": 1}
    assert routed_to(channel, source, queues, "b.c") == {}


def test_chain_of_three_exchanges(channel, names):
    first, second, third = (names.exchange(n) for n in ("one", "two", "three"))
    for exchange in (first, second, third):
        channel.exchange_declare(exchange, "fanout")
    channel.exchange_bind(second, first, "")
    channel.exchange_bind(third, second, "")
    queues = bind_queues(channel, names, third, {"q": ("", None)})
    assert routed_to(channel, first, queues, "") == {"q": 1}


def test_queue_reached_by_two_paths_gets_one_copy(channel, names):
    source, left, right = (names.exchange(n) for n in ("src", "left", "right"))
    for exchange in (source, left, right):
        channel.exchange_declare(exchange, "fanout")
    channel.exchange_bind(left, source, "")
    channel.exchange_bind(right, source, "")
    queues = bind_queues(channel, names, left, {"q": ("", None)})
    channel.queue_bind(queues["q"], right, "")
    channel.queue_bind(queues["q"], source, "")
    assert routed_to(channel, source, queues, "") == {"q": 1}


def test_cycle_delivers_once_and_terminates(channel, names):
    first, second = names.exchange("a"), names.exchange("b")
    channel.exchange_declare(first, "fanout")
    channel.exchange_declare(second, "fanout")
    channel.exchange_bind(second, first, "")
    channel.exchange_bind(first, second, "")
    queues = bind_queues(channel, names, second, {"q": ("", None)})
    assert routed_to(channel, first, queues, "") == {"q": 1}
    assert routed_to(channel, second, queues, "") == {"q": 1}


def test_self_binding_is_harmless(channel, names):
    exchange = names.exchange()
    channel.exchange_declare(exchange, "fanout")
    channel.exchange_bind(exchange, exchange, "")
    queues = bind_queues(channel, names, exchange, {"q": ("", None)})
    assert routed_to(channel, exchange, queues, "") == {"q": 1}


def test_unbind_stops_the_flow(channel, names):
    source, destination = names.exchange("src"), names.exchange("dst")
    channel.exchange_declare(source, "direct")
    channel.exchange_declare(destination, "fanout")
    channel.exchange_bind(destination, source, "k")
    queues = bind_queues(channel, names, destination, {"q": ("", None)})
    channel.exchange_unbind(destination, source, "k")
    assert routed_to(channel, source, queues, "k") == {}


def test_deleting_destination_removes_the_binding(channel, names):
    source, destination = names.exchange("src"), names.exchange("dst")
    channel.exchange_declare(source, "fanout")
    channel.exchange_declare(destination, "fanout")
    channel.exchange_bind(destination, source, "")
    channel.exchange_delete(destination)
    channel.exchange_declare(destination, "fanout")
    queues = bind_queues(channel, names, destination, {"q": ("", None)})
    assert routed_to(channel, source, queues, "") == {}


def test_source_with_destination_binding_is_not_unused(channel, names):
    source, destination = names.exchange("src"), names.exchange("dst")
    channel.exchange_declare(source, "fanout")
    channel.exchange_declare(destination, "fanout")
    channel.exchange_bind(destination, source, "")
    with channel_closed_with(406):
        channel.exchange_delete(source, if_unused=True)


def test_bind_missing_source_is_404(channel, names):
    destination = names.exchange("dst")
    channel.exchange_declare(destination, "fanout")
    with channel_closed_with(404):
        channel.exchange_bind(destination, names.exchange("missing"), "")


def test_bind_missing_destination_is_404(channel, names):
    source = names.exchange("src")
    channel.exchange_declare(source, "fanout")
    with channel_closed_with(404):
        channel.exchange_bind(names.exchange("missing"), source, "")


def test_builtin_exchange_can_be_a_source(channel, names):
    destination = names.exchange("dst")
    channel.exchange_declare(destination, "fanout")
    channel.exchange_bind(destination, "amq.topic", "conformance.e2e.#")
    try:
        queues = bind_queues(channel, names, destination, {"q": ("", None)})
        key = f"conformance.e2e.{names.queue('key')}"
        assert routed_to(channel, "amq.topic", queues, key) == {"q": 1}
    finally:
        channel.exchange_unbind(destination, "amq.topic", "conformance.e2e.#")


def test_internal_exchange_receives_through_exchange_binding(channel, names):
    """An internal exchange refuses publishes (403) but routes what other exchanges send it."""
    source, internal = names.exchange("src"), names.exchange("internal")
    channel.exchange_declare(source, "fanout")
    channel.exchange_declare(internal, "fanout", internal=True)
    channel.exchange_bind(internal, source, "")
    queues = bind_queues(channel, names, internal, {"q": ("", None)})
    assert routed_to(channel, source, queues, "") == {"q": 1}
