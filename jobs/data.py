"""Datasets in memory: any registered dataset read from its files into uint8 arrays (MNIST's idx files through
torchvision's machinery, the CIFAR pickles, an imported folder's arrays).

A dataset is loaded once on the driver, split (seeded) into train/validation/test, and put into Ray's
object store as one `PreparedData`, with its spec; every worker reads it zero-copy and takes its shard of a seeded
per-epoch permutation (`epoch_indices`). Which datasets exist is the registry's (`jobs.datasets`); their official files
(download, import, info) are `jobs.dataset_files`'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from tunelab.jobs.dataset_files import read_cifar_pickle
from tunelab.jobs.datasets import CIFAR_PICKLE, FOLDER, IDX, DatasetSpec, get, location, register, require, splits
from tunelab.jobs.errors import JobError

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
    spec: Optional[DatasetSpec] = None  # what the registry said of it when it was read

    @property
    def fine_to_coarse(self) -> Optional[np.ndarray]:
        """fine class -> coarse class, read off the training labels (each fine class has one coarse class)."""
        if self.train_y_coarse is None:
            return None
        mapping = np.full(len(self.class_names), -1, dtype=np.int64)
        mapping[self.train_y] = self.train_y_coarse
        pairs = np.unique(np.stack([self.train_y, self.train_y_coarse]), axis=1)
        if pairs.shape[1] != len(np.unique(self.train_y)):
            raise JobError(f"{self.name}: the labels are inconsistent: a fine class maps to several coarse classes")
        return mapping


def load(name: str, root: Path) -> RawDataset:
    """The whole dataset `name` from `root` as uint8 arrays; JobError if missing or unreadable."""
    s = require(name, root)
    try:
        loader = {IDX: _load_idx, CIFAR_PICKLE: _load_cifar, FOLDER: _load_folder}[s.source]
        return loader(s, root)
    except JobError:
        raise
    except Exception as e:
        again = (f"import the folder again with `tunelab data import-folder DIR --name {name} --replace`"
                 if s.source == FOLDER else "import them again with `tunelab data import DIR`")
        raise JobError(f"could not read {s.title} under {root} ({type(e).__name__}: {e}); the files are corrupt or "
                       f"truncated — {again}") from None


def _load_idx(s: DatasetSpec, root: Path) -> RawDataset:
    import torchvision.datasets

    cls = getattr(torchvision.datasets, s.torchvision)
    tr, te = cls(str(root), train=True), cls(str(root), train=False)
    return RawDataset(
        s.name,
        tr.data.numpy()[:, None], tr.targets.numpy().astype(np.int64),
        te.data.numpy()[:, None], te.targets.numpy().astype(np.int64),
        class_names=list(s.class_names["fine"]), spec=s,
    )


def _load_cifar(s: DatasetSpec, root: Path) -> RawDataset:
    d = location(s, root)
    px = s.in_chans * s.img_size * s.img_size
    parts: dict[str, dict[str, np.ndarray]] = {}
    for split, files in splits(s).items():
        xs, ys = [], {lab: [] for lab in s.labels}
        for f in files:
            p = read_cifar_pickle(d / f)
            x = np.asarray(p["data"], dtype=np.uint8)
            if x.ndim != 2 or x.shape[1] != px:
                raise JobError(f"{d / f}: 'data' has shape {x.shape}, not (N, {px}); the file is not {s.title}")
            xs.append(x.reshape(-1, s.in_chans, s.img_size, s.img_size))
            for lab in s.labels:
                ys[lab].append(np.asarray(p[s.label_keys[lab]], dtype=np.int64))
        parts[split] = {"x": np.concatenate(xs), **{lab: np.concatenate(v) for lab, v in ys.items()}}
    names = class_names(s, root)
    coarse = "coarse" in s.labels
    return RawDataset(
        s.name, parts["train"]["x"], parts["train"]["fine"], parts["test"]["x"], parts["test"]["fine"],
        class_names=names["fine"],
        train_y_coarse=parts["train"]["coarse"] if coarse else None,
        test_y_coarse=parts["test"]["coarse"] if coarse else None,
        coarse_names=names.get("coarse"), spec=s,
    )


def _load_folder(s: DatasetSpec, root: Path) -> RawDataset:
    from tunelab.jobs.folders import arrays_path

    with np.load(arrays_path(location(s, root))) as z:
        return RawDataset(s.name, z["train_x"], z["train_y"].astype(np.int64), z["test_x"],
                          z["test_y"].astype(np.int64), class_names=list(s.class_names["fine"]), spec=s)


def class_names(s: DatasetSpec, root: Path) -> dict[str, list[str]]:
    """The class names of each label set of `s`, by class index: from the registry where it knows them (MNIST's
    digits, an imported folder's sub-folders), else from the dataset's meta file under `root`."""
    out = {lab: list(names) for lab, names in s.class_names.items()}
    for lab, (meta, key) in s.name_keys.items():
        if lab not in out:
            out[lab] = [str(n) for n in read_cifar_pickle(location(s, root) / meta)[key]]
    return out


# ------------------------------------------------------------------------------------- split and shard


@dataclass
class PreparedData:
    """What a training run needs, ready for Ray's object store: split arrays plus label metadata.

    `*_y` are the labels trained on (fine or coarse). For a dataset with coarse labels trained on fine ones,
    `fine_to_coarse` lets the loop derive coarse accuracy from fine predictions. `spec` travels with the arrays, so a
    worker knows the dataset (an imported one too) wherever it runs (`known`).
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
    spec: Optional[DatasetSpec] = None

    def known(self) -> "PreparedData":
        """Make this data's dataset known to this process (a worker's registry), and return it."""
        if self.spec is not None:
            register(self.spec)
        return self


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
    s = raw.spec or get(raw.name)
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
        test_x=test_x, test_y=yte, class_names=list(names or []), fine_to_coarse=f2c, spec=s,
    )


def epoch_indices(n: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1):
    """This rank's shard of a seeded permutation of range(n) for `epoch`; shards are disjoint and equal-sized."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_rank = n // world_size
    return perm[rank * per_rank : (rank + 1) * per_rank]
