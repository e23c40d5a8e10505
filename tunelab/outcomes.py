"""What the Python API returns: typed records of a training run and of a sweep, and the dashboard's rows (the same
models its JSON API and `--json` return)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel

from tunelab.dashboards.schemas import LeaderboardRow, RunRow, Trial

__all__ = ["LeaderboardRow", "RunRow", "SweepResult", "TrainResult", "Trial"]


class TrainResult(BaseModel):
    """How a training run ended: its ids, best validation and final test accuracy, its checkpoint, what it ran on.

    `status` is "completed" or "failed" (then `error` says why); every field is also in the store under `run_id`."""

    run_id: str
    trial_id: str
    status: Literal["completed", "failed"]
    model: str
    dataset: str
    labels: str
    epochs: int = 0
    val_acc: Optional[float] = None  # the best epoch's
    test_acc: Optional[float] = None
    test_acc_coarse: Optional[float] = None
    wall_time_s: float
    checkpoint: Optional[str] = None
    error: Optional[str] = None
    runtime: Optional[dict[str, Any]] = None  # precision as resolved, device, versions, workers and threads

    @property
    def ok(self) -> bool:
        return self.status == "completed"


class SweepResult(BaseModel):
    """How a sweep ended: its best trial on validation (its config, test accuracy and checkpoint), counts by status.

    `status` is "completed", or "stopped" when it was interrupted (`tunelab.resume(name)` finishes it)."""

    run_id: str
    name: str
    status: Literal["completed", "stopped"]
    best_trial: Optional[str] = None
    best_val_acc: Optional[float] = None
    test_acc: Optional[float] = None
    best_config: dict[str, Any] = {}
    best_checkpoint: Optional[str] = None
    counts: dict[str, int] = {}
    tests: dict[str, dict[str, Any]] = {}  # trial id -> test metrics, for each trial evaluated on test
    wall_time_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "completed"
