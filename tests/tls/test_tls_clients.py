"""Real clients over real TLS: pika, aio-pika, kombu and py-amqp connect to a
broker's amqps listener, verify its certificate against the test CA, publish
and consume; the plain listener beside it keeps working.

The broker asks for client certificates (verify_peer) but does not require
them, so these clients log in with PLAIN (guest, from loopback).
"""

from __future__ import annotations

import asyncio
import os
import select
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator

import aio_pika
import amqp
import kombu
import pika
import pytest
from tls_helpers import OPENSSL, PKI, running, tls_port, tls_settings

from broker.testing import BrokerThread


@pytest.fixture(scope="module")
def broker(pki: PKI) -> Iterator[BrokerThread]:
    with running(tls_settings(pki)) as thread:
        yield thread


def _name() -> str:
    return f"tls.{uuid.uuid4().hex[:8]}"


def test_pika_over_amqps_verifies_the_broker_and_round_trips(broker, pki) -> None:
    params = pika.ConnectionParameters(
        "localhost", tls_port(broker),
        credentials=pika.PlainCredentials("guest", "guest"),
        ssl_options=pika.SSLOptions(pki.client_context(), server_hostname="localhost"),
    )
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        queue = _name()
        channel.queue_declare(queue, exclusive=True)
        channel.confirm_delivery()
        channel.basic_publish("", queue, b"over tls", pika.BasicProperties(content_type="text/plain"))
        for method, properties, body in channel.consume(queue, inactivity_timeout=5):
            assert body == b"over tls" and properties.content_type == "text/plain"
            channel.basic_ack(method.delivery_tag)
            break
        channel.cancel()
    finally:
        connection.close()


def test_pika_refuses_a_broker_whose_certificate_it_cannot_verify(broker) -> None:
    # The default context trusts the system CAs only, not the test CA.
    params = pika.ConnectionParameters(
        "localhost", tls_port(broker),
        ssl_options=pika.SSLOptions(ssl.create_default_context(), server_hostname="localhost"),
        connection_attempts=1,
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        pika.BlockingConnection(params)


def test_aio_pika_over_amqps_round_trips(broker, pki) -> None:
    async def main() -> bytes:
        connection = await aio_pika.connect(
            f"amqps://guest:guest@localhost:{tls_port(broker)}/",
            ssl_context=pki.client_context(),
        )
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            queue = await channel.declare_queue(_name(), exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(b"aio over tls"), queue.name)
            async with queue.iterator(timeout=5) as messages:
                async for message in messages:
                    async with message.process():
                        return message.body
        raise AssertionError("no message")

    assert asyncio.run(main()) == b"aio over tls"


def test_aio_pika_with_the_ca_file_in_the_url(broker, pki) -> None:
    # aiormq's own URL options: cafile (verification on unless no_verify_ssl=1).
    async def main() -> int:
        connection = await aio_pika.connect(
            f"amqps://guest:guest@localhost:{tls_port(broker)}/?cafile={pki.ca}"
        )
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(_name(), exclusive=True)
            return queue.declaration_result.message_count

    assert asyncio.run(main()) == 0


def test_kombu_over_amqps_round_trips(broker, pki) -> None:
    url = f"amqps://guest:guest@localhost:{tls_port(broker)}//"
    ssl_options = {"ca_certs": str(pki.ca), "cert_reqs": ssl.CERT_REQUIRED,
                   "server_hostname": "localhost"}
    name = _name()
    with kombu.Connection(url, ssl=ssl_options, connect_timeout=5) as connection:
        queue = kombu.Queue(name, exchange=kombu.Exchange(name, "direct"), routing_key="k",
                            auto_delete=True)
        with connection.Producer() as producer:
            producer.publish({"over": "tls"}, exchange=queue.exchange, routing_key="k",
                             declare=[queue], serializer="json")
        simple = connection.SimpleQueue(queue)
        message = simple.get(timeout=5)
        assert message.payload == {"over": "tls"}
        message.ack()
        simple.close()


def test_py_amqp_over_amqps_and_the_plain_listener_beside_it(broker, pki) -> None:
    sslopts = {"ca_certs": str(pki.ca), "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "localhost"}
    # py-amqp on its own prefers EXTERNAL when the broker offers it, before
    # AMQPLAIN and PLAIN: without a client certificate it must be told its
    # mechanism (the choice is the client's: the same with RabbitMQ). kombu
    # asks py-amqp for PLAIN unless told otherwise (the kombu test above).
    secure = amqp.Connection(f"localhost:{tls_port(broker)}", ssl=sslopts,
                             login_method="AMQPLAIN")
    secure.connect()
    try:
        assert secure.mechanisms == [b"PLAIN", b"AMQPLAIN", b"EXTERNAL"]
        secure.channel().queue_declare("", exclusive=True)
    finally:
        secure.close()
    default = amqp.Connection(f"localhost:{tls_port(broker)}", ssl=sslopts)
    with pytest.raises(amqp.exceptions.AccessRefused, match="mechanism EXTERNAL"):
        default.connect()
    plain = amqp.Connection(f"127.0.0.1:{broker.broker.port}")
    plain.connect()
    try:
        assert plain.mechanisms == [b"PLAIN", b"AMQPLAIN"]
    finally:
        plain.close()


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command line is not installed")
def test_openssl_s_client_sees_the_broker_answer_the_protocol_header(broker, pki) -> None:
    # The docs/security.md check: `openssl s_client` verifies the chain and
    # the broker answers AMQP's protocol header with connection.start.
    client = subprocess.Popen(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{tls_port(broker)}",
         "-CAfile", str(pki.ca), "-verify_return_error", "-verify_hostname", "localhost",
         "-quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert client.stdin is not None and client.stdout is not None
    try:
        client.stdin.write(b"AMQP\x00\x00\x09\x01")
        client.stdin.flush()
        received = b""
        deadline = time.monotonic() + 10
        # Read until connection.start's mechanisms; the broker would wait
        # handshake_timeout for the rest, so the client is stopped instead.
        while b"EXTERNAL" not in received and time.monotonic() < deadline:
            ready, _, _ = select.select([client.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(client.stdout.fileno(), 4096)
                if not chunk:
                    break
                received += chunk
    finally:
        client.kill()
        _, errors = client.communicate(timeout=10)
    assert b"PLAIN AMQPLAIN EXTERNAL" in received, errors
    assert b"Warren" in received
    assert b"verify return:1" in errors
