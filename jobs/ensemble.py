"""An ensemble of a sweep's best trials, on the leaderboard as a row of its own.

An ensemble is its own run in the store (kind "ensemble", id `SWEEP_RUN-topK`, name `SWEEP-topK`) with one trial
(`SWEEP_RUN-topK-t0`, model `ensemble-topK`, family "ensemble", params: the member trial ids). It is kept apart from
the sweep's run so that the sweep's best trial, its resume and its summary stay those of trials Tune ran. Recording
the same sweep's top K again replaces that record (its scores may go down when the members changed), so a re-run
never adds a second row.
"""

from __future__ import annotations

from typing import Optional

from tunelab.jobs.config import TrainConfig
from tunelab.jobs.trials import leaderboards_for

FAMILY = "ensemble"
MEMBER_STATUSES = ("completed", "stopped")  # finished trials; a failed or running one's checkpoint is not its result


def ensemble_ids(sweep_run_id: str, top: int) -> tuple[str, str]:
    """(run id, trial id) of the ensemble of a sweep's top `top` trials: the same on every re-run."""
    run_id = f"{sweep_run_id}-top{top}"
    return run_id, f"{run_id}-t0"


def is_ensemble(trial: dict) -> bool:
    return trial.get("family") == FAMILY


def members_of(trial: dict) -> list[str]:
    """The trial ids an ensemble's record names as its members, best first."""
    return list((trial.get("params") or {}).get("members") or [])


def _common(values: list, mixed: str = "mixed") -> str:
    return values[0] if len(set(values)) == 1 else mixed


def record_ensemble(store, sweep: dict, members: list[dict], cfg: TrainConfig, val: dict, test: dict,
                    n_params: Optional[int]) -> tuple[str, str]:
    """Record the ensemble of `members` (the store's trial records, best first) of the sweep `sweep` (its run record):
    its validation scores as its one epoch, its test scores, finished; replacing an earlier record of the same
    ensemble. `cfg` is a member's config (dataset and labels: every member's). `val`/`test`: `inference.scores`.
    Returns (run id, trial id)."""
    top = len(members)
    run_id, trial_id = ensemble_ids(sweep["id"], top)
    ids = [m["id"] for m in members]
    store.delete_trial(trial_id)  # `record_epoch` only ever raises a score: a replaced record goes first
    store.start_run(run_id, kind="ensemble", name=f"{sweep['name']}-top{top}", dataset=cfg.dataset, labels=cfg.labels,
                    config={"sweep": sweep["id"], "sweep_name": sweep["name"], "top": top, "members": ids},
                    storage_path=sweep.get("storage_path", ""))
    store.start_trial(trial_id, run_id=run_id, model=f"ensemble-top{top}", family=FAMILY, dataset=cfg.dataset,
                      labels=cfg.labels, boards=leaderboards_for(cfg),
                      augment=_common([m.get("augment") or "none" for m in members]),
                      pretrained=_common([m.get("pretrained") or "false" for m in members]),
                      params={"members": ids, "member_models": [m.get("model") for m in members], "sweep": sweep["id"],
                              "top": top})
    epoch = {"epoch": 1, "epochs": 1, "val_acc": val["acc"], "val_loss": val["loss"], "val_images": val["images"]}
    if "acc_coarse" in val:
        epoch["val_acc_coarse"] = val["acc_coarse"]
    if n_params is not None:
        epoch["params"] = n_params
    store.record_epoch(trial_id, epoch)
    tested = {"test_acc": test["acc"], "test_loss": test["loss"], "test_images": test["images"]}
    if "acc_coarse" in test:
        tested["test_acc_coarse"] = test["acc_coarse"]
    store.record_test(trial_id, tested)
    store.finish_trial(trial_id, "completed")
    store.finish_run(run_id, "completed")
    return run_id, trial_id
