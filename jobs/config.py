"""The training job's configuration: one validated pydantic model that crosses every boundary."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunelab.errors import validation_line
from tunelab.jobs import datasets
from tunelab.jobs.errors import JobError

if TYPE_CHECKING:
    from tunelab.jobs.step import StepOptions

__all__ = ["JobError", "TrainConfig", "dataset_spec", "describe_validation_error", "make_config"]

# A dataset's default recipe (`DatasetSpec.recipe`, in the registry) fills every value not given when the model is the
# recipe's (or none is named).
Labels = Literal["fine", "coarse"]

# A recipe's batch is sized for the whole dataset. On a `subset` it would leave a handful of steps an epoch (MNIST's
# 384 on 3,000 images: 7, and 25 % test accuracy), so it halves until an epoch has this many steps, down to
# SUBSET_MIN_BATCH, with the learning rate scaled in proportion (benchmarks/RESULTS.md "subset-recipe").
SUBSET_MIN_STEPS = 40
SUBSET_MIN_BATCH = 16


def scaled_for_subset(recipe: dict, subset: int, val_fraction: float) -> dict:
    """`recipe` with batch size and learning rate scaled down so `subset` images still make SUBSET_MIN_STEPS steps
    an epoch (the recipe itself when they already do)."""
    batch = recipe["batch_size"]
    n_train = int(subset * (1 - val_fraction))
    while batch > SUBSET_MIN_BATCH and n_train // batch < SUBSET_MIN_STEPS:
        batch //= 2
    batch = max(batch, SUBSET_MIN_BATCH)
    return {**recipe, "batch_size": batch, "lr": round(recipe["lr"] * batch / recipe["batch_size"], 6)}


def dataset_spec(name: str) -> datasets.DatasetSpec:
    """The registry's spec of dataset `name`; ValueError naming the choices (a recipe's schema checks names with it)."""
    try:
        return datasets.get(name)
    except JobError as e:
        raise ValueError(str(e)) from None


def _recipe_of(name) -> dict:
    try:
        return dict(datasets.get(name).recipe or {}) if isinstance(name, str) else {}
    except JobError:
        return {}  # the field's own check names the problem


class TrainConfig(BaseModel):
    """Everything one training run needs; defaults are a sound recipe per dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(datasets.DEFAULT, description="a registered dataset: built in, or imported with `tunelab "
                         "data import-folder`")
    labels: Labels = "fine"
    model: str = "cnn"
    epochs: int = Field(2, ge=1, le=10_000)
    batch_size: int = Field(128, ge=1, le=65_536, description="global batch size, split across workers")
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: Optional[float] = Field(None, gt=0, le=10, description="peak learning rate; None: the optimizer's default")
    weight_decay: float = Field(5e-4, ge=0, le=1)
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup_epochs: float = Field(0.3, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: str = Field("none", description="augmentation policy, e.g. crop_flip+cutout, mixup:0.4, auto")
    pretrained: str = Field("false", description="false, true (hub or its local cache) or a weights file path")
    input_size: Optional[int] = Field(None, ge=16, le=512, description="resize inputs to this (e.g. 224 for "
                                      "pretrained weights); None: native size with small-image stems")
    freeze_epochs: int = Field(0, ge=0, description="train only the head for the first K epochs")
    backbone_lr_scale: float = Field(1.0, ge=0, le=1, description="backbone learning rate as a fraction of the head's")
    val_fraction: float = Field(0.1, gt=0, lt=1)
    subset: Optional[int] = Field(None, ge=100, description="smoke test: at most this many training images "
                                  "(validation carved from them) and this many test images")
    seed: int = Field(0, ge=0)
    workers: int = Field(1, ge=1, le=4096)
    cpus_per_worker: Optional[float] = Field(None, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    eval_batch_size: int = Field(1024, ge=1)
    max_failures: int = Field(2, ge=0, description="worker failures survived by restarting from the latest checkpoint")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16: bf16 autocast; auto: bf16 on GPUs and CPUs with native bf16, else fp32")
    channels_last: Optional[bool] = Field(None, description="channels-last memory layout; None: on GPUs only")
    compile: bool = Field(False, description="torch.compile the model (pays a compile at start for faster steps)")

    @model_validator(mode="before")
    @classmethod
    def _recipe(cls, values):
        """A dataset's recipe fills what is not given, when the model is the recipe's own (or not given)."""
        if isinstance(values, dict):
            recipe = _recipe_of(values.get("dataset", datasets.DEFAULT))
            if recipe and values.get("model", recipe["model"]) == recipe["model"]:
                if isinstance(values.get("subset"), int) and "batch_size" not in values:
                    recipe = scaled_for_subset(recipe, values["subset"], values.get("val_fraction", 0.1))
                values = {**recipe, **values}
        return values

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        dataset_spec(name)
        return name

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        spec = dataset_spec(self.dataset)
        if self.labels not in spec.labels:
            raise ValueError(f"{self.dataset} has no {self.labels} labels (it has: {', '.join(spec.labels)}); drop "
                             f"--label {self.labels}")
        if self.pretrained.lower() in ("", "0", "no", "none", "false"):
            object.__setattr__(self, "pretrained", "false")
        elif self.pretrained.lower() in ("1", "yes", "true"):
            object.__setattr__(self, "pretrained", "true")
        from tunelab import models  # an unknown model fails here, with the registry's list of names

        models.model_info(self.model)
        from tunelab.jobs.policies import canonical

        object.__setattr__(self, "augment", canonical(self.augment, self.dataset))
        from tunelab.jobs.policies import mixes

        if mixes(self.augment, self.dataset) and self.per_worker_batch % 2:
            raise ValueError(f"mixup/cutmix pair samples within a batch: the per-worker batch "
                             f"({self.per_worker_batch}) must be even")
        if self.freeze_epochs >= self.epochs:
            raise ValueError(f"freeze_epochs {self.freeze_epochs} leaves no epoch to fine-tune the backbone; use fewer than --epochs")
        if self.batch_size < self.workers:
            raise ValueError(f"batch_size {self.batch_size} is smaller than workers {self.workers}; raise --batch-size")
        if self.warmup_epochs >= self.epochs and self.schedule != "constant":
            # A warm-up as long as the run would never reach the peak rate.
            object.__setattr__(self, "warmup_epochs", self.epochs * 0.3)
        return self

    @property
    def peak_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.1 if self.optimizer == "sgd" else 2e-3

    @property
    def pretrained_weights(self):
        """None (random init), True (hub weights) or the weights file path, as `models.build` takes it."""
        return None if self.pretrained == "false" else True if self.pretrained == "true" else self.pretrained

    @property
    def per_worker_batch(self) -> int:
        return self.batch_size // self.workers

    def step_options(self, device) -> "StepOptions":
        """The speed options for training on `device` (a torch.device), with `auto` resolved."""
        from tunelab.jobs.step import StepOptions, native_bf16

        amp = self.precision == "bf16" or (self.precision == "auto" and native_bf16(device))
        channels_last = device.type == "cuda" if self.channels_last is None else self.channels_last
        return StepOptions(amp=amp, channels_last=channels_last, compile=self.compile)

    def threads_per_worker(self) -> int:
        """CPU threads each worker should use: its CPU share, else all cores split evenly."""
        if self.cpus_per_worker:
            return max(1, int(self.cpus_per_worker))
        return max(1, (os.cpu_count() or 1) // self.workers)


def make_config(**values) -> TrainConfig:
    """A TrainConfig from flag values; JobError with one readable line if any is out of range."""
    try:
        return TrainConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        raise JobError(describe_validation_error(e)) from None


def describe_validation_error(e: ValidationError) -> str:
    """A TrainConfig's ValidationError as one line: `invalid training config: FIELD: message (got VALUE); …`."""
    return "invalid training config: " + validation_line(e)
