"""Connecting to Ray: local single-node by default, an existing cluster with an address."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit


class ClusterError(RuntimeError):
    """Ray cannot be started or reached; the message names the problem and the fix."""


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    local: bool
    nodes: int
    cpus: float
    gpus: float


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
        raise ClusterError(f"could not start or join {where} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    return _info(address or "local", local=address is None)


def _info(address: str, local: bool) -> ClusterInfo:
    import ray

    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return ClusterInfo(address=address, local=local, nodes=nodes, cpus=res.get("CPU", 0.0), gpus=res.get("GPU", 0.0))


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
