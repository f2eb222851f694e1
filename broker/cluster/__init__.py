"""The cluster layer (issue 19, docs/cluster.md)."""
