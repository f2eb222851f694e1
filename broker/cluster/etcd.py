"""A small etcd v3 client on trio and h11, through etcd's JSON gateway.

    client = EtcdClient(["http://10.0.0.1:2379", "http://10.0.0.2:2379"], timeout=2.0)
    revision = await client.put(b"/warren/x", b"1")
    kv = await client.get(b"/warren/x")              # KeyValue | None
    async with contextlib.aclosing(client.watch(b"/warren/", prefix=True,
                                                start_revision=revision + 1)) as batches:
        async for events in batches: ...             # list[WatchEvent]
    await client.aclose()

Why the gateway, not gRPC
-------------------------

etcd serves its v3 API twice on the client port: as gRPC, and as JSON over
plain HTTP/1.1 through the grpc-gateway it embeds ("etcd v3 API with JSON",
etcd.io/docs/v3.4/dev-guide/api_grpc_gateway/). gRPC needs HTTP/2 and
protobuf, neither of which Warren has; the gateway needs only h11, which the
management API already uses. The gateway's conventions, as etcd 3.4 speaks them:

- every call is ``POST /v3/<service>/<method>`` with a JSON body
  (``/v3/kv/range``, ``/v3/kv/put``, ``/v3/kv/txn``, ``/v3/lease/grant``...).
  3.4 also serves the same API under ``/v3beta/``; ``/v3alpha/`` is gone (404).
  ``/v3/`` is the stable one, used here;
- ``bytes`` fields (keys, values) are base64 in JSON;
- int64 fields (revisions, lease ids, TTLs) come back as JSON *strings*
  (proto3 JSON mapping); they are sent as strings too;
- fields at their zero value are omitted: an empty range has no ``kvs``, a
  failed txn no ``succeeded``, a PUT watch event no ``type``, an expired
  lease's keepalive answer no ``TTL``;
- an error is ``{"error": ..., "message": ..., "code": <gRPC code>}``; on a
  streaming method (watch, lease keepalive) it is
  ``{"error": {"grpc_code": ..., "message": ...}}`` inside the stream, whose
  good messages are each ``{"result": {...}}``, one JSON object per line.

Failover and deadlines
----------------------

A request goes to the endpoint that last answered, and on a connection error,
a timeout, or an etcd "unavailable" answer, to the next one (round robin);
`EtcdUnavailable` is raised when every endpoint failed for that request. Each
attempt is bounded by `timeout` (connect, TLS handshake, request, answer), so
a hung member costs one `timeout`, never a hang; a request is bounded by
``timeout * len(endpoints)`` in all.

Every request carries gRPC metadata ``hasleader: true`` (the gateway maps the
``Grpc-Metadata-Hasleader`` header to it): etcd then refuses at once with
"etcdserver: no leader" (UNAVAILABLE) on a member that is cut off from its
cluster's quorum, where a plain linearizable read would wait ~7 s for etcd's
own request timeout. That answer moves the request to the next endpoint.

A retried write may have been applied by the endpoint that timed out: etcd
cannot say. `put` then writes twice (harmless); `create_if_absent` recognises
its own earlier success by the holder's lease (see there);
`delete_if_created_at` answers False although the key was deleted by the first
attempt (the caller's outcome, "not holding it", is the same).

Connections
-----------

Unary calls reuse a persistent HTTP/1.1 connection (keep-alive) per
endpoint; a second one is opened only while two requests overlap, and idle
ones are kept (`MAX_IDLE` per endpoint). A connection whose request failed
or was cancelled half-way is closed, never reused. A watch gets a connection of
its own, closed when the watch ends.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import h11
import trio

from broker.logging import get_logger

__all__ = [
    "EtcdClient",
    "EtcdError",
    "EtcdTLS",
    "EtcdUnavailable",
    "KeyValue",
    "LeaseExpired",
    "WatchCanceled",
    "WatchEvent",
    "prefix_range_end",
]

log = get_logger("warren.cluster")

#: gRPC status codes etcd answers with (grpc/codes): UNAVAILABLE is "no
#: leader", "leader changed", "request timed out" in 3.4; DEADLINE_EXCEEDED
#: is a request that outlived its deadline. Both say "this member cannot
#: serve you now": try another one.
NOT_FOUND = 5
DEADLINE_EXCEEDED = 4
UNAVAILABLE = 14
_RETRY_ELSEWHERE = {UNAVAILABLE, DEADLINE_EXCEEDED}

#: Idle keep-alive connections kept per endpoint.
MAX_IDLE = 2
_READ_SIZE = 65536


class EtcdError(Exception):
    """etcd answered with an error: `code` is its gRPC status code (None when
    the answer was not an etcd error at all, e.g. a 404 page), `message` its text."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message if code is None else f"{message} (gRPC code {code})")
        self.message = message
        self.code = code


class EtcdUnavailable(EtcdError):
    """No endpoint answered the request within the timeout (or a watch stream
    broke): etcd may be down, partitioned from us, or without a quorum."""


class LeaseExpired(EtcdError):
    """The lease is gone: expired (its TTL passed without a keepalive) or revoked."""


class WatchCanceled(EtcdUnavailable):
    """etcd cancelled the watch: typically `start_revision` has been compacted
    away (`compact_revision` is then the oldest revision still available).

    A subclass of `EtcdUnavailable` on purpose: the remedy is the same as for
    a broken stream, re-read the current state and watch again from the
    revision of that read."""

    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


@dataclass(frozen=True)
class EtcdTLS:
    """TLS towards etcd (``https://`` endpoints).

    `ca_file` verifies the server (None: the system's CAs); `cert_file` and
    `key_file` present a client certificate, for etcd run with
    ``--client-cert-auth``; `verify=False` skips the server check (tests only).
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class KeyValue:
    """One key as etcd stores it (mvccpb.KeyValue).

    `create_revision` is the cluster revision of the write that created this
    incarnation of the key (deleting and re-creating gives a new, larger one);
    `mod_revision` that of its last write; `version` the number of writes
    since creation; `lease` the id of the lease it is attached to (0: none).
    """

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True)
class WatchEvent:
    """A change to a watched key. For a DELETE, `kv` has only `key` and
    `mod_revision` (the revision of the deletion)."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue


def prefix_range_end(prefix: bytes) -> bytes:
    """The `range_end` that makes a range cover every key starting with
    `prefix` (clientv3.GetPrefixRangeEnd): the prefix with its last byte
    below 0xff incremented; b"\\0" (every key) when there is none."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    return base64.b64decode(text) if text else b""


def _int(value: Any) -> int:
    """An int64 field: a JSON string, a number, or absent (zero)."""
    return int(value) if value not in (None, "") else 0


def _key_value(fields: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=_unb64(fields.get("key")),
        value=_unb64(fields.get("value")),
        create_revision=_int(fields.get("create_revision")),
        mod_revision=_int(fields.get("mod_revision")),
        version=_int(fields.get("version")),
        lease=_int(fields.get("lease")),
    )


def _revision(reply: dict[str, Any]) -> int:
    return _int(reply.get("header", {}).get("revision"))


def _error_of(reply: Any) -> EtcdError | None:
    """The error in a gateway answer, in its unary or its streaming shape."""
    if not isinstance(reply, dict) or "error" not in reply:
        return None
    error = reply["error"]
    if isinstance(error, dict):  # {"error": {"grpc_code": 14, "message": ...}} in a stream
        return EtcdError(str(error.get("message", "")), error.get("grpc_code"))
    if not error and "code" not in reply:  # LeaseGrantResponse's own empty `error` field
        return None
    return EtcdError(str(reply.get("message") or error), reply.get("code"))


class _EndpointFailed(Exception):
    """This endpoint could not serve the request; the next one may."""


_TRANSPORT_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError)


@dataclass(frozen=True)
class _Endpoint:
    url: str
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> _Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an etcd endpoint is http://host:port or https://host:port, not {url!r}")
        return cls(url, parts.hostname, parts.port or 2379, parts.scheme == "https")

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class _Connection:
    """One HTTP/1.1 connection to one endpoint: h11 over a trio stream."""

    def __init__(self, stream: trio.abc.Stream, endpoint: _Endpoint) -> None:
        self.stream = stream
        self.endpoint = endpoint
        self.http = h11.Connection(h11.CLIENT)
        self.used = False

    async def send_request(self, path: str, body: bytes) -> None:
        self.used = True
        request = h11.Request(method="POST", target=path, headers=[
            ("Host", self.endpoint.authority),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            # etcd's "require leader" metadata: see the module docstring.
            ("Grpc-Metadata-Hasleader", "true"),
        ])
        data = self.http.send(request) or b""
        data += self.http.send(h11.Data(data=body)) or b""
        data += self.http.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)

    async def next_event(self) -> h11.Event:
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                self.http.receive_data(bytes(await self.stream.receive_some(_READ_SIZE)))
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise _EndpointFailed("the connection was closed by the server")
            assert not isinstance(event, type)  # PAUSED: we never pipeline
            return event

    async def receive_response(self) -> h11.Response:
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Response):
                return event

    async def receive_chunk(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage):
                return None

    async def receive_body(self) -> bytes:
        chunks = []
        while (chunk := await self.receive_chunk()) is not None:
            chunks.append(chunk)
        return b"".join(chunks)

    def ready_for_next(self) -> bool:
        """Reset for another request if both sides are done and keep-alive holds."""
        if self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
            self.http.start_next_cycle()
            return True
        return False

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


class _JsonLines:
    """The body of a streaming answer, one JSON object per line."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.buffer = b""

    async def next(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            try:
                chunk = await self.connection.receive_chunk()
            except (_EndpointFailed, *_TRANSPORT_ERRORS) as exc:
                raise EtcdUnavailable(
                    f"the stream from {self.connection.endpoint.url} broke: {exc or type(exc).__name__}"
                ) from exc
            if chunk is None:
                if self.buffer.strip():
                    break
                raise EtcdUnavailable(f"{self.connection.endpoint.url} ended the stream")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        if not line.strip():
            return await self.next()
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise EtcdError(f"not JSON in a stream from {self.connection.endpoint.url}: {line[:200]!r}") from exc
        if not isinstance(message, dict):
            raise EtcdError(f"not a JSON object in a stream: {line[:200]!r}")
        return message


class EtcdClient:
    """An etcd v3 client for a cluster given by its members' client URLs.

    `endpoints` are ``http://host:port`` or ``https://host:port`` (TLS then
    per `tls`, default: verify against the system's CAs). `timeout` bounds
    each attempt at one endpoint (see the module docstring). Use one client per
    process and `aclose` it at the end (or ``async with``).
    """

    def __init__(
        self, endpoints: Sequence[str], *, tls: EtcdTLS | None = None, timeout: float = 2.0
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise ValueError("an etcd client needs at least one endpoint")
        self._endpoints = [_Endpoint.parse(url) for url in endpoints]
        self._ssl: ssl.SSLContext | None = None
        if any(endpoint.tls for endpoint in self._endpoints):
            self._ssl = (tls or EtcdTLS()).context()
        self.timeout = timeout
        self._current = 0
        self._idle: list[list[_Connection]] = [[] for _ in self._endpoints]
        self._open: set[_Connection] = set()
        self._closed = False

    @property
    def endpoints(self) -> list[str]:
        return [endpoint.url for endpoint in self._endpoints]

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection, watches' included (they then end with EtcdUnavailable)."""
        self._closed = True
        connections, self._open = self._open, set()
        self._idle = [[] for _ in self._endpoints]
        for connection in connections:
            await connection.aclose()

    # -- key-value ---------------------------------------------------------------

    async def get(self, key: bytes) -> KeyValue | None:
        """The key, or None: a linearizable read (etcd's default)."""
        kv, _revision = await self.get_with_revision(key)
        return kv

    async def get_with_revision(self, key: bytes) -> tuple[KeyValue | None, int]:
        """The key (or None) and the cluster revision of the read: a watch
        from that revision + 1 misses nothing that happened after the read."""
        reply = await self._call("/v3/kv/range", {"key": _b64(key)})
        kvs = reply.get("kvs") or []
        return (_key_value(kvs[0]) if kvs else None), _revision(reply)

    async def get_prefix(self, prefix: bytes) -> tuple[list[KeyValue], int]:
        """Every key starting with `prefix`, sorted by key, and the revision of the read."""
        reply = await self._call(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_range_end(prefix))}
        )
        kvs = sorted((_key_value(fields) for fields in reply.get("kvs") or []), key=lambda kv: kv.key)
        return kvs, _revision(reply)

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Write the key (attached to `lease` if not 0); the revision of the write."""
        request: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            request["lease"] = str(lease)
        return _revision(await self._call("/v3/kv/put", request))

    async def delete(self, key: bytes) -> int:
        """Delete the key; how many keys were deleted (0 or 1)."""
        reply = await self._call("/v3/kv/deleterange", {"key": _b64(key)})
        return _int(reply.get("deleted"))

    # -- transactions ------------------------------------------------------------

    async def _txn(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
        failure: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"compare": compare, "success": success}
        if failure:
            request["failure"] = failure
        return await self._call("/v3/kv/txn", request)

    @staticmethod
    def _created_at(key: bytes, create_revision: int) -> dict[str, Any]:
        """Compare: the key's current incarnation was created at `create_revision`
        (0: the key does not exist)."""
        return {"key": _b64(key), "target": "CREATE", "result": "EQUAL",
                "create_revision": str(create_revision)}

    @staticmethod
    def _put_op(key: bytes, value: bytes, lease: int) -> dict[str, Any]:
        put: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = str(lease)
        return {"request_put": put}

    async def create_if_absent(
        self, key: bytes, value: bytes, *, lease: int
    ) -> tuple[bool, KeyValue | None]:
        """Create the key if it does not exist, in one transaction:
        ``if create_revision(key) == 0 then put(key, value, lease) else range(key)``.

        (True, the new key) if we created it, its `create_revision` being the
        transaction's revision; else (False, the key as it is). A key found
        attached to our own `lease` counts as ours: that is a retry (after a
        timeout, on another endpoint) of a transaction that had in fact succeeded.
        """
        reply = await self._txn(
            [self._created_at(key, 0)],
            [self._put_op(key, value, lease)],
            [{"request_range": {"key": _b64(key)}}],
        )
        revision = _revision(reply)
        if reply.get("succeeded"):
            return True, KeyValue(key, value, revision, revision, 1, lease)
        responses = reply.get("responses") or [{}]
        kvs = responses[0].get("response_range", {}).get("kvs") or []
        holder = _key_value(kvs[0]) if kvs else None
        if holder is not None and lease and holder.lease == lease:
            return True, holder
        return False, holder

    async def put_if_created_at(
        self, key: bytes, value: bytes, create_revision: int, *, lease: int
    ) -> bool:
        """Write the key only if its current incarnation is the one created at
        `create_revision`. `lease` is given again because a put without one
        would detach the key from its lease."""
        reply = await self._txn(
            [self._created_at(key, create_revision)], [self._put_op(key, value, lease)]
        )
        return bool(reply.get("succeeded"))

    async def put_guarded(self, key: bytes, value: bytes, *, guard: bytes, create_revision: int) -> bool:
        """Write `key` (without a lease: it outlives its writer) only if `guard`'s
        current incarnation was created at `create_revision`: a leader's write
        that fails once it is no longer the leader (its leader key is gone)."""
        reply = await self._txn(
            [self._created_at(guard, create_revision)], [self._put_op(key, value, 0)]
        )
        return bool(reply.get("succeeded"))

    async def delete_if_created_at(self, key: bytes, create_revision: int) -> bool:
        """Delete the key only if its current incarnation is the one created at `create_revision`."""
        reply = await self._txn(
            [self._created_at(key, create_revision)],
            [{"request_delete_range": {"key": _b64(key)}}],
        )
        return bool(reply.get("succeeded"))

    # -- leases ------------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id.

        etcd raises a TTL below its minimum to that minimum (1.5 election
        timeouts, rounded up to whole seconds: 2 s with the default 1 s
        election timeout), so the lease may live longer than asked, never shorter.
        """
        reply = await self._call("/v3/lease/grant", {"TTL": str(ttl)})
        return _int(reply.get("ID"))

    async def keepalive_once(self, lease_id: int) -> int:
        """Renew the lease for its full TTL; the TTL granted, in seconds.

        Raises LeaseExpired when the lease is gone: etcd then answers without a
        TTL (zero) or with -1. (LeaseKeepAlive is a gRPC stream; through the
        gateway one request body is one renewal and one answer line.)
        """
        reply = await self._call("/v3/lease/keepalive", {"ID": str(lease_id)})
        ttl = _int(reply.get("result", {}).get("TTL"))
        if ttl <= 0:
            raise LeaseExpired(f"lease {lease_id:x} has expired or was revoked")
        return ttl

    async def revoke_lease(self, lease_id: int) -> None:
        """Revoke the lease, deleting its keys; no error if it is already gone."""
        try:
            await self._call("/v3/lease/revoke", {"ID": str(lease_id)})
        except EtcdError as exc:
            if exc.code != NOT_FOUND:  # "etcdserver: requested lease not found"
                raise

    # -- watch -------------------------------------------------------------------

    async def watch(
        self, key: bytes, *, start_revision: int = 0, prefix: bool = False
    ) -> AsyncGenerator[list[WatchEvent], None]:
        """The changes to `key` (every key under it with `prefix`), a batch per
        etcd watch response, from `start_revision` (0: from now on).

        Like any async generator it does nothing until iterated: the watch is
        created at the first iteration, so a caller that must not miss a change
        passes `start_revision` (the revision of its last read + 1) rather than
        relying on "from now on". It runs on a connection of its own, to the
        first endpoint that accepts it.

        It never ends by itself: when its stream breaks (the member died, the
        connection dropped, the client was closed) it raises EtcdUnavailable, and when etcd cancels it (the start revision was
        compacted) WatchCanceled, a subclass. Either way the caller re-reads
        the state (`get_with_revision` / `get_prefix`, which give the read's
        revision) and watches again from that revision + 1: nothing is lost.

        A member that is alive but cut off from its cluster's quorum keeps an
        established watch open and silent (etcd 3.4's gateway does not cancel
        it); a caller that must notice changes anyway re-reads now and then
        (`Election.observe` does).

        Use it under ``contextlib.aclosing`` (or run it to its end) so that the
        connection is closed when the caller stops early.
        """
        create: dict[str, Any] = {"key": _b64(key)}
        if prefix:
            create["range_end"] = _b64(prefix_range_end(key))
        if start_revision:
            create["start_revision"] = str(start_revision)
        body = json.dumps({"create_request": create}).encode()
        connection, lines = await self._open_watch(body)
        try:
            while True:
                message = await lines.next()
                events = self._watch_events(message, connection.endpoint)
                if events:
                    yield events
        finally:
            self._open.discard(connection)
            await connection.aclose()

    @staticmethod
    def _watch_events(message: dict[str, Any], endpoint: _Endpoint) -> list[WatchEvent]:
        error = _error_of(message)
        if error is not None:
            if error.code in _RETRY_ELSEWHERE:
                raise EtcdUnavailable(f"{endpoint.url} ended the watch: {error.message}", error.code)
            raise error
        result = message.get("result", {})
        if result.get("canceled"):
            compact = _int(result.get("compact_revision"))
            reason = result.get("cancel_reason") or (
                f"revision {compact} and older were compacted" if compact else "canceled by etcd"
            )
            raise WatchCanceled(f"etcd canceled the watch: {reason}", compact)
        return [
            WatchEvent("DELETE" if event.get("type") == "DELETE" else "PUT", _key_value(event.get("kv", {})))
            for event in result.get("events") or []
        ]

    async def _open_watch(self, body: bytes) -> tuple[_Connection, _JsonLines]:
        """A watch stream created on the first endpoint that accepts it."""
        failures: list[str] = []
        for index in self._rotation():
            endpoint = self._endpoints[index]
            connection: _Connection | None = None
            try:
                with trio.fail_after(self.timeout):
                    connection = await self._connect(endpoint)
                    await connection.send_request("/v3/watch", body)
                    response = await connection.receive_response()
                    if response.status_code != 200:
                        raise self._http_error(response.status_code, await connection.receive_body())
                    lines = _JsonLines(connection)
                    first = await lines.next()
                    self._watch_events(first, endpoint)  # raises on an error or a cancel
                    if not first.get("result", {}).get("created"):
                        raise EtcdError(f"the watch was not created: {first}")
                self._current = index
                return connection, lines
            except BaseException as exc:
                if connection is not None:
                    self._open.discard(connection)
                    await connection.aclose()
                reason = self._failure(exc)
                if reason is None:
                    raise
                self._failed(index, endpoint, reason, failures)
        raise EtcdUnavailable("no etcd endpoint accepted the watch: " + "; ".join(failures))

    # -- the request path --------------------------------------------------------

    def _rotation(self) -> list[int]:
        if self._closed:
            raise EtcdError("the etcd client is closed")
        count = len(self._endpoints)
        return [(self._current + step) % count for step in range(count)]

    def _failure(self, exc: BaseException) -> str | None:
        """Why this endpoint failed, if `exc` means "try the next one"; None otherwise."""
        if isinstance(exc, trio.TooSlowError):
            return f"no answer within {self.timeout}s"
        if isinstance(exc, WatchCanceled):  # another member has the same history
            return None
        if isinstance(exc, EtcdUnavailable):
            return exc.message
        if isinstance(exc, EtcdError):
            return exc.message if exc.code in _RETRY_ELSEWHERE else None
        if isinstance(exc, (_EndpointFailed, *_TRANSPORT_ERRORS)):
            detail = str(exc) or type(exc).__name__
            if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ is not None:
                # trio wraps TLS errors (a certificate that does not verify)
                # this way, the ssl error as the cause.
                detail = f"{detail}: {exc.__cause__}"
            return detail
        return None

    def _failed(self, index: int, endpoint: _Endpoint, reason: str, failures: list[str]) -> None:
        failures.append(f"{endpoint.url}: {reason}")
        log.warning("etcd.endpoint_failed", endpoint=endpoint.url, reason=reason)
        if self._current == index:
            self._current = (index + 1) % len(self._endpoints)

    async def _call(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        """POST `request` to `path` on the first endpoint that answers; the answer."""
        body = json.dumps(request).encode()
        failures: list[str] = []
        for index in self._rotation():
            endpoint = self._endpoints[index]
            try:
                with trio.fail_after(self.timeout):
                    status, data = await self._round_trip(index, path, body)
                reply = self._decode(status, data)
            except Exception as exc:
                reason = self._failure(exc)
                if reason is None:
                    raise
                self._failed(index, endpoint, reason, failures)
                continue
            self._current = index
            return reply
        raise EtcdUnavailable(f"no etcd endpoint answered {path}: " + "; ".join(failures))

    def _decode(self, status: int, data: bytes) -> dict[str, Any]:
        try:
            reply = json.loads(data)
        except ValueError:
            raise self._http_error(status, data) from None
        error = _error_of(reply)
        if error is not None:
            raise error
        if status != 200 or not isinstance(reply, dict):
            raise self._http_error(status, data)
        return reply

    @staticmethod
    def _http_error(status: int, data: bytes) -> EtcdError:
        try:
            error = _error_of(json.loads(data))
        except ValueError:
            error = None
        if error is not None:
            return error
        if status in (502, 503, 504):
            return EtcdUnavailable(f"HTTP {status}: {data[:200]!r}")
        return EtcdError(f"HTTP {status}: {data[:200]!r}")

    async def _round_trip(self, index: int, path: str, body: bytes) -> tuple[int, bytes]:
        """One request on a pooled connection to endpoint `index`. A reused
        keep-alive connection that turns out closed before any answer (the
        member restarted, say) is replaced by a fresh one, once."""
        endpoint = self._endpoints[index]
        while True:
            idle = self._idle[index]
            connection = idle.pop() if idle else await self._connect(endpoint)
            reused = connection.used
            done = False
            answered = False
            try:
                await connection.send_request(path, body)
                response = await connection.receive_response()
                answered = True
                data = await connection.receive_body()
                done = True
            except (_EndpointFailed, *_TRANSPORT_ERRORS):
                if reused and not answered:
                    continue  # (finally closes it)
                raise
            finally:
                if done and connection.ready_for_next() and not self._closed and len(idle) < MAX_IDLE:
                    idle.append(connection)
                else:
                    self._open.discard(connection)
                    await connection.aclose()
            return response.status_code, data

    async def _connect(self, endpoint: _Endpoint) -> _Connection:
        stream: trio.abc.Stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        if endpoint.tls:
            assert self._ssl is not None
            tls_stream = trio.SSLStream(
                stream, self._ssl, server_hostname=endpoint.host, https_compatible=True
            )
            try:
                await tls_stream.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(tls_stream)
                raise
            stream = tls_stream
        connection = _Connection(stream, endpoint)
        if self._closed:
            await connection.aclose()
            raise EtcdError("the etcd client is closed")
        self._open.add(connection)
        return connection
