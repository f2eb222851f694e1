"""The management HTTP server, over real sockets, with real clients.

http.client and urllib for what well-behaved clients do; a raw socket for
what they do not (malformed heads, pipelining, slowloris, oversized heads and
bodies, idle connections). The expected answers are RabbitMQ 3.10.8's as
observed on the reference node (see broker/management/messages.py), unless a
test says why Warren differs.
"""

from __future__ import annotations

import ast
import base64
import gzip
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from http_helpers import ServerThread

from broker.management.http import (
    HttpApp,
    HttpLimits,
    parse_basic_auth,
    serve_http,
)
from broker.management.messages import Response
from broker.management.router import Router, accepts, decode_segments, split_target

GUEST = "Basic " + base64.b64encode(b"guest:guest").decode()
MGMT = "Basic " + base64.b64encode(b"mgmt:pw").decode()
REALM_HEADER = 'Basic realm="RabbitMQ Management"'
NOT_FOUND = b'{"error":"Object Not Found","reason":"Not Found"}'
LOGIN_FAILED = b'{"error":"not_authorized","reason":"Login failed"}'
SHORT = HttpLimits(request_timeout=0.5, idle_timeout=0.5, linger_timeout=0.2)


# -- a raw HTTP/1.1 client ---------------------------------------------------


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def names(self) -> list[str]:
        return [key for key, _ in self.headers]


class RawClient:
    """A socket, a buffer, and a parser for the answers (Content-Length framed)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def response(self, *, head: bool = False) -> RawResponse:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise EOFError(f"connection closed; got {self.buffer!r}")
        raw_head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        _, status, reason = (status_line.split(" ", 2) + [""])[:3]
        headers = [(k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
        response = RawResponse(int(status), reason, headers, b"")
        length = int(response.header("content-length") or 0)
        if not head and length and int(status) not in (204, 304) and int(status) >= 200:
            while len(self.buffer) < length:
                if not self._fill():
                    raise EOFError("connection closed mid-body")
            response.body, self.buffer = self.buffer[:length], self.buffer[length:]
        return response

    def closed(self) -> bool:
        """True when the server closed the connection (EOF or reset), False on timeout."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def get(path: str, auth: str | None = GUEST, extra: str = "", version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: localhost"]
    if auth:
        lines.append(f"Authorization: {auth}")
    head = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return head.encode("latin-1")


@pytest.fixture
def raw(server: Any) -> Any:
    clients: list[RawClient] = []

    def connect(port: int | None = None, timeout: float = 5.0) -> RawClient:
        client = RawClient(port or server.port, timeout)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def request(
    server: Any,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: str | None = GUEST,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request with urllib; (status, headers, body) for errors as well."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", data=body, method=method, headers=headers or {}
    )
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=5) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# -- keep-alive and pipelining -------------------------------------------------


def test_keep_alive_serves_requests_on_one_connection(server: Any) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/api/whoami", headers={"Authorization": GUEST})
            answer = connection.getresponse()
            assert answer.status == 200
            assert json.loads(answer.read()) == {"name": "guest", "tags": ["administrator"]}
            assert answer.getheader("connection") is None
        local = connection.sock.getsockname()
        connection.request("GET", "/api/whoami", headers={"Authorization": GUEST})
        connection.getresponse().read()
        assert connection.sock.getsockname() == local  # the same TCP connection
        assert server.run_sync(lambda: server.server.active) == 1
    finally:
        connection.close()


def test_json_answer_headers_are_rabbitmqs(server: Any) -> None:
    status, headers, body = request(server, "GET", "/api/whoami")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-cache"
    assert headers["vary"] == "accept, accept-encoding, origin"
    assert headers["content-security-policy"] == (
        "script-src 'self' 'unsafe-eval' 'unsafe-inline'; object-src 'self'"
    )
    assert headers["content-length"] == str(len(body))
    assert headers["server"] == "Warren"
    assert headers["date"].endswith(" GMT")
    assert body == b'{"name":"guest","tags":["administrator"]}'


def test_pipelined_requests_are_answered_in_order(raw: Any) -> None:
    client = raw()
    client.send(
        get("/api/slow?seconds=0.2")
        + get("/api/queues/%2F/nope")
        + get("/api/whoami", extra="Connection: close\r\n")
    )
    first, second, third = client.response(), client.response(), client.response()
    assert (first.status, json.loads(first.body)) == (200, {"slept": True})
    assert (second.status, second.body) == (404, NOT_FOUND)
    assert third.status == 200 and third.header("connection") == "close"
    assert client.closed()


def test_connection_close_is_honoured(raw: Any) -> None:
    client = raw()
    client.send(get("/api/whoami", extra="Connection: close\r\n"))
    answer = client.response()
    assert answer.status == 200
    assert answer.header("connection") == "close"
    assert client.closed()


def test_http10_client_gets_one_answer_and_a_close(raw: Any) -> None:
    client = raw()
    client.send(get("/api/whoami", version="1.0"))
    answer = client.response()
    assert answer.status == 200 and answer.body.startswith(b'{"name":"guest"')
    assert client.closed()


def test_max_requests_per_connection_closes_after_the_last(http_server: Any) -> None:
    server = http_server(HttpLimits(max_requests_per_connection=3))
    client = RawClient(server.port)
    try:
        client.send(get("/api/whoami") * 3)
        answers = [client.response() for _ in range(3)]
        assert [a.header("connection") for a in answers] == [None, None, "close"]
        assert client.closed()
    finally:
        client.close()


# -- malformed requests: 4xx/5xx with an empty body and a close, as cowboy -----


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"HELLO\r\n\r\n", 400),  # not a request line
        (b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400),
        (b"GET /api/whoami HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET /api/whoami HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /api/queues/%ZZ/x HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # bad escape
        (b"GET /api/queues/%FF/x HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # not UTF-8
        (b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
        # RFC 9112 section 6.1: a transfer-coding we do not know is 501 (cowboy says 400).
        (b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        # Both framings: request smuggling's signature (cowboy uses the chunked one).
        (b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400),
    ],
)
def test_malformed_request_is_answered_and_closed(raw: Any, data: bytes, status: int) -> None:
    client = raw()
    client.send(data)
    answer = client.response()
    assert answer.status == status
    assert answer.header("connection") == "close"
    assert answer.header("content-length") == "0"
    assert answer.body == b""
    assert client.closed()


def test_malformed_chunked_body_is_400_and_closed(raw: Any) -> None:
    client = raw()
    client.send(
        b"POST /api/queues/%2F/q/get HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + GUEST.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n"
    )
    answer = client.response()
    assert answer.status == 400 and answer.header("connection") == "close"
    assert client.closed()


def test_oversized_head_in_one_piece_is_431(raw: Any) -> None:
    # h11 checks its limit only on an incomplete head; this one arrives whole.
    client = raw()
    client.send(get("/api/whoami", extra="X-Big: " + "a" * 20_000 + "\r\n"))
    answer = client.response()
    assert (answer.status, answer.header("connection")) == (431, "close")
    assert client.closed()


def test_oversized_head_in_pieces_is_431(raw: Any) -> None:
    client = raw()
    client.send(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(40):
            client.send(b"X-Filler: " + b"a" * 1000 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending
    answer = client.response()
    assert (answer.status, answer.header("connection")) == (431, "close")


def test_long_request_line_is_refused(raw: Any) -> None:
    client = raw()
    client.send(get("/api/" + "a" * 20_000))
    answer = client.response()
    # cowboy answers 414 past 8000 bytes of request line; h11 counts the whole head.
    assert answer.status == 431


def test_leading_empty_lines_are_ignored(raw: Any) -> None:
    # RFC 9112 section 2.2 (cowboy accepts up to 5).
    client = raw()
    client.send(b"\r\n\r\n" + get("/api/whoami"))
    assert client.response().status == 200


def test_absolute_form_target_is_served(raw: Any) -> None:
    client = raw()
    client.send(get("http://localhost/api/queues/%2F/q?x=1"))
    answer = client.response()
    assert answer.status == 200
    assert json.loads(answer.body)["params"] == {"vhost": "/", "name": "q"}


# -- limits on bodies -------------------------------------------------------------


def test_declared_body_over_the_limit_is_413_before_it_is_sent(http_server: Any) -> None:
    server = http_server(HttpLimits(max_body_bytes=1000))
    client = RawClient(server.port)
    try:
        client.send(
            b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + GUEST.encode()
            + b"\r\nExpect: 100-continue\r\nContent-Length: 1001\r\n\r\n"
        )
        answer = client.response()  # no 100 Continue first: the body is not wanted
        assert answer.status == 413
        assert answer.header("connection") == "close"
        assert json.loads(answer.body) == {
            "error": "bad_request",
            "reason": "Exceeded HTTP request body size limit",
        }
        assert client.closed()
    finally:
        client.close()


def test_chunked_body_over_the_limit_is_413(http_server: Any) -> None:
    server = http_server(HttpLimits(max_body_bytes=1000))
    client = RawClient(server.port)
    try:
        client.send(
            b"POST /api/queues/%2F/q/get HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + GUEST.encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            for _ in range(3):
                client.send(b"200\r\n" + b"a" * 0x200 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = client.response()
        assert (answer.status, answer.header("connection")) == (413, "close")
    finally:
        client.close()


def test_body_at_the_limit_is_accepted(http_server: Any) -> None:
    server = http_server(HttpLimits(max_body_bytes=1000))
    body = b'{"pad":"' + b"a" * 990 + b'"}'
    assert len(body) == 1000
    status, _, answer = request(server, "POST", "/api/queues/%2F/q/get", body=body)
    assert status == 200 and json.loads(answer)["received"] == 1000


def test_chunked_body_is_read(raw: Any) -> None:
    client = raw()
    client.send(
        b"POST /api/queues/%2F/q/get HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + GUEST.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n"
    )
    answer = client.response()
    assert answer.status == 200
    assert json.loads(answer.body) == {"received": 7, "json": {"a": 1}}


def test_expect_100_continue_is_answered_before_the_body(raw: Any) -> None:
    client = raw()
    client.send(
        b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + GUEST.encode()
        + b"\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    interim = client.response()
    assert (interim.status, interim.reason) == (100, "Continue")
    client.send(b"{}")
    assert client.response().status == 201


def test_expect_100_continue_without_credentials_gets_401_and_close(raw: Any) -> None:
    client = raw()
    client.send(
        b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\n"
        b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    answer = client.response()
    assert answer.status == 401  # no 100 first: RabbitMQ checks credentials before the body
    assert answer.header("connection") == "close"  # the client may or may not send the body


def test_unknown_expectation_is_417(raw: Any) -> None:
    # RFC 9110 section 10.1.1 (cowboy ignores the header).
    client = raw()
    client.send(
        b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + GUEST.encode()
        + b"\r\nExpect: something\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert client.response().status == 417
    client.send(get("/api/whoami"))  # the 2-byte body was skipped: the connection lives
    assert client.response().status == 200


def test_early_answer_skips_a_small_body_and_keeps_the_connection(raw: Any) -> None:
    client = raw()
    client.send(
        b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        + get("/api/whoami")
    )
    first = client.response()
    assert first.status == 401 and first.header("connection") is None
    assert client.response().status == 200


def test_early_answer_to_a_large_body_closes(http_server: Any) -> None:
    server = http_server(HttpLimits(max_skip_body_bytes=10))
    client = RawClient(server.port)
    try:
        client.send(b"PUT /api/queues/%2F/q HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        answer = client.response()  # 401: no credentials, and the body is still to come
        assert answer.status == 401 and answer.header("connection") == "close"
    finally:
        client.close()


# -- timeouts: idle keep-alive, slowloris --------------------------------------------


def test_idle_keep_alive_connection_is_closed(http_server: Any) -> None:
    server = http_server(SHORT)
    client = RawClient(server.port, timeout=3)
    try:
        client.send(get("/api/whoami"))
        assert client.response().status == 200
        started = time.monotonic()
        assert client.closed()
        assert 0.3 < time.monotonic() - started < 2.5
        assert client.buffer == b""  # closed silently, no 408
    finally:
        client.close()


def test_connection_that_sends_nothing_is_closed_silently(http_server: Any) -> None:
    server = http_server(SHORT)
    client = RawClient(server.port, timeout=3)
    try:
        started = time.monotonic()
        assert client.closed()
        assert time.monotonic() - started < 2.5
        assert client.buffer == b""
    finally:
        client.close()


def test_slowloris_head_gets_408_within_the_request_timeout(http_server: Any) -> None:
    server = http_server(SHORT)
    client = RawClient(server.port, timeout=3)
    try:
        started = time.monotonic()
        answer = None
        for byte in get("/api/whoami"):
            try:
                client.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)  # each byte is well within any per-read timeout
            if time.monotonic() - started > 1.0:
                break
        answer = client.response()
        assert (answer.status, answer.header("connection")) == (408, "close")
        assert time.monotonic() - started < 2.5
    finally:
        client.close()


def test_slowloris_body_gets_408(http_server: Any) -> None:
    server = http_server(SHORT)
    client = RawClient(server.port, timeout=3)
    try:
        client.send(
            b"POST /api/queues/%2F/q/get HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + GUEST.encode()
            + b"\r\nContent-Length: 100\r\n\r\n{"
        )
        answer = client.response()
        assert (answer.status, answer.header("connection")) == (408, "close")
        assert answer.header("content-length") == "0"
        assert client.closed()
    finally:
        client.close()


def test_many_concurrent_keep_alive_clients(server: Any) -> None:
    import concurrent.futures

    def client(index: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            for round_ in range(20):
                path = f"/api/queues/v{index}/q{round_}"
                connection.request("GET", path, headers={"Authorization": GUEST})
                answer = connection.getresponse()
                assert json.loads(answer.read())["params"] == {"vhost": f"v{index}", "name": f"q{round_}"}
            return 20
        finally:
            connection.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        assert sum(pool.map(client, range(32))) == 32 * 20


def test_slow_client_and_slow_handler_do_not_hold_up_others(server: Any, raw: Any) -> None:
    stalled = raw()
    stalled.send(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    slow = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    slow.request("GET", "/api/slow?seconds=2", headers={"Authorization": GUEST})
    try:
        started = time.monotonic()
        for _ in range(5):
            status, _, _ = request(server, "GET", "/api/whoami")
            assert status == 200
        assert time.monotonic() - started < 1.5
        assert slow.getresponse().status == 200
    finally:
        slow.close()


def test_connections_over_the_limit_get_503(http_server: Any) -> None:
    server = http_server(HttpLimits(max_connections=2, linger_timeout=0.2))
    holders = [RawClient(server.port) for _ in range(2)]
    try:
        for holder in holders:
            holder.send(get("/api/whoami"))
            assert holder.response().status == 200
        status, headers, body = request(server, "GET", "/api/whoami")
        assert status == 503
        assert headers["retry-after"] == "1"
        assert json.loads(body) == {"error": "service_unavailable", "reason": "Too many connections"}
        assert server.run_sync(lambda: server.server.refused) == 1
        holders[0].close()
        deadline = time.monotonic() + 3
        while server.run_sync(lambda: server.server.active) > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert request(server, "GET", "/api/whoami")[0] == 200
    finally:
        for holder in holders:
            holder.close()


# -- routing: 404, 405, 501, OPTIONS, HEAD, decoding, query ------------------------


def test_unknown_path_is_404_json_even_without_credentials(server: Any) -> None:
    status, headers, body = request(server, "GET", "/api/nope/x", auth=None)
    assert (status, body) == (404, NOT_FOUND)
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] is None  # RabbitMQ sends none on errors
    # With the dashboard's catch-all route, as on RabbitMQ: PUT /api/nope is a 405.
    status, headers, _ = request(server, "PUT", "/api/nope", body=b"{}", auth=None)
    assert (status, headers["allow"]) == (405, "HEAD, GET, OPTIONS")


def test_unknown_path_without_a_catch_all_is_404() -> None:
    router = Router()
    router.add("/api/whoami", lambda r: Response.json({}), auth=False)

    async def main() -> bytes:
        client, server_side = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_http, server_side, HttpApp(router))
            await client.send_all(b"PUT /api/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                  b"Connection: close\r\n\r\n{}")
            received = b""
            with trio.fail_after(5):
                while chunk := await client.receive_some():
                    received += chunk
        return received

    received = trio.run(main)
    assert received.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert received.endswith(b"\r\n\r\n" + NOT_FOUND)


def test_missing_object_is_404_from_the_handler(server: Any) -> None:
    status, _, body = request(server, "GET", "/api/queues/%2F/nope")
    assert (status, body) == (404, NOT_FOUND)


def test_method_not_served_is_405_with_allow(server: Any) -> None:
    status, headers, body = request(server, "DELETE", "/api/whoami", auth=None)
    assert (status, headers["allow"], body) == (405, "HEAD, GET, OPTIONS", b"")
    status, headers, _ = request(server, "POST", "/api/queues/%2F/q")
    assert (status, headers["allow"]) == (405, "HEAD, GET, PUT, DELETE, OPTIONS")
    status, headers, _ = request(server, "GET", "/api/queues/%2F/q/get")
    assert (status, headers["allow"]) == (405, "POST, OPTIONS")


def test_unknown_method_is_501(raw: Any) -> None:
    client = raw()
    client.send(b"FOO /api/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: " + GUEST.encode() + b"\r\n\r\n")
    answer = client.response()
    assert (answer.status, answer.body) == (501, b"")
    client.send(get("/api/whoami"))  # the connection carries on, as with cowboy
    assert client.response().status == 200


def test_options_is_answered_without_credentials(server: Any) -> None:
    status, headers, body = request(server, "OPTIONS", "/api/queues/%2F/q", auth=None)
    assert (status, headers["allow"], body) == (200, "HEAD, GET, PUT, DELETE, OPTIONS", b"")


def test_head_is_get_without_the_body(server: Any) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("GET", "/api/overview", headers={"Authorization": GUEST})
        got = connection.getresponse()
        body = got.read()
        connection.request("HEAD", "/api/overview", headers={"Authorization": GUEST})
        head = connection.getresponse()
        assert head.status == 200
        assert head.read() == b""
        assert head.getheader("content-length") == str(len(body))
        assert head.getheader("content-type") == "application/json"
        connection.request("HEAD", "/api/queues/%2F/nope", headers={"Authorization": GUEST})
        missing = connection.getresponse()
        assert missing.status == 404 and missing.read() == b""
        assert missing.getheader("content-length") == str(len(NOT_FOUND))
        connection.request("GET", "/api/whoami", headers={"Authorization": GUEST})
        assert connection.getresponse().status == 200  # still in step after the HEADs
    finally:
        connection.close()


def test_segments_are_percent_decoded_one_by_one(server: Any) -> None:
    status, _, body = request(server, "GET", "/api/queues/%2F/a%2Fb%20c+d%C3%A9")
    assert status == 200
    answer = json.loads(body)
    assert answer["params"] == {"vhost": "/", "name": "a/b c+dé"}
    assert answer["segments"] == ["api", "queues", "/", "a/b c+dé"]
    assert answer["path"] == "/api/queues/%2F/a%2Fb%20c+d%C3%A9"


def test_query_is_parsed(server: Any) -> None:
    query = "?columns=a,b&sort=name&page=2&page_size=100&name=x+y%21&use_regex=true&name=second"
    status, _, body = request(server, "GET", "/api/queues/%2F" + query)
    assert status == 200
    answer = json.loads(body)
    assert answer["query"] == {
        "columns": "a,b",
        "sort": "name",
        "page": "2",
        "page_size": "100",
        "name": "x y!",  # the first of two, as RabbitMQ reads it
        "use_regex": "true",
    }
    assert answer["query_items"][-1] == ["name", "second"]


def test_trailing_slash_and_empty_segments(server: Any) -> None:
    status, _, body = request(server, "GET", "/api/queues/")
    assert status == 200 and json.loads(body)["segments"] == ["api", "queues"]
    assert request(server, "GET", "/api/queues//q")[0] == 404


def test_literal_segment_beats_placeholder(server: Any) -> None:
    status, _, body = request(server, "GET", "/api/users/without-permissions")
    assert json.loads(body) == {"route": "without-permissions"}
    status, _, body = request(server, "GET", "/api/users/someone")
    assert json.loads(body) == {"route": "user", "name": "someone"}


def test_accept_that_refuses_json_is_406(server: Any) -> None:
    assert request(server, "GET", "/api/whoami", headers={"Accept": "text/html"})[:3:2] == (406, b"")
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert request(server, "GET", "/api/whoami", headers={"Accept": browser})[0] == 200
    assert request(server, "GET", "/api/whoami", headers={"Accept": "application/*"})[0] == 200


# -- authentication --------------------------------------------------------------


def test_no_credentials_is_401_with_an_empty_body(server: Any) -> None:
    status, headers, body = request(server, "GET", "/api/whoami", auth=None)
    assert (status, body) == (401, b"")
    assert headers["www-authenticate"] == REALM_HEADER
    assert headers["content-type"] is None


@pytest.mark.parametrize(
    "auth",
    [
        "Basic " + base64.b64encode(b"guest:wrong").decode(),
        "Basic " + base64.b64encode(b"nobody:guest").decode(),
        "Basic " + base64.b64encode(b"guest:").decode(),
        "Bearer some.jwt.token",
    ],
)
def test_bad_credentials_are_401_login_failed(server: Any, auth: str) -> None:
    status, headers, body = request(server, "GET", "/api/whoami", auth=auth)
    assert (status, body) == (401, LOGIN_FAILED)
    assert headers["www-authenticate"] == REALM_HEADER
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize("auth", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Basic"])
def test_malformed_basic_credentials_are_400(server: Any, auth: str) -> None:
    status, _, body = request(server, "GET", "/api/whoami", auth=auth)
    assert (status, body) == (400, b"")


def test_scheme_is_case_insensitive_and_password_may_hold_colons(server: Any) -> None:
    lower = "basic " + base64.b64encode(b"guest:guest").decode()
    assert request(server, "GET", "/api/whoami", auth=lower)[0] == 200
    utf8 = "Basic " + base64.b64encode("üser:pä:ss".encode()).decode()
    status, _, body = request(server, "GET", "/api/whoami", auth=utf8)
    assert (status, json.loads(body)["name"]) == (200, "üser")


def test_authenticate_may_refuse_a_known_user(server: Any) -> None:
    notag = "Basic " + base64.b64encode(b"notag:pw").decode()
    status, headers, body = request(server, "GET", "/api/whoami", auth=notag)
    assert (status, body) == (401, b'{"error":"not_authorised","reason":"Not management user"}')
    assert headers["www-authenticate"] is None  # RabbitMQ sends none for not_authorised


def test_handler_refusal_is_rabbitmqs_not_authorised(server: Any) -> None:
    status, _, body = request(server, "GET", "/api/users/guest", auth=MGMT)
    assert (status, body) == (401, b'{"error":"not_authorised","reason":"Not administrator user"}')
    assert request(server, "GET", "/api/users/guest")[0] == 200


def test_route_without_auth_needs_no_credentials(server: Any) -> None:
    status, _, body = request(server, "GET", "/api/auth", auth=None)
    assert status == 200 and json.loads(body)["enable_uaa"] is False


def test_parse_basic_auth() -> None:
    assert parse_basic_auth(None) is None
    assert parse_basic_auth("Bearer x") is None
    assert parse_basic_auth("Basic Z3Vlc3Q6Z3Vlc3Q=") == ("guest", "guest")
    assert parse_basic_auth("  BASIC   Z3Vlc3Q6  ") == ("guest", "")


# -- handlers: errors, bodies, crashes ----------------------------------------------


def test_bad_json_is_400_not_json(server: Any) -> None:
    for body in (b"{bad", b"[1]", b"\xff"):
        status, headers, answer = request(server, "PUT", "/api/queues/%2F/q", body=body)
        assert (status, answer) == (400, b'{"error":"bad_request","reason":"not_json"}')
        assert headers["content-type"] == "application/json"


def test_empty_body_is_an_empty_object(server: Any) -> None:
    assert request(server, "PUT", "/api/queues/%2F/q", body=b"")[0] == 201


def test_handler_http_error_is_rabbitmqs_shape(server: Any) -> None:
    status, _, body = request(server, "PUT", "/api/queues/%2F/q", body=b'{"durable":"maybe"}')
    assert (status, body) == (400, b'{"error":"bad_request","reason":"inequivalent arg \'durable\'"}')


def test_created_and_no_content_answers(server: Any) -> None:
    status, headers, body = request(server, "PUT", "/api/queues/%2F/q", body=b"{}")
    assert (status, headers["content-length"], body) == (201, "0", b"")
    status, headers, body = request(server, "DELETE", "/api/queues/%2F/q")
    assert (status, headers["content-length"], body) == (204, None, b"")


def test_handler_crash_is_500_and_the_connection_lives_on(raw: Any) -> None:
    client = raw()
    client.send(get("/api/crash") + get("/api/not-a-response") + get("/api/whoami"))
    crashed, wrong, fine = client.response(), client.response(), client.response()
    assert (crashed.status, crashed.body) == (500, b"")
    assert (wrong.status, wrong.body) == (500, b"")
    assert fine.status == 200


def test_json_is_gzipped_when_accepted(server: Any) -> None:
    status, headers, body = request(
        server, "GET", "/api/overview", headers={"Accept-Encoding": "gzip, deflate"}
    )
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["management_version"] == "3.10.8"
    plain = request(server, "GET", "/api/overview")
    assert plain[1]["content-encoding"] is None and json.loads(plain[2])
    small = request(server, "GET", "/api/whoami", headers={"Accept-Encoding": "gzip"})
    assert small[1]["content-encoding"] is None  # under 300 bytes, as cowboy
    refused = request(server, "GET", "/api/overview", headers={"Accept-Encoding": "gzip;q=0"})
    assert refused[1]["content-encoding"] is None


def test_large_body_is_gzipped_off_the_loop(server: Any) -> None:
    status, headers, body = request(
        server, "GET", "/api/big?size=2000000", headers={"Accept-Encoding": "gzip"}
    )
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(body))["data"]) == 2_000_000


def test_text_endpoint_with_its_own_media_type(server: Any) -> None:
    status, headers, body = request(server, "GET", "/metrics", auth=None)
    assert status == 200 and headers["content-type"] == "text/plain; version=0.0.4"
    assert body.startswith(b"# TYPE rabbitmq_queues gauge\n")
    assert request(server, "GET", "/metrics", auth=None, headers={"Accept": "application/json"})[0] == 406


# -- static files ---------------------------------------------------------------------


def test_static_file_has_type_etag_and_last_modified(server: Any) -> None:
    status, headers, body = request(server, "GET", "/js/main.js", auth=None)
    assert (status, body) == (200, b"console.log('warren');\n")
    assert headers["content-type"] == "application/javascript"
    assert headers["etag"].startswith('"') and headers["last-modified"].endswith("GMT")
    assert headers["cache-control"] is None
    status, again, body = request(
        server, "GET", "/js/main.js", auth=None, headers={"If-None-Match": headers["etag"]}
    )
    assert (status, body, again["etag"]) == (304, b"", headers["etag"])
    status, _, _ = request(
        server, "GET", "/js/main.js", auth=None, headers={"If-Modified-Since": headers["last-modified"]}
    )
    assert status == 304


def test_static_index_directory_and_types(server: Any) -> None:
    status, headers, body = request(server, "GET", "/", auth=None)
    assert (status, headers["content-type"]) == (200, "text/html")
    assert body.startswith(b"<!doctype html>")
    assert request(server, "GET", "/favicon.ico", auth=None)[1]["content-type"] == "image/x-icon"
    assert request(server, "GET", "/js", auth=None)[:3:2] == (403, b"")  # a directory, as RabbitMQ


@pytest.mark.parametrize(
    "path", ["/../outside.txt", "/js/..%2F..%2Foutside.txt", "/%2E%2E/outside.txt", "/.hidden", "/js/nope.js"]
)
def test_static_files_stay_inside_the_root(raw: Any, path: str) -> None:
    client = raw()
    client.send(get(path, auth=None))
    answer = client.response()
    assert (answer.status, answer.body) == (404, NOT_FOUND)


# -- any trio Stream: TLS, in-memory -----------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=20,
    )
    return cert, key


def test_https_is_a_stream_wrapper(http_server: Any, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    class TlsServerThread(ServerThread):
        def wrap(self, listeners: list[Any]) -> list[Any]:
            return [trio.SSLListener(x, server_context, https_compatible=True) for x in listeners]

    server = http_server(cls=TlsServerThread)
    client_context = ssl.create_default_context(cafile=str(cert))
    connection = http.client.HTTPSConnection(
        "localhost", server.port, context=client_context, timeout=5
    )
    try:
        for _ in range(2):  # keep-alive over TLS
            connection.request("GET", "/api/whoami", headers={"Authorization": GUEST})
            answer = connection.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["name"] == "guest"
        connection.request("GET", "/api/whoami")
        answer = connection.getresponse()
        assert answer.status == 401 and answer.read() == b""
    finally:
        connection.close()


@pytest.mark.trio
async def test_serve_http_on_an_in_memory_stream() -> None:
    router = Router()
    router.add("/hello/{name}", lambda r: Response.json({"hello": r.params["name"]}), auth=False)
    client, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_http, server_side, HttpApp(router), HttpLimits(), )
        await client.send_all(
            b"GET /hello/w%C3%B6rld HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        received = b""
        with trio.fail_after(5):
            while chunk := await client.receive_some():
                received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b'\r\n\r\n{"hello":"w\xc3\xb6rld"}')


# -- the router's pieces ---------------------------------------------------------------


def test_router_refuses_ambiguous_or_malformed_patterns() -> None:
    router = Router()
    router.add("/api/queues/{vhost}", lambda r: Response())
    with pytest.raises(ValueError, match="same shape"):
        router.add("/api/queues/{other}", lambda r: Response())
    with pytest.raises(ValueError, match="already routed"):
        router.add("/api/queues/{vhost}", lambda r: Response())
    with pytest.raises(ValueError, match="last segment"):
        router.add("/static/{rest*}/x", lambda r: Response())
    with pytest.raises(ValueError, match="HEAD and OPTIONS"):
        router.add("/x", lambda r: Response(), methods=["HEAD"])
    with pytest.raises(ValueError, match="start with"):
        router.add("x", lambda r: Response())


def test_target_and_segment_decoding() -> None:
    assert split_target("/a/b?x=1#frag") == ("/a/b", "x=1")
    assert split_target("http://host:15672/api?x") == ("/api", "x")
    assert split_target("http://host?x") == ("/", "?x".lstrip("?"))
    assert decode_segments("/") == ()
    assert decode_segments("/api/queues/%2F/a%2fb/") == ("api", "queues", "/", "a/b")


def test_accept_negotiation() -> None:
    assert accepts(None, "application/json")
    assert accepts("*/*", "application/json")
    assert not accepts("text/html", "application/json")
    assert not accepts("application/json;q=0, */*", "application/json")
    assert accepts("application/json;q=bogus", "application/json")


def test_the_http_layer_imports_nothing_else_from_the_broker() -> None:
    """trio, h11, the standard library, broker.logging and its own modules only."""
    package = Path(__file__).resolve().parents[2] / "broker" / "management"
    allowed = set(sys.stdlib_module_names) | {"trio", "h11"}
    layer = {"messages", "router", "static", "http"}
    offenders = []
    for path in [package / f"{name}.py" for name in sorted(layer | {"__init__"})]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom):
                names = ["." * node.level + (node.module or "")]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in allowed or name == "broker.logging":
                    continue
                if name.startswith("broker.management.") and name.split(".")[2] in layer:
                    continue
                offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []
