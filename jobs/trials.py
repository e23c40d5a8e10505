"""A trial as the store records it (`trial_record`: model, data, leaderboards), and a sweep's trial as the sweep job,
its store callback and the importer see it: its TrainConfig from the dumped recipe and the values Tune sampled,
what of its results the store keeps, and the result keys a trial reports besides its metrics. Imports no Ray."""

from __future__ import annotations

from tunelab.jobs.config import TrainConfig
from tunelab.jobs.datasets import get

DIVERGED = "diverged"  # result key of a trial whose loss stopped being finite
RESTARTED = "restarted"  # result key: why a resumed trial could not continue from its checkpoint


def leaderboards_for(cfg: TrainConfig) -> dict[str, dict[str, str]]:
    """The leaderboards a run of `cfg` belongs on, with the metrics that rank it on each.

    A model trained on fine labels of a dataset with coarse ones is also ranked on the coarse board by the coarse
    accuracy derived from its fine predictions.
    """
    boards = {cfg.labels: {"val": "val_acc", "test": "test_acc"}}
    for derived in get(cfg.dataset).derived_labels(cfg.labels):
        boards[derived] = {"val": f"val_acc_{derived}", "test": f"test_acc_{derived}"}
    return boards


def trial_record(cfg: TrainConfig) -> dict:
    """What the store keeps about a trial of `cfg` besides its params: model, family, data, leaderboards."""
    from tunelab import models

    return dict(model=cfg.model, family=models.model_info(cfg.model).family, dataset=cfg.dataset, labels=cfg.labels,
                boards=leaderboards_for(cfg), augment=cfg.augment, pretrained=cfg.pretrained)


def base_values(spec_dict: dict) -> dict:
    """The training values every trial of the recipe `spec_dict` (a SweepSpec's `model_dump()`) shares."""
    r = spec_dict["resources"]
    return {"dataset": spec_dict["dataset"], "labels": spec_dict["labels"], "epochs": spec_dict["budget"]["epochs"],
            "workers": r["workers"], "cpus_per_worker": r["cpus_per_worker"], "gpus_per_worker": r["gpus_per_worker"],
            "max_failures": r.get("max_failures"),  # absent from recipes saved before it existed
            "subset": spec_dict["subset"], "seed": spec_dict["seed"], **spec_dict["fixed"]}


def trial_config(spec_dict: dict, sampled: dict) -> TrainConfig:
    """The TrainConfig of one trial: sweep settings, fixed values, sampled values, then the model's overrides.
    `spec_dict` is the recipe as `SweepSpec.model_dump()` writes it (as the run's manifest and the store keep it)."""
    values = {**base_values(spec_dict), **sampled}
    values.update((spec_dict.get("overrides") or {}).get(values.get("model", "cnn"), {}))
    return TrainConfig(**{k: v for k, v in values.items() if v is not None})


def result_metrics(result: dict) -> dict:
    """What of a Tune result the store keeps as an epoch: its numbers, and the trial's runtime description."""
    metrics = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if isinstance(result.get("runtime"), dict):
        metrics["runtime"] = result["runtime"]
    return metrics


def finished_for_good(trial: dict) -> bool:
    """Whether the store has `trial` as finished for good: completed, stopped early, or diverged. (A trial that
    failed with an error is not: a resumed sweep gives it another go.)"""
    status = trial.get("status")
    return status in ("completed", "stopped") or (
        status == "failed" and str(trial.get("error", "")).startswith("TrainingDiverged"))
