"""Dead-lettering: x-dead-letter-exchange, routing key, and the x-death table.

RabbitMQ extension; the header layout below is what RabbitMQ 3.10 writes and
what clients (Celery, kombu retry tooling, Spring) read back.
"""

from __future__ import annotations

import datetime

from conformance.helpers import Consumer, get, publish, pump, sync, wait_for

AREA = "dead-lettering"


def dead_letter_setup(channel, names, **source_arguments):
    """A source queue dead-lettering to a fanout exchange with one queue bound."""
    dlx, dead = names.exchange("dlx"), names.queue("dead")
    channel.exchange_declare(dlx, "fanout")
    channel.queue_declare(dead)
    channel.queue_bind(dead, dlx, "")
    source = names.queue("src")
    arguments = {"x-dead-letter-exchange": dlx, **source_arguments}
    channel.queue_declare(source, arguments=arguments)
    return source, dlx, dead


def wait_get(connection, channel, queue, timeout=3.0, auto_ack=True):
    """basic.get until a message arrives (dead-lettering is asynchronous)."""
    found = []

    def poll():
        delivery = get(channel, queue, auto_ack=auto_ack)
        if delivery is not None:
            found.append(delivery)
        return bool(found)

    wait_for(connection, poll, timeout)
    return found[0] if found else None


def without_time(x_death):
    return [{k: v for k, v in entry.items() if k != "time"} for entry in x_death]


def test_rejected_message_is_dead_lettered_with_x_death(connection, names):
    channel = connection.channel()
    source, dlx, dead = dead_letter_setup(channel, names)
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    publish(channel, "", source, b"bad", headers={"app": "v"}, message_id="m1")
    channel.basic_reject(get(channel, source).delivery_tag, requeue=False)
    delivery = wait_get(connection, channel, dead)
    assert delivery is not None
    assert delivery.body == b"bad"
    assert delivery.exchange == dlx
    assert delivery.routing_key == source  # original routing key kept
    assert delivery.properties.message_id == "m1"
    headers = delivery.headers
    assert headers["app"] == "v"
    assert without_time(headers["x-death"]) == [
        {
            "count": 1,
            "reason": "rejected",
            "queue": source,
            "exchange": "",
            "routing-keys": [source],
        }
    ]
    when = headers["x-death"][0]["time"]
    assert isinstance(when, datetime.datetime)
    # AMQP timestamps have one-second resolution; allow clock skew of a minute.
    assert abs((when - before).total_seconds()) < 60
    assert headers["x-first-death-reason"] == "rejected"
    assert headers["x-first-death-queue"] == source
    assert headers["x-first-death-exchange"] == ""


def test_nack_without_requeue_is_dead_lettered_as_rejected(connection, names):
    channel = connection.channel()
    source, _, dead = dead_letter_setup(channel, names)
    publish(channel, "", source, b"m")
    channel.basic_nack(get(channel, source).delivery_tag, requeue=False)
    delivery = wait_get(connection, channel, dead)
    assert delivery.headers["x-death"][0]["reason"] == "rejected"


def test_requeued_message_is_not_dead_lettered(connection, names):
    channel = connection.channel()
    source, _, dead = dead_letter_setup(channel, names)
    publish(channel, "", source, b"m")
    channel.basic_reject(get(channel, source).delivery_tag, requeue=True)
    sync(channel)
    assert get(channel, dead) is None
    assert get(channel, source, auto_ack=True).body == b"m"


def test_expired_message_is_dead_lettered_as_expired(connection, names):
    channel = connection.channel()
    source, dlx, dead = dead_letter_setup(channel, names, **{"x-message-ttl": 50})
    publish(channel, "", source, b"late")
    delivery = wait_get(connection, channel, dead)
    assert delivery is not None
    assert without_time(delivery.headers["x-death"]) == [
        {
            "count": 1,
            "reason": "expired",
            "queue": source,
            "exchange": "",
            "routing-keys": [source],
        }
    ]
    assert delivery.headers["x-first-death-reason"] == "expired"


def test_per_message_expiration_becomes_original_expiration(connection, names):
    channel = connection.channel()
    source, _, dead = dead_letter_setup(channel, names)
    publish(channel, "", source, b"late", expiration="50")
    delivery = wait_get(connection, channel, dead)
    assert delivery is not None
    entry = delivery.headers["x-death"][0]
    assert entry["reason"] == "expired"
    assert entry["original-expiration"] == "50"
    # The expiration property is removed so the message does not expire again.
    assert delivery.properties.expiration is None


def test_max_length_overflow_is_dead_lettered_as_maxlen(connection, names):
    channel = connection.channel()
    source, _, dead = dead_letter_setup(channel, names, **{"x-max-length": 1})
    publish(channel, "", source, b"first")
    publish(channel, "", source, b"second")
    delivery = wait_get(connection, channel, dead)
    assert delivery.body == b"first"
    assert delivery.headers["x-death"][0]["reason"] == "maxlen"
    assert get(channel, source, auto_ack=True).body == b"second"


def test_reject_publish_dlx_dead_letters_the_refused_message(connection, names):
    channel = connection.channel()
    source, _, dead = dead_letter_setup(
        channel, names, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"}
    )
    publish(channel, "", source, b"kept")
    publish(channel, "", source, b"refused")
    delivery = wait_get(connection, channel, dead)
    assert delivery.body == b"refused"
    assert delivery.headers["x-death"][0]["reason"] == "maxlen"
    assert get(channel, source, auto_ack=True).body == b"kept"


def test_dead_letter_routing_key_replaces_the_original(connection, names):
    channel = connection.channel()
    dlx, dead = names.exchange("dlx"), names.queue("dead")
    channel.exchange_declare(dlx, "direct")
    channel.queue_declare(dead)
    channel.queue_bind(dead, dlx, "dead-key")
    source = names.queue("src")
    channel.queue_declare(
        source,
        arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead-key"},
    )
    publish(channel, "", source, b"m")
    channel.basic_reject(get(channel, source).delivery_tag, requeue=False)
    delivery = wait_get(connection, channel, dead)
    assert delivery.routing_key == "dead-key"
    # x-death keeps the routing keys the message was originally published with.
    assert delivery.headers["x-death"][0]["routing-keys"] == [source]


def test_default_exchange_as_dead_letter_exchange(connection, names):
    channel = connection.channel()
    dead = names.queue("dead")
    channel.queue_declare(dead)
    source = names.queue("src")
    channel.queue_declare(
        source, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
    )
    publish(channel, "", source, b"m")
    channel.basic_reject(get(channel, source).delivery_tag, requeue=False)
    assert wait_get(connection, channel, dead).body == b"m"


def test_missing_dead_letter_exchange_drops_the_message(connection, names):
    channel = connection.channel()
    source = names.queue("src")
    channel.queue_declare(source, arguments={"x-dead-letter-exchange": names.exchange("none")})
    publish(channel, "", source, b"m")
    channel.basic_reject(get(channel, source).delivery_tag, requeue=False)
    sync(channel)
    assert channel.is_open
    assert get(channel, source) is None


def test_cc_is_kept_and_bcc_removed_in_routing_keys(connection, names):
    channel = connection.channel()
    source, _, dead = dead_letter_setup(channel, names)
    publish(channel, "", source, b"m", headers={"CC": ["cc-key"], "BCC": ["bcc-key"]})
    channel.basic_reject(get(channel, source).delivery_tag, requeue=False)
    delivery = wait_get(connection, channel, dead)
    assert delivery.headers["x-death"][0]["routing-keys"] == [source, "cc-key"]
    assert delivery.headers["CC"] == ["cc-key"]
    assert "BCC" not in delivery.headers


def test_repeated_dead_lettering_counts_and_orders_x_death(connection, names):
    """Two queues dead-lettering into each other: q1 -> q2 -> q1 -> q2.

    Each (queue, reason) pair has one x-death entry whose count grows; the most
    recent death comes first; x-first-death-* never changes.
    """
    channel = connection.channel()
    first, second = names.queue("one"), names.queue("two")
    channel.queue_declare(
        first, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": second}
    )
    channel.queue_declare(
        second, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": first}
    )
    publish(channel, "", first, b"m")
    sync(channel)
    for queue in (first, second, first):
        held = wait_get(connection, channel, queue, auto_ack=False)
        channel.basic_reject(held.delivery_tag, requeue=False)
    delivery = wait_get(connection, channel, second)
    x_death = without_time(delivery.headers["x-death"])
    assert x_death == [
        {"count": 2, "reason": "rejected", "queue": first, "exchange": "",
         "routing-keys": [first]},
        {"count": 1, "reason": "rejected", "queue": second, "exchange": "",
         "routing-keys": [second]},
    ]  # fmt: skip
    assert delivery.headers["x-first-death-queue"] == first
    assert delivery.headers["x-first-death-reason"] == "rejected"


def test_dead_lettered_message_reaches_consumer(connection, names):
    channel = connection.channel()
    source, _, dead = dead_letter_setup(channel, names)
    consumer = Consumer(channel, dead, auto_ack=True)
    publish(channel, "", source, b"m")
    channel.basic_reject(get(channel, source).delivery_tag, requeue=False)
    consumer.wait(1)
    pump(connection)
    assert consumer.bodies == [b"m"]


def test_expiry_cycle_without_rejection_is_dropped(connection, names):
    """Two queues expiring into each other: RabbitMQ drops the message when it
    would be dead-lettered to a queue it already died in, with no rejection
    in between, instead of cycling forever."""
    channel = connection.channel()
    first, second = names.queue("one"), names.queue("two")
    channel.queue_declare(
        first,
        arguments={
            "x-message-ttl": 50,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": second,
        },
    )
    channel.queue_declare(
        second,
        arguments={
            "x-message-ttl": 50,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": first,
        },
    )
    publish(channel, "", first, b"loop")
    pump(connection, 0.6)
    assert channel.queue_declare(first, passive=True).method.message_count == 0
    assert channel.queue_declare(second, passive=True).method.message_count == 0


def test_purge_and_delete_do_not_dead_letter(connection, names):
    channel = connection.channel()
    source, _, dead = dead_letter_setup(channel, names)
    publish(channel, "", source, b"purged")
    sync(channel)
    assert channel.queue_purge(source).method.message_count == 1
    publish(channel, "", source, b"deleted")
    sync(channel)
    assert channel.queue_delete(source).method.message_count == 1
    pump(connection)
    assert get(channel, dead) is None
