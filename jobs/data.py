"""Datasets in memory: MNIST and CIFAR-100 read through torchvision's machinery, held as uint8 arrays.

A dataset is loaded once on the driver, split (seeded) into train/validation/test, and put into Ray's
object store as one `PreparedData`; every worker reads it zero-copy and takes its shard of a seeded
per-epoch permutation (`epoch_indices`). Which datasets exist and their files on disk (download, import, info)
are `jobs.datasets`'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from tunelab.jobs.datasets import (
    CIFAR100_ARCHIVE, CIFAR100_ARCHIVE_MD5, CIFAR100_DIR, CIFAR100_FILES, DATASETS, MNIST_FILES, DatasetSpec, cifar_dir,
    download, import_dir, info, is_available, read_cifar_pickle, require, spec,
)
from tunelab.jobs.errors import JobError

# Besides its own names, `jobs.data` keeps offering the catalogue and the file handling of `jobs.datasets` that
# callers (the CLI, tests, benchmarks) reach through it.
__all__ = [
    "CIFAR100_ARCHIVE", "CIFAR100_ARCHIVE_MD5", "CIFAR100_DIR", "CIFAR100_FILES", "DATASETS", "MNIST_FILES", "DatasetSpec",
    "PreparedData", "RawDataset", "download", "epoch_indices", "import_dir", "info", "is_available", "load",
    "load_cifar100", "load_mnist", "prepare", "require", "spec", "split_indices",
]


# ------------------------------------------------------------------------------------------------ load


@dataclass
class RawDataset:
    """A whole dataset in memory: images uint8 (N, C, H, W), labels int64, and class names."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: list[str]
    train_y_coarse: Optional[np.ndarray] = None
    test_y_coarse: Optional[np.ndarray] = None
    coarse_names: Optional[list[str]] = None

    @property
    def fine_to_coarse(self) -> Optional[np.ndarray]:
        """fine class -> coarse class, read off the training labels (each fine class has one coarse class)."""
        if self.train_y_coarse is None:
            return None
        mapping = np.full(len(self.class_names), -1, dtype=np.int64)
        mapping[self.train_y] = self.train_y_coarse
        pairs = np.unique(np.stack([self.train_y, self.train_y_coarse]), axis=1)
        if pairs.shape[1] != len(np.unique(self.train_y)):
            raise JobError("CIFAR-100 labels are inconsistent: a fine class maps to several coarse classes")
        return mapping


def load(name: str, root: Path) -> RawDataset:
    """The whole dataset `name` from `root` as uint8 arrays; JobError if missing or unreadable."""
    require(name, root)
    try:
        return load_mnist(root) if name == "mnist" else load_cifar100(root)
    except JobError:
        raise
    except Exception as e:
        raise JobError(
            f"could not read {spec(name).title} under {root} ({type(e).__name__}: {e}); "
            f"the files are corrupt or truncated — import them again with `tunelab data import DIR`"
        ) from None


def load_mnist(root: Path) -> RawDataset:
    from torchvision.datasets import MNIST

    tr, te = MNIST(str(root), train=True), MNIST(str(root), train=False)
    return RawDataset(
        "mnist",
        tr.data.numpy()[:, None], tr.targets.numpy().astype(np.int64),
        te.data.numpy()[:, None], te.targets.numpy().astype(np.int64),
        class_names=[c.split(" - ")[-1] for c in MNIST.classes],
    )


def load_cifar100(root: Path) -> RawDataset:
    d = cifar_dir(root)
    meta = read_cifar_pickle(d / "meta")
    parts = {}
    for split in ("train", "test"):
        p = read_cifar_pickle(d / split)
        x = np.asarray(p["data"], dtype=np.uint8)
        if x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise JobError(f"{d / split}: 'data' has shape {x.shape}, not (N, 3072); the file is not CIFAR-100")
        parts[split] = (
            x.reshape(-1, 3, 32, 32),
            np.asarray(p["fine_labels"], dtype=np.int64),
            np.asarray(p["coarse_labels"], dtype=np.int64),
        )
    return RawDataset(
        "cifar100",
        parts["train"][0], parts["train"][1], parts["test"][0], parts["test"][1],
        class_names=list(meta["fine_label_names"]),
        train_y_coarse=parts["train"][2], test_y_coarse=parts["test"][2],
        coarse_names=list(meta["coarse_label_names"]),
    )


# ------------------------------------------------------------------------------------- split and shard


@dataclass
class PreparedData:
    """What a training run needs, ready for Ray's object store: split arrays plus label metadata.

    `*_y` are the labels trained on (fine or coarse). For CIFAR-100 trained on fine labels,
    `fine_to_coarse` lets the loop derive coarse accuracy from fine predictions.
    """

    dataset: str
    labels: str
    num_classes: int
    in_chans: int
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: list[str] = field(default_factory=list)
    fine_to_coarse: Optional[np.ndarray] = None


def split_indices(n: int, val_fraction: float, seed: int, subset: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into a training set of `n`: a seeded permutation, optionally cut to `subset`."""
    perm = np.random.default_rng(seed).permutation(n)
    if subset is not None:
        perm = perm[: min(subset, n)]
    n_val = max(1, int(round(len(perm) * val_fraction)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def prepare(raw: RawDataset, labels: str, val_fraction: float, seed: int, subset: Optional[int] = None) -> PreparedData:
    """Split `raw` into train/validation (seeded, from train) and test, on the chosen label kind.

    `subset` (a smoke-test knob) caps both the training pool and the test set at that many images, seeded.
    """
    s = spec(raw.name)
    if labels not in s.num_classes:
        raise JobError(f"{s.title} has no {labels!r} labels; choose one of: {', '.join(s.num_classes)}")
    tr_idx, va_idx = split_indices(len(raw.train_y), val_fraction, seed, subset)
    if labels == "coarse":
        ytr, yte, names, f2c = raw.train_y_coarse, raw.test_y_coarse, raw.coarse_names, None
    else:
        ytr, yte, names, f2c = raw.train_y, raw.test_y, raw.class_names, raw.fine_to_coarse
    test_x = raw.test_x
    if subset is not None and subset < len(yte):
        te_idx = np.sort(np.random.default_rng(seed + 1).permutation(len(yte))[:subset])
        test_x, yte = np.ascontiguousarray(test_x[te_idx]), yte[te_idx]
    return PreparedData(
        dataset=raw.name, labels=labels, num_classes=s.num_classes[labels], in_chans=s.in_chans,
        img_size=s.img_size, mean=s.mean, std=s.std,
        train_x=np.ascontiguousarray(raw.train_x[tr_idx]), train_y=ytr[tr_idx],
        val_x=np.ascontiguousarray(raw.train_x[va_idx]), val_y=ytr[va_idx],
        test_x=test_x, test_y=yte, class_names=list(names or []), fine_to_coarse=f2c,
    )


def epoch_indices(n: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1):
    """This rank's shard of a seeded permutation of range(n) for `epoch`; shards are disjoint and equal-sized."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_rank = n // world_size
    return perm[rank * per_rank : (rank + 1) * per_rank]
