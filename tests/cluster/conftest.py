"""The cluster layer's fixtures: real etcd clusters on loopback (etcd_cluster.py).

- `etcd_single`: one etcd member of this test's own;
- `etcd_shared`: one etcd member for the whole module, for tests that neither
  kill nor freeze it (each under keys of its own): starting etcd is most of
  a short test's time;
- `etcd_cluster`: three members of this test's own (kill some, restart them).

Every member is killed at the end of its test (or module), passed or failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_cluster import EtcdCluster


@pytest.fixture
def etcd_single(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(1, tmp_path) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def etcd_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with EtcdCluster(1, tmp_path_factory.mktemp("etcd-shared")) as cluster:
        yield cluster


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(3, tmp_path) as cluster:
        yield cluster
