"""Augmentation on the training device: batched, per-sample random, on the uint8 batches already in memory.

crop, flip and cutout run as tensor ops on the whole batch (GPU when training there); mixup and cutmix come
from timm's `Mixup` in per-element mode; RandAugment, TrivialAugment and AutoAugment exist only per image,
so they run per sample from torchvision v2 on uint8 tensors (no PIL). Evaluation never goes through here.
Every draw comes from a generator seeded by (seed, epoch, step, rank): the same seed gives the same batch.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from tunelab.jobs.policies import OPS, Op, parse_policy


def _crop_flip(x: torch.Tensor, pad: int, flip_p: float, g: torch.Generator) -> torch.Tensor:
    """Zero-pad by `pad`, crop back at an independent random offset per sample, and mirror each sample with
    probability `flip_p` — all in one gather over the flattened images."""
    b, c, h, w = x.shape
    dev = x.device
    xp = F.pad(x, (pad, pad, pad, pad)) if pad > 0 else x
    hp, wp = h + 2 * pad, w + 2 * pad
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=g.device).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=g.device).to(dev)
    flip = (torch.rand(b, generator=g, device=g.device) < flip_p).to(dev)
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    cols = ox[:, None] + torch.where(flip[:, None], (w - 1) - ar_w, ar_w)  # b, w
    rows = oy[:, None] + ar_h  # b, h
    idx = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return xp.reshape(b, c, hp * wp).gather(2, idx).view(b, c, h, w)


def _cutout(x: torch.Tensor, size: int, fill: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One size x size square per sample, centred anywhere (it may hang over the edge), set to `fill`."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=g, device=g.device).to(x.device)
    cx = torch.randint(0, w, (b,), generator=g, device=g.device).to(x.device)
    half = size // 2
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    my = (ys >= (cy - half)[:, None]) & (ys < (cy - half + size)[:, None])  # b,h
    mx = (xs >= (cx - half)[:, None]) & (xs < (cx - half + size)[:, None])  # b,w
    mask = (my[:, :, None] & mx[:, None, :])[:, None]  # b,1,h,w
    return torch.where(mask, fill.view(1, -1, 1, 1).to(x.dtype), x)


def _per_image_transform(op: Op):
    from torchvision.transforms import v2

    if op.name == "randaugment":
        return v2.RandAugment(num_ops=2, magnitude=int(op.magnitude))
    if op.name == "trivialaugment":
        return v2.TrivialAugmentWide()
    return v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)


class Augmenter:
    """uint8 batch (+ labels) -> augmented, normalised float batch (+ hard or soft targets)."""

    def __init__(self, policy: str, dataset: str, mean, std, num_classes: int, device: torch.device,
                 seed: int = 0, rank: int = 0, label_smoothing: float = 0.0, size: Optional[int] = None):
        self.ops = parse_policy(policy, dataset)
        self.device = device
        self.seed, self.rank = seed, rank
        self.mean = torch.tensor(mean, device=device)
        self.std = torch.tensor(std, device=device)
        self.fill = (self.mean * 255).round().to(torch.uint8)  # erased pixels read as the mean: 0 once normalised
        self.size = size
        self.per_image = [_per_image_transform(o) for o in self.ops if OPS[o.name].per_image]
        mix = {o.name: o.magnitude for o in self.ops if OPS[o.name].mixes}
        self.mixup = None
        if mix:
            from timm.data import Mixup

            self.mixup = Mixup(
                mixup_alpha=mix.get("mixup", 0.0), cutmix_alpha=mix.get("cutmix", 0.0), prob=1.0,
                switch_prob=0.5, mode="elem", label_smoothing=label_smoothing, num_classes=num_classes,
            )

    @property
    def soft_targets(self) -> bool:
        return self.mixup is not None

    def _generator(self, epoch: int, step: int) -> torch.Generator:
        g = torch.Generator(device=self.device if self.device.type == "cuda" else "cpu")
        g.manual_seed(((self.seed * 1_000_003 + epoch) * 1_000_003 + step) * 64 + self.rank)
        return g

    def __call__(self, x: torch.Tensor, y: torch.Tensor, epoch: int = 0, step: int = 0):
        g = self._generator(epoch, step)
        if self.per_image:
            x = self._apply_per_image(x, g)
        for op in self.ops:
            if op.name == "crop":
                x = _crop_flip(x, int(op.magnitude), 0.0, g)
            elif op.name == "flip":
                x = _crop_flip(x, 0, op.magnitude, g)
            elif op.name == "crop_flip":
                x = _crop_flip(x, int(op.magnitude), 0.5, g)
            elif op.name == "cutout":
                x = _cutout(x, int(op.magnitude or x.shape[-1] // 2), self.fill, g)
        x = self.normalise(x)
        if self.mixup is not None:
            # timm draws lambdas from numpy's global RNG: seed it from our generator so batches repeat.
            np.random.seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g, device=g.device).item()))
            x, y = self.mixup(x, y)
        return x, y

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().sub_(self.mean.view(1, -1, 1, 1) * 255).div_(self.std.view(1, -1, 1, 1) * 255)
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x

    def _apply_per_image(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g, device=g.device).item())
        out = torch.empty_like(x, device="cpu")
        src = x.cpu()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for i in range(src.shape[0]):  # per sample: each image draws its own ops
                out[i] = self.per_image[0](src[i])
        return out.to(x.device, non_blocking=True)
