"""EXTERNAL: a TLS client certificate names the user, with pika, aio-pika,
kombu and py-amqp over real TLS sockets; and what the broker knows of a TLS connection
(its ConnectionInfo, read on the broker's thread).

The users exist without a password (as `rabbitmqctl clear_password` leaves
them), named by the certificate's distinguished name or by its common name
(`ssl_cert_login_from`). Refusals are RabbitMQ 3.10.8's (probed against a
node with rabbitmq_auth_mechanism_ssl): the generic 403 with class and
method 0, whatever the reason; the reason goes to the log.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import quote

import aio_pika
import amqp
import kombu
import pika
import pytest
from structlog.testing import capture_logs
from tls_helpers import (
    CN,
    DN,
    PKI,
    connection_start,
    events,
    running,
    tls_port,
    tls_settings,
    wait_for,
)

from broker.auth.permissions import Permission
from broker.auth.users import User
from broker.testing import BrokerThread
from protocol import methods as m
from protocol.connection import Command, Connection, Role

REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. "
    "For details see the broker logfile."
)


@pytest.fixture(scope="module", params=["distinguished_name", "common_name"])
def broker(request, pki: PKI) -> Iterator[BrokerThread]:
    """A broker whose EXTERNAL users are named by DN or by CN, passwordless."""
    names = DN if request.param == "distinguished_name" else CN
    with running(tls_settings(pki, ssl_cert_login_from=request.param)) as thread:

        def add_users() -> None:
            assert thread.broker is not None
            for name in names.values():
                thread.broker.access.put_user(User(name))
                thread.broker.access.set_permission(name, "/", Permission())

        thread.run_sync(add_users)
        thread.names = names  # type: ignore[attr-defined]
        yield thread


def _pika(broker: BrokerThread, pki: PKI, client: str | None) -> pika.BlockingConnection:
    params = pika.ConnectionParameters(
        "localhost", tls_port(broker),
        credentials=pika.credentials.ExternalCredentials(),
        ssl_options=pika.SSLOptions(pki.client_context(client), "localhost"),
        connection_attempts=1,
    )
    return pika.BlockingConnection(params)


def _users(broker: BrokerThread) -> list[str | None]:
    return broker.run_sync(lambda: sorted(c.user or "" for c in broker.broker.connections))


@pytest.mark.parametrize("client", ["acl-client", "tricky"])
def test_pika_logs_in_by_certificate(broker, pki, client):
    connection = _pika(broker, pki, client)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"signed")
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        assert body == b"signed"
        assert wait_for(lambda: _users(broker) == [broker.names[client]])
    finally:
        connection.close()


def test_aio_pika_logs_in_by_certificate(broker, pki):
    cert, key = pki.clients["acl-client"]
    url = (
        f"amqps://localhost:{tls_port(broker)}/?auth=external&cafile={quote(str(pki.ca))}"
        f"&certfile={quote(str(cert))}&keyfile={quote(str(key))}"
    )

    async def main() -> str:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("", exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(b"by cert"), queue.name)
            message = await queue.get(timeout=5)
            await message.ack()
            return message.body.decode()

    assert asyncio.run(main()) == "by cert"


def test_kombu_logs_in_by_certificate(broker, pki):
    cert, key = pki.clients["acl-client"]
    ssl_options = {"ca_certs": str(pki.ca), "cert_reqs": ssl.CERT_REQUIRED,
                   "server_hostname": "localhost", "certfile": str(cert), "keyfile": str(key)}
    url = f"amqps://localhost:{tls_port(broker)}//"
    with kombu.Connection(url, ssl=ssl_options, login_method="EXTERNAL",
                          connect_timeout=5) as connection:
        queue = connection.SimpleQueue("kombu-by-cert")
        queue.put({"by": "cert"})
        message = queue.get(timeout=5)
        assert message.payload == {"by": "cert"}
        message.ack()
        queue.close()
        connection.default_channel.queue_delete("kombu-by-cert")
        assert wait_for(lambda: _users(broker) == [broker.names["acl-client"]])


def _py_amqp_external(broker: BrokerThread, pki: PKI, client: str | None) -> amqp.Connection:
    sslopts = {"ca_certs": str(pki.ca), "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "localhost"}
    if client is not None:
        cert, key = pki.clients[client]
        sslopts.update(certfile=str(cert), keyfile=str(key))
    return amqp.Connection(f"localhost:{tls_port(broker)}", ssl=sslopts, login_method="EXTERNAL")


@pytest.mark.parametrize(
    ("client", "reason"),
    [("stranger", "no user named"), (None, "the client presented no certificate")],
)
def test_refused_for_an_unknown_user_or_without_certificate(broker, pki, client, reason):
    with capture_logs() as logs:
        connection = _py_amqp_external(broker, pki, client)
        with pytest.raises(amqp.exceptions.AccessRefused) as refused:
            connection.connect()
        found = wait_for(lambda: events(logs, "connection.refused"))
    assert refused.value.reply_text == REFUSED
    assert refused.value.method_sig == (0, 0)  # as RabbitMQ sends it
    assert found[0]["mechanism"] == "EXTERNAL" and reason in found[0]["reason"]
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)):
        _pika(broker, pki, client)


def test_a_user_with_a_password_may_log_in_by_certificate_too(broker, pki):
    # EXTERNAL needs the user to exist; its password, if any, plays no part.
    name = broker.names["acl-client"]
    broker.run_sync(lambda: broker.broker.access.put_user(User.with_password(name, "pw")))
    try:
        _pika(broker, pki, "acl-client").close()
    finally:
        broker.run_sync(lambda: broker.broker.access.put_user(User(name)))


def _mechanisms(sock: socket.socket | ssl.SSLSocket) -> str:
    return connection_start(sock).mechanisms


def test_external_is_offered_on_tls_only(broker, pki):
    with socket.create_connection(("127.0.0.1", broker.broker.port), timeout=5) as plain:
        assert _mechanisms(plain) == "PLAIN AMQPLAIN"
    raw = socket.create_connection(("127.0.0.1", tls_port(broker)), timeout=5)
    with pki.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
        assert _mechanisms(tls) == "PLAIN AMQPLAIN EXTERNAL"


def test_external_on_the_plain_listener_is_refused(broker):
    # A client that sends EXTERNAL anyway gets 503 (RabbitMQ drops the
    # connection without a reply: docs/compatibility.md).
    amqp_ = Connection(Role.CLIENT)
    with socket.create_connection(("127.0.0.1", broker.broker.port), timeout=5) as sock:
        sock.sendall(amqp_.send_protocol_header())
        connection_start_seen = False
        close = None
        while close is None:
            data = sock.recv(65536)
            assert data, "closed without connection.close"
            for event in amqp_.receive_data(data):
                if isinstance(event, Command) and isinstance(event.method, m.ConnectionStart):
                    connection_start_seen = True
                    sock.sendall(amqp_.send(0, m.ConnectionStartOk(
                        client_properties={}, mechanism="EXTERNAL", response=b"", locale="en_US")))
                elif isinstance(event, Command) and isinstance(event.method, m.ConnectionClose):
                    close = event.method
    assert connection_start_seen
    assert close.reply_code == 503
    assert close.reply_text == "COMMAND_INVALID - unknown authentication mechanism 'EXTERNAL'"


def test_verify_none_never_has_a_certificate_so_external_always_fails(pki):
    # RabbitMQ refuses EXTERNAL unless verify_peer; without it no client
    # certificate is asked for, so Warren has no name to take.
    settings = tls_settings(pki, tls={"verify": "verify_none", "cacertfile": None})
    with running(settings) as thread:
        thread.run_sync(lambda: thread.broker.access.put_user(User(DN["acl-client"])))
        connection = amqp.Connection(
            f"localhost:{tls_port(thread)}", login_method="EXTERNAL",
            ssl={"ca_certs": str(pki.ca), "cert_reqs": ssl.CERT_REQUIRED,
                 "server_hostname": "localhost", "certfile": str(pki.clients["acl-client"][0]),
                 "keyfile": str(pki.clients["acl-client"][1])},
        )
        with pytest.raises(amqp.exceptions.AccessRefused):
            connection.connect()


# -- what the broker knows of a TLS connection -----------------------------------------


def _infos(broker: BrokerThread) -> list:
    return broker.run_sync(lambda: [c.info for c in broker.broker.connections])


@pytest.mark.parametrize(
    ("version", "protocol"),
    [(ssl.TLSVersion.TLSv1_3, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")],
)
def test_connection_info_of_a_tls_connection(broker, pki, version, protocol):
    context = pki.client_context("acl-client")
    context.minimum_version = context.maximum_version = version
    params = pika.ConnectionParameters(
        "localhost", tls_port(broker), credentials=pika.credentials.ExternalCredentials(),
        ssl_options=pika.SSLOptions(context, "localhost"),
    )
    connection = pika.BlockingConnection(params)
    try:
        local_port = connection._impl._transport._sock.getsockname()[1]
        client_cipher = connection._impl._transport._sock.cipher()[0]
        [info] = wait_for(lambda: _infos(broker))
        assert info.listener == "amqp/ssl"
        assert (info.peer_host, info.peer_port) == ("127.0.0.1", local_port)
        assert (info.local_host, info.local_port) == ("127.0.0.1", tls_port(broker))
        assert info.is_loopback
        assert info.tls is not None
        assert info.tls.protocol == protocol
        assert info.tls.cipher == client_cipher
        assert info.tls.peer_subject == DN["acl-client"]
        assert info.tls.peer_common_name == CN["acl-client"]
    finally:
        connection.close()


def test_connection_info_without_client_certificate_and_on_the_plain_listener(broker, pki):
    secure = pika.BlockingConnection(pika.ConnectionParameters(
        "localhost", tls_port(broker), credentials=pika.PlainCredentials("guest", "guest"),
        ssl_options=pika.SSLOptions(pki.client_context(), "localhost"),
    ))
    plain = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", broker.broker.port, credentials=pika.PlainCredentials("guest", "guest"),
    ))
    try:
        infos = sorted(wait_for(lambda: len(_infos(broker)) == 2 and _infos(broker)),
                       key=lambda info: info.listener)
        assert [info.listener for info in infos] == ["amqp", "amqp/ssl"]
        assert infos[0].tls is None
        tls = infos[1].tls
        assert tls is not None and tls.protocol == "TLSv1.3"
        assert tls.peer_subject is None and tls.peer_common_name is None
    finally:
        secure.close()
        plain.close()
