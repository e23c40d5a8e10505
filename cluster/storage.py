"""Storage that every node of a multi-node cluster can reach, or a clear refusal.

Ray Train and Tune write checkpoints and results to one storage path from every node, so on more than one
node it must be shared: a cloud URI (s3://, gs://, …) or a filesystem every node mounts (NFS, …).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tunelab.cluster.connect import ClusterError, ClusterInfo

FIX = "pass --storage s3://BUCKET/PATH, gs://BUCKET/PATH or a path every node mounts (or set TUNELAB_STORAGE)"


SCHEMES = ("s3", "gs", "gcs", "hdfs", "abfs", "abfss", "file")  # what Ray's storage (pyarrow.fs) can write to


def check_uri(storage: str) -> None:
    """Refuse a storage location Ray cannot write to, before anything runs (ClusterError, one line)."""
    if "://" not in storage:
        if not storage.strip():
            raise ClusterError(f"--storage is empty; {FIX}")
        return
    scheme = storage.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ClusterError(f"--storage {storage}: Ray cannot store checkpoints at a {scheme}:// URI; {FIX}")
    if not storage.split("://", 1)[1].strip("/"):
        raise ClusterError(f"--storage {storage} names no bucket or path; e.g. {scheme}://BUCKET/tunelab")


def check_shared(storage: str, explicit: bool, info: ClusterInfo) -> None:
    """Refuse node-local storage on a multi-node cluster (ClusterError, one line naming the fix)."""
    if info.nodes <= 1 or "://" in storage:
        return
    if not explicit:
        raise ClusterError(f"this Ray cluster has {info.nodes} nodes and the default storage {storage} is on this "
                           f"node only; {FIX}")
    missing = nodes_missing(storage)
    if missing:
        raise ClusterError(f"storage {storage} is not visible from {len(missing)} of {info.nodes} nodes "
                           f"({', '.join(missing[:3])}); {FIX}")


def nodes_missing(storage: str) -> list[str]:
    """IPs of the alive nodes that cannot see a marker file written to `storage` from here."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    root = Path(storage)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / f".tunelab-shared-{secrets.token_hex(4)}"
    marker.write_text("tunelab checks that every node sees this storage\n")

    @ray.remote(num_cpus=0)
    def sees(path: str) -> bool:
        import os

        return os.path.exists(path)

    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        checks = [sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(str(marker))
                  for n in nodes]
        ray.wait(checks, num_returns=len(checks), timeout=60)
        missing = []
        for n, check in zip(nodes, checks):
            try:
                ok = ray.get(check, timeout=0)
            except (ray.exceptions.TaskUnschedulableError, ray.exceptions.NodeDiedError,
                    ray.exceptions.WorkerCrashedError):
                continue  # the node left the cluster meanwhile (preempted, scaled down): nothing to check there
            except ray.exceptions.GetTimeoutError:
                ok = False  # no answer within a minute: not shown to see it
            if not ok:
                missing.append(n.get("NodeManagerAddress", n["NodeID"][:8]))
        return missing
    finally:
        marker.unlink(missing_ok=True)
