"""The sweep job: Ray Tune over training configs, with early stopping, search algorithms, resume, and one
driver-side callback (`jobs.callbacks.SweepStoreCallback`) that writes every trial and epoch to the store. The
recipe arrives already translated into Tune's search space, scheduler and searcher (`search_spaces.to_tune`).

A single-worker trial runs `jobs.loop.run_training` directly inside the Tune function trainable (a nested
TorchTrainer costs ~12 s per trial on a small machine); a multi-worker trial builds a `TorchTrainer` the
Train V2 way, reporting through `TuneReportCallback`. Both checkpoint every epoch, so PBT and resume work.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import ray

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0 and our quiet reporter: no trial tables
from ray import tune

from tunelab.jobs.callbacks import QuietReporter, SweepStoreCallback
from tunelab.jobs.config import TrainConfig
from tunelab.jobs.datasets import adopt, recorded
from tunelab.jobs.manifest import spill_path, write_manifest
from tunelab.jobs.train import make_trainer, worker_resources
from tunelab.jobs.trials import DIVERGED, RESTARTED, finished_for_good, trial_config

SweepSpec = Any  # search_spaces.SweepSpec, used by attribute (search_spaces imports jobs.config, not the reverse)
TuneSetup = Any  # search_spaces.TuneSetup: the recipe translated into Tune's param_space, scheduler and searcher
# Tune pickles its run config (callbacks, reporter) into tuner.pkl: sweeps saved before these classes moved to
# jobs.callbacks name them here, and resume finds them by these names
_Quiet = QuietReporter


def _trainable(config: dict, spec_dict: dict, data_ref, storage_path: str, finished: frozenset = frozenset()) -> None:
    """One trial. Reports every epoch (so ASHA and PBT act on it) with a checkpoint.

    `finished` holds the ids of trials the store already has as finished when a sweep resumes: Tune's saved
    state lags the store by up to its snapshot period, so after a crash it may hold a finished trial as
    running. Such a trial returns at once instead of running again."""
    from ray.train import Checkpoint

    from tunelab.jobs.errors import JobError
    from tunelab.jobs.loop import load_checkpoint, run_training, save_checkpoint

    if tune.get_context().get_trial_id() in finished:
        return
    # tune.with_parameters hands the object-store value over already resolved (zero-copy numpy arrays); its spec
    # makes the dataset known here, on whichever node and data root
    data = (ray.get(data_ref) if isinstance(data_ref, ray.ObjectRef) else data_ref).known()
    cfg = trial_config(spec_dict, config)
    if cfg.workers > 1:
        from ray.train import CheckpointConfig, FailureConfig
        from ray.tune.integration.ray_train import TuneReportCallback

        ctx = tune.get_context()
        # A worker lost with its node: Train replaces the worker group and every worker continues from the latest
        # checkpoint. This trial's own process lost: Tune starts the trial again, and the TorchTrainer it builds
        # under the same name and storage continues from that run's latest checkpoint (Train V2 restores by name).
        make_trainer(cfg, {"cfg": cfg.model_dump(), "data": ray.put(data), "init": None, "evaluate_test": False},
                     name=f"{ctx.get_experiment_name()}-{ctx.get_trial_id()}", storage_path=storage_path,
                     callbacks=[TuneReportCallback()], failure_config=FailureConfig(max_failures=cfg.max_failures),
                     checkpoint_config=CheckpointConfig(num_to_keep=2)).fit()
        return

    resume_state = None
    restarted = None  # why the trial starts again from epoch 1 instead of its checkpoint
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        try:
            with ckpt.as_directory() as d:
                resume_state = load_checkpoint(Path(d))
        except JobError as e:
            # A checkpoint cut short (a crash while it was written) would fail every retry and so the trial:
            # train it again from the start instead; its epochs are rewritten in place in the store.
            restarted = f"{str(e).split('; ')[0]}; the trial starts again from epoch 1"
    if resume_state is not None:
        old = resume_state.get("config", {})
        if (old.get("lr"), old.get("weight_decay")) != (cfg.lr, cfg.weight_decay):
            # PBT restored another trial's checkpoint under a perturbed config: train on with the new values.
            groups = resume_state["optimizer"]["param_groups"]
            for g in groups:
                g["lr"] = g["initial_lr"] = g["max_lr"] = cfg.peak_lr * g.get("lr_scale", 1.0)
                if g.get("weight_decay"):
                    g["weight_decay"] = cfg.weight_decay
            if "base_lrs" in resume_state["scheduler"]:
                resume_state["scheduler"]["base_lrs"] = [g["lr"] for g in groups]

    def report(metrics: dict, state: Optional[dict]) -> None:
        nonlocal restarted
        if restarted:  # said once, with the first result, to the driver's callback
            metrics, restarted = {**metrics, RESTARTED: restarted}, None
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(state, Path(d))
            tune.report(metrics, checkpoint=Checkpoint.from_directory(d))

    from tunelab.jobs.errors import TrainingDiverged

    try:
        run_training(cfg, data, report=report, resume_state=resume_state, evaluate_test=False)
    except TrainingDiverged as e:
        # Deterministic: a retry (FailureConfig) would diverge again. End the trial with its error instead; the
        # store marks it failed, schedulers see the worst score, and the sweep goes on.
        tune.report({spec_dict["metric"]: 0.0, DIVERGED: str(e)})  # the metric is an accuracy: 0 is the worst


@dataclass
class SweepSummary:
    run_id: str
    name: str
    best_trial: Optional[str]
    best_config: dict
    best_val_acc: Optional[float]
    test: dict
    counts: dict = field(default_factory=dict)
    wall_time_s: float = 0.0
    interrupted: bool = False
    tests: dict = field(default_factory=dict)  # trial id -> test metrics, for every trial evaluated on test


def check_resumable(exp_path: str) -> None:
    """JobError naming the file and the fix unless Tune's newest saved state in `exp_path` (a local folder) reads
    back. Tune itself, finding it unreadable, starts the experiment over as if new."""
    from tunelab.jobs.errors import JobError

    if "://" in exp_path:
        return
    states = sorted(Path(exp_path).glob("experiment_state-*.json"))  # Tune restores the newest by name
    again = "start the sweep again under a new name (`tunelab sweep SPEC --name NEW`); the store keeps its results"
    if not states:
        raise JobError(f"the sweep stopped before Tune first saved its state in {exp_path}; nothing to resume: {again}")
    try:
        json.loads(states[-1].read_text())
    except (OSError, ValueError) as e:
        fix = f"delete it to resume from the state before it ({states[-2].name})" if len(states) > 1 else again
        raise JobError(f"Tune's saved state {states[-1]} is damaged ({type(e).__name__}); {fix}") from None


def restore_lost_checkpoints(exp_path: str) -> list[str]:
    """Give every trial the checkpoint Tune's newest saved state names for it (local storage), before a resume.

    Tune keeps one checkpoint per trial and deletes the one before as soon as the next is saved, but saves its own
    state only every ten seconds or more: a driver killed in between leaves a state naming a checkpoint that no
    longer exists, and Tune would fail that trial on every retry. Such a trial gets its newest checkpoint copied
    under the missing name: it continues from where it really was (the epoch inside the checkpoint). The trials
    given one, as `trial_id: missing -> copied` lines (each also said on the "tunelab" logger)."""
    import logging
    import shutil

    if "://" in exp_path:
        return []
    states = sorted(Path(exp_path).glob("experiment_state-*.json"))
    if not states:
        return []
    mended = []
    for raw, meta in json.loads(states[-1].read_text())["trial_data"]:
        trial, last = json.loads(raw), json.loads(meta).get("last_result") or {}
        named = last.get("checkpoint_dir_name")
        found = sorted(Path(exp_path).glob(f"*_{trial['trial_id']}_*"))
        if not named or not found or (found[0] / named).exists():
            continue
        newest = sorted(d for d in found[0].glob("checkpoint_*") if d.is_dir())
        if not newest:
            continue  # nothing saved since: Tune's own error (the trial starts again when retried) stands
        shutil.copytree(newest[-1], found[0] / named)
        line = f"{trial['trial_id']}: {named} -> {newest[-1].name}"
        logging.getLogger("tunelab").warning(
            "trial %s: Tune's saved state names %s, deleted after that state was saved; it continues from %s",
            trial["trial_id"], named, newest[-1].name)
        mended.append(line)
    return mended


def trial_resources(spec: SweepSpec) -> tuple[dict[str, float], int, dict[str, float]]:
    """What one trial of `spec` asks Ray for: (per worker, workers, the trial's own share beside its workers).

    A one-worker trial trains in the trial's own actor (no share of its own); a multi-worker trial only drives a
    TorchTrainer, whose workers ask for theirs."""
    r = spec.resources
    return worker_resources(r), r.workers, ({} if r.workers == 1 else {"CPU": 0.01})


def run_sweep(spec: SweepSpec, tune: TuneSetup, store, run_id: str, data_ref, storage_path: str, *,
              resume: bool = False, verbose: int = 0, reuse_actors: bool = True) -> SweepSummary:
    """Fit (or resume) the sweep of recipe `spec`, translated into Tune's terms as `tune`
    (`search_spaces.to_tune(spec)`), then evaluate the best `top_k_test` trials on the test set. A resumed sweep
    takes its scheduler and searcher from Tune's saved state: only `tune.param_space` is used."""
    import logging

    from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, Tuner, with_parameters, with_resources

    # Ray's background sync of driver artifacts races with Tune's own temp files and logs a harmless
    # traceback ("Last sync command failed"); the next sync catches up. Keep it out of the user's view.
    logging.getLogger("ray.train._internal.syncer").setLevel(logging.ERROR)
    # A lost trial is one line from the store callback, not a traceback per loss (a preemptible node takes several
    # trials at once); the traceback stays in the trial's error file.
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")

    spec_dict = spec.model_dump()
    known = {t["id"]: t for t in store.run_trials(run_id)} if resume else {}
    done = frozenset(tid for tid, t in known.items() if finished_for_good(t))
    trainable = with_parameters(_trainable, spec_dict=spec_dict, data_ref=data_ref, storage_path=storage_path,
                                finished=frozenset(tid.removeprefix(f"{run_id}-") for tid in done))
    per_worker, _, own = trial_resources(spec)
    trainable = with_resources(trainable, own or per_worker)
    exp_path = str(Path(storage_path) / spec.name) if "://" not in storage_path else f"{storage_path.rstrip('/')}/{spec.name}"
    callback = SweepStoreCallback(store.url, run_id, spec_dict, spill_path=str(spill_path(exp_path, run_id)),
                                  known=known, finished=done)
    t0 = time.monotonic()
    if resume:
        check_resumable(exp_path)
        restore_lost_checkpoints(exp_path)
        tuner = Tuner.restore(exp_path, trainable=trainable, resume_unfinished=True, resume_errored=True,
                              param_space=tune.param_space)
        # callbacks are not part of the restored state: attach ours again
        tuner._local_tuner._run_config.callbacks = [callback]
    else:
        tuner = Tuner(
            trainable,
            param_space=tune.param_space,
            tune_config=TuneConfig(metric=spec.metric, mode=spec.mode, num_samples=spec.budget.samples,
                                   scheduler=tune.scheduler, search_alg=tune.searcher,
                                   max_concurrent_trials=spec.max_concurrent, time_budget_s=spec.budget.time_limit_s,
                                   # a new trial in a warm process: 0.3 s instead of ~3 s per trial here
                                   reuse_actors=reuse_actors),
            run_config=RunConfig(name=spec.name, storage_path=storage_path, callbacks=[callback], verbose=verbose,
                                 progress_reporter=QuietReporter(),
                                 # a trial whose process or node is lost continues from its latest checkpoint
                                 failure_config=FailureConfig(max_failures=spec.resources.max_failures),
                                 # PBT: keep every checkpoint while the sweep runs. A trial that exploits another
                                 # continues that trial's checkpoint numbering inside its own directory, so it
                                 # rewrites paths Ray already holds; Ray's pruning then deletes one path twice and
                                 # drops that epoch's result. `_prune_checkpoints` keeps the latest at the end.
                                 checkpoint_config=CheckpointConfig(num_to_keep=None if spec.scheduler.type == "pbt" else 1)),
        )
    run = store.get_run(run_id) or {}
    write_manifest(exp_path, run_id=run_id, kind="sweep", name=spec.name, dataset=spec.dataset, labels=spec.labels,
                   config=spec_dict, started=run.get("started") or time.time(), storage_path=storage_path,
                   dataset_spec=recorded(spec.dataset))
    grid = tuner.fit()
    # an interrupted fit returns with trials left unfinished; its experiment state is saved for resume
    interrupted = grid.num_terminated + grid.num_errors < len(grid)
    if not interrupted and spec.scheduler.type == "pbt":
        _prune_checkpoints(store, run_id)
    summary = summarise(spec, store, run_id, grid, data_ref, time.monotonic() - t0, test=not interrupted)
    summary.interrupted = interrupted
    write_manifest(exp_path, status="stopped" if interrupted else "completed", ended=time.time(),
                   tests=summary.tests, summary=json.loads(json.dumps(summary.__dict__, default=str)))
    return summary


def _prune_checkpoints(store, run_id: str) -> None:
    """Keep only each trial's last-written checkpoint, and point the store at it (local storage only).

    After a PBT exploit a trial's checkpoint numbers restart from the exploited one's, so neither the highest
    number nor the last path Tune reported is reliably the newest: the newest file is."""
    import shutil

    for t in store.run_trials(run_id):
        recorded = str(t.get("checkpoint") or "")
        if not recorded or "://" in recorded or not Path(recorded).parent.is_dir():
            continue
        saved = [d for d in Path(recorded).parent.glob("checkpoint_*") if d.is_dir() and any(d.iterdir())]
        if not saved:
            continue
        newest = max(saved, key=lambda d: max(f.stat().st_mtime_ns for f in d.iterdir()))
        if str(newest) != recorded:
            store.set_checkpoint(t["id"], str(newest))
        for old in saved:
            if old != newest:
                shutil.rmtree(old, ignore_errors=True)


def summarise(spec: SweepSpec, store, run_id: str, grid, data_ref, wall: float, test: bool = True) -> SweepSummary:
    """Counts, the best trial on validation, and test accuracy for the best `top_k_test` trials."""
    from tunelab.jobs.checkpoints import load_checkpoint_or_none
    from tunelab.jobs.loop import evaluate_checkpoint

    trials = store.run_trials(run_id)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.get("status", "unknown")] = counts.get(t.get("status", "unknown"), 0) + 1
    ranked = [t for t in trials if t.get("best_val_acc") is not None]
    data = ray.get(data_ref) if isinstance(data_ref, ray.ObjectRef) else data_ref
    tests = {}
    for t in ranked[: spec.top_k_test if test else 0]:
        ckpt = t.get("checkpoint")
        if not ckpt or not Path(ckpt).exists():
            continue
        # one unreadable checkpoint costs that trial its test figure, not the sweep its summary
        state = load_checkpoint_or_none(Path(ckpt), f"trial {t['id']} is not evaluated on test")
        if state is None:
            continue
        adopt(state.get("dataset"))
        cfg = TrainConfig.model_validate(state["config"])
        metrics = evaluate_checkpoint(cfg, data, state)
        store.record_test(t["id"], metrics)
        tests[t["id"]] = metrics
    best = ranked[0] if ranked else None
    summary = SweepSummary(
        run_id=run_id, name=spec.name, best_trial=best["id"] if best else None,
        best_config=best.get("params", {}) if best else {}, best_val_acc=best.get("best_val_acc") if best else None,
        test=tests.get(best["id"], {}) if best else {}, counts=counts, wall_time_s=round(wall, 1), tests=tests,
    )
    store.update_run(run_id, summary=json.loads(json.dumps(summary.__dict__, default=str)))
    return summary
