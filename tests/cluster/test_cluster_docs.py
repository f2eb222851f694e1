"""docs/cluster.md works as written: its node settings file (for three nodes, as
the text says to derive them), its health answer, and its pika example, run
against real etcd and three real Warren processes. Ports are rewritten to free
ones and the etcd URLs to the test's etcd; nothing else."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from warren_cluster import ROOT, free_port

DOC = ROOT / "docs" / "cluster.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def _health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cluster/health", timeout=1) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_three_node_walkthrough(tmp_path: Path, etcd_single: Any) -> None:
    node1 = next(block for block in _blocks("ini") if "cluster.node_name = warren-1" in block)
    # The text: node2/node3 are node1 with warren-2/3, ./data2/3 and the next ports.
    ports = {old: [free_port() for _ in range(3)] for old in (5672, 15672, 15692, 5679)}
    files = []
    for i in range(3):
        text = node1.replace("warren-1", f"warren-{i + 1}").replace("./data1", f"./data{i + 1}")
        for old, new in ports.items():
            text = re.sub(rf"\b{old}\b", str(new[i]), text)
        text = re.sub(r"cluster\.etcd\.endpoints = .*", "cluster.etcd.endpoints = "
                      + ", ".join(etcd_single.endpoints), text)
        path = tmp_path / f"node{i + 1}.conf"
        path.write_text(text)
        files.append(path)
    processes = []
    try:
        for i, path in enumerate(files):
            log = open(tmp_path / f"node{i + 1}.log", "wb")  # noqa: SIM115 - closed with the process
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "broker", "serve", "--settings", str(path)],
                cwd=tmp_path, stdout=log, stderr=log))
        management = ports[15672]
        deadline = time.monotonic() + 30
        answers: list[tuple[int, dict[str, Any]]] = []
        while time.monotonic() < deadline:
            try:
                answers = [_health(port) for port in management]
            except OSError:
                time.sleep(0.1)
                continue
            if sorted(status for status, _ in answers) == [200, 503, 503] and all(
                    body.get("leader") for _, body in answers):
                break
            time.sleep(0.1)
        assert sorted(status for status, _ in answers) == [200, 503, 503], answers
        leader = next(body for status, body in answers if status == 200)
        follower = next(body for status, body in answers if status == 503)
        # The fields the doc's example answer shows.
        assert set(follower) == {"cluster", "node", "role", "leader", "leader_amqp",
                                 "leader_management", "term"}
        assert follower["role"] == "follower" and follower["leader"] == leader["node"] == leader["leader"]
        assert follower["cluster"] == "try" and follower["term"] == leader["term"]

        # The pika example, with the three AMQP ports.
        example = next(block for block in _blocks("python") if "BlockingConnection(nodes)" in block)
        example = example.replace("(5672, 5673, 5674)", repr(tuple(ports[5672])))
        result = subprocess.run([sys.executable, "-c", example + "\nprint('published')"],
                                capture_output=True, text=True, timeout=30)
        assert result.stdout.strip() == "published", result.stderr
        # ./data1 ... relative to where the nodes were started; the followers'
        # copies arrive as they catch up.
        deadline = time.monotonic() + 20
        while not all((tmp_path / f"data{i}" / "definitions.bin").exists() for i in (1, 2, 3)):
            assert time.monotonic() < deadline, [p.name for p in tmp_path.glob("data*/*")]
            time.sleep(0.05)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
