"""tunelab's Python API: everything the `tunelab` command does, as functions a notebook or a script calls.

Nothing here prints unless asked (`progress=True` shows the terminal view on stderr) or exits: mistakes raise a
`tunelab.TunelabError` whose message is the line the CLI prints. Settings come from the `TUNELAB_*` environment
variables, as for the CLI (README, "Configuration").
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Optional, Union

from tunelab.dashboards.schemas import Importance  # what `importance` returns, as /api/runs/ID/importance
from tunelab.errors import InputError, validation_line
from tunelab.jobs.datasets import DEFAULT as DEFAULT_DATASET
from tunelab.outcomes import LeaderboardRow, RunRow, SweepResult, TrainResult, Trial
from tunelab.settings import load_settings


def open_store(url: Optional[str] = None, *, data_dir: Union[str, Path, None] = None):
    """The result store (`tunelab.results.ResultStore`): at `url`, else TUNELAB_REDIS_URL, else the embedded server
    under the data root (started if needed)."""
    from tunelab.results import open_store as _open

    s = load_settings()
    return _open(url or s.redis_url, Path(data_dir).expanduser().resolve() if data_dir else s.data_dir)


def train(dataset: str = DEFAULT_DATASET, model: Optional[str] = None, *, labels: str = "fine",
          name: Optional[str] = None, address: Optional[str] = None, ray: bool = False, storage: Optional[str] = None, progress: Any = False,
          **settings: Any) -> TrainResult:
    """Train one model and record every epoch in the store; how it ended (a failed run returns status "failed").

    `settings` are `TrainConfig` fields (epochs, batch_size, lr, augment, subset, workers, precision, …), defaults from
    the dataset's recipe. Without `address` (or RAY_ADDRESS) a running `tunelab cluster start` head is used, else a
    one-worker run trains in this process (`ray=True`: under a local Ray instead)."""
    from tunelab import placement
    from tunelab.jobs import data, datasets
    from tunelab.jobs.config import make_config
    from tunelab.jobs.lifecycle import Progress, finish_train, interrupted_train, put_in_object_store, start_train
    from tunelab.jobs.train import fit, fit_local, initial_state, resolve_resources, runs_in_process, worker_resources
    from tunelab.jobs.trials import trial_record
    from tunelab.progress import as_progress, follow_epochs

    say = as_progress(progress)
    viewing = type(say) is not Progress  # a silent progress needs no thread reading the store
    s = load_settings()
    address, storage = address or s.ray_address, storage or s.storage
    if "pretrained" in settings:
        settings["pretrained"] = _pretrained(settings["pretrained"])
    cfg = make_config(dataset=dataset, labels=labels, model=model, **settings)
    _check_where(address, storage)
    sp = datasets.require(cfg.dataset, s.data_dir)
    store = placement.open_run_store(s, address)
    # model and weights checked before any data is read
    init = initial_state(cfg, sp.num_classes[cfg.labels], sp.in_chans, sp.img_size)
    from tunelab.cluster import running_head
    from tunelab.cluster.storage import check_shared

    storage_path = storage or s.storage_path
    head = None if address else running_head(s.data_dir)  # a warm local head (`tunelab cluster start`) is used
    in_process = not address and not head and not ray and runs_in_process(cfg, storage_path)
    waiting = None
    if not address and not head:  # this machine, in this process or under a local Ray: checked before Ray starts
        from tunelab.cluster import local_info

        here = local_info()  # read once: it asks Ray's accelerator managers what this machine has
        cfg = resolve_resources(cfg, here.cpus, local=True)
        _, waiting = placement.local_check(worker_resources(cfg), cfg.workers, {}, placement.train_knobs(),
                                           "this run", "worker", say, info=here)
    if not in_process:  # in process: no Ray to start and no actors (jobs.train.fit_local)
        info = placement.connect(address, head, say)
        check_shared(storage_path, explicit=bool(storage), info=info)
        if address or head:
            cfg = resolve_resources(cfg, info.cpus, local=bool(head))
            waiting = placement.check_fits(info, worker_resources(cfg), cfg.workers, {}, placement.train_knobs(),
                                           "this run", "worker", say)
    say.line(f"loading {cfg.dataset} from {s.data_dir} …")  # where it runs is settled first: a refusal is quick
    prepared = data.prepare(data.load(cfg.dataset, s.data_dir), cfg.labels, cfg.val_fraction, cfg.seed, cfg.subset)

    run = start_train(store, cfg, trial_record(cfg), name=name, storage_path=storage_path)
    where = "in this process" if in_process else f"{cfg.workers} worker(s)"
    say.line(f"run {run.run_id}: {cfg.model} on {cfg.dataset} ({len(prepared.train_y):,} train / "
             f"{len(prepared.val_y):,} val / {len(prepared.test_y):,} test), {where} × {cfg.cpus_per_worker:g} CPU, "
             f"{cfg.epochs} epochs")
    common = dict(run_id=run.run_id, trial_id=run.trial_id, redis_url=store.url, storage_path=storage_path)
    outcome: dict = {}
    t0 = time.monotonic()
    try:
        if in_process:
            # The loop trains in this (the main) thread: a second OpenMP thread team in another thread would slow
            # it (benchmarks/RESULTS.md, ray-overhead notes); the progress view follows the store from a thread.
            done = threading.Event()
            follower = threading.Thread(target=follow_epochs, args=(say, store, run.trial_id, cfg.epochs, t0,
                                                                    done.is_set, done.wait),
                                        name="tunelab-progress", daemon=True)
            if viewing:
                follower.start()
            try:
                outcome["result"] = fit_local(cfg, prepared, init_state=init, **common)
            finally:
                done.set()
                if viewing:
                    follower.join()
        else:
            data_ref, init_ref = put_in_object_store(prepared, init)

            def _fit() -> None:
                try:
                    outcome["result"] = fit(cfg, data_ref, init_ref=init_ref, **common)
                except BaseException as e:  # reported below; the run is marked failed
                    outcome["exception"] = e

            worker = threading.Thread(target=_fit, name="tunelab-fit", daemon=True)
            worker.start()
            follow_epochs(say, store, run.trial_id, cfg.epochs, t0, lambda: not worker.is_alive(),
                          lambda secs: worker.join(timeout=secs))
    except KeyboardInterrupt:
        interrupted_train(store, run)
        raise
    finally:
        if waiting:
            waiting.set()
    from tunelab.jobs.train import error_line

    result = outcome.get("result")
    error = error_line(outcome["exception"]) if "exception" in outcome else getattr(result, "error", None)
    status = "failed" if error else "completed"
    history, spilled = finish_train(store, run, status, error, result, say)
    return _train_result(store, run, cfg, status, error, result, history, spilled, round(time.monotonic() - t0, 1))


def _pretrained(value: Any) -> str:
    """`pretrained=` as a TrainConfig takes it: "false", "true", or a weights file's absolute path (the record says
    which file it was)."""
    if isinstance(value, bool) or value is None:
        return str(bool(value)).lower()
    if str(value).lower() in ("false", "true", "0", "1", "no", "yes", "none", ""):
        return str(value).lower()
    return str(Path(value).expanduser().resolve())


def _train_result(store, run, cfg, status, error, result, history, spilled, wall: float) -> TrainResult:
    import redis

    try:
        trial = store.get_trial(run.trial_id) or {}
    except redis.RedisError:
        trial = {}
    if spilled or not trial:  # the summary from the run's own record of its epochs
        last = history[-1] if history else {}
        trial = {"epochs_done": last.get("epoch", 0), "test_acc": last.get("test_acc"),
                 "test_acc_coarse": last.get("test_acc_coarse"), "checkpoint": getattr(result, "checkpoint_path", None),
                 "best_val_acc": max((m["val_acc"] for m in history if m.get("val_acc") is not None), default=None),
                 "runtime": next((m["runtime"] for m in history if isinstance(m.get("runtime"), dict)), None)}
    return TrainResult(run_id=run.run_id, trial_id=run.trial_id, status=status, model=cfg.model, dataset=cfg.dataset,
                       labels=cfg.labels, epochs=trial.get("epochs_done", 0), val_acc=trial.get("best_val_acc"),
                       test_acc=trial.get("test_acc"), test_acc_coarse=trial.get("test_acc_coarse"), wall_time_s=wall,
                       checkpoint=trial.get("checkpoint"), error=error, runtime=trial.get("runtime"))


def _check_where(address: Optional[str], storage: Optional[str]) -> None:
    """A storage URI's scheme and an address's reachability, found in seconds, before any data is read."""
    from tunelab.cluster.storage import check_uri

    if storage is not None:
        check_uri(storage)
    if address:
        from tunelab.cluster.connect import check_reachable

        check_reachable(address)


def sweep_spec(spec: Any, *, name: Optional[str] = None, samples: Optional[int] = None,
               max_concurrent: Optional[int] = None, flags: bool = False):
    """A validated SweepSpec from a recipe (a path, a dict or a SweepSpec) with these overrides, checked by the same
    schema as the file's values; a bad one names the keyword (`flags`: the CLI flag) in its InputError."""
    from pydantic import ValidationError

    from tunelab import search_spaces

    load_settings()  # the recipe may name a dataset imported under the data root
    if isinstance(spec, (str, Path)):
        spec = search_spaces.load(spec)
    try:
        raw = spec.model_dump() if isinstance(spec, search_spaces.SweepSpec) else dict(spec)
        raw.update({k: v for k, v in (("name", name), ("max_concurrent", max_concurrent)) if v is not None})
        if samples is not None:
            raw["budget"] = {**raw.get("budget", {}), "samples": samples}
        return search_spaces.SweepSpec.model_validate(raw)
    except ValidationError as e:
        named = (lambda loc: "--" + str(loc[-1]).replace("_", "-")) if flags else (lambda loc: str(loc[-1]))
        raise InputError(validation_line(e, name=named, first=True)) from None


def sweep(spec: Any, *, name: Optional[str] = None, samples: Optional[int] = None,
          max_concurrent: Optional[int] = None, address: Optional[str] = None, storage: Optional[str] = None,
          progress: Any = False, recipe: Union[str, Path, None] = None,
          warm_start: Union[str, list[str], None] = None) -> SweepResult:
    """Run a sweep recipe (a YAML path, a dict or a SweepSpec) with Ray Tune; every trial and epoch goes to the store.
    Its best trial on validation, tested. An interrupted sweep returns status "stopped": `resume(name)` finishes it.
    `recipe`: the file a SweepSpec came from, for advice that names it (a path `spec` is its own). `warm_start`:
    earlier sweeps (names or run ids; instead of the recipe's `warm_start`) whose trials that fit this sweep its
    searcher is told, with their results (`search_spaces.warm`)."""
    recipe = Path(spec) if isinstance(spec, (str, Path)) else Path(recipe) if recipe else None
    spec = sweep_spec(spec, name=name, samples=samples, max_concurrent=max_concurrent)
    if warm_start is not None:
        runs = [warm_start] if isinstance(warm_start, str) else list(warm_start)
        if not all(isinstance(r, str) and r.strip() for r in runs):
            raise InputError(f"warm_start: name earlier sweeps by name or run id (got {warm_start!r})")
        spec = spec.model_copy(update={"warm_start": runs})
    storage = storage or load_settings().storage
    store = open_store()
    if any(r.get("kind") == "sweep" and r["name"] == spec.name for r in store.list_runs(10_000)):
        raise InputError(f"a sweep named {spec.name!r} exists; `tunelab sweep resume {spec.name}` continues it, "
                         f"or pass --name for a new one")
    return _run_sweep(spec, store, address=address, storage=storage, resume_of=None, recipe=recipe, progress=progress)


def resume(name: str, *, address: Optional[str] = None, progress: Any = False) -> SweepResult:
    """Continue an interrupted sweep by name or run id: finished trials are kept, unfinished and errored ones go on."""
    from tunelab import search_spaces
    from tunelab.jobs.sweep import check_resumable

    store = open_store()
    run = find_sweep(name, store=store)
    spec = search_spaces.SweepSpec.model_validate(run["config"])
    exp = Path(run["storage_path"]) / spec.name
    if "://" not in run["storage_path"] and not (exp / "tuner.pkl").exists():
        raise InputError(f"no Tune experiment at {exp} to resume (was the storage deleted?)")
    check_resumable(str(exp))  # before data and Ray: a damaged state is one line, not a sweep started over
    return _run_sweep(spec, store, address=address, storage=run["storage_path"], resume_of=run, progress=progress)


def _run_sweep(spec, store, *, address, storage, resume_of, progress, recipe: Optional[Path] = None) -> SweepResult:
    from tunelab import placement
    from tunelab.cluster import running_head
    from tunelab.cluster.storage import check_shared
    from tunelab.jobs import data, datasets
    from tunelab.jobs.config import TrainConfig
    from tunelab.jobs.lifecycle import graceful_stop, put_in_object_store, start_sweep
    from tunelab.jobs.sweep import run_sweep, trial_resources
    from tunelab.jobs.train import error_line
    from tunelab.progress import as_progress, watching_sweep
    from tunelab.search_spaces import to_tune

    say = as_progress(progress)
    s = load_settings()
    address = address or s.ray_address
    _check_where(address, storage)
    datasets.require(spec.dataset, s.data_dir)
    # a resumed sweep's searcher comes back from Tune's saved state, with what it was told
    warm = _warm_start(spec, store) if spec.warm_start and resume_of is None else None
    if warm:
        say.line(warm.line())
    if address and not s.redis_url:
        placement.store_url(s, remote="a remote cluster")
    storage_path = storage or (resume_of or {}).get("storage_path") or s.storage_path
    per_worker, workers, own = trial_resources(spec)
    knobs = placement.recipe_knobs(recipe)
    head = None if address else running_head(s.data_dir)  # a warm local head (`tunelab cluster start`) is used
    if not address and not head:  # a local Ray will offer this machine: what it cannot hold is said before it starts
        placement.local_check(per_worker, workers, own, knobs, "one trial", "trial", say)
    say.line(f"loading {spec.dataset} from {s.data_dir} …")
    # the recipe's split if it fixes one (trials are built with the same value)
    val_fraction = spec.fixed.get("val_fraction", TrainConfig.model_fields["val_fraction"].default)
    prepared = data.prepare(data.load(spec.dataset, s.data_dir), spec.labels, val_fraction, spec.seed, spec.subset)
    info = placement.connect(address, head, say)
    check_shared(storage_path, explicit=storage_path != s.storage_path or bool(s.storage), info=info)
    waiting = placement.check_fits(info, per_worker, workers, own, knobs, "one trial",
                                   "trial" if workers == 1 else "worker", say)
    run_id = start_sweep(store, spec, storage_path, resume_of)
    if warm:
        store.update_run(run_id, warm_start=warm.line())
    data_ref, = put_in_object_store(prepared)
    try:
        with graceful_stop(say) as interrupted, watching_sweep(say, store, run_id, spec.name):
            try:
                summary = run_sweep(spec, to_tune(spec, warm=warm), store, run_id, data_ref, storage_path,
                                    resume=resume_of is not None)
            except KeyboardInterrupt:
                summary = None
            except Exception as e:
                store.finish_run(run_id, "failed", error=error_line(e))
                raise InputError(f"sweep {spec.name} failed: {error_line(e)}") from None
    finally:
        if waiting:
            waiting.set()
    if summary is None or summary.interrupted or interrupted.is_set():
        store.finish_run(run_id, "stopped", error="interrupted")
        say.line(f"sweep {spec.name} interrupted; `tunelab sweep resume {spec.name}` finishes it")
        return SweepResult(run_id=run_id, name=spec.name, status="stopped",
                           wall_time_s=getattr(summary, "wall_time_s", 0.0) or 0.0)
    store.finish_run(run_id, "completed")
    best = store.get_trial(summary.best_trial) if summary.best_trial else None
    return SweepResult(run_id=run_id, name=spec.name, status="completed", best_trial=summary.best_trial,
                       best_val_acc=summary.best_val_acc, test_acc=summary.test.get("test_acc"),
                       best_config=summary.best_config, best_checkpoint=(best or {}).get("checkpoint"),
                       counts=summary.counts, tests=summary.tests, wall_time_s=summary.wall_time_s)


def _warm_start(spec, store):
    """What the sweeps `spec.warm_start` names tell its searcher (`search_spaces.warm.WarmStart`)."""
    from tunelab.jobs.trials import finished_for_good
    from tunelab.search_spaces import warm

    runs = {}
    for ref in spec.warm_start:
        rec = find_sweep(ref, store=store)
        if rec["id"] not in runs:
            runs[rec["id"]] = warm.EarlierRun(name=rec["name"], recipe=rec["config"], trials=[
                warm.EarlierTrial(params=t.get("params") or {}, val_acc=t.get("best_val_acc"),
                                  outcome=("diverged" if t.get("status") == "failed" else "finished")
                                  if finished_for_good(t) else "unfinished")
                for t in store.run_trials(rec["id"])])
    return warm.warm_start(spec, list(runs.values()))


# ------------------------------------------------------------------------------------------------ results


def leaderboard(dataset: str, label: str = "fine", *, limit: Optional[int] = 20, family: Optional[str] = None,
                augment: Optional[str] = None, pretrained: Optional[bool] = None,
                pareto: bool = False) -> list[LeaderboardRow]:
    """The best trials for a dataset, ranked by validation accuracy (ties: test accuracy), as on the web leaderboard.
    `pretrained`: True only fine-tuned trials, False only from-scratch ones. Each row's `pareto` says whether the
    trial is Pareto-optimal on the whole board (validation accuracy against parameters, training seconds and
    inference images/s; `tunelab.dashboards.views.pareto_front`); `pareto=True` returns only those."""
    from tunelab.dashboards import views

    registered = _registered()
    if dataset in registered and label not in registered[dataset]["labels"]:
        raise InputError(f"{registered[dataset]['title']} has no {label} labels; drop --label {label}")
    return views.leaderboard(open_store(), dataset, label, limit=limit, family=family, augment=augment,
                             pretrained={None: "any", True: "yes", False: "no"}[pretrained], pareto=pareto,
                             registered=registered)


def _registered() -> dict[str, dict]:
    """Every registered dataset (built-in, and imported under the data root), as the store describes datasets."""
    from tunelab.jobs import datasets

    root = load_settings().data_dir
    return {n: datasets.get(n, root).describe() for n in datasets.names(root)}


def publish_datasets(store) -> None:
    """Tell the store about the registered datasets, so that its readers (the dashboard's tabs) list them before any
    run has used them."""
    from tunelab.results.catalogue import describe_datasets

    describe_datasets(store, _registered())


def runs(limit: int = 50, *, kind: Optional[str] = None) -> list[RunRow]:
    """Runs (training runs and sweeps; `kind` "train" or "sweep" for one of them), newest first."""
    rows = open_store().list_runs(limit if kind is None else 10_000)
    rows = [r for r in rows if kind is None or r.get("kind") == kind][:limit]
    return [RunRow.model_validate(r) for r in rows]


def find_sweep(name: str, *, store=None) -> dict:
    """The store's record of the sweep named `name` (or with that run id); InputError if there is none."""
    for r in (store or open_store()).list_runs(10_000):
        if r.get("kind") == "sweep" and (r["name"] == name or r["id"] == name):
            return r
    raise InputError(f"no sweep named {name!r} in the store; see `tunelab sweep list`")


def trials(run: str) -> list[Trial]:
    """A run's trials (a run id, or a sweep's name), best validation accuracy first."""
    from tunelab.dashboards import views

    store = open_store()
    run_id = run if store.get_run(run) else find_sweep(run, store=store)["id"]
    return views.run_detail(store, run_id).trials


def importance(name_or_run_id: str, evaluator: str = "ped-anova", early_stopped: str = "reached") -> Importance:
    """How much each searched parameter of a sweep (a name or run id) mattered for its validation accuracy, most
    important first, with the trials it counted and a note saying so.

    `evaluator`: "ped-anova" (Optuna's default) or "fanova" (a random forest, seed 0). `early_stopped`: "reached" counts
    trials that ended short of the budget (ASHA, Hyperband) at the epoch they reached, "exclude" leaves them out. Too
    few trials, a training run or a bad choice raise a TunelabError saying so."""
    from tunelab.dashboards import importance as _importance

    _importance.check_choices(evaluator, early_stopped)
    store = open_store()
    run_id = name_or_run_id if store.get_run(name_or_run_id) else find_sweep(name_or_run_id, store=store)["id"]
    return _importance.sweep_importance(store, run_id, evaluator, early_stopped)
