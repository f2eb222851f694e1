"""Alternate exchanges (RabbitMQ extension: the "alternate-exchange" argument)."""

from __future__ import annotations

from conformance.helpers import publish, wait_for
from conformance.tests.routing_helpers import bind_queues, routed_to

AREA = "alternate exchange"


def setup(channel, names, main_type="direct"):
    main, alternate = names.exchange("main"), names.exchange("ae")
    channel.exchange_declare(alternate, "fanout")
    channel.exchange_declare(main, main_type, arguments={"alternate-exchange": alternate})
    queues = bind_queues(channel, names, main, {"routed": ("k", None)})
    queues.update(bind_queues(channel, names, alternate, {"unrouted": ("", None)}))
    return main, alternate, queues


def test_unroutable_goes_to_alternate(channel, names):
    main, _, queues = setup(channel, names)
    assert routed_to(channel, main, queues, "nomatch") == {"unrouted": 1}


def test_routable_does_not_go_to_alternate(channel, names):
    main, _, queues = setup(channel, names)
    assert routed_to(channel, main, queues, "k") == {"routed": 1}


def test_alternate_of_alternate_is_followed(channel, names):
    main, second, last = names.exchange("main"), names.exchange("ae1"), names.exchange("ae2")
    channel.exchange_declare(last, "fanout")
    channel.exchange_declare(second, "direct", arguments={"alternate-exchange": last})
    channel.exchange_declare(main, "direct", arguments={"alternate-exchange": second})
    queues = bind_queues(channel, names, last, {"q": ("", None)})
    queues.update(bind_queues(channel, names, second, {"mid": ("special", None)}))
    assert routed_to(channel, main, queues, "x") == {"q": 1}
    assert routed_to(channel, main, queues, "special") == {"mid": 1}


def test_missing_alternate_exchange_drops_silently(channel, names):
    main = names.exchange("main")
    channel.exchange_declare(main, "direct", arguments={"alternate-exchange": names.exchange()})
    queues = bind_queues(channel, names, main, {"q": ("k", None)})
    assert routed_to(channel, main, queues, "other") == {}
    assert channel.is_open


def test_alternate_exchange_cycle_terminates(channel, names):
    first, second = names.exchange("a"), names.exchange("b")
    channel.exchange_declare(first, "direct", arguments={"alternate-exchange": second})
    channel.exchange_declare(second, "direct", arguments={"alternate-exchange": first})
    queues = bind_queues(channel, names, second, {"q": ("k2", None)})
    assert routed_to(channel, first, queues, "nomatch") == {}
    assert routed_to(channel, first, queues, "k2") == {"q": 1}


def test_mandatory_is_satisfied_by_alternate(connection, channel, names):
    main, _, queues = setup(channel, names)
    returned = []
    channel.add_on_return_callback(lambda *args: returned.append(args))
    publish(channel, main, "nomatch", b"m", mandatory=True)
    assert routed_to(channel, main, queues, "nomatch") == {"unrouted": 2}
    assert not wait_for(connection, lambda: returned, timeout=0.1)


def test_mandatory_returns_when_alternate_also_fails(connection, channel, names):
    main, alternate = names.exchange("main"), names.exchange("ae")
    channel.exchange_declare(alternate, "direct")
    channel.exchange_declare(main, "direct", arguments={"alternate-exchange": alternate})
    returned = []
    channel.add_on_return_callback(lambda ch, method, props, body: returned.append(method))
    publish(channel, main, "nowhere", b"m", mandatory=True)
    assert wait_for(connection, lambda: returned, timeout=2)
    assert returned[0].reply_code == 312
    assert returned[0].exchange == main
