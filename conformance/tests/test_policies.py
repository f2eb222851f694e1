"""Policies and operator policies: settings given to queues and exchanges by name.

RabbitMQ's model, as RabbitMQ 3.10 applies it:

- A policy (PUT /api/policies/V/NAME) matches queues and/or exchanges whose
  name its pattern (a regular expression) finds; of the policies that match,
  the one with the highest priority applies, and only that one. An operator
  policy (PUT /api/operator-policies/V/NAME) is chosen the same way, and the
  two are merged key by key; for a key both set, the lower value wins.
- The merged value then meets the queue's own x-argument: for message-ttl,
  expires, max-length and max-length-bytes the lower wins; for
  dead-letter-exchange, dead-letter-routing-key and overflow the argument
  wins. An exchange's alternate-exchange argument wins over a policy's.
- A policy applies to the queues and exchanges declared after it and, as
  soon as it is set or cleared, to every existing one: a lower max-length
  drops the oldest messages there and then (dead-lettered as maxlen). A new
  message TTL is given to messages as they arrive: those already queued keep
  the expiry they arrived with.
- An invalid policy is refused with 400 and RabbitMQ's "Validation failed" text.

Everything here goes through the management API (conformance/admin.py) and
is observed over AMQP, so every test needs --admin-url; without it they are
skipped. Policies are named ``pol-<random>`` and match only the test's own
queues and exchanges (unique names), in the AMQP URL's vhost; each is
deleted afterwards.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest

from conformance.admin import Admin
from conformance.helpers import (
    SETTLE_TIMEOUT,
    Consumer,
    get,
    get_all,
    publish,
    pump,
    sync,
    wait_for,
)

AREA = "policies"


def exactly(name: str) -> str:
    """A pattern that matches this one name."""
    return "^" + re.escape(name) + "$"


class Policies:
    """Sets policies in the URL's vhost through the admin API; clears them afterwards."""

    def __init__(self, admin: Admin, vhost: str) -> None:
        self.admin = admin
        self.vhost = vhost
        self.made: list[tuple[str, bool]] = []

    def set(
        self,
        pattern: str,
        definition: dict,
        *,
        priority: int = 0,
        apply_to: str = "all",
        operator: bool = False,
        name: str | None = None,
    ) -> str:
        name = name or f"pol-{uuid.uuid4().hex[:10]}"
        self.admin.put_policy(self.vhost, name, pattern, definition, priority=priority,
                              apply_to=apply_to, operator=operator)
        if (name, operator) not in self.made:
            self.made.append((name, operator))
        return name

    def clear(self, name: str, *, operator: bool = False) -> None:
        self.admin.delete_policy(self.vhost, name, operator=operator)

    def clear_all(self) -> None:
        for name, operator in self.made:
            self.admin.delete_policy(self.vhost, name, operator=operator)


@pytest.fixture
def policies(admin: Admin, parameters: pika.URLParameters) -> Iterator[Policies]:
    made = Policies(admin, parameters.virtual_host)
    try:
        yield made
    finally:
        made.clear_all()


def message_count(channel, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


def eventually(connection, predicate: Callable[[], bool], timeout: float = SETTLE_TIMEOUT) -> bool:
    """A policy set on existing queues applies asynchronously in RabbitMQ: poll."""
    return wait_for(connection, predicate, timeout)


def wait_get(connection, channel, queue: str):
    """basic.get until a message arrives (dead-lettering may be asynchronous)."""
    found = []

    def poll() -> bool:
        delivery = get(channel, queue, auto_ack=True)
        if delivery is not None:
            found.append(delivery)
        return bool(found)

    wait_for(connection, poll)
    return found[0] if found else None


def fill(channel, queue: str, count: int, prefix: str = "m") -> None:
    for i in range(count):
        publish(channel, "", queue, f"{prefix}{i}")
    sync(channel)


# -- settings by policy ---------------------------------------------------------------


def test_message_ttl_by_policy_expires_messages(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"message-ttl": 100}, apply_to="queues")
    channel.queue_declare(queue)
    fill(channel, queue, 3)
    time.sleep(0.3)
    assert get(channel, queue) is None
    assert message_count(channel, queue) == 0


def test_max_length_by_policy_drops_the_oldest(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"max-length": 2}, apply_to="queues")
    channel.queue_declare(queue)
    fill(channel, queue, 5)
    assert get_all(channel, queue) == [b"m3", b"m4"]


def test_max_length_bytes_by_policy(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"max-length-bytes": 10})
    channel.queue_declare(queue)
    for body in (b"aaaa", b"bbbb", b"cccc"):
        publish(channel, "", queue, body)
    sync(channel)
    assert get_all(channel, queue) == [b"bbbb", b"cccc"]


def test_dead_letter_exchange_by_policy(connection, names, policies):
    channel = connection.channel()
    queue, dead = names.queue("src"), names.queue("dead")
    channel.queue_declare(dead)
    policies.set(
        exactly(queue),
        {"dead-letter-exchange": "", "dead-letter-routing-key": dead},
        apply_to="queues",
    )
    channel.queue_declare(queue)
    publish(channel, "", queue, b"bad")
    channel.basic_reject(get(channel, queue).delivery_tag, requeue=False)
    letter = wait_get(connection, channel, dead)
    assert letter is not None, "the rejected message was not dead-lettered by the policy"
    death = letter.headers["x-death"][0]
    assert (death["reason"], death["queue"]) == ("rejected", queue)
    assert letter.routing_key == dead


def test_overflow_reject_publish_by_policy(connection, names, policies):
    channel = connection.channel()
    channel.confirm_delivery()
    queue = names.queue()
    policies.set(exactly(queue), {"max-length": 1, "overflow": "reject-publish"})
    channel.queue_declare(queue)
    channel.basic_publish("", queue, b"first")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", queue, b"second")
    assert get_all(channel, queue) == [b"first"]


def test_expires_by_policy_deletes_an_unused_queue(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"expires": 200}, apply_to="queues")
    channel.queue_declare(queue)
    pump(connection, 0.6)

    def gone() -> bool:
        probe = connection.channel()
        try:
            probe.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as closed:
            return closed.reply_code == 404
        probe.close()
        return False

    assert eventually(connection, gone)


def test_policy_for_exchanges_does_not_touch_queues(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"max-length": 1}, apply_to="exchanges")
    channel.queue_declare(queue)
    fill(channel, queue, 3)
    assert message_count(channel, queue) == 3


def test_alternate_exchange_by_policy(connection, names, policies):
    channel = connection.channel()
    exchange, alternate, queue = names.exchange("x"), names.exchange("ae"), names.queue()
    channel.exchange_declare(alternate, "fanout")
    channel.queue_declare(queue)
    channel.queue_bind(queue, alternate)
    policies.set(exactly(exchange), {"alternate-exchange": alternate}, apply_to="exchanges")
    channel.exchange_declare(exchange, "direct")
    publish(channel, exchange, "nobody-binds-this", b"unroutable")
    sync(channel)
    assert eventually(connection, lambda: message_count(channel, queue) == 1)
    assert get(channel, queue).body == b"unroutable"


# -- precedence -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "policy", "kept"),
    [(5, 2, 2), (2, 5, 2)],
    ids=["policy-lower", "argument-lower"],
)
def test_max_length_the_lower_of_argument_and_policy_wins(
    connection, names, policies, argument, policy, kept
):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"max-length": policy})
    channel.queue_declare(queue, arguments={"x-max-length": argument})
    fill(channel, queue, 6)
    assert message_count(channel, queue) == kept


def test_message_ttl_the_lower_of_argument_and_policy_wins(connection, names, policies):
    channel = connection.channel()
    by_policy, by_argument = names.queue("p"), names.queue("a")
    policies.set(exactly(by_policy), {"message-ttl": 100})
    policies.set(exactly(by_argument), {"message-ttl": 600_000})
    channel.queue_declare(by_policy, arguments={"x-message-ttl": 600_000})
    channel.queue_declare(by_argument, arguments={"x-message-ttl": 100})
    fill(channel, by_policy, 1)
    fill(channel, by_argument, 1)
    time.sleep(0.3)
    assert get(channel, by_policy) is None
    assert get(channel, by_argument) is None


def test_dead_letter_exchange_argument_wins_over_policy(connection, names, policies):
    channel = connection.channel()
    queue, by_argument, by_policy = names.queue("src"), names.queue("arg"), names.queue("pol")
    channel.queue_declare(by_argument)
    channel.queue_declare(by_policy)
    policies.set(exactly(queue), {"dead-letter-exchange": "",
                                  "dead-letter-routing-key": by_policy})
    channel.queue_declare(queue, arguments={"x-dead-letter-exchange": "",
                                            "x-dead-letter-routing-key": by_argument})
    publish(channel, "", queue, b"bad")
    channel.basic_reject(get(channel, queue).delivery_tag, requeue=False)
    assert eventually(connection, lambda: message_count(channel, by_argument) == 1)
    assert message_count(channel, by_policy) == 0


def test_overflow_argument_wins_over_policy(connection, names, policies):
    channel = connection.channel()
    channel.confirm_delivery()
    queue = names.queue()
    policies.set(exactly(queue), {"overflow": "reject-publish"})
    channel.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "drop-head"})
    channel.basic_publish("", queue, b"first")
    channel.basic_publish("", queue, b"second")  # not refused: drop-head, the argument's
    assert get_all(channel, queue) == [b"second"]


def test_alternate_exchange_argument_wins_over_policy(connection, names, policies):
    channel = connection.channel()
    exchange = names.exchange("x")
    by_argument, by_policy = names.exchange("arg"), names.exchange("pol")
    q_argument, q_policy = names.queue("arg"), names.queue("pol")
    for alternate, queue in ((by_argument, q_argument), (by_policy, q_policy)):
        channel.exchange_declare(alternate, "fanout")
        channel.queue_declare(queue)
        channel.queue_bind(queue, alternate)
    policies.set(exactly(exchange), {"alternate-exchange": by_policy})
    channel.exchange_declare(exchange, "direct", arguments={"alternate-exchange": by_argument})
    publish(channel, exchange, "nobody-binds-this", b"unroutable")
    sync(channel)
    assert eventually(connection, lambda: message_count(channel, q_argument) == 1)
    assert message_count(channel, q_policy) == 0


@pytest.mark.parametrize(
    ("policy", "operator", "kept"),
    [(5, 2, 2), (2, 5, 2)],
    ids=["operator-lower", "policy-lower"],
)
def test_operator_policy_the_lower_max_length_wins(
    connection, names, policies, policy, operator, kept
):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"max-length": policy})
    policies.set(exactly(queue), {"max-length": operator}, operator=True)
    channel.queue_declare(queue)
    fill(channel, queue, 6)
    assert message_count(channel, queue) == kept


def test_operator_policy_applies_without_a_policy(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"message-ttl": 100}, operator=True)
    channel.queue_declare(queue, arguments={"x-message-ttl": 600_000})
    fill(channel, queue, 2)
    time.sleep(0.3)
    assert message_count(channel, queue) == 0


def test_the_highest_priority_policy_applies_alone(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    # Only one policy applies: the max-length of the lower one is not used at all.
    policies.set(exactly(queue), {"max-length": 1}, priority=1)
    policies.set("^" + re.escape(queue), {"message-ttl": 600_000}, priority=2)
    channel.queue_declare(queue)
    fill(channel, queue, 3)
    assert message_count(channel, queue) == 3


def test_priority_decides_whatever_the_order_policies_were_set(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"max-length": 3}, priority=5)
    policies.set(exactly(queue), {"max-length": 1}, priority=-1)
    channel.queue_declare(queue)
    fill(channel, queue, 5)
    assert message_count(channel, queue) == 3


# -- policies change existing queues and exchanges ------------------------------------


def test_a_new_policy_applies_to_an_existing_queue(connection, names, policies):
    channel = connection.channel()
    queue, dead = names.queue("src"), names.queue("dead")
    channel.queue_declare(dead)
    channel.queue_declare(queue)
    fill(channel, queue, 5)
    policies.set(exactly(queue), {"max-length": 2, "dead-letter-exchange": "",
                                  "dead-letter-routing-key": dead})
    assert eventually(connection, lambda: message_count(channel, queue) == 2)
    assert eventually(connection, lambda: message_count(channel, dead) == 3)
    first = get(channel, dead, auto_ack=True)
    assert first.body == b"m0"
    assert first.headers["x-death"][0]["reason"] == "maxlen"
    assert get_all(channel, queue) == [b"m3", b"m4"]


def test_a_changed_policy_applies_to_an_existing_queue(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    name = policies.set(exactly(queue), {"max-length": 10})
    channel.queue_declare(queue)
    fill(channel, queue, 6)
    assert message_count(channel, queue) == 6
    policies.set(exactly(queue), {"max-length": 4}, name=name)
    assert eventually(connection, lambda: message_count(channel, queue) == 4)


def test_a_cleared_policy_no_longer_applies(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    name = policies.set(exactly(queue), {"max-length": 1})
    channel.queue_declare(queue)
    fill(channel, queue, 3)
    assert message_count(channel, queue) == 1
    policies.clear(name)
    # Clearing is asynchronous in RabbitMQ: publish until the limit is gone.
    counts = []

    def lifted() -> bool:
        publish(channel, "", queue, b"more")
        sync(channel)
        counts.append(message_count(channel, queue))
        return counts[-1] >= 3

    assert eventually(connection, lifted)


def test_a_new_message_ttl_is_not_given_to_queued_messages(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    fill(channel, queue, 2, prefix="old")
    policies.set(exactly(queue), {"message-ttl": 50})
    pump(connection, 0.5)
    # They arrived without a TTL and keep none; the message behind them, which
    # got the policy's, waits: a classic queue expires messages at its head.
    assert message_count(channel, queue) == 2
    assert get(channel, queue, auto_ack=True).body == b"old0"
    assert get(channel, queue, auto_ack=True).body == b"old1"


def test_a_new_alternate_exchange_policy_applies_to_an_existing_exchange(
    connection, names, policies
):
    channel = connection.channel()
    exchange, alternate, queue = names.exchange("x"), names.exchange("ae"), names.queue()
    channel.exchange_declare(exchange, "direct")
    channel.exchange_declare(alternate, "fanout")
    channel.queue_declare(queue)
    channel.queue_bind(queue, alternate)
    policies.set(exactly(exchange), {"alternate-exchange": alternate}, apply_to="exchanges")

    def routed() -> bool:
        publish(channel, exchange, "nobody-binds-this", b"unroutable")
        sync(channel)
        return message_count(channel, queue) >= 1

    assert eventually(connection, routed)


def test_a_higher_priority_policy_replaces_the_one_in_force(connection, names, policies):
    channel = connection.channel()
    queue = names.queue()
    policies.set(exactly(queue), {"max-length": 5}, priority=1)
    channel.queue_declare(queue)
    fill(channel, queue, 5)
    policies.set(exactly(queue), {"max-length": 2}, priority=2)
    assert eventually(connection, lambda: message_count(channel, queue) == 2)


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"pattern": ".", "definition": {"max-length": "x"}},
         'Validation failed\n\n&lt;&lt;"x"&gt;&gt; is not a valid maximum length\n'),
        ({"pattern": ".", "definition": {"message-ttl": -1}},
         "Validation failed\n\n-1 is not a valid message TTL\n"),
        ({"pattern": ".", "definition": {"expires": 0}},
         "Validation failed\n\n0 is not a valid queue expiry\n"),
        ({"pattern": ".", "definition": {"overflow": "nope"}},
         'Validation failed\n\n&lt;&lt;"nope"&gt;&gt; is not a valid overflow value\n'),
        ({"pattern": ".", "definition": {"dead-letter-exchange": 1}},
         "Validation failed\n\n1 is not a valid dead letter exchange name\n"),
        ({"pattern": ".", "definition": {"no-such-setting": 1}},
         'Validation failed\n\n[{&lt;&lt;"no-such-setting"&gt;&gt;,1}] are not recognised '
         "policy settings\n"),
        ({"pattern": ".", "definition": {}}, "Validation failed\n\nno policy provided\n"),
        ({"pattern": ".", "definition": {"max-length": 1}, "apply-to": "everything"},
         "Validation failed\n\napply-to 'everything' unrecognised; should be 'queues', "
         "'exchanges' or 'all'\n"),
        ({"pattern": ".", "definition": {"max-length": 1}, "priority": "high"},
         'Validation failed\n\npriority should be a number, actually was '
         '&lt;&lt;"high"&gt;&gt;\n'),
        ({"definition": {"max-length": 1}}, "[{key_missing,pattern}]"),
    ],
    ids=["max-length", "message-ttl", "expires", "overflow", "dlx", "unknown", "empty",
         "apply-to", "priority", "no-pattern"],
)
def test_an_invalid_policy_is_refused_with_rabbitmqs_text(admin, parameters, body, text):
    from conformance.admin import q

    name = f"pol-{uuid.uuid4().hex[:10]}"
    path = f"/policies/{q(parameters.virtual_host)}/{name}"
    try:
        response = admin.request("PUT", path, body)
        assert response.status == 400, response
        assert response.json() == {"error": "bad_request", "reason": text}
        assert admin.request("GET", path).status == 404
    finally:
        admin.delete(path)


def test_an_operator_policy_takes_only_the_numeric_limits(admin, parameters):
    from conformance.admin import q

    name = f"pol-{uuid.uuid4().hex[:10]}"
    path = f"/operator-policies/{q(parameters.virtual_host)}/{name}"
    try:
        response = admin.request(
            "PUT", path, {"pattern": ".", "definition": {"dead-letter-exchange": "x"}}
        )
        assert response.status == 400
        assert response.json()["reason"] == (
            'Validation failed\n\n[{<<"dead-letter-exchange">>,<<"x">>}] are not recognised '
            "policy settings\n"
        )
    finally:
        admin.delete(path)


def test_a_policy_reads_back_as_it_was_set(admin, parameters, policies):
    from conformance.admin import q

    vhost = parameters.virtual_host
    name = policies.set("^pol-readback\\.", {"message-ttl": 1000, "max-length": 7},
                        priority=3, apply_to="queues")
    assert admin.get(f"/policies/{q(vhost)}/{name}") == {
        "vhost": vhost, "name": name, "pattern": "^pol-readback\\.", "apply-to": "queues",
        "definition": {"max-length": 7, "message-ttl": 1000}, "priority": 3,
    }
    listed = [p for p in admin.get(f"/policies/{q(vhost)}") if p["name"] == name]
    assert len(listed) == 1
    policies.clear(name)
    assert admin.request("GET", f"/policies/{q(vhost)}/{name}").status == 404
    assert admin.request("DELETE", f"/policies/{q(vhost)}/{name}").status == 404


def test_consumers_see_the_queue_policy_in_force(connection, names, policies):
    """A consumer is unaffected by a policy change: deliveries continue."""
    channel = connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    consumer = Consumer(channel, queue, auto_ack=True)
    policies.set(exactly(queue), {"max-length": 1})
    pump(connection, 0.2)
    fill(channel, queue, 3)
    assert [d.body for d in consumer.wait(3)] == [b"m0", b"m1", b"m2"]
