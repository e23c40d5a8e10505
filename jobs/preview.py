"""A labelled grid of augmented training samples, so a person can check a policy by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from tunelab.jobs.augment import Augmenter
from tunelab.jobs.data import RawDataset
from tunelab.jobs.datasets import get

SCALE = 4  # 28-32 px tiles are too small to judge; nearest-neighbour keeps pixels honest
LABEL_H = 14


def render_preview(raw: RawDataset, policy: str, out: Path, n: int = 32, seed: int = 0, columns: int = 8) -> Path:
    """Write a PNG grid: each original training image next to its augmented version, labels underneath."""
    s = raw.spec or get(raw.name)
    idx = np.random.default_rng(seed).permutation(len(raw.train_y))[:n]
    x = torch.from_numpy(np.ascontiguousarray(raw.train_x[idx]))
    y = torch.from_numpy(raw.train_y[idx])
    aug = Augmenter(policy, raw.name, s.mean, s.std, s.num_classes["fine"], torch.device("cpu"), seed=seed)
    xa, ya = aug(x, y)
    pixels = (xa * aug.std.view(1, -1, 1, 1) * 255 + aug.mean.view(1, -1, 1, 1) * 255).round().clamp(0, 255).to(torch.uint8)
    names = raw.class_names
    tile = raw.train_x.shape[-1] * SCALE
    cell_w, cell_h = 2 * tile + 6, tile + LABEL_H + 6
    rows = (n + columns - 1) // columns
    canvas = Image.new("RGB", (columns * cell_w, rows * cell_h + 22), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((4, 4), f"{s.title} · augment={aug_name(policy, raw.name)} · left: original, right: augmented", fill="black", font=font)
    for i in range(n):
        r, c = divmod(i, columns)
        ox, oy = c * cell_w, 22 + r * cell_h
        for j, img in enumerate((x[i], pixels[i])):
            arr = img.permute(1, 2, 0).numpy()
            im = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).convert("RGB").resize((tile, tile), Image.NEAREST)
            canvas.paste(im, (ox + j * (tile + 2), oy))
        if aug.soft_targets:  # mixed samples: the two largest label weights
            w, k = ya[i].topk(2)
            label = f"{names[k[0]][:9]} {w[0]:.2f}/{names[k[1]][:9]} {w[1]:.2f}"
        else:
            label = names[int(ya[i])][:18]
        draw.text((ox, oy + tile + 2), label, fill="black", font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    canvas.save(tmp, format="PNG")
    tmp.replace(out)  # never a half-written file
    return out


def aug_name(policy: str, dataset: str) -> str:
    from tunelab.jobs.policies import canonical

    return canonical(policy, dataset)
