"""A sweep on nodes that keep dying: what spot and preemptible nodes do to a sweep, and what it costs.

    python benchmarks/chaos_sweep.py                 # 16 trials x 10 epochs under chaos, then without; writes "chaos-sweep"
    python benchmarks/chaos_sweep.py --trials 8 --epochs 4 --no-baseline --no-write     # about the test's short form

A `ray.cluster_utils.Cluster` on this machine (`tunelab.cluster.chaos`): a head with no CPUs (it holds the drivers)
and three 1-CPU worker nodes; storage every node sees (a folder of this machine); the store on a real redis-server.
`tunelab sweep RECIPE --address … --storage …` runs as a user would run it, in its own process, while a chaos
thread removes a worker node that holds running trials every few seconds (SIGKILL of its raylet, object store and
workers) and adds a fresh one back after two seconds, as an autoscaler would. Once, midway, the sweep's driver is
SIGKILLed too, and `tunelab sweep resume NAME` finishes the sweep. Then:

- every trial completed or was stopped by the scheduler: none failed for the chaos;
- every trial's epochs 1..N are in the store exactly once (none lost, none stored twice);
- the leaderboard equals the one `tunelab results import` rebuilds from the storage alone (into another database).

The baseline is the same recipe on the same kind of cluster with no chaos and no driver kill: the wall-time
difference is what the chaos cost. The test `tests/cluster/test_chaos.py` runs `run()` in a short form.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
NAME = "chaos"


def recipe(trials: int, epochs: int, subset: int, scheduler: str = "fifo", max_failures: int = 20) -> dict:
    """The sweep every node loss hits: one-worker trials of 1 CPU, three at once (one per worker node)."""
    sched = {"type": "asha", "grace_period": 2, "reduction_factor": 2} if scheduler == "asha" else {"type": "fifo"}
    return {"name": NAME, "dataset": "mnist", "subset": subset, "budget": {"epochs": epochs, "samples": trials},
            "scheduler": sched, "search": {"algorithm": "random", "seed": 0},
            "resources": {"workers": 1, "cpus_per_worker": 1, "max_failures": max_failures},
            "max_concurrent": 3, "top_k_test": 1,
            "fixed": {"model": "cnn", "batch_size": 64, "precision": "fp32"},
            "space": {"lr": {"loguniform": [0.0005, 0.005]}}}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunelab.cli", *args]


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the driver and anything it started (it runs in its own session)
    except ProcessLookupError:
        pass


def run(workdir: Path, *, redis_url: str, mnist: Path, trials: int = 12, epochs: int = 8, subset: int = 1000,
        scheduler: str = "fifo", chaos: bool = True, every_s: tuple[float, float] = (6.0, 10.0),
        max_losses: Optional[int] = None, losses_by: Optional[float] = None, kill_driver_at: float = 0.4,
        seed: int = 0, say: Callable[[str], None] = print, timeout_s: float = 1500, cluster=None,
        data_root: Optional[Path] = None) -> dict:
    """One sweep on a fresh 3-worker-node cluster (or `cluster`, a `ChaosCluster`), under chaos (`chaos=True`: node
    losses, and the driver killed once when `kill_driver_at` of all epochs are in the store, then resumed) or without
    it; its report (see `check`). `losses_by`: once this share of the epochs is stored after the resume, the node
    losses of `max_losses` that random moments have not brought yet are brought at once (a test's count holds however
    fast the sweep runs). `data_root`: a data folder with MNIST already imported (else `mnist` is imported)."""
    import contextlib

    import yaml

    from tunelab.cluster.chaos import Chaos, ChaosCluster
    from tunelab.results import ResultStore

    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TUNELAB_DATA_DIR": str(data_root or workdir / "data"), "TUNELAB_REDIS_URL": redis_url,
           "RAY_ADDRESS": "", "TUNELAB_STORAGE": "", "PYTHONUNBUFFERED": "1"}
    if data_root is None:
        subprocess.run(_cli("data", "import", str(mnist)), env=env, check=True, capture_output=True, cwd=ROOT)
    spec_path = workdir / "recipe.yaml"
    spec_path.write_text(yaml.safe_dump(recipe(trials, epochs, subset, scheduler)))
    store = ResultStore.from_url(redis_url)
    storage = workdir / "exp"
    planned = trials * epochs
    logs: list[Path] = []

    def start(*args: str) -> subprocess.Popen:
        logs.append(workdir / f"driver{len(logs)}.log")
        return subprocess.Popen(_cli(*args), env=env, cwd=ROOT, stdout=logs[-1].with_suffix(".json").open("w"),
                                stderr=logs[-1].open("w"), start_new_session=True)

    def stored_epochs() -> int:
        runs = [r for r in store.list_runs() if r.get("name") == NAME]
        return sum(int(t.get("epochs_done") or 0) for t in store.run_trials(runs[0]["id"])) if runs else 0

    if cluster is None:
        say("starting a head and 3 worker nodes …")
    with contextlib.nullcontext(cluster) if cluster is not None else ChaosCluster(workers=3) as cluster:
        monkey = Chaos(cluster, every_s=every_s, max_losses=max_losses, seed=seed).start() if chaos else None
        t0 = time.monotonic()
        driver = start("sweep", str(spec_path), "--address", cluster.address, "--storage", str(storage), "--json")
        killed_at = None
        try:
            deadline = t0 + timeout_s
            while driver.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sweep did not end within {timeout_s:.0f} s; see {logs[-1]}")
                if (chaos and losses_by is not None and max_losses and len(monkey.losses) < max_losses
                        and killed_at is not None and stored_epochs() >= losses_by * planned):
                    monkey.hit()  # the losses random moments have not brought yet, now: a fast sweep still gets them
                if chaos and killed_at is None and stored_epochs() >= kill_driver_at * planned:
                    _kill_session(driver.pid)
                    driver.wait(60)
                    killed_at = round(time.monotonic() - t0, 1)
                    say(f"{killed_at:6.1f}s  driver killed (SIGKILL) with {stored_epochs()}/{planned} epochs stored; "
                        f"node losses so far: {len(monkey.losses)}; resuming")
                    driver = start("sweep", "resume", NAME, "--address", cluster.address, "--json")
                time.sleep(0.5)
            wall = time.monotonic() - t0
        finally:
            if driver.poll() is None:
                _kill_session(driver.pid)
            losses = monkey.stop() if monkey else []
        if driver.returncode != 0:
            raise RuntimeError(f"the sweep's driver exited {driver.returncode}: {logs[-1].read_text()[-3000:]}")
    out = logs[-1].with_suffix(".json").read_text()
    summary = json.JSONDecoder().raw_decode(out)[0] if out.startswith("{") else {}  # the last driver's `--json`
    for loss in losses:
        say(f"{loss.at_s:6.1f}s  node {loss.node[:8]} lost with {', '.join(sorted(set(loss.work)))}")
    report = check(store, redis_url, storage, trials=trials, epochs=epochs, env=env)
    report.update(wall_s=round(wall, 1), node_losses=len(losses), driver_kills=int(killed_at is not None),
                  driver_killed_at_s=killed_at, losses=[vars(x) for x in losses], chaos_errors=monkey.errors if monkey else [],
                  summary=summary, retries=_retries(storage))
    return report


def _retries(storage: Path) -> int:
    """How many times Tune started a trial again after losing it, from Tune's last saved state."""
    states = sorted((storage / NAME).glob("experiment_state-*.json"))
    if not states:
        return 0
    return sum(int(json.loads(meta).get("num_failures", 0))
               for _, meta in json.loads(states[-1].read_text())["trial_data"])


def check(store, redis_url: str, storage: Path, *, trials: int, epochs: int, env: dict) -> dict:
    """What the chaos left: trial statuses, epochs lost or stored twice, and whether `tunelab results import` of the
    storage into an empty database gives the same leaderboard."""
    from tunelab.results import ResultStore

    (run,) = [r for r in store.list_runs() if r.get("name") == NAME]
    ts = store.run_trials(run["id"])
    statuses: dict[str, int] = {}
    lost = duplicated = redone = 0
    for t in ts:
        statuses[t["status"]] = statuses.get(t["status"], 0) + 1
        stored = [e["epoch"] for e in store.epochs(t["id"])]
        want = list(range(1, (epochs if t["status"] == "completed" else int(t.get("epochs_done") or 0)) + 1))
        lost += len(set(want) - set(stored))
        duplicated += len(stored) - len(set(stored))
        rows = _result_rows(storage, t["id"].rsplit("-", 1)[-1])
        redone += max(0, len(rows) - len(set(rows)))
    other = redis_url.rsplit("/", 1)[0] + "/1"  # the same server, another database: rebuilt from storage alone
    fresh = ResultStore.from_url(other)
    fresh.r.flushdb()
    res = subprocess.run(_cli("results", "import", str(storage)), env={**env, "TUNELAB_REDIS_URL": other},
                         capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"results import failed: {res.stderr[-2000:]}")
    board, rebuilt = _board(store), _board(fresh)
    return {"trials": len(ts), "planned_trials": trials, "statuses": statuses, "epochs_stored": sum(
        len(store.epochs(t["id"])) for t in ts), "epochs_lost": lost, "epochs_duplicated": duplicated,
        "epochs_trained_again": redone, "leaderboard_rows": len(board), "leaderboards_equal": board == rebuilt,
        "leaderboard_diff": [(a, b) for a, b in zip(board, rebuilt) if a != b][:3], "run_status": run["status"]}


def _result_rows(storage: Path, tune_id: str) -> list[int]:
    """The epochs Tune recorded for a trial, every report counted (a trial started again repeats some)."""
    rows: list[int] = []
    for f in (storage / NAME).glob(f"*{tune_id}*/result.json"):
        rows += [json.loads(line).get("epoch") for line in f.read_text().splitlines() if line.strip()]
    return [r for r in rows if r is not None]


def _board(store) -> list[tuple]:
    keep = ("rank", "trial_id", "run_id", "model", "status", "epochs", "val_acc", "test_acc", "n_params")
    return [tuple(row.get(k) for k in keep) for row in store.leaderboard("mnist", limit=None)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="a folder with MNIST/raw (default: ../shared/data or .cache/mnist)")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--subset", type=int, default=3000)
    ap.add_argument("--scheduler", choices=["fifo", "asha"], default="asha")
    ap.add_argument("--every", type=float, nargs=2, default=(10.0, 16.0), metavar=("MIN_S", "MAX_S"),
                    help="seconds between node losses (random in this range)")
    ap.add_argument("--max-losses", type=int, default=None, help="end the chaos after this many node losses")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-baseline", action="store_true", help="skip the run without chaos")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the runs' files here (default: a scratch folder)")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the cluster's nodes are shut down on the way out

    from benchmarks._report import scratch_root, write_section
    from tunelab.cluster.head import free_port
    from tunelab.results.embedded import server_binary

    mnist = a.data or next((p for p in (ROOT.parent / "shared" / "data", ROOT / ".cache" / "mnist")
                            if (p / "MNIST" / "raw").is_dir()), None)
    if mnist is None:
        sys.exit("no MNIST: pass --data FOLDER (with MNIST/raw), or run `make mnist-cache`")
    tmp = a.workdir or scratch_root("tl-chaos-")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen([server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    say = lambda line: print(line, flush=True)  # noqa: E731
    try:
        chaos = run(tmp / "chaos", redis_url=url, mnist=mnist, trials=a.trials, epochs=a.epochs, subset=a.subset,
                    scheduler=a.scheduler, every_s=tuple(a.every), max_losses=a.max_losses, seed=a.seed, say=say)
        say(json.dumps({k: v for k, v in chaos.items() if k != "losses"}, default=str))
        base: Optional[dict] = None
        if not a.no_baseline:
            redis.Redis.from_url(url).flushall()
            base = run(tmp / "calm", redis_url=url, mnist=mnist, trials=a.trials, epochs=a.epochs, subset=a.subset,
                       scheduler=a.scheduler, chaos=False, seed=a.seed, say=say)
            say(json.dumps({k: v for k, v in base.items() if k != "losses"}, default=str))
    finally:
        server.terminate()
    if a.no_write:
        return
    cmd = (f"python benchmarks/chaos_sweep.py --trials {a.trials} --epochs {a.epochs} --subset {a.subset} "
           f"--scheduler {a.scheduler} --every {a.every[0]:g} {a.every[1]:g} --seed {a.seed}")
    rows = "\n".join(f"| {x['at_s']:.1f} | `{x['node'][:8]}` | "
                     f"{', '.join(sorted(set(x['work'])))} |" for x in chaos["losses"])
    extra = (f"{chaos['wall_s'] - base['wall_s']:+.1f} s ({100 * (chaos['wall_s'] / base['wall_s'] - 1):+.0f} %)"
             if base else "not measured (--no-baseline)")
    ok = (chaos["node_losses"] >= 3 and chaos["driver_kills"] == 1 and chaos["epochs_lost"] == 0
          and chaos["epochs_duplicated"] == 0 and chaos["leaderboards_equal"]
          and set(chaos["statuses"]) <= {"completed", "stopped"} and chaos["trials"] == a.trials)
    write_section("chaos-sweep", f"""## A sweep on dying nodes (issue 18)

Command: `{cmd}`

A head (0 CPUs: drivers only) and 3 worker nodes of 1 CPU (`ray.cluster_utils.Cluster`, `tunelab.cluster.chaos`),
shared storage (a folder of this machine), a real redis-server. {a.trials} one-worker `cnn` trials x {a.epochs} epochs on
{a.subset:,} MNIST images, {a.scheduler}, 3 at once; `resources.max_failures: 20`. A node holding running trials is
SIGKILLed every {a.every[0]:g}–{a.every[1]:g} s and a fresh one added 2 s later; the driver is SIGKILLed once with 40 % of
the epochs stored, and `tunelab sweep resume` finishes the sweep.

| what | under chaos | without (baseline) |
| --- | ---: | ---: |
| node losses survived | **{chaos['node_losses']}** | 0 |
| driver kills (then `sweep resume`) | **{chaos['driver_kills']}** (at {chaos['driver_killed_at_s']} s) | 0 |
| trials: completed / stopped by ASHA / failed | {chaos['statuses'].get('completed', 0)} / {chaos['statuses'].get('stopped', 0)} / {chaos['statuses'].get('failed', 0)} | {' / '.join(str((base or {}).get('statuses', {}).get(k, 0)) for k in ('completed', 'stopped', 'failed')) if base else '—'} |
| trial restarts from a checkpoint (Tune's count) | {chaos['retries']} | {base['retries'] if base else '—'} |
| epochs stored | {chaos['epochs_stored']} | {base['epochs_stored'] if base else '—'} |
| **epochs lost / stored twice** | **{chaos['epochs_lost']} / {chaos['epochs_duplicated']}** | {f"{base['epochs_lost']} / {base['epochs_duplicated']}" if base else '—'} |
| epochs trained again (reported since the trial's last checkpoint Tune knew of) | {chaos['epochs_trained_again']} | {base['epochs_trained_again'] if base else '—'} |
| leaderboard equal to the one `tunelab results import` rebuilds | **{chaos['leaderboards_equal']}** ({chaos['leaderboard_rows']} rows) | {base['leaderboards_equal'] if base else '—'} |
| sweep wall time, first start to last driver's end | {chaos['wall_s']:.1f} s | {f"{base['wall_s']:.1f} s" if base else '—'} |

**Extra wall time the chaos cost: {extra}.** Acceptance (≥ 3 node losses, 1 driver kill, 0 epochs lost or
duplicated, leaderboards equal, no trial failed): **{'met' if ok else 'NOT met'}**.

Node losses (seconds since the sweep started; what ran on the node):

| at s | node | Ray workers on it |
| ---: | --- | --- |
{rows}
""")


if __name__ == "__main__":
    main()
