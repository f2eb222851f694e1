"""Plain and TLS listeners on IPv6 loopback (::1), with pika; skipped where
the machine has no IPv6 loopback."""

from __future__ import annotations

import pika
import pytest
from tls_helpers import DN, ipv6_loopback, running, tls_outcome, tls_port, tls_settings, wait_for

from broker.auth.permissions import Permission
from broker.auth.users import User

pytestmark = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")


def test_plain_and_tls_listeners_on_ipv6_loopback(pki):
    with running(tls_settings(pki, host="::1")) as thread:
        listeners = {listener.kind: listener for listener in thread.broker.listeners}
        assert listeners["amqp"].host == listeners["amqp/ssl"].host == "::1"
        assert str(listeners["amqp/ssl"]) == f"amqp/ssl [::1]:{tls_port(thread)}"
        assert thread.broker.url.startswith(f"amqp://guest:guest@[::1]:{thread.broker.port}/")
        thread.run_sync(lambda: (thread.broker.access.put_user(User(DN["acl-client"])),
                                 thread.broker.access.set_permission(DN["acl-client"], "/", Permission())))

        plain = pika.BlockingConnection(pika.URLParameters(thread.broker.url))
        # The certificate's SAN has IP ::1: the client checks it against the address.
        secure = pika.BlockingConnection(pika.ConnectionParameters(
            "::1", tls_port(thread), credentials=pika.credentials.ExternalCredentials(),
            ssl_options=pika.SSLOptions(pki.client_context("acl-client"), "::1"),
        ))
        try:
            channel = secure.channel()
            queue = channel.queue_declare("", exclusive=True).method.queue
            plain.channel().basic_publish("", queue, b"from plain v6")
            assert wait_for(lambda: channel.basic_get(queue, auto_ack=True)[2]) == b"from plain v6"
            infos = thread.run_sync(lambda: sorted(
                (c.info for c in thread.broker.connections), key=lambda info: info.listener))
            assert [(i.listener, i.peer_host, i.is_loopback) for i in infos] == [
                ("amqp", "::1", True), ("amqp/ssl", "::1", True)]
            assert infos[0].peer_text.startswith("[::1]:")
            assert infos[1].tls is not None and infos[1].tls.peer_subject == DN["acl-client"]
        finally:
            secure.close()
            plain.close()
        assert tls_outcome(tls_port(thread), pki.client_context("rogue"), host="::1") == (
            "TLSV1_ALERT_UNKNOWN_CA"
        )
