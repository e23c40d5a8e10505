"""Where a run goes, settled before its data loads: the store it can reach, the Ray it uses (an address, the warm head
`tunelab cluster start` runs, a local Ray, or none), and whether what it asks for fits there."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tunelab.errors import InputError
from tunelab.jobs.lifecycle import Progress
from tunelab.settings import Settings


def store_url(settings: Settings, *, remote: Optional[str] = None) -> str:
    """The Redis URL a run's results go to: TUNELAB_REDIS_URL, else the embedded server (started if needed). `remote`
    names a cluster on other machines that the run uses; it cannot reach the embedded server's unix socket."""
    if settings.redis_url:
        return settings.redis_url
    if remote:
        raise InputError(f"{remote} cannot reach the embedded result store on this machine; set TUNELAB_REDIS_URL to "
                         "a Redis both can reach (e.g. redis://:PASSWORD@HOST:6379/0)")
    from tunelab.results import embedded

    return embedded.ensure_running(settings.data_dir)


def open_run_store(settings: Settings, address: Optional[str]):
    """The store a run records into; a remote `address` needs a shared one (InputError otherwise)."""
    from tunelab.results import ResultStore

    return ResultStore.from_url(store_url(settings, remote="a remote cluster" if address else None))


def check_fits(info, per_worker: dict, workers: int, own: dict, knobs, what: str, unit: str,
               progress: Progress, nodes=None):
    """Refuse at once (ClusterError, one line) what this fixed-size cluster can never run; on an autoscaling
    cluster, start saying every PENDING_REPORT_S what waits for resources. The event that stops those lines."""
    from tunelab.cluster import check_fits as refuse_unless_fits
    from tunelab.cluster import report_pending

    refuse_unless_fits(per_worker, workers, info, knobs=knobs, own=own, what=what, nodes=nodes)
    if info.autoscaling:
        return report_pending(per_worker, unit, progress.line)
    return None


def local_check(per_worker: dict, workers: int, own: dict, knobs, what: str, unit: str, progress: Progress,
                info=None):
    """`check_fits` against this machine (`info`: `cluster.local_info()`, read here unless the caller has it), before
    Ray starts (a local Ray would offer exactly this)."""
    from tunelab.cluster import local_info

    info = info or local_info()
    return info, check_fits(info, per_worker, workers, own, knobs, what, unit, progress,
                            nodes=[{"CPU": info.cpus, "GPU": info.gpus}])


def connect(address: Optional[str], head: Optional[str], progress: Progress):
    """Join `address` or the warm head, else start a local Ray; what the cluster offers."""
    from tunelab.cluster import connect as join

    progress.line(f"using the running Ray head at {head} …" if head else
                  "starting Ray …" if not address else f"connecting to Ray at {address} …")
    return join(address or head)


def train_knobs():
    """How `tunelab train`'s user sets a run's resources: its flags (the keyword arguments of the same names)."""
    from tunelab.cluster import Knobs

    return Knobs("--workers", "--cpus-per-worker", "--gpus-per-worker")


def recipe_knobs(recipe: Optional[Path]):
    """How a sweep's user sets its resources: keys of its recipe file."""
    from tunelab.cluster import Knobs

    where = f"in {recipe}".replace("{", "{{").replace("}", "}}") if recipe else \
        "in the recipe and run it as a new sweep (`tunelab sweep SPEC --name NEW`)"
    return Knobs("resources.workers", "resources.cpus_per_worker", "resources.gpus_per_worker",
                 setting="{knob}: {value}", advice="set {settings} " + where)
