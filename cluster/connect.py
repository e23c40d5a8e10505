"""Connecting to Ray: local single-node by default, an existing cluster with an address."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from tunelab.cluster.errors import ClusterError
from tunelab.errors import exception_line


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    local: bool
    nodes: int
    cpus: float
    gpus: float
    autoscaling: bool = False  # an autoscaler may add nodes: a request beyond today's nodes waits rather than fails


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast (instead of Ray's long retries) when host:port of `address` does not answer."""
    if address == "auto":
        return
    target = address if "://" in address else f"ray://{address}"
    try:
        parts = urlsplit(target)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ClusterError(f"Ray address {address!r} is not host:port; pass e.g. --address 10.0.0.5:6379 or ray://head:10001")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise ClusterError(f"cannot reach the Ray cluster at {host}:{port} ({e.strerror or e}); check --address / RAY_ADDRESS and that the head is up") from None


def connect(address: Optional[str] = None, *, num_cpus: Optional[int] = None, num_gpus: Optional[int] = None) -> ClusterInfo:
    """Start (no address) or join (address, or RAY_ADDRESS) a Ray cluster; what it offers."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return _info(address or "local", local=address is None)
    try:
        if address:
            check_reachable(address)
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(
                address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                logging_level=logging.ERROR, log_to_driver=False,
            )
    except ClusterError:
        raise
    except Exception as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ClusterError(f"could not start or join {where} ({exception_line(e, limit=200)})") from None
    return _info(address or "local", local=address is None)


IN_PROCESS = "in-process"  # ClusterInfo.address of a run that trains in the calling process, without Ray


def local_info() -> ClusterInfo:
    """This machine as a one-node cluster, counted as Ray counts a node (CPUs, GPUs visible to this process), for a
    run that trains in this process without starting Ray."""
    from ray._private.accelerators import get_accelerator_manager_for_resource
    from ray._private.utils import get_num_cpus

    gpus = get_accelerator_manager_for_resource("GPU").get_current_node_num_accelerators()
    return ClusterInfo(address=IN_PROCESS, local=True, nodes=1, cpus=float(get_num_cpus()), gpus=float(gpus))


def running_head(data_dir) -> Optional[str]:
    """The GCS address of the Ray head `tunelab cluster start` runs on this machine (recorded under `data_dir`),
    if it is up: commands without an address use it, and its warm workers, instead of starting a Ray of their own."""
    from tunelab.cluster.head import is_running, read_state

    info = read_state(data_dir)
    if info is None or not is_running(info):
        return None
    if info.token:  # the head asks for Ray's token, as `cluster start` set it up
        from tunelab.cluster.auth import enable_token_auth

        enable_token_auth()
    return info.gcs_address


def _info(address: str, local: bool) -> ClusterInfo:
    import ray

    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return ClusterInfo(address=address, local=local, nodes=nodes, cpus=res.get("CPU", 0.0), gpus=res.get("GPU", 0.0),
                       autoscaling=can_autoscale(local))


def can_autoscale(local: bool = False) -> bool:
    """Whether an autoscaler may add nodes to the connected cluster; `TUNELAB_AUTOSCALING=1` or `0` overrides.

    Ray says so in three places: the cluster config an autoscaler reports to the GCS (node groups with room to
    grow); the node-group label that nodes of a cluster launcher or KubeRay cluster carry (autoscaler v2, the
    default since Ray 2.50); and autoscaler v1's status, which names nodes by their configured type. A local
    `ray.init()` and heads or workers started by hand (`ray start`, `tunelab cluster start`) have none of them:
    their size is fixed. (A launcher cluster whose node types cannot grow still counts as autoscaling.)"""
    forced = os.environ.get("TUNELAB_AUTOSCALING", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if local:
        return False
    import ray

    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # not offered here (e.g. through Ray Client): the other signals decide
        config = None
    if config is not None and config.node_group_configs:
        return any(g.max_count == -1 or g.max_count > g.min_count
                   for g in config.node_group_configs if g.resources and g.max_count != 0)
    group = getattr(ray._raylet, "RAY_NODE_GROUP_KEY", "ray.io/node-group")
    if any((n.get("Labels") or {}).get(group) for n in ray.nodes() if n.get("Alive")):
        return True
    try:
        import json

        from ray.autoscaler._private.util import format_readonly_node_type
        from ray.experimental.internal_kv import _internal_kv_get

        status = json.loads(_internal_kv_get(b"__autoscaling_status") or b"{}")
    except Exception:
        return False
    # without an autoscaling config the monitor runs read-only and names each node "node_<id>"
    mapping = (status.get("autoscaler_report") or {}).get("node_type_mapping") or {}
    return any(kind != format_readonly_node_type(node) for node, kind in mapping.items())


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
