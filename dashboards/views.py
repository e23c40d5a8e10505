"""What the dashboards show, read from the store: one function per view, shared by the web app, its JSON API
and the terminal tables, so every surface shows the same rows in the same order."""

from __future__ import annotations

from typing import Any, Optional

from dashboards.schemas import Board, LeaderboardRow, RunDetail, RunRow, Trial, TrialDetail

DATASETS = ("mnist", "cifar100")
LABELS = {"mnist": ("fine",), "cifar100": ("fine", "coarse")}
# Shown as "key hyperparameters" when a trial's params hold them (model/augment/pretrained have columns).
KEY_PARAMS = ("optimizer", "lr", "batch_size", "weight_decay", "schedule", "label_smoothing", "input_size",
              "freeze_epochs", "backbone_lr_scale")
SORTS = ("rank", "run_name", "trial", "model", "family", "pretrained", "augment", "epochs", "val_acc", "test_acc",
         "train_time_s", "images_per_s", "n_params")
PRETRAINED_FILTERS = ("any", "yes", "no")


class ViewError(ValueError):
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


def check_board(dataset: str, label: str) -> None:
    if dataset not in DATASETS:
        raise ViewError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if label not in LABELS[dataset]:
        raise ViewError(f"{dataset} has no {label!r} labels; choose one of: {', '.join(LABELS[dataset])}")


def boards(store) -> list[Board]:
    """Every leaderboard that holds results, in a fixed order (MNIST, then CIFAR-100 fine, coarse)."""
    sizes = store.leaderboard_sizes()
    order = [(d, lab) for d in DATASETS for lab in LABELS[d]]
    return [Board(dataset=d, label=lab, trials=sizes[(d, lab)]) for d, lab in order if (d, lab) in sizes]


def _matches(row: dict, family: Optional[str], augment: Optional[str], pretrained: str) -> bool:
    if family and row.get("family") != family:
        return False
    if augment and row.get("augment") != augment:
        return False
    is_pre = row.get("pretrained") not in (None, "", "false")
    return pretrained == "any" or (pretrained == "yes") == is_pre


def _sort_key(sort: str):
    def key(row: LeaderboardRow):
        v = getattr(row, sort)
        return (v is None, v if not isinstance(v, str) else v.lower())
    return key


def leaderboard(store, dataset: str, label: str = "fine", *, limit: Optional[int] = 100, family: Optional[str] = None,
                augment: Optional[str] = None, pretrained: str = "any", sort: str = "rank",
                descending: bool = False) -> list[LeaderboardRow]:
    """The leaderboard's rows: ranked by validation accuracy (ties: test accuracy), filtered, then sorted by
    `sort` when asked (missing values last). `rank` stays the place on the whole board."""
    check_board(dataset, label)
    if sort not in SORTS:
        raise ViewError(f"cannot sort by {sort!r}; choose one of: {', '.join(SORTS)}")
    if pretrained not in PRETRAINED_FILTERS:
        raise ViewError(f"pretrained filter {pretrained!r}; choose one of: {', '.join(PRETRAINED_FILTERS)}")
    # the top `limit` by rank can be read alone; a filter or another order needs the whole board
    whole = bool(family or augment or pretrained != "any" or sort != "rank" or descending)
    rows = store.leaderboard(dataset, label, None if whole else limit)
    rows = [r for r in rows if _matches(r, family, augment, pretrained)]
    out = [LeaderboardRow(**r, trial=short_trial(r["trial_id"]), key_params=key_params(r.get("params") or {}, r.get("kind")))
           for r in rows]
    if sort != "rank" or descending:
        present = [r for r in out if getattr(r, sort) is not None]
        missing = [r for r in out if getattr(r, sort) is None]
        out = sorted(present, key=_sort_key(sort), reverse=descending) + missing
    return out[:limit] if limit is not None else out


def leaderboard_choices(store, dataset: str, label: str) -> dict[str, list[str]]:
    """The families and augmentations on a board, for its filters."""
    check_board(dataset, label)
    rows = store.leaderboard(dataset, label, None)
    return {"family": sorted({r["family"] for r in rows if r.get("family")}),
            "augment": sorted({r["augment"] for r in rows if r.get("augment")})}


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
