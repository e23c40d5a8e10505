"""The result store and the dashboard under load.

    python benchmarks/store_load.py                      # 10,000 trials x 50 epochs; writes "store-load" in RESULTS.md
    python benchmarks/store_load.py --trials 1000 --epochs 10 --no-write     # a quick look
    python benchmarks/store_load.py --trials 2000 --epochs 20 --writes-only --no-write   # the writes alone

1. Writes: W writer processes fill the embedded store (the default server: unix socket, append-only file)
   through `ResultStore` exactly as sweeps do (start_run, start_trial, record_epoch per epoch, finish_trial),
   100 trials per sweep. Beside it, in the same run: the baseline, the same sweeps written with `record_epoch` as it
   was before issue 18 (two round trips), alternating with it; and the floor, the same number of epoch records
   written as one bare HSET each (what any writer pays for one round trip per record). `--writes-only` stops there.
2. Reads: `tunelab dashboard` (`--server-workers` processes) over that store, and 50 concurrent HTTP clients on
   loopback hitting each page, its API and its charts for a fixed time, twice: an async Python client (httpx) and
   wrk (compiled, when installed); p50/p95 latency, requests/s and errors per endpoint. Clients and server share
   this machine's cores, so the figures are a floor for a dashboard host of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import scratch_root, write_section
from tunelab.cluster.head import free_port

TRIALS_PER_SWEEP = 100
BOARD = {"fine": {"val": "val_acc", "test": "test_acc"}}
MODELS = [("cnn", "cnn"), ("resnet20", "resnet_cifar"), ("wrn16_4", "wrn"), ("vit_tiny", "vit")]


def _record_epoch_before_issue_18(store, trial_id: str, metrics: dict, checkpoint: str = "") -> None:
    """The baseline: `ResultStore.record_epoch` before issue 18, in two round trips (an HMGET of the trial, then one
    pipeline). Kept here only to be measured beside the one-round-trip script."""
    from tunelab.results import keys
    from tunelab.results.store import _LAST_FIELDS, _TRIAL_FIELDS, _dumps, _now

    epoch = int(metrics["epoch"])
    run_id, boards_json, best, done, dataset, family, model, augment = store.r.hmget(
        keys.trial(trial_id), "run", "boards", "best_val_acc", "epochs_done", "dataset", "family", "model", "augment")
    boards = json.loads(boards_json or "{}")
    record = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
    record.setdefault("recorded_at", _now())
    fields = {"updated": _now(), "epochs_done": max(epoch, int(done or 0)),
              **{f"last_{k}": record[k] for k in _LAST_FIELDS if k in record}}
    for src, dst in (("params", "n_params"), ("images_per_s", "images_per_s"), ("time_total_s", "train_time_s")):
        if src in record:
            fields[dst] = record[src]
    fields.update((k, v) for k, v in record.items() if (k in _TRIAL_FIELDS and v is not None) or k.startswith("test_"))
    if checkpoint:
        fields["checkpoint"] = checkpoint
    if isinstance(metrics.get("runtime"), dict):
        fields["runtime"] = _dumps(metrics["runtime"])
    val = record.get("val_acc")
    if val is not None and (best is None or float(val) > float(best)):
        fields.update({"best_val_acc": val, "best_epoch": epoch,
                       **{f"best_{k}": v for k, v in record.items() if k.startswith("val_")}})
    with store.r.pipeline() as p:
        p.hset(keys.trial_epochs(trial_id), str(epoch), _dumps(record))
        p.hset(keys.trial(trial_id), mapping=fields)
        if "runtime" in fields:
            p.hsetnx(keys.run(run_id), "runtime", fields["runtime"])
        if val is not None:
            p.zadd(keys.run_trials(run_id), {trial_id: float(val)}, gt=True)
        for label, names in boards.items():
            if record.get(names["val"]) is not None:
                p.zadd(keys.leaderboard(dataset, label), {trial_id: float(record[names["val"]])}, gt=True)
                p.sadd(keys.board_facet(dataset, label, "family"), family or model or "")
                p.sadd(keys.board_facet(dataset, label, "augment"), augment or "none")
        store._publish(p, "epoch", run=run_id, trial=trial_id, epoch=epoch)
        p.execute()


def _write_sweeps(url: str, sweeps: list[int], epochs: int, out, baseline: bool = False) -> None:
    from tunelab.results import ResultStore

    store = ResultStore.from_url(url)
    record_epoch = (lambda *a: _record_epoch_before_issue_18(store, *a)) if baseline else store.record_epoch
    n = 0
    t0 = time.perf_counter()
    for s in sweeps:
        run = f"bench-{s:04d}"
        store.start_run(run, kind="sweep", name=f"load-{s}", dataset="mnist", labels="fine", config={"bench": True})
        for i in range(TRIALS_PER_SWEEP):
            tid = f"{run}-{i:05d}"
            model, family = MODELS[i % len(MODELS)]
            lr = 10 ** (-4 + 3 * ((i * 7919) % 1000) / 1000)
            store.start_trial(tid, run_id=run, model=model, family=family, dataset="mnist", labels="fine", boards=BOARD,
                              augment="none" if i % 2 else "crop:2", params={"lr": lr, "batch_size": 64 << (i % 3)})
            for e in range(1, epochs + 1):
                acc = 0.9 * (1 - 0.5 ** e) + 0.0001 * ((s * TRIALS_PER_SWEEP + i) % 997)
                record_epoch(tid, {"epoch": e, "epochs": epochs, "train_loss": 1.0 / e, "val_loss": 1.1 / e,
                                   "val_acc": acc, "lr": lr, "images_per_s": 1000.0, "epoch_time_s": 1.0,
                                   "time_total_s": float(e), "params": 431_242})
                n += 1
            store.finish_trial(tid, "completed")
        store.finish_run(run, "completed")
    out.put((n, time.perf_counter() - t0))


def _write_bare(url: str, sweeps: list[int], epochs: int, out) -> None:
    import redis

    r = redis.Redis.from_url(url)
    rec = json.dumps({"epoch": 1, "val_acc": 0.5, "train_loss": 1.0, "val_loss": 1.1, "images_per_s": 1000.0})
    n = 0
    t0 = time.perf_counter()
    for s in sweeps:
        for i in range(TRIALS_PER_SWEEP):
            for e in range(1, epochs + 1):
                r.hset(f"bare:{s}:{i}", str(e), rec)
                n += 1
    out.put((n, time.perf_counter() - t0))


def _parallel(fn, url: str, sweeps: list[int], epochs: int, writers: int, *extra) -> tuple[int, float]:
    q = mp.Queue()
    shards = [sweeps[w::writers] for w in range(writers)]
    t0 = time.perf_counter()
    procs = [mp.Process(target=fn, args=(url, shard, epochs, q, *extra)) for shard in shards]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(n for n, _ in results), time.perf_counter() - t0


def _measure_writes(url: str, sweeps: int, epochs: int, writers: int) -> dict:
    """records/s of `record_epoch` (one round trip), of the two-round-trip baseline, and of bare HSETs, on one server.

    The baseline writes the same sweeps into database 1 of the same server (same socket, same append-only file), then
    that database is emptied. The sweeps go in rounds of one per writer, each round writing its sweeps all three ways,
    in alternating order (new, baseline, bare; then bare, baseline, new): a neighbour's load on a shared machine
    weighs on all alike, and each round gives a ratio of its own."""
    import redis

    from tunelab.results import keys

    base_url = f"{url}{'&' if '?' in url else '?'}db=1"
    ways = {"new": (_write_sweeps, url, False), "baseline": (_write_sweeps, base_url, True), "bare": (_write_bare, url)}
    done = {way: [0, 0.0] for way in ways}
    ratios = []
    for i, start in enumerate(range(0, sweeps, writers)):
        rate = {}
        for way in ways if i % 2 == 0 else reversed(ways):
            fn, where, *extra = ways[way]
            n, wall = _parallel(fn, where, list(range(start, min(start + writers, sweeps))), epochs, writers, *extra)
            done[way][0] += n
            done[way][1] += wall
            rate[way] = n / wall
        ratios.append(rate["new"] / rate["baseline"])
    new, base = redis.Redis.from_url(url), redis.Redis.from_url(base_url)
    board = keys.leaderboard("mnist", "fine")
    same = new.zrange(board, 0, -1, withscores=True) == base.zrange(board, 0, -1, withscores=True)
    base.flushdb()
    out = {f"{way}_{k}": v for way, (n, wall) in done.items()
           for k, v in (("n", n), ("wall_s", wall), ("rate", n / wall))}
    return {**out, "speedup": out["new_rate"] / out["baseline_rate"], "ratios": sorted(ratios), "same_board": same}


async def _hammer(base: str, path: str, clients: int, seconds: float) -> dict:
    import httpx

    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def one(c):
        nonlocal errors
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = await c.get(path)
            lat.append(time.perf_counter() - t)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as c:
        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(c) for _ in range(clients)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    # the client's own CPU per request: near 1000 / req/s, the client (not the server) sets the pace
    return {"path": path, "requests": len(lat), "errors": errors, "rps": len(lat) / wall,
            "p50_ms": 1000 * q[49], "p95_ms": 1000 * q[94], "client_cpu_ms": 1000 * cpu / max(1, len(lat))}


# wrk's `done` hook: its latency percentiles (microseconds) and error counts on one line
_WRK_DONE = """done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format("TL %d %d %d %d %d %d %d\\n", s.requests, s.duration, e.connect + e.read + e.write + e.timeout,
                         e.status, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def _wrk(base: str, path: str, clients: int, seconds: float) -> Optional[dict]:
    """`path` under wrk (Debian's, compiled: it costs the server's cores little) with `clients` connections on one
    thread; None when wrk is not installed. Errors: socket errors and responses other than 2xx/3xx."""
    exe = shutil.which("wrk")
    if exe is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_DONE)
    try:
        out = subprocess.run([exe, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "120s",
                              "-s", f.name, base + path], capture_output=True, text=True, timeout=seconds + 150).stdout
    finally:
        os.unlink(f.name)
    line = next(ln for ln in out.splitlines() if ln.startswith("TL "))
    n, dur_us, sock, status, *us = map(int, line.split()[1:])
    p50, p95, p99 = (x / 1000 if n else float("inf") for x in us)  # none finished in time: longer than the run
    return {"path": path, "requests": n, "errors": sock + status, "rps": n / (dur_us / 1e6),
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0, help="per endpoint and client")
    ap.add_argument("--server-workers", type=int, default=None,
                    help="dashboard processes (`tunelab dashboard --workers`); default: the dashboard's own default")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--writes-only", action="store_true",
                    help="measure the writes, print them and stop: no dashboard, nothing written to RESULTS.md")
    a = ap.parse_args()

    from tunelab.results import embedded

    tmp = scratch_root("tl-load-")
    url = embedded.ensure_running(tmp)
    sweeps = max(1, a.trials // TRIALS_PER_SWEEP)
    print(f"writing {sweeps * TRIALS_PER_SWEEP:,} trials x {a.epochs} epochs with {a.writers} writers, through "
          f"record_epoch, through the two-round-trip baseline and as bare HSETs, in alternating rounds …", flush=True)
    writes = _measure_writes(url, sweeps, a.epochs, a.writers)
    n, wall = writes["new_n"], writes["new_wall_s"]
    spread = (f"median of {len(writes['ratios'])} rounds {statistics.median(writes['ratios']):.2f}x, "
              f"{writes['ratios'][0]:.2f}x to {writes['ratios'][-1]:.2f}x")
    print(f"record_epoch (1 round trip): {n:,} epoch records in {wall:.1f} s = {writes['new_rate']:,.0f}/s; "
          f"baseline (2 round trips): {writes['baseline_rate']:,.0f}/s; bare HSET {writes['bare_rate']:,.0f}/s; "
          f"speed-up {writes['speedup']:.2f}x ({spread}); same leaderboard both ways: {writes['same_board']}",
          flush=True)
    if a.writes_only:
        return

    import redis

    r = redis.Redis.from_url(url)
    r.delete(*[k for k in r.scan_iter("bare:*", count=10_000)])
    mem = r.info("memory")["used_memory"] / 2**20
    port = free_port()
    env = {**os.environ, "TUNELAB_DATA_DIR": str(tmp), "TUNELAB_REDIS_URL": ""}
    from tunelab.cli.dashboard import default_workers

    server_workers = a.server_workers or default_workers()
    print(f"reads: tunelab dashboard --workers {server_workers}, {a.clients} clients, {a.seconds:g} s per endpoint "
          "and client …", flush=True)
    server = subprocess.Popen([sys.executable, "-m", "tunelab.cli", "dashboard", "--port", str(port),
                               "--workers", str(server_workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(base + "/api/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        # what a leaderboard, a sweep and a trial show: each page, then what it fetches (its API and charts)
        paths = ["/leaderboard?dataset=mnist", "/api/leaderboard?dataset=mnist",
                 "/api/leaderboard?dataset=mnist&family=vit", "/runs/bench-0000", "/api/runs/bench-0000",
                 "/api/runs/bench-0000/charts", "/trials/bench-0000-00007", "/api/trials/bench-0000-00007",
                 "/api/trials/bench-0000-00007/charts", "/api/boards"]
        if shutil.which("wrk") is None:
            print("no wrk: measuring with the async client only (apt-get install wrk adds the compiled one)",
                  flush=True)
        reads = []
        for path in paths:
            httpx.get(base + path, timeout=120)  # warm
            alone = asyncio.run(_hammer(base, path, 1, min(3.0, a.seconds)))
            res = asyncio.run(_hammer(base, path, a.clients, a.seconds))
            res["alone_p50_ms"] = alone["p50_ms"]
            res["wrk"] = _wrk(base, path, a.clients, a.seconds)
            line = (f"{path}: one client p50 {alone['p50_ms']:.1f} ms; {a.clients} clients, httpx: "
                    f"p50 {res['p50_ms']:.0f} ms, p95 {res['p95_ms']:.0f} ms, {res['rps']:.0f} req/s, "
                    f"{res['errors']} errors, client CPU {res['client_cpu_ms']:.1f} ms/request")
            if res["wrk"]:
                w = res["wrk"]
                line += (f"; wrk: p50 {w['p50_ms']:.1f} ms, p95 {w['p95_ms']:.1f} ms, {w['rps']:.0f} req/s, "
                         f"{w['errors']} errors")
            print(line, flush=True)
            reads.append(res)
    finally:
        server.terminate()
        server.wait(20)

    if a.no_write:
        return

    def wrk_cells(w: Optional[dict]) -> str:
        return ("— | — | — | — | —" if w is None else
                f"{w['p50_ms']:.1f} | **{w['p95_ms']:.1f}** | {w['p99_ms']:.1f} | {w['rps']:,.0f} | {w['errors']}")

    rows = "\n".join(f"| `{x['path']}` | {x['alone_p50_ms']:.1f} | {x['p50_ms']:.0f} | {x['p95_ms']:.0f} | "
                     f"{x['rps']:,.0f} | {x['client_cpu_ms']:.1f} | {x['errors']} | {wrk_cells(x['wrk'])} |"
                     for x in reads)
    write_section("store-load", f"""## Store and dashboard under load (issues 8, 18)

Command: `python benchmarks/store_load.py --trials {a.trials} --epochs {a.epochs} --writers {a.writers} --clients {a.clients} --seconds {a.seconds:g} --server-workers {server_workers}`

**Writes** — the embedded store (redis-server on a unix socket, append-only file), {a.writers} writer processes,
{sweeps * TRIALS_PER_SWEEP:,} trials x {a.epochs} epochs through `ResultStore` (start_run / start_trial /
record_epoch / finish_trial, as sweeps write). Beside it, in the same run and on the same server, the baseline writes
the same sweeps (into another database, emptied after) with `record_epoch` as it was before issue 18, and the floor
writes as many bare records; rounds of one sweep per writer go all three ways in alternating order:

| writer | epoch records | records/s |
| --- | ---: | ---: |
| `ResultStore.record_epoch` (1 round trip: a Lua script reads the trial and updates epochs, trial, run, leaderboards, facets, version and event) | {n:,} | **{writes['new_rate']:,.0f}** |
| baseline, before issue 18: 2 round trips (an HMGET of the trial, then one pipeline) | {writes['baseline_n']:,} | {writes['baseline_rate']:,.0f} |
| bare `HSET` of the record (1 round trip, no bookkeeping) — the floor | {writes['bare_n']:,} | {writes['bare_rate']:,.0f} |

**One round trip ÷ two: {writes['speedup']:.2f}x** in records/s ({spread}); the leaderboards both wrote are
{'identical' if writes['same_board'] else 'DIFFERENT'}.

{n:,} records took {wall:.0f} s; the store then held {mem:,.0f} MiB. A sweep writes one record per trial-epoch, so
even 100 trials finishing an epoch every second use a fraction of a percent of this.

**Reads** — `tunelab dashboard --workers {server_workers}` over that store, {a.clients} concurrent clients on
loopback, {a.seconds:g} s per endpoint with each of two load generators, one after the other: the async client this
benchmark has always used (httpx, {a.clients} tasks in this Python process) and wrk (compiled, one thread,
{a.clients} connections; "errors" counts socket errors and non-2xx/3xx answers). Clients and server share the machine's cores;
where the httpx client's own CPU per request is about 1000 / its req/s, it is the client that sets the pace and its
latencies are its own queueing (its p50 cannot fall below about {a.clients} x its CPU per request, however fast the
server). One client: httpx, one request at a time, p50. Every page and API answer is kept
until the store's version moves, so these are cached answers after the first.

| endpoint | one client p50 ms | httpx p50 ms | httpx p95 ms | httpx req/s | httpx CPU ms/req | httpx errors | wrk p50 ms | wrk p95 ms | wrk p99 ms | wrk req/s | wrk errors |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}
""")


if __name__ == "__main__":
    main()
