"""The terminal view of a run (what `tunelab train|sweep` and `progress=True` show on stderr): a line per epoch or
finished trial, read from the store as it gets them, under a status line."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Iterator

from rich.console import Console

from tunelab.jobs.lifecycle import Progress


class TerminalProgress(Progress):
    """Progress lines and a live status line on stderr (rich)."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self._status = None

    def line(self, text: str) -> None:
        self.console.print(text, markup=False)

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator["TerminalProgress"]:
        with self.console.status(text) as s:
            outer, self._status = self._status, s
            try:
                yield self
            finally:
                self._status = outer

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)


def as_progress(progress) -> Progress:
    """The `progress=` argument of the API as a Progress: False/None say nothing, True is the terminal's view."""
    if isinstance(progress, Progress):
        return progress
    return TerminalProgress() if progress else Progress()


def epoch_line(m: dict) -> str:
    """One epoch's record as the progress line shows it."""
    parts = [f"epoch {m['epoch']}/{m['epochs']}", f"loss {m['train_loss']:.4f}", f"val {100 * m['val_acc']:.2f}%"]
    if "val_acc_coarse" in m:
        parts.append(f"coarse {100 * m['val_acc_coarse']:.2f}%")
    if "test_acc" in m:
        parts.append(f"test {100 * m['test_acc']:.2f}%")
    parts += [f"{m['images_per_s']:,.0f} img/s", f"{m['epoch_time_s']:.1f}s"]
    return "  ".join(parts)


def follow_epochs(progress: Progress, store, trial_id: str, epochs: int, t0: float,
                  finished: Callable[[], bool], wait: Callable[[float], object]) -> None:
    """A line per epoch of a training run as the store gets it, and a status line, until `finished()` (read once more
    after: the last epochs); `wait(seconds)` paces it."""
    import redis

    shown = 0
    with progress.status("training: waiting for workers …"):
        while True:
            ended = finished()
            try:
                epochs_done = store.epochs(trial_id)
            except redis.RedisError:  # training goes on; the trainer's callback buffers its writes
                progress.update(f"training: result store unreachable — training goes on, results are kept · "
                                f"{time.monotonic() - t0:,.0f}s")
            else:
                for m in epochs_done[shown:]:
                    progress.line(epoch_line(m))
                shown = max(shown, len(epochs_done))
                progress.update(f"training: epoch {min(shown + 1, epochs)}/{epochs} · {time.monotonic() - t0:,.0f}s")
            if ended:
                return
            wait(0.5)


@contextlib.contextmanager
def watching_sweep(progress: Progress, store, run_id: str, name: str) -> Iterator[None]:
    """While the block runs, a line per finished trial of the sweep and a status line (from a thread)."""
    import redis

    stop = threading.Event()
    t0 = time.monotonic()

    def view() -> None:
        seen: set[str] = set()
        with progress.status("sweep: starting trials …"):
            while not stop.wait(1.0):
                try:
                    trials = store.run_trials(run_id)
                except redis.RedisError:  # the sweep trains on; its callback buffers the writes
                    progress.update(f"sweep {name}: result store unreachable — training goes on, writes are "
                                    f"buffered · {time.monotonic() - t0:,.0f}s")
                    continue
                for t in trials:
                    if t.get("status") in ("completed", "stopped", "failed") and t["id"] not in seen:
                        seen.add(t["id"])
                        val = t.get("best_val_acc")
                        shown = f"val {100 * val:.2f}%" if val is not None else (t.get("error") or "")[:120]
                        progress.line(f"trial {t['id'].rsplit('-', 1)[-1]} {t.get('status'):<9} "
                                      f"{str(t.get('model')):<14} epochs {t.get('epochs_done', 0)}  {shown}")
                running = sum(1 for t in trials if t.get("status") == "running")
                best = max((t.get("best_val_acc") or 0 for t in trials), default=0)
                progress.update(f"sweep {name}: {len(trials)} trials, {running} running, best val "
                                f"{100 * best:.2f}% · {time.monotonic() - t0:,.0f}s")

    viewer = None
    if type(progress) is not Progress:  # a silent progress needs no thread reading the store
        viewer = threading.Thread(target=view, name="tunelab-sweep-view", daemon=True)
        viewer.start()
    try:
        yield
    finally:
        stop.set()
        if viewer is not None:
            viewer.join(timeout=5)
