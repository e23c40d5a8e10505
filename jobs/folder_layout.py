"""The ImageFolder layout of a user's images: one sub-folder per class (PNG/JPEG inside, nested folders allowed), or
`train/` and `test/` each laid out so. `scan` finds the files by split and class and refuses, in one line, a layout that
cannot be a dataset; it reads no image."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.jobs.errors import JobError

# What torchvision's ImageFolder reads; anything else in the folder is skipped and counted.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")



@dataclass
class Layout:
    """The image files of a folder by split and class, and what was skipped."""

    root: Path
    classes: list[str]
    files: dict[str, dict[str, list[Path]]]  # split -> class -> files, sorted
    skipped: Counter = field(default_factory=Counter)  # extension -> files that are not images

    @property
    def all_files(self) -> list[Path]:
        return [p for split in self.files.values() for c in self.classes for p in split.get(c, [])]


def _inside(path: Path, root: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents


def _walk_class(folder: Path, root: Path, skipped: Counter) -> list[Path]:
    """The image files under one class folder (recursively, sorted); symlinks are followed only while they stay
    inside `root` (JobError otherwise)."""
    found, seen = [], set()
    stack = [folder]
    while stack:
        d = stack.pop()
        real = os.path.realpath(d)
        if real in seen:
            continue
        seen.add(real)
        for entry in sorted(os.scandir(d), key=lambda e: e.name, reverse=True):
            p = Path(entry.path)
            if entry.is_symlink() and not _inside(p, root):
                raise JobError(f"{p} is a link to {os.path.realpath(p)}, outside {root}; links out of the folder are "
                               f"not followed: copy the file in or remove the link")
            if entry.name.startswith("."):  # .DS_Store, .ipynb_checkpoints/, ...
                skipped["hidden"] += entry.is_file()
                continue
            if entry.is_dir():
                stack.append(p)
            elif p.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(p)
            else:
                skipped[p.suffix.lower() or "(no extension)"] += 1
    return sorted(found)


def _split_classes(folder: Path, root: Path, skipped: Counter) -> dict[str, list[Path]]:
    classes: dict[str, list[Path]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        p = Path(entry.path)
        if entry.is_symlink() and not _inside(p, root):
            raise JobError(f"{p} is a link to {os.path.realpath(p)}, outside {root}; links out of the folder are not "
                           f"followed: copy it in or remove the link")
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            classes[entry.name] = _walk_class(p, root, skipped)
        elif p.suffix.lower() in IMAGE_EXTENSIONS:
            raise JobError(f"{p} is not inside a class folder; put each image in the folder of its class "
                           f"({folder}/CLASS/{p.name})")
        else:
            skipped[p.suffix.lower() or "(no extension)"] += 1
    return classes


def scan(src: Path) -> Layout:
    """The layout of `src`: class folders directly in it, or in `train/` (and `test/`); JobError naming what is wrong."""
    src = Path(src)
    if not src.exists():
        raise JobError(f"{src}: no such folder; pass a folder with one sub-folder of images per class")
    if not src.is_dir():
        raise JobError(f"{src} is a file, not a folder; pass a folder with one sub-folder of images per class")
    root = Path(os.path.realpath(src))
    skipped: Counter = Counter()
    if (src / "train").is_dir():
        files = {"train": _split_classes(src / "train", root, skipped)}
        if (src / "test").is_dir():
            files["test"] = _split_classes(src / "test", root, skipped)
    else:
        files = {"train": _split_classes(src, root, skipped)}
    classes = sorted(files["train"])
    if not classes:
        raise JobError(f"{src} holds no class folders; lay it out as {src}/CLASS/IMAGE.png, one folder per class")
    if len(classes) == 1:
        raise JobError(f"{src} has one class folder ({classes[0]!r}); a classifier needs at least two classes")
    for split, by_class in files.items():
        if split == "test" and set(by_class) != set(classes):
            diff = sorted(set(classes) ^ set(by_class))
            raise JobError(f"{src}/test has other class folders than {src}/train (differ: {', '.join(diff[:5])}); "
                           f"give both the same classes")
        for c, paths in by_class.items():
            if not paths:
                where = src / split / c if split == "test" or (src / "train").is_dir() else src / c
                raise JobError(f"class folder {where} has no images ({', '.join(IMAGE_EXTENSIONS)}); add some or "
                               f"remove the folder")
    skipped = Counter({k: v for k, v in skipped.items() if v})
    return Layout(root=src, classes=classes, files=files, skipped=skipped)
