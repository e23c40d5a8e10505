"""Ray callbacks that hand results to the store: the one writer of every epoch.

`StoreCallback` runs in the Ray Train controller (one process per run, not one per worker). Training never
fails because Redis is unreachable: a write that fails is kept and retried with the next report.
"""

from __future__ import annotations

from typing import Any, Optional

from ray.train import Checkpoint
from ray.train.v2.api.callback import UserCallback

from tunelab.results.buffer import BufferedWriter


class StoreCallback(UserCallback):
    """Writes rank 0's metrics of every report, with the persisted checkpoint's path, to the result store."""

    def __init__(self, redis_url: str, trial_id: str):
        self.trial_id = trial_id
        self.w = BufferedWriter(redis_url)  # the same buffer sweeps write through

    def after_report(self, run_context: Any, metrics: list[dict], checkpoint: Optional[Checkpoint]) -> None:
        self.w.call("record_epoch", self.trial_id, dict(metrics[0]), checkpoint=checkpoint.path if checkpoint else "")

    def after_exception(self, run_context: Any, worker_exceptions: dict) -> None:
        self.w.flush(force=True)

