"""Fixed costs of `tunelab train`: process start to the first training step, in its own process (no Ray: the default
without a cluster), under a local Ray (`--ray`) and on a warm head (`tunelab cluster start`), beside the bare loop's.

    python benchmarks/fixed_costs.py --data .cache/mnist     # writes the "fixed-costs" section
    python benchmarks/fixed_costs.py --data .cache/mnist --repeats 1 --no-write    # a quick look

Runs the real CLI as a subprocess (`tunelab train --dataset mnist --model cnn --epochs 2 --subset N --json`, and
the same with `--ray`; TUNELAB_DATA_DIR a fresh data root with its embedded Redis already up), alternating with the
bare loop started
the way a plain PyTorch user would (`python -c` that imports `jobs.loop.run_training`, loads the same data and
trains the same config), and times each from outside, from the moment it is spawned:

- the CLI's progress lines on stderr (the first one after imports, config, store and model check: "starting Ray …"
  with `--ray`, else "loading …"; with `--ray`, "loading …" once Ray is up; "run …" once the data is loaded and
  split and the run recorded), the first epoch's `recorded_at`;
- the loop's start, taken as the first epoch's report time minus its `time_total_s` (which the loop counts from
  just before its first step), so it carries one report's latency (for the CLI: checkpoint save, Ray's report,
  the store write);
- the first step's end exactly, where the loop writes it to the file named by TUNELAB_TRACE_FIRST_STEP (set for
  both sides; the column stays empty while the loop has no such hook).

The per-trial overhead of sweep trials is `benchmarks/sweep_overhead.py`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import scratch_root, write_section
from tunelab.cluster.head import free_port

ROOT = Path(__file__).resolve().parent.parent

# The bare loop as a user would start it: one process, imports, data, run_training. Prints one JSON line per event.
BARE = """
import json, sys, time
from pathlib import Path
from tunelab.jobs import data
from tunelab.jobs.config import make_config
from tunelab.jobs.loop import run_training

def say(event, **kw):
    print(json.dumps({"event": event, "at": time.time(), **kw}), flush=True)

say("imported")
root, model, subset, epochs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = make_config(dataset="mnist", model=model, epochs=epochs, subset=subset)
prepared = data.prepare(data.load("mnist", root), cfg.labels, cfg.val_fraction, cfg.seed, cfg.subset)
say("data")
run_training(cfg, prepared, report=lambda m, s: say("epoch", epoch=m["epoch"], time_total_s=m["time_total_s"],
                                                   epoch_time_s=m["epoch_time_s"], threads=cfg.threads_per_worker()))
"""

MILESTONES = [
    ("ready", "imports, config, store and model check done (CLI: its first progress line)"),
    ("ray_up", "Ray up (`--ray`: `loading …` printed after `starting Ray …`)"),
    ("data", "data loaded and split, run recorded (CLI: `run …` printed)"),
    ("loop_start", "**training loop starts** (first epoch's report − its `time_total_s`)"),
    ("first_step", "first step done (TUNELAB_TRACE_FIRST_STEP)"),
    ("epoch1", "first epoch reported"),
    ("exit", "process exits (2 epochs, test evaluation, Ray shut down)"),
]


COLUMNS = {"cli": "`tunelab train` (in its process)", "ray": "`tunelab train --ray`",
           "head": "`tunelab train` on a warm head", "bare": "bare loop"}


def _pump(stream, lines: list, echo: bool) -> None:
    for line in iter(stream.readline, ""):
        lines.append((time.time(), line.rstrip("\n")))
        if echo:
            print(f"    {line.rstrip()}", flush=True)


def _spawn(cmd: list[str], env: dict, echo: bool) -> tuple[float, float, int, list, list]:
    """Run `cmd`; its spawn time, exit time, exit code, and (time, line) pairs of stdout and of stderr."""
    out: list = []
    err: list = []
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    threads = [threading.Thread(target=_pump, args=(p.stdout, out, False), daemon=True),
               threading.Thread(target=_pump, args=(p.stderr, err, echo), daemon=True)]
    for t in threads:
        t.start()
    rc = p.wait()
    t_exit = time.time()
    for t in threads:
        t.join(10)
    return t0, t_exit, rc, out, err


def _first_step(trace: Path) -> float | None:
    try:
        return float(trace.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def run_cli(root: Path, env: dict, a, store, trace: Path, ray: bool = False, head: bool = False) -> dict:
    exe = Path(sys.executable).parent / "tunelab"
    cmd = [str(exe), "train", "--dataset", "mnist", "--model", a.model, "--epochs", "2", "--subset", str(a.subset),
           "--json", *(["--ray"] if ray else [])]
    t0, t_exit, rc, out, err = _spawn(cmd, env, echo=True)
    if rc != 0:
        raise SystemExit(f"tunelab train exited {rc}:\n" + "\n".join(line for _, line in err[-20:]))
    record = json.loads("\n".join(line for _, line in out))
    first = {}
    marks = (("ready", "using the running Ray head" if head else "starting Ray"), ("ray_up", "loading "),
             ("data", "run ")) if ray or head else (("ready", "loading "), ("data", "run "))
    for at, line in err:
        for key, prefix in marks:
            if line.startswith(prefix) and key not in first:
                first[key] = at
    epochs = store.epochs(record["trial_id"])
    e1 = epochs[0]
    ev = {**first, "epoch1": float(e1["recorded_at"]),
          "loop_start": float(e1["recorded_at"]) - float(e1["time_total_s"]), "exit": t_exit,
          "first_step": _first_step(trace)}
    return {"t0": t0, "events": ev, "epoch_time_s": float(e1["epoch_time_s"])}


def run_bare(root: Path, env: dict, a, trace: Path) -> dict:
    cmd = [sys.executable, "-c", BARE, str(root), a.model, str(a.subset), "2"]
    t0, t_exit, rc, out, err = _spawn(cmd, env, echo=False)
    if rc != 0:
        raise SystemExit(f"bare loop exited {rc}:\n" + "\n".join(line for _, line in err[-20:]))
    recs = [json.loads(line) for _, line in out if line.startswith("{")]
    by = {}
    for r in recs:
        by.setdefault(r["event"], r)
    e1 = by["epoch"]
    ev = {"ready": by["imported"]["at"], "data": by["data"]["at"], "loop_start": e1["at"] - e1["time_total_s"],
          "epoch1": e1["at"], "exit": t_exit, "first_step": _first_step(trace)}
    return {"t0": t0, "events": ev, "epoch_time_s": e1["epoch_time_s"], "threads": e1["threads"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with the MNIST files (imported, MD5-checked)")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--subset", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3, help="CLI + bare pairs, alternated")
    ap.add_argument("--no-head", action="store_true", help="skip the runs on a warm head (`tunelab cluster start`)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    a = ap.parse_args()

    from tunelab.results import ResultStore, embedded

    started = time.monotonic()
    root = tmp = scratch_root("tl-fixed-", a.data)  # the data root; the first-step traces go there too
    t = time.monotonic()
    url = embedded.ensure_running(root)  # a user's first command pays this once; every later one finds it up
    redis_start = time.monotonic() - t
    store = ResultStore.from_url(url)
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("RAY_ADDRESS", "TUNELAB_REDIS_URL", "TUNELAB_STORAGE", "OMP_NUM_THREADS")}
    base_env.update(TUNELAB_DATA_DIR=str(root), PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0")
    runs: dict[str, list[dict]] = {"cli": [], "ray": [], "head": [], "bare": []}
    # A warm head: `tunelab cluster start` under its own data root (so the other runs do not use it), the store shared
    head_env = {**base_env, "TUNELAB_DATA_DIR": str(scratch_root("tl-fixed-head-", a.data)), "TUNELAB_REDIS_URL": url}
    if not a.no_head:
        up = subprocess.run([str(Path(sys.executable).parent / "tunelab"), "cluster", "start", "--num-cpus",
                             str(os.cpu_count()), "--port", str(free_port()), "--dashboard-port", str(free_port())],
                            env=head_env, capture_output=True, text=True, timeout=300)
        if up.returncode != 0:
            raise SystemExit(f"tunelab cluster start failed: {up.stderr.strip()[-500:]}")
    modes = ["bare", "cli", "ray", *([] if a.no_head else ["head"])]
    try:
        for n in range(a.repeats):
            for mode in modes if n % 2 == 0 else modes[::-1]:
                trace = tmp / f"first-step-{mode}-{n}"
                env = {**(head_env if mode == "head" else base_env), "TUNELAB_TRACE_FIRST_STEP": str(trace)}
                res = run_bare(root, env, a, trace) if mode == "bare" else \
                    run_cli(root, env, a, store, trace, ray=mode == "ray", head=mode == "head")
                runs[mode].append(res)
                ev = res["events"]
                print(f"repeat {n + 1} {mode}: loop start at {ev['loop_start'] - res['t0']:.1f} s, first epoch "
                      f"reported at {ev['epoch1'] - res['t0']:.1f} s, exit at {ev['exit'] - res['t0']:.1f} s", flush=True)
    finally:
        if not a.no_head:
            subprocess.run([str(Path(sys.executable).parent / "tunelab"), "cluster", "stop"], env=head_env,
                           capture_output=True, timeout=120)
    runs = {m: r for m, r in runs.items() if r}

    def at(mode: str, key: str) -> float | None:
        vals = [r["events"][key] - r["t0"] for r in runs[mode] if r["events"].get(key) is not None]
        return statistics.median(vals) if vals else None

    def cell(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f}"

    start = {m: [r["events"]["loop_start"] - r["t0"] for r in runs[m]] for m in runs}
    lines = [f"| {label} | " + " | ".join(cell(at(m, key)) for m in runs) + " |" for key, label in MILESTONES]
    steps = []
    for key, label in (("ray_up", "Ray start (`ray.init` of a local instance)"),
                       ("loop_start", "TorchTrainer: controller, worker actor, process group, data from the object "
                                      "store, model build")):
        prev = "ready" if key == "ray_up" else "data"
        if at("ray", key) is not None and at("ray", prev) is not None:
            steps.append(f"{label}: {at('ray', key) - at('ray', prev):.1f} s")

    def runs_of(m: str) -> str:
        return f"**{statistics.median(start[m]):.1f} s** (runs {', '.join(f'{v:.1f}' for v in start[m])})"
    body = "\n".join([
        "## Fixed costs: `tunelab train` from process start to the first step (issues 9, 15)",
        "",
        f"Command: `{' '.join(['python benchmarks/fixed_costs.py', *sys.argv[1:]])}` ({time.monotonic() - started:.0f} s)",
        "",
        f"`tunelab train --dataset mnist --model {a.model} --epochs 2 --subset {a.subset}` as a subprocess — in its "
        f"own process (no Ray: the default without a cluster), with `--ray` (a local Ray, "
        f"TorchTrainer with one worker actor) and on a warm head (`tunelab cluster start` running: its workers have "
        f"torch preloaded; the CLI's own Ray connection and TorchTrainer set-up remain) — beside the "
        f"bare loop (`python -c`: import `jobs.loop.run_training`, load and split the same data, train the same "
        f"config with the same {runs['bare'][0].get('threads', '?')} threads), {a.repeats} of each, alternated. "
        f"Seconds since the process was spawned, medians; the embedded Redis was already up (starting it, which a "
        f"user's first command does once, took {redis_start:.2f} s).",
        "",
        "| milestone (s after spawn) | " + " | ".join(COLUMNS[m] for m in runs) + " |",
        "| --- |" + " ---: |" * len(runs),
        *lines,
        "",
        "Start to first step: " + ", ".join(f"{COLUMNS[m]} {runs_of(m)}" for m in runs) + ". Of the `--ray` run's, "
        + "; ".join(steps) + ".",
        "",
        "The loop's start is its first epoch's report time minus the `time_total_s` it counts from just before the "
        "first step, so for the CLI it includes one report's latency (checkpoint save, `ray.train.report`, the "
        "store write; tenths of a second, see the ray-overhead section). Per-trial overhead of sweep trials: the "
        "sweep-overhead section.",
    ])
    print(body)
    if not a.no_write:
        write_section("fixed-costs", body)


if __name__ == "__main__":
    main()
