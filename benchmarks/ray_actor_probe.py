"""Probe for the Ray overhead (issues 9, 15): tunelab's loop in the driver, in a thread of the driver, in a plain
Ray actor's main thread, in a thread of that actor, in a real Ray Train V2 worker and in a real Tune function
trial, same data and config; per run s/epoch (median of epochs 2-) and, per OS thread of the training process,
the CPU seconds and context switches of the steady epochs (/proc/self/task/*/stat and status).

    python benchmarks/ray_actor_probe.py --data ../shared/data driver actor-main actor-thread actor-thread actor-main driver
    python benchmarks/ray_actor_probe.py --data ../shared/data driver train-worker sweep-trial sweep-trial train-worker driver
    python benchmarks/ray_actor_probe.py --data ../shared/data --omp-in-main actor-thread   # switch cause 1 on
    python benchmarks/ray_actor_probe.py --data ../shared/data --no-fix --layout pickled driver   # cause 2 on

Switches (each applies to every mode, except --omp-in-main: driver and actor modes only):
  --omp-in-main      run an OpenMP-parallel torch op in the training process's main thread before training (in the
                     driver modes, in this process's main thread; in the actor modes, in the actor's main thread)
  --no-fix           replace tunelab.jobs.step.single_channel_nhwc (tunelab's fix: 1-channel batches as channels-last
                     views) by the identity
  --layout L         the 1-channel image arrays as they arrive (as-is), as a pickle round trip gives them
                     (pickled: channel stride H*W, as in any Ray worker) or with channel stride 1 (nhwc, as
                     jobs.data.prepare returns them)
  --env K=V          set K=V in the Ray workers' environment (repeatable); `--env K=` removes K from it
  --gc off|freeze    gc.disable() / gc.freeze() in the training thread before training

Not part of `make bench`: a diagnostic whose figures are in RESULTS.md's ray-overhead notes.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import scratch_root  # noqa: E402

MODES = ("driver", "driver-thread", "actor-main", "actor-thread", "train-worker", "sweep-trial")
_TICK = os.sysconf("SC_CLK_TCK")


def thread_stats() -> dict[int, dict]:
    """Per OS thread of this process: name, user and system CPU seconds, voluntary and involuntary switches."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/self/task/{tid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:  # the thread ended
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is the state (field 3 of proc(5))
        out[int(tid)] = {"name": stat[stat.index("(") + 1: stat.rindex(")")],
                         "user": int(fields[11]) / _TICK, "sys": int(fields[12]) / _TICK,
                         "vcs": int(status["voluntary_ctxt_switches"]), "ivcs": int(status["nonvoluntary_ctxt_switches"])}
    return out


def omp_in_this_thread() -> None:
    """An OpenMP-parallel torch op (a large elementwise add) in the calling thread: starts its OpenMP team."""
    import torch

    torch.ones(1 << 22).add_(1)


def _default_signals() -> None:
    """In a child before exec: a Ray worker's threads block or ignore SIGINT, and the child would inherit that."""
    import signal

    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Meter:
    """Wraps a loop's reporter: epoch times, and per-thread CPU and switches between the first and last report."""

    def __init__(self, gc_mode: str = "on", perf: str = "") -> None:
        self.perf_path = perf  # where `perf record` of the steady epochs goes (software cpu-clock samples)
        self.perf = None
        self.times: list[float] = []
        self.first: dict = {}
        self.last: dict = {}
        self.gc_mode = gc_mode
        self.train_tid = 0
        self.threads_at_start = 0

    def wrap(self, report):
        def wrapped(metrics, state):
            if not self.times:
                self.train_tid = threading.get_native_id()
            self.times.append(metrics["epoch_time_s"])
            snap = thread_stats()
            if len(self.times) == 1:
                self.first = snap
                if self.perf_path:
                    import subprocess
                    import time

                    self.perf = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-e", "cpu-clock", "-p",
                                                  str(os.getpid()), "-o", self.perf_path],
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                 preexec_fn=_default_signals)
                    time.sleep(0.5)
            self.last = snap
            if self.perf is not None and len(self.times) == metrics["epochs"]:
                import signal

                self.perf.send_signal(signal.SIGINT)
                try:
                    self.perf.wait(30)
                except Exception:
                    self.perf.kill()
            return report(metrics, state)
        return wrapped

    def start(self) -> None:
        """Called in the training thread before training."""
        import gc

        self.threads_at_start = len(os.listdir("/proc/self/task"))
        if self.gc_mode == "off":
            gc.disable()
        elif self.gc_mode == "freeze":
            gc.freeze()

    def result(self) -> dict:
        rows = []
        for tid, b in self.last.items():
            a = self.first.get(tid, {"user": 0.0, "sys": 0.0, "vcs": 0, "ivcs": 0})
            rows.append({"tid": tid, "name": b["name"], "user": b["user"] - a["user"], "sys": b["sys"] - a["sys"],
                         "vcs": b["vcs"] - a["vcs"], "ivcs": b["ivcs"] - a["ivcs"],
                         "role": "train" if tid == self.train_tid else "main" if tid == os.getpid() else ""})
        return {"times": self.times, "threads": rows, "n_threads": len(self.last),
                "threads_at_start": self.threads_at_start, "pid": os.getpid(), "nice": os.nice(0)}


def _apply(opts: dict, prepared):
    """The switches that act inside the training process: tunelab's layout fix off, the data's layout changed."""
    import tunelab.jobs.step

    if opts["no_fix"]:
        tunelab.jobs.step.single_channel_nhwc = lambda x: x
    if opts["layout"] == "as-is":
        return prepared
    import dataclasses
    import pickle

    import numpy as np

    def restride(a):
        if a.ndim != 4 or a.shape[1] != 1:
            return a
        if opts["layout"] == "pickled":  # what a trip through the object store gives: channel stride H*W
            return pickle.loads(pickle.dumps(a, protocol=5))
        n, _, h, w = a.shape  # channel stride 1, as jobs.data.prepare's fancy indexing leaves it
        return np.lib.stride_tricks.as_strided(a, a.shape, (h * w * a.itemsize, a.itemsize, w * a.itemsize, a.itemsize))

    return dataclasses.replace(prepared, **{f: restride(getattr(prepared, f)) for f in ("train_x", "val_x", "test_x")})


def measured_run(cfg, prepared, in_thread: bool, opts: dict) -> dict:
    """`run_training` here (or in a new thread of this process), measured."""
    prepared = _apply(opts, prepared)
    from tunelab.jobs.loop import run_training

    meter = Meter(opts["gc"], opts["perf"] and f"{opts['perf']}.{opts['n']}.data")

    def train() -> None:
        meter.start()
        run_training(cfg, prepared, report=meter.wrap(lambda m, s: None))

    if in_thread:
        t = threading.Thread(target=train)
        t.start()
        t.join()
    else:
        train()
    return meter.result()


def _measured_entry(out_path: str, opts: dict, entry):
    """Run `entry()` (the real worker function) with tunelab.jobs.loop.run_training measured; result to out_path."""
    import tunelab.jobs.loop
    import tunelab.jobs.sweep

    real = tunelab.jobs.loop.run_training
    meter = Meter(opts["gc"], opts["perf"] and f"{opts['perf']}.{opts['n']}.data")

    def run_training(cfg, data, *, report, **kw):
        data = _apply(opts, data)
        meter.start()
        return real(cfg, data, report=meter.wrap(report), **kw)

    tunelab.jobs.loop.run_training = run_training
    try:
        entry()
    finally:
        tunelab.jobs.loop.run_training = real
    Path(out_path).write_text(json.dumps(meter.result()))


def run_train_worker(cfg, ref, tmp: Path, env: dict, opts: dict, n: int) -> dict:
    """The loop in a real Ray Train V2 worker: `tunelab.jobs.loop.train_loop_per_worker` under a 1-worker TorchTrainer."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = tmp / f"train-{n}.json"

    def worker(config: dict) -> None:
        if opts["omp_in_main"]:
            raise SystemExit("--omp-in-main is not available for train-worker (its main thread is Ray's)")
        import tunelab.jobs.loop

        _measured_entry(str(out), opts, lambda: tunelab.jobs.loop.train_loop_per_worker(config))

    TorchTrainer(worker, train_loop_config={"cfg": cfg.model_dump(), "data": ref, "init": None},
                 scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": cfg.cpus_per_worker}),
                 run_config=RunConfig(name=f"probe-{n}", storage_path=str(tmp / "exp"),
                                      worker_runtime_env={"env_vars": env})).fit()
    return json.loads(out.read_text())


def run_sweep_trial(cfg, ref, tmp: Path, env: dict, opts: dict, n: int) -> dict:
    """The loop in a real Tune function trial: `tunelab.jobs.sweep._trainable`, its TrainConfig fixed to `cfg`."""
    from ray import tune
    from ray.tune import RunConfig, TuneConfig, Tuner

    out = tmp / f"sweep-{n}.json"
    storage = str(tmp / "exp")

    def trainable(config: dict, data_ref) -> None:
        import tunelab.jobs.sweep

        tunelab.jobs.sweep.trial_config = lambda spec_dict, sampled: cfg
        _measured_entry(str(out), opts, lambda: tunelab.jobs.sweep._trainable(config, {}, data_ref, storage))

    t = tune.with_resources(tune.with_parameters(trainable, data_ref=ref), {"CPU": cfg.cpus_per_worker})
    # a trial's process takes the job's runtime_env: the env vars are set through ray.init (see main)
    Tuner(t, tune_config=TuneConfig(num_samples=1),
          run_config=RunConfig(name=f"probe-sweep-{n}", storage_path=storage, verbose=0)).fit()
    return json.loads(out.read_text())


def summary(mode: str, r: dict) -> str:
    steady = r["times"][1:] or r["times"]
    med = statistics.median(steady)
    busy = sorted((t for t in r["threads"] if t["user"] + t["sys"] >= 0.05 or t["role"]),
                  key=lambda t: -(t["user"] + t["sys"]))
    parts = [f"{t['role'] or t['name']}:{t['user']:.1f}u+{t['sys']:.1f}s/{t['vcs']}v/{t['ivcs']}i" for t in busy]
    total = sum(t["user"] + t["sys"] for t in r["threads"])
    return (f"{mode}: {', '.join(f'{t:.2f}' for t in r['times'])} s/epoch; median {med:.2f}; "
            f"threads {r['threads_at_start']}->{r['n_threads']}, nice {r['nice']}; steady CPU {total:.1f} s: "
            f"{'  '.join(parts)}")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / ".cache/mnist", help="folder with the MNIST files")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--subset", type=int, default=15000)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    ap.add_argument("--omp-in-main", action="store_true")
    ap.add_argument("--no-fix", action="store_true")
    ap.add_argument("--layout", default="as-is", choices=("as-is", "pickled", "nhwc"))
    ap.add_argument("--gc", default="on", choices=("on", "off", "freeze"))
    ap.add_argument("--env", action="append", default=[], metavar="K=V")
    ap.add_argument("--perf", default="", help="`perf record` each run's steady epochs to PREFIX.N.data")
    ap.add_argument("--json", type=Path, help="append each run's raw record here (one JSON line each)")
    ap.add_argument("modes", nargs="*", metavar="MODE", help=f"any of {', '.join(MODES)}, in order (default: each once)")
    a = ap.parse_args()
    if any(m not in MODES for m in a.modes):
        ap.error(f"modes are {', '.join(MODES)}")
    threads, modes = a.threads, a.modes or list(MODES)
    opts = {"no_fix": a.no_fix, "layout": a.layout, "gc": a.gc, "omp_in_main": a.omp_in_main, "perf": a.perf, "n": "warm"}
    import ray

    from tunelab.jobs import data
    from tunelab.jobs.config import make_config
    from tunelab.jobs.step import MALLOC_ENV

    env = {"OMP_NUM_THREADS": str(threads), **MALLOC_ENV}
    for kv in a.env:
        k, _, v = kv.partition("=")
        if v:
            env[k] = v
        else:
            env.pop(k, None)
    root = scratch_root("tl-probe-", a.data)
    tmp = Path(tempfile.mkdtemp(prefix="tl-probe-run-", dir=root))
    cfg = make_config(dataset="mnist", model="cnn", epochs=a.epochs, subset=a.subset, cpus_per_worker=float(threads),
                      precision=a.precision)
    prepared = data.prepare(data.load("mnist", root), cfg.labels, cfg.val_fraction, cfg.seed, cfg.subset)
    # the job's runtime_env reaches every worker (actors, Train workers, Tune trials) unless they set their own
    ray.init(address="local", num_cpus=threads, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": env})
    ref = ray.put(prepared)

    @ray.remote(num_cpus=threads)
    class Probe:
        def omp_in_main(self) -> None:
            omp_in_this_thread()

        def run(self, cfg, prepared, in_thread: bool, opts: dict) -> dict:
            return measured_run(cfg, prepared, in_thread, opts)

    probe = None
    if a.omp_in_main:
        omp_in_this_thread()
    warm = cfg.model_copy(update={"epochs": 1})  # one untimed epoch first, in a thread (not the main one)
    measured_run(warm, prepared, True, {**opts, "perf": ""})
    results: dict[str, list[float]] = {}
    for n, mode in enumerate(modes):
        opts = {**opts, "n": n}
        if mode in ("actor-main", "actor-thread") and probe is None:
            probe = Probe.remote()
            if a.omp_in_main:
                ray.get(probe.omp_in_main.remote())
            ray.get(probe.run.remote(warm, ref, True, opts))
        if mode in ("train-worker", "sweep-trial") and probe is not None:
            ray.kill(probe)  # it holds the CPUs the trial or worker asks for
            probe = None
        if mode in ("driver", "driver-thread"):
            r = measured_run(cfg, prepared, mode == "driver-thread", opts)
        elif mode in ("actor-main", "actor-thread"):
            r = ray.get(probe.run.remote(cfg, ref, mode == "actor-thread", opts))
        elif mode == "train-worker":
            r = run_train_worker(cfg, ref, tmp, env, opts, n)
        else:
            r = run_sweep_trial(cfg, ref, tmp, env, opts, n)
        results.setdefault(mode, []).append(statistics.median(r["times"][1:] or r["times"]))
        print(summary(mode, r), flush=True)
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps({"mode": mode, "argv": sys.argv[1:], **r}) + "\n")
    print({m: round(statistics.median(v), 2) for m, v in results.items()})
    ray.shutdown()


if __name__ == "__main__":
    main()
