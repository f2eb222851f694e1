"""`warren cluster status` against a single broker and a real three-node cluster.

The cluster is three `warren serve` processes led through a real etcd
(`WarrenCluster` and the `etcd_single` fixture, tests/cluster/): asked from a
follower, the command names the leader and lists the leader's two followers,
caught up. Connection failures are covered with every other HTTP command's
in test_cli_api_connection.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from cli_api_helpers import closed_port, eventually
from cli_helpers import run_warren
from warren_cluster import SECRET, WarrenCluster

from broker.commands._common import CommandError
from broker.commands.api_client import Endpoint, ManagementClient
from broker.commands.cluster import _leader_client
from broker.management.app import follower_app
from broker.management.http import HttpApp, serve_http_listeners
from broker.node import ClusterNode
from broker.settings import load_settings
from broker.testing import BrokerThread


def status(url: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    return run_warren("cluster", "status", "--url", url, *extra, env=env)


# -- a single broker ------------------------------------------------------------------------


def test_a_single_broker_is_a_single_node(api_warren: BrokerThread) -> None:
    assert api_warren.broker is not None
    url = api_warren.broker.management_url
    result = status(url)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "single node (no cluster): warren@localhost\n"

    as_json = status(url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "health": {"cluster": None, "node": "warren@localhost", "role": "leader",
                   "leader": "warren@localhost", "leader_amqp": None,
                   "leader_management": None, "term": None},
        "cluster": None,
    }


def test_an_api_without_the_health_route_is_one_line(api_warren: BrokerThread) -> None:
    # A path prefix stands for an API that has no /api/cluster/health (RabbitMQ's).
    assert api_warren.broker is not None
    base = f"{api_warren.broker.management_url}/elsewhere"
    result = status(base)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"warren cluster status: the management API at {base} has no /api/cluster/health "
        "(HTTP 404): it is not a Warren node (RabbitMQ has no such endpoint), or a Warren from "
        "before clusters\n"
    )


def test_usage_errors_are_exit_2(warren: Any) -> None:
    assert warren("cluster").returncode == 2
    assert warren("cluster", "nope").returncode == 2
    both = warren("cluster", "status", "--url", "http://h:1", "--profile", "p")
    assert both.returncode == 2
    assert "argument --profile: not allowed with argument --management-url/--url" in both.stderr
    result = warren("cluster", "status", "--url", "amqp://guest:guest@h:5672/")
    assert (result.returncode, result.stderr) == (2, (
        "warren cluster status: --management-url must be an http:// or https:// URL (the "
        "management API, e.g. http://localhost:15672), got 'amqp://guest@h:5672/'\n"
    ))
    nopass = warren("cluster", "status", "--url", "http://h:1", "--user", "ops")
    assert (nopass.returncode, nopass.stderr) == (2, (
        "warren cluster status: no password for user 'ops': give --password, or set "
        "$WARREN_MANAGEMENT_PASSWORD\n"
    ))


# -- a node that knows no leader ---------------------------------------------------------------


@contextmanager
def serving(app: HttpApp) -> Iterator[str]:
    """`app` on a free loopback port, served by its own trio loop in a thread: its URL."""
    ready = threading.Event()
    found: dict[str, Any] = {}

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        found["port"] = listeners[0].socket.getsockname()[1]
        found["token"] = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            found["scope"] = scope
            ready.set()
            await serve_http_listeners(app, listeners)

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{found['port']}"
    finally:
        trio.from_thread.run_sync(found["scope"].cancel, trio_token=found["token"])
        thread.join(10)


def test_a_node_without_a_leader_is_exit_1(tmp_path: Path) -> None:
    """A cluster node before it has found a leader, its health route served as a
    follower serves it (broker.management.app.follower_app) from the node's own
    status(): exit 1, what the node said on stdout, why on stderr."""
    conf = tmp_path / "rabbitmq.conf"
    conf.write_text("\n".join([
        f"warren.data_dir = {tmp_path / 'data'}",
        "cluster.name = test",
        "cluster.node_name = warren-9",
        f"cluster.etcd.endpoints = http://127.0.0.1:{closed_port()}",
        "replication.listener = 127.0.0.1:0",
        f"replication.secret = {SECRET}",
        "",
    ]))
    node = ClusterNode(load_settings(str(conf)))
    with serving(follower_app(node.status)) as url:
        result = status(url)
        assert (result.returncode, result.stderr) == (1, (
            "warren cluster status: cluster 'test' has no leader (node warren-9 is starting)\n"
        ))
        assert result.stdout == (
            "cluster            test\n"
            "node               warren-9\n"
            "role               starting\n"
            "leader             (none)\n"
            "leader amqp\n"
            "leader management\n"
            "term\n"
        )
        as_json = status(url, "--json")
        assert as_json.returncode == 1
        assert json.loads(as_json.stdout)["health"]["leader"] is None


# -- a real cluster -------------------------------------------------------------------------------


def _table(stdout: str) -> list[dict[str, str]]:
    """The followers' table of the text output, as dicts by column."""
    lines = stdout.split("\n\n", 1)[1].splitlines()
    header = lines[0]
    columns = header.split()
    # Cut at the header's column starts: a cell may be empty (batches_behind
    # before a follower's first acknowledgement), which split() would lose.
    starts = [header.index(f"{name}") for name in columns] + [None]
    return [{name: line[starts[i]:starts[i + 1]].strip() for i, name in enumerate(columns)}
            for line in lines[1:]]


def test_status_from_a_follower_names_the_leader_and_its_followers(
    tmp_path: Path, etcd_single: Any,
) -> None:
    cluster = WarrenCluster(tmp_path / "warren", etcd_single.endpoints)
    try:
        cluster.start_all()
        index, health = cluster.wait_leader()
        leader = cluster.nodes[index]
        follower = cluster.nodes[(index + 1) % 3]
        others = sorted(n.name for n in cluster.nodes if n is not leader)
        url = f"http://127.0.0.1:{follower.management}"

        # Both followers connect and catch up within a moment of the election.
        result = eventually(
            lambda: status(url),
            lambda r: r.returncode == 0 and "\n\n" in r.stdout
            and [row["caught_up"] for row in _table(r.stdout)] == ["true", "true"],
            what="two followers caught up",
        )
        assert result.stderr == ""
        head = result.stdout.split("\n\n", 1)[0]
        assert head == "\n".join([
            "cluster            test",
            f"node               {follower.name}",
            "role               follower",
            f"leader             {leader.name}",
            f"leader amqp        127.0.0.1:{leader.amqp}",
            f"leader management  http://127.0.0.1:{leader.management}",
            f"term               {health['term']}",
            "confirms           leader fsync and 1 follower(s)",
        ])
        rows = _table(result.stdout)
        assert sorted(row["node"] for row in rows) == others
        for row in rows:
            assert row["batches_behind"] == "0"
            assert int(row["acked_batch"]) >= 0
            assert row["address"].startswith("127.0.0.1:")

        # Asked of the leader itself: the same answer, about itself.
        direct = status(f"http://127.0.0.1:{leader.management}")
        assert direct.returncode == 0, direct.stderr
        assert f"node               {leader.name}\nrole               leader\n" in direct.stdout
        assert sorted(row["node"] for row in _table(direct.stdout)) == others

        # --json: the node's health answer and the leader's /api/cluster.
        as_json = status(url, "--json")
        assert as_json.returncode == 0, as_json.stderr
        document = json.loads(as_json.stdout)
        assert document["health"] == {key: value for key, value in health.items()
                                      if key != "status"} | {"node": follower.name,
                                                             "role": "follower"}
        assert document["cluster"]["node"] == leader.name
        assert document["cluster"]["role"] == "leader"
        assert document["cluster"]["term"] == health["term"]
        assert sorted(f["node"] for f in document["cluster"]["replication"]["followers"]) == others

        # Credentials the leader refuses: what the follower said stands, then one line, exit 2.
        refused = status(f"http://guest:n0pe@127.0.0.1:{follower.management}")
        assert refused.returncode == 2
        assert refused.stdout == head.rsplit("\n", 1)[0] + "\n"  # all but the confirm mode
        assert refused.stderr == (
            f"warren cluster status: asking the leader {leader.name} for its followers: the "
            f"management API at http://127.0.0.1:{leader.management} refused the login of user "
            "'guest': Login failed (HTTP 401; credentials from --management-url)\n"
        )
        assert "n0pe" not in refused.stderr

        # Another user, by --user and --password (or the environment): a monitoring
        # user may read the replication, a management user may not.
        leader_url = f"http://127.0.0.1:{leader.management}"
        for user, tags in (("acli-mon", "monitoring"), ("acli-mgmt", "management")):
            made = run_warren("users", "add", user, "--tags", tags, "--management-url",
                              leader_url, input="s3cret\n")
            assert made.returncode == 0, made.stderr
        monitor = status(url, "--user", "acli-mon", "--password", "s3cret")
        assert monitor.returncode == 0, monitor.stderr
        assert sorted(row["node"] for row in _table(monitor.stdout)) == others
        by_env = status(url, "--user", "acli-mon", env={"WARREN_MANAGEMENT_PASSWORD": "s3cret"})
        assert by_env.returncode == 0, by_env.stderr
        manager = status(url, "--user", "acli-mgmt", "--password", "s3cret")
        assert (manager.returncode, manager.stderr) == (2, (
            f"warren cluster status: asking the leader {leader.name} for its followers: user "
            "'acli-mgmt' may not do this: Not monitor user (HTTP 401)\n"
        ))
        wrong = status(url, "--user", "acli-mon", "--password", "n0pe")
        assert wrong.returncode == 2
        assert "refused the login of user 'acli-mon': Login failed (HTTP 401; credentials " \
            "from --user and --password)" in wrong.stderr
    finally:
        cluster.stop()


def test_credentials_for_https_never_go_to_a_plain_http_leader() -> None:
    """The leader's URL is what it advertises; credentials given for an https://
    API are not sent to it over plain HTTP (no request is made: a function test)."""
    api = ManagementClient(Endpoint("https://node2:15671", "ops", "s3cret", source="--url"))
    follower = {"role": "follower", "leader": "warren-1"}
    with pytest.raises(CommandError) as refused:
        _leader_client(api, follower | {"leader_management": "http://node1:15672"})
    assert str(refused.value) == (
        "the leader advertises a plain-HTTP management API (http://node1:15672); not sending "
        "the credentials given for https://node2:15671 over it: ask the leader directly with "
        "--url"
    )
    leader = _leader_client(api, follower | {"leader_management": "https://node1:15671/"})
    assert leader is not None
    assert (leader.base, leader.username, leader.password) == (
        "https://node1:15671", "ops", "s3cret")
    assert _leader_client(api, follower | {"leader_management": None}) is None
    assert _leader_client(api, {"role": "leader"}) is api
