"""amqps: the client speaks TLS (through a real TLS-terminating proxy in front
of the broker, with a throwaway self-signed certificate made by openssl)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import trio

from broker.client import ConnectionClosed, open_connection
from broker.client.url import parse_url

pytestmark = [
    pytest.mark.trio,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


async def _tls_proxy(target: tuple[str, int], cert: Path, key: Path,
                     task_status=trio.TASK_STATUS_IGNORED) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def pump(source, sink) -> None:
        try:
            async for data in source:
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await sink.aclose()

    async def handle(raw: trio.SocketStream) -> None:
        client = trio.SSLStream(raw, context, server_side=True)
        upstream = await trio.open_tcp_stream(*target)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, upstream)
            nursery.start_soon(pump, upstream, client)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_amqps_with_ssl_context_and_with_cacertfile(amqp_url: str, name: str,
                                                          certificate) -> None:
    cert, key = certificate
    params = parse_url(amqp_url)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_tls_proxy, (params.host, params.port), cert, key)
        base = f"amqps://{params.username}:{params.password}@localhost:{port}/"
        context = ssl.create_default_context(cafile=str(cert))
        async with open_connection(base, ssl_context=context) as conn:
            async with conn.open_channel(confirms=True) as ch:
                await ch.queue_declare(name, exclusive=True)
                await ch.publish("", name, b"over tls" * 1000)
                message = await ch.get(name, no_ack=True)
                assert message is not None and message.body == b"over tls" * 1000
        # The same trust from the URL's query options.
        async with open_connection(f"{base}?cacertfile={cert}") as conn:
            async with conn.open_channel() as ch:
                await ch.queue_declare(name, exclusive=True)
        # A certificate we do not trust is refused, with one clear error.
        with pytest.raises(ConnectionClosed) as info:
            async with open_connection(base):
                pass
        assert "CERTIFICATE_VERIFY_FAILED" in info.value.reply_text
        nursery.cancel_scope.cancel()
