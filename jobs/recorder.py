"""A run in this process (`jobs.train.fit_local`): what Ray Train's controller and `StoreCallback` do for a run on Ray,
without importing Ray."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Optional

from tunelab.results.buffer import BufferedWriter


class LocalRecorder:
    """What Ray Train's controller and `StoreCallback` do for a run, for a run in this process (`jobs.train.fit_local`),
    which has neither: each epoch's checkpoint is saved in the run's experiment directory as Ray names them
    (`checkpoint_<time>`, the newest `keep` kept), then the epoch goes to the store through the same buffer, with that
    checkpoint's path."""

    def __init__(self, redis_url: str, trial_id: str, exp_dir: str, keep: int = 2):
        self.trial_id = trial_id
        self.exp_dir = Path(exp_dir)
        self.keep = keep
        self.w = BufferedWriter(redis_url)
        self.last_metrics: dict = {}
        self.last_checkpoint: Optional[str] = None

    def report(self, metrics: dict, state: Optional[dict]) -> None:
        """A `jobs.loop.Reporter` (one rank: `state` is always given): persist `state`, write the epoch."""
        from tunelab.jobs.loop import save_checkpoint

        self.exp_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S.%f")
        final, part = self.exp_dir / f"checkpoint_{stamp}", self.exp_dir / f".checkpoint_{stamp}.part"
        part.mkdir()
        save_checkpoint(state, part)
        part.rename(final)  # a crash mid-save leaves a .part folder, never a checkpoint_* that cannot be read
        for old in sorted(d for d in self.exp_dir.glob("checkpoint_*") if d.is_dir())[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        self.last_metrics, self.last_checkpoint = dict(metrics), str(final)
        self.w.call("record_epoch", self.trial_id, dict(metrics), checkpoint=str(final))
