"""Rich tables of what the store holds; same order as the store's leaderboard."""

from __future__ import annotations

import datetime as _dt
from typing import Optional

from rich.table import Table
from rich.text import Text


def _pct(v: Optional[float]) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def _num(v, fmt: str = "{:,.0f}") -> str:
    return "—" if v is None else fmt.format(v)


def _when(ts: Optional[float]) -> str:
    return "—" if ts is None else _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def pretrained_label(value: Optional[str]) -> str:
    """'—' for none, 'hub' for the model hub's weights, else the weights file's name."""
    if value in (None, "", "false"):
        return "—"
    if value == "true":
        return "hub"
    return value.replace("\\", "/").rsplit("/", 1)[-1]


def _params(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def leaderboard_table(rows: list[dict], dataset: str, label: str) -> Table:
    """The leaderboard for `dataset`/`label` as a table, in the rows' order (the web leaderboard's order); ★ marks
    the trials Pareto-optimal on the whole board."""
    t = Table(title=f"{dataset} · {label} labels — ranked by validation accuracy; ★ Pareto-optimal (accuracy "
                    "against parameters, training time, inference images/s)", title_justify="left")
    # names stay whole (weights files are long); the hyperparameters give way and wrap
    pre_width = min(40, max([len(pretrained_label(r["pretrained"])) for r in rows] + [10]))
    for col, kw in [("#", {"justify": "right"}), ("run", {}), ("trial", {}), ("model", {}),
                    ("pretrained", {"min_width": pre_width}), ("augment", {}),
                    ("hyperparameters", {"overflow": "fold", "max_width": 36}), ("val %", {"justify": "right"}),
                    ("test %", {"justify": "right"}), ("epochs", {"justify": "right"}), ("train s", {"justify": "right"}),
                    ("img/s", {"justify": "right"}), ("infer img/s", {"justify": "right"}),
                    ("params", {"justify": "right"}), ("★", {}), ("status", {})]:
        t.add_column(col, **kw)
    for r in rows:
        # Text(...) keeps names literal: no rich markup from user-chosen strings.
        t.add_row(
            str(r["rank"]), Text(str(r.get("run_name") or r["run_id"])), Text(str(r.get("trial", ""))),
            Text(str(r["model"])), Text(pretrained_label(r["pretrained"])), Text(str(r["augment"])),
            Text(_params(r.get("key_params") or {})), _pct(r["val_acc"]), _pct(r["test_acc"]), str(r["epochs"]),
            _num(r["train_time_s"], "{:,.1f}"), _num(r["images_per_s"]), _num(r.get("infer_images_per_s")),
            _num(r["n_params"]), "★" if r.get("pareto") else "", Text(str(r["status"])),
        )
    return t


def runs_table(runs: list[dict]) -> Table:
    """Runs, newest first."""
    t = Table(title="runs — newest first", title_justify="left")
    for col in ("run", "kind", "name", "dataset", "model", "status", "started", "wall s", "best val %", "test %"):
        t.add_column(col)
    for r in runs:
        t.add_row(
            Text(r["id"]), r.get("kind", ""), Text(r.get("name", "")), Text(f"{r.get('dataset', '')}/{r.get('labels', '')}"),
            Text(str(r.get("model") or "—")), Text(r.get("status", "")), _when(r.get("started")),
            _num(r.get("wall_time_s"), "{:,.1f}"), _pct(r.get("best_val_acc")), _pct(r.get("test_acc")),
        )
    return t


def trials_table(run: dict, trials: list[dict]) -> Table:
    """A sweep's trials in the given order (best validation accuracy first, as on the web sweep page)."""
    summary = run.get("summary") or {}
    counts = ", ".join(f"{v} {k}" for k, v in sorted((summary.get("counts") or {}).items()))
    t = Table(title=f"sweep {run.get('name')} ({run['id']}) — {run.get('status')}"
                    + (f"; {counts}; {summary.get('wall_time_s')} s" if counts else ""), title_justify="left")
    for col in ("#", "trial", "status", "model", "augment", "params", "epochs", "best val %", "test %", "img/s", "train s"):
        t.add_column(col, justify="right" if col in ("#", "epochs", "best val %", "test %", "img/s", "train s") else "left")
    for i, tr in enumerate(trials, 1):
        params = {k: v for k, v in sorted((tr.get("params") or {}).items()) if k not in ("model", "augment")}
        t.add_row(str(i), Text(tr["id"].rsplit("-", 1)[-1]), Text(str(tr.get("status"))), Text(str(tr.get("model"))),
                  Text(str(tr.get("augment"))), Text(_params(params)), str(tr.get("epochs_done", 0)),
                  _pct(tr.get("best_val_acc")), _pct(tr.get("test_acc")), _num(tr.get("images_per_s")),
                  _num(tr.get("train_time_s"), "{:,.1f}"))
    return t
