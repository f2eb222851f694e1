"""x-consistent-hash in the configuration language and in definitions JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing import config
from routing.exchanges import ConsistentHashExchange, Destination
from routing.model import BindingDecl, ExchangeDecl
from routing.topology import Topology

DATA = Path(__file__).parent / "data"

SHARDS = """\
# Orders, sharded by customer: one customer's orders stay in order in one queue.
exchange orders.sharded type x-consistent-hash durable
    hash-header "customer"
exchange events type x-consistent-hash
    hash-property message_id
queue shard-a durable
queue shard-b durable
queue shard-c durable
bind shard-a to orders.sharded weight 1
bind shard-b to orders.sharded weight 1
bind shard-c to orders.sharded weight 2
bind shard-a to events weight 1
bind shard-b to events key "+2"
"""


def errors(text: str) -> list[str]:
    return [f"{e.line}:{e.column}: {e.message}" for e in config.check(text, "t.conf")]


def test_the_example_parses_formats_and_applies() -> None:
    assert config.check(SHARDS) == []
    m = config.parse(SHARDS)
    assert config.format(m) == SHARDS  # canonical as written
    assert m.exchanges[0] == ExchangeDecl(
        "orders.sharded", "x-consistent-hash", durable=True, arguments={"hash-header": "customer"}
    )
    assert m.exchanges[1].arguments == {"hash-property": "message_id"}
    assert [b.routing_key for b in m.bindings] == ["1", "1", "2", "1", "+2"]
    t = Topology()
    m.apply_to(t)
    x = t.get_exchange("orders.sharded")
    assert isinstance(x, ConsistentHashExchange)
    assert x.buckets == 4 and x.hash_on == ("header", "customer")
    assert len(t.route("orders.sharded", "", {"customer": "c-42"})) == 1
    assert t.uses_properties


def test_weight_is_written_for_plain_weights_and_key_otherwise() -> None:
    m = config.TopologyConfig([
        ExchangeDecl("x", "x-consistent-hash"),
        ExchangeDecl("d", "direct"),
        BindingDecl("x", "q", routing_key="3"),
        BindingDecl("x", "q", routing_key="007"),
        BindingDecl("d", "q", routing_key="3"),
    ])  # fmt: skip
    lines = config.format(m).splitlines()
    assert lines[-3:] == ['bind q to x weight 3', 'bind q to x key "007"', 'bind q to d key "3"']


def test_hash_arguments_on_other_types_are_written_as_arguments() -> None:
    m = config.TopologyConfig([ExchangeDecl("d", "direct", arguments={"hash-header": 5})])
    text = config.format(m)
    assert text == "exchange d type direct\n    argument hash-header 5\n"
    assert config.parse(text) == m


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "exchange d type direct\n    hash-header user\n",
            "2:5: hash-header is an option of x-consistent-hash exchanges, and 'd' is type direct",
        ),
        (
            "exchange x type x-consistent-hash\n    hash-header user\n    hash-property timestamp\n",
            "3:19: hash-header and hash-property cannot both be given",
        ),
        (
            "exchange x type x-consistent-hash\n    hash-property message-id\n",
            "2:19: unknown hash-property 'message-id': did you mean 'message_id'?",
        ),
        (
            "exchange x type x-consistent-hash\n    argument hash-property reply_to\n",
            "2:28: unknown hash-property 'reply_to'",
        ),
        (
            "exchange x type x-consistent-hash\n    argument hash-header 5\n",
            "1:10: hash-header must be a string (a longstr field)",
        ),
        ("exchange x type x-consistent-has\n", "1:17: unknown exchange type 'x-consistent-has': "
         "did you mean 'x-consistent-hash'?"),
    ],
)
def test_exchange_errors(text: str, message: str) -> None:
    assert errors(text) == [message]


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        ('bind q to x key "abc"', "a binding to x-consistent-hash exchange 'x' needs a weight, "
         "a whole number of 1 or more, as its key, not 'abc'"),
        ("bind q to x", "a binding to x-consistent-hash exchange 'x' needs a weight, a whole "
         "number of 1 or more, as its key, not ''"),
        ('bind q to x key "0"', "a binding to x-consistent-hash exchange 'x' needs a weight, "
         "a whole number of 1 or more, as its key, not '0'"),
        ("bind q to x weight 0", "weight takes a whole number of 1 or more, not 0"),
        ("bind q to x weight two", "weight takes a whole number of 1 or more, not two"),
        ('bind q to x weight "2"', 'weight takes a whole number of 1 or more, not "2"'),
        ('bind q to x weight 2 key "2"', "a binding has a weight or a key, not both"),
        ("bind q to x weight", "weight needs a whole number"),
        ("bind q to d weight 2", "weight is for bindings to x-consistent-hash exchanges; "
         "'d' is type direct"),
        ("bind q to amq.direct weight 2", "weight is for bindings to x-consistent-hash "
         "exchanges; 'amq.direct' is built in"),
    ],
)
def test_binding_errors(binding: str, message: str) -> None:
    head = "exchange x type x-consistent-hash\nexchange d type direct\nqueue q\n"
    found = errors(head + binding + "\n")
    assert len(found) == 1, found
    assert found[0].split(": ", 1)[1] == message


@pytest.mark.parametrize("key", ["1", "+2", "05", "12345678901234567890"])
def test_keys_rabbitmq_takes_as_weights_are_accepted(key: str) -> None:
    assert errors(f'exchange x type x-consistent-hash\nqueue q\nbind q to x key "{key}"\n') == []


def test_to_definitions_and_back() -> None:
    m = config.parse(SHARDS)
    data = json.loads(json.dumps(config.to_definitions(m)))
    assert data["exchanges"][0] == {
        "name": "orders.sharded", "vhost": "/", "type": "x-consistent-hash", "durable": True,
        "auto_delete": False, "internal": False, "arguments": {"hash-header": "customer"},
    }  # fmt: skip
    assert [b["routing_key"] for b in data["bindings"]] == ["1", "1", "2", "1", "+2"]
    again = config.from_definitions(data)
    assert again.same_topology(m)
    assert again.topology == m.topology  # the order too: it is the order of the ring


def test_from_rabbitmq_export() -> None:
    # Exported by RabbitMQ 3.10.8 with the plugin (GET /api/definitions/%2F).
    data = json.loads((DATA / "rabbitmq-3.10.8-consistent-hash-definitions.json").read_text())
    m = config.from_definitions(data)
    shards = next(x for x in m.exchanges if x.name == "chdef.shards")
    assert shards == ExchangeDecl(
        "chdef.shards", "x-consistent-hash", durable=True, arguments={"hash-header": "customer"}
    )
    text = config.format(m)
    assert "bind chdef.a to chdef.shards weight 1\n" in text
    assert 'bind exchange chdef.inner to chdef.shards key "+3"\n' in text
    assert 'bind chdef.a to chdef.by-id key "05"\n' in text
    assert config.parse(text).same_topology(m)
    t = Topology()
    m.apply_to(t)
    assert t.route("chdef.by-id", "k", None, {"message_id": "m"}) == ["chdef.a"]
    ours = config.to_definitions(config.parse(text))
    for kind in ("exchanges", "queues", "bindings"):
        mine = [{k: v for k, v in i.items() if k != "vhost"} for i in ours[kind]]
        assert sorted(mine, key=json.dumps) == sorted(data[kind], key=json.dumps)


def test_from_definitions_reports_what_rabbitmq_refuses() -> None:
    data = {
        "exchanges": [
            {"name": "a", "type": "x-consistent-hash", "arguments": {"hash-property": "nope"}},
            {"name": "b", "type": "x-consistent-hash",
             "arguments": {"hash-header": "h", "hash-property": "timestamp"}},
            {"name": "c", "type": "x-consistent-hash", "arguments": {"hash-header": 1}},
            {"name": "d", "type": "direct", "arguments": {"hash-header": 1}},
        ],
        "queues": [{"name": "q"}],
        "bindings": [
            {"source": "a", "destination": "q", "routing_key": "x"},
            {"source": "a", "destination": "q", "routing_key": "-1"},
            {"source": "d", "destination": "q", "routing_key": "x"},
        ],
    }  # fmt: skip
    with pytest.raises(config.DefinitionsError) as caught:
        config.from_definitions(data)
    assert caught.value.problems == [
        "exchanges[0].arguments: Unsupported property: nope",
        "exchanges[1].arguments: hash-header and hash-property are mutually exclusive",
        "exchanges[2].arguments: hash-header must be a string (a longstr field)",
        'bindings[0].routing_key: The binding key must be an integer: <<"x">>',
        "bindings[1].routing_key: The binding key must be greater than 0",
    ]


def test_the_file_fixes_the_order_of_the_ring() -> None:
    # Bindings are applied in file order, so a file always builds the same ring.
    m = config.parse(SHARDS)
    t1, t2 = Topology(), Topology()
    m.apply_to(t1)
    config.parse(config.format(m)).apply_to(t2)
    x1, x2 = t1.get_exchange("orders.sharded"), t2.get_exchange("orders.sharded")
    assert isinstance(x1, ConsistentHashExchange) and isinstance(x2, ConsistentHashExchange)
    assert [s.binding.destination for s in x1.ring()] == [
        Destination.queue("shard-a"), Destination.queue("shard-b"), Destination.queue("shard-c"),
    ]  # fmt: skip
    assert [s.binding for s in x1.ring()] == [s.binding for s in x2.ring()]
