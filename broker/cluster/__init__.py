"""The cluster layer: what Warren's high-availability mode coordinates through (docs/cluster.md).

- `broker.cluster.etcd`: a small etcd v3 client on trio and h11, speaking to
  etcd's JSON gateway (HTTP/1.1, ``POST /v3/kv/range`` and friends): key-value
  reads and writes, leases, compare-and-swap transactions and watches, with
  failover between the cluster's members;
- `broker.cluster.election`: leader election on top of it (a leader key held
  by a lease, its create_revision the fencing token) and `LeaseKeeper`, which
  keeps a lease alive and says until when it surely is;
- `broker.cluster.wire`: the replication stream's frames and its mutual
  authentication;
- `broker.cluster.leader`: the leader's side (every journal batch to every
  follower, confirms after `replication.min_followers` of them);
- `broker.cluster.follower`: the follower's side (catch up from the files, then
  apply each batch, fsync, acknowledge);
- `broker.cluster.refusal`: a follower's AMQP listener, which names the leader.

Nothing here knows about queues or messages: replication copies the data
directory's files (broker.storage.replica); the node (broker.node) puts the
parts together.
"""
