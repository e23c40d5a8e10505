"""The Redis result store against a real redis-server: round trips, idempotency, leaderboards, embedded mode."""

import json
import time

import pytest
import redis

from tests.conftest import RedisServer
from tunelab.results import ResultStore, StoreError, embedded, keys, open_store, redact

BOARDS = {"fine": {"val": "val_acc", "test": "test_acc"}}
CIFAR_BOARDS = {"fine": {"val": "val_acc", "test": "test_acc"}, "coarse": {"val": "val_acc_coarse", "test": "test_acc_coarse"}}


def _trial(store, run, trial, dataset="mnist", boards=BOARDS, model="cnn"):
    store.start_run(run, kind="train", name=run, dataset=dataset, labels="fine", config={"lr": 0.1})
    store.start_trial(trial, run_id=run, model=model, dataset=dataset, labels="fine", boards=boards, params={"lr": 0.1})


def test_run_trial_epoch_round_trip(store):
    _trial(store, "r1", "r1-t0")
    store.record_epoch("r1-t0", {"epoch": 1, "train_loss": 0.5, "val_acc": 0.9, "images_per_s": 100.0, "params": 42})
    store.record_epoch("r1-t0", {"epoch": 2, "train_loss": 0.3, "val_acc": 0.95, "test_acc": 0.94, "time_total_s": 7.5},
                       checkpoint="/ckpt/2")
    store.finish_trial("r1-t0", "completed")
    store.finish_run("r1", "completed")
    run = store.get_run("r1")
    assert run["status"] == "completed" and run["best_trial"] == "r1-t0" and run["config"] == {"lr": 0.1}
    assert run["wall_time_s"] >= 0
    t = store.get_trial("r1-t0")
    assert t["best_val_acc"] == 0.95 and t["best_epoch"] == 2 and t["test_acc"] == 0.94
    assert t["epochs_done"] == 2 and t["checkpoint"] == "/ckpt/2" and t["n_params"] == 42
    assert t["params"] == {"lr": 0.1} and t["status"] == "completed"
    assert [e["epoch"] for e in store.epochs("r1-t0")] == [1, 2]
    assert store.epochs("r1-t0")[0]["train_loss"] == 0.5


def test_what_a_trial_ran_on_is_kept_with_it_and_its_run(store):
    _trial(store, "r1", "r1-t0")
    cpu = {"precision": "bf16", "device": "cpu", "device_name": "Some CPU", "cpu_kind": "avx512_bf16", "workers": 1,
           "threads": 2, "torch": "2.14.1", "channels_last": False, "compile": False}
    store.record_epoch("r1-t0", {"epoch": 1, "val_acc": 0.5, "runtime": cpu})
    store.record_epoch("r1-t0", {"epoch": 2, "val_acc": 0.6})
    assert store.get_trial("r1-t0")["runtime"] == cpu and store.get_run("r1")["runtime"] == cpu
    assert "runtime" not in store.epochs("r1-t0")[0]  # a trial's fact, not an epoch's metric
    # a second trial of the run (a sweep's) on other hardware keeps its own; the run keeps its first trial's
    store.start_trial("r1-t1", run_id="r1", model="cnn", dataset="mnist", labels="fine", boards=BOARDS)
    gpu = {**cpu, "device": "cuda", "device_name": "NVIDIA H100", "cuda": "13.0"}
    store.record_epoch("r1-t1", {"epoch": 1, "val_acc": 0.7, "runtime": gpu})
    assert store.get_trial("r1-t1")["runtime"] == gpu and store.get_run("r1")["runtime"] == cpu


def test_replaying_epochs_changes_nothing(store):
    _trial(store, "r1", "r1-t0")
    history = [{"epoch": 1, "val_acc": 0.8}, {"epoch": 2, "val_acc": 0.9}, {"epoch": 3, "val_acc": 0.85, "test_acc": 0.84}]
    for m in history:
        store.record_epoch("r1-t0", m)
    # every key but the trial's own (its `updated` time moves) and the version counter (it counts writes)
    before = {k: store.r.dump(k) for k in store.r.scan_iter("tl:*")
              if not k.startswith(keys.trial("r1-t0")) and k != keys.VERSION}
    trial_before = store.get_trial("r1-t0")
    for m in history:  # replay, as `tunelab results import` or a restarted callback would
        store.record_epoch("r1-t0", m)
    assert len(store.epochs("r1-t0")) == 3
    trial_after = store.get_trial("r1-t0")
    for k in ("best_val_acc", "best_epoch", "epochs_done", "test_acc"):
        assert trial_after[k] == trial_before[k]
    after = {k: store.r.dump(k) for k in before}
    assert after == before
    # an early epoch arriving late must not lower the best or the epoch count
    store.record_epoch("r1-t0", {"epoch": 1, "val_acc": 0.8})
    assert store.get_trial("r1-t0")["best_val_acc"] == 0.9 and store.get_trial("r1-t0")["epochs_done"] == 3


def test_leaderboard_ranks_by_validation_and_joins_runs(store):
    for i, (val, test) in enumerate([(0.91, 0.90), (0.97, 0.96), (0.94, 0.95)]):
        _trial(store, f"r{i}", f"r{i}-t0", model=f"m{i}")
        store.record_epoch(f"r{i}-t0", {"epoch": 1, "val_acc": val - 0.1})
        store.record_epoch(f"r{i}-t0", {"epoch": 2, "val_acc": val, "test_acc": test, "images_per_s": 10.0 * i})
    rows = store.leaderboard("mnist", "fine")
    assert [r["run_id"] for r in rows] == ["r1", "r2", "r0"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["model"] == "m1" and rows[0]["val_acc"] == 0.97 and rows[0]["test_acc"] == 0.96
    assert rows[0]["epochs"] == 2 and rows[0]["run_name"] == "r1"
    assert store.leaderboard("mnist", "fine", limit=1)[0]["run_id"] == "r1"
    assert store.leaderboard("cifar100", "fine") == []


def test_cifar_fine_run_also_ranks_on_the_coarse_board(store):
    _trial(store, "c1", "c1-t0", dataset="cifar100", boards=CIFAR_BOARDS)
    store.record_epoch("c1-t0", {"epoch": 1, "val_acc": 0.30, "val_acc_coarse": 0.45, "test_acc": 0.29, "test_acc_coarse": 0.44})
    fine = store.leaderboard("cifar100", "fine")
    coarse = store.leaderboard("cifar100", "coarse")
    assert fine[0]["val_acc"] == 0.30 and fine[0]["test_acc"] == 0.29
    assert coarse[0]["val_acc"] == 0.45 and coarse[0]["test_acc"] == 0.44


def test_runs_newest_first_with_their_best(store):
    _trial(store, "old", "old-t0")
    time.sleep(0.01)
    _trial(store, "new", "new-t0")
    store.record_epoch("new-t0", {"epoch": 1, "val_acc": 0.5, "test_acc": 0.4})
    store.finish_run("new", "completed")
    runs = store.list_runs()
    assert [r["id"] for r in runs] == ["new", "old"]
    assert runs[0]["best_val_acc"] == 0.5 and runs[0]["test_acc"] == 0.4 and runs[0]["model"] == "cnn"
    assert runs[1]["status"] == "running"
    assert [t["id"] for t in store.run_trials("new")] == ["new-t0"]


def test_every_write_is_published_for_live_views(store):
    sub = store.r.pubsub()
    sub.subscribe(keys.EVENTS)
    sub.get_message(timeout=1)  # subscription confirmation
    _trial(store, "r1", "r1-t0")
    store.record_epoch("r1-t0", {"epoch": 1, "val_acc": 0.5})
    events = []
    for _ in range(10):
        if len(events) == 3:
            break
        m = sub.get_message(timeout=1)
        if m and m["type"] == "message":
            events.append(json.loads(m["data"]))
    assert [e["type"] for e in events] == ["run", "trial", "epoch"]
    assert events[-1] == {"type": "epoch", "run": "r1", "trial": "r1-t0", "epoch": 1}


def test_subscribe_events_reads_the_live_updates_asynchronously(store):
    import asyncio

    async def listen() -> tuple:
        async with store.subscribe_events() as events:
            _trial(store, "r1", "r1-t0")
            store.record_epoch("r1-t0", {"epoch": 1, "val_acc": 0.5})
            got = []
            for _ in range(10):
                data = await events.next(timeout=1.0)
                if data is not None:
                    got.append(json.loads(data))
                if len(got) == 3:
                    break
            return got, await events.next(timeout=0.1)  # nothing more: None once the timeout passes

    got, quiet = asyncio.run(listen())
    assert [e["type"] for e in got] == ["run", "trial", "epoch"] and quiet is None
    assert got[-1] == {"type": "epoch", "run": "r1", "trial": "r1-t0", "epoch": 1}


def test_health_and_run_count(store):
    assert store.count_runs() == 0
    _trial(store, "r1", "r1-t0")
    _trial(store, "r2", "r2-t0")
    assert store.count_runs() == 2
    assert store.health() == {"store": store.url, "schema_version": keys.SCHEMA_VERSION, "runs": 2}
    store.r.set(keys.SCHEMA, 999)
    with pytest.raises(StoreError, match="schema v999"):
        store.health()


def test_unknown_trial_is_an_error(store):
    with pytest.raises(StoreError, match="start_trial first"):
        store.record_epoch("nope", {"epoch": 1, "val_acc": 0.1})


def test_password_protected_server_and_redaction(tmp_path):
    server = RedisServer(tmp_path / "pw", password="s3cret-pw").start()
    try:
        s = ResultStore.from_url(server.url)
        assert s.r.ping()
        wrong = server.url.replace("s3cret-pw", "wrong-pw")
        with pytest.raises(StoreError) as e:
            ResultStore.from_url(wrong)
        assert "wrong-pw" not in str(e.value) and "***" in str(e.value)
    finally:
        server.stop()
    assert redact("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert redact("rediss://user:pw@h:6380/2") == "rediss://user:***@h:6380/2"
    assert redact("unix:///tmp/x.sock") == "unix:///tmp/x.sock"


def test_unreachable_server_fails_fast_with_the_fix():
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="TUNELAB_REDIS_URL"):
        ResultStore.from_url("redis://127.0.0.1:1/0")
    assert time.monotonic() - t0 < 10
    with pytest.raises(StoreError, match="invalid Redis URL"):
        ResultStore.from_url("http://example/0")


def test_other_schema_version_is_refused(store):
    store.r.set(keys.SCHEMA, 999)
    with pytest.raises(StoreError, match="schema v999"):
        store.check()


def test_embedded_server_starts_once_persists_and_uses_no_tcp_port(tmp_path):
    url = embedded.ensure_running(tmp_path)
    try:
        assert url.startswith("unix://")
        pid = embedded.status(tmp_path)["pid"]
        assert embedded.ensure_running(tmp_path) == url and embedded.status(tmp_path)["pid"] == pid  # reused
        s = open_store(None, tmp_path)
        assert s.r.config_get("port")["port"] == "0"  # never a TCP port, so never Ray's 6379
        _trial(s, "r1", "r1-t0")
        s.record_epoch("r1-t0", {"epoch": 1, "val_acc": 0.77})
        assert embedded.stop(tmp_path)
        assert not embedded.status(tmp_path)["running"]
        s2 = open_store(None, tmp_path)  # restarted from its append-only file
        assert s2.leaderboard("mnist")[0]["val_acc"] == 0.77
        assert embedded.status(tmp_path)["pid"] != pid
    finally:
        embedded.stop(tmp_path)
    assert not embedded.stop(tmp_path)


def test_embedded_socket_path_stays_under_the_kernel_limit(tmp_path):
    deep = tmp_path / ("x" * 120)
    assert len(str(embedded.socket_path(deep))) <= 100
    url = embedded.ensure_running(deep)
    try:
        assert redis.Redis.from_url(url).ping()
    finally:
        embedded.stop(deep)
