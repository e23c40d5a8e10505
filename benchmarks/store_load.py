"""The result store and the dashboard under load.

    python benchmarks/store_load.py                      # 10,000 trials x 50 epochs; writes "store-load" in RESULTS.md
    python benchmarks/store_load.py --trials 1000 --epochs 10 --no-write     # a quick look

1. Writes: W writer processes fill the embedded store (the default server: unix socket, append-only file)
   through `ResultStore` exactly as sweeps do (start_run, start_trial, record_epoch per epoch, finish_trial),
   100 trials per sweep. Beside it, in the same run, the floor: the same number of epoch records written as one
   bare HSET each (what any writer pays for one round trip per record).
2. Reads: `tunelab dashboard` in its own process over that store, and 50 concurrent HTTP clients on loopback
   hitting each endpoint for a fixed time; p50/p95 latency and requests/s per endpoint. Clients and server share
   this machine's cores, so the figures are a floor for a dashboard host of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import scratch_root, write_section  # noqa: E402
from tunelab.cluster.head import free_port  # noqa: E402

TRIALS_PER_SWEEP = 100
BOARD = {"fine": {"val": "val_acc", "test": "test_acc"}}
MODELS = [("cnn", "cnn"), ("resnet20", "resnet_cifar"), ("wrn16_4", "wrn"), ("vit_tiny", "vit")]


def _write_sweeps(url: str, sweeps: list[int], epochs: int, out) -> None:
    from tunelab.results import ResultStore

    store = ResultStore.from_url(url)
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
                store.record_epoch(tid, {"epoch": e, "epochs": epochs, "train_loss": 1.0 / e, "val_loss": 1.1 / e,
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


def _parallel(fn, url: str, sweeps: int, epochs: int, writers: int) -> tuple[int, float]:
    q = mp.Queue()
    shards = [list(range(w, sweeps, writers)) for w in range(writers)]
    t0 = time.perf_counter()
    procs = [mp.Process(target=fn, args=(url, shard, epochs, q)) for shard in shards]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(n for n, _ in results), time.perf_counter() - t0


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
        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for _ in range(clients)))
        wall = time.perf_counter() - t0
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    return {"path": path, "requests": len(lat), "errors": errors, "rps": len(lat) / wall,
            "p50_ms": 1000 * q[49], "p95_ms": 1000 * q[94]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0, help="per endpoint")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()

    from tunelab.results import embedded

    tmp = scratch_root("tl-load-")
    url = embedded.ensure_running(tmp)
    sweeps = max(1, a.trials // TRIALS_PER_SWEEP)
    print(f"writing {sweeps * TRIALS_PER_SWEEP:,} trials x {a.epochs} epochs with {a.writers} writers …", flush=True)
    n, wall = _parallel(_write_sweeps, url, sweeps, a.epochs, a.writers)
    bare_n, bare_wall = _parallel(_write_bare, url, sweeps, a.epochs, a.writers)
    writes = {"epochs": n, "wall_s": wall, "rate": n / wall, "bare_rate": bare_n / bare_wall}
    print(f"ResultStore: {n:,} epoch records in {wall:.1f} s = {n / wall:,.0f}/s; bare HSET {bare_n / bare_wall:,.0f}/s",
          flush=True)

    import redis

    r = redis.Redis.from_url(url)
    r.delete(*[k for k in r.scan_iter("bare:*", count=10_000)])
    mem = r.info("memory")["used_memory"] / 2**20
    port = free_port()
    env = {**os.environ, "TUNELAB_DATA_DIR": str(tmp), "TUNELAB_REDIS_URL": ""}
    server = subprocess.Popen([sys.executable, "-m", "tunelab.cli", "dashboard", "--port", str(port)], env=env,
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
        paths = ["/api/leaderboard?dataset=mnist", "/leaderboard?dataset=mnist",
                 "/api/leaderboard?dataset=mnist&family=vit", "/api/runs/bench-0000",
                 "/api/runs/bench-0000/charts", "/api/trials/bench-0000-00007", "/api/boards"]
        reads = []
        for path in paths:
            httpx.get(base + path, timeout=120)  # warm
            alone = asyncio.run(_hammer(base, path, 1, min(3.0, a.seconds)))
            res = asyncio.run(_hammer(base, path, a.clients, a.seconds))
            res["alone_p50_ms"] = alone["p50_ms"]
            print(f"{path}: one client p50 {alone['p50_ms']:.0f} ms; {a.clients} clients p50 {res['p50_ms']:.0f} ms, "
                  f"p95 {res['p95_ms']:.0f} ms, {res['rps']:.0f} req/s, {res['errors']} errors", flush=True)
            reads.append(res)
    finally:
        server.terminate()
        server.wait(20)

    if a.no_write:
        return
    rows = "\n".join(f"| `{x['path']}` | {x['alone_p50_ms']:.0f} | {x['p50_ms']:.0f} | {x['p95_ms']:.0f} | {x['rps']:.0f} | "
                     f"{x['requests']:,} | {x['errors']} |"
                     for x in reads)
    write_section("store-load", f"""## Store and dashboard under load (issue 8)

Command: `python benchmarks/store_load.py --trials {a.trials} --epochs {a.epochs} --writers {a.writers} --clients {a.clients} --seconds {a.seconds:g}`

**Writes** — the embedded store (redis-server on a unix socket, append-only file), {a.writers} writer processes,
{sweeps * TRIALS_PER_SWEEP:,} trials x {a.epochs} epochs through `ResultStore` (start_run / start_trial /
record_epoch / finish_trial, as sweeps write):

| writer | epoch records | records/s |
| --- | ---: | ---: |
| `ResultStore.record_epoch` (2 round trips: read the trial, then one pipeline updating epochs, trial, run and leaderboard) | {n:,} | {writes['rate']:,.0f} |
| bare `HSET` of the record (1 round trip, no bookkeeping) — the floor | {bare_n:,} | {writes['bare_rate']:,.0f} |

{n:,} records took {wall:.0f} s; the store then held {mem:,.0f} MiB. A sweep writes one record per trial-epoch, so
even 100 trials finishing an epoch every second use a fraction of a percent of this.

**Reads** — `tunelab dashboard` (one uvicorn process) over that store, {a.clients} concurrent clients on loopback,
{a.seconds:g} s per endpoint (clients share the 2 cores with the server):

| endpoint | one client: p50 ms | {a.clients} clients: p50 ms | p95 ms | req/s | requests | errors |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}
""")


if __name__ == "__main__":
    main()
