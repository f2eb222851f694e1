"""`warren route FILE EXCHANGE ROUTING_KEY`: offline routing under a file's topology."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import EXAMPLE

TOPOLOGY = """\
exchange a type topic
    alternate-exchange b
exchange b type fanout
exchange c type direct
exchange d type direct internal
exchange h type headers
queue q
queue typed
bind exchange c to a key "x.#"
bind q to c key "nope"
bind q to d key "k"
bind typed to h headers all n=5
"""

MANDATORY = (
    "  published with mandatory, the broker returns it (basic.return 312 NO_ROUTE; with "
    "publisher confirms, basic.ack follows the return); without mandatory it is dropped\n"
)


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    path = tmp_path / "t.conf"
    path.write_text(TOPOLOGY)
    return path


def test_each_queue_with_the_chain_of_bindings(warren) -> None:
    result = warren("route", str(EXAMPLE), "orders", "order.eu.created", "--header", "urgent=true")
    assert result.returncode == 0
    assert result.stdout == (
        "exchange 'orders' routing keys ['order.eu.created']: 2 queue(s)\n"
        "  queue 'billing'\n"
        "    exchange 'orders' -> queue 'billing' by key 'order.*.created' matched "
        "'order.eu.created'\n"
        "  queue 'audit'\n"
        "    exchange 'orders' -> exchange 'orders.audit' by key 'order.#' matched "
        "'order.eu.created'\n"
        "    exchange 'orders.audit' -> queue 'audit' by headers x-match='any' "
        "priority='high' urgent=True\n"
    )


def test_the_alternate_exchange_that_took_it(warren) -> None:
    result = warren("route", str(EXAMPLE), "orders", "invoice.sent")
    assert result.returncode == 0
    assert result.stdout == (
        "exchange 'orders' routing keys ['invoice.sent']: 1 queue(s)\n"
        "  queue 'orders.unrouted'\n"
        "    exchange 'orders' matched nothing -> alternate-exchange 'orders.unrouted'\n"
        "    exchange 'orders.unrouted' -> queue 'orders.unrouted' by key '' matched "
        "'invoice.sent'\n"
    )


def test_unroutable_through_an_alternate_exchange_that_holds_nothing(warren, topology) -> None:
    result = warren("route", str(topology), "a", "y.z")
    assert result.returncode == 1
    assert result.stdout == (
        "exchange 'a' routing keys ['y.z']: 0 queue(s)\n"
        "  unroutable: no queue reached\n"
        "  exchange 'a' (topic, 1 binding): no binding matched the routing key 'y.z'\n"
        "    -> its alternate-exchange 'b'\n"
        "  exchange 'b' (fanout, 0 bindings): nothing is bound to it\n" + MANDATORY
    )


def test_unroutable_after_an_exchange_to_exchange_hop(warren, topology) -> None:
    result = warren("route", str(topology), "a", "x.y")
    assert result.returncode == 1
    assert result.stdout == (
        "exchange 'a' routing keys ['x.y']: 0 queue(s)\n"
        "  unroutable: no queue reached\n"
        "  exchange 'a' (topic, 1 binding): matched, on to exchange 'c'\n"
        "    its alternate-exchange 'b' is not used: a binding matched\n"
        "  exchange 'c' (direct, 1 binding): no binding matched the routing key 'x.y'\n"
        + MANDATORY
    )


def test_the_default_exchange(warren, topology) -> None:
    routed = warren("route", str(topology), "", "q")
    assert routed.returncode == 0
    assert "the default exchange -> queue 'q' (routing key names the queue)" in routed.stdout
    missing = warren("route", str(topology), "", "nothing")
    assert missing.returncode == 1
    assert f"  the default exchange: no queue named 'nothing' in {topology}\n" in missing.stdout


def test_an_internal_exchange_is_traced_with_a_note(warren, topology) -> None:
    result = warren("route", str(topology), "d", "k")
    assert result.returncode == 0
    assert result.stdout.startswith(
        "note: exchange 'd' is internal: a client publishing to it gets 403 ACCESS_REFUSED"
    )
    assert "exchange 'd' -> queue 'q' by key 'k' matched 'k'" in result.stdout


def test_header_values_are_typed_as_in_the_language(warren, topology) -> None:
    # The binding says n=5 (an integer): the string "5" does not match it.
    assert warren("route", str(topology), "h", "", "--header", "n=5").returncode == 0
    result = warren("route", str(topology), "h", "", "--header", 'n="5"')
    assert result.returncode == 1
    assert "exchange 'h' (headers, 1 binding): no binding matched the headers (n='5')" in (
        result.stdout
    )


def test_cc_adds_routing_keys(warren, topology) -> None:
    result = warren("route", str(topology), "c", "other", "--header", "CC=nope,more")
    assert result.returncode == 0
    assert result.stdout.startswith("exchange 'c' routing keys ['other', 'nope', 'more']: 1 queue")


def test_unknown_exchange_is_one_line(warren, topology) -> None:
    result = warren("route", str(topology), "cc", "k")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"warren route: exchange 'cc' is not declared in {topology} nor built in: "
        "did you mean 'c'?\n"
    )


def test_a_file_that_does_not_parse_is_one_line(warren, tmp_path) -> None:
    (tmp_path / "bad.conf").write_text("exchange a type topik\n")
    result = warren("route", "bad.conf", "a", "k", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "warren route: bad.conf:1:17: unknown exchange type 'topik': did you mean 'topic'?; "
        "run `warren config check bad.conf` for details\n"
    )


def test_a_missing_file_and_a_bad_header_are_one_line_each(warren, topology) -> None:
    missing = warren("route", "nowhere.conf", "a", "k")
    assert (missing.returncode, missing.stderr) == (
        2, "warren route: cannot read nowhere.conf: No such file or directory\n"
    )
    bad = warren("route", str(topology), "a", "k", "--header", "novalue")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == (
        "warren route: error: argument --header: expected KEY=VALUE, got 'novalue'"
    )


POLICIES = """\
policy unrouted pattern "^orders" apply-to exchanges
    alternate-exchange lost
policy ignored pattern "^orders" apply-to queues
    alternate-exchange elsewhere
exchange orders type direct
exchange orders.own type direct
    alternate-exchange own
exchange lost type fanout
exchange own type fanout
exchange elsewhere type fanout
queue lost
queue own
bind lost to lost
bind own to own
"""


def test_an_alternate_exchange_given_by_a_policy(warren, tmp_path) -> None:
    path = tmp_path / "p.conf"
    path.write_text(POLICIES)
    result = warren("route", str(path), "orders", "nobody")
    assert result.returncode == 0
    assert result.stdout == (
        "exchange 'orders' routing keys ['nobody']: 1 queue(s)\n"
        "  queue 'lost'\n"
        "    exchange 'orders' matched nothing -> alternate-exchange 'lost'\n"
        "    exchange 'lost' -> queue 'lost' by key '' matched 'nobody'\n"
        "note: the alternate-exchange of exchange 'orders' comes from policy 'unrouted'\n"
    )
    # The exchange's own argument wins over the policy, as in RabbitMQ.
    result = warren("route", str(path), "orders.own", "nobody")
    assert result.returncode == 0
    assert "  queue 'own'\n" in result.stdout and "policy" not in result.stdout
