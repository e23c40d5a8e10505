"""The datasets tunelab knows (MNIST, CIFAR-100) and their files on disk: which are in a data root, downloading them
with torchvision, the offline import of the official files from a folder (MD5-checked), and `info`. Loading them
into arrays is `jobs.data`'s."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tunelab.errors import exception_line
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


def mnist_raw(root: Path) -> Path:
    return root / "MNIST" / "raw"


def cifar_dir(root: Path) -> Path:
    return root / CIFAR100_DIR


def is_available(name: str, root: Path) -> bool:
    """Whether dataset `name` is ready to load from `root` (no network needed)."""
    spec(name)
    if name == "mnist":
        return all((mnist_raw(root) / f).is_file() for f in MNIST_FILES)
    d = cifar_dir(root)
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
            f"could not download {spec(name).title} ({exception_line(e, limit=120)}); "
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
    raw = mnist_raw(root)
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
        dest = cifar_dir(root)
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
            "path": str(mnist_raw(root) if name == "mnist" else cifar_dir(root)),
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
            with open(mnist_raw(root) / f, "rb") as fh:
                magic, count = struct.unpack(">II", fh.read(8))
            if magic != 2049:
                raise ValueError(f"{f}: bad magic {magic}")
            return count
        return n("train-labels-idx1-ubyte"), n("t10k-labels-idx1-ubyte")
    d = cifar_dir(root)
    return tuple(len(read_cifar_pickle(d / split)["fine_labels"]) for split in ("train", "test"))


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


def read_cifar_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _CifarUnpickler(io.BufferedReader(f), encoding="latin1").load()
