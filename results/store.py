"""The Redis result store: runs, trials, per-epoch metrics and leaderboards behind one small API.

Writes are idempotent (keyed by run, trial and epoch), so replaying a run's history changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Iterable, Optional

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from tunelab.results import keys, scripts
from tunelab.results.errors import StoreError
from tunelab.results.records import decode_run, decode_trial, num, redact

# Metrics copied from an epoch record onto its trial as last-known values.
_LAST_FIELDS = ("epoch", "train_loss", "val_loss", "val_acc", "val_acc_coarse", "images_per_s", "time_total_s", "lr")
# Metrics copied onto the trial under another name (or their own), whenever reported.
_COPIED = (("params", "n_params"), ("images_per_s", "images_per_s"), ("time_total_s", "train_time_s"))
# Metrics copied onto the trial under their own names, as the leaderboards show them: reported once, at a trial's end.
_TRIAL_FIELDS = ("infer_images_per_s", "infer_batch_size")
_TEST_PREFIX = "test_"
_VAL_PREFIX = "val_"  # copied as best_<name> when the epoch's val_acc is the trial's best
_RECORDED = (int, float, str, bool)  # the types an epoch record keeps (and None)


def _now() -> float:
    return round(time.time(), 3)


_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)  # built once: json.dumps builds one a call


def _dumps(value: Any) -> str:
    return _JSON.encode(value)


# _JSON's C encoder, built once (JSONEncoder.encode builds one a call): for an epoch record, whose values are scalars
# (no cycle to look for). About a quarter of the record's JSON cost, on every record.
_record_encoder = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    None, str, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, True)


def _dumps_record(record: dict) -> str:
    """`_dumps(record)` (the same text) for a dict of scalars."""
    return "".join(_record_encoder(record, 0)) if _record_encoder else _dumps(record)


_json_string = json.encoder.encode_basestring_ascii  # a str as _dumps writes it

_RULES = (_LAST_FIELDS, _COPIED, _TRIAL_FIELDS, _TEST_PREFIX, _VAL_PREFIX)  # which metric goes where: for scripts.py
_RECORD_EPOCH = scripts.record_epoch_lua(*_RULES)
_RECORD_EPOCH_SHA = hashlib.sha1(_RECORD_EPOCH.encode()).hexdigest()  # what EVALSHA names it by


class ResultStore:
    """Typed access to tunelab's Redis schema (see `results.keys`)."""

    def __init__(self, client: redis.Redis, url: str = "redis"):
        self.r = client
        self.url = url
        self._encoder = client.get_encoder()

    # ------------------------------------------------------------------------------------ connection

    @classmethod
    def from_url(cls, url: str, check: bool = True) -> "ResultStore":
        """A store on the Redis server at `url` (redis://, rediss://, unix://); StoreError if unreachable."""
        shown = redact(url)
        try:
            client = redis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30,
                # ride out a blip (a failover, a restart) without making a user wait long for a dead URL
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 3),
            )
        except ValueError as e:
            raise StoreError(f"invalid Redis URL {shown} ({e}); use redis://[:password@]host:port/db, rediss://… or unix:///path") from None
        store = cls(client, url)
        if check:
            store.check()
        return store

    def check(self) -> None:
        """Ping the server and check the schema version; StoreError with the fix otherwise."""
        shown = redact(self.url)
        try:
            self.r.ping()
            self.r.set(keys.SCHEMA, keys.SCHEMA_VERSION, nx=True)
            version = int(self.r.get(keys.SCHEMA) or keys.SCHEMA_VERSION)
        except redis.AuthenticationError:
            raise StoreError(f"Redis at {shown} refused the password; fix it in TUNELAB_REDIS_URL") from None
        except redis.RedisError as e:
            msg = str(e).split("\n")[0].replace(self.url, shown)
            raise StoreError(f"cannot reach Redis at {shown} ({msg}); start it or fix TUNELAB_REDIS_URL") from None
        if version != keys.SCHEMA_VERSION:
            raise StoreError(f"Redis at {shown} holds tunelab schema v{version}, this tunelab writes v{keys.SCHEMA_VERSION}; use another database")

    def _publish(self, pipe, kind: str, **fields) -> None:
        pipe.incr(keys.VERSION)
        pipe.publish(keys.EVENTS, _dumps({"type": kind, **fields}))

    def version(self) -> int:
        """A counter that moves whenever anything a view shows changes (every write that publishes an event, a
        checkpoint's path, a run's extra fields)."""
        return int(self.r.get(keys.VERSION) or 0)

    def count_runs(self) -> int:
        """How many runs the store holds."""
        return int(self.r.zcard(keys.RUNS))

    def health(self) -> dict:
        """`check()` the store, then say what it is: {store: its URL (password redacted), schema_version, runs}."""
        self.check()
        return {"store": redact(self.url), "schema_version": keys.SCHEMA_VERSION, "runs": self.count_runs()}

    def subscribe_events(self):
        """Live updates, for asyncio code: `async with store.subscribe_events() as events: await events.next(1.0)`
        (results/events.py: one event's JSON text, or None after the timeout)."""
        from tunelab.results.events import subscribe

        return subscribe(self.url)

    # ------------------------------------------------------------------------------------------ runs

    def start_run(self, run_id: str, *, kind: str, name: str, dataset: str, labels: str, config: dict,
                  storage_path: str = "", started: Optional[float] = None) -> None:
        """Record a new run (train or sweep) as running."""
        started = started or _now()
        with self.r.pipeline() as p:
            p.hset(keys.run(run_id), mapping={
                "id": run_id, "kind": kind, "name": name, "dataset": dataset, "labels": labels,
                "status": "running", "started": started, "config": _dumps(config), "storage_path": storage_path,
            })
            p.zadd(keys.RUNS, {run_id: started})
            self._publish(p, "run", run=run_id, status="running")
            p.execute()

    def finish_run(self, run_id: str, status: str, error: str = "", ended: Optional[float] = None) -> None:
        """Mark a run completed / failed / stopped, with its wall time and best trial."""
        run = self.r.hgetall(keys.run(run_id))
        if not run:
            raise StoreError(f"no run {run_id!r} in the store")
        best = self.r.zrevrange(keys.run_trials(run_id), 0, 0)
        ended = ended or _now()
        fields = {"status": status, "ended": ended, "wall_time_s": round(ended - float(run["started"]), 3)}
        if best:
            fields["best_trial"] = best[0]
        if error:
            fields["error"] = error
        with self.r.pipeline() as p:
            p.hset(keys.run(run_id), mapping=fields)
            self._publish(p, "run", run=run_id, status=status)
            p.execute()

    def get_run(self, run_id: str) -> Optional[dict]:
        """The run's record (config decoded), or None."""
        h = self.r.hgetall(keys.run(run_id))
        return decode_run(h) if h else None

    def list_runs(self, limit: int = 100) -> list[dict]:
        """The newest `limit` runs, newest first, each with its best trial's accuracy."""
        ids = self.r.zrevrange(keys.RUNS, 0, limit - 1)
        with self.r.pipeline() as p:
            for rid in ids:
                p.hgetall(keys.run(rid))
            runs = [decode_run(h) for h in p.execute() if h]
        best_ids = [r.get("best_trial") for r in runs]
        with self.r.pipeline() as p:
            for t in best_ids:
                p.hmget(keys.trial(t or "-"), "best_val_acc", "test_acc", "model")
            bests = p.execute()
        for r, (val, test, model) in zip(runs, bests):
            r["best_val_acc"] = num(val)
            r["test_acc"] = num(test)
            r["model"] = model
        return runs

    # ---------------------------------------------------------------------------------------- trials

    def start_trial(self, trial_id: str, *, run_id: str, model: str, dataset: str, labels: str,
                    boards: dict[str, dict[str, str]], augment: str = "none", pretrained: str = "false",
                    params: Optional[dict] = None, family: str = "", started: Optional[float] = None) -> None:
        """Record a trial. `boards` maps a leaderboard label ("fine"/"coarse") to the metric names that rank
        the trial there: {"val": "val_acc", "test": "test_acc"}. `family` is the model's registry family."""
        with self.r.pipeline() as p:
            p.hset(keys.trial(trial_id), mapping={
                "id": trial_id, "run": run_id, "status": "running", "model": model, "family": family or model,
                "dataset": dataset,
                "labels": labels, "augment": augment, "pretrained": pretrained, "params": _dumps(params or {}),
                "boards": _dumps(boards), "started": started or _now(),
            })
            # -1 until the first epoch: listed with its run, below every trial that has a result.
            p.zadd(keys.run_trials(run_id), {trial_id: -1.0}, nx=True)
            self._publish(p, "trial", run=run_id, trial=trial_id, status="running")
            p.execute()

    def record_epoch(self, trial_id: str, metrics: dict, checkpoint: str = "") -> None:
        """Store one epoch's metrics (idempotent per epoch) and update the trial's best and the leaderboards, in one
        round trip (results/scripts.py does the part that needs the stored trial)."""
        epoch = int(metrics["epoch"])
        record = {k: v for k, v in metrics.items() if isinstance(v, _RECORDED) or v is None}
        record.setdefault("recorded_at", _now())  # wall clock, for best-so-far over a sweep's time
        updated = _now()
        record_json = _dumps_record(record)
        runtime = metrics.get("runtime")  # what the trial trains on (device, precision, …): said on its first epoch
        runtime = _dumps(runtime) if isinstance(runtime, dict) else ""  # the run keeps its first trial's
        # the epoch's event as `_publish` writes it (sorted keys), after the run id: only the script knows that
        event_tail = f',"trial":{_json_string(trial_id)},"type":"epoch"}}'
        args = scripts.plain_args(trial_id, epoch, record, record_json, updated, checkpoint, runtime, event_tail)
        fields = best = None
        if args is None:  # not all finite numbers (or the like): Python makes each field's text (results/scripts.py)
            fields, best = scripts.epoch_fields(_RULES, epoch, record, checkpoint, runtime)
            args = scripts.record_epoch_args(self._encoder, trial_id, epoch, record, record_json, updated, fields,
                                             best, runtime, event_tail)
        reply = self._record_epoch((keys.trial(trial_id), keys.trial_epochs(trial_id), keys.VERSION), args)
        if reply == ["no_trial"]:
            raise StoreError(f"no trial {trial_id!r} in the store; start_trial first")
        if reply:  # a value the two-round-trip path failed on (a score float() refuses, a best_* value redis-py
            # refuses): nothing was written; raise what that path raised
            if reply[0] == "float":
                float(record[reply[1]])  # ValueError, OverflowError
            for v in [*(fields or {}).values(), *(best or {}).values()]:
                self._encoder.encode(v)  # redis.DataError
            raise StoreError(f"unexpected reply from the record_epoch script: {reply!r}")

    def _record_epoch(self, script_keys: tuple, args: tuple):
        """EVALSHA of the record_epoch script, loaded (SCRIPT LOAD) when the server lacks it: a SCRIPT FLUSH, a
        restart. The client's own command, not `register_script`'s wrapper, which costs a few µs more a call."""
        command = ("EVALSHA", _RECORD_EPOCH_SHA, len(script_keys), *script_keys, *args)
        try:
            return self.r.execute_command(*command)
        except NoScriptError:
            self.r.script_load(_RECORD_EPOCH)
            return self.r.execute_command(*command)

    def record_test(self, trial_id: str, metrics: dict) -> None:
        """Store a trial's test evaluation (test_* metrics), done after selection on validation."""
        run_id = self.r.hget(keys.trial(trial_id), "run")
        if run_id is None:
            raise StoreError(f"no trial {trial_id!r} in the store")
        fields = {k: v for k, v in metrics.items() if k.startswith(_TEST_PREFIX)}
        with self.r.pipeline() as p:
            p.hset(keys.trial(trial_id), mapping=fields)
            self._publish(p, "test", run=run_id, trial=trial_id)
            p.execute()

    def set_checkpoint(self, trial_id: str, path: str) -> None:
        """Record where the trial's latest checkpoint is."""
        with self.r.pipeline() as p:
            p.hset(keys.trial(trial_id), "checkpoint", path)
            p.incr(keys.VERSION)  # the trial page shows it: what caches by the version must see it move
            p.execute()

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set extra fields on a run (JSON-encoded when not plain)."""
        enc = {k: v if isinstance(v, (str, int, float)) else _dumps(v) for k, v in fields.items()}
        with self.r.pipeline() as p:
            p.hset(keys.run(run_id), mapping=enc)
            p.incr(keys.VERSION)  # the run page shows them (status, summary, warm start)
            p.execute()

    def finish_trial(self, trial_id: str, status: str, error: str = "", ended: Optional[float] = None) -> None:
        run_id = self.r.hget(keys.trial(trial_id), "run")
        if run_id is None:
            raise StoreError(f"no trial {trial_id!r} in the store")
        with self.r.pipeline() as p:
            p.hset(keys.trial(trial_id), mapping={"status": status, "ended": ended or _now(),
                                                  **({"error": error} if error else {})})
            self._publish(p, "trial", run=run_id, trial=trial_id, status=status)
            p.execute()

    def delete_trial(self, trial_id: str) -> None:
        """Remove a trial's record, its epochs, and its places on its run and its leaderboards (a record that is to be
        replaced, as an ensemble re-run: `record_epoch` only ever raises a trial's best score)."""
        trial = self.get_trial(trial_id)
        if not trial:
            return
        with self.r.pipeline() as p:
            for label in trial.get("boards") or {}:
                p.zrem(keys.leaderboard(trial["dataset"], label), trial_id)
            p.zrem(keys.run_trials(trial["run"]), trial_id)
            p.delete(keys.trial(trial_id), keys.trial_epochs(trial_id))
            self._publish(p, "trial", run=trial["run"], trial=trial_id, status="deleted")
            p.execute()

    def get_trial(self, trial_id: str) -> Optional[dict]:
        h = self.r.hgetall(keys.trial(trial_id))
        return decode_trial(h) if h else None

    def epochs(self, trial_id: str) -> list[dict]:
        """The trial's epoch records in epoch order."""
        h = self.r.hgetall(keys.trial_epochs(trial_id))
        return [json.loads(h[k]) for k in sorted(h, key=int)]

    def epochs_of(self, trial_ids: Iterable[str]) -> dict[str, list[dict]]:
        """Epoch records of many trials in one round trip: trial id -> records in epoch order."""
        ids = list(trial_ids)
        with self.r.pipeline() as p:
            for t in ids:
                p.hgetall(keys.trial_epochs(t))
            found = p.execute()
        return {t: [json.loads(h[k]) for k in sorted(h, key=int)] for t, h in zip(ids, found)}

    def run_trials(self, run_id: str) -> list[dict]:
        """The run's trials, best validation accuracy first (trials without a result yet last)."""
        return self._trials(self.r.zrevrange(keys.run_trials(run_id), 0, -1))

    def _trials(self, ids: Iterable[str]) -> list[dict]:
        ids = list(ids)
        with self.r.pipeline() as p:
            for t in ids:
                p.hgetall(keys.trial(t))
            return [decode_trial(h) for h in p.execute() if h]

    # ---------------------------------------------------------------------------------- leaderboards

    def leaderboard_sizes(self, boards: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(dataset, label) -> number of trials, for each of `boards` that holds any (one round trip)."""
        boards = list(boards)
        with self.r.pipeline() as p:
            for dataset, label in boards:
                p.zcard(keys.leaderboard(dataset, label))
            sizes = p.execute()
        return {b: n for b, n in zip(boards, sizes) if n}

    # what a leaderboard row shows of a trial, read with HMGET (not the whole hash): a board can hold 10,000s
    _BOARD_FIELDS = ("run", "model", "family", "augment", "pretrained", "status", "epochs_done", "boards",
                     "train_time_s", "images_per_s", "n_params", "test_acc", "test_acc_coarse", "infer_images_per_s")

    def leaderboard(self, dataset: str, label: str = "fine", limit: Optional[int] = 100) -> list[dict]:
        """Best trials for `dataset`/`label`, ranked by best validation accuracy (ties: test accuracy), with
        their params; `limit=None` for the whole board."""
        end = -1 if limit is None else limit - 1
        ranked = self.r.zrevrange(keys.leaderboard(dataset, label), 0, end, withscores=True)
        return self.with_params(self._board_rows(ranked, dataset, label))

    def board_index(self, dataset: str, label: str = "fine") -> list[dict]:
        """Every row of a leaderboard, ranked, without params: what filtering and sorting a large board needs,
        in three round trips. `with_params` completes the rows a page shows."""
        ranked = self.r.zrevrange(keys.leaderboard(dataset, label), 0, -1, withscores=True)
        return self._board_rows(ranked, dataset, label)

    def with_params(self, rows: list[dict]) -> list[dict]:
        """`rows` (from `board_index`) with each trial's params, in one round trip."""
        with self.r.pipeline() as p:
            for r in rows:
                p.hget(keys.trial(r["trial_id"]), "params")
            for r, params in zip(rows, p.execute()):
                r["params"] = json.loads(params or "{}")
        return rows

    def board_facets(self, dataset: str, label: str = "fine") -> dict[str, list[str]]:
        """The model families and augmentation policies among a leaderboard's trials."""
        with self.r.pipeline() as p:
            for facet in ("family", "augment"):
                p.smembers(keys.board_facet(dataset, label, facet))
            fam, aug = p.execute()
        return {"family": sorted(fam), "augment": sorted(aug)}

    def _board_rows(self, ranked: list, dataset: str, label: str) -> list[dict]:
        with self.r.pipeline() as p:
            for tid, _ in ranked:
                p.hmget(keys.trial(tid), *self._BOARD_FIELDS)
            found = [(tid, score, dict(zip(self._BOARD_FIELDS, vals))) for (tid, score), vals in zip(ranked, p.execute())
                     if vals[0] is not None]  # a trial deleted under the board: skipped
        run_ids = sorted({t["run"] for _, _, t in found})
        with self.r.pipeline() as p:
            for rid in run_ids:
                p.hmget(keys.run(rid), "name", "kind", "started")
            runs = dict(zip(run_ids, p.execute()))
        boards_seen: dict[str, str] = {}  # boards JSON is the same for most trials: parse each variant once
        rows = []
        for tid, score, t in found:
            name, kind, started = runs[t["run"]]
            raw = t["boards"] or "{}"
            if raw not in boards_seen:
                boards_seen[raw] = json.loads(raw).get(label, {"test": "test_acc"})["test"]
            rows.append({
                "run_id": t["run"], "trial_id": tid, "run_name": name, "kind": kind,
                "started": num(started), "dataset": dataset, "label": label, "model": t["model"],
                "family": t["family"] or t["model"], "augment": t["augment"], "pretrained": t["pretrained"],
                "status": t["status"], "epochs": num(t["epochs_done"]) or 0,
                "val_acc": score, "test_acc": num(t.get(boards_seen[raw])), "train_time_s": num(t["train_time_s"]),
                "images_per_s": num(t["images_per_s"]), "n_params": num(t["n_params"]),
                "infer_images_per_s": num(t["infer_images_per_s"]),
            })
        rows.sort(key=lambda r: (-(r["val_acc"] or 0), -(r["test_acc"] or 0)))
        for i, r in enumerate(rows, 1):
            r["rank"] = i
        return rows
