"""`tunelab train`: one training run, flags → `tunelab.train` → a summary line (or the record as JSON)."""

from __future__ import annotations

from typing import Optional

import typer

from tunelab.cli.common import (
    DATASET_HELP,
    NOTHING_TO_SHUT_DOWN,
    LabelKind,
    err,
    out,
    print_json,
    progress,
    results_only_on_stdout,
)
from tunelab.jobs.datasets import DEFAULT as DEFAULT_DATASET


def train(
    dataset: str = typer.Option(DEFAULT_DATASET, help=DATASET_HELP),
    labels: LabelKind = typer.Option(LabelKind.fine, "--label", "--labels", help="label kind (coarse: superclasses, "
                                     "where a dataset has them); --labels is the old spelling"),
    model: Optional[str] = typer.Option(None, help="model name (see `tunelab models list`) [the dataset's recipe's "
                                        "model where it has one, else cnn]"),
    epochs: Optional[int] = typer.Option(None, help="epochs to train [2, or the dataset's recipe's]"),
    workers: int = typer.Option(1, help="data-parallel workers (DDP)"),
    batch_size: Optional[int] = typer.Option(None, help="global batch size, split across workers [128]"),
    lr: Optional[float] = typer.Option(None, help="peak learning rate [sgd 0.1, adamw 0.002]"),
    optimizer: Optional[str] = typer.Option(None, help="sgd or adamw [adamw]"),
    schedule: Optional[str] = typer.Option(None, help="onecycle, cosine or constant (with warm-up) [onecycle]"),
    weight_decay: Optional[float] = typer.Option(None, help="weight decay [5e-4]"),
    momentum: Optional[float] = typer.Option(None, help="SGD momentum [0.9]"),
    warmup_epochs: Optional[float] = typer.Option(None, help="epochs of learning-rate warm-up [0.3]"),
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
    from tunelab.api import train as run_train

    settings = dict(
        epochs=epochs, workers=workers, batch_size=batch_size, lr=lr, optimizer=optimizer, schedule=schedule,
        weight_decay=weight_decay, momentum=momentum, warmup_epochs=warmup_epochs, label_smoothing=label_smoothing, subset=subset, seed=seed,
        cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, pretrained=pretrained, input_size=input_size,
        freeze_epochs=freeze_epochs, backbone_lr_scale=backbone_lr_scale, augment=augment, precision=precision,
        channels_last=channels_last, compile=compile_model or None,
    )
    with results_only_on_stdout():
        result = run_train(dataset, model, labels=labels.value, name=name, address=address, ray=use_ray,
                           storage=storage, progress=progress(), **settings)
    if not compile_model:  # no compile workers; with no Ray either, the command may end at once (tunelab.cli)
        NOTHING_TO_SHUT_DOWN.set()
    record = result.model_dump(mode="json")
    if as_json:
        print_json(record)
    elif result.error:
        err.print(f"run {result.run_id} failed after {result.wall_time_s}s: {result.error}")
    else:
        coarse = f", coarse {100 * result.test_acc_coarse:.2f}%" if result.test_acc_coarse is not None else ""
        rt = result.runtime or {}
        on = f" ({rt.get('precision')} on {rt.get('device_name') or rt.get('device')})" if rt else ""
        out.print(
            f"run {result.run_id}: {result.model} on {result.dataset}, {result.epochs} epochs — val "
            f"{100 * (result.val_acc or 0):.2f}%, test {100 * (result.test_acc or 0):.2f}%{coarse} in "
            f"{result.wall_time_s}s{on}", markup=False,
        )
    if result.error:
        raise typer.Exit(1)
