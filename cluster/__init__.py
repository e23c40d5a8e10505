"""Where it runs: a local single-node Ray, or an existing cluster by address."""

from cluster.connect import ClusterError, ClusterInfo, connect, disconnect

__all__ = ["ClusterError", "ClusterInfo", "connect", "disconnect"]
