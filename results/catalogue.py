"""The datasets the store knows: what each run's dataset is (title, label sets, image shape), recorded when the run
starts, so that every reader (the dashboard's tabs, the leaderboard's checks) lists them without the dataset registry,
and without the data root, which may be on another machine."""

from __future__ import annotations

import json
from typing import Any

from tunelab.results import keys


def describe_datasets(store, described: dict[str, dict[str, Any]]) -> None:
    """Record what each of `described` (name -> `DatasetSpec.describe()`) is; a new or changed entry moves the version
    (pages show the tabs)."""
    if not described:
        return
    values = {name: json.dumps(d, sort_keys=True) for name, d in described.items()}
    known = store.r.hmget(keys.DATASETS, list(values))
    changed = {n: v for (n, v), old in zip(values.items(), known) if old != v}
    if changed:
        with store.r.pipeline() as p:
            p.hset(keys.DATASETS, mapping=changed)
            p.incr(keys.VERSION)
            p.execute()


def datasets(store) -> dict[str, dict[str, Any]]:
    """Every dataset the store knows, name -> description (title, labels, builtin, ...): those recorded; in a store that
    has none recorded (written before datasets were), those with a leaderboard. Built-ins first, in the registry's
    order, then the rest by name."""
    found = {k: json.loads(v) for k, v in store.r.hgetall(keys.DATASETS).items()}
    # a SCAN walks every key: only for such an old store (`tunelab dashboard` records the registry's at its start)
    for key in () if found else store.r.scan_iter(keys.LEADERBOARD_PATTERN, count=1000):
        dataset, label = keys.board_of(key)
        entry = found.setdefault(dataset, {"title": dataset, "labels": [], "builtin": False})
        if label not in entry["labels"]:
            entry["labels"] = [*entry["labels"], label]
    for entry in found.values():
        entry["labels"] = sorted(entry["labels"], key=lambda lab: (lab != "fine", lab))
    return dict(sorted(found.items(), key=lambda kv: (not kv[1].get("builtin"), kv[1].get("order", 0), kv[0])))
