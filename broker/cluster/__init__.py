"""The cluster layer: what Warren's high-availability mode coordinates through.

- `broker.cluster.etcd`: a small etcd v3 client on trio and h11, speaking to
  etcd's JSON gateway (HTTP/1.1, ``POST /v3/kv/range`` and friends): key-value
  reads and writes, leases, compare-and-swap transactions and watches, with
  failover between the cluster's members;
- `broker.cluster.election`: leader election on top of it (a leader key held
  by a lease, its create_revision the fencing token) and `LeaseKeeper`, which
  keeps a lease alive and says until when it surely is.

Replication (shipping the leader's changes to its followers) will sit beside
these; nothing here knows about queues or messages.
"""
