"""Probe for the Ray overhead (issue 9): tunelab's loop in the driver, in a plain Ray actor's main thread, and in
a thread of that actor (as Ray Train V2 runs it), same data and config; s/epoch (median of epochs 2-4) per run.

    python benchmarks/ray_actor_probe.py driver actor-main actor-thread actor-thread actor-main driver
    python benchmarks/ray_actor_probe.py --threads 1 driver actor-thread     # torch threads on both sides (default 2)

Not part of `make bench`: a diagnostic whose figures are in RESULTS.md's ray-overhead notes.
"""

from __future__ import annotations

import statistics
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import scratch_root  # noqa: E402

MODES = ("driver", "actor-main", "actor-thread")


def loop(cfg, prepared, in_thread: bool) -> list[float]:
    """`run_training` here, or in a new thread of this process; each epoch's `epoch_time_s`."""
    from jobs.loop import run_training

    times: list[float] = []

    def train() -> None:
        run_training(cfg, prepared, report=lambda m, s: times.append(m["epoch_time_s"]))

    if in_thread:
        t = threading.Thread(target=train)
        t.start()
        t.join()
    else:
        train()
    return times


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    ap.add_argument("modes", nargs="*", metavar="MODE", help=f"any of {', '.join(MODES)}, in order (default: each once)")
    a = ap.parse_args()
    if any(m not in MODES for m in a.modes):
        ap.error(f"modes are {', '.join(MODES)}")
    threads, modes = a.threads, a.modes or list(MODES)
    import ray

    from jobs import data
    from jobs.config import make_config
    from jobs.step import MALLOC_ENV

    root = scratch_root("tl-probe-", ROOT / ".cache/mnist")
    cfg = make_config(dataset="mnist", model="cnn", epochs=4, subset=15000, cpus_per_worker=float(threads))
    prepared = data.prepare(data.load("mnist", root), cfg.labels, cfg.val_fraction, cfg.seed, cfg.subset)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    ref = ray.put(prepared)

    @ray.remote(num_cpus=threads, runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads), **MALLOC_ENV}})
    class Probe:
        def run(self, cfg, prepared, in_thread: bool) -> list[float]:
            return loop(cfg, prepared, in_thread)

    probe = Probe.remote()
    warm = cfg.model_copy(update={"epochs": 1})  # one untimed epoch on each side first
    ray.get(probe.run.remote(warm, ref, False))
    loop(warm, prepared, False)
    medians: dict[str, list[float]] = {}
    for mode in modes:
        if mode == "driver":
            times = loop(cfg, prepared, False)
        else:
            times = ray.get(probe.run.remote(cfg, ref, mode == "actor-thread"))
        medians.setdefault(mode, []).append(statistics.median(times[1:]))
        print(f"{mode}: {', '.join(f'{t:.2f}' for t in times)} s/epoch; median of 2-4 {medians[mode][-1]:.2f}", flush=True)
    print({m: round(statistics.median(v), 2) for m, v in medians.items()})
    ray.shutdown()


if __name__ == "__main__":
    main()
