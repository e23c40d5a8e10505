"""Rebuild the result store from experiment directories: `tunelab results import DIR`.

Every run leaves `tunelab-run.json` in its experiment directory (what the run was: id, kind, name, data, config,
start; at its end: status, test results, summary). With Tune's per-trial `result.json` (a sweep) or the epoch
history each checkpoint carries (a training run), that is enough to write the run again through the store's
idempotent API: importing twice changes nothing.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Optional

from tunelab.jobs.errors import JobError
from tunelab.jobs.manifest import MANIFEST

_TRIAL_DIR = re.compile(r"_([0-9a-f]{5}_\d{5})_")


def import_dir(root: Path, store) -> list[str]:
    """Write every run found under `root` into `store`; the run ids. JobError when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise JobError(f"{root} is not a folder; pass a storage folder tunelab wrote (TUNELAB_STORAGE, --storage)")
    manifests = sorted(root.rglob(MANIFEST))
    if not manifests:
        raise JobError(f"no tunelab experiment under {root} (no {MANIFEST}); pass the storage folder a run wrote "
                       "(default: $TUNELAB_DATA_DIR/experiments)")
    imported = []
    for m in manifests:
        try:
            man = json.loads(m.read_text())
            missing = [k for k in ("run_id", "kind", "name", "dataset", "labels", "config") if k not in man]
        except (OSError, ValueError, TypeError) as e:
            raise JobError(f"{m} is not a tunelab run manifest ({type(e).__name__}); nothing after it was imported") from None
        if missing:
            raise JobError(f"{m} lacks {', '.join(missing)}: not a tunelab run manifest; nothing after it was imported")
        _import_run(man, m.parent, store)
        imported.append(man["run_id"])
    return imported


def _import_run(man: dict, exp_dir: Path, store) -> None:
    from tunelab.jobs.config import TrainConfig
    from tunelab.jobs.datasets import adopt
    from tunelab.jobs.lifecycle import describe_dataset
    from tunelab.jobs.trials import trial_record

    adopt(man.get("dataset_spec"))  # an imported dataset since removed: its runs are imported all the same
    try:
        describe_dataset(store, man["dataset"])
    except JobError:  # a dataset this process cannot know (a run written before runs recorded it): what it says of it
        from tunelab.results.catalogue import describe_datasets

        describe_datasets(store, {man["dataset"]: {"title": man["dataset"], "labels": [man["labels"]], "builtin": False}})
    run_id = man["run_id"]
    store.start_run(run_id, kind=man["kind"], name=man["name"], dataset=man["dataset"], labels=man["labels"],
                    config=man["config"], storage_path=man.get("storage_path", ""), started=man.get("started"))
    tests = man.get("tests") or {}
    if man["kind"] == "sweep":
        from tunelab.jobs.trials import DIVERGED, result_metrics, trial_config

        for trial_dir in sorted(d for d in exp_dir.iterdir() if d.is_dir() and (d / "result.json").exists()):
            results = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]
            found = _TRIAL_DIR.search(trial_dir.name)
            tune_id = results[0]["trial_id"] if results else (found.group(1) if found else trial_dir.name)
            config = results[-1]["config"] if results else json.loads((trial_dir / "params.json").read_text())
            cfg = trial_config(man["config"], config)
            tid = f"{run_id}-{tune_id}"
            first = results[0] if results else {}
            started = (first.get("timestamp") or 0) - (first.get("time_this_iter_s") or 0) or None
            store.start_trial(tid, run_id=run_id, params=config, started=started, **trial_record(cfg))
            error = next((r[DIVERGED] for r in results if isinstance(r.get(DIVERGED), str)), None)
            error = f"TrainingDiverged: {error}" if error else None
            for r in results:
                if "epoch" in r and DIVERGED not in r:
                    metrics = result_metrics(r)
                    metrics.setdefault("recorded_at", r.get("timestamp"))
                    store.record_epoch(tid, metrics)
            err_file = trial_dir / "error.txt"
            if err_file.exists() and not error and not _outlived(err_file, results):
                lines = [ln for ln in err_file.read_text(errors="replace").splitlines() if ln.strip()]
                error = lines[-1][:300] if lines else "trial raised an error"
            _finish(store, tid, trial_dir, tests.get(tid), error, cfg.epochs,
                    ended=(results[-1].get("timestamp") if results else None))
    else:
        cfg = TrainConfig.model_validate(man["config"])
        tid = f"{run_id}-t0"
        store.start_trial(tid, run_id=run_id, started=man.get("started"), **trial_record(cfg),
                          params={k: v for k, v in cfg.model_dump().items() if k not in ("dataset", "model")})
        newest = _newest_checkpoint(exp_dir)
        history: list[dict] = []
        if newest is not None:
            from tunelab.jobs.loop import load_checkpoint

            history = load_checkpoint(newest).get("history", [])
        for metrics in history:
            store.record_epoch(tid, metrics)
        error = man.get("error") or None
        _finish(store, tid, exp_dir, None, error, cfg.epochs, ended=man.get("ended"))
    if man.get("summary"):
        store.update_run(run_id, summary=man["summary"])
    status = man.get("status") or "stopped"
    store.finish_run(run_id, status, error=man.get("error", "") or ("" if man.get("status") else
                                                                     "imported without an end record (interrupted?)"),
                     ended=man.get("ended"))


_FAILURE = re.compile(r"^Failure # \d+ \(occurred at (\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)\)", re.M)


def _outlived(err_file: Path, results: list[dict]) -> bool:
    """Whether the trial reported again after the last error in its error.txt: Tune keeps the file when a retry
    outlives the error (its node was lost, say), and only a trial that reported nothing after it ended on it. Tune
    stamps each failure in local time, to the second; a retry takes seconds to start."""
    if not results:
        return False
    found = _FAILURE.findall(err_file.read_text(errors="replace"))
    when = time.mktime(time.strptime(found[-1], "%Y-%m-%d_%H-%M-%S")) if found else err_file.stat().st_mtime
    return results[-1].get("timestamp", 0) > when


def _newest_checkpoint(trial_dir: Path) -> Optional[Path]:
    from tunelab.jobs.checkpoints import CHECKPOINT_FILE

    saved = [d for d in trial_dir.glob("checkpoint_*") if (d / CHECKPOINT_FILE).is_file()]
    return max(saved, key=lambda d: (d / CHECKPOINT_FILE).stat().st_mtime_ns) if saved else None


def _finish(store, tid: str, trial_dir: Path, test: Optional[dict], error: Optional[str], epochs: int,
            ended: Optional[float]) -> None:
    newest = _newest_checkpoint(trial_dir)
    if newest is not None:
        store.set_checkpoint(tid, str(newest))
    if test:
        store.record_test(tid, test)
    done = (store.get_trial(tid) or {}).get("epochs_done") or 0
    # an error that a retry outlived (Tune keeps error.txt) does not make a finished trial failed
    status = "completed" if done >= epochs else ("failed" if error else "stopped")
    store.finish_trial(tid, status, error=error if status == "failed" else "", ended=ended)
