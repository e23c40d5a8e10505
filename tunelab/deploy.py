"""A trained model put to use: export a trial's weights with a model card, evaluate it again on its own split, predict
the classes of image files, and ensemble a sweep's best trials onto the leaderboard.

Each `trial` is a trial id as the store has it (`tunelab leaderboard --json`, `tunelab sweep show NAME`). Like the rest
of the API, nothing prints and mistakes raise a `tunelab.TunelabError` whose message is the CLI's line; nothing is
written unless everything succeeded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

from pydantic import BaseModel

from tunelab.errors import InputError
from tunelab.settings import load_settings

__all__ = ["ClassScore", "EnsembleResult", "Evaluation", "Prediction", "ensemble", "evaluate", "export", "predict"]


class Evaluation(BaseModel):
    """A trial's model evaluated again: its accuracy on `split`, beside what the store recorded for it.

    `recorded_acc` is the figure to compare with: for test, the trial's test accuracy (None for a sweep trial never
    tested); for val, the validation accuracy of the epoch its checkpoint holds (an ensemble: its recorded one)."""

    trial_id: str
    split: str
    acc: float
    loss: float
    acc_coarse: Optional[float] = None
    images: int
    recorded_acc: Optional[float] = None
    epoch: Optional[int] = None  # of the checkpoint evaluated (None: an ensemble)
    members: list[str] = []  # an ensemble's trials


class ClassScore(BaseModel):
    index: int
    name: str
    probability: float


class Prediction(BaseModel):
    """One image's `top_k` classes, most probable first."""

    image: str
    top: list[ClassScore]


class EnsembleResult(BaseModel):
    """An ensemble of a sweep's best trials (softmax averaged), as recorded on the leaderboard."""

    run_id: str
    trial_id: str
    name: str
    model: str
    sweep: str  # the sweep's run id
    members: list[str]
    val_acc: float
    test_acc: float
    val_acc_coarse: Optional[float] = None
    test_acc_coarse: Optional[float] = None
    val_images: int
    test_images: int
    best_member_val_acc: Optional[float] = None
    best_member_test_acc: Optional[float] = None


# ------------------------------------------------------------------------------------------------- trials


def _open():
    from tunelab.api import open_store

    return open_store()


def _trial(store, trial_id: str) -> dict:
    trial = store.get_trial(trial_id)
    if not trial:
        raise InputError(f"no trial {trial_id!r} in the store; trial ids are in `tunelab leaderboard --json` and "
                         f"`tunelab sweep show NAME`")
    return trial


def _checkpoint(trial: dict) -> Path:
    """The trial's checkpoint folder on this machine; InputError when there is none to read."""
    ckpt = trial.get("checkpoint")
    if not ckpt:
        raise InputError(f"trial {trial['id']} has no checkpoint (it ended before its first epoch was saved); "
                         f"choose a trial that finished an epoch")
    if "://" in ckpt:
        raise InputError(f"trial {trial['id']}'s checkpoint is at {ckpt}; tunelab reads checkpoints from local "
                         f"folders: run this where that storage is mounted as a folder")
    if not Path(ckpt).is_dir():
        raise InputError(f"trial {trial['id']}'s checkpoint folder {ckpt} is gone (deleted or moved); choose another "
                         f"trial or train it again")
    return Path(ckpt)


def _load(trial: dict):
    from tunelab.jobs.inference import load_trial_model

    return load_trial_model(_checkpoint(trial), trial["id"])


def _members(store, trial: dict) -> list:
    """The models behind `trial`: its own, or an ensemble's members'."""
    from tunelab.jobs.ensemble import is_ensemble, members_of

    if not is_ensemble(trial):
        return [_load(trial)]
    return [_load(_trial(store, m)) for m in members_of(trial)]


# ------------------------------------------------------------------------------------------------- export


def export(trial: str, format: str = "onnx", out: Union[str, Path, None] = None) -> Path:
    """Write trial `trial`'s model as `format` (safetensors, torchscript or onnx) to `out` (default: TRIAL.onnx, .pt or
    .safetensors here), with its model card beside it (`out` + ".json"); the file written. TorchScript and ONNX include
    the normalisation and take raw [0, 1] images; each export is checked against the checkpoint before it is kept."""
    import tunelab
    from tunelab.jobs import export as exporting
    from tunelab.jobs.datasets import get
    from tunelab.jobs.ensemble import is_ensemble
    from tunelab.jobs.inference import class_names

    exporting.check_format(format)
    target = exporting.check_destination(Path(out) if out else Path(f"{trial}{exporting.FORMATS[format]}"))
    store = _open()
    record = _trial(store, trial)
    if is_ensemble(record):
        raise InputError(f"trial {trial} is an ensemble: it has no weights of its own; export its members "
                         f"({', '.join(record['params'].get('members', []))})")
    tm = _load(record)
    root = load_settings().data_dir
    extra = {}
    if "coarse" in get(tm.cfg.dataset).derived_labels(tm.cfg.labels):  # what coarse accuracy is derived with
        from tunelab.jobs.data import load

        mapping = load(tm.cfg.dataset, root).fine_to_coarse
        extra = {"coarse_names": class_names(tm.cfg.dataset, "coarse", root),
                 "fine_to_coarse": None if mapping is None else mapping.tolist()}
    card = exporting.model_card(tm, format, trial=record, run=store.get_run(record["run"]) or {},
                                class_names=class_names(tm.cfg.dataset, tm.cfg.labels, root),
                                version=tunelab.__version__, extra=extra)
    return exporting.export_model(tm, format, target, card)


# ----------------------------------------------------------------------------------------------- evaluate


def evaluate(trial: str, split: str = "test") -> Evaluation:
    """Rebuild trial `trial`'s model from its checkpoint and measure it on `split` ("val" or "test") of the data its
    run trained on, split as the run split it; beside the accuracy the store recorded."""
    from tunelab.jobs.ensemble import is_ensemble, members_of
    from tunelab.jobs.inference import SPLITS, as_split, split_data

    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose val or test")
    store = _open()
    record = _trial(store, trial)
    nets = _members(store, record)
    data = as_split(split_data(nets[0].cfg, load_settings().data_dir), split)
    if is_ensemble(record):
        import torch

        from tunelab.jobs.inference import probabilities, scores

        s = scores(probabilities([n.inference() for n in nets], torch.as_tensor(data.test_x)), data.test_y,
                   data.fine_to_coarse)
        recorded = record.get("test_acc") if split == "test" else record.get("best_val_acc")
        return Evaluation(trial_id=trial, split=split, acc=s["acc"], loss=s["loss"], acc_coarse=s.get("acc_coarse"),
                          images=s["images"], recorded_acc=recorded, members=members_of(record))
    from tunelab.jobs.loop import evaluate_checkpoint

    tm = nets[0]
    m = evaluate_checkpoint(tm.cfg, data, tm.state)
    recorded = record.get("test_acc") if split == "test" else tm.last_metrics.get("val_acc")
    return Evaluation(trial_id=trial, split=split, acc=m["test_acc"], loss=m["test_loss"],
                      acc_coarse=m.get("test_acc_coarse"), images=m["test_images"], recorded_acc=recorded,
                      epoch=tm.epoch)


# ------------------------------------------------------------------------------------------------ predict


def predict(trial: str, images: Sequence[Union[str, Path]], top_k: int = 3) -> list[Prediction]:
    """The `top_k` most probable classes of each image file (PNG, JPEG: converted to the model's channels, resized to
    its dataset's image size, normalised as in training) by trial `trial`'s model (an ensemble: its members' softmax
    averaged), in the order given."""
    from tunelab.jobs.inference import class_names, probabilities, read_images

    if not images:
        raise InputError("no image given; pass one or more PNG or JPEG files")
    if top_k < 1:
        raise InputError(f"--top-k {top_k}: give at least 1")
    store = _open()
    record = _trial(store, trial)
    nets = _members(store, record)
    first = nets[0]
    if top_k > first.num_classes:
        raise InputError(f"--top-k {top_k} is more than the model's {first.num_classes} classes; use at most "
                         f"{first.num_classes}")
    x = read_images([Path(p) for p in images], first.in_chans, first.img_size)
    names = class_names(first.cfg.dataset, first.cfg.labels, load_settings().data_dir)
    probs = probabilities([n.inference() for n in nets], x)
    best = probs.topk(top_k, dim=1)
    return [Prediction(image=str(p), top=[ClassScore(index=int(i), name=names[int(i)], probability=float(v))
                                          for v, i in zip(values, idx)])
            for p, values, idx in zip(images, best.values, best.indices)]


# ----------------------------------------------------------------------------------------------- ensemble


def ensemble(run: str, top: int = 5) -> EnsembleResult:
    """Average the softmax of sweep `run`'s (a name or run id) `top` best finished trials with checkpoints (by
    validation accuracy) on its validation and test split; record the ensemble on the leaderboard as a run and trial of
    its own (`jobs.ensemble`), replacing an earlier record of the same sweep's top `top`."""
    import torch

    from tunelab.api import find_sweep
    from tunelab.jobs.ensemble import MEMBER_STATUSES, record_ensemble
    from tunelab.jobs.inference import probabilities, scores, split_data

    store = _open()
    found = store.get_run(run)
    if found and found.get("kind") != "sweep":
        raise InputError(f"run {run} is not a sweep (its kind: {found.get('kind')}); an ensemble is of a sweep's trials: "
                         f"pass a sweep's name or run id (`tunelab sweep list`)")
    sweep = found or find_sweep(run, store=store)
    if top < 2:
        raise InputError(f"--top {top}: an ensemble needs at least 2 trials")
    candidates = [t for t in store.run_trials(sweep["id"]) if t.get("status") in MEMBER_STATUSES
                  and t.get("best_val_acc") is not None and t.get("checkpoint") and Path(t["checkpoint"]).is_dir()]
    if top > len(candidates):
        fix = f"use --top {len(candidates)} or fewer" if len(candidates) >= 2 else "an ensemble needs 2"
        raise InputError(f"sweep {sweep['name']} has {len(candidates)} finished trial(s) with checkpoints, fewer than "
                         f"--top {top}; {fix}")
    members = candidates[:top]
    nets = [_load(t) for t in members]
    data = split_data(nets[0].cfg, load_settings().data_dir)  # the sweep's split: every trial trained on it
    infer = [n.inference() for n in nets]
    val = scores(probabilities(infer, torch.as_tensor(data.val_x)), data.val_y, data.fine_to_coarse)
    test = scores(probabilities(infer, torch.as_tensor(data.test_x)), data.test_y, data.fine_to_coarse)
    from tunelab import models

    n_params = sum(models.count_parameters(n.model) for n in nets)
    run_id, trial_id = record_ensemble(store, sweep, members, nets[0].cfg, val, test, n_params)
    return EnsembleResult(run_id=run_id, trial_id=trial_id, name=f"{sweep['name']}-top{top}",
                          model=f"ensemble-top{top}", sweep=sweep["id"], members=[t["id"] for t in members],
                          val_acc=val["acc"], test_acc=test["acc"], val_acc_coarse=val.get("acc_coarse"),
                          test_acc_coarse=test.get("acc_coarse"), val_images=val["images"], test_images=test["images"],
                          best_member_val_acc=members[0].get("best_val_acc"),
                          best_member_test_acc=members[0].get("test_acc"))
