"""Ray overhead: steady-state epoch time of tunelab's loop under Ray Train and in a sweep trial ÷ the bare loop, in
one run.

    python benchmarks/ray_overhead.py --data .cache/mnist     # writes the "ray-overhead" section
    python benchmarks/ray_overhead.py --data .cache/mnist --subset 2000 --epochs 3 --rounds 1 --no-write  # smoke

Both sides train the same `TrainConfig` (`cnn` on a real-MNIST subset, every core as torch threads) on the same
prepared arrays, in the order bare, Ray, sweep, sweep, Ray, bare … so that a drift in the machine's speed cancels:

- bare: `tunelab.jobs.loop.run_training` in this process, no Ray running; its reporter saves the checkpoint to a
  temporary directory with `tunelab.jobs.loop.save_checkpoint`, as the Ray worker's reporter does, and nothing else.
- Ray: `tunelab.jobs.train.fit`, the TorchTrainer `tunelab train` launches (1 worker holding all CPUs, StoreCallback
  writing every epoch to an embedded Redis), in a local Ray instance started for the run and shut down after.
  Only the worker function is wrapped, to note per epoch the worker's thread counts, how long checkpoint
  saving and `ray.train.report` took, and the CPU time of every process of the run (psutil).
- sweep trial: `tunelab.jobs.sweep._trainable` as a one-worker sweep runs it, in a Tune function trial holding every CPU
  (its TrainConfig fixed to the same config), traced the same way.

An untimed one-epoch bare run warms this process first, and the first epoch of each run is dropped. Figures are medians over the remaining epochs of all rounds:
the loop's own `epoch_time_s` (training + validation) and `images_per_s` (training only), and the wall time
between two epochs' reports seen from outside the loop (which adds checkpoint saving and reporting).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import cpu_label, scratch_root, write_section


def _os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def _proc_name(p) -> str:
    cmd = p.cmdline()
    first = Path(cmd[0]).name if cmd else p.name()
    if first.startswith("ray::"):
        return first.split(".")[0]  # the actor's class (ray::TrainController), without the method it runs
    if first.startswith("python") and len(cmd) > 1:
        return Path(next((c for c in cmd[1:] if c.endswith(".py")), cmd[1])).name
    return first


def cpu_snapshot(root_pid: int) -> dict[str, list]:
    """CPU seconds so far of `root_pid` and its descendants (Ray's GCS, raylet, workers, actors): pid -> [name, s].

    Taken by the reporters at every epoch, outside the loop's timed part (a few milliseconds); empty without psutil.
    """
    try:
        import psutil
    except ImportError:
        return {}
    out = {}
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}
    for p in procs:
        try:
            with p.oneshot():
                t = p.cpu_times()
                out[str(p.pid)] = [_proc_name(p), t.user + t.system]
        except psutil.Error:
            pass
    return out


def _cpu_by_group(rows: list[dict], trainer_pid: int) -> dict[str, float]:
    """CPU seconds per steady epoch (between the first and the last report), by process."""
    if len(rows) < 2 or not rows[-1].get("procs"):
        return {}
    before, after = rows[0]["procs"], rows[-1]["procs"]
    groups: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        label = ("training process" if int(pid) == trainer_pid else
                 "driver (this process)" if int(pid) == os.getpid() else name)
        used = cpu - before.get(pid, [name, 0.0])[1]
        groups[label] = groups.get(label, 0.0) + used / (len(rows) - 1)
    return groups


def _tracers(real_save, real_report, trace_path: str, driver_pid: int):
    """Wrappers of a checkpoint save and a report function that note, per report, in `trace_path`: the epoch's
    metrics, save and report times, threads, and CPU seconds (this process's and every process's, `cpu_snapshot`)."""
    import torch

    pending: dict = {}
    last_cpu = [time.process_time()]

    def save(state, directory):
        pending["at"] = time.time()  # the loop's reporter was entered: same point the bare side stamps
        t = time.perf_counter()
        path = real_save(state, directory)
        pending["save_s"] = time.perf_counter() - t
        return path

    def report(metrics, checkpoint=None, **kw):
        t = time.perf_counter()
        out = real_report(metrics, checkpoint=checkpoint, **kw)
        cpu = time.process_time()
        rec = {"epoch": metrics["epoch"], "epoch_time_s": metrics["epoch_time_s"],
               "time_total_s": metrics["time_total_s"],
               "images_per_s": metrics["images_per_s"], "report_s": time.perf_counter() - t,
               "torch_threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
               "omp_env": os.environ.get("OMP_NUM_THREADS", "unset"), "os_threads": _os_threads(),
               "cpu_s": cpu - last_cpu[0], "pid": os.getpid(), "procs": cpu_snapshot(driver_pid), **pending}
        last_cpu[0] = cpu
        pending.clear()
        with open(trace_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        return out

    return save, report


def _traced_loop(trace_path: str, driver_pid: int):
    """`tunelab.jobs.loop.train_loop_per_worker`, noting per report: threads, checkpoint save and ray.train.report times."""

    def loop(config: dict) -> None:
        entered = time.time()
        import ray.train

        import tunelab.jobs.loop

        with open(trace_path, "a") as f:
            f.write(json.dumps({"event": "entered", "at": entered}) + "\n")

        real_report = getattr(ray.train.report, "__wrapped__", ray.train.report)
        real_save = getattr(tunelab.jobs.loop.save_checkpoint, "__wrapped__", tunelab.jobs.loop.save_checkpoint)
        save, report = _tracers(real_save, real_report, trace_path, driver_pid)
        save.__wrapped__, report.__wrapped__ = real_save, real_report
        tunelab.jobs.loop.save_checkpoint, ray.train.report = save, report
        tunelab.jobs.loop.train_loop_per_worker(config)

    return loop


def run_bare(cfg, prepared) -> tuple[list[dict], float]:
    """Per-epoch records of the bare loop in this process, and its wall time."""
    import torch

    from tunelab.jobs.loop import run_training, save_checkpoint

    rows: list[dict] = []
    last_cpu = [time.process_time()]

    def report(m: dict, state) -> None:
        at = time.time()
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(state, Path(d))
        save_s = time.perf_counter() - t
        cpu = time.process_time()
        rows.append({"epoch": m["epoch"], "epoch_time_s": m["epoch_time_s"], "images_per_s": m["images_per_s"],
                     "time_total_s": m["time_total_s"],
                     "at": at, "save_s": save_s, "report_s": 0.0, "torch_threads": torch.get_num_threads(),
                     "interop_threads": torch.get_num_interop_threads(),
                     "omp_env": os.environ.get("OMP_NUM_THREADS", "unset"), "os_threads": _os_threads(),
                     "cpu_s": cpu - last_cpu[0], "procs": cpu_snapshot(os.getpid())})
        last_cpu[0] = cpu

    t0 = time.time()
    run_training(cfg, prepared, report=report)
    t_end = time.time()
    _add_walls(rows, t0)
    rows[0]["fixed"] = {"to_first_step": _loop_start(rows) - t0, "after_last_report": t_end - rows[-1]["at"]}
    return rows, t_end - t0


def run_ray(cfg, prepared, store, tmp: Path, n: int) -> tuple[list[dict], float, float]:
    """Per-epoch records of the same config under `tunelab.jobs.train.fit`, fit's wall time, and the CPUs Ray saw.

    A local Ray instance is started for the run and shut down after it, so the bare runs have none beside them.
    """
    import ray

    import tunelab.jobs.loop
    import tunelab.jobs.train
    from tunelab.cluster import connect, disconnect
    from tunelab.jobs.train import fit
    from tunelab.jobs.trials import trial_record

    run_id, trial_id = f"ray-overhead-{n}", f"ray-overhead-{n}-t0"
    trace = tmp / f"trace-{n}.jsonl"
    store.start_run(run_id, kind="train", name=run_id, dataset=cfg.dataset, labels=cfg.labels, config=cfg.model_dump())
    store.start_trial(trial_id, run_id=run_id, **trial_record(cfg))
    info = connect(None)
    try:
        data_ref = ray.put(prepared)
        t0 = time.time()
        traced = _traced_loop(str(trace), os.getpid())
        with contextlib.ExitStack() as stack:  # wherever fit() takes the worker function from
            for module in (tunelab.jobs.loop, tunelab.jobs.train):
                if hasattr(module, "train_loop_per_worker"):
                    stack.enter_context(mock.patch.object(module, "train_loop_per_worker", traced))
            result = fit(cfg, data_ref, run_id=run_id, trial_id=trial_id, redis_url=store.url,
                         storage_path=str(tmp / "exp"))
        t_end = time.time()
    finally:
        disconnect()
    if result.error:
        raise SystemExit(f"Ray run failed: {result.error}")
    recs = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    entered = next((r["at"] for r in recs if r.get("event") == "entered"), None)
    if entered is None:
        raise SystemExit("the Ray run left no trace: tunelab.jobs.train.fit no longer takes train_loop_per_worker from "
                         "jobs.loop or jobs.train; update run_ray")
    rows = [r for r in recs if "event" not in r]
    _add_walls(rows, t0)
    rows[0]["fixed"] = {"to_worker": entered - t0, "to_first_step": _loop_start(rows) - entered,
                        "after_last_report": t_end - rows[-1]["at"]}
    recorded = {int(e["epoch"]): float(e["recorded_at"]) for e in store.epochs(trial_id) if "recorded_at" in e}
    for prev, row in zip(rows, rows[1:]):
        if row["epoch"] in recorded and prev["epoch"] in recorded:
            row["driver_wall_s"] = recorded[row["epoch"]] - recorded[prev["epoch"]]
    return rows, t_end - t0, info.cpus


def _traced_trainable(trace_path: str, driver_pid: int, cfg_dict: dict, storage_path: str):
    """A Tune function trainable that runs `tunelab.jobs.sweep._trainable` as a one-worker sweep trial does (its TrainConfig
    fixed to `cfg_dict`), noting per report what `_traced_loop` notes for the Train worker."""

    def trainable(config: dict, data_ref) -> None:
        entered = time.time()
        from ray import tune

        import tunelab.jobs.loop
        import tunelab.jobs.sweep
        from tunelab.jobs.config import TrainConfig

        with open(trace_path, "a") as f:
            f.write(json.dumps({"event": "entered", "at": entered}) + "\n")
        cfg = TrainConfig.model_validate(cfg_dict)
        real_report, real_save = tune.report, tunelab.jobs.sweep.save_checkpoint if hasattr(tunelab.jobs.sweep, "save_checkpoint") \
            else tunelab.jobs.loop.save_checkpoint
        save, report = _tracers(real_save, real_report, trace_path, driver_pid)

        # _trainable imports save_checkpoint from jobs.loop and reports through tune.report when it runs
        tunelab.jobs.sweep.trial_config = lambda spec_dict, sampled: cfg
        tunelab.jobs.loop.save_checkpoint, tune.report = save, report
        try:
            tunelab.jobs.sweep._trainable(config, {}, data_ref, storage_path)
        finally:
            tunelab.jobs.loop.save_checkpoint, tune.report = real_save, real_report

    return trainable


def run_sweep(cfg, prepared, tmp: Path, n: int) -> tuple[list[dict], float, float]:
    """Per-epoch records of the same config as one single-worker sweep trial (a Tune function trainable running
    `tunelab.jobs.sweep._trainable`, all CPUs), the Tuner's wall time, and the CPUs Ray saw. Like `run_ray`, in a local
    Ray instance started for the run."""
    import ray
    from ray import tune
    from ray.tune import RunConfig, TuneConfig, Tuner

    from tunelab.cluster import connect, disconnect
    from tunelab.jobs.sweep import worker_resources

    trace = tmp / f"trace-sweep-{n}.jsonl"
    storage = str(tmp / "sweep-exp")
    info = connect(None)
    try:
        data_ref = ray.put(prepared)
        t0 = time.time()
        trainable = _traced_trainable(str(trace), os.getpid(), cfg.model_dump(), storage)
        trainable = tune.with_resources(tune.with_parameters(trainable, data_ref=data_ref), worker_resources(cfg))
        grid = Tuner(trainable, tune_config=TuneConfig(num_samples=1),
                     run_config=RunConfig(name=f"ray-overhead-sweep-{n}", storage_path=storage, verbose=0)).fit()
        t_end = time.time()
    finally:
        disconnect()
    if grid.errors:
        raise SystemExit(f"sweep trial failed: {grid.errors[0]}")
    recs = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    entered = next((r["at"] for r in recs if r.get("event") == "entered"), None)
    rows = [r for r in recs if "event" not in r]
    if entered is None or not rows:
        raise SystemExit("the sweep trial left no trace: update run_sweep for tunelab.jobs.sweep._trainable")
    _add_walls(rows, t0)
    rows[0]["fixed"] = {"to_worker": entered - t0, "to_first_step": _loop_start(rows) - entered,
                        "after_last_report": t_end - rows[-1]["at"]}
    return rows, t_end - t0, info.cpus


def _loop_start(rows: list[dict]) -> float:
    """When the loop's first step began: the first report's entry minus the loop's own running time."""
    return rows[0]["at"] - rows[0]["time_total_s"]


def _add_walls(rows: list[dict], t0: float) -> None:
    """wall_s: time from the previous epoch's report (run start for the first) to this one's."""
    last = t0
    for r in rows:
        r["wall_s"] = r["at"] - last
        last = r["at"]


def _med(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with the MNIST files (imported, MD5-checked)")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--subset", type=int, default=15_000, help="training pool (validation carved from it)")
    ap.add_argument("--epochs", type=int, default=4, help="per run; the first is dropped")
    ap.add_argument("--rounds", type=int, default=2, help="bare + Ray pairs, in the order bare, Ray, Ray, bare …")
    ap.add_argument("--threads", type=int, default=None, help="torch threads on both sides (default: every core)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="auto: bf16 where the CPU computes it natively (the default recipe's choice), else fp32")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    a = ap.parse_args()
    if a.epochs < 2:
        ap.error("--epochs must be at least 2: the first is dropped")

    import torch

    from tunelab.jobs import data
    from tunelab.jobs.config import make_config
    from tunelab.results import open_store

    started = time.monotonic()
    cores = os.cpu_count() or 1
    cpus = a.threads or cores  # torch threads and Ray CPUs per side
    tmp = scratch_root("tl-rayoh-", a.data)
    cfg = make_config(dataset="mnist", model=a.model, epochs=a.epochs, subset=a.subset, cpus_per_worker=float(cpus),
                      precision=a.precision)
    prepared = data.prepare(data.load("mnist", tmp), cfg.labels, cfg.val_fraction, cfg.seed, cfg.subset)
    store = open_store(None, tmp)
    runs: dict[str, list[tuple[list[dict], float]]] = {"bare": [], "ray": [], "sweep": []}
    cpu: dict[str, list[dict[str, float]]] = {"bare": [], "ray": [], "sweep": []}
    # Untimed: in smoke runs the first bare run of a fresh process stayed slow past its first epoch (so
    # bare-first rounds read Ray as faster); one epoch here warms this process before anything is timed.
    run_bare(cfg.model_copy(update={"epochs": 1}), prepared)
    for n in range(a.rounds):
        order = ("bare", "ray", "sweep")
        for mode in order if n % 2 == 0 else order[::-1]:  # bare, Ray, sweep, sweep, Ray, bare: drift cancels
            if mode == "bare":
                rows, wall = run_bare(cfg, prepared)
            elif mode == "ray":
                rows, wall, ray_cpus = run_ray(cfg, prepared, store, tmp, n)
            else:
                rows, wall, ray_cpus = run_sweep(cfg, prepared, tmp, n)
            runs[mode].append((rows, wall))
            cpu[mode].append(_cpu_by_group(rows, rows[0].get("pid", os.getpid())))
            steady = rows[1:]
            print(f"round {n + 1} {mode}: {_med(steady, 'epoch_time_s'):.2f} s/epoch, "
                  f"{_med(steady, 'images_per_s'):,.0f} img/s, wall {wall:.1f} s, "
                  f"torch threads {rows[-1]['torch_threads']} (OMP_NUM_THREADS={rows[-1]['omp_env']})", flush=True)

    steady = {m: [r for rows, _ in rs for r in rows[1:]] for m, rs in runs.items()}
    b, r, sw = steady["bare"], steady["ray"], steady["sweep"]
    ratio = _med(r, "epoch_time_s") / _med(b, "epoch_time_s")
    ips_ratio = _med(b, "images_per_s") / _med(r, "images_per_s")
    wall_ratio = _med(r, "wall_s") / _med(b, "wall_s")
    sweep_ratio = _med(sw, "epoch_time_s") / _med(b, "epoch_time_s")
    sweep_ips_ratio = _med(b, "images_per_s") / _med(sw, "images_per_s")
    sweep_wall_ratio = _med(sw, "wall_s") / _med(b, "wall_s")
    n_train = len(prepared.train_y)

    def row(mode: str, rows: list[dict]) -> str:
        last = rows[-1]
        walls = [w for _, w in runs[mode]]
        driver = f" ({_med(rows, 'driver_wall_s'):.2f} at the driver)" if mode == "ray" else ""
        name = {"bare": "bare loop, this process", "ray": "Ray Train (`tunelab.jobs.train.fit`)",
                "sweep": "sweep trial (Tune function, `tunelab.jobs.sweep._trainable`)"}[mode]
        return (f"| {name} | "
                f"{last['torch_threads']} / {last['interop_threads']} / {last['omp_env']} / {last['os_threads']} | "
                f"**{_med(rows, 'epoch_time_s'):.2f}** | {_med(rows, 'images_per_s'):,.0f} | "
                f"{_med(rows, 'wall_s'):.2f}{driver} | {_med(rows, 'save_s'):.3f} | {_med(rows, 'report_s'):.3f} | "
                f"{_med(rows, 'cpu_s'):.2f} | {', '.join(f'{w:.1f}' for w in walls)} |")

    def per_round(mode: str) -> str:
        return ", ".join(f"{_med(rr[1:], 'epoch_time_s') / _med(rb[1:], 'epoch_time_s'):.3f}"
                         for (rb, _), (rr, _) in zip(runs["bare"], runs[mode]))
    groups = sorted({g for m in cpu.values() for d in m for g in d},
                    key=lambda g: (g != "training process", g != "driver (this process)", g))
    mean_cpu = {m: {g: statistics.mean([d.get(g, 0.0) for d in ds if d] or [0.0]) for g in groups}
                for m, ds in cpu.items()}
    cpu_rows = [f"| {g} | {mean_cpu['bare'][g]:.2f} | {mean_cpu['ray'][g]:.2f} | {mean_cpu['sweep'][g]:.2f} |"
                for g in groups]
    cpu_rows.append(f"| **all** | {sum(mean_cpu['bare'].values()):.2f} | {sum(mean_cpu['ray'].values()):.2f} | "
                    f"{sum(mean_cpu['sweep'].values()):.2f} |")

    def fixed(mode: str, key: str) -> str:
        vals = [rows[0]["fixed"][key] for rows, _ in runs[mode] if key in rows[0]["fixed"]]
        return f"{statistics.median(vals):.1f}" if vals else "—"

    fixed_table = [
        "",
        "Each run's fixed time, outside the epochs (s, median over the rounds):",
        "",
        "| part of a run | bare | Ray Train | sweep trial |",
        "| --- | ---: | ---: | ---: |",
        f"| `fit()` called → worker / trial function entered (controller, placement group, actor, process group) | — | "
        f"{fixed('ray', 'to_worker')} | {fixed('sweep', 'to_worker')} |",
        f"| → first step (data from the object store, model, optimizer, augmenter) | {fixed('bare', 'to_first_step')} | "
        f"{fixed('ray', 'to_first_step')} | {fixed('sweep', 'to_first_step')} |",
        f"| last report → `run_training` / `fit()` returns | {fixed('bare', 'after_last_report')} | "
        f"{fixed('ray', 'after_last_report')} | {fixed('sweep', 'after_last_report')} |",
    ]
    others = {m: sum(v for g, v in mean_cpu[m].items() if g != "training process") for m in mean_cpu}
    cpu_table = [
        "",
        "CPU seconds per steady epoch by process: this one and its descendants, read by the reporters at the "
        "first and last report of each run (psutil), averaged over the rounds. In the bare run the training "
        "process is this one; no Ray is running then.",
        "",
        "| process | bare run | Ray Train run | sweep run |",
        "| --- | ---: | ---: | ---: |",
        *cpu_rows,
        "",
        *[f"Besides the training process, the {m} run's processes used {others[m]:.2f} CPU-s per epoch: "
          f"{100 * others[m] / (cores * _med(steady[m], 'wall_s')):.1f} % of the {cores} cores' time."
          for m in ("bare", "ray", "sweep")],
    ] if groups else []
    body = "\n".join([
        f"## Ray overhead on {cpu_label()}: a Train worker and a sweep trial with all cores vs the bare loop "
        "(issues 9, 15)",
        "",
        f"Command: `{' '.join(['python benchmarks/ray_overhead.py', *sys.argv[1:]])}` "
        f"({time.monotonic() - started:.0f} s)",
        "",
        f"`{cfg.model}` on {n_train:,} real MNIST training images ({len(prepared.val_y):,} validation), batch "
        f"{cfg.batch_size}, {cfg.optimizer}, {cfg.epochs} epochs per run, precision {cfg.precision} "
        f"({'bf16' if cfg.step_options(torch.device('cpu')).amp else 'fp32'}), {a.rounds} round(s) in the order "
        f"bare, Ray Train, sweep trial, then reversed; {cores} cores, `cpus_per_worker={cpus}` (Ray sees {ray_cpus:g} "
        f"CPUs). First epoch of each run dropped; medians of the other {len(b)} (bare), {len(r)} (Ray Train) and "
        f"{len(sw)} (sweep trial) epochs.",
        "",
        "| loop | torch / interop threads / OMP_NUM_THREADS / OS threads | s / epoch (loop's `epoch_time_s`) | "
        "images/s (training) | wall s / epoch between reports | checkpoint save s | `ray.train.report` s | "
        "process CPU s / epoch | run wall s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("bare", b),
        row("ray", r),
        row("sweep", sw),
        "",
        f"**Train worker ÷ bare: {ratio:.3f} in s/epoch** (target ≤ 1.05; per round {per_round('ray')}), "
        f"{ips_ratio:.3f} in training images/s, {wall_ratio:.3f} in wall time between reports.",
        "",
        f"**Sweep trial ÷ bare: {sweep_ratio:.3f} in s/epoch** (target ≤ 1.05; per round {per_round('sweep')}), "
        f"{sweep_ips_ratio:.3f} in training images/s, {sweep_wall_ratio:.3f} in wall time between reports.",
        *fixed_table,
        *cpu_table,
        "",
        "`epoch_time_s` runs from the start of an epoch's training to the end of its validation pass; the "
        "checkpoint save and `ray.train.report` (which copies the checkpoint into the run's storage) come after "
        "it, so they are in the wall time between reports only (on both sides, as is the last epoch's test pass). "
        "Run wall: start of `run_training` / `fit` / `Tuner.fit` to its "
        "return, Ray's start-up and teardown of the run included (each Ray run starts a local Ray instance before "
        "it and shuts it down after, outside that time; the bare runs have no Ray beside them). The sweep trial "
        "runs `tunelab.jobs.sweep._trainable` in a Tune function trial holding every CPU, its TrainConfig fixed to the "
        "same config, in a local Ray started as `tunelab sweep` starts it.",
    ])
    print(body)
    if not a.no_write:
        write_section("ray-overhead", body)


if __name__ == "__main__":
    main()
