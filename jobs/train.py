"""The train job: one `TorchTrainer` (Ray Train V2) around `jobs.loop.train_loop_per_worker`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from tunelab.errors import exception_line
from tunelab.jobs.config import TrainConfig

__all__ = ["FitResult", "error_line", "fit", "fit_local", "initial_state", "make_trainer", "resolve_resources",
           "runs_in_process", "worker_resources"]


def initial_state(cfg: TrainConfig, num_classes: int, in_chans: int, img_size: int) -> Optional[dict]:
    """Check that `cfg.model` builds for this data; with `cfg.pretrained`, the adapted pretrained weights.

    Runs on the driver before anything starts, so a bad model name, a missing weights file or weights that do
    not fit fail at once; workers then load the returned state (from the object store) instead of each
    fetching weights, so nodes need neither the file nor the hub.
    """
    import torch

    from tunelab import models

    size = cfg.input_size or img_size
    if cfg.pretrained_weights is None:
        with torch.device("meta"):  # shapes only: no memory, no init cost
            models.build(cfg.model, num_classes=num_classes, in_chans=in_chans, img_size=size)
        return None
    model = models.build(cfg.model, num_classes=num_classes, in_chans=in_chans, img_size=size,
                         pretrained=cfg.pretrained_weights)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class FitResult:
    metrics: dict
    checkpoint_path: Optional[str]
    storage_path: str
    error: Optional[str]


def error_line(e: BaseException) -> str:
    """How a run's failure is recorded: the exception's type and the last line of its message (a worker's error
    arrives wrapped, its own words last), at most 300 characters."""
    return exception_line(e, last=True, limit=300)


def worker_resources(cfg) -> dict[str, float]:
    """What each training worker of `cfg` (a TrainConfig, or a recipe's resources) asks Ray for: its CPUs (1 unless
    set) and, when it trains on GPUs, its share of them."""
    res = {"CPU": cfg.cpus_per_worker or 1}
    if cfg.gpus_per_worker > 0:
        res["GPU"] = cfg.gpus_per_worker
    return res


def resolve_resources(cfg: TrainConfig, cluster_cpus: float, local: bool) -> TrainConfig:
    """`cfg` with CPUs per worker filled in: locally all cores split across workers; on a cluster 1 unless set."""
    if cfg.cpus_per_worker:
        return cfg
    cpus = max(1, int(cluster_cpus // cfg.workers)) if local else 1
    return cfg.model_copy(update={"cpus_per_worker": float(cpus)})


def runs_in_process(cfg: TrainConfig, storage_path: str) -> bool:
    """Whether a run of `cfg` with no cluster to use trains in this process (`fit_local`): one worker, and storage
    this machine writes to. Several DDP workers, or a cloud URI, take a local Ray instead (`fit`)."""
    return cfg.workers == 1 and "://" not in storage_path


def fit_local(cfg: TrainConfig, data, *, run_id: str, trial_id: str, redis_url: str, storage_path: str,
              init_state: Optional[dict] = None) -> FitResult:
    """Train in this process and thread: what Ray Train V2's local mode (`ScalingConfig(num_workers=0)`) does for one
    worker — the worker's loop (`jobs.loop.run_training`) called in the calling process, no Ray instance, controller
    or actors — without importing Ray Train for it (1.2 s of imports, pandas and Ray Data among them, for a function
    tunelab calls directly). Local mode keeps no callbacks and no storage either way, so `LocalRecorder` saves each
    epoch's checkpoint under `storage_path/run_id` and writes the epoch to the store, as `fit` does through Ray.

    What differs from `fit`: a run that crashes is not restarted from its checkpoint (there is no worker to replace).
    """
    import torch

    from tunelab.jobs.loop import run_training
    from tunelab.jobs.recorder import LocalRecorder

    exp_dir = f"{storage_path.rstrip('/')}/{run_id}"
    recorder = LocalRecorder(redis_url, trial_id, exp_dir)
    device = torch.device("cuda", 0) if cfg.gpus_per_worker > 0 and torch.cuda.is_available() else torch.device("cpu")
    try:
        run_training(cfg, data, report=recorder.report, device=device, init_state=init_state)
    except Exception as e:  # the loop's own error: the run failed (KeyboardInterrupt passes)
        return FitResult(metrics={}, checkpoint_path=None, storage_path=exp_dir, error=error_line(e))
    finally:
        recorder.w.flush(force=True)  # what the store missed meanwhile; the caller waits for the rest
    return FitResult(metrics=recorder.last_metrics, checkpoint_path=recorder.last_checkpoint, storage_path=exp_dir,
                     error=None)


def make_trainer(cfg: TrainConfig, train_loop_config: dict, *, name: str, storage_path: str, callbacks: list,
                 **run_options):
    """The `TorchTrainer` of `cfg` (its `cfg.workers` DDP workers, each with `worker_resources`; NCCL on GPUs, else
    gloo) running `jobs.loop.train_loop_per_worker` on `train_loop_config`: what a training run (`fit`) and a
    multi-worker sweep trial both fit. `run_options` go to its RunConfig beside name, storage and callbacks."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from tunelab.jobs.loop import train_loop_per_worker

    use_gpu = cfg.gpus_per_worker > 0
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=train_loop_config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=use_gpu,
                                     resources_per_worker=worker_resources(cfg)),
        run_config=RunConfig(name=name, storage_path=storage_path, callbacks=callbacks, **run_options),
    )


def fit(cfg: TrainConfig, data_ref, *, run_id: str, trial_id: str, redis_url: str, storage_path: str,
        init_ref=None) -> FitResult:
    """Train under Ray Train with `cfg.workers` DDP workers; every epoch goes to the store via StoreCallback.

    A worker that dies is replaced and the run resumes from its latest checkpoint (up to `cfg.max_failures`).
    """
    from ray.train import CheckpointConfig, FailureConfig

    from tunelab.jobs.callbacks import StoreCallback
    from tunelab.jobs.step import MALLOC_ENV

    if "://" not in storage_path:  # a local path; URIs (s3://, gs://) are Ray's to create
        os.makedirs(storage_path, exist_ok=True)
    trainer = make_trainer(
        cfg, {"cfg": cfg.model_dump(), "data": data_ref, "init": init_ref},
        name=run_id,
        storage_path=storage_path,
        callbacks=[StoreCallback(redis_url, trial_id)],
        failure_config=FailureConfig(max_failures=cfg.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=2),
        # glibc reads the malloc settings only at process start (jobs.step.MALLOC_ENV; a user's own values win)
        worker_runtime_env={"env_vars": {"OMP_NUM_THREADS": str(int(cfg.cpus_per_worker or 1)),
                                         **{k: os.environ.get(k, v) for k, v in MALLOC_ENV.items()}}},
    )
    try:
        result = trainer.fit()
    except Exception as e:  # Train V2 raises when the run fails for good
        return FitResult(metrics={}, checkpoint_path=None, storage_path=storage_path, error=error_line(e))
    error = error_line(result.error) if result.error is not None else None
    return FitResult(
        metrics=dict(result.metrics or {}),
        checkpoint_path=result.checkpoint.path if result.checkpoint else None,
        storage_path=result.path,
        error=error,
    )
