"""Sweep recipes: YAML files validated into a `SweepSpec` before anything starts.

Errors name the file and the key: `search_spaces/x.yaml: space.lr: loguniform needs 0 < low < high`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tunelab.errors import TunelabError, validation_line
from tunelab.jobs.config import JobError, TrainConfig, dataset_spec, make_config

SAMPLERS = ("choice", "grid", "uniform", "loguniform", "randint", "qloguniform")
# What a sweep varies or fixes must be a training-config field; these belong to the sweep itself.
_SWEEP_OWNED = {"dataset", "labels", "epochs", "workers", "cpus_per_worker", "gpus_per_worker", "subset", "seed"}


class SpecError(TunelabError, ValueError):
    """A recipe that does not validate; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Strict):
    epochs: int = Field(3, ge=1, le=10_000, description="epochs per trial (the most any trial trains)")
    samples: int = Field(4, ge=1, le=100_000, description="trials to sample (with grid: repeats of the grid)")
    time_limit_s: Optional[float] = Field(None, gt=0, description="stop starting new trials after this long")


class Scheduler(_Strict):
    type: Literal["fifo", "asha", "hyperband", "pbt"] = "asha"
    grace_period: int = Field(1, ge=1, description="asha: epochs every trial gets before it can be stopped")
    reduction_factor: float = Field(2, gt=1, description="asha/hyperband: keep 1/eta at each rung")
    perturbation_interval: int = Field(2, ge=1, description="pbt: epochs between exploit/explore steps")
    hyperparam_mutations: dict[str, Any] = Field(default_factory=dict, description="pbt: what it perturbs")


class Search(_Strict):
    algorithm: Literal["random", "grid", "optuna", "hyperopt"] = "random"
    seed: int = 0


class Resources(_Strict):
    workers: int = Field(1, ge=1, le=4096)
    cpus_per_worker: Optional[float] = Field(None, gt=0)
    gpus_per_worker: float = Field(0, ge=0, description="fractions allowed: 0.25 packs 4 trials on one GPU")
    max_failures: int = Field(3, ge=0, le=10_000, description="times a trial whose process or node was lost starts "
                              "again from its latest checkpoint (spot or preemptible nodes: raise it)")


class SweepSpec(_Strict):
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    dataset: str = Field(..., description="a registered dataset: built in, or imported with `tunelab data "
                         "import-folder`")
    labels: Literal["fine", "coarse"] = "fine"
    metric: Literal["val_acc"] = "val_acc"
    mode: Literal["max"] = "max"
    subset: Optional[int] = Field(None, ge=100, description="smoke test: train/test images per trial")
    seed: int = 0
    budget: Budget = Field(default_factory=Budget)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    search: Search = Field(default_factory=Search)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: int = Field(1, ge=1, le=10_000)
    top_k_test: int = Field(1, ge=0, description="best trials (on validation) evaluated on the test set")
    fixed: dict[str, Any] = Field(default_factory=dict, description="training-config values for every trial")
    space: dict[str, dict[str, Any]] = Field(..., description="key -> {sampler: args}")
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict, description="model -> values for it only")
    warm_start: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, description="earlier sweeps (names or run ids) whose fitting trials the searcher is told")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, name: str) -> str:
        dataset_spec(name)  # ValueError naming the registered datasets
        return name

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict) -> dict:
        if not v:
            raise ValueError("the search space is empty; vary at least one key (e.g. model or lr)")
        for key, dist in v.items():
            if not isinstance(dist, dict) or len(dist) != 1:
                raise ValueError(f"{key}: give exactly one sampler, e.g. {{loguniform: [0.001, 0.1]}}; one of {', '.join(SAMPLERS)}")
            (kind, args), = dist.items()
            if kind not in SAMPLERS:
                raise ValueError(f"{key}: unknown sampler {kind!r}; use one of {', '.join(SAMPLERS)}")
            if kind in ("choice", "grid"):
                if not isinstance(args, list) or not args:
                    raise ValueError(f"{key}: {kind} needs a non-empty list")
            else:
                n = 3 if kind == "qloguniform" else 2
                if not isinstance(args, list) or len(args) != n or not all(isinstance(a, (int, float)) for a in args):
                    raise ValueError(f"{key}: {kind} needs [{'low, high, q' if n == 3 else 'low, high'}]")
                low, high = args[0], args[1]
                if not low < high:
                    raise ValueError(f"{key}: {kind} needs low < high (got {low}, {high})")
                if kind in ("loguniform", "qloguniform") and low <= 0:
                    raise ValueError(f"{key}: {kind} needs 0 < low (got {low})")
        return v


def _train_fields() -> set[str]:
    return set(TrainConfig.model_fields) - _SWEEP_OWNED


def _values(key: str, dist: dict) -> list:
    (kind, args), = dist.items()
    return list(args) if kind in ("choice", "grid") else [args[0], args[1]]


def validate(spec: SweepSpec) -> None:
    """Check every varied, fixed and overridden key against the training config, models and policies.

    Each extreme of a range and each listed choice is validated as a real TrainConfig, so an lr of -1 or a
    model the registry lacks fails here, not hours into the sweep."""
    fields = _train_fields()
    for where, keys in (("fixed", spec.fixed), ("space", spec.space)):
        for key in keys:
            if key not in fields:
                raise SpecError(f"{where}.{key}: not a training setting; choose from {', '.join(sorted(fields))}")
    for model, vals in spec.overrides.items():
        for key in vals:
            if key not in fields or key == "model":
                raise SpecError(f"overrides.{model}.{key}: not a training setting that can be overridden")
    base = {"dataset": spec.dataset, "labels": spec.labels, "epochs": spec.budget.epochs,
            "workers": spec.resources.workers, "subset": spec.subset, **spec.fixed}
    for key, dist in spec.space.items():
        for value in _values(key, dist):
            where = f"space.{key}"
            try:
                make_config(**{**base, key: value})
            except JobError as e:
                raise SpecError(f"{where}: {value!r}: {str(e).removeprefix('invalid training config: ')}") from None
    names = spec.space.get("model", {}).get("choice") or spec.space.get("model", {}).get("grid") or [spec.fixed.get("model", "cnn")]
    for model, vals in spec.overrides.items():
        if model not in names:
            raise SpecError(f"overrides.{model}: the sweep never tries model {model!r}")
        try:
            make_config(**{**base, "model": model, **vals})
        except JobError as e:
            raise SpecError(f"overrides.{model}: {str(e).removeprefix('invalid training config: ')}") from None
    try:
        make_config(**base)
    except JobError as e:
        raise SpecError(f"fixed: {str(e).removeprefix('invalid training config: ')}") from None


def _first_problem(e: ValidationError) -> str:
    """The first problem of a recipe's ValidationError: `KEY: message` (an unexpected key: "unknown key"). The space
    validator's own message starts with the key it is about, which joins the location: `space.lr: …`."""
    err = e.errors()[0]
    line = validation_line(e, first=True, got=False)
    if not err["loc"]:
        return f"top level: {line}"
    if tuple(err["loc"]) == ("space",) and err["type"] == "value_error" and ": " in line.removeprefix("space: "):
        return "space." + line.removeprefix("space: ")
    return line


def load(path: Union[str, Path]) -> SweepSpec:
    """The validated recipe at `path`; SpecError naming the file and the key otherwise."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such file; recipes live in search_spaces/*.yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of settings at the top level")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(f"{path}: {_first_problem(e)}") from None
    try:
        validate(spec)
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None
    return spec
