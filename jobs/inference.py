"""A trial's model brought back for inference: rebuilt from its checkpoint in fp32 eval mode, with the input transform
training applied folded in front of it (`InferenceModel`: raw [0, 1] images at the dataset's stored size in, logits
out); its class names; images read from files; the softmax of one model or the average of several (an ensemble).

Accuracy on a split, as training measured it, is `jobs.loop.evaluate_checkpoint`'s; this module adds what that one
does not give: probabilities, for predictions and ensembles.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tunelab import models
from tunelab.jobs.config import TrainConfig, describe_validation_error
from tunelab.jobs.data import PreparedData, load, prepare
from tunelab.jobs.data import class_names as names_of
from tunelab.jobs.datasets import adopt, get, require
from tunelab.jobs.errors import JobError

SPLITS = ("val", "test")


class InferenceModel(nn.Module):
    """`model` behind the transform its training applied to every input: (x - mean) / std per channel, then a bilinear
    resize to the model's input size when that is not the stored one. Takes float images in [0, 1], (N, C, H, W) at
    the dataset's stored size (MNIST 1x28x28, CIFAR-100 3x32x32); returns logits (N, classes)."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], size: Optional[int]):
        super().__init__()
        self.model = model
        self.size = size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.size is not None:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.model(x)


@dataclass
class TrialModel:
    """A trial's network as its checkpoint left it (fp32, eval mode), and what its inputs must look like."""

    cfg: TrainConfig
    state: dict  # the checkpoint (model weights, config, history), for `jobs.loop.evaluate_checkpoint`
    model: nn.Module
    in_chans: int
    img_size: int  # the dataset's stored size: what `inference()` takes
    input_size: int  # what the network itself sees (`cfg.input_size`, else the stored size)
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def epoch(self) -> int:
        """Epochs trained when the checkpoint was saved."""
        return int(self.state.get("epoch", -1)) + 1

    @property
    def last_metrics(self) -> dict:
        """The metrics training reported with this checkpoint (its epoch's validation accuracy among them)."""
        history = self.state.get("history") or []
        return dict(history[-1]) if history else {}

    def inference(self) -> InferenceModel:
        return InferenceModel(self.model, self.mean, self.std,
                              self.input_size if self.input_size != self.img_size else None).eval()


def load_trial_model(checkpoint: Path, trial_id: str) -> TrialModel:
    """The model saved in the checkpoint folder `checkpoint`, rebuilt as its TrainConfig says; JobError naming the trial
    if the file cannot be read or does not fit its model."""
    from pydantic import ValidationError

    from tunelab.jobs.loop import load_checkpoint

    try:
        state = load_checkpoint(Path(checkpoint))
    except JobError as e:  # its fix is about resuming training; here the trial is what to change
        raise JobError(f"trial {trial_id}: {str(e).split('; ')[0]}; train it again or choose another trial") from None
    adopt(state.get("dataset"))  # an imported dataset removed since: its spec as the checkpoint keeps it
    try:
        cfg = TrainConfig.model_validate(state["config"])
    except (KeyError, TypeError, ValidationError) as e:
        why = describe_validation_error(e) if isinstance(e, ValidationError) else "it has no training config"
        raise JobError(f"trial {trial_id}: checkpoint {checkpoint} is not a tunelab checkpoint this version reads "
                       f"({why}); train it again") from None
    s = get(cfg.dataset)
    size = cfg.input_size or s.img_size
    model = models.build(cfg.model, num_classes=s.num_classes[cfg.labels], in_chans=s.in_chans, img_size=size)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise JobError(f"trial {trial_id}: the weights in {checkpoint} do not fit {cfg.model} "
                       f"({type(e).__name__}); train it again") from None
    model.float().eval()
    mean, std = s.mean, s.std
    if cfg.pretrained_weights is not None:  # as training normalised: the weights' own statistics
        mean, std = models.input_normalization(model, s.in_chans) or (mean, std)
    return TrialModel(cfg=cfg, state=state, model=model, in_chans=s.in_chans, img_size=s.img_size, input_size=size,
                      num_classes=s.num_classes[cfg.labels], mean=tuple(mean), std=tuple(std))


# ------------------------------------------------------------------------------------------------ data


def class_names(dataset: str, labels: str, root: Path) -> list[str]:
    """The names of the classes a model of `dataset`/`labels` predicts, by class index: what the registry knows (MNIST's
    digits, an imported folder's class folders), else read from the dataset's meta file under `root` (JobError if
    absent)."""
    s = get(dataset, root)
    if labels not in s.class_names:
        require(dataset, root)
    return names_of(s, root)[labels]


def split_data(cfg: TrainConfig, root: Path) -> PreparedData:
    """The data `cfg` trained on, split as its run split it (the same labels, seed, validation fraction and subset)."""
    return prepare(load(cfg.dataset, root), cfg.labels, cfg.val_fraction, cfg.seed, cfg.subset)


def as_split(data: PreparedData, split: str) -> PreparedData:
    """`data` with `split` ("val" or "test") in the test slot: what `evaluate_checkpoint` evaluates."""
    if split not in SPLITS:
        raise JobError(f"unknown split {split!r}; choose val or test")
    return data if split == "test" else dataclasses.replace(data, test_x=data.val_x, test_y=data.val_y)


def read_images(paths: Sequence[Path], in_chans: int, size: int) -> torch.Tensor:
    """Image files as a float batch in [0, 1], (N, in_chans, size, size), decoded exactly as an imported folder's images
    were (`jobs.folders.decode`: grey or RGB, the shorter side resized to `size`, centre-cropped). JobError naming the
    first file that is not an image PIL can read."""
    from tunelab.jobs.folders import decode

    out = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            what = "a folder, not an image" if p.is_dir() else "no such file"
            raise JobError(f"{p}: {what}; pass PNG or JPEG image files")
        try:
            a = decode(p.read_bytes(), in_chans, size)
        except Exception as e:  # PIL raises UnidentifiedImageError, OSError, ValueError, SyntaxError by decoder
            raise JobError(f"{p} is not a readable image ({type(e).__name__}); pass PNG or JPEG files") from None
        out.append(torch.from_numpy(a))
    return torch.stack(out).float().div_(255)


# ---------------------------------------------------------------------------------------- probabilities


@torch.inference_mode()
def probabilities(nets: Sequence[InferenceModel], x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The softmax of each of `nets` on `x` (uint8 as stored, or floats in [0, 1]), averaged: (N, classes)."""
    total = None
    for net in nets:
        parts = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            xb = xb.float().div(255) if xb.dtype == torch.uint8 else xb.float()
            parts.append(torch.softmax(net(xb).float(), dim=1))
        p = torch.cat(parts)
        total = p if total is None else total + p
    return total / len(nets)


def scores(probs: torch.Tensor, y: np.ndarray, fine_to_coarse: Optional[np.ndarray] = None) -> dict:
    """Accuracy and loss (mean negative log-likelihood) of averaged probabilities against labels `y`; with
    `fine_to_coarse`, also the coarse accuracy of the fine predictions (as training derives it)."""
    y_t = torch.as_tensor(y)
    pred = probs.argmax(1)
    out = {"acc": (pred == y_t).double().mean().item(),
           "loss": -torch.log(probs[torch.arange(len(y_t)), y_t].clamp_min(1e-12)).double().mean().item(),
           "images": len(y_t)}
    if fine_to_coarse is not None:
        f2c = torch.as_tensor(fine_to_coarse)
        out["acc_coarse"] = (f2c[pred] == f2c[y_t]).double().mean().item()
    return out
