"""Direct reply-to: the pseudo-queue `amq.rabbitmq.reply-to` (RabbitMQ 3.10).

An RPC requester consumes from `amq.rabbitmq.reply-to` (no-ack only) and
publishes its request with the property `reply_to = amq.rabbitmq.reply-to`; the
broker rewrites that to `amq.rabbitmq.reply-to.<opaque>`, a name designating
the requester's channel. A reply published to the default exchange with that
routing key, from any connection, is delivered straight to the requester's
consumer: no queue is involved. As RabbitMQ 3.10.8 answers the misuses:

- consume without no-ack: 406 "reply consumer cannot acknowledge"; twice on
  one channel: 406 "reply consumer already set"; publish with that reply_to
  and no reply consumer: 406 "fast reply consumer does not exist";
- basic.get, queue.bind and queue.purge: 404, it is not a queue; every
  queue.declare of the pseudo-queue or a name under it is passive (the
  pseudo-queue and a live reply name: 0 messages, 1 consumer; anything else
  under the prefix: 404);
- a reply reaches no queue: it is dropped when its requester has gone, and a
  mandatory reply is returned 312 NO_ROUTE even when it was delivered.

The permission checks (none on the reply consumer, write on `amq.default` for
the reply) and a reply from another vhost need --admin-url.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import aio_pika
import amqp
import amqp.exceptions
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from conformance.helpers import (
    QUIET_PERIOD,
    SETTLE_TIMEOUT,
    Consumer,
    channel_closed_with,
    get,
    publish,
    pump,
    sync,
    wait_for,
)
from conformance.tests.test_access_control import Tenant, exactly
from conformance.tests.test_access_control import tenant as tenant  # noqa: PLC0414 - the fixture

AREA = "direct reply-to"

REPLY_TO = "amq.rabbitmq.reply-to"


def no_queue(name: str, vhost: str = "/") -> str:
    return f"NOT_FOUND - no queue '{name}' in vhost '{vhost}'"


class Requester:
    """A channel consuming amq.rabbitmq.reply-to, and what it received."""

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        self.consumer = Consumer(channel, REPLY_TO, auto_ack=True)

    def request(self, queue: str, body: bytes = b"request", **properties) -> str:
        """Publish a request to `queue`; return the reply_to the broker wrote."""
        properties.setdefault("reply_to", REPLY_TO)
        publish(self.channel, "", queue, body, **properties)
        return self.channel_reply_to(queue)

    def channel_reply_to(self, queue: str) -> str:
        delivery = wait_get(self.channel, queue)
        assert delivery is not None, "the request never reached its queue"
        return delivery.properties.reply_to

    def wait(self, count: int) -> list:
        return self.consumer.wait(count)


def wait_get(channel: BlockingChannel, queue: str, auto_ack: bool = True):
    """basic.get until a message comes (routing to a queue is asynchronous)."""
    found = []

    def poll() -> bool:
        delivery = get(channel, queue, auto_ack=auto_ack)
        if delivery is not None:
            found.append(delivery)
        return bool(found)

    wait_for(channel.connection, poll)
    return found[0] if found else None


@pytest.fixture
def requester(channel: BlockingChannel) -> Requester:
    return Requester(channel)


@pytest.fixture
def reply_name(requester: Requester, names) -> str:
    """The name replies to `requester` are addressed to (read off a request)."""
    queue = names.queue("requests")
    requester.channel.queue_declare(queue)
    return requester.request(queue)


@pytest.fixture
def other(connect) -> BlockingChannel:
    """A channel on a second connection: the responder."""
    return connect().channel()


# -- the RPC pattern -----------------------------------------------------------------


def test_reply_to_is_rewritten_to_a_name_under_the_pseudo_queue(requester, names):
    queue = names.queue()
    requester.channel.queue_declare(queue)
    publish(requester.channel, "", queue, b"r", reply_to=REPLY_TO, correlation_id="c-1",
            headers={"h": "v"}, content_type="text/plain")
    delivery = wait_get(requester.channel, queue)
    assert delivery.properties.reply_to.startswith(REPLY_TO + ".")
    assert len(delivery.properties.reply_to) > len(REPLY_TO + ".")
    # The other properties and the body are as published.
    assert delivery.properties.correlation_id == "c-1"
    assert delivery.properties.headers == {"h": "v"}
    assert delivery.properties.content_type == "text/plain"
    assert delivery.body == b"r"


def test_reply_to_is_rewritten_whatever_the_exchange(requester, names):
    queue = names.queue()
    requester.channel.queue_declare(queue)
    requester.channel.queue_bind(queue, "amq.direct", "rpc")
    publish(requester.channel, "amq.direct", "rpc", b"r", reply_to=REPLY_TO)
    assert wait_get(requester.channel, queue).properties.reply_to.startswith(REPLY_TO + ".")


def test_other_reply_to_values_are_left_alone(requester, names):
    queue = names.queue()
    requester.channel.queue_declare(queue)
    for value in ("amq.rabbitmq.reply-to.x", "amq.rabbitmq.reply-tox", "my.replies"):
        publish(requester.channel, "", queue, b"r", reply_to=value)
        assert wait_get(requester.channel, queue).properties.reply_to == value


def test_every_request_of_a_channel_gets_the_same_reply_name(requester, reply_name, names):
    queue = names.queue()
    requester.channel.queue_declare(queue)
    assert requester.request(queue) == reply_name
    assert requester.request(queue, correlation_id="other") == reply_name


def test_each_channel_has_its_own_reply_name(connection, names):
    queue = names.queue()
    first, second = Requester(connection.channel()), Requester(connection.channel())
    first.channel.queue_declare(queue)
    assert first.request(queue) != second.request(queue)


def test_reply_from_another_connection_reaches_the_requester(requester, reply_name, other):
    publish(other, "", reply_name, b"the answer", correlation_id="c-42",
            headers={"status": "ok"})
    [reply] = requester.wait(1)
    assert reply.body == b"the answer"
    assert reply.consumer_tag == requester.consumer.consumer_tag
    assert reply.exchange == ""
    assert reply.routing_key == reply_name
    assert reply.redelivered is False
    assert reply.properties.correlation_id == "c-42"
    assert reply.properties.headers == {"status": "ok"}


def test_reply_from_the_requesting_channel_itself_is_delivered(requester, reply_name):
    publish(requester.channel, "", reply_name, b"to myself")
    assert requester.wait(1)[0].body == b"to myself"


def test_classic_pika_rpc(connect, names):
    """The RPC pattern of RabbitMQ's tutorial, with direct reply-to, both sides pika."""
    queue = names.queue("rpc")
    server = connect().channel()
    server.queue_declare(queue)

    def serve(channel, method, properties, body):
        channel.basic_publish(
            "", properties.reply_to, str(int(body) * 2).encode(),
            pika.BasicProperties(correlation_id=properties.correlation_id),
        )
        channel.basic_ack(method.delivery_tag)

    server.basic_consume(queue, serve)
    client = connect()
    channel = client.channel()
    answers: dict[str, bytes] = {}
    channel.basic_consume(
        REPLY_TO, lambda ch, m, p, b: answers.__setitem__(p.correlation_id, b), auto_ack=True
    )
    calls = {str(uuid.uuid4()): n for n in range(5)}
    for correlation_id, n in calls.items():
        channel.basic_publish(
            "", queue, str(n).encode(),
            pika.BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id),
        )

    def pump_both() -> bool:
        server.connection.process_data_events(time_limit=0)
        return len(answers) == len(calls)

    assert wait_for(client, pump_both)
    assert answers == {cid: str(n * 2).encode() for cid, n in calls.items()}


def test_aio_pika_rpc(amqp_url, names):
    queue = names.queue("rpc")

    async def main() -> list[bytes]:
        server = await aio_pika.connect(amqp_url)
        client = await aio_pika.connect(amqp_url)
        try:
            server_channel = await server.channel()
            requests = await server_channel.declare_queue(queue)

            async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                async with message.process():
                    await server_channel.default_exchange.publish(
                        aio_pika.Message(message.body.upper(),
                                         correlation_id=message.correlation_id),
                        routing_key=message.reply_to,
                    )

            await requests.consume(serve)
            channel = await client.channel()
            replies = await channel.declare_queue(REPLY_TO, passive=True)
            futures: dict[str, asyncio.Future[bytes]] = {}

            async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                futures.pop(message.correlation_id).set_result(message.body)

            await replies.consume(on_reply, no_ack=True)
            loop = asyncio.get_running_loop()
            results = []
            for word in (b"alpha", b"beta", b"gamma"):
                correlation_id = str(uuid.uuid4())
                futures[correlation_id] = loop.create_future()
                await channel.default_exchange.publish(
                    aio_pika.Message(word, reply_to=REPLY_TO, correlation_id=correlation_id),
                    routing_key=queue,
                )
                results.append(await asyncio.wait_for(futures[correlation_id], SETTLE_TIMEOUT))
            return results
        finally:
            await client.close()
            await server.close()

    assert asyncio.run(main()) == [b"ALPHA", b"BETA", b"GAMMA"]


def test_replies_are_confirmed(requester, reply_name, other):
    other.confirm_delivery()
    publish(other, "", reply_name, b"confirmed")  # pika raises if nacked
    assert requester.wait(1)[0].body == b"confirmed"


def test_reply_delivery_does_not_use_up_a_delivery_tag(requester, reply_name, other, names):
    """RabbitMQ sends a reply with the channel's next delivery tag without
    taking it: the next delivery on the channel carries the same tag."""
    queue = names.queue()
    requester.channel.queue_declare(queue)
    work = Consumer(requester.channel, queue)
    publish(other, "", reply_name, b"reply-1")
    requester.wait(1)
    publish(other, "", queue, b"work-1")
    work.wait(1)
    publish(other, "", reply_name, b"reply-2")
    requester.wait(2)
    publish(other, "", queue, b"work-2")
    work.wait(2)
    replies = [d.delivery_tag for d in requester.consumer.deliveries]
    deliveries = [d.delivery_tag for d in work.deliveries]
    assert deliveries[1] == deliveries[0] + 1
    assert replies == deliveries


def test_reply_by_cc_header_reaches_the_requester(requester, reply_name, other, names):
    publish(other, "", names.queue("nowhere"), b"cc", headers={"CC": [reply_name]})
    [reply] = requester.wait(1)
    assert reply.body == b"cc"
    assert reply.routing_key.startswith("conformance.")  # the publish's own key
    assert reply.properties.headers == {"CC": [reply_name]}


def test_reply_by_bcc_header_arrives_without_the_header(requester, reply_name, other, names):
    publish(other, "", names.queue("nowhere"), b"bcc", headers={"BCC": [reply_name], "x": 1})
    [reply] = requester.wait(1)
    assert reply.body == b"bcc"
    assert reply.properties.headers == {"x": 1}


def test_reply_in_a_transaction_is_delivered_when_published(requester, reply_name, other):
    """RabbitMQ routes a transactional publish when it arrives; a reply is no
    queue's, so it goes at once and a rollback does not take it back."""
    other.tx_select()
    publish(other, "", reply_name, b"in tx")
    sync(other)
    assert requester.wait(1)[0].body == b"in tx"
    other.tx_rollback()
    publish(other, "", reply_name, b"committed")
    other.tx_commit()
    assert [d.body for d in requester.wait(2)] == [b"in tx", b"committed"]
    pump(requester.channel.connection, QUIET_PERIOD)
    assert len(requester.consumer.deliveries) == 2


def test_dead_letter_to_a_reply_name_reaches_the_requester(requester, reply_name, other, names):
    queue = names.queue("dying")
    other.queue_declare(queue, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": reply_name,
    })
    publish(other, "", queue, b"rejected")
    delivery = wait_get(other, queue, auto_ack=False)
    other.basic_reject(delivery.delivery_tag, requeue=False)
    [reply] = requester.wait(1)
    assert reply.body == b"rejected"
    assert reply.routing_key == reply_name
    assert reply.properties.headers["x-death"][0]["reason"] == "rejected"


# -- the reply consumer --------------------------------------------------------------


def test_reply_consumer_must_be_no_ack(channel):
    with channel_closed_with(406, "PRECONDITION_FAILED - reply consumer cannot acknowledge"):
        channel.basic_consume(REPLY_TO, lambda *args: None, auto_ack=False)


def test_second_reply_consumer_on_a_channel_is_406(requester):
    with channel_closed_with(406, "PRECONDITION_FAILED - reply consumer already set"):
        requester.channel.basic_consume(REPLY_TO, lambda *args: None, auto_ack=True)


def test_second_reply_consumer_that_acks_is_told_it_cannot_acknowledge(requester):
    # RabbitMQ looks at no-ack before it looks for a reply consumer already set.
    with channel_closed_with(406, "PRECONDITION_FAILED - reply consumer cannot acknowledge"):
        requester.channel.basic_consume(REPLY_TO, lambda *args: None, auto_ack=False)


def test_every_channel_of_a_connection_may_have_a_reply_consumer(connection):
    for _ in range(3):
        Requester(connection.channel())
    assert connection.is_open


def test_reply_consumer_gets_a_server_made_tag(py_amqp_channel):
    tag = py_amqp_channel.basic_consume(REPLY_TO, consumer_tag="", no_ack=True,
                                        callback=lambda message: None)
    assert tag.startswith("amq.ctag-")


def test_reply_consumer_with_the_tag_of_a_queue_consumer_is_530(py_amqp_channel, names):
    queue = names.queue()
    py_amqp_channel.queue_declare(queue, auto_delete=False)
    py_amqp_channel.basic_consume(queue, consumer_tag="taken", no_ack=True,
                                  callback=lambda message: None)
    with pytest.raises(amqp.exceptions.NotAllowed) as raised:
        py_amqp_channel.basic_consume(REPLY_TO, consumer_tag="taken", no_ack=True,
                                      callback=lambda message: None)
    assert raised.value.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'taken'"


def test_exclusive_flag_of_a_reply_consumer_changes_nothing(connection):
    for _ in range(2):
        connection.channel().basic_consume(REPLY_TO, lambda *args: None, auto_ack=True,
                                           exclusive=True)
    assert connection.is_open


def test_publish_with_reply_to_and_no_reply_consumer_is_406(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    with channel_closed_with(406, "PRECONDITION_FAILED - fast reply consumer does not exist"):
        publish(channel, "", queue, b"r", reply_to=REPLY_TO)
        sync(channel)
    assert channel.connection.is_open


def test_publish_with_reply_to_after_cancelling_the_reply_consumer_is_406(requester, names):
    queue = names.queue()
    requester.channel.queue_declare(queue)
    requester.consumer.cancel()
    with channel_closed_with(406, "PRECONDITION_FAILED - fast reply consumer does not exist"):
        publish(requester.channel, "", queue, b"r", reply_to=REPLY_TO)
        sync(requester.channel)


def test_replies_after_cancel_are_dropped(requester, reply_name, other):
    requester.consumer.cancel()
    publish(other, "", reply_name, b"too late")
    sync(other)
    pump(requester.channel.connection, QUIET_PERIOD)
    assert requester.consumer.deliveries == []


def test_a_new_reply_consumer_gets_a_new_name(requester, reply_name, names):
    queue = names.queue()
    requester.channel.queue_declare(queue)
    requester.consumer.cancel()
    requester.consumer = Consumer(requester.channel, REPLY_TO, auto_ack=True)
    assert requester.request(queue) != reply_name


def test_consume_of_the_last_declared_queue_can_be_the_pseudo_queue(py_amqp_channel, names):
    """queue "" means the channel's last declared queue, the pseudo-queue included."""
    queue = names.queue()
    py_amqp_channel.queue_declare(queue, auto_delete=False)
    py_amqp_channel.queue_declare(REPLY_TO, passive=True)
    py_amqp_channel.basic_consume("", no_ack=True, callback=lambda message: None)
    # A reply consumer now exists: a request with reply_to is accepted.
    py_amqp_channel.basic_publish(amqp.Message(b"r", reply_to=REPLY_TO), "", queue)
    py_amqp_channel.queue_declare(queue, passive=True)


# -- it is not a queue ---------------------------------------------------------------


def test_declaring_the_pseudo_queue_answers_one_consumer(channel):
    ok = channel.queue_declare(REPLY_TO, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)


def test_every_declare_of_the_pseudo_queue_is_passive(channel):
    # durable, exclusive, auto-delete, arguments: nothing is made.
    ok = channel.queue_declare(REPLY_TO, durable=True, exclusive=True, auto_delete=True,
                               arguments={"x-message-ttl": 5}).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)


def test_declare_of_a_live_reply_name_from_another_connection(reply_name, other):
    for passive in (True, False):
        ok = other.queue_declare(reply_name, passive=passive).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (reply_name, 0, 1)


def test_declare_of_a_reply_name_after_cancel_is_404(requester, reply_name, other):
    requester.consumer.cancel()
    with channel_closed_with(404, no_queue(reply_name)):
        other.queue_declare(reply_name, passive=True)


def test_declare_of_a_reply_name_after_the_requester_closed_is_404(connect, names, other):
    connection = connect()
    requester = Requester(connection.channel())
    queue = names.queue()
    requester.channel.queue_declare(queue)
    reply_name = requester.request(queue)
    connection.close()
    with channel_closed_with(404, no_queue(reply_name)):
        other.queue_declare(reply_name, passive=True)


@pytest.mark.parametrize("name", [
    "amq.rabbitmq.reply-to.", "amq.rabbitmq.reply-to.unknown", "amq.rabbitmq.reply-tox",
])
def test_declare_of_other_names_under_the_prefix_is_404(channel, name):
    # Not 403 for the reserved amq. prefix: the declare is answered as passive.
    with channel_closed_with(404, no_queue(name)):
        channel.queue_declare(name)


def test_basic_get_from_the_pseudo_queue_is_404(requester):
    with channel_closed_with(404, no_queue(REPLY_TO)):
        requester.channel.basic_get(REPLY_TO)


def test_basic_get_from_a_reply_name_is_404(reply_name, other):
    with channel_closed_with(404, no_queue(reply_name)):
        other.basic_get(reply_name)


def test_consume_from_a_reply_name_is_404(reply_name, other):
    with channel_closed_with(404, no_queue(reply_name)):
        other.basic_consume(reply_name, lambda *args: None, auto_ack=True)


def test_bind_of_the_pseudo_queue_is_404(channel):
    with channel_closed_with(404, no_queue(REPLY_TO)):
        channel.queue_bind(REPLY_TO, "amq.direct", "key")


def test_purge_of_the_pseudo_queue_is_404(channel):
    with channel_closed_with(404, no_queue(REPLY_TO)):
        channel.queue_purge(REPLY_TO)


def test_delete_of_the_pseudo_queue_deletes_nothing(requester, reply_name, other):
    # As for any missing queue: delete-ok, 0 messages; the consumer lives on.
    assert other.queue_delete(REPLY_TO).method.message_count == 0
    assert other.queue_delete(reply_name).method.message_count == 0
    publish(other, "", reply_name, b"still here")
    assert requester.wait(1)[0].body == b"still here"


# -- nobody to reply to -------------------------------------------------------------


@pytest.fixture
def returns(other) -> Iterator[list]:
    returned: list = []
    other.add_on_return_callback(lambda ch, method, properties, body: returned.append(
        (method.reply_code, method.reply_text, method.routing_key, body)))
    yield returned


def test_reply_to_a_gone_requester_is_dropped(connect, names, other, returns):
    connection = connect()
    requester = Requester(connection.channel())
    queue = names.queue()
    requester.channel.queue_declare(queue)
    reply_name = requester.request(queue)
    connection.close()
    other.confirm_delivery()
    publish(other, "", reply_name, b"nobody")  # confirmed all the same
    assert returns == []


def test_mandatory_reply_to_a_gone_requester_is_returned(connect, names, other, returns):
    connection = connect()
    requester = Requester(connection.channel())
    queue = names.queue()
    requester.channel.queue_declare(queue)
    reply_name = requester.request(queue)
    connection.close()
    publish(other, "", reply_name, b"nobody", mandatory=True)
    assert wait_for(other.connection, lambda: bool(returns))
    assert returns == [(312, "NO_ROUTE", reply_name, b"nobody")]


def test_mandatory_reply_to_a_live_requester_is_delivered_and_returned(
    requester, reply_name, other, returns
):
    publish(other, "", reply_name, b"both", mandatory=True)
    assert requester.wait(1)[0].body == b"both"
    assert wait_for(other.connection, lambda: bool(returns))
    assert returns == [(312, "NO_ROUTE", reply_name, b"both")]


def test_reply_through_another_exchange_reaches_nobody(requester, reply_name, other, returns):
    publish(other, "amq.direct", reply_name, b"wrong exchange", mandatory=True)
    assert wait_for(other.connection, lambda: bool(returns))
    assert returns == [(312, "NO_ROUTE", reply_name, b"wrong exchange")]
    pump(requester.channel.connection, QUIET_PERIOD)
    assert requester.consumer.deliveries == []


def test_reply_to_an_unknown_reply_name_is_returned(other, returns):
    name = REPLY_TO + ".unknown"
    publish(other, "", name, b"x", mandatory=True)
    assert wait_for(other.connection, lambda: bool(returns))
    assert returns == [(312, "NO_ROUTE", name, b"x")]


# -- permissions and vhosts (need --admin-url) ------------------------------------------


def test_reply_consumer_and_declares_need_no_permission(tenant: Tenant, names):
    tenant.grant(configure="", write="", read="")
    channel = tenant.channel()
    channel.basic_consume(REPLY_TO, lambda *args: None, auto_ack=True)
    ok = channel.queue_declare(REPLY_TO, passive=True).method
    assert ok.consumer_count == 1


def test_request_and_reply_need_write_on_amq_default(tenant: Tenant):
    queue = f"rpc-{uuid.uuid4().hex[:8]}"
    tenant.owner.queue_declare(queue)
    tenant.grant(configure="", write=exactly("amq.default"), read="")
    requester = Requester(tenant.channel())
    publish(requester.channel, "", queue, b"request", reply_to=REPLY_TO)
    request = wait_get(tenant.owner, queue)
    publish(requester.channel, "", request.properties.reply_to, b"reply")
    assert requester.wait(1)[0].body == b"reply"


def test_reply_without_write_on_amq_default_is_403(tenant: Tenant):
    queue = f"rpc-{uuid.uuid4().hex[:8]}"
    tenant.owner.queue_declare(queue)
    requester = Requester(tenant.owner)
    reply_name = requester.request(queue)
    tenant.grant(configure="", write="", read="")
    channel = tenant.channel()
    with channel_closed_with(403, tenant.refused("exchange", "amq.default")):
        publish(channel, "", reply_name, b"reply")
        sync(channel)


def test_reply_from_another_vhost_reaches_the_requester(tenant: Tenant, requester, reply_name):
    """The reply name designates a channel, not a queue of a vhost."""
    elsewhere = tenant.owner
    ok = elsewhere.queue_declare(reply_name, passive=True).method
    assert ok.consumer_count == 1
    publish(elsewhere, "", reply_name, b"from another vhost")
    assert requester.wait(1)[0].body == b"from another vhost"
