"""Augmentation policy names: parsing and validation only (no torch), so configs check them cheaply.

A policy is ops joined by `+`, each `name` or `name:magnitude`, e.g. `crop_flip+cutout:12` or `mixup:0.4`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tunelab.jobs.datasets import get
from tunelab.jobs.errors import JobError


@dataclass(frozen=True)
class OpSpec:
    name: str
    meaning: str
    default: Optional[float]
    low: Optional[float]
    high: Optional[float]
    flips: bool = False
    per_image: bool = False  # only exists per image: runs per sample on the CPU, overlapped with training
    mixes: bool = False  # mixes samples and labels: soft targets


OPS: dict[str, OpSpec] = {o.name: o for o in [
    OpSpec("none", "no augmentation", None, None, None),
    OpSpec("crop", "pad by N px and crop back at a random offset", 4, 0, 16),
    OpSpec("flip", "horizontal flip with probability p", 0.5, 0, 1, flips=True),
    OpSpec("crop_flip", "crop (pad N px) then flip (p 0.5): the standard CIFAR recipe", 4, 0, 16, flips=True),
    OpSpec("cutout", "erase one N-px square per image (DeVries & Taylor 2017)", None, 1, 64),
    OpSpec("randaugment", "RandAugment, 2 ops of magnitude M (torchvision)", 9, 0, 30, per_image=True),
    OpSpec("trivialaugment", "TrivialAugmentWide (torchvision)", None, None, None, per_image=True),
    OpSpec("autoaugment", "AutoAugment CIFAR-10 policy (torchvision)", None, None, None, per_image=True),
    OpSpec("mixup", "mixup with Beta(alpha, alpha) per sample (timm)", 0.2, 0.01, 10, mixes=True),
    OpSpec("cutmix", "cutmix with Beta(alpha, alpha) per sample (timm)", 1.0, 0.01, 10, mixes=True),
    OpSpec("auto", "a good default per dataset (its registry entry: digits crop 2 px, CIFAR crop_flip+cutout, an "
                   "imported folder a crop scaled to its side, flipped unless imported with --no-flip)", None, None, None),
]}


@dataclass(frozen=True)
class Op:
    name: str
    magnitude: Optional[float]


def parse_policy(policy: str, dataset: str) -> tuple[Op, ...]:
    """The ops of `policy` for `dataset`, validated; JobError naming the problem and the choices otherwise."""
    ds = get(dataset)
    text = (policy or "none").strip().lower()
    if text == "auto":
        text = ds.auto_augment
    ops: list[Op] = []
    for part in text.split("+"):
        name, _, mag = part.strip().partition(":")
        if name not in OPS:
            raise JobError(f"unknown augmentation {name!r} in {policy!r}; choose from: {', '.join(OPS)} "
                           f"(join with +, e.g. crop_flip+cutout)")
        spec = OPS[name]
        if name == "auto":
            raise JobError("'auto' stands alone; it picks the whole policy for the dataset")
        value: Optional[float] = None
        if mag:
            if spec.low is None:
                raise JobError(f"augmentation {name!r} takes no magnitude (got {name}:{mag})")
            try:
                value = float(mag)
            except ValueError:
                raise JobError(f"magnitude of {name!r} must be a number (got {mag!r})") from None
            if not spec.low <= value <= spec.high:
                raise JobError(f"magnitude of {name!r} must be between {spec.low:g} and {spec.high:g} (got {value:g})")
        if spec.flips and not ds.flippable:
            why = ds.no_flip_reason or f"a mirrored {ds.title} image can be of another class"
            raise JobError(f"{name!r} flips images, and {why}; use crop or auto for {ds.title}")
        _check_fits(name, value if value is not None else spec.default, ds.img_size)
        if name != "none":
            ops.append(Op(name, value if value is not None else spec.default))
    names = [o.name for o in ops]
    if len(set(names)) != len(names):
        raise JobError(f"augmentation {policy!r} names an op twice")
    if sum(OPS[n].mixes for n in names) > 1:
        pass  # mixup+cutmix: timm switches between them per sample
    if sum(OPS[n].per_image for n in names) > 1:
        raise JobError(f"{policy!r} combines several per-image policies; pick one of randaugment, trivialaugment, autoaugment")
    return tuple(ops)


def _check_fits(name: str, magnitude: Optional[float], side: int) -> None:
    """JobError if an op's pixel magnitude cannot apply to images of `side` px (a pad or square as large as them)."""
    if name in ("crop", "crop_flip", "cutout") and magnitude is not None and magnitude >= side:
        what = "pads by" if name != "cutout" else "erases a square of"
        raise JobError(f"{name}:{magnitude:g} {what} {magnitude:g} px, as much as the images' whole side ({side} px); "
                       f"choose less than {side}")


def canonical(policy: str, dataset: str) -> str:
    """The policy as recorded: ops with their magnitudes, `auto` resolved."""
    ops = parse_policy(policy, dataset)
    return "+".join(o.name if o.magnitude is None else f"{o.name}:{o.magnitude:g}" for o in ops) or "none"


def mixes(policy: str, dataset: str) -> bool:
    """Whether the policy mixes samples (mixup/cutmix): soft targets, and batches must pair up."""
    return any(OPS[o.name].mixes for o in parse_policy(policy, dataset))
