"""TLS test helpers: a test PKI made with the `openssl` command line, brokers
with plain and TLS listeners, and client-side TLS contexts.

`make_pki` (behind conftest.py's module-scoped `pki` fixture) makes, in a
directory, with EC P-256 keys (fast):

- `ca.pem`: the test CA; `server.pem`/`server.key`: CN=localhost, SAN
  localhost, 127.0.0.1 and ::1, signed by it;
- client certificates signed by it: `acl-client` (subject
  /C=GB/O=Acme Ltd/OU=Team, Inc/CN=acl-client: a DN with a comma to escape),
  `tricky` (/O=Ünïcode/CN=bob+UID=b1: unicode and a multi-valued RDN) and
  `stranger` (/CN=stranger: no such user);
- `rogue`: a client certificate with acl-client's subject, from another CA
  (`other-ca.pem`) that the broker does not trust.

Nothing here touches the network beyond loopback. Without `openssl` on the
PATH the tests that need certificates are skipped, saying so.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.settings import Listener, Settings, TLSOptions
from broker.testing import BrokerThread
from protocol import methods as m
from protocol.connection import Command, Connection, Role

OPENSSL = shutil.which("openssl")

#: The subjects of the client certificates, and the user names RabbitMQ 3.10.8
#: derives from them (rabbit_ssl:peer_cert_auth_name; see test_tls_dn.py).
CLIENTS = {
    "acl-client": "/C=GB/O=Acme Ltd/OU=Team, Inc/CN=acl-client",
    "tricky": "/O=Ünïcode/CN=bob+UID=b1",
    "stranger": "/CN=stranger",
}
DN = {
    "acl-client": r"CN=acl-client,OU=Team\, Inc,O=Acme Ltd,C=GB",
    "tricky": r"CN=bob+UID=b1,O=\C3\9Cn\C3\AFcode",
}
CN = {"acl-client": "acl-client", "tricky": "bob"}


def openssl(*args: str, cwd: Path) -> str:
    assert OPENSSL is not None
    done = subprocess.run(
        [OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr}")
    return done.stdout


def make_key(directory: Path, name: str) -> Path:
    path = directory / name
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-out", str(path), cwd=directory)
    return path


def make_ca(directory: Path, name: str, subject: str) -> tuple[Path, Path]:
    key = make_key(directory, f"{name}.key")
    cert = directory / f"{name}.pem"
    openssl("req", "-x509", "-new", "-key", str(key), "-subj", subject, "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", str(cert), cwd=directory)
    return cert, key


def make_cert(directory: Path, name: str, subject: str, ca: tuple[Path, Path],
              extensions: str) -> tuple[Path, Path]:
    """A key and a certificate for `subject` signed by `ca` (`-utf8` subjects)."""
    key = make_key(directory, f"{name}.key")
    csr = directory / f"{name}.csr"
    cert = directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n" + extensions + "\n"
    )
    openssl("req", "-new", "-key", str(key), "-utf8", "-subj", subject, "-out", str(csr),
            cwd=directory)
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert),
            cwd=directory)
    return cert, key


@dataclass(frozen=True)
class PKI:
    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path
    #: name -> (certificate, key): the CLIENTS, and "rogue".
    clients: dict[str, tuple[Path, Path]]

    def options(self, **changes: Any) -> TLSOptions:
        """ssl_options with this PKI: verify_peer against the test CA unless changed."""
        fields: dict[str, Any] = dict(
            cacertfile=str(self.ca), certfile=str(self.server_cert), keyfile=str(self.server_key),
            verify="verify_peer",
        )
        fields.update(changes)
        return TLSOptions(**fields)

    def client_context(self, client: str | None = None, *, check_hostname: bool = True) -> ssl.SSLContext:
        """A client context that verifies the broker against the test CA and,
        with `client`, presents that client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.check_hostname = check_hostname
        if client is not None:
            cert, key = self.clients[client]
            context.load_cert_chain(str(cert), str(key))
        return context


def make_pki(directory: Path) -> PKI:
    """The test PKI, made with the openssl command line in `directory`."""
    ca = make_ca(directory, "ca", "/O=Warren tests/CN=Warren Test CA")
    server = make_cert(directory, "server", "/CN=localhost", ca,
                       "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                       "extendedKeyUsage=serverAuth")
    clients = {
        name: make_cert(directory, name, subject, ca, "extendedKeyUsage=clientAuth")
        for name, subject in CLIENTS.items()
    }
    other_ca = make_ca(directory, "other-ca", "/CN=Some Other CA")
    clients["rogue"] = make_cert(directory, "rogue", CLIENTS["acl-client"], other_ca,
                                 "extendedKeyUsage=clientAuth")
    return PKI(directory, ca[0], server[0], server[1], other_ca[0], clients)


def tls_settings(pki: PKI, host: str = "127.0.0.1", tls: dict[str, Any] | None = None,
                 **changes: Any) -> Settings:
    """A plain listener and a TLS listener on `host` (free ports), EXTERNAL offered."""
    fields: dict[str, Any] = dict(
        listeners_tcp=(Listener(host, 0),),
        listeners_ssl=(Listener(host, 0),),
        ssl_options=pki.options(**(tls or {})),
        auth_mechanisms=("PLAIN", "AMQPLAIN", "EXTERNAL"),
    )
    fields.update(changes)
    return Settings(**fields)


@contextmanager
def running(settings: Settings) -> Iterator[BrokerThread]:
    """A broker with exactly these settings' listeners, in a thread."""
    host = settings.listeners_tcp[0].host if settings.listeners_tcp else "127.0.0.1"
    thread = BrokerThread(host=host or "127.0.0.1", port=0, settings=settings)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def tls_port(thread: BrokerThread) -> int:
    assert thread.broker is not None
    return next(listener.port for listener in thread.broker.listeners if listener.kind == "amqp/ssl")


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def connection_start(sock: socket.socket | ssl.SSLSocket) -> m.ConnectionStart:
    """Send the protocol header on a connected socket, return connection.start."""
    amqp = Connection(Role.CLIENT)
    sock.sendall(amqp.send_protocol_header())
    while True:
        data = sock.recv(65536)
        assert data, "the broker closed the connection before connection.start"
        for event in amqp.receive_data(data):
            if isinstance(event, Command) and isinstance(event.method, m.ConnectionStart):
                return event.method


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def tls_outcome(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> str:
    """Open a TLS connection and send AMQP's protocol header: "start" when the
    broker answers with connection.start, else the client's SSL error reason
    (e.g. TLSV1_ALERT_UNKNOWN_CA; in TLS 1.3 a refused client certificate is
    seen on the first read, after the client's side of the handshake is done)."""
    with socket.create_connection((host, port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                connection_start(tls)
                return "start"
        except ssl.SSLError as error:
            return str(error.reason or error)
        except (ConnectionError, AssertionError) as error:
            return f"closed: {error}"


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry.get("event") == name]
