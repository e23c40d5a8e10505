"""Ray callbacks that hand results to the store: the one writer of every epoch.

`StoreCallback` runs in the Ray Train controller (one process per run, not one per worker). Training never
fails because Redis is unreachable: a write that fails is kept and retried with the next report.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any, Optional

from ray.train import Checkpoint
from ray.train.v2.api.callback import UserCallback

from results.buffer import BufferedWriter


class StoreCallback(UserCallback):
    """Writes rank 0's metrics of every report, with the persisted checkpoint's path, to the result store."""

    def __init__(self, redis_url: str, trial_id: str):
        self.trial_id = trial_id
        self.w = BufferedWriter(redis_url)  # the same buffer sweeps write through

    def after_report(self, run_context: Any, metrics: list[dict], checkpoint: Optional[Checkpoint]) -> None:
        self.w.call("record_epoch", self.trial_id, dict(metrics[0]), checkpoint=checkpoint.path if checkpoint else "")

    def after_exception(self, run_context: Any, worker_exceptions: dict) -> None:
        self.w.flush(force=True)


class LocalRecorder:
    """What Ray Train's controller and `StoreCallback` do for a run, for Ray Train V2's local mode
    (`ScalingConfig(num_workers=0)`), which has neither: each epoch's checkpoint is saved in the run's experiment
    directory as Ray names them (`checkpoint_<time>`, the newest `keep` kept), then the epoch goes to the store
    through the same buffer, with that checkpoint's path."""

    def __init__(self, redis_url: str, trial_id: str, exp_dir: str, keep: int = 2):
        self.trial_id = trial_id
        self.exp_dir = Path(exp_dir)
        self.keep = keep
        self.w = BufferedWriter(redis_url)

    def report(self, metrics: dict, state: Optional[dict]) -> None:
        """A `jobs.loop.Reporter`: persist `state` (rank 0), tell Ray Train, write the epoch."""
        import ray.train

        from jobs.loop import save_checkpoint

        if state is None:
            ray.train.report(metrics)
            self.w.call("record_epoch", self.trial_id, dict(metrics))
            return
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f")
        final, part = self.exp_dir / f"checkpoint_{stamp}", self.exp_dir / f".checkpoint_{stamp}.part"
        part.mkdir()
        save_checkpoint(state, part)
        part.rename(final)  # a crash mid-save leaves a .part folder, never a checkpoint_* that cannot be read
        for old in sorted(d for d in self.exp_dir.glob("checkpoint_*") if d.is_dir())[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(str(final)))
        self.w.call("record_epoch", self.trial_id, dict(metrics), checkpoint=str(final))
