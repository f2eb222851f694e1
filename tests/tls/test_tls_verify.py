"""Who may open a TLS connection: ssl_options.verify, fail_if_no_peer_cert,
the TLS versions, and the handshake timeout, with real TLS sockets.

Refusals happen in the TLS handshake, before any AMQP: the client sees the
broker's TLS alert and the broker logs one `connection.tls_failed` line
naming the peer (`connection.tls_timeout` for a client that never finishes).
"""

from __future__ import annotations

import socket
import ssl
import time
import warnings
from collections.abc import Iterator

import pika
import pytest
from structlog.testing import capture_logs
from tls_helpers import (
    PKI,
    connection_start,
    events,
    running,
    tls_outcome,
    tls_port,
    tls_settings,
    wait_for,
)

from broker.testing import BrokerThread


@pytest.fixture(scope="module")
def optional(pki: PKI) -> Iterator[BrokerThread]:
    """verify_peer without fail_if_no_peer_cert: a certificate is asked for, not required."""
    with running(tls_settings(pki)) as thread:
        yield thread


@pytest.fixture(scope="module")
def required(pki: PKI) -> Iterator[BrokerThread]:
    """verify_peer with fail_if_no_peer_cert."""
    with running(tls_settings(pki, tls={"fail_if_no_peer_cert": True})) as thread:
        yield thread




def test_verify_peer_lets_a_client_without_certificate_log_in_with_plain(optional, pki):
    assert tls_outcome(tls_port(optional), pki.client_context()) == "start"
    params = pika.ConnectionParameters(
        "localhost", tls_port(optional), credentials=pika.PlainCredentials("guest", "guest"),
        ssl_options=pika.SSLOptions(pki.client_context(), "localhost"),
    )
    connection = pika.BlockingConnection(params)
    connection.channel().queue_declare("", exclusive=True)
    connection.close()


def test_verify_peer_refuses_a_certificate_from_another_ca_in_the_handshake(optional, pki):
    with capture_logs() as logs:
        assert tls_outcome(tls_port(optional), pki.client_context("rogue")) == "TLSV1_ALERT_UNKNOWN_CA"
        failed = wait_for(lambda: events(logs, "connection.tls_failed"))
    assert len(failed) == 1
    assert failed[0]["peer"].startswith("127.0.0.1:")
    assert "certificate verify failed" in failed[0]["error"]
    # pika sees the same refusal (as an error of the connection attempt).
    params = pika.ConnectionParameters(
        "localhost", tls_port(optional),
        ssl_options=pika.SSLOptions(pki.client_context("rogue"), "localhost"),
        connection_attempts=1,
    )
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(params)


def test_fail_if_no_peer_cert_refuses_a_client_without_certificate(required, pki):
    with capture_logs() as logs:
        # TLS 1.3: the client's handshake completes, the broker's alert comes on the first read.
        assert tls_outcome(tls_port(required), pki.client_context()) == (
            "TLSV13_ALERT_CERTIFICATE_REQUIRED"
        )
        tls12 = pki.client_context()
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        assert tls_outcome(tls_port(required), tls12) == "SSLV3_ALERT_HANDSHAKE_FAILURE"
        failed = wait_for(lambda: len(events(logs, "connection.tls_failed")) >= 2 and logs)
    failed = events(failed, "connection.tls_failed")
    assert len(failed) == 2
    assert all("PEER_DID_NOT_RETURN_A_CERTIFICATE" in entry["error"] for entry in failed)
    assert all(entry["peer"].startswith("127.0.0.1:") for entry in failed)
    # Nothing else is logged for these connections (no AMQP was spoken).
    assert not events(logs, "connection.refused") and not events(logs, "protocol.error")


def test_fail_if_no_peer_cert_lets_a_good_certificate_in(required, pki):
    assert tls_outcome(tls_port(required), pki.client_context("acl-client")) == "start"
    assert tls_outcome(tls_port(required), pki.client_context("rogue")) == "TLSV1_ALERT_UNKNOWN_CA"


def test_the_systems_ca_store_is_not_trusted_for_client_certificates(pki, monkeypatch):
    # OpenSSL's default CA locations (what load_default_certs reads) made to
    # hold the other CA: a broker must still trust cacertfile alone.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.other_ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(pki.directory / "no-such-dir"))
    with running(tls_settings(pki)) as thread:
        assert tls_outcome(tls_port(thread), pki.client_context("rogue")) == "TLSV1_ALERT_UNKNOWN_CA"


def _version_context(pki: PKI, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = pki.client_context()
    context.minimum_version = context.maximum_version = version
    return context


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_accepted(optional, pki, version):
    assert tls_outcome(tls_port(optional), _version_context(pki, version)) == "start"


def test_tls_1_1_is_refused_by_the_broker(optional, pki):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = pki.client_context()
        # The client must be able to offer TLS 1.1 for the refusal to be the
        # broker's: OpenSSL 3 allows it only at security level 0.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with capture_logs() as logs:
        assert tls_outcome(tls_port(optional), context) == "TLSV1_ALERT_PROTOCOL_VERSION"
        failed = wait_for(lambda: events(logs, "connection.tls_failed"))
    assert "UNSUPPORTED_PROTOCOL" in failed[0]["error"]


def test_ssl_options_versions_tlsv1_3_alone_refuses_tls_1_2(pki):
    with running(tls_settings(pki, tls={"versions": ("tlsv1.3",)})) as thread:
        port = tls_port(thread)
        assert tls_outcome(port, _version_context(pki, ssl.TLSVersion.TLSv1_3)) == "start"
        assert tls_outcome(port, _version_context(pki, ssl.TLSVersion.TLSv1_2)) == (
            "TLSV1_ALERT_PROTOCOL_VERSION"
        )


def _closed_after(sock: socket.socket | ssl.SSLSocket) -> float:
    """Seconds until the broker closes `sock` (the test gives up after 5)."""
    start = time.monotonic()
    sock.settimeout(5)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    return time.monotonic() - start


def test_the_tls_handshake_is_bounded_by_handshake_timeout(pki):
    with running(tls_settings(pki, handshake_timeout=500)) as thread, capture_logs() as logs:
        # TCP to the TLS port, then nothing: dropped after handshake_timeout.
        with socket.create_connection(("127.0.0.1", tls_port(thread))) as silent:
            waited = _closed_after(silent)
        assert 0.4 <= waited < 2.5, waited
        timed_out = wait_for(lambda: events(logs, "connection.tls_timeout"))
        assert len(timed_out) == 1 and timed_out[0]["peer"].startswith("127.0.0.1:")
        # The TLS handshake done, then no protocol header: the AMQP handshake
        # has its handshake_timeout too.
        raw = socket.create_connection(("127.0.0.1", tls_port(thread)))
        with pki.client_context().wrap_socket(raw, server_hostname="localhost") as quiet:
            waited = _closed_after(quiet)
        assert 0.4 <= waited < 2.5, waited
        # A client that is quick enough is unaffected.
        assert tls_outcome(tls_port(thread), pki.client_context()) == "start"


def test_plain_amqp_on_the_tls_port_is_refused_and_logged(optional):
    with capture_logs() as logs:
        with socket.create_connection(("127.0.0.1", tls_port(optional)), timeout=5) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            received = b""
            try:
                while chunk := sock.recv(4096):
                    received += chunk
            except ConnectionError:
                pass
        assert b"AMQP" not in received and b"PLAIN" not in received
        failed = wait_for(lambda: events(logs, "connection.tls_failed"))
    assert "WRONG_VERSION_NUMBER" in failed[0]["error"]


def test_a_plain_client_on_the_plain_listener_is_unaffected(optional):
    with socket.create_connection(("127.0.0.1", optional.broker.port), timeout=5) as sock:
        assert connection_start(sock).mechanisms == "PLAIN AMQPLAIN"
