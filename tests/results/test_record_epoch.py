"""`ResultStore.record_epoch` in one round trip (a Lua script, results/scripts.py) leaves Redis exactly as the
two-round-trip path it replaced (issue 18): every key byte for byte (DUMP), every event, every error."""

import json
import math
from pathlib import Path

import pytest
import redis

from tunelab.results import StoreError, keys, scripts
from tunelab.results import store as store_module
from tunelab.results.store import _LAST_FIELDS, _TEST_PREFIX, _TRIAL_FIELDS, _dumps

BOARDS = {"fine": {"val": "val_acc", "test": "test_acc"}}
CIFAR_BOARDS = {"fine": {"val": "val_acc", "test": "test_acc"}, "coarse": {"val": "val_acc_coarse", "test": "test_acc_coarse"}}
RUN = 'sweep/ü "1" \\ 😀\t'  # for the event's JSON to escape: slash, quote, backslash, non-ASCII, astral, tab
CPU = {"device": "cpu", "precision": "bf16", "threads": 2}
GPU = {"device": "cuda", "device_name": "NVIDIA H200", "precision": "bf16"}


def two_round_trips(store, trial_id: str, metrics: dict, checkpoint: str = "") -> None:
    """The reference: `record_epoch` as it was before issue 18 (an HMGET of the trial, then one pipeline)."""
    epoch = int(metrics["epoch"])
    trial = store.r.hmget(keys.trial(trial_id), "run", "boards", "best_val_acc", "epochs_done", "dataset",
                          "family", "model", "augment")
    run_id, boards_json, best, done, dataset, family, model, augment = trial
    if run_id is None:
        raise StoreError(f"no trial {trial_id!r} in the store; start_trial first")
    boards = json.loads(boards_json or "{}")
    record = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
    record.setdefault("recorded_at", store_module._now())
    fields = {"updated": store_module._now(), "epochs_done": max(epoch, int(done or 0))}
    for k in _LAST_FIELDS:
        if k in record:
            fields[f"last_{k}"] = record[k]
    if "params" in record:
        fields["n_params"] = record["params"]
    if "images_per_s" in record:
        fields["images_per_s"] = record["images_per_s"]
    if "time_total_s" in record:
        fields["train_time_s"] = record["time_total_s"]
    fields.update((k, record[k]) for k in _TRIAL_FIELDS if record.get(k) is not None)
    for k, v in record.items():
        if k.startswith(_TEST_PREFIX):
            fields[k] = v
    if checkpoint:
        fields["checkpoint"] = checkpoint
    runtime = metrics.get("runtime")
    if isinstance(runtime, dict):
        fields["runtime"] = _dumps(runtime)
    val = record.get("val_acc")
    if val is not None and (best is None or float(val) > float(best)):
        fields["best_val_acc"] = val
        fields["best_epoch"] = epoch
        for k, v in record.items():
            if k.startswith("val_"):
                fields[f"best_{k}"] = v
    with store.r.pipeline() as p:
        p.hset(keys.trial_epochs(trial_id), str(epoch), _dumps(record))
        p.hset(keys.trial(trial_id), mapping=fields)
        if "runtime" in fields:
            p.hsetnx(keys.run(run_id), "runtime", fields["runtime"])
        if val is not None:
            p.zadd(keys.run_trials(run_id), {trial_id: float(val)}, gt=True)
        for label, names in boards.items():
            score = record.get(names["val"])
            if score is not None:
                p.zadd(keys.leaderboard(dataset, label), {trial_id: float(score)}, gt=True)
                p.sadd(keys.board_facet(dataset, label, "family"), family or model or "")
                p.sadd(keys.board_facet(dataset, label, "augment"), augment or "none")
        store._publish(p, "epoch", run=run_id, trial=trial_id, epoch=epoch)
        p.execute()


def one_round_trip(store, trial_id, metrics, checkpoint=""):
    store.record_epoch(trial_id, metrics, checkpoint=checkpoint)


class Clock:
    """The store's clock in a play of writes: second `i` at step `i`, one more millisecond each time it is read. Two
    plays of the same steps read the same times (even where one path reads the clock before failing, one not)."""

    def __init__(self):
        self.step(-1)

    def step(self, i: int) -> None:
        self.base, self.reads = 1_700_000_000 + i, 0

    def __call__(self) -> float:
        self.reads += 1
        return round(self.base + self.reads / 1000, 3)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(store_module, "_now", clock)
    return clock


def _setup(store):
    store.start_run(RUN, kind="sweep", name="cifar", dataset="cifar100", labels="fine", config={"lr": 0.1})
    store.start_trial("c0", run_id=RUN, model="resnet20", family="resnet_cifar", dataset="cifar100", labels="fine",
                      boards=CIFAR_BOARDS, augment="crop_flip", params={"lr": 0.1})
    store.start_trial("c1", run_id=RUN, model="vit_tiny", family="vit", dataset="cifar100", labels="fine",
                      boards=CIFAR_BOARDS, params={"lr": 0.01})
    store.start_run("m", kind="train", name="mnist", dataset="mnist", labels="fine", config={})
    # no family (start_trial keeps the model's name) and an empty augment (the facet says "none")
    store.start_trial("m-t0", run_id="m", model="cnn", dataset="mnist", labels="fine", boards=BOARDS, augment="")


# (trial, metrics, checkpoint): improving and worsening val_acc and coarse accuracy, a tie (not strictly better),
# runtime, checkpoints, test and inference fields, numbers redis-py formats in its own way, replays, a late epoch
STEPS = [
    ("c0", {"epoch": 1, "train_loss": 2.1, "val_loss": 1.9, "val_acc": 0.1 + 0.2, "val_acc_coarse": 0.41, "lr": 0.1,
            "images_per_s": 1234.5, "epoch_time_s": 10.25, "time_total_s": 10.25, "params": 272_474, "runtime": CPU,
            "extra": None, "note": "warm-up"}, "/ckpt/c0/1"),
    ("c1", {"epoch": 1, "val_acc": 0.2, "val_acc_coarse": 0.33, "runtime": GPU}, ""),  # the run keeps c0's runtime
    ("c0", {"epoch": 2, "train_loss": 1.5, "val_loss": 1.4, "val_acc": 0.5, "val_acc_coarse": 0.4, "lr": 0.05,
            "time_total_s": 20.5}, "/ckpt/c0/2"),
    ("c0", {"epoch": 3, "val_acc": 0.45, "val_acc_coarse": 0.6, "recorded_at": 1234.5, "time_total_s": 1e-07}, ""),
    ("c0", {"epoch": 4.0, "val_acc": 0.5, "val_acc_coarse": 0.58, "test_acc": 0.49, "test_acc_coarse": 0.57,
            "infer_images_per_s": 5000.0, "infer_batch_size": 256, "runtime": GPU}, "/ckpt/c0/4"),
    ("c0", {"epoch": 2, "train_loss": 1.5, "val_loss": 1.4, "val_acc": 0.5, "val_acc_coarse": 0.4, "lr": 0.05,
            "time_total_s": 20.5}, "/ckpt/c0/2"),  # replayed
    ("c0", {"epoch": 1, "val_acc": 0.3, "val_acc_coarse": 0.41}, ""),  # late: lowers neither best nor epochs_done
    ("c0", {"epoch": 5, "val_acc": 1, "val_acc_coarse": 0.123456789012345678, "infer_images_per_s": None,
            "big": 10**20, "flag": True}, ""),
    ("c1", {"epoch": 2, "val_acc": 0.25, "val_loss": 1.2}, ""),  # no coarse score: only the fine board moves
    ("c1", {"epoch": 3, "val_acc": "0.26", "val_acc_coarse": 2**60 + 1}, ""),  # numbers as text, past a double's ints
    ("c1", {"epoch": 4, "val_acc": 0.2, "val_acc_coarse": float("inf"), "epoch_time_s": float("nan")}, ""),
    ("m-t0", {"epoch": 1, "train_loss": 0.5}, ""),  # no validation yet: no best, no ranking
    ("m-t0", {"epoch": 2, "val_acc": 0.9, "val_loss": 0.3, "images_per_s": 9e15}, ""),
    ("m-t0", {"epoch": 3, "val_acc": 0.95, "test_acc": 0.94, "runtime": CPU}, "/ckpt/m/3"),
    ("m-t0", {"epoch": 3, "val_acc": 0.95, "test_acc": 0.94, "runtime": CPU}, "/ckpt/m/3"),  # replayed
    ("m-t0", {"epoch": 4, "val_acc": 0.95, "val_loss": 0.25}, ""),  # a tie is no new best
    ("m-t0", {"epoch": 2, "val_acc": 0.9, "val_loss": 0.3, "images_per_s": 9e15}, ""),  # late: epochs_done stays 4
]


def _snapshot(r) -> dict:
    """Every key: its type, its contents read back, and its DUMP (which also holds a hash's field order)."""
    read = {"hash": r.hgetall, "set": r.smembers, "string": r.get,
            "zset": lambda k: r.zrange(k, 0, -1, withscores=True)}
    out = {}
    for k in sorted(r.scan_iter("*")):
        kind = r.type(k)
        out[k] = (kind, read[kind](k), r.dump(k))
    return out


def _play(store, clock, record, steps, setup=_setup) -> tuple[list, list, list]:
    """Redis after each of `steps` written by `record` on an empty database; the events published; what each step
    raised."""
    store.r.flushdb()
    store.check()
    sub = store.r.pubsub()
    sub.subscribe(keys.EVENTS)
    assert sub.get_message(timeout=5)["type"] == "subscribe"
    clock.step(-1)
    setup(store)
    outcomes, states = [], []
    for i, (trial, metrics, checkpoint) in enumerate(steps):
        clock.step(i)
        try:
            record(store, trial, dict(metrics), checkpoint)
            outcomes.append(None)
        except (StoreError, redis.RedisError, ValueError, OverflowError) as e:
            # what the caller sees, compared between the two paths; the type only where the text is the packer's or
            # the server's (hiredis words a bool argument otherwise than the encoder; a pipeline's error names the
            # command's place in it)
            outcomes.append((type(e).__name__, "" if isinstance(e, (redis.ResponseError, redis.DataError)) else str(e)))
        states.append(_snapshot(store.r))  # after each step: a later step must not hide an earlier difference
    events = []
    while len(events) < int(store.r.get(keys.VERSION) or 0):  # one event per bump of the version counter
        m = sub.get_message(timeout=5)
        assert m is not None, f"only {len(events)} events arrived"
        if m["type"] == "message":
            events.append(m["data"])
    sub.close()
    return states, events, outcomes


def _assert_same(store, clock, steps, setup=_setup, dump=True) -> tuple[list, list, list]:
    before = _play(store, clock, two_round_trips, steps, setup)
    after = _play(store, clock, one_round_trip, steps, setup)
    assert after[2] == before[2]  # what each step raised
    for i, (now, then) in enumerate(zip(after[0], before[0])):
        for key in sorted(set(now) | set(then)):  # a readable difference first
            assert now.get(key, (None, None))[:2] == then.get(key, (None, None))[:2], (i, steps[i], key)
        if dump:
            assert now == then, (i, steps[i])
    assert after[1] == before[1]  # the events' JSON text, byte for byte, in order
    return after


def test_one_round_trip_leaves_redis_as_the_two_round_trip_path_did(store, clock):
    _, events, outcomes = _assert_same(store, clock, STEPS)
    assert outcomes == [None] * len(STEPS)
    # and that state is the right one, not merely the same one
    c0 = store.get_trial("c0")
    assert (c0["best_val_acc"], c0["best_epoch"], c0["best_val_acc_coarse"]) == (1, 5, 0.123456789012345678)
    assert c0["epochs_done"] == 5 and c0["checkpoint"] == "/ckpt/c0/2" and c0["runtime"] == GPU
    assert c0["test_acc_coarse"] == 0.57 and c0["infer_images_per_s"] == 5000.0 and c0["train_time_s"] == 20.5
    assert store.get_run(RUN)["runtime"] == CPU  # the run's first trial's runtime: later ones do not replace it
    assert store.r.zrange(keys.leaderboard("cifar100", "coarse"), 0, -1, withscores=True) == \
        [("c0", 0.6), ("c1", math.inf)]  # coarse ranks on its own metric: c0's best coarse came at epoch 3
    assert store.r.zscore(keys.leaderboard("cifar100", "fine"), "c1") == 0.26  # "0.26": float() of it, as before
    assert store.r.smembers(keys.board_facet("cifar100", "coarse", "family")) == {"resnet_cifar", "vit"}
    assert store.r.smembers(keys.board_facet("cifar100", "fine", "augment")) == {"crop_flip", "none"}
    assert store.r.smembers(keys.board_facet("mnist", "fine", "family")) == {"cnn"}
    assert store.r.smembers(keys.board_facet("mnist", "fine", "augment")) == {"none"}
    m = store.get_trial("m-t0")
    assert m["best_epoch"] == 3 and m["best_val_loss"] == 0.3 and m["images_per_s"] == 9e15 and m["epochs_done"] == 4
    assert [e["epoch"] for e in store.epochs("c0")] == [1, 2, 3, 4, 5]
    assert json.loads(events[-1]) == {"type": "epoch", "run": "m", "trial": "m-t0", "epoch": 2}
    epoch_events = [json.loads(e) for e in events if json.loads(e)["type"] == "epoch"]
    assert epoch_events[0] == {"type": "epoch", "run": RUN, "trial": "c0", "epoch": 1}
    assert len(epoch_events) == len(STEPS)


def _setup_otherwise(store):
    """Trials as another writer may have left them: fields missing or empty, a board ranking on a metric of its own."""
    _setup(store)
    store.r.hdel(keys.trial("c1"), "family", "dataset")  # the facet falls back to the model; the board to "None"
    store.r.hset(keys.trial("c0"), "family", "")
    store.r.hdel(keys.trial("m-t0"), "boards")  # on no board
    store.start_trial("x0", run_id="m", model="cnn", dataset="mnist", labels="fine",
                      boards={"fine": {"val": "val_acc"}, "robust": {"val": "robust_acc", "test": "test_robust"}})


def test_trials_written_otherwise_and_boards_on_other_metrics_as_before(store, clock):
    steps = [
        ("c1", {"epoch": 1, "val_acc": 0.5, "val_acc_coarse": 0.4}, ""),
        ("c0", {"epoch": 1, "val_acc": 0.5, "val_acc_coarse": 0.4}, ""),
        ("m-t0", {"epoch": 1, "val_acc": 0.5}, ""),
        ("x0", {"epoch": 1, "val_acc": 0.5, "robust_acc": True}, ""),  # a bool ranks as float(True)
        ("x0", {"epoch": 2, "val_acc": 0.6, "robust_acc": "2.5"}, ""),  # text as its float()
        ("x0", {"epoch": 3, "val_acc": 0.7, "robust_acc": 2**60 + 1}, ""),
    ]
    _, _, outcomes = _assert_same(store, clock, steps, _setup_otherwise)
    assert outcomes == [None] * len(steps)
    assert store.r.zrange(keys.leaderboard("None", "coarse"), 0, -1) == ["c1"]
    assert store.r.smembers(keys.board_facet("cifar100", "fine", "family")) == {"resnet20"}
    assert store.r.smembers(keys.board_facet("None", "fine", "family")) == {"vit_tiny"}
    assert store.r.zscore(keys.leaderboard("mnist", "robust"), "x0") == float(2**60 + 1)
    assert store.r.zrange(keys.leaderboard("mnist", "fine"), 0, -1) == ["x0"]  # m-t0 is on no board


def test_values_a_plain_write_refuses_fail_as_before_and_write_nothing(store, clock):
    nan = math.nan
    steps = [
        ("c0", {"epoch": 1, "val_acc": 0.5, "val_acc_coarse": "n/a"}, ""),  # a board's score is no number: ValueError
        ("c0", {"epoch": 1, "val_acc": "n/a"}, ""),  # val_acc is no number
        ("c0", {"epoch": 1, "val_acc": 0.5, "val_flag": True}, ""),  # a new best holding a bool: DataError
        ("c0", {"epoch": 1, "val_acc": 0.5, "val_acc_coarse": 0.4}, ""),
        ("c0", {"epoch": 2, "val_acc": 0.4, "val_flag": True}, ""),  # not a new best: the bool is never written
        ("c0", {"epoch": 3, "val_acc": 0.6, "val_extra": None}, ""),  # a new best holding None: DataError
        ("c0", {"epoch": 3, "val_acc": 0.6, "train_loss": None}, ""),  # None in a last_* field: DataError
        ("c0", {"epoch": 3, "val_acc": 10**400}, ""),  # too big for a float: OverflowError
        ("nope", {"epoch": 1, "val_acc": 0.5}, ""),  # no such trial
        ("nope", {"epoch": 1, "val_acc": 0.5, "train_loss": None}, ""),  # no such trial comes first
        ("c0", {"epoch": 3, "val_acc": 0.6, "val_acc_coarse": "n/a", "train_loss": None}, ""),  # float() comes first
        ("c1", {"epoch": 1, "val_acc": nan, "val_acc_coarse": 0.3}, ""),  # Redis refuses the score; the rest lands
        ("c1", {"epoch": 2, "val_acc": 0.7, "val_acc_coarse": nan}, ""),
    ]
    # Contents only, not DUMP: where the old path read the trial and then failed to encode its pipeline, its HMGET
    # still moved the trial hash's incremental rehash along (the new path sends nothing), and a hashtable-encoded
    # hash DUMPs in bucket order.
    _, _, outcomes = _assert_same(store, clock, steps, dump=False)
    assert [o and o[0] for o in outcomes] == ["ValueError", "ValueError", "DataError", None, None, "DataError",
                                               "DataError", "OverflowError", "StoreError", "StoreError", "ValueError",
                                               "ResponseError", "ResponseError"]


def test_a_missing_trial_is_an_error_and_nothing_is_written(store):
    _setup(store)
    store.record_epoch("c0", {"epoch": 1, "val_acc": 0.5, "val_acc_coarse": 0.4})
    before = _snapshot(store.r)
    sub = store.r.pubsub()
    sub.subscribe(keys.EVENTS)
    sub.get_message(timeout=5)
    with pytest.raises(StoreError, match=r"^no trial 'nope' in the store; start_trial first$"):
        store.record_epoch("nope", {"epoch": 2, "val_acc": 0.9, "runtime": CPU}, checkpoint="/ckpt")
    assert _snapshot(store.r) == before  # the version counter too: no event either
    assert sub.get_message(timeout=0.2) is None
    sub.close()


def test_one_round_trip_and_the_script_is_loaded_again_after_a_flush(store, monkeypatch):
    _setup(store)
    sent = []
    send = store.r.execute_command
    monkeypatch.setattr(store.r, "execute_command", lambda *a, **kw: sent.append(a[0]) or send(*a, **kw))
    store.record_epoch("c0", {"epoch": 1, "val_acc": 0.5})
    assert sent == ["EVALSHA"]
    store.r.script_flush()
    sent.clear()
    store.record_epoch("c0", {"epoch": 2, "val_acc": 0.6})  # NOSCRIPT: loaded and run again
    assert sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA"]
    sent.clear()
    store.record_epoch("c0", {"epoch": 3, "val_acc": 0.7})
    assert sent == ["EVALSHA"]
    assert store.get_trial("c0")["best_epoch"] == 3 and store.get_trial("c0")["epochs_done"] == 3


def test_the_epoch_event_is_published(store):
    _setup(store)
    sub = store.r.pubsub()
    sub.subscribe(keys.EVENTS)
    sub.get_message(timeout=5)
    version = store.version()
    store.record_epoch("c0", {"epoch": 7, "val_acc": 0.5})
    m = sub.get_message(timeout=5)
    sub.close()
    assert m["data"] == _dumps({"type": "epoch", "run": RUN, "trial": "c0", "epoch": 7})
    assert json.loads(m["data"]) == {"type": "epoch", "run": RUN, "trial": "c0", "epoch": 7}
    assert store.version() == version + 1


# Records of finite numbers only (what training reports) go the plain way: the script takes each value's text out of
# the record's JSON. val_* and test_* keys out of sorted order (a first HSET lays best_*/test_* out in the record's
# order), ints as scores and past a double's ints, every shape of repr, keys holding the JSON's punctuation.
PLAIN_STEPS = [
    ("c0", {"epoch": 1, "val_loss": 1.9, "train_loss": 2.1, "val_top5": 0.5, "val_acc": 0.1 + 0.2,
            "val_acc_coarse": 0.41, "lr": 0.1, "images_per_s": 1234.5, "epoch_time_s": 10.25, "time_total_s": 10.25,
            "params": 272_474, "runtime": CPU}, "/ckpt/c0/1"),
    ("c1", {"val_acc": 1, "epoch": 1, "val_acc_coarse": 2**60 + 1, "big": 10**20, "tiny": 5e-324, "neg": -0.0,
            "e16": 1e16, "e-5": 1e-05, "third": 1 / 3}, ""),
    ("c0", {"epoch": 2, "test_top5": 0.9, "test_acc": 0.5, "test_acc_coarse": 0.6, "infer_images_per_s": 5000.0,
            "infer_batch_size": 256, "val_acc": 0.5, "val_acc_coarse": 0.4, "time_total_s": 20.5}, "/ckpt/c0/2"),
    ("c0", {"epoch": 3, "val_acc": 0.45, "val_acc_coarse": 0.6, "a,b": 1, "x}y": 2.5, "k:v": 3, "": 4, "s p": 5.5,
            "{": 6}, ""),
    ("c0", {"epoch": 2.0, "test_top5": 0.9, "test_acc": 0.5, "val_acc": 0.5, "val_acc_coarse": 0.4}, "/ckpt/c0/2"),
    ("c1", {"epoch": 2, "val_acc": 1.0, "val_loss": 0.5}, ""),  # a tie with the int 1: no new best
    ("c1", {"epoch": 3, "val_acc": 1.5, "val_loss": 0.4, "val_acc_coarse": 2**60 + 3}, ""),
    ("m-t0", {"epoch": 1, "train_loss": 0.5, "recorded_at": 1234.5}, ""),  # no validation yet
    # m-t0's hash stays a listpack (a small one), whose DUMP holds its fields' order; c0's and c1's are hashtables
    ("m-t0", {"epoch": 2, "val_top5": 0.99, "val_acc": 0.9, "val_loss": 0.3, "images_per_s": 9e15, "test_top5": 0.98,
              "test_acc": 0.89, "runtime": GPU}, "/ckpt/m/2"),
    ("m-t0", {"epoch": 1, "val_acc": 0.8}, ""),  # late
]


@pytest.fixture
def packed(monkeypatch):
    """How many writes went the packed way (Python making every text)."""
    calls = []
    pack = scripts.record_epoch_args
    monkeypatch.setattr(scripts, "record_epoch_args", lambda *a, **kw: calls.append(a[1]) or pack(*a, **kw))
    return calls


def test_records_of_numbers_go_the_plain_way_and_leave_redis_as_before(store, clock, packed):
    _, events, outcomes = _assert_same(store, clock, PLAIN_STEPS)
    assert outcomes == [None] * len(PLAIN_STEPS) and packed == []
    c0 = store.get_trial("c0")
    assert (c0["best_epoch"], c0["best_val_top5"], c0["test_top5"], c0["infer_batch_size"]) == (2, 0.5, 0.9, 256)
    c1 = store.r.hgetall(keys.trial("c1"))
    assert (c1["best_val_acc"], c1["best_epoch"], c1["last_val_acc"]) == ("1.5", "3", "1.5")
    assert store.r.zscore(keys.leaderboard("cifar100", "coarse"), "c1") == float(2**60 + 3)
    assert json.loads(store.r.hget(keys.trial_epochs("c0"), "3"))["a,b"] == 1
    assert store.get_run(RUN)["runtime"] == CPU and len(events) == len(PLAIN_STEPS) + 5


def test_a_score_past_a_double_raises_as_before_the_plain_way(store, clock, packed):
    steps = [
        ("c0", {"epoch": 1, "val_acc": 0.5, "val_acc_coarse": 0.4}, ""),
        ("c0", {"epoch": 2, "val_acc": 10**400}, ""),
        ("c0", {"epoch": 2, "val_acc": -(10**400), "train_loss": 0.1}, ""),
        ("c0", {"epoch": 2, "val_acc": 0.6, "val_acc_coarse": 10**400}, ""),  # a board's score
        ("c1", {"epoch": 1, "val_acc": 0.5, "n_big": 10**400}, ""),  # no score: written as its digits, as before
    ]
    _, _, outcomes = _assert_same(store, clock, steps, dump=False)
    assert [o and o[0] for o in outcomes] == [None, "OverflowError", "OverflowError", "OverflowError", None]
    assert packed == []


def test_which_records_go_the_plain_way():
    def plain(record, checkpoint=""):
        return scripts.plain_args("t", 1, record, _dumps(record), 1.5, checkpoint, "", "}") is not None

    assert plain({"epoch": 1, "val_acc": 0.5, "big": 10**30, "a,b:}": -0.0})
    assert plain({"epoch": 1}, checkpoint="/ckpt/1")
    for odd in ("text", True, None, math.nan, math.inf, -math.inf):
        assert not plain({"epoch": 1, "x": odd})
    for key in ('a"b', "a\\b", "tab\t", "ü", "NaN", "Infinity"):  # escaped in the JSON, or json's words for nan/inf
        assert not plain({"epoch": 1, key: 1})
    assert not plain({"epoch": 1}, checkpoint=None) and not plain({"epoch": 1}, checkpoint=Path("/ckpt"))
