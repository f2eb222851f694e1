"""The overview's Cluster panel, in a real headless Chromium.

On the module's single broker it says "single node"; on a real two-node
cluster (two `warren serve` processes led through a real etcd: WarrenCluster
and `etcd_single`, tests/cluster/), the leader's dashboard shows the cluster,
its role, the term and the confirm mode; while it leads alone, that confirms
wait for a follower; then the second node's row once it joins, caught up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboard_helpers import Browser, Dashboard, call, wait_for
from etcd_cluster import EtcdCluster
from warren_cluster import WarrenCluster

Api = Callable[..., tuple[int, Any]]


def test_a_single_broker_is_a_single_node(dash: Dashboard) -> None:
    dash.login(hash_="#/overview")
    dash.wait_text("#overview-cluster", "Single node (no cluster).")
    assert dash.text("#overview-cluster").splitlines() == ["Cluster", "Single node (no cluster)."]
    assert "GET /api/cluster" in dash.fetches()


def test_only_monitoring_users_are_shown_the_cluster(dash: Dashboard, api: Api) -> None:
    for user, tags in (("dash-manager", "management"), ("dash-monitor", "monitoring")):
        assert api("PUT", f"/api/users/{user}", {"password": "pw", "tags": tags})[0] in (201, 204)
    # A management user may not read /api/cluster (as /api/nodes): the panel says
    # who may, and the page does not ask (no 401 in the browser's log: `dash` checks).
    dash.login("dash-manager", "pw", "#/overview")
    dash.wait_text("#overview-cluster",
                   "Shown to users with the monitoring or administrator tag.")
    dash.wait_visible("#overview-totals")
    assert not any("/api/cluster" in f for f in dash.fetches())
    dash.click("#logout")
    dash.login("dash-monitor", "pw", "#/overview")
    dash.wait_text("#overview-cluster", "Single node (no cluster).")


def test_a_cluster_leader_shows_its_follower(
    browser: Browser, screenshot_dir: Path, tmp_path: Path, etcd_single: EtcdCluster,
) -> None:
    cluster = WarrenCluster(tmp_path / "warren", etcd_single.endpoints, size=2)
    try:
        # The first node leads alone: no follower, and confirms (min_followers 1) wait.
        cluster.start(0)
        index, health = cluster.wait_leader()
        leader, follower = cluster.nodes[index], cluster.nodes[1 - index]
        dash = Dashboard(browser, f"http://127.0.0.1:{leader.management}", screenshot_dir)
        dash.reset(refresh_ms=1000)
        browser.forget_log()
        dash.login(hash_="#/overview")

        summary = dash.wait_text("#cluster-summary", "Cluster\ntest")
        assert summary.splitlines() == [
            "Cluster", "test",
            "This node", f"{leader.name} leader",
            "Leader", f"{leader.name} (AMQP 127.0.0.1:{leader.amqp})",
            "Term", f"{health['term']:,}",
            "Confirms", "leader fsync and 1 follower(s)",
        ]
        dash.wait_text("#cluster-followers", "No follower connected.")
        assert dash.text("#overview-cluster").splitlines() == [
            "Cluster", *summary.splitlines(),
            "0 of the 1 follower(s) publisher confirms wait for are in sync: confirms are "
            "held until enough are.",
            "Followers (0, 0 caught up)",
            "NODE IN SYNC CAUGHT UP BATCHES BEHIND QUEUED", "No follower connected.",
        ]

        # The second node joins as its follower: its row appears, caught up.
        cluster.start(follower.index)
        wait_for(lambda: dash.cell("cluster-followers", follower.name, "in_sync") == "yes",
                 timeout=20)
        assert dash.rows("cluster-followers") == [follower.name]
        assert dash.cell("cluster-followers", follower.name, "batches_behind") == "0"
        assert dash.cell("cluster-followers", follower.name, "queued_bytes") == "0 B"
        panel = dash.wait_text("#overview-cluster", "Followers (1, 1 caught up)")
        assert panel.splitlines() == [
            "Cluster", *summary.splitlines(), "Followers (1, 1 caught up)",
            "NODE IN SYNC CAUGHT UP BATCHES BEHIND QUEUED", f"{follower.name} yes yes 0 0 B",
        ]
        # What the panel shows is what the API says.
        status, state = call(dash.base_url, "GET", "/api/cluster")
        assert status == 200
        assert [(f["node"], f["caught_up"], f["batches_behind"])
                for f in state["replication"]["followers"]] == [(follower.name, True, 0)]
        dash.screenshot("overview-cluster")
        assert browser.console_errors() == []
    finally:
        browser.driver.execute_script("sessionStorage.clear()")
        cluster.stop()
