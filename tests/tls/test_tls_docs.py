"""docs/security.md's examples, run as written, against `warren serve --settings FILE`.

The code blocks marked `<!-- tested: NAME -->` are read from the page: the
openssl commands make the PKI in a temporary directory; the rabbitmq.conf
and the definitions file are written there (paths and ports replaced: the
TLS listener keeps the page's bare-port form, every interface); `warren
serve` runs as a subprocess; `openssl s_client` and the pika examples run
against it as they are written. Also the start-up errors the page shows:
a bad certificate path is one line `file:line: key: ...` and exit status 2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from tls_helpers import OPENSSL, ipv6_loopback

from broker.auth.passwords import verify_password
from broker.auth.permissions import Permission

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
WARREN = [sys.executable, "-m", "broker"]
CERT_USER = r"CN=acl-client,OU=Team\, Inc,O=Acme Ltd,C=GB"

pytestmark = pytest.mark.skipif(
    OPENSSL is None or shutil.which("bash") is None,
    reason="the openssl command line (and bash) are needed to run the page's commands",
)


def block(name: str) -> str:
    found = re.search(rf"<!-- tested: {re.escape(name)} -->\n```[a-z]*\n(.*?)```", DOC, re.S)
    assert found, f"docs/security.md has no block marked 'tested: {name}'"
    return found.group(1)


def table(name: str) -> list[list[str]]:
    found = re.search(rf"<!-- tested: {re.escape(name)} -->\n((?:\|.*\n)+)", DOC)
    assert found, f"docs/security.md has no table marked 'tested: {name}'"
    rows = found.group(1).strip().split("\n")[2:]
    return [
        [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        for row in rows
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def etc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/etc/warren of the page: tls/ made by the page's openssl commands."""
    etc = tmp_path_factory.mktemp("etc-warren")
    tls = etc / "tls"
    tls.mkdir()
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block("pki")], cwd=tls,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    # The page says which user name the certificate makes.
    assert f"# subject={CERT_USER}\n" in block("pki")
    assert done.stdout == f"subject={CERT_USER}\n"
    (etc / "definitions.json").write_text(block("definitions"))
    return etc


def write_conf(etc: Path, tls_port: int, **replace: str) -> Path:
    text = block("conf")
    text = text.replace("/etc/warren", str(etc))
    text = text.replace("127.0.0.1:5672", "127.0.0.1:0").replace("= 5671", f"= {tls_port}")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = etc / "rabbitmq.conf"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def serve(etc: Path) -> Iterator[dict[str, Any]]:
    """`warren serve --settings` on the page's settings, until the module is done."""
    port = free_port()
    conf = write_conf(etc, port)
    process = subprocess.Popen(
        [*WARREN, "serve", "--settings", str(conf), "--management-port", "0",
         "--prometheus-port", "0", "--log-format", "json"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    started: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if '"broker.started"' in line:
            started = json.loads(line)
            break
    assert started, "".join(lines)
    try:
        yield {"port": port, "started": started, "conf": conf}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
            process.stderr.close()


def run_example(name: str, etc: Path, port: int) -> str:
    code = block(name).replace("5671", str(port))
    done = subprocess.run([sys.executable, "-c", code], cwd=etc / "tls", capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_tls_listener_listens_on_every_interface(serve):
    listeners = serve["started"]["listeners"]
    assert f"amqp/ssl 0.0.0.0:{serve['port']}" in listeners
    if ipv6_loopback():
        assert f"amqp/ssl [::]:{serve['port']}" in listeners
    assert '"amqp/ssl 0.0.0.0:5671", "amqp/ssl [::]:5671"' in DOC


def test_s_client_verifies_both_certificates(serve, etc):
    command = block("s_client").split("\n#")[0].replace("5671", str(serve["port"]))
    done = subprocess.run(["bash", "-c", command], cwd=etc / "tls", capture_output=True,
                          text=True, timeout=30, check=False)
    output = done.stdout + done.stderr
    for line in ("CONNECTION ESTABLISHED", "Protocol version: TLSv1.3", "Verification: OK"):
        assert line in output, output
        assert f"# {line}" in block("s_client")


def test_pika_by_certificate(serve, etc):
    assert run_example("pika-external", etc, serve["port"]) == "b'signed by acl-client'\n"


def test_pika_with_a_password_over_tls(serve, etc):
    assert run_example("pika-plain", etc, serve["port"]) == "amq.gen-\n"


def _external(etc: Path, port: int, vhost: str = "/") -> pika.BlockingConnection:
    import ssl

    context = ssl.create_default_context(cafile=str(etc / "tls" / "ca.pem"))
    context.load_cert_chain(str(etc / "tls" / "client.pem"), str(etc / "tls" / "client.key"))
    return pika.BlockingConnection(pika.ConnectionParameters(
        "localhost", port, virtual_host=vhost, credentials=pika.credentials.ExternalCredentials(),
        ssl_options=pika.SSLOptions(context, "localhost"),
    ))


def test_the_definitions_permissions_topic_permissions_and_limits(serve, etc):
    port = serve["port"]
    connection = _external(etc, port)
    try:
        channel = connection.channel()
        channel.basic_publish("amq.topic", "acl.ok", b"allowed")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as topic:
            channel.basic_publish("amq.topic", "other.x", b"refused")
            channel.queue_declare("acl-after")  # the refusal arrives before this answer
        assert topic.value.reply_text == (
            "ACCESS_REFUSED - access to topic 'other.x' in exchange 'amq.topic' in vhost '/' "
            f"refused for user '{CERT_USER}'"
        )
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as queue:
            connection.channel().queue_declare("jobs")
        assert queue.value.reply_text == (
            f"ACCESS_REFUSED - access to queue 'jobs' in vhost '/' refused for user '{CERT_USER}'"
        )
    finally:
        connection.close()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError, match="access to vhost 'tenant'"):
        _external(etc, port, "tenant")

    import ssl

    def alice(vhost: str) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters(
            "localhost", port, virtual_host=vhost,
            credentials=pika.PlainCredentials("alice", "s3cr#t"),
            ssl_options=pika.SSLOptions(
                ssl.create_default_context(cafile=str(etc / "tls" / "ca.pem")), "localhost"),
        ))

    first = alice("tenant")
    try:
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as limit:
            alice("tenant")
        assert ("NOT_ALLOWED - access to vhost 'tenant' refused for user 'alice': "
                "connection limit (1) is reached") in str(limit.value)
        channel = first.channel()
        channel.queue_declare("q1")
        channel.queue_declare("q2")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as queues:
            channel.queue_declare("q3")
        assert queues.value.reply_text == (
            "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost 'tenant' "
            "(2) is reached"
        )
    finally:
        first.close()


def test_the_hash_example_makes_a_hash_rabbitmq_would_check():
    done = subprocess.run([sys.executable, "-c", block("hash")], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, check=True)
    made = done.stdout.strip()
    assert verify_password("s3cr#t", made, "rabbit_password_hashing_sha256")
    assert made != "2/Z/hF8sExQB7z2n1i3aVSJys1jrQdx+U8ixucv+rKWnQ+1J"  # a fresh salt
    assert verify_password("s3cr#t", "2/Z/hF8sExQB7z2n1i3aVSJys1jrQdx+U8ixucv+rKWnQ+1J",
                           "rabbit_password_hashing_sha256")


def test_the_pattern_table():
    rows = table("patterns")
    assert len(rows) >= 8
    for pattern, allows, refuses in rows:
        pattern = pattern.strip("`")
        permission = Permission(configure="" if pattern == '""' else pattern)
        for name in re.findall(r"`([^`]*)`", allows):
            assert permission.allows("configure", name), (pattern, name)
        for name in re.findall(r"`([^`]*)`", refuses):
            assert not permission.allows("configure", name), (pattern, name)


# -- start-up errors: file:line: key, exit status 2 --------------------------------------


def _serve_fails(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WARREN, "serve", "--settings", str(conf), "--management-port", "0",
         "--prometheus-port", "0"],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        check=False, start_new_session=True,
    )


def _conf_line(conf: Path, key: str) -> int:
    lines = conf.read_text().split("\n")
    return next(i for i, line in enumerate(lines, 1) if line.startswith(key))


@pytest.mark.parametrize("what", ["missing", "garbage"])
def test_a_bad_certificate_path_is_named_with_file_line_and_key(etc, tmp_path, what):
    target = tmp_path / "server.pem"
    if what == "garbage":
        target.write_text("not a certificate\n")
    conf = write_conf(etc, free_port(), **{f"{etc}/tls/server.pem": str(target)})
    done = _serve_fails(conf)
    assert done.returncode == 2, done.stderr
    line = _conf_line(conf, "ssl_options.certfile")
    where = f"{conf}:{line}: ssl_options.certfile: {target}: "
    expected = where + ("no such file" if what == "missing" else
                        "no PEM certificate in it (NO_CERTIFICATE_OR_CRL_FOUND)")
    assert expected in done.stderr
    # The page shows the whole answer for /etc/warren.
    shown = block("garbage-cert" if what == "garbage" else "missing-cert")
    answer = "".join(line for line in done.stderr.splitlines(True) if not line.startswith("{"))
    assert answer.replace(str(target), "/etc/warren/tls/server.pem").replace(
        str(etc), "/etc/warren") == shown
    assert line == 4


def test_a_key_that_is_not_the_certificates_or_is_encrypted(etc, tmp_path):
    assert OPENSSL is not None
    other = tmp_path / "other.key"
    subprocess.run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-out", str(other)], check=True,
                   capture_output=True)
    conf = write_conf(etc, free_port(), **{f"{etc}/tls/server.key": str(other)})
    done = _serve_fails(conf)
    assert done.returncode == 2
    assert (f"{conf}:5: ssl_options.keyfile: {other}: not a PEM private key, or not the key of "
            f"{etc}/tls/server.pem") in done.stderr
    encrypted = tmp_path / "encrypted.key"
    subprocess.run([OPENSSL, "pkey", "-in", str(etc / "tls" / "server.key"), "-aes256",
                    "-passout", "pass:secret", "-out", str(encrypted)], check=True,
                   capture_output=True)
    conf = write_conf(etc, free_port(), **{f"{etc}/tls/server.key": str(encrypted)})
    started = time.monotonic()
    done = _serve_fails(conf)
    assert done.returncode == 2 and time.monotonic() - started < 20
    assert f"{conf}:5: ssl_options.keyfile: {encrypted}: the private key is encrypted" in done.stderr
    assert "Enter PEM pass phrase" not in done.stderr + done.stdout


def test_the_start_error_is_before_anything_is_written(etc, tmp_path):
    data = tmp_path / "data"
    conf = write_conf(etc, free_port(), **{f"{etc}/tls/server.pem": str(etc / "tls" / "ca.key")})
    done = subprocess.run(
        [*WARREN, "serve", "--settings", str(conf), "--management-port", "0",
         "--prometheus-port", "0", "--data-dir", str(data)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        check=False, env={**os.environ},
    )
    assert done.returncode == 2
    assert "ssl_options.certfile" in done.stderr
    assert not data.exists()
