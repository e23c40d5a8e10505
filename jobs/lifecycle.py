"""The life cycle of a run, once for train and sweep alike: its records (the store, and the manifest in its experiment
folder), its data in Ray's object store, Ctrl-C and SIGTERM, and the end-of-run writes (which wait for an
unreachable store, then save what they could not write for `tunelab store replay`).

What a run has to say goes to a `Progress`: silent by default; the CLI and `progress=True` pass the terminal's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from tunelab.jobs.datasets import recorded
from tunelab.jobs.manifest import spill_path, write_manifest


class Progress:
    """Where a run's progress lines and its status line go. This one says nothing."""

    def line(self, text: str) -> None:
        """One line of progress (an epoch, a finished trial, a warning)."""

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator["Progress"]:
        """A status line shown while the block runs; `update(text)` on what it yields rewrites it."""
        yield self

    def update(self, text: str) -> None:
        """The status line's new text."""


def new_run_id() -> str:
    """A run id: its start time and 4 random hex digits (sortable, unique across machines)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def store_wait_s() -> float:
    """How long the end of a run waits for an unreachable store before saving its writes to a file."""
    try:
        return max(0.0, float(os.environ.get("TUNELAB_STORE_WAIT_S", "30")))
    except ValueError:
        return 30.0


def put_in_object_store(*values):
    """Each value put once in Ray's object store (workers read it zero-copy); None stays None."""
    import ray

    return tuple(None if v is None else ray.put(v) for v in values)


def describe_dataset(store, name: str) -> None:
    """Tell the store what dataset `name` is (its readers list datasets from there, without the registry)."""
    from tunelab.jobs.datasets import get
    from tunelab.results.catalogue import describe_datasets

    describe_datasets(store, {name: get(name).describe()})


# ------------------------------------------------------------------------------------------------ train


@dataclass
class TrainRun:
    """A training run's identity and where its files go."""

    run_id: str
    trial_id: str
    name: str
    exp_dir: str  # Ray Train's experiment folder for this run (the in-process run keeps the same layout)
    started: float


def start_train(store, cfg, trial_record: dict, *, name: Optional[str], storage_path: str) -> TrainRun:
    """Record a new training run of `cfg` (the run, its one trial, the manifest in its experiment folder)."""
    run_id = new_run_id()
    run = TrainRun(run_id=run_id, trial_id=f"{run_id}-t0", name=name or f"{cfg.model}-{cfg.dataset}",
                   exp_dir=f"{storage_path.rstrip('/')}/{run_id}", started=round(time.time(), 3))
    config = cfg.model_dump()
    describe_dataset(store, cfg.dataset)
    store.start_run(run_id, kind="train", name=run.name, dataset=cfg.dataset, labels=cfg.labels, config=config,
                    storage_path=storage_path, started=run.started)
    store.start_trial(run.trial_id, run_id=run_id, **trial_record,
                      params={k: v for k, v in config.items() if k not in ("dataset", "model")})
    write_manifest(run.exp_dir, run_id=run_id, kind="train", name=run.name, dataset=cfg.dataset, labels=cfg.labels,
                   config=config, started=run.started, storage_path=storage_path, dataset_spec=recorded(cfg.dataset))
    return run


def interrupted_train(store, run: TrainRun) -> None:
    """Mark a training run stopped by Ctrl-C (best effort: the manifest still says what ran)."""
    import redis

    try:
        store.finish_trial(run.trial_id, "stopped")
        store.finish_run(run.run_id, "stopped", error="interrupted")
    except redis.RedisError:
        pass


def finish_train(store, run: TrainRun, status: str, error: Optional[str], result,
                 progress: Progress) -> tuple[list[dict], Optional[Path]]:
    """Write how a training run ended, and any epoch the store lacks, through a buffer that waits for the store;
    what it still cannot write is saved for `tunelab store replay`. The run's epochs (from its final checkpoint,
    read only when some are missing) and where the writes were saved, if they were.

    The trainer's callback writes every epoch as it ends, but writes it still holds when the run ends (the store
    was away) end with it; the final checkpoint carries every epoch's metrics, so the gaps are filled from it."""
    import redis

    from tunelab.jobs.checkpoints import load_checkpoint_or_none
    from tunelab.results.buffer import BufferedWriter

    metrics = dict(getattr(result, "metrics", None) or {})
    checkpoint = getattr(result, "checkpoint_path", None)
    try:
        stored = {int(e["epoch"]) for e in store.epochs(run.trial_id)}
    except redis.RedisError:
        stored = set()
    missing = len(stored) < int(metrics.get("epoch", 0))
    history = [metrics] if metrics.get("epoch") else []
    if missing and checkpoint and "://" not in checkpoint:
        # unreadable: the last epoch's metrics came back with the result, so at least those are written
        state = load_checkpoint_or_none(Path(checkpoint), "its epochs are taken from the result")
        history = list((state or {}).get("history", [])) or history
    w = BufferedWriter(store.url)
    for m in history:
        if int(m.get("epoch", 0)) not in stored:
            w.call("record_epoch", run.trial_id, m)
    if missing and checkpoint:
        w.call("set_checkpoint", run.trial_id, checkpoint)
    w.call("finish_trial", run.trial_id, status, error=error or "")
    w.call("finish_run", run.run_id, status, error=error or "")
    spilled = _drain_or_spill(w, run.exp_dir, run.run_id, progress)
    write_manifest(run.exp_dir, status=status, ended=time.time(), error=error or "")
    return history, spilled


def _drain_or_spill(w, exp_dir: str, run_id: str, progress: Progress) -> Optional[Path]:
    """Wait up to `store_wait_s()` for the writes `w` holds; save what is left to the run's spill file (its path)."""
    if not w.pending:
        return None
    wait_s = store_wait_s()
    with progress.status(f"result store unreachable: waiting up to {wait_s:g}s to write the run's end …"):
        if w.drain(timeout_s=wait_s):
            return None
    path = spill_path(exp_dir, run_id)
    w.spill(path)
    progress.line(f"the result store stayed unreachable: {len(w.pending)} write(s) saved to {path}; write them later "
                  f"with `tunelab store replay {path}`")
    return path


# ------------------------------------------------------------------------------------------------ sweep


def start_sweep(store, spec, storage_path: str, resume_of: Optional[dict]) -> str:
    """The run id of a new sweep of `spec`, recorded; or of the sweep `resume_of` (a store record), set running."""
    if resume_of:
        store.update_run(resume_of["id"], status="running")
        return resume_of["id"]
    run_id = new_run_id()
    describe_dataset(store, spec.dataset)
    store.start_run(run_id, kind="sweep", name=spec.name, dataset=spec.dataset, labels=spec.labels,
                    config=spec.model_dump(), storage_path=storage_path)
    return run_id


@contextlib.contextmanager
def graceful_stop(progress: Progress) -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM become Tune's graceful stop while the block runs (SIGUSR1: trials stop, the experiment
    state is saved for `sweep resume`); a second one stops at once. Yields the event set by the first. Outside the
    main thread (where Python takes no signal handlers) the block runs with the handlers as they are."""
    interrupted = threading.Event()

    def _stop(signum, frame):
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        progress.line("stopping the sweep gracefully (again to stop at once) …")
        os.kill(os.getpid(), signal.SIGUSR1)

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
