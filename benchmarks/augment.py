"""Input pipeline speed: tunelab's batched on-device augmentation vs a torchvision DataLoader with the
equivalent per-image PIL transforms (same ops, same cores, same run), on CIFAR-shaped data; and the share of a
ResNet-20 training step spent on input.

    python benchmarks/augment.py            # writes the "augment" section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from benchmarks._report import write_section
from tunelab import models
from tunelab.jobs.augment import Augmenter
from tunelab.jobs.datasets import get as spec

MEAN, STD = spec("cifar100").mean, spec("cifar100").std


class PILDataset(Dataset):
    """What a torchvision user writes: uint8 arrays -> PIL image per item -> transforms."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x.transpose(0, 2, 3, 1), y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def pil_transform(policy: str):
    ops = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]
    if "cutout" in policy:  # cutout = one 16x16 square erased per image (p=1, a quarter of a 32x32 image)
        ops.append(T.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0))
    return T.Compose(ops)


def time_dataloader(x, y, policy, batch, workers, seconds):
    loader = DataLoader(PILDataset(x, y, pil_transform(policy)), batch_size=batch, shuffle=True,
                        num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    n, t0 = 0, None
    while True:
        for i, (xb, _) in enumerate(loader):
            if t0 is None and i == 2:  # after worker start-up
                t0, n = time.perf_counter(), 0
            n += len(xb)
            if t0 is not None and time.perf_counter() - t0 > seconds:
                return n / (time.perf_counter() - t0)


def time_tunelab(xt, yt, policy, batch, seconds):
    aug = Augmenter(policy, "cifar100", MEAN, STD, 100, torch.device("cpu"))
    n, step, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        idx = torch.randint(0, len(yt), (batch,))
        xb, _ = aug(xt[idx], yt[idx], step=step)
        n += len(xb)
        step += 1
    return n / (time.perf_counter() - t0)


def step_share(xt, yt, policy, batch, steps):
    """Seconds per step on input (gather + augment) and on the ResNet-20 step, measured apart, same batches."""
    aug = Augmenter(policy, "cifar100", MEAN, STD, 100, torch.device("cpu"))
    model = models.build("resnet20", num_classes=100, in_chans=3, img_size=32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    t_in = t_step = 0.0
    for s in range(steps + 2):
        t0 = time.perf_counter()
        idx = torch.randint(0, len(yt), (batch,))
        xb, yb = aug(xt[idx], yt[idx], step=s)
        t1 = time.perf_counter()
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if s >= 2:  # warm-up steps excluded
            t_in += t1 - t0
            t_step += t2 - t1
    return t_in / steps, t_step / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=8.0, help="timing window per measurement")
    ap.add_argument("--steps", type=int, default=20, help="ResNet-20 steps for the input share")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (a.images, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 100, a.images)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    rows = []
    for policy in ("crop_flip", "crop_flip+cutout"):
        ours = time_tunelab(xt, yt, policy, a.batch, a.seconds)
        dl = {w: time_dataloader(x, y, policy, a.batch, w, a.seconds) for w in (0, cores)}
        t_in, t_step = step_share(xt, yt, policy, 128, a.steps)
        row = (policy, ours, dl[0], dl[cores], t_in, t_step)
        rows.append(row)
        print(f"{policy}: tunelab {ours:,.0f} img/s; DataLoader {dl[0]:,.0f} (0 workers) / {dl[cores]:,.0f} "
              f"({cores} workers); input {1000 * t_in:.1f} ms of a {1000 * (t_in + t_step):.0f} ms ResNet-20 step",
              flush=True)

    lines = [
        "## Input pipeline: batched on-device augmentation vs torchvision DataLoader + PIL (issue 4)",
        "",
        f"Command: `{' '.join(['python benchmarks/augment.py', *sys.argv[1:]])}`",
        "",
        f"CIFAR-shaped uint8 data ({a.images:,} images in memory), batch {a.batch}, {cores} cores, {a.seconds:g} s "
        f"per measurement, all in one run. DataLoader side: `RandomCrop(32, padding=4)`, `RandomHorizontalFlip()`, "
        f"`ToTensor()`, `Normalize`, plus `RandomErasing(p=1, scale=0.25, ratio=1)` for cutout, per PIL image; its "
        f"best of 0 and {cores} worker processes is the baseline. Input share: gather + augment + normalise vs the "
        f"ResNet-20 forward/backward/SGD step on the same batch of 128, {a.steps} steps.",
        "",
        "| policy | tunelab img/s | DataLoader img/s (0 / %d workers) | speed-up vs best | input ms / step ms | input share |" % cores,
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for policy, ours, d0, dn, t_in, t_step in rows:
        best = max(d0, dn)
        lines.append(f"| `{policy}` | {ours:,.0f} | {d0:,.0f} / {dn:,.0f} | **{ours / best:.1f}×** | "
                     f"{1000 * t_in:.1f} / {1000 * (t_in + t_step):.0f} | **{100 * t_in / (t_in + t_step):.1f} %** |")
    body = "\n".join(lines)
    print(body)
    if not a.no_write:
        write_section("augment", body)


if __name__ == "__main__":
    main()
