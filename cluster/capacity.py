"""Whether a request fits the cluster's nodes. What a fixed-size cluster can never place is refused at once, in one
line naming the setting behind it; on a cluster that can autoscale nothing is refused, and what waits is said now
and then (Ray Tune and Train would otherwise wait for it in silence, for ever)."""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional

from tunelab.cluster.connect import IN_PROCESS, ClusterError, ClusterInfo

PENDING_REPORT_S = 30.0  # how often a run on an autoscaling cluster says what still waits for resources
_EPS = 1e-4  # Ray counts resources in units of 1/10,000


@dataclass(frozen=True)
class Knobs:
    """How the user sets a request: the names of its three settings, and how a fix gives them values."""

    workers: str
    cpus: str
    gpus: str
    setting: str = "{knob} {value}"  # one setting with its value, e.g. "--workers 2" or "resources.workers: 2"
    advice: str = "pass {settings}"  # the fix around the settings (joined by "and"), e.g. "set {settings} in FILE"

    def fix(self, values: list[tuple[str, float]]) -> str:
        return self.advice.format(settings=" and ".join(self.setting.format(knob=k, value=f"{v:g}") for k, v in values))


def node_resources() -> list[dict[str, float]]:
    """The CPUs and GPUs of each alive node of the connected cluster (totals, not what is free now)."""
    import ray

    return [{k: float(n["Resources"].get(k, 0.0)) for k in ("CPU", "GPU")} for n in ray.nodes() if n.get("Alive")]


def _per_node(per_worker: dict[str, float], node: dict[str, float]) -> int:
    return min((math.floor(node.get(k, 0.0) / v + _EPS) for k, v in per_worker.items() if v > 0), default=0)


def capacity(per_worker: dict[str, float], nodes: list[dict[str, float]],
             own: Optional[dict[str, float]] = None) -> int:
    """How many workers asking for `per_worker` each the nodes hold at once, with `own` (what drives them, e.g. a
    trial's actor) placed on one of them."""
    def held(host: Optional[int]) -> int:
        return sum(_per_node(per_worker, {k: v - (own or {}).get(k, 0.0) for k, v in n.items()} if i == host else n)
                   for i, n in enumerate(nodes))

    if not own:
        return held(None)
    hosts = [i for i, n in enumerate(nodes) if all(n.get(k, 0.0) + _EPS >= v for k, v in own.items())]
    return max((held(i) for i in hosts), default=0)


def _amount(value: float, unit: str) -> str:
    return f"{value:g} {unit}{'s' if value > 1 else ''}"


def _braces(res: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in res.items()) + "}"


def _describe(nodes: list[dict[str, float]]) -> str:
    cpus, gpus = sum(n["CPU"] for n in nodes), sum(n["GPU"] for n in nodes)
    return (f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}: {_amount(cpus, 'CPU')}, "
            f"{_amount(gpus, 'GPU') if gpus else 'no GPU'}")


def check_fits(per_worker: dict[str, float], workers: int, info: ClusterInfo, *, knobs: Knobs,
               own: Optional[dict[str, float]] = None, what: str = "this run",
               nodes: Optional[list[dict[str, float]]] = None) -> None:
    """Refuse what this fixed-size cluster can never place: `workers` workers asking for `per_worker` each
    (`{"CPU": …, "GPU": …}`) all at once, beside `own`. ClusterError, one line naming `knobs` and the fix.

    On a cluster that can autoscale (`info.autoscaling`) nothing is refused: nodes may come. `nodes` (each node's
    {"CPU", "GPU"}) defaults to the connected Ray cluster's."""
    if info.autoscaling:
        return
    nodes = node_resources() if nodes is None else nodes  # given: a run in this process, without Ray
    if not nodes:
        return
    cpu, gpu = per_worker.get("CPU", 0.0), per_worker.get("GPU", 0.0)
    most_cpu, most_gpu = max(n["CPU"] for n in nodes), max(n["GPU"] for n in nodes)
    problems: list[str] = []
    settings: list[tuple[str, float]] = []
    fix = None
    if gpu > 0 and most_gpu == 0:
        problems.append(f"{knobs.gpus} {gpu:g} asks for a GPU and no node has one")
        settings.append((knobs.gpus, 0))
    elif gpu > most_gpu + _EPS:
        problems.append(f"{knobs.gpus} {gpu:g} is more GPUs than any node has ({most_gpu:g})")
        settings.append((knobs.gpus, most_gpu))
    if cpu > most_cpu + _EPS:
        problems.append(f"{knobs.cpus} {cpu:g} is more CPUs than any node has ({most_cpu:g})")
        settings.append((knobs.cpus, most_cpu))
    if not problems and not any(_per_node(per_worker, n) for n in nodes):
        problems.append(f"no node has {_amount(cpu, 'CPU')} and {_amount(gpu, 'GPU')} together")
        fix = f"lower {knobs.cpus} or {knobs.gpus}"
    if not problems:
        held = capacity(per_worker, nodes, own)
        if held >= workers:
            return
        each = " and ".join(_amount(v, k) for k, v in per_worker.items() if v > 0)
        total = " and ".join(_amount(v * workers, k) for k, v in per_worker.items() if v > 0)
        beside = f", plus {' and '.join(_amount(v, k) for k, v in own.items())} to drive them" if own else ""
        problems.append(f"{knobs.workers} {workers} needs {total} at once ({each} each{beside}) and the cluster "
                        f"holds {held} such worker{'s' if held != 1 else ''}")
        if held >= 1:
            settings.append((knobs.workers, held))
        else:
            fix = f"lower {knobs.cpus}"
    gpu_less = gpu > 0 and most_gpu == 0
    fix = knobs.fix(settings) if settings else fix
    tail = " to train on CPUs, or run on a cluster with GPUs" if gpu_less else ", or run on a larger cluster"
    where = "this machine" if info.address == IN_PROCESS else "this Ray cluster"
    raise ClusterError(f"{where} ({_describe(nodes)}) cannot hold {what}: {', '.join(problems)}; {fix}{tail}")


def _shape(bundle: dict[str, float]) -> tuple:
    return tuple(sorted((k, round(float(v), 4)) for k, v in bundle.items() if v > 0))


def pending_line(need: dict[str, float], what: str) -> Optional[str]:
    """One line saying what waits for resources on the connected cluster, or None when nothing does: the `what`s
    asking for `need` each first, then any other request."""
    import ray
    from ray.autoscaler.v2.sdk import get_cluster_status

    status = get_cluster_status(ray.get_runtime_context().gcs_address)
    demand = status.resource_demands
    shapes: Counter = Counter()
    for request in [*demand.placement_group_demand, *demand.ray_task_actor_demand]:
        for b in request.bundles_by_count:
            shapes[_shape(b.bundle)] += b.count
    if not shapes:
        return None
    ours = _shape(need)
    parts = [f"{n} {what}{'s' if n != 1 else ''} pending, each needs {_braces(dict(shape))}"
             for shape, n in shapes.items() if shape == ours]
    parts += [f"{n} × {_braces(dict(shape))} pending" for shape, n in shapes.items() if shape != ours]
    has = {u.resource_name: u.total for u in status.cluster_resource_usage if u.resource_name in ("CPU", "GPU")}
    return f"waiting for resources: {'; '.join(parts)}; the cluster has {_braces(has)} (an autoscaler may add nodes)"


def report_pending(need: dict[str, float], what: str, write: Callable[[str], None],
                   every_s: float = PENDING_REPORT_S) -> threading.Event:
    """Say through `write`, every `every_s` seconds, what waits for resources (`pending_line`); set the returned
    event to stop."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every_s):
            try:
                line = pending_line(need, what)
            except Exception:  # a status Ray cannot give now (e.g. through Ray Client) costs only this line
                continue
            if line and not stop.is_set():
                write(line)

    threading.Thread(target=run, name="tunelab-pending", daemon=True).start()
    return stop
