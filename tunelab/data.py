"""Datasets from Python, as `tunelab data …` has them: your own image folders imported and removed, and what the data
root holds. Mistakes raise `tunelab.TunelabError` with the line the CLI prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel

from tunelab.settings import load_settings


class ImportedDataset(BaseModel):
    """What `import_folder` wrote: the dataset's name, where, its classes and counts, and how fast it decoded."""

    name: str
    path: str
    classes: list[str]
    channels: int
    size: int
    train: int
    test: int
    split: dict[str, Any]
    skipped: dict[str, int]
    seconds: float
    images_per_s: float
    manifest: dict[str, Any]


def import_folder(folder: Union[str, Path], name: str, *, size: Optional[int] = None, channels: Optional[int] = None,
                  test_fraction: Optional[float] = None, flip: bool = True, replace: bool = False,
                  max_memory_gib: Optional[float] = None, progress: Any = False) -> ImportedDataset:
    """Import an image folder (one sub-folder per class, PNG/JPEG inside; or `train/` and `test/` each laid out so) as
    dataset `name` in the data root: every image decoded once to `channels` (default: 1 if all are grey, else 3) at
    `size`x`size` px (default: their own size when all share one square size, else 64). Without `test/`, a seeded,
    stratified `test_fraction` (0.2) is carved out. `flip=False` when mirrored images change class (text, digits).
    After it, `train(dataset=name)`, sweeps, leaderboards, `predict` … work for it as for the built-ins."""
    from tunelab.jobs.folders import import_folder as run_import
    from tunelab.progress import as_progress

    say = as_progress(progress)
    root = load_settings().data_dir
    limit = None if max_memory_gib is None else int(max_memory_gib * 2**30)
    done = run_import(Path(folder).expanduser(), name, root, size=size, channels=channels, test_fraction=test_fraction,
                      flippable=flip, replace=replace, max_memory=limit, say=say.line)
    m = done.manifest
    return ImportedDataset(
        name=done.name, path=str(done.path), classes=m["classes"], channels=m["channels"], size=m["size"],
        train=sum(m["counts"]["train"].values()), test=sum(m["counts"]["test"].values()), split=m["split"],
        skipped=m["source"]["skipped"], seconds=round(done.seconds, 2),
        images_per_s=round(done.images / max(done.seconds, 1e-9), 1), manifest=m)


def remove_dataset(name: str) -> Path:
    """Delete imported dataset `name` from the data root (built-ins are refused; runs and results stay); its folder."""
    from tunelab.jobs.folders import remove

    return remove(name, load_settings().data_dir)


def datasets() -> list[dict]:
    """Every registered dataset (built-in, then imported): present or not, where, its shape, counts and classes."""
    from tunelab.jobs.dataset_files import info

    return info(load_settings().data_dir)
