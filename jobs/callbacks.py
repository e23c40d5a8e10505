"""Ray callbacks that hand results to the store: the one writer of every epoch.

`StoreCallback` runs in the Ray Train controller (one process per run, not one per worker); `SweepStoreCallback`
runs in a sweep's driver. Training never fails because Redis is unreachable: a write that fails is kept and
retried with the next report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from ray import tune
from ray.train import Checkpoint
from ray.train.v2.api.callback import UserCallback

from tunelab.jobs.trials import DIVERGED, RESTARTED, result_metrics, trial_config, trial_record
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


class SweepStoreCallback(tune.Callback):
    """On the driver: writes the sweep's trials, every epoch, and each trial's end to the result store.

    Writes go through a `BufferedWriter`: if Redis goes away the sweep trains on, writes wait and are flushed
    when it is back; whatever is still unwritten when the sweep ends is spilled to `spill_path`.
    """

    def __init__(self, redis_url: str, run_id: str, spec_dict: dict, spill_path: Optional[str] = None,
                 known: Optional[dict[str, dict]] = None, finished: frozenset = frozenset()):
        self.redis_url, self.run_id, self.spec_dict, self.spill_path = redis_url, run_id, spec_dict, spill_path
        self.started: set[str] = set()
        self.failed: set[str] = set()
        # On resume: the store's trials (a trial keeps the time it first started) and those already finished
        # there, whose records the resumed sweep leaves as they are.
        self.known = {tid: t.get("started") for tid, t in (known or {}).items()}
        self.finished = set(finished)
        self.w = BufferedWriter(redis_url)

    def __getstate__(self):  # Tune saves its callbacks with the experiment
        return {**self.__dict__, "started": set()}

    def on_experiment_end(self, trials, **info):
        if not self.w.drain(timeout_s=60) and self.spill_path:
            path = self.w.spill(Path(self.spill_path))
            logging.getLogger("tunelab").error(
                "the result store stayed unreachable: %d write(s) saved to %s; write them later with "
                "`tunelab store replay %s`", len(self.w.pending), path, path)

    def trial_key(self, trial) -> str:
        return f"{self.run_id}-{trial.trial_id}"

    def _ensure(self, trial) -> str:
        tid = self.trial_key(trial)
        if tid not in self.started and tid not in self.finished:
            cfg = trial_config(self.spec_dict, trial.config)
            params = {k: v for k, v in trial.config.items()}
            first = {"started": self.known[tid]} if self.known.get(tid) else {}
            self.w.call("start_trial", tid, run_id=self.run_id, params=params, **trial_record(cfg), **first)
            self.started.add(tid)
        return tid

    def on_trial_start(self, iteration, trials, trial, **info):
        self._ensure(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tid = self._ensure(trial)
        if tid in self.finished:
            return
        if isinstance(result.get(RESTARTED), str):
            logging.getLogger("tunelab").warning("trial %s: %s", trial.trial_id, result[RESTARTED])
        if isinstance(result.get(DIVERGED), str):
            self.failed.add(tid)
            self.w.call("finish_trial", tid, "failed", error=f"TrainingDiverged: {result[DIVERGED]}")
            return
        metrics = result_metrics(result)
        if "epoch" in metrics:
            self.w.call("record_epoch", tid, metrics)
        if isinstance(result.get("checkpoint_path"), str):  # multi-worker trials: TuneReportCallback's key
            self.w.call("set_checkpoint", tid, result["checkpoint_path"])
        elif isinstance(result.get("checkpoint_dir_name"), str) and trial.path:
            # one-worker trials: the checkpoint saved with this result, in the trial's own directory. Recorded
            # here as well as in on_checkpoint, which Tune skips when it fails to handle a save (seen under PBT).
            self.w.call("set_checkpoint", tid, f"{trial.path}/{result['checkpoint_dir_name']}")

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.w.call("set_checkpoint", self._ensure(trial), checkpoint.path)

    def on_trial_complete(self, iteration, trials, trial, **info):
        tid = self._ensure(trial)
        if tid in self.failed or tid in self.finished:  # failed by divergence, or finished before a resume
            return
        done = int((trial.last_result or {}).get("epoch", 0))
        epochs = trial_config(self.spec_dict, trial.config).epochs
        self.w.call("finish_trial", tid, "completed" if done >= epochs else "stopped")

    def on_trial_recover(self, iteration, trials, trial, **info):
        """A trial lost (its process or node died) that Tune starts again from its latest checkpoint: one line,
        where Tune would print the whole traceback (`TUNE_PRINT_ALL_TRIAL_ERRORS=0`, set by `run_sweep`)."""
        why = _error_line(trial) or "its process died"
        left = trial.max_failures - trial.num_failures if trial.max_failures >= 0 else "unlimited"
        logging.getLogger("tunelab").warning("trial %s was lost (%s); it continues from its latest checkpoint "
                                             "(restart %d; %s left)", trial.trial_id, why, trial.num_failures, left)

    def on_trial_error(self, iteration, trials, trial, **info):
        tid = self._ensure(trial)
        if tid in self.finished:
            return
        self.w.call("finish_trial", tid, "failed", error=_error_line(trial) or "trial raised an error")


def _error_line(trial) -> str:
    """The last line of the trial's error file (Tune writes the traceback there, the error's own words last)."""
    if getattr(trial, "error_file", None) and Path(trial.error_file).exists():
        lines = [ln for ln in Path(trial.error_file).read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:300] if lines else ""
    return ""


class QuietReporter(tune.ProgressReporter):
    """The CLI shows its own compact view; Tune's trial table every few seconds is noise there."""

    def should_report(self, trials, done=False):
        return False

    def report(self, trials, done, *sys_info):
        pass
