"""The x-consistent-hash exchange: the ring, the spread, moves, errors, traces.

Whether it picks the *same* queue as RabbitMQ's plugin is checked against a
broker in test_consistent_hash_against_broker.py; the Erlang arithmetic in
test_consistent_hash_erlang.py. Here: what follows from the algorithm.
"""

from __future__ import annotations

import datetime
import decimal
from collections import Counter
from types import SimpleNamespace

import pytest

from routing.errors import InternalError, InvalidBinding, PreconditionFailed
from routing.exchanges import EXCHANGE_TYPES, ConsistentHashExchange, Destination
from routing.exchanges.consistent_hash import binding_key_problem, field_term
from routing.exchanges.erlang import Atom, jump_consistent_hash, phash2
from routing.topology import Topology

CHX = "x-consistent-hash"
KEYS = [f"key-{i}" for i in range(100_000)]
#: Enough keys to see a share to within 1.5% (3 standard deviations or more).
SOME = KEYS[:20_000]


def ring(weights: dict[str, int], **arguments: object) -> Topology:
    """A topology with exchange 'x' binding each queue with its weight, in order."""
    topology = Topology()
    topology.declare_exchange("x", CHX, arguments=arguments or None)
    for queue, weight in weights.items():
        topology.add_queue(queue)
        topology.bind("x", Destination.queue(queue), str(weight))
    return topology


def placement(topology: Topology, keys: list[str]) -> dict[str, str]:
    out = {}
    for key in keys:
        (queue,) = topology.route("x", key)
        out[key] = queue
    return out


def test_the_type_is_registered() -> None:
    assert EXCHANGE_TYPES[CHX] is ConsistentHashExchange


def test_every_message_goes_to_exactly_one_queue() -> None:
    topology = ring({"a": 1, "b": 1, "c": 1})
    for key in KEYS[:2000]:
        assert len(topology.route("x", key)) == 1


def test_nothing_bound_routes_nowhere_and_uses_the_alternate_exchange() -> None:
    topology = Topology()
    topology.declare_exchange("ae", "fanout")
    topology.add_queue("unrouted")
    topology.bind("ae", Destination.queue("unrouted"))
    topology.declare_exchange("x", CHX, arguments={"alternate-exchange": "ae"})
    assert topology.route("x", "k") == ["unrouted"]
    topology.add_queue("q")
    topology.bind("x", Destination.queue("q"), "1")
    assert topology.route("x", "k") == ["q"]


def test_spread_is_proportional_to_the_weights() -> None:
    weights = {"w1": 1, "w2": 2, "w3": 3, "w4": 4}
    counts = Counter(placement(ring(weights), KEYS).values())
    total = sum(weights.values())
    for queue, weight in weights.items():
        share = counts[queue] / len(KEYS)
        # 100,000 keys: a share's standard deviation is under 0.16%; allow 1%.
        assert share == pytest.approx(weight / total, abs=0.01), (queue, counts)


def test_same_weights_spread_evenly_over_many_queues() -> None:
    weights = {f"q{i}": 1 for i in range(16)}
    counts = Counter(placement(ring(weights), SOME).values())
    assert set(counts) == set(weights)
    assert max(counts.values()) / min(counts.values()) < 1.25, counts


def test_a_key_always_goes_to_the_same_queue() -> None:
    topology = ring({"a": 1, "b": 2, "c": 1})
    first = placement(topology, KEYS[:500])
    assert placement(topology, KEYS[:500]) == first
    assert placement(ring({"a": 1, "b": 2, "c": 1}), KEYS[:500]) == first


def test_adding_a_queue_moves_only_its_share_and_only_to_it() -> None:
    topology = ring({"a": 1, "b": 1, "c": 1, "d": 1})
    before = placement(topology, SOME)
    topology.add_queue("e")
    topology.bind("x", Destination.queue("e"), "1")
    after = placement(topology, SOME)
    moved = [k for k in SOME if before[k] != after[k]]
    assert {after[k] for k in moved} == {"e"}  # no key moves between old queues
    assert len(moved) / len(SOME) == pytest.approx(1 / 5, abs=0.015)


def test_adding_a_heavier_queue_moves_its_weighted_share() -> None:
    topology = ring({"a": 1, "b": 1, "c": 1})
    before = placement(topology, SOME)
    topology.add_queue("big")
    topology.bind("x", Destination.queue("big"), "3")
    after = placement(topology, SOME)
    moved = [k for k in SOME if before[k] != after[k]]
    assert {after[k] for k in moved} == {"big"}
    assert len(moved) / len(SOME) == pytest.approx(3 / 6, abs=0.015)


def test_removing_the_queue_added_last_restores_every_key() -> None:
    topology = ring({"a": 1, "b": 2, "c": 1})
    before = placement(topology, SOME)
    topology.add_queue("e")
    topology.bind("x", Destination.queue("e"), "2")
    assert placement(topology, SOME) != before
    topology.unbind("x", Destination.queue("e"), "2")
    assert placement(topology, SOME) == before
    topology.bind("x", Destination.queue("e"), "2")
    topology.remove_queue("e")  # deleting the queue removes its binding too
    assert placement(topology, SOME) == before


def test_removing_a_middle_queue_renumbers_the_later_buckets() -> None:
    # The plugin moves the later buckets down, so the ring is the one built
    # from the remaining bindings in order; keys of later queues can move.
    topology = ring({"a": 1, "b": 2, "c": 1, "d": 3})
    topology.unbind("x", Destination.queue("b"), "2")
    assert placement(topology, KEYS[:3000]) == placement(
        ring({"a": 1, "c": 1, "d": 3}), KEYS[:3000]
    )


def test_the_ring_lists_buckets_in_binding_order() -> None:
    topology = ring({"a": 2, "b": 1, "c": 3})
    x = topology.get_exchange("x")
    assert isinstance(x, ConsistentHashExchange)
    assert [(s.binding.destination.name, s.first, s.last) for s in x.ring()] == [
        ("a", 0, 1),
        ("b", 2, 2),
        ("c", 3, 5),
    ]
    assert x.buckets == 6
    topology.unbind("x", Destination.queue("a"), "2")
    assert [(s.binding.destination.name, s.first) for s in x.ring()] == [("b", 0), ("c", 1)]


def test_a_second_binding_to_the_same_queue_leaves_the_ring_alone() -> None:
    topology = ring({"a": 1, "b": 1})
    x = topology.get_exchange("x")
    assert isinstance(x, ConsistentHashExchange)
    assert topology.bind("x", Destination.queue("a"), "5")  # a new binding...
    assert x.buckets == 2  # ...that takes no buckets
    # Removing either binding of "a" takes all of a's buckets (the plugin
    # filters the ring by destination): "a" keeps a binding but gets nothing.
    topology.unbind("x", Destination.queue("a"), "5")
    assert x.buckets == 1
    assert {q for key in KEYS[:200] for q in topology.route("x", key)} == {"b"}
    assert len(topology.bindings_from("x")) == 2


def test_same_binding_twice_is_one_binding() -> None:
    topology = ring({"a": 1})
    assert not topology.bind("x", Destination.queue("a"), "1")
    x = topology.get_exchange("x")
    assert isinstance(x, ConsistentHashExchange) and x.buckets == 1


def test_routing_follows_the_jump_hash_of_phash2() -> None:
    topology = ring({"a": 1, "b": 2, "c": 3})
    for key in KEYS[:300]:
        bucket = jump_consistent_hash(phash2(key.encode()), 6)
        expected = "a" if bucket < 1 else "b" if bucket < 3 else "c"
        assert topology.route("x", key) == [expected]


def test_cached_and_uncached_routes_agree() -> None:
    topology = ring({"a": 1, "b": 2, "c": 3})
    x = topology.get_exchange("x")
    assert isinstance(x, ConsistentHashExchange)
    for key in KEYS[:5000:7] * 2:
        assert x.route(key, None) == x.route_uncached(key)


# -- what is hashed ---------------------------------------------------------------------


def test_cc_and_bcc_keys_do_not_change_the_choice() -> None:
    topology = ring({"a": 1, "b": 1, "c": 1, "d": 1})
    for key in KEYS[:200]:
        alone = topology.route("x", key)
        assert topology.route("x", key, {"CC": ["zzz", "yyy"], "BCC": ["q"]}) == alone


def test_hash_header_routes_by_the_header_not_the_key() -> None:
    topology = ring({"a": 1, "b": 1, "c": 1, "d": 1}, **{"hash-header": "user"})
    users = [f"user-{i}" for i in range(400)]
    by_user = {u: topology.route("x", "ignored", {"user": u}) for u in users}
    for u in users[:50]:
        assert topology.route("x", f"other-{u}", {"user": u, "extra": 1}) == by_user[u]
    assert len({q for qs in by_user.values() for q in qs}) == 4
    # Without the header (or without headers) every message hashes `undefined`.
    absent = {tuple(topology.route("x", k, h)) for k in KEYS[:50] for h in (None, {"u": "x"})}
    assert len(absent) == 1


def test_hash_header_hashes_the_typed_field_value() -> None:
    topology = ring({f"q{i}": 1 for i in range(8)}, **{"hash-header": "h"})
    x = topology.get_exchange("x")
    assert isinstance(x, ConsistentHashExchange)
    for value, term in [
        ("alice", (Atom("longstr"), b"alice")),
        (b"\xff", (Atom("longstr"), b"\xff")),
        (bytearray(b"raw"), (Atom("binary"), b"raw")),
        (True, (Atom("bool"), Atom("true"))),
        (7, (Atom("signedint"), 7)),
        (2**40, (Atom("long"), 2**40)),
        (2.5, (Atom("double"), 2.5)),
        (decimal.Decimal("1.25"), (Atom("decimal"), (2, 125))),
        (decimal.Decimal("-1"), (Atom("decimal"), (0, 2**32 - 1))),
        (datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC), (Atom("timestamp"), 1704153600)),
        (None, (Atom("void"), Atom("undefined"))),
        ({"k": 1}, (Atom("table"), [(b"k", Atom("signedint"), 1)])),
        (["a", 2], (Atom("array"), [(Atom("longstr"), b"a"), (Atom("signedint"), 2)])),
    ]:
        assert field_term(value) == term, value
        choice = x.choose("k", {"h": value})
        assert choice is not None and choice.hash == phash2(term)
        assert x.route("k", {"h": value}) == x.route_uncached("k", {"h": value})


def test_hash_property_routes_by_the_property() -> None:
    topology = ring({"a": 1, "b": 1, "c": 1}, **{"hash-property": "message_id"})
    assert topology.uses_properties
    x = topology.get_exchange("x")
    assert isinstance(x, ConsistentHashExchange)
    for i in range(100):
        mid = f"m-{i}"
        expected = topology.route("x", "any", None, {"message_id": mid})
        # The plugin hashes the property's binary: the same as a routing key.
        assert expected == ring({"a": 1, "b": 1, "c": 1}).route("x", mid)
        assert topology.route("x", "other", None, SimpleNamespace(message_id=mid)) == expected
    # No properties given, or the property not set: `undefined`.
    missing = topology.route("x", "k", None, {"correlation_id": "c"})
    assert topology.route("x", "k2") == missing
    assert topology.route("x", "k3", None, None) == missing


def test_hash_property_timestamp_is_the_text_of_its_seconds() -> None:
    topology = ring({"a": 1, "b": 1, "c": 1, "d": 1}, **{"hash-property": "timestamp"})
    plain = ring({"a": 1, "b": 1, "c": 1, "d": 1})
    for seconds in range(1_700_000_000, 1_700_000_000 + 500, 7):
        when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        expected = plain.route("x", str(seconds))
        assert topology.route("x", "k", None, {"timestamp": when}) == expected
        assert topology.route("x", "k", None, {"timestamp": seconds}) == expected


def test_uses_properties_counts_exchanges_that_need_them() -> None:
    topology = Topology()
    assert not topology.uses_properties
    topology.declare_exchange("p", CHX, arguments={"hash-property": "correlation_id"})
    topology.declare_exchange("h", CHX, arguments={"hash-header": "h"})
    assert topology.uses_properties
    topology.delete_exchange("p")
    assert not topology.uses_properties


def test_properties_reach_an_exchange_behind_an_exchange_binding() -> None:
    topology = ring({"a": 1, "b": 1, "c": 1}, **{"hash-property": "correlation_id"})
    topology.declare_exchange("front", "fanout")
    topology.bind("front", Destination.exchange("x"))
    for i in range(50):
        props = {"correlation_id": f"c{i}"}
        assert topology.route("front", "k", None, props) == topology.route("x", "k", None, props)
        cc = {"CC": ["z"]}
        assert topology.route("front", "k", cc, props) == topology.route("x", "k", None, props)


def test_an_exchange_can_be_a_destination_on_the_ring() -> None:
    topology = ring({"a": 1})
    topology.declare_exchange("inner", "fanout")
    topology.add_queue("b1")
    topology.add_queue("b2")
    topology.bind("inner", Destination.queue("b1"))
    topology.bind("inner", Destination.queue("b2"))
    topology.bind("x", Destination.exchange("inner"), "1")
    seen = Counter(tuple(sorted(topology.route("x", key))) for key in KEYS[:2000])
    assert set(seen) == {("a",), ("b1", "b2")}


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("abc", 'The binding key must be an integer: <<"abc">>'),
        ("", "The binding key must be an integer: <<>>"),
        (" 5", 'The binding key must be an integer: <<" 5">>'),
        ("1e3", 'The binding key must be an integer: <<"1e3">>'),
        ("3.0", 'The binding key must be an integer: <<"3.0">>'),
        ('a"b', 'The binding key must be an integer: <<"a\\"b">>'),
        ("a\nb", 'The binding key must be an integer: <<"a\\nb">>'),
        ("\x7f", "The binding key must be an integer: <<127>>"),
        ("日本", "The binding key must be an integer: <<230,151,165,230,156,172>>"),
        ("0", "The binding key must be greater than 0"),
        ("-0", "The binding key must be greater than 0"),
        ("-3", "The binding key must be greater than 0"),
    ],
)
def test_a_binding_key_that_is_not_a_weight_is_406(key: str, text: str) -> None:
    # Texts as RabbitMQ 3.10.8 sends them (read off the reference with pika).
    topology = ring({})
    topology.add_queue("q")
    with pytest.raises(InvalidBinding) as caught:
        topology.bind("x", Destination.queue("q"), key)
    assert caught.value.reply_code == 406
    assert caught.value.reply_text == text
    assert binding_key_problem(key) == text
    assert not topology.bindings_from("x")


def test_a_printable_utf8_key_is_shown_byte_by_byte_as_latin1() -> None:
    # RabbitMQ's ~p prints the bytes c3 a9 as two latin1 characters; their
    # bytes on the wire are c3 a9 again, which a client reads as "é".
    text = binding_key_problem("é")
    assert text is not None
    assert text.encode("latin-1").decode("utf-8") == 'The binding key must be an integer: <<"é">>'


@pytest.mark.parametrize("key", ["1", "+5", "05", "100000000000000000000"])
def test_weights_rabbitmq_accepts(key: str) -> None:
    topology = ring({})
    topology.add_queue("q")
    topology.bind("x", Destination.queue("q"), key)
    x = topology.get_exchange("x")
    assert isinstance(x, ConsistentHashExchange) and x.buckets == int(key)
    assert topology.route("x", "k") == ["q"]


def test_a_huge_weight_costs_no_memory() -> None:
    # The plugin stores one map entry per bucket (a weight of 10^30 exhausted a
    # RabbitMQ node's memory); the ring here holds one slot per binding.
    topology = ring({"a": 10**30, "b": 1})
    assert Counter(q for key in KEYS[:200] for q in topology.route("x", key)) == {"a": 200}


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        ({"hash-property": "foo"}, "Unsupported property: foo"),
        ({"hash-property": "Message_id"}, "Unsupported property: Message_id"),
        ({"hash-property": "message-id"}, "Unsupported property: message-id"),
        (
            {"hash-header": "h", "hash-property": "message_id"},
            "hash-header and hash-property are mutually exclusive",
        ),
    ],
)
def test_bad_hash_arguments_are_406(arguments: dict[str, object], text: str) -> None:
    topology = Topology()
    with pytest.raises(PreconditionFailed) as caught:
        topology.declare_exchange("x", CHX, arguments=arguments)
    assert caught.value.reply_code == 406
    assert caught.value.reply_text == text
    assert not topology.has_exchange("x")


@pytest.mark.parametrize(
    "arguments",
    [
        {"hash-header": 5},
        {"hash-property": 5},
        {"hash-header": None},
        {"hash-header": bytearray(b"h")},
        {"hash-header": "h", "hash-property": 7},
    ],
)
def test_a_hash_argument_that_is_not_a_string_closes_the_connection(
    arguments: dict[str, object],
) -> None:
    # RabbitMQ's plugin crashes on these: 541 INTERNAL_ERROR, connection closed.
    with pytest.raises(InternalError) as caught:
        Topology().declare_exchange("x", CHX, arguments=arguments)
    assert caught.value.reply_code == 541
    assert caught.value.closes_connection


@pytest.mark.parametrize(
    "arguments",
    [{"hash-property": p} for p in ("message_id", "correlation_id", "timestamp")]
    + [{"hash-header": ""}, {"hash-header": "h"}, {"x-other": 1}],
)
def test_good_hash_arguments(arguments: dict[str, object]) -> None:
    Topology().declare_exchange("x", CHX, arguments=arguments)


def test_a_redeclare_does_not_check_the_arguments() -> None:
    # RabbitMQ validates an exchange's arguments when it creates it only, and
    # compares nothing but alternate-exchange on a redeclare.
    topology = Topology()
    topology.declare_exchange("x", CHX, arguments={"hash-header": "a"})
    topology.declare_exchange("x", CHX, arguments={"hash-property": "bogus"})
    x = topology.get_exchange("x")
    assert isinstance(x, ConsistentHashExchange) and x.hash_on == ("header", "a")


# -- traces ------------------------------------------------------------------------------


def test_trace_says_what_was_hashed_and_which_bucket() -> None:
    topology = ring({"a": 1, "b": 2, "c": 3})
    key = "order-17"
    (queue,) = topology.route("x", key)
    trace = topology.trace("x", key)
    assert trace.queues == [queue]
    key_hash = phash2(key.encode())
    bucket = jump_consistent_hash(key_hash, 6)
    held = {"a": "bucket 0", "b": "buckets 1-2", "c": "buckets 3-5"}[queue]
    weight = {"a": 1, "b": 2, "c": 3}[queue]
    assert trace.describe() == (
        f"exchange 'x' routing keys ['{key}']: 1 queue(s)\n"
        f"  queue '{queue}'\n"
        f"    exchange 'x' -> queue '{queue}' by consistent hash of routing key '{key}': "
        f"phash2 {key_hash}, bucket {bucket} of 6 (binding key '{weight}' holds {held})"
    )


def test_trace_of_a_header_and_of_a_missing_header() -> None:
    topology = ring({"a": 1, "b": 1}, **{"hash-header": "user"})
    line = topology.trace("x", "k", {"user": "alice"}).describe().splitlines()[-1]
    h = phash2((Atom("longstr"), b"alice"))
    assert f"by consistent hash of header 'user' = 'alice': phash2 {h}, bucket " in line
    line = topology.trace("x", "k").describe().splitlines()[-1]
    assert f"header 'user' (absent: undefined): phash2 {phash2(Atom('undefined'))}" in line


def test_trace_of_a_property() -> None:
    topology = ring({"a": 1, "b": 1}, **{"hash-property": "message_id"})
    line = topology.trace("x", "k", None, {"message_id": "m1"}).describe().splitlines()[-1]
    assert f"property 'message_id' = 'm1': phash2 {phash2(b'm1')}, bucket " in line


@pytest.mark.parametrize("seed", range(3))
def test_trace_agrees_with_route(seed: int) -> None:
    import random

    rng = random.Random(seed)
    topology = ring({f"q{i}": rng.randint(1, 4) for i in range(rng.randint(1, 7))})
    topology.declare_exchange("front", "topic")
    topology.bind("front", Destination.exchange("x"), "#")
    for key in KEYS[:300]:
        assert sorted(topology.trace("front", key).queues) == sorted(topology.route("front", key))
