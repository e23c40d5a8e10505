"""The dataset registry: the one place a dataset is defined. A name maps to a `DatasetSpec`: its classes and label sets,
channels, image size, mean/std, default recipe and augmentation, and where its files lie under the data root and how
they are verified. Built-in datasets (MNIST, CIFAR-10, CIFAR-100) are declared here; a user's own image folders,
imported with `tunelab data import-folder`, are read from their manifests under the data root
(`<data root>/imported/NAME/manifest.json`). Every other module asks this one; none names a dataset.

Light on purpose (no torch, no numpy): the CLI, the recipe schema and the config validate names through it.
Reading files into arrays is `jobs.data`'s; fetching and verifying the official files is `jobs.dataset_files`'; importing
image folders is `jobs.folders`'.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from tunelab.jobs.errors import JobError

# How a dataset's files are laid out on disk, and so how `jobs.data` reads them.
IDX = "idx"  # MNIST's idx files, read through torchvision's MNIST class
CIFAR_PICKLE = "cifar-pickle"  # the CIFAR python pickles (data + labels per label set, names in a meta file)
FOLDER = "folder"  # an imported image folder: uint8 arrays (.npz) beside a manifest

IMPORTED_DIR = "imported"  # under the data root: one folder per imported dataset
MANIFEST = "manifest.json"
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"  # a dataset name is part of Redis keys and URLs: no ':' or '/'


@dataclass(frozen=True)
class DatasetSpec:
    """What tunelab knows about one dataset. Picklable: a run hands it to its workers with the data."""

    name: str
    title: str
    in_chans: int
    img_size: int
    num_classes: dict[str, int]  # label set -> classes ("fine"; CIFAR-100 also "coarse")
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flippable: bool  # a mirrored image is still of its class (digits are not)
    auto_augment: str  # what `--augment auto` means for it
    source: str  # IDX, CIFAR_PICKLE or FOLDER
    folder: str  # where its files lie, relative to the data root
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)  # file -> accepted MD5s (archive, extracted)
    archive: str = ""  # the official archive, and its MD5
    archive_md5: str = ""
    torchvision: str = ""  # the torchvision.datasets class that downloads it
    # CIFAR pickles: the key holding each label set's labels, and (meta file, key) of each label set's names
    label_keys: dict[str, str] = field(default_factory=dict)
    name_keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    class_names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # names known without reading files
    recipe: Optional[dict] = None  # default training values when the model is the recipe's own (or not given)
    no_flip_reason: str = ""  # why a flip is refused (not flippable), as the refusal says it
    builtin: bool = True

    @property
    def labels(self) -> tuple[str, ...]:
        """The label sets, the first the default."""
        return tuple(self.num_classes)

    def derived_labels(self, labels: str) -> tuple[str, ...]:
        """Label sets a model trained on `labels` is also ranked on, by mapping its predictions (a fine-label model of a
        dataset with coarse labels: coarse accuracy from its fine predictions)."""
        return ("coarse",) if labels == "fine" and "coarse" in self.num_classes else ()

    def to_dict(self) -> dict:
        """The whole spec as JSON-able values (`from_dict` reads it back): what a run's manifest and checkpoints keep of
        an imported dataset, so its results outlive the dataset's files."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetSpec":
        tuples = lambda m: {k: tuple(v) for k, v in m.items()}  # noqa: E731
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"]), "files": tuples(d.get("files", {})),
                      "name_keys": tuples(d.get("name_keys", {})), "class_names": tuples(d.get("class_names", {}))})

    def describe(self) -> dict:
        """What a reader of results needs about it (the store's catalogue, the dashboard's tabs)."""
        return {"title": self.title, "labels": list(self.labels), "builtin": self.builtin,
                "order": list(BUILTINS).index(self.name) if self.name in BUILTINS else 0,
                "image": f"{self.in_chans}x{self.img_size}x{self.img_size}", "classes": dict(self.num_classes)}


_CIFAR10_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

# The built-ins, in the order every listing shows them. File names and MD5s are the official ones, as torchvision's
# classes list them (a test keeps the two in step); kept here so that import and info need not import torchvision.
BUILTINS: dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec(
        "mnist", "MNIST", 1, 28, {"fine": 10}, (0.1307,), (0.3081,), flippable=False, auto_augment="crop:2",
        no_flip_reason="flipped digits are other digits", source=IDX, folder="MNIST/raw", torchvision="MNIST",
        # (archive MD5 torchvision checks, MD5 of the extracted file as published with the dataset)
        files={"train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
               "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
               "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
               "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637")},
        class_names={"fine": tuple(str(d) for d in range(10))},
        # Chosen by `benchmarks/mnist_speed.py`, which measures each choice (see benchmarks/RESULTS.md).
        recipe={"model": "cnn_fast", "epochs": 2, "batch_size": 384, "optimizer": "sgd", "lr": 0.3, "momentum": 0.9,
                "weight_decay": 5e-4, "schedule": "onecycle", "warmup_epochs": 0.5},
    ),
    DatasetSpec(
        "cifar10", "CIFAR-10", 3, 32, {"fine": 10}, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        flippable=True, auto_augment="crop_flip+cutout", source=CIFAR_PICKLE, folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz", archive_md5="c58f30108f718f92721af3b95e74349a", torchvision="CIFAR10",
        files={k: (v,) for k, v in _CIFAR10_FILES.items()},
        label_keys={"fine": "labels"}, name_keys={"fine": ("batches.meta", "label_names")},
    ),
    DatasetSpec(
        "cifar100", "CIFAR-100", 3, 32, {"fine": 100, "coarse": 20}, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
        flippable=True, auto_augment="crop_flip+cutout", source=CIFAR_PICKLE, folder="cifar-100-python",
        archive="cifar-100-python.tar.gz", archive_md5="eb9058c3a382ffc7106e4002c42a8d85", torchvision="CIFAR100",
        files={"train": ("16019d7e3df5f24257cddd939b257f8d",), "test": ("f0ef6b0ae62326f3e7ffdfab6717acfc",),
               "meta": ("7973b15100ade9c7d40fb424638fde48",)},
        label_keys={"fine": "fine_labels", "coarse": "coarse_labels"},
        name_keys={"fine": ("meta", "fine_label_names"), "coarse": ("meta", "coarse_label_names")},
    ),
]}
DEFAULT = next(iter(BUILTINS))  # what `tunelab train` trains when no dataset is named
PARAMS_REFERENCE = "cifar100"  # whose inputs and classes `tunelab models list` counts parameters for (as published)


def splits(s: DatasetSpec) -> dict[str, tuple[str, ...]]:
    """A CIFAR-pickle dataset's files per split (train: the batches, test: the test batch)."""
    data = [f for f in s.files if f not in {m for m, _ in s.name_keys.values()}]
    test = [f for f in data if f.startswith("test")]
    return {"train": tuple(f for f in data if f not in test), "test": tuple(test)}


# ------------------------------------------------------------------------------------------- the registry

_lock = threading.Lock()
_root: Optional[Path] = None  # the data root whose imported datasets are known (`use_root`)
_given: dict[str, DatasetSpec] = {}  # specs handed to this process with a run's data (`register`)
_read: dict[Path, tuple[int, DatasetSpec]] = {}  # manifest -> (its mtime, its spec), as last read


def use_root(root: Path) -> None:
    """Make the imported datasets under data root `root` known to this process (the front door calls it with the
    settings' data root)."""
    global _root
    _root = Path(root)


def register(spec: DatasetSpec) -> None:
    """Know `spec` in this process: a run's workers get the spec with its data, wherever the data root is."""
    with _lock:
        _given[spec.name] = spec


def recorded(name: str) -> Optional[dict]:
    """What a run records of dataset `name` beside its results: an imported dataset's whole spec (a built-in's lives
    in this module)."""
    s = get(name)
    return None if s.builtin else s.to_dict()


def adopt(record: Optional[dict]) -> None:
    """Know the dataset a run recorded (`recorded`) when it is no longer (or not here) imported: its results can still be
    read back, listed and predicted with."""
    if record and record.get("name") not in BUILTINS:
        try:
            get(record["name"])
        except JobError:
            register(DatasetSpec.from_dict(record))


def imported_dir(root: Path, name: str) -> Path:
    return Path(root) / IMPORTED_DIR / name


def _imported(name: str, root: Optional[Path]) -> Optional[DatasetSpec]:
    if root is None or not re.match(NAME_PATTERN, name):
        return None
    path = imported_dir(root, name) / MANIFEST
    try:
        stamp = path.stat().st_mtime_ns
        if path in _read and _read[path][0] == stamp:  # a config validates its dataset several times: read it once
            return _read[path][1]
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise JobError(f"the manifest of dataset {name!r} ({path}) is unreadable ({type(e).__name__}); import the "
                       f"folder again with `tunelab data import-folder DIR --name {name} --replace`") from None
    found = from_manifest(manifest)
    with _lock:
        _read[path] = (stamp, found)
    return found


def from_manifest(m: dict) -> DatasetSpec:
    """The spec of an imported dataset, from its manifest (`jobs.folders` writes it)."""
    size, chans = int(m["size"]), int(m["channels"])
    return DatasetSpec(
        m["name"], m.get("title") or m["name"], chans, size, {"fine": len(m["classes"])}, tuple(m["mean"]), tuple(m["std"]),
        flippable=bool(m.get("flippable", True)), auto_augment=folder_auto_augment(size, m.get("flippable", True)),
        source=FOLDER, folder=f"{IMPORTED_DIR}/{m['name']}", class_names={"fine": tuple(m["classes"])}, builtin=False,
        no_flip_reason=f"{m['name']} was imported with --no-flip: a mirrored image is of another class",
    )


def folder_auto_augment(size: int, flippable: bool) -> str:
    """`--augment auto` for an imported folder, scaled from the built-ins' own: a crop of 1/8 of the side and a flip
    (CIFAR's 4 px of 32), or, imported with --no-flip (digits, text), a crop of 1/14 and no flip (MNIST's 2 px of 28)."""
    if flippable:
        return f"crop_flip:{max(1, min(16, round(size / 8)))}"
    return f"crop:{max(1, min(16, round(size / 14)))}"


def names(root: Optional[Path] = None) -> list[str]:
    """Every dataset known: the built-ins, then those imported under the data root (and any handed to this process)."""
    root = root if root is not None else _root
    found = set(_given)
    if root is not None and (Path(root) / IMPORTED_DIR).is_dir():
        found |= {p.parent.name for p in (Path(root) / IMPORTED_DIR).glob(f"*/{MANIFEST}")
                  if re.match(NAME_PATTERN, p.parent.name)}  # not the temporary folders of an import under way
    return [*BUILTINS, *sorted(found - set(BUILTINS))]


def get(name: str, root: Optional[Path] = None) -> DatasetSpec:
    """The spec of dataset `name`: a built-in, or one imported under `root` (default: the data root in use); JobError
    naming the choices if there is none."""
    if name in BUILTINS:
        return BUILTINS[name]
    found = _imported(name, root if root is not None else _root)
    if found is None:
        found = _given.get(name)
    if found is None:
        raise JobError(f"unknown dataset {name!r}; choose one of: {', '.join(names(root))} (import your own images "
                       f"with `tunelab data import-folder DIR --name NAME`)")
    return found


def check_name(name: str) -> str:
    """`name` if it can name a new imported dataset; JobError saying why not."""
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise JobError(f"dataset name {name!r} must be 1-32 lowercase letters, digits, '-' or '_', starting with a "
                       f"letter (it appears in leaderboard keys and URLs)")
    if name in BUILTINS:
        raise JobError(f"{name!r} is a built-in dataset; choose another --name")
    return name


# -------------------------------------------------------------------------------------------- presence


def location(s: DatasetSpec, root: Path) -> Path:
    return Path(root) / s.folder


def is_available(name: str, root: Path) -> bool:
    """Whether dataset `name` is ready to load from `root` (no network needed)."""
    s = get(name, root)
    if s.source == FOLDER:
        return (location(s, root) / MANIFEST).is_file()
    return all((location(s, root) / f).is_file() for f in s.files)


def require(name: str, root: Path) -> DatasetSpec:
    """The spec of `name`, or JobError that says how to get the data if it is not under `root`."""
    s = get(name, root)
    if not is_available(name, root) and s.source == FOLDER:
        raise JobError(f"dataset {name!r} is not in the data root {root}; import its images there with `tunelab data "
                       f"import-folder DIR --name {name}` (data root: TUNELAB_DATA_DIR)")
    if not is_available(name, root):
        raise JobError(
            f"{s.title} is not in the data root {root}; run `tunelab data download {name}`, or offline "
            f"`tunelab data import DIR` with the official files (data root: TUNELAB_DATA_DIR)"
        )
    return s
