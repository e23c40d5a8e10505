"""What the dashboards show, read from the store: one function per view, shared by the web app, its JSON API
and the terminal tables, so every surface shows the same rows in the same order."""

from __future__ import annotations

import operator
import threading
from typing import Any, Iterable, Optional

from tunelab.dashboards.schemas import (
    Board,
    LeaderboardRow,
    RunDetail,
    RunRow,
    Trial,
    TrialDetail,
)
from tunelab.errors import TunelabError
from tunelab.results import catalogue

# Shown as "key hyperparameters" when a trial's params hold them (model/augment/pretrained have columns).
KEY_PARAMS = ("optimizer", "lr", "batch_size", "weight_decay", "schedule", "label_smoothing", "input_size",
              "freeze_epochs", "backbone_lr_scale")
SORTS = ("rank", "run_name", "trial", "model", "family", "pretrained", "augment", "epochs", "val_acc", "test_acc",
         "train_time_s", "images_per_s", "n_params", "infer_images_per_s")
PRETRAINED_FILTERS = ("any", "yes", "no")
# What a trial costs, for its board's Pareto front, each with the better direction: parameters and training seconds
# (the stored `train_time_s`: the run's time at its last epoch) fewer, inference images/s more.
PARETO_COSTS = (("n_params", -1), ("train_time_s", -1), ("infer_images_per_s", 1))


class ViewError(TunelabError, ValueError):
    """A request for something the store cannot show (unknown dataset/label, bad sort); names the choices."""


def short_trial(trial_id: str) -> str:
    """The part of a trial id after its run id: `t0` for a training run, Tune's id within a sweep."""
    return trial_id.rsplit("-", 1)[-1]


def key_params(params: dict[str, Any], kind: Optional[str] = "sweep") -> dict[str, Any]:
    """The params worth a column. A sweep's trial holds only what was searched: all of it. A training run
    holds its whole config: the usual hyperparameters. (model, augment, pretrained have columns of their own.)"""
    plain = {k: v for k, v in params.items()
             if k not in ("model", "augment", "pretrained") and v is not None and not isinstance(v, (dict, list))}
    return plain if kind == "sweep" else {k: plain[k] for k in KEY_PARAMS if k in plain}


def datasets(store, registered: Optional[dict[str, dict[str, Any]]] = None) -> dict[str, dict[str, Any]]:
    """The datasets the store knows (name -> title, label sets, ...), built-ins first: its recorded catalogue, and
    `registered` (the caller's registry: datasets no run has used yet) after it."""
    known = catalogue.datasets(store)
    return {**known, **{n: d for n, d in (registered or {}).items() if n not in known}}


def check_board(store, dataset: str, label: str, registered: Optional[dict[str, dict[str, Any]]] = None) -> None:
    """ViewError naming the choices unless the store (or `registered`) knows `dataset` and its `label` set."""
    known = datasets(store, registered)
    if dataset not in known:
        raise ViewError(f"unknown dataset {dataset!r}; choose one of: {', '.join(known) or 'none yet (no runs)'}")
    labels = known[dataset]["labels"]
    if label not in labels:
        raise ViewError(f"{dataset} has no {label!r} labels; choose one of: {', '.join(labels)}")


def boards(store) -> list[Board]:
    """Every leaderboard that holds results, in a fixed order (built-in datasets first, each fine before coarse)."""
    order = [(d, lab) for d, entry in datasets(store).items() for lab in entry["labels"]]
    sizes = store.leaderboard_sizes(order)
    return [Board(dataset=d, label=lab, trials=sizes[(d, lab)]) for d, lab in order if (d, lab) in sizes]


def _matches(row: dict, family: Optional[str], augment: Optional[str], pretrained: str) -> bool:
    if family and row.get("family") != family:
        return False
    if augment and row.get("augment") != augment:
        return False
    is_pre = row.get("pretrained") not in (None, "", "false")
    return pretrained == "any" or (pretrained == "yes") == is_pre


def _dominates(a: tuple, b: tuple) -> bool:
    """Whether point `a` dominates point `b` (values oriented so more is better; None: missing): `a` has every value
    `b` has, is at least as good on each and better on one."""
    pairs = [(x, y) for x, y in zip(a, b) if y is not None]
    return all(x is not None and x >= y for x, y in pairs) and any(x > y for x, y in pairs)


def pareto_front(rows: Iterable[dict]) -> set[str]:
    """The ids of the Pareto-optimal trials among `rows` (one board's rows: trial_id, val_acc, PARETO_COSTS).

    Trial A dominates trial B when A has every cost B has, is at least as good as B on validation accuracy and on
    each of those costs (parameters ≤, training seconds ≤, inference images/s ≥), and strictly better on at least one
    of them. So a trial missing a cost is compared on the costs it has, and only with trials that have them too: an
    unknown cost is never held for or against a trial. A trial is Pareto-optimal when no trial of the board dominates
    it; trials equal on everything compared do not dominate each other (ties are all optimal).
    """
    groups: dict[tuple[bool, ...], list[tuple[tuple, str]]] = {}  # by which costs a trial has
    for r in rows:
        if r.get("val_acc") is None:
            continue
        point = (r["val_acc"], *(None if r.get(k) is None else sign * r[k] for k, sign in PARETO_COSTS))
        groups.setdefault(tuple(v is None for v in point), []).append((point, r["trial_id"]))
    # Within a group dominance is the usual one, and whoever dominates a trial sorts before it (descending): one pass
    # against the group's front so far finds the group's front.
    fronts: list[tuple[tuple, str]] = []
    for points in groups.values():
        front: list[tuple[tuple, tuple, str]] = []  # (the values it has, point, trial id)
        for have, point, tid in sorted(((tuple(v for v in p if v is not None), p, t) for p, t in points),
                                       key=lambda e: e[0], reverse=True):
            for f, _, _ in front:  # plain loops: 10,000 trials take ~0.1 s (a generator per check, 4x that)
                if f != have and all(map(operator.ge, f, have)):
                    break
            else:
                front.append((have, point, tid))
        fronts += [(point, tid) for _, point, tid in front]
    # Dominance is transitive (a dominator has every cost of whom it dominates), so a trial dominated by one of
    # another group is dominated by one of that group's front too: checking the fronts against each other is enough.
    return {tid for point, tid in fronts if not any(_dominates(other, point) for other, _ in fronts)}


def leaderboard(store, dataset: str, label: str = "fine", *, limit: Optional[int] = 100, family: Optional[str] = None,
                augment: Optional[str] = None, pretrained: str = "any", sort: str = "rank",
                descending: bool = False, pareto: bool = False, cache: Optional["BoardCache"] = None,
                registered: Optional[dict[str, dict[str, Any]]] = None) -> list[LeaderboardRow]:
    """The leaderboard's rows: ranked by validation accuracy (ties: test accuracy), filtered, then sorted by
    `sort` when asked (missing values last). `rank` stays the place on the whole board; `pareto` on a row says the
    trial is Pareto-optimal on the whole board (`pareto_front`), and `pareto=True` keeps only those rows.
    `registered`: datasets the caller knows of besides the store's (their boards may be empty)."""
    check_board(store, dataset, label, registered)
    if sort not in SORTS:
        raise ViewError(f"cannot sort by {sort!r}; choose one of: {', '.join(SORTS)}")
    if pretrained not in PRETRAINED_FILTERS:
        raise ViewError(f"pretrained filter {pretrained!r}; choose one of: {', '.join(PRETRAINED_FILTERS)}")
    # the Pareto marks need the whole board: filter and sort its light rows (an index cached until the store
    # changes), then complete only the rows returned
    index = cache.board_index(store, dataset, label) if cache else store.board_index(dataset, label)
    front = cache.pareto(index) if cache else pareto_front(index)
    rows = index
    if family or augment or pretrained != "any" or pareto:
        rows = [r for r in rows if _matches(r, family, augment, pretrained) and (not pareto or r["trial_id"] in front)]
    if sort != "rank" or descending:
        rows = _sorted(rows, sort, descending)
    rows = store.with_params([dict(r) for r in (rows[:limit] if limit is not None else rows)])  # the cache's stay
    return [LeaderboardRow(**r, trial=short_trial(r["trial_id"]), key_params=key_params(r["params"], r.get("kind")),
                           pareto=r["trial_id"] in front) for r in rows]


class BoardCache:
    """Whole-board indexes kept until the store's version moves: filtering or sorting a board of 10,000 trials
    reads it once per change, not once per request. Safe across the web app's worker threads."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: dict[tuple, list[dict]] = {}
        self._fronts: dict[int, tuple[list[dict], frozenset[str]]] = {}  # id(index) -> (index, its Pareto front)
        self._lock = threading.Lock()

    def board_index(self, store, dataset: str, label: str) -> list[dict]:
        key = (dataset, label, store.version())
        with self._lock:
            found = self._items.get(key)
        if found is None:
            found = store.board_index(dataset, label)
            with self._lock:
                self._items = {k: v for k, v in self._items.items() if k[:2] != key[:2]}  # older versions of it
                self._items[key] = found
                while len(self._items) > self.size:
                    self._items.pop(next(iter(self._items)))
        return found

    def pareto(self, index: list[dict]) -> frozenset[str]:
        """`pareto_front(index)` of an index from `board_index`, computed once per index."""
        with self._lock:
            hit = self._fronts.get(id(index))
        if hit is not None and hit[0] is index:
            return hit[1]
        front = frozenset(pareto_front(index))
        with self._lock:  # the index is kept with its front, so its id is not reused while the entry lives
            self._fronts[id(index)] = (index, front)
            while len(self._fronts) > self.size:
                self._fronts.pop(next(iter(self._fronts)))
        return front


def _sorted(rows: list[dict], sort: str, descending: bool) -> list[dict]:
    """Rows by `sort` (missing values last, whatever the direction)."""
    def value(r):
        return short_trial(r["trial_id"]) if sort == "trial" else r.get(sort)

    present = [r for r in rows if value(r) is not None]
    missing = [r for r in rows if value(r) is None]
    present.sort(key=lambda r: value(r).lower() if isinstance(value(r), str) else value(r), reverse=descending)
    return present + missing


def leaderboard_choices(store, dataset: str, label: str) -> dict[str, list[str]]:
    """The families and augmentations on a board, for its filters (kept by the store as trials land)."""
    check_board(store, dataset, label)
    facets = store.board_facets(dataset, label)
    if not facets["family"] and store.leaderboard_sizes([(dataset, label)]):  # a store written before facets
        rows = store.board_index(dataset, label)
        facets = {"family": sorted({r["family"] for r in rows if r.get("family")}),
                  "augment": sorted({r["augment"] for r in rows if r.get("augment")})}
    return facets


def runs(store, *, kind: Optional[str] = None, limit: int = 100) -> list[RunRow]:
    """Runs, newest first; only sweeps or only training runs with `kind`."""
    if kind not in (None, "sweep", "train"):
        raise ViewError(f"unknown run kind {kind!r}; choose sweep or train")
    rows = store.list_runs(limit if kind is None else 100_000)
    if kind:
        rows = [r for r in rows if r.get("kind") == kind][:limit]
    return [RunRow(**r) for r in rows]


def _trial(t: dict) -> Trial:
    return Trial(**{**t, "trial": short_trial(t["id"])})


def run_detail(store, run_id: str) -> Optional[RunDetail]:
    """A run and its trials (best validation accuracy first), or None."""
    run = store.get_run(run_id)
    if run is None:
        return None
    trials = store.run_trials(run_id)
    best = next((t for t in trials if t.get("best_val_acc") is not None), None)
    row = RunRow(**{**run, "best_val_acc": best and best.get("best_val_acc"), "test_acc": best and best.get("test_acc"),
                    "model": best and best.get("model")})
    return RunDetail(run=row, trials=[_trial(t) for t in trials])


def trial_detail(store, trial_id: str) -> Optional[TrialDetail]:
    """A trial, its run and its epoch records, or None."""
    t = store.get_trial(trial_id)
    if t is None:
        return None
    run = store.get_run(t["run"])
    return TrialDetail(trial=_trial(t), run=RunRow(**run) if run else None, epochs=store.epochs(trial_id))
