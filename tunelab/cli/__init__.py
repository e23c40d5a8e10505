"""The `tunelab` command line. User mistakes end in one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from tunelab.settings import Settings, load_settings

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  no_args_is_help=True, help="Distributed training and hyperparameter search for image classifiers.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: download, import from a folder, inspect.")
models_app = typer.Typer(no_args_is_help=True, help="The model registry.")
store_app = typer.Typer(no_args_is_help=True, help="The result store (embedded Redis by default).")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(store_app, name="store")
results_app = typer.Typer(no_args_is_help=True, help="Results kept outside the store: rebuild it from experiment folders.")
app.add_typer(results_app, name="results")
cluster_app = typer.Typer(no_args_is_help=True, help="A Ray head on this machine: start, stop, status.")
jobs_app = typer.Typer(no_args_is_help=True, help="Jobs submitted to a Ray cluster: list, status, logs, stop.")
app.add_typer(cluster_app, name="cluster")
app.add_typer(jobs_app, name="jobs")


class _SweepGroup(typer.core.TyperGroup):
    """`tunelab sweep SPEC.yaml …` runs a recipe; `tunelab sweep resume|show|list …` are subcommands."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


sweep_app = typer.Typer(cls=_SweepGroup, no_args_is_help=True,
                        help="Sweeps: `tunelab sweep SPEC.yaml`, then `sweep list`, `sweep show NAME`, `sweep resume NAME`.")
app.add_typer(sweep_app, name="sweep")

# Wide when piped (no terminal to fit): tables stay readable in logs and files.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class DatasetName(str, Enum):
    mnist = "mnist"
    cifar100 = "cifar100"


class LabelKind(str, Enum):
    fine = "fine"
    coarse = "coarse"


class UserError(Exception):
    """A mistake the user can fix; raised by the front door itself."""


_ROOM_ERRORS = [("tunelab.jobs.errors", "JobError"), ("tunelab.models.registry", "ModelError"), ("tunelab.results.errors", "StoreError"),
                ("tunelab.cluster.connect", "ClusterError")]


def _user_errors() -> tuple[type[BaseException], ...]:
    """The rooms' error types. Only rooms already imported can have raised, so none is imported here
    (models imports torch, seconds on a small machine)."""
    found: list[type[BaseException]] = [UserError]
    for module, name in _ROOM_ERRORS:
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def _settings() -> Settings:
    return load_settings()


def _store(settings: Settings):
    from tunelab.results import open_store

    return open_store(settings.redis_url, settings.data_dir)


def _print_json(value) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


# ------------------------------------------------------------------------------------------------ data


@data_app.command("download")
def data_download(name: DatasetName = typer.Argument(..., help="mnist or cifar100")) -> None:
    """Download a dataset into the data root with torchvision (MD5-checked)."""
    from tunelab.jobs import data

    s = _settings()
    err.print(f"downloading {name.value} into {s.data_dir} …")
    data.download(name.value, s.data_dir)
    out.print(f"{name.value}: ready in {s.data_dir}")


@data_app.command("import")
def data_import(folder: Path = typer.Argument(..., help="folder holding the official dataset files")) -> None:
    """Copy official dataset files from a folder into the data root, verifying their MD5s (the offline path)."""
    from tunelab.jobs import data

    s = _settings()
    names = data.import_dir(folder, s.data_dir)
    for n in names:
        out.print(f"{n}: imported into {s.data_dir} (MD5s verified)")


@data_app.command("preview")
def data_preview(
    dataset: DatasetName = typer.Option(..., help="dataset to sample from"),
    augment: str = typer.Option("auto", help="augmentation policy, e.g. crop_flip+cutout, mixup, randaugment, auto"),
    out_path: Path = typer.Option(..., "--out", help="PNG file to write"),
    n: int = typer.Option(32, min=1, max=256, help="how many samples"),
    seed: int = typer.Option(0, help="which samples and which random draws"),
) -> None:
    """Write a labelled grid of training samples before and after augmentation (check a policy by eye)."""
    from tunelab.jobs import data
    from tunelab.jobs.policies import canonical

    s = _settings()
    canonical(augment, dataset.value)  # bad policy: one line before loading anything
    if out_path.suffix.lower() != ".png":
        raise UserError(f"--out {out_path} must end in .png")
    data.require(dataset.value, s.data_dir)
    from tunelab.jobs.preview import render_preview

    path = render_preview(data.load(dataset.value, s.data_dir), augment, out_path, n=n, seed=seed)
    out.print(f"wrote {path} ({n} samples, augment={canonical(augment, dataset.value)})")


@data_app.command("info")
def data_info(as_json: bool = typer.Option(False, "--json", help="machine-readable output only")) -> None:
    """Which datasets are in the data root, and their sizes."""
    from tunelab.jobs import data

    s = _settings()
    recs = data.info(s.data_dir)
    if as_json:
        _print_json({"data_dir": str(s.data_dir), "datasets": recs})
        return
    out.print(f"data root: {s.data_dir}  (TUNELAB_DATA_DIR)")
    for r in recs:
        state = f"{r['train']:,} train / {r['test']:,} test" if r["present"] else (r.get("error") or "not present")
        out.print(f"  {r['name']:<9} {r['image']:<9} classes {r['classes']}  {state}")


# ---------------------------------------------------------------------------------------------- models


@models_app.command("list")
def models_list(
    dataset: DatasetName = typer.Option(DatasetName.cifar100, help="count parameters for this dataset's inputs and classes"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """Registered models: family, parameters for a dataset, native input size, pretrained weights available."""
    import torch

    from tunelab import models
    from tunelab.jobs import data
    from tunelab.models.timm_models import weights_source

    sp = data.spec(dataset.value)
    recs = []
    for name in models.list_models():
        info = models.model_info(name)
        with torch.device("meta"):  # counting needs shapes, not memory
            m = models.build(name, num_classes=sp.num_classes["fine"], in_chans=sp.in_chans, img_size=sp.img_size)
        recs.append({
            "name": name, "family": info.family, "params": models.count_parameters(m), "dataset": dataset.value,
            "native_img_size": info.native_img_size,
            "pretrained": weights_source(info.timm_name) if info.timm_name else "none",
            "timm_name": info.timm_name, "description": info.description,
        })
    if as_json:
        _print_json(recs)
        return
    from rich.table import Table

    t = Table(title=f"models — parameters for {dataset.value} ({sp.num_classes['fine']} classes); any timm model "
                    f"also works as timm/<name>", title_justify="left")
    for col in ("name", "family", "params", "native px", "ImageNet weights", "description"):
        t.add_column(col, justify="right" if col in ("params", "native px") else "left")
    for r in recs:
        t.add_row(r["name"], r["family"], f"{r['params']:,}", str(r["native_img_size"]), r["pretrained"], r["description"])
    out.print(t)


# ----------------------------------------------------------------------------------------------- store


@store_app.command("status")
def store_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Where results go, and whether the embedded server runs."""
    from tunelab.results import embedded, redact

    s = _settings()
    rec = {"url": redact(s.redis_url)} if s.redis_url else {"embedded": True, **embedded.status(s.data_dir)}
    if as_json:
        _print_json(rec)
    else:
        out.print(" ".join(f"{k}={v}" for k, v in rec.items()))


@store_app.command("replay")
def store_replay(path: Path = typer.Argument(..., help="a tunelab-unwritten-*.jsonl file a sweep left")) -> None:
    """Write the results a sweep could not write while the store was unreachable (idempotent)."""
    from tunelab.results.buffer import replay

    if not path.is_file():
        raise UserError(f"{path} is not a file; pass the tunelab-unwritten-*.jsonl path the sweep printed")
    n = replay(_store(_settings()), path)
    out.print(f"replayed {n} write(s) from {path}", markup=False)


@results_app.command("import")
def results_import(folder: Path = typer.Argument(..., help="a storage folder runs wrote (their experiment directories)")) -> None:
    """Rebuild the store from experiment directories (Tune's results, checkpoints' epoch history); idempotent."""
    from tunelab.jobs.importer import import_dir

    store = _store(_settings())
    runs = import_dir(folder, store)
    out.print(f"imported {len(runs)} run(s) from {folder}: {', '.join(runs)}", markup=False)


@store_app.command("stop")
def store_stop() -> None:
    """Stop the embedded Redis server (it saves first; the next command starts it again)."""
    from tunelab.results import embedded

    s = _settings()
    out.print("stopped" if embedded.stop(s.data_dir) else "not running")


# ----------------------------------------------------------------------------------------------- train


def _pretrained_arg(value: str) -> str:
    """'false'/'true' as given; a path made absolute, so the record says which file it was."""
    if value.lower() in ("false", "true", "0", "1", "no", "yes", "none", ""):
        return value.lower()
    return str(Path(value).expanduser().resolve())


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def _epoch_line(m: dict) -> str:
    parts = [f"epoch {m['epoch']}/{m['epochs']}", f"loss {m['train_loss']:.4f}", f"val {100 * m['val_acc']:.2f}%"]
    if "val_acc_coarse" in m:
        parts.append(f"coarse {100 * m['val_acc_coarse']:.2f}%")
    if "test_acc" in m:
        parts.append(f"test {100 * m['test_acc']:.2f}%")
    parts += [f"{m['images_per_s']:,.0f} img/s", f"{m['epoch_time_s']:.1f}s"]
    return "  ".join(parts)


@app.command()
def train(
    dataset: DatasetName = typer.Option(DatasetName.mnist, help="dataset to train on"),
    labels: LabelKind = typer.Option(LabelKind.fine, help="label kind (coarse: CIFAR-100's 20 superclasses)"),
    model: Optional[str] = typer.Option(None, help="model name (see `tunelab models list`) [mnist: the "
                                        "default recipe's cnn_fast; cifar100: cnn]"),
    epochs: Optional[int] = typer.Option(None, help="epochs to train [2; mnist's recipe: its own]"),
    workers: int = typer.Option(1, help="data-parallel workers (DDP)"),
    batch_size: Optional[int] = typer.Option(None, help="global batch size, split across workers [128]"),
    lr: Optional[float] = typer.Option(None, help="peak learning rate [sgd 0.1, adamw 0.002]"),
    optimizer: Optional[str] = typer.Option(None, help="sgd or adamw [adamw]"),
    schedule: Optional[str] = typer.Option(None, help="onecycle, cosine or constant (with warm-up) [onecycle]"),
    weight_decay: Optional[float] = typer.Option(None, help="weight decay [5e-4]"),
    label_smoothing: Optional[float] = typer.Option(None, help="label smoothing [0]"),
    augment: str = typer.Option("none", help="augmentation policy: ops joined by +, each name[:magnitude], e.g. "
                                "crop_flip+cutout, mixup:0.4, randaugment:9, auto (see README)"),
    subset: Optional[int] = typer.Option(None, help="smoke test: use at most N training images (validation carved from them) and N test images"),
    pretrained: str = typer.Option("false", help="ImageNet weights: false, true (model hub / local cache) or a file path"),
    input_size: Optional[int] = typer.Option(None, help="resize inputs to this many pixels (e.g. 224, the weights' "
                                             "resolution); default: native size with small-image stems"),
    freeze_epochs: int = typer.Option(0, help="train only the classifier for the first K epochs"),
    backbone_lr_scale: float = typer.Option(1.0, help="backbone learning rate as a fraction of the head's (e.g. 0.1)"),
    seed: int = typer.Option(0, help="seed for init, split and shuffling"),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 (autocast) or auto: bf16 on GPUs and on CPUs "
                                            "with native bf16 [auto]"),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last",
                                                 help="channels-last memory layout [on GPUs only]"),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model (a compile at start, "
                                       "faster steps after)"),
    cpus_per_worker: Optional[float] = typer.Option(None, help="CPUs per worker [local: all cores / workers]"),
    gpus_per_worker: float = typer.Option(0.0, help="GPUs per worker (0: CPU training)"),
    name: Optional[str] = typer.Option(None, help="a name for the run [model-dataset]"),
    address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="Ray cluster address; none: the head "
                                          "`tunelab cluster start` runs, else this machine"),
    use_ray: bool = typer.Option(False, "--ray", help="without a cluster, train under a local Ray (worker actors "
                                 "restarted from the checkpoint if one dies) instead of in this process"),
    storage: Optional[str] = typer.Option(None, envvar="TUNELAB_STORAGE", help="experiment storage path or URI"),
    as_json: bool = typer.Option(False, "--json", help="print the final record as JSON only"),
) -> None:
    """Train one model with Ray Train (DDP), record every epoch in the store, print a summary."""
    from tunelab.jobs.config import make_config

    s = _settings()
    cfg = make_config(
        dataset=dataset.value, labels=labels.value, model=model, epochs=epochs, workers=workers,
        batch_size=batch_size, lr=lr, optimizer=optimizer, schedule=schedule, weight_decay=weight_decay,
        label_smoothing=label_smoothing, subset=subset, seed=seed, cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker, pretrained=_pretrained_arg(pretrained), input_size=input_size,
        freeze_epochs=freeze_epochs, backbone_lr_scale=backbone_lr_scale, augment=augment,
        precision=precision, channels_last=channels_last, compile=compile_model or None,
    )
    from tunelab.cluster.storage import check_uri
    from tunelab.jobs import data

    if storage is not None:
        check_uri(storage)
    if address:  # an unreachable cluster is found in seconds, before any data is read
        from tunelab.cluster.connect import check_reachable

        check_reachable(address)
    data.require(cfg.dataset, s.data_dir)
    store = _store(s)
    if address and not s.redis_url:
        raise UserError("a remote cluster cannot reach the embedded result store; set TUNELAB_REDIS_URL to a Redis both can reach")

    from tunelab.jobs.train import (error_line, fit, fit_local, initial_state, resolve_resources, runs_in_process, trial_record,
                            worker_resources)

    sp = data.spec(cfg.dataset)  # model and weights checked before any data is read
    init = initial_state(cfg, sp.num_classes[cfg.labels], sp.in_chans, sp.img_size)
    from tunelab.cluster import Knobs, connect, local_info, running_head
    from tunelab.cluster.storage import check_shared

    storage_path = storage or s.storage_path
    head = None if address else running_head(s.data_dir)  # a warm local head (`tunelab cluster start`) is used
    in_process = not address and not head and not use_ray and runs_in_process(cfg, storage_path)
    knobs = Knobs("--workers", "--cpus-per-worker", "--gpus-per-worker")
    if not address and not head:  # this machine, in this process or under a local Ray: checked before Ray starts
        info = local_info()
        cfg = resolve_resources(cfg, info.cpus, local=True)
        waiting = _check_fits(info, worker_resources(cfg), cfg.workers, {}, knobs, "this run", "worker",
                              nodes=[{"CPU": info.cpus, "GPU": info.gpus}])
    if not in_process:  # in process: no Ray to start and no actors (jobs.train.fit_local)
        err.print(f"using the running Ray head at {head} …" if head else
                  "starting Ray …" if not address else f"connecting to Ray at {address} …")
        info = connect(address or head)
        check_shared(storage_path, explicit=bool(storage), info=info)
        if address or head:
            cfg = resolve_resources(cfg, info.cpus, local=bool(head))
            waiting = _check_fits(info, worker_resources(cfg), cfg.workers, {}, knobs, "this run", "worker")
    err.print(f"loading {cfg.dataset} from {s.data_dir} …")  # where it runs is settled first: a refusal is quick
    prepared = data.prepare(data.load(cfg.dataset, s.data_dir), cfg.labels, cfg.val_fraction, cfg.seed, cfg.subset)

    run_id = _new_run_id()
    trial_id = f"{run_id}-t0"
    started = round(time.time(), 3)
    store.start_run(run_id, kind="train", name=name or f"{cfg.model}-{cfg.dataset}", dataset=cfg.dataset,
                    labels=cfg.labels, config=cfg.model_dump(), storage_path=storage_path, started=started)
    store.start_trial(trial_id, run_id=run_id, **trial_record(cfg),
                      params={k: v for k, v in cfg.model_dump().items() if k not in ("dataset", "model")})
    from tunelab.jobs.importer import write_manifest

    exp_dir = f"{storage_path.rstrip('/')}/{run_id}"  # Ray Train's experiment directory for this run
    write_manifest(exp_dir, run_id=run_id, kind="train", name=name or f"{cfg.model}-{cfg.dataset}",
                   dataset=cfg.dataset, labels=cfg.labels, config=cfg.model_dump(), started=started,
                   storage_path=storage_path)
    where = "in this process" if in_process else f"{cfg.workers} worker(s)"
    err.print(f"run {run_id}: {cfg.model} on {cfg.dataset} ({len(prepared.train_y):,} train / {len(prepared.val_y):,} val / "
              f"{len(prepared.test_y):,} test), {where} × {cfg.cpus_per_worker:g} CPU, {cfg.epochs} epochs")

    outcome: dict = {}
    if in_process:
        def _fit() -> None:
            outcome["result"] = fit_local(cfg, prepared, run_id=run_id, trial_id=trial_id, redis_url=store.url,
                                          storage_path=storage_path, init_state=init)
    else:
        import ray

        data_ref = ray.put(prepared)
        init_ref = ray.put(init) if init is not None else None

        def _fit() -> None:
            outcome["result"] = fit(cfg, data_ref, run_id=run_id, trial_id=trial_id, redis_url=store.url,
                                    storage_path=storage_path, init_ref=init_ref)

    import redis

    t0 = time.monotonic()
    try:
        if in_process:
            # The loop trains in this (the main) thread: a second OpenMP thread team in another thread would slow
            # it (benchmarks/RESULTS.md, ray-overhead notes); the progress view follows the store from a thread.
            done = threading.Event()
            follower = threading.Thread(target=_follow_epochs, args=(store, trial_id, cfg.epochs, t0, done.is_set,
                                                                     done.wait), name="tunelab-progress", daemon=True)
            follower.start()
            try:
                _fit()
            finally:
                done.set()
                follower.join()
        else:
            def _fit_here() -> None:
                try:
                    _fit()
                except BaseException as e:  # reported below; the run is marked failed
                    outcome["exception"] = e

            worker = threading.Thread(target=_fit_here, name="tunelab-fit", daemon=True)
            worker.start()
            _follow_epochs(store, trial_id, cfg.epochs, t0, lambda: not worker.is_alive(),
                           lambda s: worker.join(timeout=s))
    except KeyboardInterrupt:
        try:
            store.finish_trial(trial_id, "stopped")
            store.finish_run(run_id, "stopped", error="interrupted")
        except redis.RedisError:
            pass  # the manifest in the experiment directory still says what ran
        raise

    if waiting:
        waiting.set()
    if in_process and not cfg.compile:
        _NOTHING_TO_SHUT_DOWN.set()
    result = outcome.get("result")
    error = None
    if "exception" in outcome:
        error = error_line(outcome["exception"])
    elif result is not None and result.error:
        error = result.error
    status_word = "failed" if error else "completed"
    history, spilled = _write_the_end(store, run_id, trial_id, status_word, error, result, exp_dir)
    write_manifest(exp_dir, status=status_word, ended=time.time(), error=error or "")
    try:
        trial = store.get_trial(trial_id) or {}
    except redis.RedisError:
        trial = {}
    if spilled or not trial:  # the summary from the run's own record of its epochs
        last = history[-1] if history else {}
        trial = {"epochs_done": last.get("epoch", 0), "test_acc": last.get("test_acc"),
                 "test_acc_coarse": last.get("test_acc_coarse"), "checkpoint": getattr(result, "checkpoint_path", None),
                 "best_val_acc": max((m["val_acc"] for m in history if m.get("val_acc") is not None), default=None),
                 "runtime": next((m["runtime"] for m in history if isinstance(m.get("runtime"), dict)), None)}
    record = {
        "run_id": run_id, "trial_id": trial_id, "status": status_word, "model": cfg.model, "dataset": cfg.dataset,
        "labels": cfg.labels, "epochs": trial.get("epochs_done", 0), "val_acc": trial.get("best_val_acc"),
        "test_acc": trial.get("test_acc"), "test_acc_coarse": trial.get("test_acc_coarse"),
        "wall_time_s": round(time.monotonic() - t0, 1), "checkpoint": trial.get("checkpoint"), "error": error,
        "runtime": trial.get("runtime"),  # precision as resolved, device, versions, workers and threads
    }
    if as_json:
        _print_json(record)
    elif error:
        err.print(f"run {run_id} failed after {record['wall_time_s']}s: {error}")
    else:
        coarse = f", coarse {100 * record['test_acc_coarse']:.2f}%" if record["test_acc_coarse"] is not None else ""
        rt = record["runtime"] or {}
        on = f" ({rt.get('precision')} on {rt.get('device_name') or rt.get('device')})" if rt else ""
        out.print(
            f"run {run_id}: {cfg.model} on {cfg.dataset}, {record['epochs']} epochs — val {100 * (record['val_acc'] or 0):.2f}%, "
            f"test {100 * (record['test_acc'] or 0):.2f}%{coarse} in {record['wall_time_s']}s{on}", markup=False,
        )
    if error:
        raise typer.Exit(1)


def _follow_epochs(store, trial_id: str, epochs: int, t0: float, finished, wait) -> None:
    """The progress view of a training run: a line per epoch as the store gets it, and a status line, until
    `finished()` (read once more after: the last epochs); `wait(seconds)` paces it."""
    import redis

    shown = 0
    with err.status("training: waiting for workers …") as status:
        while True:
            ended = finished()
            try:
                epochs_done = store.epochs(trial_id)
            except redis.RedisError:  # training goes on; the trainer's callback buffers its writes
                status.update(f"training: result store unreachable — training goes on, results are kept · "
                              f"{time.monotonic() - t0:,.0f}s")
            else:
                for m in epochs_done[shown:]:
                    err.print(_epoch_line(m))
                shown = max(shown, len(epochs_done))
                status.update(f"training: epoch {min(shown + 1, epochs)}/{epochs} · {time.monotonic() - t0:,.0f}s")
            if ended:
                return
            wait(0.5)


def _store_wait_s() -> float:
    """How long the end of a run waits for an unreachable store before saving its writes to a file."""
    try:
        return max(0.0, float(os.environ.get("TUNELAB_STORE_WAIT_S", "30")))
    except ValueError:
        return 30.0


def _write_the_end(store, run_id: str, trial_id: str, status: str, error: Optional[str], result,
                   exp_dir: str) -> tuple[list[dict], Optional[Path]]:
    """Write how a training run ended, and any epoch the store lacks, through a buffer that waits for the store;
    what it still cannot write is saved for `tunelab store replay`. The run's epochs (from its final checkpoint,
    read only when some are missing) and where the writes were saved, if they were.

    The trainer's callback writes every epoch as it ends, but writes it still holds when the run ends (the store
    was away) end with it; the final checkpoint carries every epoch's metrics, so the gaps are filled from it."""
    import redis

    from tunelab.results.buffer import BufferedWriter

    metrics = dict(getattr(result, "metrics", None) or {})
    checkpoint = getattr(result, "checkpoint_path", None)
    try:
        stored = {int(e["epoch"]) for e in store.epochs(trial_id)}
    except redis.RedisError:
        stored = set()
    missing = len(stored) < int(metrics.get("epoch", 0))
    history = [metrics] if metrics.get("epoch") else []
    if missing and checkpoint and "://" not in checkpoint:
        from tunelab.jobs.errors import JobError
        from tunelab.jobs.loop import load_checkpoint

        try:
            history = list(load_checkpoint(Path(checkpoint)).get("history", [])) or history
        except JobError:
            pass  # the last epoch's metrics came back with the result: at least those are written
    w = BufferedWriter(store.url)
    for m in history:
        if int(m.get("epoch", 0)) not in stored:
            w.call("record_epoch", trial_id, m)
    if missing and checkpoint:
        w.call("set_checkpoint", trial_id, checkpoint)
    w.call("finish_trial", trial_id, status, error=error or "")
    w.call("finish_run", run_id, status, error=error or "")
    if not w.pending:
        return history, None
    wait_s = _store_wait_s()
    with err.status(f"result store unreachable: waiting up to {wait_s:g}s to write the run's end …"):
        if w.drain(timeout_s=wait_s):
            return history, None
    local = "://" not in exp_dir
    path = Path(exp_dir) / f"tunelab-unwritten-{run_id}.jsonl" if local else \
        Path.home() / ".tunelab" / f"unwritten-{run_id}.jsonl"
    w.spill(path)
    err.print(f"the result store stayed unreachable: {len(w.pending)} write(s) saved to {path}; write them later "
              f"with `tunelab store replay {path}`", markup=False)
    return history, path


# ----------------------------------------------------------------------------------------------- sweep


def _find_sweep(store, name: str) -> dict:
    for r in store.list_runs(10_000):
        if r.get("kind") == "sweep" and (r["name"] == name or r["id"] == name):
            return r
    raise UserError(f"no sweep named {name!r} in the store; see `tunelab sweep list`")


def _check_fits(info, per_worker: dict, workers: int, own: dict, knobs, what: str, unit: str, nodes=None):
    """Refuse at once (ClusterError, one line) what this fixed-size cluster can never run; on an autoscaling
    cluster, start saying every PENDING_REPORT_S what waits for resources. The event that stops those lines."""
    from tunelab.cluster import check_fits, report_pending

    check_fits(per_worker, workers, info, knobs=knobs, own=own, what=what, nodes=nodes)
    if info.autoscaling:
        return report_pending(per_worker, unit, lambda line: err.print(line, markup=False))
    return None


def _recipe_knobs(recipe: Optional[Path]):
    """How a sweep's user sets its resources: keys of its recipe file."""
    from tunelab.cluster import Knobs

    where = f"in {recipe}".replace("{", "{{").replace("}", "}}") if recipe else \
        "in the recipe and run it as a new sweep (`tunelab sweep SPEC --name NEW`)"
    return Knobs("resources.workers", "resources.cpus_per_worker", "resources.gpus_per_worker",
                 setting="{knob}: {value}", advice="set {settings} " + where)


def _run_sweep(spec, settings: Settings, store, *, address: Optional[str], storage: Optional[str], resume_of: Optional[dict],
               recipe: Optional[Path] = None):
    from tunelab.cluster import connect, local_info, running_head
    from tunelab.cluster.connect import check_reachable
    from tunelab.cluster.storage import check_shared, check_uri
    from tunelab.jobs import data
    from tunelab.jobs.sweep import run_sweep

    if storage is not None:
        check_uri(storage)
    if address:
        check_reachable(address)
    data.require(spec.dataset, settings.data_dir)
    if address and not settings.redis_url:
        raise UserError("a remote cluster cannot reach the embedded result store; set TUNELAB_REDIS_URL to a Redis both can reach")
    storage_path = storage or (resume_of or {}).get("storage_path") or settings.storage_path
    from tunelab.jobs.sweep import trial_resources

    per_worker, workers, own = trial_resources(spec)
    head = None if address else running_head(settings.data_dir)  # a warm local head (`tunelab cluster start`) is used
    if not address and not head:  # a local Ray will offer this machine: what it cannot hold is said before it starts
        info = local_info()
        _check_fits(info, per_worker, workers, own, _recipe_knobs(recipe), "one trial", "trial",
                    nodes=[{"CPU": info.cpus, "GPU": info.gpus}])
    err.print(f"loading {spec.dataset} from {settings.data_dir} …")
    from tunelab.jobs.config import TrainConfig

    # the recipe's split if it fixes one (trials are built with the same value)
    val_fraction = spec.fixed.get("val_fraction", TrainConfig.model_fields["val_fraction"].default)
    prepared = data.prepare(data.load(spec.dataset, settings.data_dir), spec.labels, val_fraction, spec.seed,
                            spec.subset)
    err.print(f"using the running Ray head at {head} …" if head else
              "starting Ray …" if not address else f"connecting to Ray at {address} …")
    info = connect(address or head)
    check_shared(storage_path, explicit=storage_path != settings.storage_path or bool(settings.storage), info=info)
    waiting = _check_fits(info, per_worker, workers, own, _recipe_knobs(recipe), "one trial",
                          "trial" if workers == 1 else "worker")
    import ray

    if resume_of:
        run_id = resume_of["id"]
        store.update_run(run_id, status="running")
    else:
        run_id = _new_run_id()
        store.start_run(run_id, kind="sweep", name=spec.name, dataset=spec.dataset, labels=spec.labels,
                        config=spec.model_dump(), storage_path=storage_path)
    data_ref = ray.put(prepared)
    t0 = time.monotonic()
    stop_view = threading.Event()

    import redis

    def view() -> None:  # compact live view from the store: one line per finished trial, a status line
        seen: set[str] = set()
        with err.status("sweep: starting trials …") as status:
            while not stop_view.wait(1.0):
                try:
                    trials = store.run_trials(run_id)
                except redis.RedisError:  # the sweep trains on; its callback buffers the writes
                    status.update(f"sweep {spec.name}: result store unreachable — training goes on, writes are "
                                  f"buffered · {time.monotonic() - t0:,.0f}s")
                    continue
                for t in trials:
                    if t.get("status") in ("completed", "stopped", "failed") and t["id"] not in seen:
                        seen.add(t["id"])
                        val = t.get("best_val_acc")
                        shown = f"val {100 * val:.2f}%" if val is not None else (t.get("error") or "")[:120]
                        err.print(f"trial {t['id'].rsplit('-', 1)[-1]} {t.get('status'):<9} {str(t.get('model')):<14} "
                                  f"epochs {t.get('epochs_done', 0)}  {shown}", markup=False)
                running = sum(1 for t in trials if t.get("status") == "running")
                best = max((t.get("best_val_acc") or 0 for t in trials), default=0)
                status.update(f"sweep {spec.name}: {len(trials)} trials, {running} running, best val "
                              f"{100 * best:.2f}% · {time.monotonic() - t0:,.0f}s")

    viewer = threading.Thread(target=view, name="tunelab-sweep-view", daemon=True)
    viewer.start()
    # Ctrl-C and SIGTERM both become Tune's graceful stop (SIGUSR1: trials stop, the experiment state is
    # saved for `sweep resume`); a second one stops at once.
    interrupted = threading.Event()

    def _stop(signum, frame):
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        err.print("stopping the sweep gracefully (again to stop at once) …", markup=False)
        os.kill(os.getpid(), signal.SIGUSR1)

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = run_sweep(spec, store, run_id, data_ref, storage_path, resume=resume_of is not None)
    except KeyboardInterrupt:
        summary = None
    except Exception as e:
        store.finish_run(run_id, "failed", error=f"{type(e).__name__}: {str(e)[:300]}")
        from tunelab.jobs.train import error_line

        raise UserError(f"sweep {spec.name} failed: {error_line(e)}") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_view.set()
        viewer.join(timeout=5)
        if waiting:
            waiting.set()
    if summary is None or summary.interrupted or interrupted.is_set():
        store.finish_run(run_id, "stopped", error="interrupted")
        err.print(f"sweep {spec.name} interrupted; `tunelab sweep resume {spec.name}` finishes it", markup=False)
        raise typer.Exit(130)
    store.finish_run(run_id, "completed")
    return run_id, summary


def _print_summary(spec_name: str, run_id: str, summary, as_json: bool) -> None:
    rec = {"run_id": run_id, "name": spec_name, "best_trial": summary.best_trial, "best_val_acc": summary.best_val_acc,
           "test_acc": summary.test.get("test_acc"), "best_config": summary.best_config, "counts": summary.counts,
           "wall_time_s": summary.wall_time_s}
    if as_json:
        _print_json(rec)
        return
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary.counts.items()))
    best = (f"best {summary.best_trial}: val {100 * summary.best_val_acc:.2f}%"
            + (f", test {100 * rec['test_acc']:.2f}%" if rec["test_acc"] is not None else "")
            + f" with {json.dumps(summary.best_config, sort_keys=True)}") if summary.best_trial else "no trial finished an epoch"
    out.print(f"sweep {spec_name} ({run_id}): {counts} in {summary.wall_time_s}s; {best}", markup=False)


@sweep_app.command("run", hidden=True)
def sweep_run(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="a recipe, e.g. search_spaces/mnist_smoke.yaml"),
    name: Optional[str] = typer.Option(None, help="name of the sweep [the recipe's]"),
    samples: Optional[int] = typer.Option(None, min=1, help="trials to sample [the recipe's]"),
    max_concurrent: Optional[int] = typer.Option(None, min=1, help="trials at once [the recipe's]"),
    address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="Ray cluster address; none: local"),
    storage: Optional[str] = typer.Option(None, envvar="TUNELAB_STORAGE", help="experiment storage path or URI"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON only"),
) -> None:
    """Run a sweep recipe with Ray Tune; every trial and epoch goes to the store."""
    from tunelab import search_spaces

    try:
        spec = search_spaces.load(spec_path)
        raw = spec.model_dump()
        raw.update({k: v for k, v in (("name", name), ("max_concurrent", max_concurrent)) if v is not None})
        if samples is not None:
            raw["budget"]["samples"] = samples
        spec = search_spaces.SweepSpec.model_validate(raw)  # flags are checked like the file's values
    except search_spaces.SpecError as e:
        raise UserError(str(e)) from None
    except ValidationError as e:  # a flag's value, checked by the same schema as the file's
        err0 = e.errors()[0]
        flag = "--" + str(err0["loc"][-1]).replace("_", "-")
        raise UserError(f"{flag}: {err0['msg']} (got {err0.get('input')!r})") from None
    s = _settings()
    store = _store(s)
    if any(r.get("kind") == "sweep" and r["name"] == spec.name for r in store.list_runs(10_000)):
        raise UserError(f"a sweep named {spec.name!r} exists; `tunelab sweep resume {spec.name}` continues it, "
                        f"or pass --name for a new one")
    run_id, summary = _run_sweep(spec, s, store, address=address, storage=storage, resume_of=None, recipe=spec_path)
    _print_summary(spec.name, run_id, summary, as_json)


@sweep_app.command("resume")
def sweep_resume(
    name: str = typer.Argument(..., help="the sweep's name (see `tunelab sweep list`)"),
    address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="Ray cluster address; none: local"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON only"),
) -> None:
    """Continue an interrupted sweep: finished trials are kept, unfinished and errored ones continue."""
    from tunelab import search_spaces

    s = _settings()
    store = _store(s)
    run = _find_sweep(store, name)
    spec = search_spaces.SweepSpec.model_validate(run["config"])
    exp = Path(run["storage_path"]) / spec.name
    if "://" not in run["storage_path"] and not (exp / "tuner.pkl").exists():
        raise UserError(f"no Tune experiment at {exp} to resume (was the storage deleted?)")
    from tunelab.jobs.sweep import check_resumable

    check_resumable(str(exp))  # before data and Ray: a damaged state is one line, not a sweep started over
    run_id, summary = _run_sweep(spec, s, store, address=address, storage=run["storage_path"], resume_of=run)
    _print_summary(spec.name, run_id, summary, as_json)


@sweep_app.command("list")
def sweep_list(as_json: bool = typer.Option(False, "--json", help="machine-readable output only")) -> None:
    """Sweeps, newest first."""
    from tunelab.dashboards import runs_table

    sweeps = [r for r in _store(_settings()).list_runs(10_000) if r.get("kind") == "sweep"]
    if as_json:
        _print_json(sweeps)
    elif not sweeps:
        out.print("no sweeps yet; run one with `tunelab sweep search_spaces/mnist_smoke.yaml`")
    else:
        out.print(runs_table(sweeps))


@sweep_app.command("show")
def sweep_show(
    name: str = typer.Argument(..., help="the sweep's name or run id"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only (the API's /api/runs/ID)"),
) -> None:
    """A sweep's trials, best validation accuracy first (the web sweep page's order), with its summary."""
    from tunelab.dashboards import trials_table, views

    store = _store(_settings())
    detail = views.run_detail(store, _find_sweep(store, name)["id"])
    if as_json:
        _print_json(detail.model_dump(mode="json"))
        return
    out.print(trials_table(detail.run.model_dump(), [t.model_dump() for t in detail.trials]))


# ------------------------------------------------------------------------------------------ results


@app.command()
def leaderboard(
    dataset: DatasetName = typer.Option(..., help="dataset"),
    label: LabelKind = typer.Option(LabelKind.fine, help="label kind"),
    limit: int = typer.Option(20, min=1, help="rows to show"),
    family: Optional[str] = typer.Option(None, help="only this model family (see `tunelab models list`)"),
    augment: Optional[str] = typer.Option(None, help="only this augmentation policy, as stored (e.g. crop:4+flip)"),
    pretrained: Optional[bool] = typer.Option(None, "--pretrained/--scratch", help="only fine-tuned / only from-scratch trials"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only (the API's /api/leaderboard)"),
) -> None:
    """Best trials for a dataset, ranked by validation accuracy (ties: test accuracy), as on the web leaderboard."""
    from tunelab.dashboards import leaderboard_table, views

    if dataset is DatasetName.mnist and label is LabelKind.coarse:
        raise UserError("MNIST has no coarse labels; drop --label coarse")
    rows = views.leaderboard(_store(_settings()), dataset.value, label.value, limit=limit, family=family,
                             augment=augment, pretrained={None: "any", True: "yes", False: "no"}[pretrained])
    filtered = family or augment or pretrained is not None
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
    elif not rows and filtered:
        out.print(f"no {dataset.value}/{label.value} results match these filters")
    elif not rows:
        out.print(f"no results for {dataset.value}/{label.value} yet; run `tunelab train --dataset {dataset.value}`")
    else:
        out.print(leaderboard_table([r.model_dump() for r in rows], dataset.value, label.value))


@app.command()
def runs(
    limit: int = typer.Option(50, min=1, help="rows to show"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """Runs, newest first."""
    from tunelab.dashboards import runs_table

    rs = _store(_settings()).list_runs(limit)
    if as_json:
        _print_json(rs)
    elif not rs:
        out.print("no runs yet; start one with `tunelab train`")
    else:
        out.print(runs_table(rs))


# ----------------------------------------------------------------------------------------- cluster


@cluster_app.command("start")
def cluster_start(
    port: int = typer.Option(6380, min=1, max=65535, help="Ray GCS port (never Redis's 6379)"),
    dashboard_port: int = typer.Option(8265, min=1, max=65535, help="Ray dashboard and jobs server port"),
    dashboard_host: str = typer.Option("127.0.0.1", help="address the dashboard/jobs server listens on; 0.0.0.0 to "
                                       "accept submissions from other machines"),
    num_cpus: Optional[int] = typer.Option(None, min=0, help="CPUs the head offers [all]"),
    num_gpus: Optional[int] = typer.Option(None, min=0, help="GPUs the head offers [all detected]"),
) -> None:
    """Start a Ray head here (dashboard + jobs server, token auth, usage stats off) for `tunelab submit`."""
    from urllib.parse import urlsplit

    from tunelab.cluster import head

    s = _settings()
    redis_port = urlsplit(s.redis_url).port if s.redis_url and s.redis_url.startswith("redis") else None
    from tunelab.jobs.step import MALLOC_ENV

    # Warm workers: each Python worker the head starts imports torch before it takes work, so the idle workers Ray
    # keeps ready hold it when a command's trial or training worker lands on one; and every worker keeps freed
    # tensor memory (glibc reads MALLOC_* at process start).
    worker_env = {"RAY_preload_python_modules": "torch", **MALLOC_ENV}
    info = head.start(s.data_dir, port=port, dashboard_port=dashboard_port, dashboard_host=dashboard_host,
                      num_cpus=num_cpus, num_gpus=num_gpus, redis_port=redis_port,
                      progress=lambda msg: err.print(msg, markup=False), worker_env=worker_env)
    out.print(f"Ray head up: GCS {info.gcs_address}, dashboard and jobs {info.dashboard_url}", markup=False)
    out.print("`tunelab train` and `tunelab sweep` without --address use this head while it runs", markup=False)
    out.print(f"auth: {'token from ' + info.token if info.token else 'no token (RAY_AUTH_MODE=disabled)'}", markup=False)
    out.print(f"join a worker: ray start --address={info.gcs_address}   submit: tunelab submit -- train …   "
              "stop: tunelab cluster stop", markup=False)


@cluster_app.command("stop")
def cluster_stop() -> None:
    """Stop the head `tunelab cluster start` started (other Ray processes on this machine are left alone)."""
    from tunelab.cluster import head

    info = head.stop(_settings().data_dir)
    out.print(f"stopped the Ray head at {info.gcs_address}" if info else "no tunelab Ray head recorded on this machine",
              markup=False)


@cluster_app.command("status")
def cluster_status(
    address: Optional[str] = typer.Option(None, help="jobs server URL [the head started here, else http://127.0.0.1:8265]"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """The cluster's nodes, resources and jobs; exit 2 when it is down."""
    from tunelab.cluster import head, jobs

    s = _settings()
    url = jobs.resolve_address(address, s.data_dir)
    rec = jobs.cluster_status(url)
    state = head.read_state(s.data_dir)
    rec["started_here"] = bool(state and state.dashboard_url == url)
    rec["gcs_address"] = state.gcs_address if rec["started_here"] else None
    if as_json:
        _print_json(rec)
        return
    res = ", ".join(f"{v:g} {k}" if k != "memory" else f"{v / 2**30:.1f} GiB memory"
                    for k, v in sorted(rec["resources"].items()))
    out.print(f"Ray {rec['ray_version']} at {url}: {rec['nodes']} node(s) alive; {res or 'no resources'}"
              + (f"; GCS {rec['gcs_address']} (started here)" if rec["started_here"] else ""), markup=False)
    out.print("jobs: " + (", ".join(f"{v} {k.lower()}" for k, v in rec["jobs"].items()) or "none"), markup=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit(
    ctx: typer.Context,
    address: Optional[str] = typer.Option(None, help="jobs server URL, e.g. http://HEAD:8265 [RAY_API_SERVER_ADDRESS, "
                                          "the head started here, else http://127.0.0.1:8265]"),
    storage: Optional[str] = typer.Option(None, envvar="TUNELAB_STORAGE",
                                          help="storage for checkpoints: s3://…, gs://… or a path every node mounts"),
    as_json: bool = typer.Option(False, "--json", help="print the job record as JSON only"),
) -> None:
    """Submit `train …` or `sweep SPEC.yaml …` to a Ray cluster as a Ray job: tunelab submit -- train --epochs 1"""
    from tunelab.cluster import jobs

    s = _settings()
    args = list(ctx.args)
    if args[:1] == ["--"]:
        args = args[1:]
    if storage is not None:
        from tunelab.cluster.storage import check_uri

        check_uri(storage)
    url = jobs.resolve_address(address, s.data_dir)
    env = jobs.job_env(url, redis_url=s.redis_url, storage=storage, data_dir=s.data_dir,
                       data_dir_explicit=bool(os.environ.get("TUNELAB_DATA_DIR")))
    job_id = jobs.submit(args, address=url, env=env)
    if as_json:
        _print_json({"id": job_id, "address": url, "command": args})
        return
    out.print(f"submitted {job_id} to {url}: tunelab {' '.join(args)}", markup=False)
    out.print(f"follow it: tunelab jobs logs {job_id} --follow   (or: ray job logs {job_id} --address {url} -f)", markup=False)


def _jobs_address(address: Optional[str]) -> str:
    from tunelab.cluster import jobs

    return jobs.resolve_address(address, _settings().data_dir)


_JOB_ADDRESS = typer.Option(None, help="jobs server URL [RAY_API_SERVER_ADDRESS, the head started here, "
                                       "else http://127.0.0.1:8265]")


@jobs_app.command("list")
def jobs_list(
    address: Optional[str] = _JOB_ADDRESS,
    include_all: bool = typer.Option(False, "--all", help="every Ray job, not only tunelab's"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """Jobs on the cluster, newest first."""
    from rich.table import Table
    from rich.text import Text

    from tunelab.cluster import jobs

    listed = jobs.list_jobs(_jobs_address(address), include_all)
    if as_json:
        _print_json(listed)
        return
    if not listed:
        out.print("no jobs yet; submit one with `tunelab submit -- train …`")
        return
    t = Table(title="jobs — newest first", title_justify="left")
    for col in ("job", "status", "command", "started", "ended"):
        t.add_column(col)
    for j in listed:
        when = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(x)) if x else "—" for x in (j["start_time"], j["end_time"])]
        t.add_row(Text(j["id"]), j["status"], Text(j["command"] or j["entrypoint"]), *when)
    out.print(t)


@jobs_app.command("status")
def jobs_status(
    job_id: str = typer.Argument(..., help="the job id `tunelab submit` printed"),
    address: Optional[str] = _JOB_ADDRESS,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """One job's status; exit 0 whatever it is."""
    from tunelab.cluster import jobs

    rec = jobs.status(_jobs_address(address), job_id)
    if as_json:
        _print_json(rec)
    else:
        out.print(f"{rec['id']}: {rec['status']}" + (f" — {rec['message']}" if rec["message"] else ""), markup=False)


@jobs_app.command("logs")
def jobs_logs(
    job_id: str = typer.Argument(..., help="the job id `tunelab submit` printed"),
    address: Optional[str] = _JOB_ADDRESS,
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing until the job ends; exit 1 unless it succeeded"),
) -> None:
    """A job's output (the tunelab command's progress lines and summary)."""
    from tunelab.cluster import jobs

    url = _jobs_address(address)
    if not follow:
        sys.stdout.write(jobs.logs(url, job_id))
        return

    def write(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    rec = jobs.run_follow(url, job_id, write)
    err.print(f"job {job_id} {rec['status']}", markup=False)
    if rec["status"] != "SUCCEEDED":
        raise typer.Exit(1)


@jobs_app.command("stop")
def jobs_stop(
    job_id: str = typer.Argument(..., help="the job id `tunelab submit` printed"),
    address: Optional[str] = _JOB_ADDRESS,
) -> None:
    """Stop a running job (Ray interrupts its driver; a sweep stops its trials)."""
    from tunelab.cluster import jobs

    url = _jobs_address(address)
    stopped = jobs.stop(url, job_id)
    out.print(f"stopping {job_id}" if stopped else f"{job_id} was not running ({jobs.status(url, job_id)['status']})",
              markup=False)


# --------------------------------------------------------------------------------------- dashboard


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
def dashboard(
    host: str = typer.Option("127.0.0.1", help="address to listen on; anything but loopback exposes the results"),
    port: int = typer.Option(8080, min=1, max=65535, help="port to listen on"),
) -> None:
    """Serve the web dashboard (leaderboards, sweeps, runs, JSON API at /docs) from the result store."""
    import socket

    settings = _settings()
    store = _store(settings)  # fail here, in one line, when the store is unreachable
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port or --host") from None
    import uvicorn

    from tunelab.dashboards.web import create_app
    from tunelab.results import redact

    app_ = create_app(lambda: store)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"tunelab dashboard on http://{shown}:{port} — store {redact(store.url)}; Ctrl-C stops it", markup=False)
    if host not in _LOOPBACK:
        err.print(f"warning: listening on {host}, not loopback: anyone who can reach this port can read every result "
                  "(the dashboard is read-only and has no login)", markup=False)
    uvicorn.run(app_, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)


# ------------------------------------------------------------------------------------------- main


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the CLI; one line and exit 2 for usage and user errors."""
    try:
        _main(argv)
    except SystemExit as e:
        if argv is None:  # the `tunelab` command itself, not a caller in Python
            _leave_now(e.code)
        raise


# Set by a command that ends with nothing left to shut down (see _leave_now).
_NOTHING_TO_SHUT_DOWN = threading.Event()


def _leave_now(code) -> None:
    """End a finished command at once, output flushed, when it said nothing is left to shut down (a `train` that ran
    in its own process without torch.compile: no Ray instance, no compile workers). What it skips is the interpreter
    tearing down torch's and Ray's extension modules: 1.4-1.6 s after every such `tunelab train` on the 2-core
    machine, for nothing the user sees."""
    ray = sys.modules.get("ray")
    if not _NOTHING_TO_SHUT_DOWN.is_set() or (ray is not None and ray.is_initialized()):
        return
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def _main(argv: Optional[list[str]]) -> None:
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="tunelab", standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted", markup=False)
        sys.exit(130)
    except typer.TyperException as e:  # click-style usage errors (typer vendors click)
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            out.print(ctx.get_help(), markup=False)
            sys.exit(0)
        where = ctx.command_path if ctx is not None else "tunelab"
        msg = " ".join(e.format_message().replace("Value error, ", "").split())
        err.print(f"error: {msg} (see `{where} --help`)", markup=False)
        sys.exit(getattr(e, "exit_code", 2) or 2)
    except _user_errors() as e:
        err.print(f"error: {e}", markup=False)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
