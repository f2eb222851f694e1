"""The etcd client and the election, against real etcd (etcd_cluster.py): no mocks.

Tests that kill or freeze members have a cluster of their own (`etcd_single`,
`etcd_cluster`); the others share one member per module (`etcd_shared`), each
under keys of its own.

Timings: etcd's minimum lease TTL is 1.5 election timeouts rounded up, 2 s
with the fixtures' 1 s election timeout, so lease tests use ttl=2 and etcd
reaps expired leases every 500 ms.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from etcd_cluster import EtcdCluster, ServerTLS

from broker.cluster.election import Election, Leader, LeaseKeeper
from broker.cluster.etcd import (
    EtcdClient,
    EtcdError,
    EtcdTLS,
    EtcdUnavailable,
    KeyValue,
    LeaseExpired,
    WatchCanceled,
    WatchEvent,
    prefix_range_end,
)

OPENSSL = shutil.which("openssl")


@contextlib.asynccontextmanager
async def client_of(cluster: EtcdCluster, *indices: int, timeout: float = 2.0) -> AsyncIterator[EtcdClient]:
    urls = [cluster.endpoints[i] for i in indices] if indices else cluster.endpoints
    async with EtcdClient(urls, timeout=timeout) as client:
        yield client


async def observe_into(election: Election, send: trio.MemorySendChannel[Leader | None],
                       resync: float = 5.0, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    async with contextlib.aclosing(election.observe(resync=resync)) as states:
        task_status.started()
        async for state in states:
            await send.send(state)


async def next_state(receive: trio.MemoryReceiveChannel[Leader | None], within: float = 5.0) -> Leader | None:
    with trio.fail_after(within):
        return await receive.receive()


# -- the key-value API -------------------------------------------------------------


def test_prefix_range_end_is_etcds():
    assert prefix_range_end(b"abc") == b"abd"
    assert prefix_range_end(b"a\xff") == b"b"
    assert prefix_range_end(b"\xff\xff") == b"\0"  # no end: every key
    assert prefix_range_end(b"") == b"\0"


def test_endpoints_must_be_http_urls():
    with pytest.raises(ValueError):
        EtcdClient(["127.0.0.1:2379"])
    with pytest.raises(ValueError):
        EtcdClient([])


@pytest.mark.trio
async def test_put_get_prefix_and_delete(etcd_shared):
    async with client_of(etcd_shared) as client:
        first = await client.put(b"/t/a", b"1")
        second = await client.put(b"/t/b", b"2")
        await client.put(b"/t/c", b"3")
        await client.put(b"/u/a", b"outside")
        assert second > first

        kv = await client.get(b"/t/a")
        assert kv == KeyValue(b"/t/a", b"1", first, first, 1, 0)
        assert await client.get(b"/t/nothing") is None

        await client.put(b"/t/a", b"1bis")
        kv = await client.get(b"/t/a")
        assert kv is not None and (kv.value, kv.create_revision, kv.version) == (b"1bis", first, 2)
        assert kv.mod_revision > first

        kvs, revision = await client.get_prefix(b"/t/")
        assert [(kv.key, kv.value) for kv in kvs] == [(b"/t/a", b"1bis"), (b"/t/b", b"2"), (b"/t/c", b"3")]
        assert revision >= kv.mod_revision  # the header's revision: the store's latest
        assert await client.delete(b"/t/b") == 1
        assert await client.delete(b"/t/b") == 0
        kvs, _ = await client.get_prefix(b"/t/")
        assert [kv.key for kv in kvs] == [b"/t/a", b"/t/c"]


@pytest.mark.trio
async def test_binary_keys_and_values_travel_as_base64(etcd_shared):
    async with client_of(etcd_shared) as client:
        odd = {
            b"\x00bin\xff\xfe": b"\x00", b"\x00bin\n\r\"\\": bytes(range(256)),
            b"\xff\xff\xff-bin": b"",
        }
        for key, value in odd.items():
            await client.put(key, value)
        for key, value in odd.items():
            kv = await client.get(key)
            assert kv is not None and (kv.key, kv.value) == (key, value)
        kvs, _ = await client.get_prefix(b"\x00bin")
        assert [(kv.key, kv.value) for kv in kvs] == sorted(
            (key, value) for key, value in odd.items() if key.startswith(b"\x00")
        )
        # A prefix of 0xff bytes has no successor: the range runs to the end of the keyspace.
        kvs, _ = await client.get_prefix(b"\xff\xff\xff")
        assert [kv.key for kv in kvs] == [b"\xff\xff\xff-bin"]


@pytest.mark.trio
async def test_an_etcd_error_is_raised_not_retried_elsewhere(etcd_shared):
    async with client_of(etcd_shared) as client:
        with pytest.raises(EtcdError) as caught:
            await client.put(b"/error", b"v", lease=0x1234)  # no such lease
        assert not isinstance(caught.value, EtcdUnavailable)
        assert caught.value.code == 5 and "lease not found" in caught.value.message
        await client.revoke_lease(0x1234)  # already gone: no error


# -- elections -------------------------------------------------------------------


@pytest.mark.trio
async def test_two_simultaneous_campaigns_elect_exactly_one(etcd_shared):
    async with client_of(etcd_shared) as one, client_of(etcd_shared) as two:
        leases = [await one.grant_lease(10), await two.grant_lease(10)]
        for round_ in range(10):
            elections = [Election(one, f"/race/{round_}".encode()), Election(two, f"/race/{round_}".encode())]
            results: list[Leader | None] = [None, None]

            async def campaign(i: int, results: list[Leader | None] = results,
                               elections: list[Election] = elections) -> None:
                results[i] = await elections[i].campaign(f"node-{i}".encode(), leases[i])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(campaign, 0)
                nursery.start_soon(campaign, 1)
            winners = [leader for leader in results if leader is not None]
            assert len(winners) == 1, results
            assert await elections[0].leader() == winners[0]
            assert await elections[1].leader() == winners[0]


@pytest.mark.trio
async def test_fencing_tokens_increase_and_only_the_holder_proclaims_or_resigns(etcd_shared):
    async with client_of(etcd_shared) as client:
        election = Election(client, b"/fence")
        lease_a, lease_b = await client.grant_lease(10), await client.grant_lease(10)
        first = await election.campaign(b"a", lease_a)
        assert first is not None and first.value == b"a" and first.lease == lease_a
        assert await election.campaign(b"b", lease_b) is None
        # Campaigning again on the same lease is not a new term.
        assert await election.campaign(b"a", lease_a) == first

        assert await election.proclaim(b"a2", first)
        assert await election.leader() == Leader(b"a2", first.revision, lease_a)
        kv = await client.get(election.key)
        assert kv is not None and kv.lease == lease_a  # proclaim keeps the key on its lease

        assert await election.resign(first)
        assert await election.leader() is None
        await client.put(b"/unrelated", b"x")  # revisions move on regardless
        second = await election.campaign(b"b", lease_b)
        assert second is not None and second.revision > first.revision

        # The deposed term's Leader can do nothing to its successor's.
        assert not await election.proclaim(b"stale", first)
        assert not await election.resign(first)
        assert await election.leader() == second
        # A fake "term" with the right value but another revision fares no better.
        assert not await election.resign(Leader(b"b", second.revision + 1, lease_b))
        assert await election.resign(second)

        third = await election.campaign(b"a", lease_a)
        assert third is not None and third.revision > second.revision


@pytest.mark.trio
async def test_an_expired_lease_takes_the_leader_key_with_it(etcd_shared):
    async with client_of(etcd_shared) as client:
        election = Election(client, b"/expiry")
        lease = await client.grant_lease(2)
        leader = await election.campaign(b"a", lease)
        assert leader is not None
        started = trio.current_time()
        with trio.fail_after(5):
            while await election.leader() is not None:
                await trio.sleep(0.1)
        assert trio.current_time() - started >= 1.5  # not before its TTL
        with pytest.raises(LeaseExpired):
            await client.keepalive_once(lease)
        assert not await election.proclaim(b"a", leader)
        assert await election.campaign(b"b", await client.grant_lease(2)) is not None


@pytest.mark.trio
async def test_observe_sees_the_leader_appear_change_and_go(etcd_shared):
    async with client_of(etcd_shared) as client, client_of(etcd_shared) as other:
        election = Election(client, b"/observed")
        send, receive = trio.open_memory_channel[Leader | None](10)
        async with trio.open_nursery() as nursery:
            await nursery.start(observe_into, Election(other, b"/observed"), send)
            assert await next_state(receive) is None

            lease = await client.grant_lease(10)
            first = await election.campaign(b"a", lease)
            assert await next_state(receive) == first
            assert await election.proclaim(b"a-bis", first)
            assert await next_state(receive) == Leader(b"a-bis", first.revision, lease)
            # A proclaim of the same value is a write, but not a new state.
            assert await election.proclaim(b"a-bis", first)
            assert await election.resign(first)
            assert await next_state(receive) is None

            second = await election.campaign(b"b", lease)
            assert await next_state(receive) == second
            await client.revoke_lease(lease)
            assert await next_state(receive) is None
            with trio.move_on_after(0.3):
                unexpected = await receive.receive()
                pytest.fail(f"a repeated state: {unexpected}")
            nursery.cancel_scope.cancel()


# -- leases --------------------------------------------------------------------


@pytest.mark.trio
async def test_lease_keeper_holds_the_lease_then_loses_it_when_etcd_dies(etcd_single):
    async with client_of(etcd_single, timeout=0.5) as client:
        keeper = LeaseKeeper(client, ttl=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(keeper.run)
            assert keeper.alive()
            leader = await Election(client, b"/kept").campaign(b"a", keeper.lease_id)
            assert leader is not None
            # Two and a half TTLs later the key is still there, kept alive by the keeper.
            for _ in range(10):
                await trio.sleep(0.5)
                assert keeper.alive()
                assert 0 < keeper.valid_until - trio.current_time() <= 2
            assert await Election(client, b"/kept").leader() == leader

            etcd_single.kill(0)
            killed_at = trio.current_time()
            last_valid_until = keeper.valid_until
            with trio.fail_after(4):
                await keeper.lost.wait()
            lost_at = trio.current_time()
            assert not keeper.alive()
            # Lost no earlier than the lease was surely alive, and soon after.
            assert lost_at >= last_valid_until
            assert lost_at - killed_at <= 2.5
        # run() returned by itself: the nursery closed without a cancel.


@pytest.mark.trio
async def test_lease_keeper_revoke_drops_the_leader_key_at_once(etcd_shared):
    async with client_of(etcd_shared) as client:
        keeper = LeaseKeeper(client, ttl=10)
        election = Election(client, b"/revoked")
        async with trio.open_nursery() as nursery:
            await nursery.start(keeper.run)
            assert await election.campaign(b"a", keeper.lease_id) is not None
            await keeper.revoke()
            assert keeper.lost.is_set() and not keeper.alive()
            assert await election.leader() is None
        with pytest.raises(LeaseExpired):
            await client.keepalive_once(keeper.lease_id)


# -- watches -------------------------------------------------------------------


def compact(endpoint: str, revision: int) -> None:
    """Compact etcd's history up to `revision`, with the stdlib's HTTP client."""
    body = json.dumps({"revision": str(revision), "physical": True}).encode()
    with urllib.request.urlopen(f"{endpoint}/v3/kv/compaction", body, timeout=5) as answer:
        assert answer.status == 200


@pytest.mark.trio
async def test_watch_replays_from_a_revision_and_follows_a_prefix(etcd_shared):
    async with client_of(etcd_shared) as client:
        # (Revisions are compared, not computed: on the shared member other
        # tests' leases expire meanwhile, and every deletion is a revision.)
        start = await client.put(b"/w/a", b"1")
        second = await client.put(b"/w/b", b"2")
        unwatched = await client.put(b"/x", b"not watched")
        await client.delete(b"/w/a")
        seen: list[WatchEvent] = []
        async with contextlib.aclosing(client.watch(b"/w/", prefix=True, start_revision=start)) as batches:
            with trio.fail_after(5):
                async for events in batches:
                    seen.extend(events)
                    if len(seen) == 3:
                        await client.put(b"/w/\xff", b"live")
                    if len(seen) == 4:
                        break
        assert [(e.type, e.kv.key, e.kv.value) for e in seen] == [
            ("PUT", b"/w/a", b"1"), ("PUT", b"/w/b", b"2"), ("DELETE", b"/w/a", b""),
            ("PUT", b"/w/\xff", b"live"),
        ]
        assert seen[0].kv.create_revision == start and seen[1].kv.create_revision == second
        assert seen[2].kv.mod_revision > unwatched

        # From a compacted revision, etcd cancels the watch: the caller re-reads.
        await trio.to_thread.run_sync(compact, etcd_shared.endpoints[0], second)
        with pytest.raises(WatchCanceled) as caught:
            async with contextlib.aclosing(client.watch(b"/w/", prefix=True, start_revision=start)) as batches:
                with trio.fail_after(5):
                    async for _ in batches:
                        pass
        assert caught.value.compact_revision == second
        assert isinstance(caught.value, EtcdUnavailable)


@pytest.mark.trio
async def test_a_watch_reports_unavailable_when_its_member_dies(etcd_single):
    async with client_of(etcd_single) as client:
        _, revision = await client.get_with_revision(b"/dies")
        # (A watch starts on its first iteration: start_revision says from where.)
        async with contextlib.aclosing(client.watch(b"/dies", start_revision=revision + 1)) as batches:
            await client.put(b"/dies", b"1")
            with trio.fail_after(5):
                assert [e.kv.value for e in await anext(batches)] == [b"1"]
            etcd_single.kill(0)
            with trio.fail_after(5), pytest.raises(EtcdUnavailable):
                await anext(batches)
        with pytest.raises(EtcdUnavailable):
            await client.get(b"/dies")


# -- failover and deadlines ----------------------------------------------------


@contextlib.asynccontextmanager
async def hung_endpoint() -> AsyncIterator[str]:
    """A TCP listener that accepts connections and never answers."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    held: list[trio.SocketStream] = []

    async def accept() -> None:
        while True:
            held.append(await listeners[0].accept())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()
    for stream in held:
        await stream.aclose()
    await listeners[0].aclose()


@pytest.mark.trio
async def test_a_hung_endpoint_times_out_and_the_next_one_answers(etcd_shared):
    async with hung_endpoint() as hung:
        async with EtcdClient([hung], timeout=0.3) as client:
            started = trio.current_time()
            with pytest.raises(EtcdUnavailable) as caught:
                await client.get(b"k")
            assert 0.3 <= trio.current_time() - started < 1.5
            assert "no answer within 0.3s" in str(caught.value)

        async with EtcdClient([hung, etcd_shared.endpoints[0]], timeout=0.3) as client:
            started = trio.current_time()
            await client.put(b"k", b"v")
            assert 0.3 <= trio.current_time() - started < 1.5
            started = trio.current_time()
            kv = await client.get(b"k")  # straight to the endpoint that answered
            assert kv is not None and kv.value == b"v"
            assert trio.current_time() - started < 0.25
        # A watch, too, moves on from the hung endpoint.
        async with EtcdClient([hung, etcd_shared.endpoints[0]], timeout=0.3) as client:
            _, revision = await client.get_with_revision(b"k")
            async with contextlib.aclosing(client.watch(b"k", start_revision=revision + 1)) as batches:
                await client.put(b"k", b"w")
                with trio.fail_after(3):
                    assert [e.kv.value for e in await anext(batches)] == [b"w"]


@pytest.mark.trio
async def test_requests_fail_over_when_the_member_in_use_dies(etcd_cluster):
    # The client talks to a follower first: killing it costs no raft election.
    raft_leader = await trio.to_thread.run_sync(etcd_cluster.leader_index)
    follower = next(i for i in range(3) if i != raft_leader)
    order = [follower] + [i for i in range(3) if i != follower]
    async with client_of(etcd_cluster, *order, timeout=1.0) as client:
        keeper = LeaseKeeper(client, ttl=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(keeper.run)
            election = Election(client, b"/failover")
            leader = await election.campaign(b"a", keeper.lease_id)
            assert leader is not None

            etcd_cluster.kill(follower)  # the member the client talks to
            started = trio.current_time()
            await client.put(b"/failover/after", b"1")
            assert trio.current_time() - started < 0.5  # refused at once: next endpoint
            assert await election.leader() == leader
            # The keeper renews through the others (its valid_until moves on).
            renewed_before = keeper.valid_until
            with trio.fail_after(2):
                while keeper.valid_until <= renewed_before:
                    await trio.sleep(0.05)
            assert keeper.alive() and await election.leader() == leader

            # Kill the raft leader too: no quorum. The last member answers "no leader"
            # (hasleader) once it notices, not after etcd's own 7 s, and the client
            # gives up on every endpoint.
            etcd_cluster.kill(await trio.to_thread.run_sync(etcd_cluster.leader_index))
            with trio.fail_after(5), pytest.raises(EtcdUnavailable) as caught:
                while True:
                    await client.get(b"/failover/after")
                    await trio.sleep(0.1)
            assert "no leader" in str(caught.value) or "no answer" in str(caught.value)
            with trio.fail_after(4):
                await keeper.lost.wait()  # and the keeper gives the lease up


@pytest.mark.trio
async def test_observe_moves_off_a_frozen_or_dead_member(etcd_cluster):
    # The observer reads and watches through a follower first; the campaigns go
    # through the two others.
    raft_leader = await trio.to_thread.run_sync(etcd_cluster.leader_index)
    follower = next(i for i in range(3) if i != raft_leader)
    others = [i for i in range(3) if i != follower]
    async with client_of(etcd_cluster, follower, *others, timeout=0.5) as watcher, \
            client_of(etcd_cluster, *others) as client:
        election = Election(client, b"/frozen")
        send, receive = trio.open_memory_channel[Leader | None](10)
        async with trio.open_nursery() as nursery:
            await nursery.start(observe_into, Election(watcher, b"/frozen"), send, 1.0)
            assert await next_state(receive) is None
            lease = await client.grant_lease(10)

            # A frozen member keeps its connections open and says nothing:
            # the observer notices the change on its next resync.
            etcd_cluster.freeze(follower)
            first = await election.campaign(b"a", lease)
            assert first is not None
            assert await next_state(receive, within=5) == first

            etcd_cluster.kill(follower)  # was frozen: now gone
            assert await election.resign(first)
            assert await next_state(receive, within=5) is None
            second = await election.campaign(b"b", lease)
            assert await next_state(receive, within=5) == second
            nursery.cancel_scope.cancel()


# -- TLS -----------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    done = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def make_certificates(directory: Path) -> dict[str, Path]:
    """A test CA (EC P-256, fast), a server certificate for 127.0.0.1 and a
    client certificate, both signed by it."""
    ec = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1")
    openssl("genpkey", *ec, "-out", "ca.key", cwd=directory)
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=Warren etcd test CA", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem", cwd=directory)
    for name, extensions in {
        # etcd's gateway dials its own gRPC port with the server certificate: it
        # must be good for clientAuth too when etcd checks client certificates.
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth",
        "client": "extendedKeyUsage=clientAuth",
    }.items():
        (directory / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\n{extensions}\n")
        openssl("genpkey", *ec, "-out", f"{name}.key", cwd=directory)
        openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN=warren-{name}", "-out", f"{name}.csr",
                cwd=directory)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
                cwd=directory)
    return {name: directory / name for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if OPENSSL is None:
        pytest.skip("the openssl command line is not installed (apt-get install openssl)")
    return make_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=[False, True], ids=["server-tls", "mutual-tls"])
def tls_etcd(request: pytest.FixtureRequest, tmp_path: Path,
             certificates: dict[str, Path]) -> Iterator[tuple[EtcdCluster, EtcdTLS, bool]]:
    """One member serving TLS; with mutual TLS it also requires a client certificate."""
    mutual = request.param
    ca = str(certificates["ca.pem"])
    tls = EtcdTLS(ca_file=ca)
    if mutual:
        tls = EtcdTLS(ca_file=ca, cert_file=str(certificates["client.pem"]),
                      key_file=str(certificates["client.key"]))
    server = ServerTLS(certificates["server.pem"], certificates["server.key"],
                       certificates["ca.pem"] if mutual else None)
    with EtcdCluster(1, tmp_path, tls=server, client_tls=tls) as cluster:
        yield cluster, tls, mutual


@pytest.mark.trio
async def test_tls_to_etcd(tls_etcd):
    cluster, tls, mutual = tls_etcd
    ca = tls.ca_file
    assert cluster.endpoints[0].startswith("https://")
    async with EtcdClient(cluster.endpoints, tls=tls) as client:
        revision = await client.put(b"secret", b"\x00value")
        kv = await client.get(b"secret")
        assert kv is not None and kv.value == b"\x00value"
        lease = await client.grant_lease(5)
        assert await client.keepalive_once(lease) == 5
        async with contextlib.aclosing(client.watch(b"secret", start_revision=revision)) as batches:
            with trio.fail_after(5):
                assert [e.kv.value for e in await anext(batches)] == [b"\x00value"]

    # Without our CA the server's certificate does not verify: no endpoint answers.
    async with EtcdClient(cluster.endpoints, timeout=1.0) as stranger:
        with pytest.raises(EtcdUnavailable, match="certificate verify failed"):
            await stranger.get(b"secret")
    if mutual:  # Without a client certificate etcd refuses the handshake.
        async with EtcdClient(cluster.endpoints, tls=EtcdTLS(ca_file=ca), timeout=1.0) as anonymous:
            with pytest.raises(EtcdUnavailable):
                await anonymous.get(b"secret")


def test_base64_is_what_the_gateway_speaks(etcd_shared):
    """The wire format, checked with the stdlib's HTTP client: keys and values
    base64, int64 fields as JSON strings, /v3/ and /v3beta/ both served by 3.4."""
    endpoint = etcd_shared.endpoints[0]

    def post(path: str, body: dict[str, object]) -> dict[str, object]:
        with urllib.request.urlopen(f"{endpoint}{path}", json.dumps(body).encode(), timeout=5) as answer:
            return json.loads(answer.read())

    key = base64.b64encode(b"\xffwire").decode()
    put = post("/v3/kv/put", {"key": key, "value": base64.b64encode(b"v").decode()})
    assert isinstance(put["header"]["revision"], str)
    got = post("/v3beta/kv/range", {"key": key})
    assert got["kvs"][0]["key"] == key
    with pytest.raises(urllib.error.HTTPError):
        post("/v3alpha/kv/range", {"key": key})
