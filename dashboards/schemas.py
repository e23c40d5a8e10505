"""The dashboard's contract: what the JSON API returns and what `--json` on the CLI prints (same models)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict


class LeaderboardRow(BaseModel):
    """One trial on a dataset/label leaderboard. `rank` is its place by validation accuracy on the whole board;
    `pareto`: no other trial of the whole board is as accurate and no more costly (`dashboards.views.pareto_front`)."""

    rank: int
    run_id: str
    run_name: Optional[str] = None
    kind: Optional[str] = None
    trial_id: str
    trial: str  # the short name shown in tables
    dataset: str
    label: str
    model: Optional[str] = None
    family: Optional[str] = None
    pretrained: Optional[str] = None
    augment: Optional[str] = None
    params: dict[str, Any] = {}
    key_params: dict[str, Any] = {}
    status: Optional[str] = None
    epochs: int = 0
    val_acc: Optional[float] = None
    test_acc: Optional[float] = None
    train_time_s: Optional[float] = None
    images_per_s: Optional[float] = None
    n_params: Optional[int] = None
    started: Optional[float] = None
    infer_images_per_s: Optional[float] = None  # inference throughput of the trained model, measured at its end
    pareto: bool = False


class DatasetEntry(BaseModel):
    """A dataset the store knows: built in, or a user's imported image folder."""

    name: str
    title: str
    labels: list[str]
    builtin: bool = False
    image: Optional[str] = None  # channels x height x width, as stored
    classes: dict[str, int] = {}


class Board(BaseModel):
    """A leaderboard that holds results, with its size."""

    dataset: str
    label: str
    trials: int


class RunRow(BaseModel):
    """A run (one training job or one sweep) as listed, with its best trial's accuracy."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: Optional[str] = None
    name: Optional[str] = None
    dataset: Optional[str] = None
    labels: Optional[str] = None
    status: Optional[str] = None
    started: Optional[float] = None
    ended: Optional[float] = None
    wall_time_s: Optional[float] = None
    best_trial: Optional[str] = None
    best_val_acc: Optional[float] = None
    test_acc: Optional[float] = None
    model: Optional[str] = None
    error: Optional[str] = None
    config: dict[str, Any] = {}
    summary: Optional[dict[str, Any]] = None
    runtime: Optional[dict[str, Any]] = None  # what its first trial ran on


class Trial(BaseModel):
    """A trial's record: identity, status, params, best and last metrics (best_*, last_*, test_*)."""

    model_config = ConfigDict(extra="allow")

    id: str
    trial: str
    run: str
    status: Optional[str] = None
    model: Optional[str] = None
    family: Optional[str] = None
    dataset: Optional[str] = None
    labels: Optional[str] = None
    augment: Optional[str] = None
    pretrained: Optional[str] = None
    params: dict[str, Any] = {}
    epochs_done: int = 0
    best_val_acc: Optional[float] = None
    best_epoch: Optional[int] = None
    test_acc: Optional[float] = None
    images_per_s: Optional[float] = None
    train_time_s: Optional[float] = None
    n_params: Optional[int] = None
    infer_images_per_s: Optional[float] = None  # inference throughput of the trained model on its device
    checkpoint: Optional[str] = None
    error: Optional[str] = None
    started: Optional[float] = None
    ended: Optional[float] = None
    runtime: Optional[dict[str, Any]] = None  # precision as resolved, device, torch/CUDA, workers and threads


class RunDetail(BaseModel):
    """A run with all its trials, best validation accuracy first."""

    run: RunRow
    trials: list[Trial]


class TrialDetail(BaseModel):
    """A trial with its run and its per-epoch records (epoch order)."""

    trial: Trial
    run: Optional[RunRow] = None
    epochs: list[dict[str, Any]]


class Health(BaseModel):
    store: str
    schema_version: int
    runs: int


class ParamImportance(BaseModel):
    """One searched parameter's share of the importance (a sweep's shares add up to 1)."""

    param: str
    importance: float


class Importance(BaseModel):
    """How much each searched parameter of a sweep mattered for its validation accuracy, most important first
    (Optuna's PED-ANOVA or fANOVA over the sweep's trials in the store; see dashboards/importance.py)."""

    run_id: str
    evaluator: str  # "ped-anova" or "fanova"
    metric: str  # the value each trial is scored by: "best_val_acc", its best epoch's validation accuracy
    early_stopped: str  # "reached": trials that ended short of the budget count at the epoch they reached; "exclude"
    trials_used: int
    trials_left_out: int
    early_stopped_used: int = 0  # of trials_used, how many ended short of the budget
    left_out: dict[str, int] = {}  # why: early_stopped, no_result, params_outside_space
    importances: list[ParamImportance]
    note: str  # what was computed over which trials, in words (shown on the sweep page and by the CLI)
