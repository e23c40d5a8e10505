"""The per-worker training loop, plain PyTorch.

`run_training` runs in one process without Ray (the baseline benchmarks measure against, and what a GPU check
runs); `train_loop_per_worker` is the same loop as a Ray Train worker function: it reads the prepared data
from the object store, wraps the model in DDP and reports every epoch with a checkpoint.
"""

from __future__ import annotations

import math
import os
import queue
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from tunelab import models
from tunelab.jobs.augment import Augmenter
from tunelab.jobs.checkpoints import load_checkpoint, save_checkpoint
from tunelab.jobs.config import TrainConfig
from tunelab.jobs.data import PreparedData, epoch_indices
from tunelab.jobs.errors import JobError, TrainingDiverged
from tunelab.jobs.step import (
    StepOptions,
    as_input,
    autocast,
    compiled,
    inference_throughput,
    prepare_model,
    runtime_info,
    setup_device,
    train_step,
)

# A step whose training loss exceeds this many times the cost of guessing (ln of the class count, where every
# freshly initialised classifier starts) has blown up its weights. In fp32 such a run soon turns NaN; under bf16
# autocast (fp32's range, 8 bits of mantissa) it does not: the loss reaches thousands and the net collapses to a
# constant guess with a finite loss, so a NaN check alone passes it as trained. See `check_diverged`.
DIVERGED_FACTOR = 10.0

# report(metrics, checkpoint_state or None): called once per epoch on every rank. The state references the live
# model and optimizer tensors, so a reporter must persist (save or copy) it before it returns.
Reporter = Callable[[dict, Optional[dict]], None]


def _as_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    # Arrays from Ray's object store are read-only views of shared memory. We never write to them, so wrap
    # without copying; torch warns about every non-writable array, which says nothing new here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(a)
    return t.to(device, non_blocking=True) if device.type != "cpu" else t


def _prefetch(batches: Iterator, depth: int = 2) -> Iterator:
    """Produce `batches` one step ahead in a thread: per-image augmentation overlaps the training step."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work() -> None:
        try:
            for item in batches:
                q.put(item)
        except BaseException as e:  # surfaced in the training thread
            q.put(e)
        q.put(done)

    threading.Thread(target=work, daemon=True, name="tunelab-augment").start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _make_optimizer(cfg: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """Four groups: backbone/head x decay/no-decay. No weight decay on norms and biases; the backbone's peak
    rate is `backbone_lr_scale` times the head's (fine-tuning keeps pretrained features)."""
    head_ids = {id(p) for p in models.head_parameters(model)}
    groups = []
    for is_head in (False, True):
        for decay in (True, False):
            params = [p for p in model.parameters()
                      if p.requires_grad and (id(p) in head_ids) == is_head and (p.ndim > 1) == decay]
            if params:
                scale = 1.0 if is_head else cfg.backbone_lr_scale
                groups.append({"params": params, "weight_decay": cfg.weight_decay if decay else 0.0,
                               "lr": cfg.peak_lr * scale, "lr_scale": scale, "is_head": is_head})
    # One fused kernel per step on GPUs instead of a launch per parameter group and op.
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.peak_lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, **fused)
    return torch.optim.AdamW(groups, lr=cfg.peak_lr, **fused)


def _make_schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    if cfg.schedule == "onecycle" and total >= 4:  # OneCycleLR needs at least 2 steps up and 2 down
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total,
            pct_start=min(0.5, max(warm, 2) / total),
            anneal_strategy="cos", cycle_momentum=False, div_factor=25.0, final_div_factor=1e3,
        )

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _all_reduce(values: torch.Tensor, op=None) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM if op is None else op)
    return values


def check_diverged(train_loss: float, peak_loss: float, num_classes: int, epoch: int) -> None:
    """Raise TrainingDiverged if an epoch's training diverged: its mean loss is not finite, or some step's loss
    went over DIVERGED_FACTOR times the loss of guessing uniformly (ln `num_classes`)."""
    if not math.isfinite(train_loss) or not math.isfinite(peak_loss):
        raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch}; lower --lr")
    chance = math.log(max(2, num_classes))
    if peak_loss > DIVERGED_FACTOR * chance:
        raise TrainingDiverged(
            f"training loss reached {peak_loss:.4g} in epoch {epoch}, over {DIVERGED_FACTOR:g}x the {chance:.2f} of "
            f"guessing: the weights blew up; lower --lr")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: Callable, batch_size: int,
             rank: int = 0, world_size: int = 1, fine_to_coarse: Optional[torch.Tensor] = None,
             device: torch.device = torch.device("cpu"), opts: StepOptions = StepOptions()) -> dict:
    """Loss and accuracy (plus coarse accuracy derived from fine predictions) over `x`, summed across ranks."""
    was_training = model.training
    model.eval()
    n = len(y)
    lo, hi = rank * n // world_size, (rank + 1) * n // world_size  # every example counted exactly once
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, correct, coarse correct, count
    for i in range(lo, hi, batch_size):
        xb = norm(x[i : min(i + batch_size, hi)].to(device, non_blocking=True))
        yb = y[i : min(i + batch_size, hi)].to(device, non_blocking=True)
        with autocast(device, opts.amp):
            logits = model(as_input(xb, opts)).float()
        pred = logits.argmax(1)
        sums[0] += F.cross_entropy(logits, yb, reduction="sum")
        sums[1] += (pred == yb).sum()
        if fine_to_coarse is not None:
            sums[2] += (fine_to_coarse[pred] == fine_to_coarse[yb]).sum()
        sums[3] += len(yb)
    _all_reduce(sums)
    model.train(was_training)
    count = max(1.0, sums[3].item())
    out = {"loss": sums[0].item() / count, "acc": sums[1].item() / count}
    if fine_to_coarse is not None:
        out["acc_coarse"] = sums[2].item() / count
    return out


def run_training(
    cfg: TrainConfig,
    data: PreparedData,
    *,
    report: Reporter,
    rank: int = 0,
    world_size: int = 1,
    device: Optional[torch.device] = None,
    resume_state: Optional[dict] = None,
    init_state: Optional[dict] = None,
    wrap_model: Callable[[nn.Module], nn.Module] = lambda m: m,
    evaluate_test: bool = True,
) -> nn.Module:
    """Train `cfg.model` on `data`; call `report(metrics, state)` after every epoch. Returns the trained model.

    `state` (model, optimizer, scheduler, epoch) is given on rank 0 only; the last epoch's metrics carry the
    test accuracy, and on rank 0 `infer_images_per_s`: the trained model's inference throughput on `device`
    (`jobs.step.inference_throughput` on evaluation's first batch, `infer_batch_size` images: the evaluation batch
    size unless the validation set is smaller; not part of `time_total_s`). Runs as one process when `world_size`
    is 1 and no process group exists. `init_state` (pretrained weights, already adapted by the driver) replaces
    loading `cfg.pretrained` here. Sweeps pass `evaluate_test=False`: they select on validation and test only the
    chosen trials at the end.
    """
    device = device or torch.device("cpu")
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads_per_worker())
    torch.manual_seed(cfg.seed)

    img_size = cfg.input_size or data.img_size
    pretrained = None if init_state is not None else cfg.pretrained_weights
    model = models.build(cfg.model, num_classes=data.num_classes, in_chans=data.in_chans, img_size=img_size,
                         pretrained=pretrained)
    if init_state is not None:
        model.load_state_dict(init_state)
    n_params = models.count_parameters(model)
    mean, std = data.mean, data.std
    if cfg.pretrained_weights is not None:
        mean, std = models.input_normalization(model, data.in_chans) or (mean, std)
    opts = cfg.step_options(device)
    setup_device(device)
    model = prepare_model(model, device, opts)
    start_epoch = 0
    per_worker_batch = cfg.per_worker_batch
    n_train = len(data.train_y)
    steps_per_epoch = (n_train // world_size) // per_worker_batch
    if steps_per_epoch < 1:
        raise JobError(
            f"{n_train} training images are fewer than one batch of {cfg.batch_size}; lower --batch-size or raise --subset"
        )
    optimizer = _make_optimizer(cfg, model, device)
    scheduler = _make_schedule(cfg, optimizer, steps_per_epoch)
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        start_epoch = int(resume_state["epoch"]) + 1
    # every epoch's metrics travel in the checkpoint: the experiment directory alone can rebuild the store
    history: list[dict] = list((resume_state or {}).get("history", []))
    train_model = compiled(wrap_model(model), opts)

    train_x, train_y = _as_tensor(data.train_x, device), _as_tensor(data.train_y, device)
    # evaluation data on the device too: copies from pageable host memory would block every batch
    val_x, val_y = _as_tensor(data.val_x, device), _as_tensor(data.val_y, device)
    f2c = torch.as_tensor(data.fine_to_coarse, device=device) if data.fine_to_coarse is not None else None
    size = img_size if img_size != data.img_size else None
    augment = Augmenter(cfg.augment, data.dataset, mean, std, data.num_classes, device, seed=cfg.seed, rank=rank,
                        label_smoothing=cfg.label_smoothing, size=size)
    norm = augment.normalise  # evaluation: normalised (and resized), never augmented
    if augment.soft_targets:
        from timm.loss import SoftTargetCrossEntropy

        criterion: nn.Module = SoftTargetCrossEntropy()  # mixup/cutmix targets already carry the smoothing
    else:
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    run_start = time.perf_counter()
    # benchmarks/fixed_costs.py names a file here: the wall-clock end of the first step is written to it
    first_step_file = os.environ.get("TUNELAB_TRACE_FIRST_STEP") if rank == 0 else None

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        train_model.train()
        idx = epoch_indices(n_train, epoch, cfg.seed, rank, world_size).to(device)
        loss_sum = torch.zeros((), device=device)
        loss_peak = torch.zeros((), device=device)  # the epoch's worst step: divergence shows there first

        def batches(epoch=epoch, idx=idx) -> Iterator:
            for step in range(steps_per_epoch):
                b = idx[step * per_worker_batch : (step + 1) * per_worker_batch]
                yield augment(train_x[b], train_y[b], epoch=epoch, step=step)

        def freeze_backbone() -> None:  # head only: the backbone's rate is 0 while frozen
            for g in optimizer.param_groups:
                if not g["is_head"]:
                    g["lr"] = 0.0

        frozen = freeze_backbone if epoch < cfg.freeze_epochs else None
        for xb, yb in (_prefetch(batches()) if augment.per_image else batches()):
            loss = train_step(train_model, criterion, optimizer, xb, yb, opts, before_update=frozen)
            loss_sum += loss
            torch.maximum(loss_peak, loss, out=loss_peak)
            scheduler.step()  # recomputes every group's rate from the schedule
            if first_step_file:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # once: the step is queued, not done
                Path(first_step_file).write_text(f"{time.time():.6f}\n")
                first_step_file = None
        # the epoch's one host sync: the queued steps (on a GPU) are done once the loss is read
        train_loss = _all_reduce(loss_sum.double().reshape(1))[0].item() / (steps_per_epoch * world_size)
        train_time = time.perf_counter() - t0
        peak_loss = _all_reduce(loss_peak.double().reshape(1), dist.ReduceOp.MAX)[0].item()
        check_diverged(train_loss, peak_loss, data.num_classes, epoch + 1)
        val = evaluate(model, val_x, val_y, norm, cfg.eval_batch_size, rank, world_size, f2c, device, opts)
        metrics = {
            "epoch": epoch + 1,
            "epochs": cfg.epochs,
            "train_loss": train_loss,
            "val_loss": val["loss"],
            "val_acc": val["acc"],
            "lr": optimizer.param_groups[-1]["lr"],  # the head's (groups are ordered backbone, head)
            "images_per_s": steps_per_epoch * per_worker_batch * world_size / train_time,
            "train_time_s": train_time,
            "epoch_time_s": time.perf_counter() - t0,
            "time_total_s": time.perf_counter() - run_start,
            "params": n_params,
        }
        if "acc_coarse" in val:
            metrics["val_acc_coarse"] = val["acc_coarse"]
        if epoch == start_epoch:  # what this process trains on, said once (again after a restart: maybe elsewhere)
            metrics["runtime"] = runtime_info(device, opts, world_size)
        if epoch + 1 == cfg.epochs and evaluate_test:
            test_x, test_y = _as_tensor(data.test_x, device), _as_tensor(data.test_y, device)
            test = evaluate(model, test_x, test_y, norm, cfg.eval_batch_size, rank, world_size, f2c, device, opts)
            metrics["test_acc"] = test["acc"]
            metrics["test_images"] = len(test_y)
            metrics["test_loss"] = test["loss"]
            if "acc_coarse" in test:
                metrics["test_acc_coarse"] = test["acc_coarse"]
        if epoch + 1 == cfg.epochs and rank == 0:  # once, after training: the trained model's speed on this device
            # evaluation's first batch: the evaluation batch size, or all validation images when fewer (a smoke test)
            batch = norm(val_x[: cfg.eval_batch_size])  # already on the device
            metrics["infer_images_per_s"] = inference_throughput(model, batch, opts)
            metrics["infer_batch_size"] = len(batch)
        history.append(dict(metrics))
        state = None
        if rank == 0:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "config": cfg.model_dump(),
                "dataset": None if data.spec is None or data.spec.builtin else data.spec.to_dict(),
                "history": history,
            }
        report(metrics, state)
    return model


def evaluate_checkpoint(cfg: TrainConfig, data: PreparedData, state: dict) -> dict:
    """Test metrics (test_acc, test_loss, test_acc_coarse) of the model in a checkpoint, in this process."""
    model = models.build(cfg.model, num_classes=data.num_classes, in_chans=data.in_chans,
                         img_size=cfg.input_size or data.img_size)
    model.load_state_dict(state["model"])
    mean, std = data.mean, data.std
    if cfg.pretrained_weights is not None:
        mean, std = models.input_normalization(model, data.in_chans) or (mean, std)
    size = cfg.input_size if cfg.input_size and cfg.input_size != data.img_size else None
    norm = Augmenter("none", data.dataset, mean, std, data.num_classes, torch.device("cpu"), size=size).normalise
    f2c = torch.as_tensor(data.fine_to_coarse) if data.fine_to_coarse is not None else None
    cpu = torch.device("cpu")
    test = evaluate(model, _as_tensor(data.test_x, cpu), _as_tensor(data.test_y, cpu), norm, cfg.eval_batch_size,
                    fine_to_coarse=f2c)
    out = {"test_acc": test["acc"], "test_loss": test["loss"], "test_images": len(data.test_y)}
    if "acc_coarse" in test:
        out["test_acc_coarse"] = test["acc_coarse"]
    return out


def train_loop_per_worker(config: dict) -> None:
    """Ray Train worker entry: config holds `cfg` (TrainConfig as a dict) and `data` (an ObjectRef)."""
    import ray
    import ray.train
    import ray.train.torch

    data: PreparedData = ray.get(config["data"]).known()  # its spec: the dataset known on this node
    cfg = TrainConfig.model_validate(config["cfg"])
    init_state = ray.get(config["init"]) if config.get("init") is not None else None
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    resume_state = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        try:
            with checkpoint.as_directory() as d:
                resume_state = load_checkpoint(Path(d))
        except JobError as e:  # cut short by a crash: every retry would fail on it, so start over instead
            warnings.warn(f"{str(e).split('; ')[0]}; training starts again from epoch 1", stacklevel=2)

    def report(metrics: dict, state: Optional[dict]) -> None:
        if state is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(state, Path(d))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    def wrap(model: nn.Module) -> nn.Module:
        if world == 1:
            return model
        return ray.train.torch.prepare_model(model, move_to_device=False)

    run_training(cfg, data, report=report, rank=rank, world_size=world, device=device,
                 resume_state=resume_state, init_state=init_state, wrap_model=wrap,
                 evaluate_test=config.get("evaluate_test", True))
