"""Topology: the default exchange, declare/delete, bind/unbind, e2e, AE, CC/BCC.

Reply texts are the ones RabbitMQ 3.10.8 sends for the same operations (checked
against the reference broker with pika).
"""

from __future__ import annotations

import pytest

from routing.errors import (
    AccessRefused,
    InvalidBinding,
    PreconditionFailed,
    UnknownExchange,
    UnknownExchangeType,
    UnknownQueue,
)
from routing.exchanges import Binding, Destination
from routing.topology import Topology

Q = Destination.queue
X = Destination.exchange


@pytest.fixture
def topo() -> Topology:
    t = Topology()
    for q in ("q1", "q2", "q3"):
        t.add_queue(q)
    return t


def test_builtin_exchanges_exist() -> None:
    t = Topology()
    assert {"", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"} <= set(
        t.exchanges
    )
    assert t.get_exchange("amq.rabbitmq.trace").internal


def test_default_exchange_routes_to_queue_named_by_key(topo: Topology) -> None:
    assert topo.route("", "q1") == ["q1"]
    assert topo.route("", "nope") == []


def test_default_exchange_refuses_bind_unbind_declare_delete(topo: Topology) -> None:
    for op in (
        lambda: topo.bind("", Q("q1"), "q1"),
        lambda: topo.unbind("", Q("q1"), "q1"),
        lambda: topo.bind("amq.direct", X(""), "k"),
        lambda: topo.declare_exchange("", "direct"),
        lambda: topo.delete_exchange(""),
    ):
        with pytest.raises(AccessRefused) as info:
            op()
        assert info.value.reply_code == 403
        assert info.value.reply_text == "operation not permitted on the default exchange"


def test_unknown_exchange_is_404_keyerror(topo: Topology) -> None:
    with pytest.raises(UnknownExchange) as info:
        topo.route("missing", "k")
    assert info.value.reply_code == 404
    assert str(info.value) == "no exchange 'missing' in vhost '/'"
    assert isinstance(info.value, KeyError)


def test_unknown_type_is_503(topo: Topology) -> None:
    with pytest.raises(UnknownExchangeType) as info:
        topo.declare_exchange("x", "topik")
    assert info.value.reply_code == 503
    assert info.value.closes_connection
    assert info.value.reply_text == "unknown exchange type 'topik'"


def test_reserved_prefix(topo: Topology) -> None:
    with pytest.raises(AccessRefused) as info:
        topo.declare_exchange("amq.foo", "direct")
    assert info.value.reply_text == "exchange name 'amq.foo' contains reserved prefix 'amq.*'"
    # Redeclaring a built-in with the same properties is fine.
    topo.declare_exchange("amq.direct", "direct", durable=True)
    with pytest.raises(AccessRefused) as info:
        topo.delete_exchange("amq.direct")
    assert (
        info.value.reply_text == "deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    )


def test_inequivalent_redeclare(topo: Topology) -> None:
    topo.declare_exchange("t", "topic")
    with pytest.raises(PreconditionFailed) as info:
        topo.declare_exchange("t", "fanout")
    assert info.value.reply_text == (
        "inequivalent arg 'type' for exchange 't' in vhost '/': "
        "received 'fanout' but current is 'topic'"
    )
    with pytest.raises(PreconditionFailed) as info:
        topo.declare_exchange("t", "topic", durable=True)
    assert info.value.reply_text == (
        "inequivalent arg 'durable' for exchange 't' in vhost '/': "
        "received 'true' but current is 'false'"
    )
    with pytest.raises(PreconditionFailed) as info:
        topo.declare_exchange("t", "topic", arguments={"alternate-exchange": "zz"})
    assert info.value.reply_text == (
        "inequivalent arg 'alternate-exchange' for exchange 't' in vhost '/': "
        "received the value 'zz' of type 'longstr' but current is none"
    )
    # Other arguments are not compared, as in RabbitMQ.
    assert topo.declare_exchange("t", "topic", arguments={"x-foo": 1}).type == "topic"


def test_bind_errors_in_rabbitmq_order(topo: Topology) -> None:
    topo.declare_exchange("t", "topic")
    with pytest.raises(UnknownExchange) as info:
        topo.bind("nosuchx", Q("nosuchq"), "k")
    assert str(info.value) == "no exchange 'nosuchx' in vhost '/'"
    with pytest.raises(UnknownQueue) as qinfo:
        topo.bind("t", Q("nosuchq"), "k")
    assert str(qinfo.value) == "no queue 'nosuchq' in vhost '/'"
    with pytest.raises(UnknownExchange):
        topo.bind("t", X("nosuchx"), "k")


def test_headers_binding_validation() -> None:
    t = Topology()
    t.add_queue("q")
    t.declare_exchange("h", "headers")
    with pytest.raises(InvalidBinding) as info:
        t.bind("h", Q("q"), "", {"x-match": "foo"})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        'Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x'
    )
    with pytest.raises(InvalidBinding) as info:
        t.bind("h", Q("q"), "", {"x-match": 5})
    assert info.value.reply_text == (
        "Invalid x-match field type signedint (value 5); expected longstr"
    )
    # Only the headers type validates x-match.
    t.declare_exchange("d", "direct")
    assert t.bind("d", Q("q"), "", {"x-match": "foo"})


def test_bind_is_idempotent_and_unbind_missing_is_fine(topo: Topology) -> None:
    topo.declare_exchange("t", "topic")
    assert topo.bind("t", Q("q1"), "a.*")
    assert not topo.bind("t", Q("q1"), "a.*")
    assert topo.bind("t", Q("q1"), "a.*", {"x-any": 1})  # arguments make it another binding
    assert topo.unbind("t", Q("q1"), "zzz").bindings_removed == []
    assert topo.unbind("nosuchx", Q("nosuchq"), "k").bindings_removed == []
    removed = topo.unbind("t", Q("q1"), "a.*").bindings_removed
    assert removed == [Binding("t", Q("q1"), "a.*")]
    assert topo.route("t", "a.b") == ["q1"]  # the one with arguments is still there


def test_binding_arguments_compare_by_type(topo: Topology) -> None:
    topo.declare_exchange("d", "direct")
    assert topo.bind("d", Q("q1"), "k", {"a": 1})
    assert topo.bind("d", Q("q1"), "k", {"a": True})  # bool is not int on the wire
    assert len(topo.bindings_for_queue("q1")) == 2


def test_remove_queue_removes_bindings_and_auto_deletes(topo: Topology) -> None:
    topo.declare_exchange("ad", "fanout", auto_delete=True)
    topo.declare_exchange("up", "fanout", auto_delete=True)
    topo.bind("up", X("ad"))
    topo.bind("ad", Q("q1"))
    topo.bind("ad", Q("q2"))
    assert topo.has_bindings("ad")
    changes = topo.remove_queue("q1")
    assert [b.destination for b in changes.bindings_removed] == [Q("q1")]
    assert topo.has_exchange("ad")
    changes = topo.remove_queue("q2")
    # ad lost its last binding as source: deleted, which removes up -> ad, so up goes too.
    assert changes.exchanges_deleted == ["ad", "up"]
    assert not topo.has_exchange("ad") and not topo.has_exchange("up")
    assert "q2" not in topo.queues


def test_auto_delete_exchange_without_bindings_stays(topo: Topology) -> None:
    topo.declare_exchange("ad", "fanout", auto_delete=True)
    assert topo.has_exchange("ad")
    topo.bind("ad", Q("q1"))
    assert topo.unbind("ad", Q("q1")).exchanges_deleted == ["ad"]


def test_delete_exchange(topo: Topology) -> None:
    topo.declare_exchange("t", "topic")
    topo.declare_exchange("src", "fanout")
    topo.bind("t", Q("q1"), "#")
    topo.bind("src", X("t"))
    with pytest.raises(PreconditionFailed) as info:
        topo.delete_exchange("t", if_unused=True)
    assert info.value.reply_text == "exchange 't' in vhost '/' in use"
    changes = topo.delete_exchange("t")
    assert changes.exchanges_deleted == ["t"]
    assert len(changes.bindings_removed) == 2
    assert topo.bindings_for_queue("q1") == []
    assert topo.bindings_from("src") == []
    assert topo.delete_exchange("t") == type(changes)()  # missing: not an error


def test_exchange_to_exchange_loop_reaches_each_queue_once(topo: Topology) -> None:
    for name in ("a", "b", "c"):
        topo.declare_exchange(name, "fanout")
    topo.bind("a", X("b"))
    topo.bind("b", X("c"))
    topo.bind("c", X("a"))
    topo.bind("a", Q("q1"))
    topo.bind("b", Q("q1"))
    topo.bind("c", Q("q2"))
    assert sorted(topo.route("a", "k")) == ["q1", "q2"]
    assert sorted(topo.route("c", "k")) == ["q1", "q2"]


def test_alternate_exchange(topo: Topology) -> None:
    topo.declare_exchange("unrouted", "fanout")
    topo.declare_exchange("main", "direct", arguments={"alternate-exchange": "unrouted"})
    topo.bind("unrouted", Q("q3"))
    topo.bind("main", Q("q1"), "known")
    assert topo.route("main", "known") == ["q1"]
    assert topo.route("main", "other") == ["q3"]
    # A missing alternate exchange is ignored, as is one that loops back.
    topo.declare_exchange("lonely", "direct", arguments={"alternate-exchange": "gone"})
    assert topo.route("lonely", "k") == []
    topo.declare_exchange("selfish", "direct", arguments={"alternate-exchange": "selfish"})
    assert topo.route("selfish", "k") == []


def test_alternate_exchange_applies_per_exchange_in_chain(topo: Topology) -> None:
    topo.declare_exchange("ae", "fanout")
    topo.bind("ae", Q("q3"))
    topo.declare_exchange("inner", "direct", arguments={"alternate-exchange": "ae"})
    topo.declare_exchange("outer", "fanout")
    topo.bind("outer", X("inner"))
    # outer matched (it sent the message to inner), inner matched nothing: inner's AE.
    assert topo.route("outer", "k") == ["q3"]


def test_internal_exchange_refuses_publish(topo: Topology) -> None:
    topo.declare_exchange("i", "fanout", internal=True)
    topo.bind("i", Q("q1"))
    with pytest.raises(AccessRefused) as info:
        topo.route("i", "k")
    assert info.value.reply_text == "cannot publish to internal exchange 'i' in vhost '/'"
    topo.declare_exchange("front", "fanout")
    topo.bind("front", X("i"))
    assert topo.route("front", "k") == ["q1"]  # reachable through a binding


def test_cc_and_bcc(topo: Topology) -> None:
    topo.declare_exchange("d", "direct")
    topo.bind("d", Q("q1"), "one")
    topo.bind("d", Q("q2"), "two")
    topo.bind("d", Q("q3"), "three")
    assert sorted(topo.route("d", "one", {"CC": ["two"], "BCC": ["three"]})) == [
        "q1",
        "q2",
        "q3",
    ]
    # The default exchange honours CC too.
    assert sorted(topo.route("", "q1", {"CC": ["q2", "nope"]})) == ["q1", "q2"]
    # Non-string entries are skipped; a CC that is not an array is a 406.
    assert topo.route("d", "x", {"CC": [5, "two"]}) == ["q2"]
    with pytest.raises(PreconditionFailed) as info:
        topo.route("d", "one", {"CC": "two"})
    assert info.value.reply_text == 'invalid message: {unacceptable_type_in_header,"CC",longstr}'


def test_cc_follows_exchange_to_exchange(topo: Topology) -> None:
    topo.declare_exchange("front", "topic")
    topo.declare_exchange("back", "direct")
    topo.bind("front", X("back"), "#")
    topo.bind("back", Q("q2"), "cc.key")
    assert topo.route("front", "main", {"CC": ["cc.key"]}) == ["q2"]


def test_trace_shows_chain(topo: Topology) -> None:
    topo.declare_exchange("ae", "fanout")
    topo.declare_exchange("front", "topic", arguments={"alternate-exchange": "ae"})
    topo.declare_exchange("back", "direct")
    topo.bind("front", X("back"), "order.#")
    topo.bind("back", Q("q1"), "order.created")
    topo.bind("ae", Q("q3"))
    tr = topo.trace("front", "order.created")
    assert tr.queues == ["q1"]
    assert [h.binding for h in tr.paths["q1"]] == [
        Binding("front", X("back"), "order.#"),
        Binding("back", Q("q1"), "order.created"),
    ]
    assert tr.describe() == (
        "exchange 'front' routing keys ['order.created']: 1 queue(s)\n"
        "  queue 'q1'\n"
        "    exchange 'front' -> exchange 'back' by key 'order.#' matched 'order.created'\n"
        "    exchange 'back' -> queue 'q1' by key 'order.created' matched 'order.created'"
    )
    tr = topo.trace("front", "misc")
    assert tr.queues == ["q3"]
    assert [h.via for h in tr.paths["q3"]] == ["alternate-exchange", "binding"]
