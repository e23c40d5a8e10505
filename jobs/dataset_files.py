"""The built-in datasets' official files: downloading them with torchvision, the offline import from a folder
(MD5-checked, nothing written unless every file of a dataset verifies), reading the CIFAR pickles safely, and `info`
over every registered dataset. What the files are and where they go is the registry's (`jobs.datasets`)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
from pathlib import Path

from tunelab.errors import exception_line
from tunelab.jobs.datasets import (
    BUILTINS,
    CIFAR_PICKLE,
    FOLDER,
    IDX,
    MANIFEST,
    DatasetSpec,
    get,
    is_available,
    location,
    names,
    splits,
)
from tunelab.jobs.errors import JobError


def download(name: str, root: Path) -> None:
    """Download and verify dataset `name` into `root` with torchvision; JobError if the hosts are unreachable."""
    s = get(name, root)
    if not s.torchvision:
        raise JobError(f"{name} is your own image folder: there is nothing to download; import it again with "
                       f"`tunelab data import-folder DIR --name {name} --replace`")
    root.mkdir(parents=True, exist_ok=True)
    import torchvision.datasets

    cls = getattr(torchvision.datasets, s.torchvision)
    try:
        cls(str(root), train=True, download=True)
    except Exception as e:  # torchvision raises URLError, RuntimeError or HTTPError by mirror
        raise JobError(
            f"could not download {s.title} ({exception_line(e, limit=120)}); "
            f"offline, copy the official files to a folder and run `tunelab data import DIR`"
        ) from None


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _find(src: Path, wanted: set[str]) -> dict[str, Path]:
    """Files under `src` (recursively) whose name is in `wanted`, first match wins."""
    found: dict[str, Path] = {}
    for dirpath, _, files in sorted(os.walk(src)):
        for f in sorted(files):
            if f in wanted and f not in found:
                found[f] = Path(dirpath) / f
    return found


def import_dir(src: Path, root: Path) -> list[str]:
    """Copy the official dataset files found under `src` into `root`, verifying MD5s; the datasets imported.

    MNIST: the four `*-ubyte.gz` archives, or the four extracted `*-ubyte` files (also named `*.idx3-ubyte`).
    CIFAR-10/100: the official `.tar.gz` archive, or its extracted folder.
    Nothing is written to `root` unless every file of a dataset verifies.
    """
    src = Path(src)
    if not src.is_dir():
        raise JobError(f"{src} is not a folder; pass the folder that holds the dataset files")
    imported = [s.name for s in BUILTINS.values()
                if (_import_idx(s, src, root) if s.source == IDX else _import_cifar(s, src, root))]
    if not imported:
        expected = ", ".join(f"{s.title}'s {s.archive or 'official files'}" for s in BUILTINS.values())
        raise JobError(f"no dataset files found under {src}; expected {expected} (your own images: "
                       f"`tunelab data import-folder`)")
    return imported


def _import_idx(s: DatasetSpec, src: Path, root: Path) -> bool:
    wanted = set()
    for f in s.files:
        wanted |= {f, f + ".gz", f.replace("-idx", ".idx")}
    found = _find(src, wanted)
    if not found:
        return False
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=_mkdir(root)))
    try:
        for f, (gz_md5, raw_md5) in s.files.items():
            if f + ".gz" in found:
                path, want = found[f + ".gz"], gz_md5
            elif f in found or f.replace("-idx", ".idx") in found:
                path, want = found.get(f) or found[f.replace("-idx", ".idx")], raw_md5
            else:
                raise JobError(f"{s.title} file {f}(.gz) is missing under {src}; all {len(s.files)} official files "
                               f"are needed")
            got = md5(path)
            if got != want:
                raise JobError(f"{path} has MD5 {got}, not the official {want}; it is corrupt or not {s.title} — "
                               f"fetch it again")
            if path.name.endswith(".gz"):
                with gzip.open(path, "rb") as fin, open(staging / f, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
                shutil.copy2(path, staging / (f + ".gz"))
            else:
                shutil.copy2(path, staging / f)
        dest = location(s, root)
        dest.mkdir(parents=True, exist_ok=True)
        for p in staging.iterdir():
            os.replace(p, dest / p.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _import_cifar(s: DatasetSpec, src: Path, root: Path) -> bool:
    found = _find(src, {s.archive})
    staging = None
    folder_name = Path(s.folder).name
    if s.archive in found:
        path = found[s.archive]
        got = md5(path)
        if got != s.archive_md5:
            raise JobError(f"{path} has MD5 {got}, not the official {s.archive_md5}; fetch it again")
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=_mkdir(root)))
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(staging, filter="data")
        folder = staging / folder_name
    else:
        dirs = [Path(d) for d, _, _ in os.walk(src) if Path(d).name == folder_name]
        if not dirs:
            return False
        folder = dirs[0]
    try:
        for fname, (want,) in s.files.items():
            p = folder / fname
            if not p.is_file():
                raise JobError(f"{s.title} file {p} is missing; import the whole {s.archive}")
            if md5(p) != want:
                raise JobError(f"{p} does not match the official {s.title} MD5 {want}; fetch it again")
        dest = location(s, root)
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


# -------------------------------------------------------------------------------------------------- info


def info(root: Path) -> list[dict]:
    """One record per registered dataset (built-in or imported): whether it is present under `root`, where, and its
    shape; an imported one adds its manifest's counts per class and where it came from."""
    out = []
    for name in names(root):
        s = get(name, root)
        present = is_available(name, root)
        rec = {"name": name, "title": s.title, "builtin": s.builtin, "present": present,
               "path": str(location(s, root)), "image": f"{s.in_chans}x{s.img_size}x{s.img_size}",
               "classes": s.num_classes}
        if present and s.source == FOLDER:  # the manifest has the counts, and what else there is to say
            m = json.loads((location(s, root) / MANIFEST).read_text())
            rec.update(train=sum(m["counts"]["train"].values()), test=sum(m["counts"]["test"].values()),
                       class_names=m["classes"], counts=m["counts"], source=m["source"], split=m["split"],
                       imported=m["imported"])
        elif present:
            try:
                rec["train"], rec["test"] = _counts(s, root)
            except Exception as e:
                rec["present"], rec["error"] = False, f"unreadable ({type(e).__name__}); import it again"
        out.append(rec)
    return out


def _counts(s: DatasetSpec, root: Path) -> tuple[int, int]:
    """(train, test) example counts, read from file headers, labels or the manifest without loading images."""
    d = location(s, root)
    if s.source == IDX:
        def n(f: str) -> int:
            with open(d / f, "rb") as fh:
                magic, count = struct.unpack(">II", fh.read(8))
            if magic != 2049:
                raise ValueError(f"{f}: bad magic {magic}")
            return count
        train, test = (next(f for f in s.files if f.startswith(p) and "labels" in f) for p in ("train", "t10k"))
        return n(train), n(test)
    if s.source == CIFAR_PICKLE:
        key = s.label_keys[s.labels[0]]
        parts = splits(s)
        return tuple(sum(len(read_cifar_pickle(d / f)[key]) for f in parts[split])  # type: ignore[return-value]
                     for split in ("train", "test"))
    raise ValueError(f"{s.name}: an imported folder's counts are in its manifest")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR files and nothing else: only numpy's array reconstruction may be called."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR file")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def read_cifar_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _CifarUnpickler(io.BufferedReader(f), encoding="latin1").load()
