"""Writes that wait out a dead store, are spilled when it never comes back, and are replayed later."""

import json

from tests.conftest import _free_port, in_process
from tunelab.results import keys
from tunelab.results.buffer import BufferedWriter

BOARD = {"fine": {"val": "val_acc", "test": "test_acc"}}


def test_writes_wait_spill_and_replay(store, redis_server, tmp_path, monkeypatch, capsys):
    w = BufferedWriter(f"redis://127.0.0.1:{_free_port()}/0")  # nothing listens there
    assert not w.call("start_run", "r1", kind="sweep", name="s", dataset="mnist", labels="fine", config={})
    w.call("start_trial", "r1-t0", run_id="r1", model="cnn", dataset="mnist", labels="fine", boards=BOARD)
    for e in (1, 2):
        w.call("record_epoch", "r1-t0", {"epoch": e, "val_acc": 0.5 + e / 10})
    w.call("finish_trial", "r1-t0", "completed")
    assert len(w.pending) == 5 and w.outages >= 1
    assert not w.drain(timeout_s=0.5, interval_s=0.1)
    spilled = w.spill(tmp_path / "unwritten.jsonl")
    assert [json.loads(line)["method"] for line in spilled.read_text().splitlines()] == [
        "start_run", "start_trial", "record_epoch", "record_epoch", "finish_trial"]

    env = {"TUNELAB_REDIS_URL": redis_server.url}
    res = in_process(monkeypatch, capsys, env, "store", "replay", str(spilled))
    assert res.returncode == 0 and "replayed 5 write(s)" in res.stdout
    assert store.get_trial("r1-t0")["best_val_acc"] == 0.7 and store.get_trial("r1-t0")["status"] == "completed"
    snapshot = {k: store.r.dump(k) for k in store.r.scan_iter("tl:*") if k != keys.VERSION and not k.startswith(keys.trial("r1-t0"))}
    in_process(monkeypatch, capsys, env, "store", "replay", str(spilled))  # twice: idempotent
    assert {k: store.r.dump(k) for k in snapshot} == snapshot
    assert [e["epoch"] for e in store.epochs("r1-t0")] == [1, 2]

    # the same writer, once its server is reachable, flushes what it kept
    w.url = redis_server.url
    assert w.drain(timeout_s=5, interval_s=0.1) and not w.pending


def test_replay_refuses_a_file_that_is_not_ours(redis_server, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"method": "flushdb", "args": [], "kwargs": {}}\n')
    res = in_process(monkeypatch, capsys, {"TUNELAB_REDIS_URL": redis_server.url}, "store", "replay", str(bad))
    assert res.returncode == 2 and "'flushdb' is not a store write" in res.stderr and res.stderr.count("\n") == 1
