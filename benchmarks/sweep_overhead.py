"""Per-trial overhead of single-worker sweep trials: the wall time of a trial beyond its own training time.

    python benchmarks/sweep_overhead.py --data .cache/mnist     # writes the "sweep-overhead" section

A FIFO sweep of N one-epoch trials on a small real-MNIST subset, one trial at a time. Overhead per trial =
(sweep wall time - the trials' own training time) / N; the part between the Tune callback's trial start and
end is shown beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import scratch_root, write_section


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--subset", type=int, default=2000)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()

    import ray

    from tunelab import search_spaces
    from tunelab.cluster import connect
    from tunelab.jobs import data
    from tunelab.jobs.sweep import run_sweep
    from tunelab.results import open_store
    from tunelab.search_spaces import to_tune

    tmp = scratch_root("tl-bench-sweep-", a.data)
    spec_path = tmp / "overhead.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "overhead", "dataset": "mnist", "subset": a.subset, "budget": {"epochs": 1, "samples": a.trials},
        "scheduler": {"type": "fifo"}, "max_concurrent": 1, "top_k_test": 0,
        "fixed": {"model": "cnn", "batch_size": 128}, "space": {"lr": {"loguniform": [0.0005, 0.005]}},
    }))
    spec = search_spaces.load(spec_path)
    store = open_store(None, tmp)
    info = connect(None)
    spec = spec.model_copy(update={"resources": spec.resources.model_copy(update={"cpus_per_worker": info.cpus})})
    ref = ray.put(data.prepare(data.load("mnist", tmp), "fine", 0.1, 0, a.subset))
    rows = []
    for reuse in (False, True):  # baseline: a fresh Ray actor (process) per trial; tunelab's default reuses them
        run_id = f"bench-{reuse}"
        named = spec.model_copy(update={"name": f"overhead-{reuse}"})
        store.start_run(run_id, kind="sweep", name=named.name, dataset="mnist", labels="fine", config={})
        t0 = time.monotonic()
        run_sweep(named, to_tune(named), store, run_id, ref, str(tmp / "exp"), reuse_actors=reuse)
        wall = time.monotonic() - t0
        overheads, trains = [], []
        for t in store.run_trials(run_id):
            train = store.epochs(t["id"])[-1]["time_total_s"]
            overheads.append(t["ended"] - t["started"] - train)
            trains.append(train)
        rows.append((reuse, len(trains), trains, overheads, wall))
        print(f"reuse_actors={reuse}: wall {wall:.1f}s", flush=True)
    body = "\n".join([
        "## Sweep: per-trial overhead of single-worker trials (issue 5)",
        "",
        f"Command: `{' '.join(['python benchmarks/sweep_overhead.py', *sys.argv[1:]])}`",
        "",
        f"FIFO sweep, {a.trials} one-epoch `cnn` trials on {a.subset:,} real MNIST images, one trial at a time "
        f"with all {info.cpus:g} CPUs, local Ray. Overhead = trial start -> end as the driver's Tune callback saw "
        f"it, minus the loop's own time (model build to last report).",
        "",
        "| trial processes | training s / trial (median) | (sweep wall − all training) / trial | inside the trial: start→end − training (median) | sweep wall s |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {'reused (tunelab default)' if reuse else 'one per trial (Tune default)'} | {statistics.median(tr):.2f} | "
          f"**{(w - sum(tr)) / n:.2f}** | {statistics.median(ov):.2f} | {w:.1f} |" for reuse, n, tr, ov, w in rows],
        "",
        "The first column of overhead is what a user waits for beyond training (Tune's start-up included, spread "
        "over the trials); the second is the part between the callback's trial start and end.",
    ])
    print(body)
    if not a.no_write:
        write_section("sweep-overhead", body)


if __name__ == "__main__":
    main()
