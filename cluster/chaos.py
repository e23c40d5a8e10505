"""Nodes that die under a running sweep, on one machine: what spot and preemptible GPU nodes do to a sweep, as a
`ray.cluster_utils.Cluster` (a head and several worker nodes, each its own raylet and object store) and a `Chaos`
thread that removes a worker node holding trials at random moments and adds a fresh one back, as an autoscaler
would. Ray tests itself the same way (its chaos release tests kill nodes at random while workloads run).

    with ChaosCluster(workers=3) as c:            # head with no CPUs: trials run on the worker nodes only
        chaos = Chaos(c, every_s=(8, 15), seed=0).start()
        subprocess.run(["tunelab", "sweep", SPEC, "--address", c.address, "--storage", SHARED_DIR])
        chaos.stop()
        print(chaos.losses)                        # [NodeLoss(at_s, node, trials), …]

Used by the chaos test (tests/cluster/test_chaos.py) and benchmark (benchmarks/chaos_sweep.py).
"""

from __future__ import annotations

import atexit
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

# A node's death is noticed in ~3 s (Ray's default: 5 missed health checks 3 s apart, ~15 s, during which a
# sweep waits for trials that no longer run).
FAST_FAILURE_DETECTION = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                          "health_check_failure_threshold": 3}
# Ray workers of a node that do no one's work: idle pooled workers and the node's own agents.
_IDLE = ("ray::IDLE",)
_AGENT = "Agent"


@dataclass
class NodeLoss:
    at_s: float  # seconds since the chaos started
    node: str  # the lost node's id
    work: list[str] = field(default_factory=list)  # titles of the Ray workers that ran on it


class ChaosCluster:
    """A head (no CPUs unless `head_cpus`: it holds the drivers and the object store of their data) and `workers`
    worker nodes of `cpus_per_node` CPUs each, all on this machine. Node deaths are noticed within ~3 s."""

    def __init__(self, workers: int = 3, cpus_per_node: float = 1, head_cpus: float = 0,
                 object_store_mb: int = 150):
        from ray.cluster_utils import Cluster

        self.cpus_per_node = cpus_per_node
        self._node_args = {"num_cpus": cpus_per_node, "object_store_memory": object_store_mb << 20}
        # Ray's own exit hooks set signal handlers, which only the main thread may do: the chaos thread adds nodes,
        # so this cluster is shut down by `shutdown` (or at exit) instead
        self.cluster = Cluster(initialize_head=True, shutdown_at_exit=False, head_node_args={
            "num_cpus": head_cpus, "include_dashboard": False, "object_store_memory": object_store_mb << 20,
            "_system_config": FAST_FAILURE_DETECTION})
        self.lock = threading.Lock()
        for _ in range(workers):
            self.cluster.add_node(**self._node_args)
        self.cluster.wait_for_nodes()
        atexit.register(self.shutdown)

    @property
    def address(self) -> str:
        return self.cluster.address

    def workers(self) -> list:
        return list(self.cluster.worker_nodes)

    def work_on(self, node) -> list[str]:
        """Titles of the busy Ray worker processes of `node` (Tune trials, Train workers and controllers)."""
        import psutil

        titles = []
        for proc in node.all_processes.get("raylet", []):
            try:
                for child in psutil.Process(proc.process.pid).children(recursive=True):
                    cmd = " ".join(child.cmdline())
                    if cmd.startswith("ray::") and not cmd.startswith(_IDLE) and _AGENT not in cmd.split(" ")[0]:
                        titles.append(cmd.split(" ")[0])
            except psutil.Error:
                continue  # the node or the worker is going away
        return titles

    def remove(self, node) -> None:
        """Kill every process of `node` at once (SIGKILL: a preempted machine does not shut down cleanly)."""
        with self.lock:
            self.cluster.remove_node(node, allow_graceful=False)

    def add(self):
        """A fresh worker node, as an autoscaler replaces a lost one."""
        with self.lock:
            return self.cluster.add_node(**self._node_args)

    def shutdown(self) -> None:
        with self.lock:
            if self.cluster.head_node is not None:
                self.cluster.shutdown()

    def __enter__(self) -> "ChaosCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


class Chaos:
    """A thread that, every `every_s` (a random span in that range), removes one worker node that holds busy Ray
    workers, then after `down_s` adds a fresh node back. `max_losses` ends it; `pause()` / `resume()` hold it
    (while the sweep's driver is down, say)."""

    def __init__(self, cluster: ChaosCluster, every_s: tuple[float, float] = (8.0, 15.0), down_s: float = 2.0,
                 max_losses: Optional[int] = None, seed: Optional[int] = None):
        self.c, self.every_s, self.down_s, self.max_losses = cluster, every_s, down_s, max_losses
        self.rng = random.Random(seed)
        self.losses: list[NodeLoss] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one removal at a time, from this thread or a caller's `hit`
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="chaos", daemon=True)
        self.t0 = time.monotonic()

    def start(self) -> "Chaos":
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> list[NodeLoss]:
        self._stop.set()
        self._running.set()
        self._thread.join(120)
        return self.losses

    def hit(self) -> bool:
        """Remove one worker node that holds busy Ray workers now, and after `down_s` add a fresh one back; whether a
        node was removed (none is busy, or `max_losses` reached: no)."""
        with self._lock:
            if self.max_losses is not None and len(self.losses) >= self.max_losses:
                return False
            busy = [(n, w) for n in self.c.workers() if (w := self.c.work_on(n))]
            if not busy:
                return False  # nothing to hit now (between trials, or while Ray restarts them)
            node, work = self.rng.choice(busy)
            try:
                self.c.remove(node)
                self.losses.append(NodeLoss(round(time.monotonic() - self.t0, 1), node.node_id, work))
                self._stop.wait(self.down_s)
                self.c.add()
            except Exception as e:
                self.errors.append(f"{type(e).__name__}: {e}")
            return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._stop.wait(self.rng.uniform(*self.every_s)):
                return
            self._running.wait()
            if self._stop.is_set():
                return
            self.hit()
            if self.max_losses is not None and len(self.losses) >= self.max_losses:
                return
