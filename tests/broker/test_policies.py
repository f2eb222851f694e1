"""Policies and operator policies in the core: validation, matching, merging,
and what a vhost's queues and exchanges do when a policy is set or cleared.

No broker, no socket: `broker.core.policies` and `VHost` on their own. The
behaviour over AMQP, against RabbitMQ and Warren alike, is the conformance
area conformance/tests/test_policies.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker.core.message import Message
from broker.core.policies import (
    EXCHANGE_KEYS,
    OPERATOR_KEYS,
    PRECEDENCE,
    QUEUE_KEYS,
    REFUSED_KEYS,
    OperatorPolicy,
    Policy,
    PolicyInvalid,
    VHostPolicies,
    erlang_term,
    merged_definition,
    policy_fields,
    queue_values,
    validate_policy,
)
from broker.core.vhost import VHost
from protocol.properties import BasicProperties


def policy(name: str = "p", pattern: str = ".", priority: Any = 0, apply_to: str = "all",
           operator: bool = False, **definition: Any) -> Policy:
    return validate_policy(
        "/", name, pattern=pattern, priority=priority, apply_to=apply_to, operator=operator,
        definition={k.replace("_", "-"): v for k, v in definition.items()},
    )


def refused(**kwargs: Any) -> str:
    with pytest.raises(PolicyInvalid) as caught:
        validate_policy("/", "p", **kwargs)
    return str(caught.value)


# -- validation: RabbitMQ 3.10.8's texts (read off the reference node) -----------------


@pytest.mark.parametrize(
    ("definition", "line"),
    [
        ({"max-length": "x"}, '<<"x">> is not a valid maximum length'),
        ({"max-length": -1}, "-1 is not a valid maximum length"),
        ({"max-length": 1.5}, "1.5 is not a valid maximum length"),
        ({"max-length": 1e20}, "1.0e20 is not a valid maximum length"),
        ({"max-length": None}, "null is not a valid maximum length"),
        ({"max-length": {"a": 1}}, '#{<<"a">> => 1} is not a valid maximum length'),
        ({"max-length": [1, "b"]}, '[1,<<"b">>] is not a valid maximum length'),
        ({"message-ttl": True}, "true is not a valid message TTL"),
        ({"expires": 0}, "0 is not a valid queue expiry"),
        ({"max-length-bytes": "x"}, '<<"x">> is not a valid maximum length in bytes'),
        ({"overflow": "x"}, '<<"x">> is not a valid overflow value'),
        ({"dead-letter-exchange": 1}, "1 is not a valid dead letter exchange name"),
        ({"dead-letter-routing-key": 1}, "1 is not a valid dead letter routing key"),
        ({"alternate-exchange": 1}, "1 is not a valid alternate exchange name"),
        ({"delivery-limit": "x"}, '<<"x">> is not a valid delivery limit'),
        # Keys in sorted order; the first bad value only, before unknown keys.
        ({"max-length": "a", "message-ttl": -1}, '<<"a">> is not a valid maximum length'),
        ({"zzz": 1, "max-length": "x"}, '<<"x">> is not a valid maximum length'),
        ({"zzz": 1, "aaa": 2}, '[{<<"aaa">>,2},{<<"zzz">>,1}] are not recognised policy settings'),
        ({"max-lenght": 100},
         '[{<<"max-lenght">>,100}] are not recognised policy settings'),
        # RabbitMQ 3.12's key (broker.core.policies), with 3.12's text.
        ({"consumer-timeout": -1}, "-1 is not a valid consumer timeout"),
        ({"consumer-timeout": "1000"}, '<<"1000">> is not a valid consumer timeout'),
        ({}, "no policy provided"),
        ([1], "definition must be a dictionary: [1]"),
    ],
)
def test_a_bad_definition_gets_rabbitmqs_text(definition: Any, line: str) -> None:
    assert refused(pattern=".", definition=definition) == f"Validation failed\n\n{line}\n"


def test_every_problem_is_listed_in_rabbitmqs_order() -> None:
    text = refused(pattern="(", priority="x", apply_to="no", definition={"max-length": "a"})
    lines = text.split("\n")
    assert lines[:3] == ["Validation failed", "", '<<"a">> is not a valid maximum length']
    assert lines[3] == "apply-to 'no' unrecognised; should be 'queues', 'exchanges' or 'all'"
    assert lines[4].startswith("pattern should be regular expression but is invalid: {")
    assert lines[5] == 'priority should be a number, actually was <<"x">>'


@pytest.mark.parametrize(
    ("kwargs", "line"),
    [
        ({"pattern": 1}, "pattern should be a binary but was 1"),
        ({"priority": "1"}, 'priority should be a number, actually was <<"1">>'),
        ({"priority": None}, "priority should be a number, actually was null"),
        ({"priority": True}, "priority should be a number, actually was true"),
    ],
)
def test_pattern_and_priority_are_checked(kwargs: dict[str, Any], line: str) -> None:
    arguments = {"pattern": ".", "definition": {"max-length": 1}, **kwargs}
    assert refused(**arguments) == f"Validation failed\n\n{line}\n"


def test_any_number_is_a_priority() -> None:
    assert policy(priority=1.5, max_length=1).priority == 1.5
    assert policy(priority=-3, max_length=1).priority == -3


@pytest.mark.parametrize("key", sorted(REFUSED_KEYS))
def test_settings_warren_does_not_implement_are_refused_with_the_reason(key: str) -> None:
    text = refused(pattern=".", definition={key: "x"})
    assert f'<<"{key}">> is a RabbitMQ policy setting that Warren does not implement' in text
    assert REFUSED_KEYS[key] in text


def test_an_operator_policy_takes_the_numeric_limits_only() -> None:
    assert set(OPERATOR_KEYS) == {
        "message-ttl", "expires", "max-length", "max-length-bytes", "delivery-limit"
    }
    assert refused(pattern=".", definition={"dead-letter-exchange": "x"}, operator=True) == (
        'Validation failed\n\n[{<<"dead-letter-exchange">>,<<"x">>}] are not recognised '
        "policy settings\n"
    )
    # RabbitMQ's operator policies know these; Warren does not implement them.
    assert "does not implement" in refused(
        pattern=".", definition={"max-in-memory-length": 1}, operator=True
    )


def test_a_definition_is_kept_sorted_by_key() -> None:
    assert list(policy(message_ttl=1, max_length=2, expires=3).definition) == [
        "expires", "max-length", "message-ttl"
    ]


def test_erlang_terms() -> None:
    assert erlang_term("a\"b") == '<<"a\\"b">>'
    assert erlang_term(100.0) == "100.0"
    assert erlang_term(False) == "false"


# -- matching ------------------------------------------------------------------------


def test_apply_to() -> None:
    for apply_to, queues, exchanges in (("all", True, True), ("queues", True, False),
                                        ("exchanges", False, True)):
        p = policy(apply_to=apply_to, max_length=1)
        assert p.matches("queues", "q") is queues
        assert p.matches("exchanges", "x") is exchanges


def test_the_pattern_is_searched_unanchored_in_the_name_bytes() -> None:
    p = policy(pattern=r"orders\.", max_length=1)
    assert p.matches("queues", "eu.orders.created")
    assert not p.matches("queues", "ordersXcreated")
    # PCRE without UTF mode: one "." is one byte, \w is ASCII.
    assert policy(pattern="^.$", max_length=1).matches("queues", "a")
    assert not policy(pattern="^.$", max_length=1).matches("queues", "é")
    assert policy(pattern="^..$", max_length=1).matches("queues", "é")
    assert not policy(pattern=r"^\w$", max_length=1).matches("queues", "é")


def test_the_highest_priority_wins_and_ties_go_to_the_first_name() -> None:
    store = VHostPolicies()
    store.put(policy("b", priority=1, max_length=1))
    store.put(policy("a", priority=1, max_length=2))
    store.put(policy("c", priority=0, max_length=3))
    store.put(policy("z", pattern="^nothing$", priority=9, max_length=4))
    chosen, operator = store.match("queues", "q")
    assert (chosen.name if chosen else None, operator) == ("a", None)
    store.put(policy("c", priority=2, max_length=3))
    assert store.match("queues", "q")[0].name == "c"  # type: ignore[union-attr]


def test_operator_policies_are_a_namespace_of_their_own() -> None:
    store = VHostPolicies()
    assert store.put(policy("same", max_length=5))
    assert store.put(policy("same", max_length=2, operator=True))
    p, op = store.match("queues", "q")
    assert isinstance(op, OperatorPolicy) and not isinstance(p, OperatorPolicy)
    assert not store.put(policy("same", max_length=6))  # replaced, not new
    assert store.delete("same", operator=True) is not None
    assert store.match("queues", "q")[1] is None


# -- merging and precedence ------------------------------------------------------------


def test_policy_and_operator_policy_merge_key_by_key_the_lower_winning() -> None:
    p = policy(max_length=5, message_ttl=60000, dead_letter_exchange="dlx")
    op = policy("o", operator=True, max_length=3, expires=600000, message_ttl=90000)
    assert merged_definition(p, op) == {
        "dead-letter-exchange": "dlx", "expires": 600000, "max-length": 3, "message-ttl": 60000,
    }
    assert merged_definition(None, op) == op.definition
    assert merged_definition(p, None) == p.definition
    assert merged_definition(None, None) == {}


def test_the_precedence_table() -> None:
    assert PRECEDENCE == {
        "message-ttl": "min", "expires": "min", "max-length": "min", "max-length-bytes": "min",
        "delivery-limit": "min", "overflow": "argument", "dead-letter-exchange": "argument",
        "dead-letter-routing-key": "argument", "alternate-exchange": "argument",
        "consumer-timeout": "min",  # RabbitMQ 3.12's key: the lower wins
    }
    assert EXCHANGE_KEYS == ("alternate-exchange",)


@pytest.mark.parametrize(
    ("key", "argument", "by_policy", "effective"),
    [
        ("message-ttl", 100, 50, 50),
        ("message-ttl", 50, 100, 50),
        ("expires", 1000, 2000, 1000),
        ("consumer-timeout", 5000, 1000, 1000),
        ("consumer-timeout", 1000, 5000, 1000),
        ("max-length", 5, 2, 2),
        ("max-length-bytes", 10, 20, 10),
        ("delivery-limit", 3, 1, 1),
        ("overflow", "reject-publish", "drop-head", "reject-publish"),
        ("dead-letter-exchange", "by-arg", "by-policy", "by-arg"),
        ("dead-letter-routing-key", "by-arg", "by-policy", "by-arg"),
    ],
)
def test_argument_against_policy_per_key(key: str, argument: Any, by_policy: Any,
                                         effective: Any) -> None:
    p = policy(**{key.replace("-", "_"): by_policy})
    assert queue_values({"x-" + key: argument}, p, None)[key] == effective
    assert queue_values({}, p, None)[key] == by_policy
    assert queue_values({"x-" + key: argument}, None, None)[key] == argument


def test_argument_policy_and_operator_policy_the_lowest_wins() -> None:
    p = policy(max_length=5)
    op = policy("o", operator=True, max_length=3)
    assert queue_values({"x-max-length": 4}, p, op)["max-length"] == 3
    assert queue_values({"x-max-length": 1}, p, op)["max-length"] == 1


def test_queue_keys_are_the_queue_features() -> None:
    assert set(QUEUE_KEYS) == {
        "message-ttl", "expires", "max-length", "max-length-bytes", "overflow",
        "dead-letter-exchange", "dead-letter-routing-key", "delivery-limit", "consumer-timeout",
    }


def test_policy_fields_as_the_management_api_shows_them() -> None:
    p = policy("p", max_length=5)
    op = policy("o", operator=True, max_length=3)
    assert policy_fields(p, op) == {"policy": "p", "operator_policy": "o",
                                    "effective_policy_definition": {"max-length": 3}}
    assert policy_fields(None, None) == {"policy": None, "operator_policy": None,
                                         "effective_policy_definition": {}}
    assert policy_fields(p, None, "exchanges") == {"policy": "p"}
    assert policy_fields(None, None, "exchanges") == {}


# -- a vhost's queues and exchanges ------------------------------------------------------


def publish(vhost: VHost, queue: str, body: bytes, **properties: Any) -> None:
    raw = BasicProperties(**properties).encode()
    vhost.queues[queue].enqueue(Message("", queue, raw, body))


def bodies(vhost: VHost, queue: str) -> list[bytes]:
    out = []
    while (entry := vhost.queues[queue].get()) is not None:
        out.append(entry.message.body)
    return out


def test_a_policy_applies_at_declare_and_to_existing_queues() -> None:
    vhost = VHost("/")
    vhost.set_policy(policy("first", pattern="^orders\\.", max_length=2))
    vhost.declare_queue(None, "orders.new")
    vhost.declare_queue(None, "billing")
    assert vhost.queues["orders.new"].max_length == 2
    assert vhost.queues["billing"].max_length is None
    for i in range(4):
        publish(vhost, "billing", f"m{i}".encode())
    vhost.set_policy(policy("second", pattern="^billing$", max_length=1))
    assert vhost.queues["billing"].effective == {"max-length": 1}
    assert bodies(vhost, "billing") == [b"m3"]  # a lower limit drops at once
    assert vhost.policy_fields("queues", "billing")["policy"] == "second"


def test_a_lower_limit_dead_letters_what_it_drops() -> None:
    vhost = VHost("/")
    vhost.declare_queue(None, "dead")
    vhost.declare_queue(None, "q")
    for i in range(3):
        publish(vhost, "q", f"m{i}".encode())
    vhost.set_policy(policy(pattern="^q$", max_length=1, dead_letter_exchange="",
                            dead_letter_routing_key="dead"))
    assert bodies(vhost, "dead") == [b"m0", b"m1"]
    assert bodies(vhost, "q") == [b"m2"]


def test_reject_publish_keeps_what_is_queued_when_the_limit_falls() -> None:
    vhost = VHost("/")
    vhost.declare_queue(None, "q", arguments={"x-overflow": "reject-publish"})
    for i in range(3):
        publish(vhost, "q", f"m{i}".encode())
    vhost.set_policy(policy(pattern="^q$", max_length=1))
    assert vhost.queues["q"].message_count == 3
    assert not vhost.queues["q"].enqueue(Message("", "q", b"", b"refused"))


def test_clearing_a_policy_restores_the_arguments() -> None:
    vhost = VHost("/")
    vhost.declare_queue(None, "q", arguments={"x-max-length": 10, "x-dead-letter-exchange": "a"})
    vhost.set_policy(policy("p", pattern="^q$", max_length=2, dead_letter_exchange="b",
                            message_ttl=1000))
    queue = vhost.queues["q"]
    assert (queue.max_length, queue.dead_letter_exchange, queue.message_ttl) == (2, "a", 1000)
    assert vhost.clear_policy("p")
    assert (queue.max_length, queue.dead_letter_exchange, queue.message_ttl) == (10, "a", None)
    assert queue.policy is None
    assert not vhost.clear_policy("p")


def test_a_new_ttl_is_not_given_to_queued_messages() -> None:
    vhost = VHost("/")
    vhost.declare_queue(None, "q")
    publish(vhost, "q", b"old")
    vhost.set_policy(policy(pattern="^q$", message_ttl=0))
    publish(vhost, "q", b"new")
    queue = vhost.queues["q"]
    assert queue.message_count == 2  # "new" waits behind "old", as at RabbitMQ
    assert bodies(vhost, "q") == [b"old"]  # then "new" expires at the head


def test_an_exchange_gets_its_alternate_exchange_by_policy_unless_it_has_one() -> None:
    vhost = VHost("/")
    vhost.declare_exchange("plain", "direct")
    vhost.declare_exchange("own", "direct", arguments={"alternate-exchange": "mine"})
    vhost.set_policy(policy("ae", pattern="^(plain|own|later)$", apply_to="exchanges",
                            alternate_exchange="amq.fanout"))
    vhost.declare_exchange("later", "direct")
    exchanges = vhost.topology.exchanges
    assert exchanges["plain"].alternate_exchange == "amq.fanout"
    assert exchanges["later"].alternate_exchange == "amq.fanout"
    assert exchanges["own"].alternate_exchange == "mine"
    assert vhost.policy_fields("exchanges", "plain") == {"policy": "ae"}
    vhost.clear_policy("ae")
    assert exchanges["plain"].alternate_exchange is None
    assert exchanges["own"].alternate_exchange == "mine"


def test_a_policy_for_queues_leaves_exchanges_alone() -> None:
    vhost = VHost("/")
    vhost.declare_exchange("x", "direct")
    vhost.set_policy(policy(pattern="^x$", apply_to="queues", alternate_exchange="amq.fanout"))
    assert vhost.topology.exchanges["x"].alternate_exchange is None


def test_the_default_exchange_never_gets_an_alternate_exchange() -> None:
    vhost = VHost("/")
    vhost.set_policy(policy(pattern=".*", alternate_exchange="amq.fanout"))
    assert vhost.topology.exchanges[""].alternate_exchange is None
    assert vhost.topology.exchanges["amq.direct"].alternate_exchange == "amq.fanout"


def test_an_unchanged_match_does_not_reconfigure_the_queue() -> None:
    vhost = VHost("/")
    vhost.declare_queue(None, "q")
    vhost.set_policy(policy("p", pattern="^q$", max_length=5))
    queue = vhost.queues["q"]
    before = queue.effective
    vhost.set_policy(policy("other", pattern="^nothing$", max_length=1))
    assert queue.effective is before


# -- warren serve --config -------------------------------------------------------------


def test_serve_config_sets_the_files_policies_before_its_topology(tmp_path) -> None:
    import pika

    from broker.testing import BrokerThread

    conf = tmp_path / "warren.conf"
    conf.write_text(
        'policy short pattern "^orders\\\\." apply-to queues\n'
        "    max-length 2\n"
        'policy unrouted pattern "^orders$" apply-to exchanges\n'
        "    alternate-exchange lost\n"
        'operator-policy cap pattern ".*"\n'
        "    max-length 1000\n"
        "exchange orders type direct\n"
        "exchange lost type fanout\n"
        "queue orders.eu\n"
        "queue lost\n"
        "bind lost to lost\n",
        encoding="utf-8",
    )
    thread = BrokerThread(config_path=conf)
    thread.start()
    try:
        connection = pika.BlockingConnection(pika.URLParameters(thread.url))
        channel = connection.channel()
        for i in range(4):
            channel.basic_publish("", "orders.eu", f"m{i}".encode())
        channel.basic_publish("orders", "no-binding", b"unroutable")
        assert channel.queue_declare("orders.eu", passive=True).method.message_count == 2
        assert channel.queue_declare("lost", passive=True).method.message_count == 1
        connection.close()
        fields = thread.run_sync(
            lambda: thread.broker.vhosts["/"].policy_fields("queues", "orders.eu")
        )
        assert fields == {"policy": "short", "operator_policy": "cap",
                          "effective_policy_definition": {"max-length": 2}}
    finally:
        thread.stop()


def test_apply_config_refuses_a_policy_the_broker_refuses_before_setting_any() -> None:
    from broker.topology_config import ConfigRefused, apply_config
    from routing.model import PolicyDecl, TopologyConfig

    # `check` refuses these too; a model built in code reaches the broker's checks.
    model = TopologyConfig([
        PolicyDecl("fine", ".", {"max-length": 1}),
        PolicyDecl("mirrored", ".", {"ha-mode": "all"}),
    ])
    vhost = VHost("/")
    with pytest.raises(ConfigRefused) as refused:
        apply_config(vhost, model, "x.conf")
    assert str(refused.value) == (
        "x.conf:0: policy 'mirrored': <<\"ha-mode\">> is a RabbitMQ policy setting that Warren "
        "does not implement (classic queue mirroring: Warren is a single node)"
    )
    assert not vhost.policies
