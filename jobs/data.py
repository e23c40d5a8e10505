"""Datasets: MNIST and CIFAR-100 through torchvision's machinery, held as uint8 arrays.

A dataset is loaded once on the driver, split (seeded) into train/validation/test, and put into Ray's
object store as one `PreparedData`; every worker reads it zero-copy and takes its shard of a seeded
per-epoch permutation (`epoch_indices`).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from tunelab.jobs.errors import JobError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    in_chans: int
    img_size: int
    num_classes: dict[str, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flippable: bool  # digits are never flipped


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", "MNIST", 1, 28, {"fine": 10}, (0.1307,), (0.3081,), flippable=False),
    "cifar100": DatasetSpec(
        "cifar100", "CIFAR-100", 3, 32, {"fine": 100, "coarse": 20},
        (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), flippable=True,
    ),
}

# The four MNIST files as torchvision names them once extracted, with the MD5s of the official archives
# (what torchvision checks) and of the extracted files (as published with the dataset).
MNIST_FILES = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}
CIFAR100_ARCHIVE = "cifar-100-python.tar.gz"
CIFAR100_DIR = "cifar-100-python"
# The official MD5s, as torchvision's CIFAR100 class lists them (a test keeps the two in step); kept here so
# that import and info need not import torchvision, which takes seconds.
CIFAR100_ARCHIVE_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
CIFAR100_FILES = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}


def spec(name: str) -> DatasetSpec:
    """The spec of dataset `name`; JobError naming the choices if unknown."""
    try:
        return DATASETS[name]
    except KeyError:
        raise JobError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


# --------------------------------------------------------------------------------------------- presence


def _mnist_raw(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _cifar_dir(root: Path) -> Path:
    return root / CIFAR100_DIR


def is_available(name: str, root: Path) -> bool:
    """Whether dataset `name` is ready to load from `root` (no network needed)."""
    spec(name)
    if name == "mnist":
        return all((_mnist_raw(root) / f).is_file() for f in MNIST_FILES)
    d = _cifar_dir(root)
    return all((d / f).is_file() for f in ("train", "test", "meta"))


def require(name: str, root: Path) -> None:
    """JobError that says how to get the data if dataset `name` is not under `root`."""
    if not is_available(name, root):
        raise JobError(
            f"{spec(name).title} is not in the data root {root}; run `tunelab data download {name}`, or offline "
            f"`tunelab data import DIR` with the official files (data root: TUNELAB_DATA_DIR)"
        )


# --------------------------------------------------------------------------------------- download/import


def download(name: str, root: Path) -> None:
    """Download and verify dataset `name` into `root` with torchvision; JobError if the hosts are unreachable."""
    spec(name)
    root.mkdir(parents=True, exist_ok=True)
    from torchvision.datasets import CIFAR100, MNIST

    cls = MNIST if name == "mnist" else CIFAR100
    try:
        cls(str(root), train=True, download=True)
    except Exception as e:  # torchvision raises URLError, RuntimeError or HTTPError by mirror
        raise JobError(
            f"could not download {spec(name).title} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
            f"offline, copy the official files to a folder and run `tunelab data import DIR`"
        ) from None


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _find(src: Path, names: set[str]) -> dict[str, Path]:
    """Files under `src` (recursively) whose name is in `names`, first match wins."""
    found: dict[str, Path] = {}
    for dirpath, _, files in sorted(os.walk(src)):
        for f in sorted(files):
            if f in names and f not in found:
                found[f] = Path(dirpath) / f
    return found


def import_dir(src: Path, root: Path) -> list[str]:
    """Copy the official dataset files found under `src` into `root`, verifying MD5s; the datasets imported.

    MNIST: the four `*-ubyte.gz` archives, or the four extracted `*-ubyte` files (also named `*.idx3-ubyte`).
    CIFAR-100: `cifar-100-python.tar.gz`, or its extracted `cifar-100-python/` folder.
    Nothing is written to `root` unless every file of a dataset verifies.
    """
    src = Path(src)
    if not src.is_dir():
        raise JobError(f"{src} is not a folder; pass the folder that holds the dataset files")
    imported = []
    if _import_mnist(src, root):
        imported.append("mnist")
    if _import_cifar100(src, root):
        imported.append("cifar100")
    if not imported:
        raise JobError(
            f"no dataset files found under {src}; expected MNIST's *-ubyte(.gz) files or {CIFAR100_ARCHIVE}"
        )
    return imported


def _import_mnist(src: Path, root: Path) -> bool:
    names = set()
    for f in MNIST_FILES:
        names |= {f, f + ".gz", f.replace("-idx", ".idx")}
    found = _find(src, names)
    if not found:
        return False
    raw = _mnist_raw(root)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=_mkdir(root)))
    try:
        for f, (gz_md5, raw_md5) in MNIST_FILES.items():
            if f + ".gz" in found:
                path, want = found[f + ".gz"], gz_md5
            elif f in found or f.replace("-idx", ".idx") in found:
                path, want = found.get(f) or found[f.replace("-idx", ".idx")], raw_md5
            else:
                raise JobError(f"MNIST file {f}(.gz) is missing under {src}; all four official files are needed")
            got = _md5(path)
            if got != want:
                raise JobError(f"{path} has MD5 {got}, not the official {want}; it is corrupt or not MNIST — fetch it again")
            if path.name.endswith(".gz"):
                import gzip

                with gzip.open(path, "rb") as fin, open(staging / f, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
                shutil.copy2(path, staging / (f + ".gz"))
            else:
                shutil.copy2(path, staging / f)
        raw.mkdir(parents=True, exist_ok=True)
        for p in staging.iterdir():
            os.replace(p, raw / p.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _import_cifar100(src: Path, root: Path) -> bool:
    found = _find(src, {CIFAR100_ARCHIVE})
    staging = None
    if CIFAR100_ARCHIVE in found:
        path = found[CIFAR100_ARCHIVE]
        got = _md5(path)
        if got != CIFAR100_ARCHIVE_MD5:
            raise JobError(f"{path} has MD5 {got}, not the official {CIFAR100_ARCHIVE_MD5}; fetch it again")
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=_mkdir(root)))
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(staging, filter="data")
        folder = staging / CIFAR100_DIR
    else:
        dirs = [Path(d) for d, _, _ in os.walk(src) if Path(d).name == CIFAR100_DIR]
        if not dirs:
            return False
        folder = dirs[0]
    try:
        for fname, md5 in CIFAR100_FILES.items():
            p = folder / fname
            if not p.is_file():
                raise JobError(f"CIFAR-100 file {p} is missing; import the whole {CIFAR100_ARCHIVE}")
            if _md5(p) != md5:
                raise JobError(f"{p} does not match the official CIFAR-100 MD5 {md5}; fetch it again")
        dest = _cifar_dir(root)
        tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=_mkdir(root)))
        shutil.copytree(folder, tmp / "c", dirs_exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp / "c", dest)
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    return True


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def info(root: Path) -> list[dict]:
    """One record per known dataset: whether it is present under `root`, where, and its shape."""
    out = []
    for name, s in DATASETS.items():
        present = is_available(name, root)
        rec = {
            "name": name,
            "title": s.title,
            "present": present,
            "path": str(_mnist_raw(root) if name == "mnist" else _cifar_dir(root)),
            "image": f"{s.in_chans}x{s.img_size}x{s.img_size}",
            "classes": s.num_classes,
        }
        if present:
            try:
                rec["train"], rec["test"] = _counts(name, root)
            except Exception as e:
                rec["present"], rec["error"] = False, f"unreadable ({type(e).__name__}); import it again"
        out.append(rec)
    return out


def _counts(name: str, root: Path) -> tuple[int, int]:
    """(train, test) example counts, read from file headers / labels without loading images."""
    if name == "mnist":
        def n(f: str) -> int:
            with open(_mnist_raw(root) / f, "rb") as fh:
                magic, count = struct.unpack(">II", fh.read(8))
            if magic != 2049:
                raise ValueError(f"{f}: bad magic {magic}")
            return count
        return n("train-labels-idx1-ubyte"), n("t10k-labels-idx1-ubyte")
    d = _cifar_dir(root)
    return tuple(len(_read_cifar_pickle(d / split)["fine_labels"]) for split in ("train", "test"))


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


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-100's files and nothing else: only numpy's array reconstruction may be called."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-100 file")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def _read_cifar_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _CifarUnpickler(io.BufferedReader(f), encoding="latin1").load()


def load_cifar100(root: Path) -> RawDataset:
    d = _cifar_dir(root)
    meta = _read_cifar_pickle(d / "meta")
    parts = {}
    for split in ("train", "test"):
        p = _read_cifar_pickle(d / split)
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
