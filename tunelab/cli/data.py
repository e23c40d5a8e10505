"""`tunelab data …`: datasets in the data root — the built-ins' official files, and your own image folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from tunelab.cli.common import DATASET_HELP, err, out, print_json, progress
from tunelab.errors import InputError
from tunelab.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Datasets: download, import official files or your own image folders, "
                                             "inspect, remove.")


@app.command("download")
def data_download(name: str = typer.Argument(..., help="a built-in dataset (`tunelab data info` lists them)")) -> None:
    """Download a built-in dataset into the data root with torchvision (MD5-checked)."""
    from tunelab.jobs import dataset_files, datasets

    s = load_settings()
    datasets.get(name, s.data_dir)  # an unknown name: one line, before anything is said
    err.print(f"downloading {escape(name)} into {s.data_dir} …")
    dataset_files.download(name, s.data_dir)
    out.print(f"{escape(name)}: ready in {s.data_dir}")


@app.command("import")
def data_import(folder: Path = typer.Argument(..., help="folder holding the official dataset files")) -> None:
    """Copy official dataset files from a folder into the data root, verifying their MD5s (the offline path)."""
    from tunelab.jobs import dataset_files

    s = load_settings()
    names = dataset_files.import_dir(folder, s.data_dir)
    for n in names:
        out.print(f"{n}: imported into {s.data_dir} (MD5s verified)")


@app.command("import-folder")
def data_import_folder(
    folder: Path = typer.Argument(..., help="one sub-folder of images per class (or train/ and test/ laid out so)"),
    name: str = typer.Option(..., help="the dataset's name: lowercase letters, digits, - and _"),
    size: Optional[int] = typer.Option(None, help="store images at SIZE x SIZE px (16-512) [their own size when all "
                                       "share one square size, else 64]"),
    channels: Optional[int] = typer.Option(None, help="1 (grey) or 3 (RGB) [1 when every image is grey, else 3]"),
    test_fraction: Optional[float] = typer.Option(None, help="without a test/ folder: the share of each class held "
                                                  "out as the test split, seeded [0.2]"),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="--no-flip when a mirrored image is of another class "
                              "(text, digits): `--augment auto` and flips then leave it alone"),
    replace: bool = typer.Option(False, "--replace", help="swap an existing dataset of this name for this import "
                                 "(atomically)"),
    max_memory: Optional[float] = typer.Option(None, "--max-memory", metavar="GIB", help="refuse when the arrays would "
                                               "take more than this [a quarter of this machine's memory]"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """Import your own images as a dataset: each decoded once into arrays under the data root, with a manifest."""
    from tunelab.data import import_folder

    done = import_folder(folder, name, size=size, channels=channels, test_fraction=test_fraction, flip=flip,
                         replace=replace, max_memory_gib=max_memory, progress=progress())
    if as_json:
        print_json(done.model_dump(exclude={"manifest"}))
        return
    shown = ", ".join(escape(c) for c in done.classes[:8]) + (f", … ({len(done.classes)})" if len(done.classes) > 8 else "")
    skipped = sum(done.skipped.values())
    note = f"; skipped {skipped:,} files that are not images ({escape(str(done.skipped))})" if skipped else ""
    out.print(f"{done.name}: {done.train:,} train / {done.test:,} test images, {done.channels}x{done.size}x{done.size}, "
              f"classes {shown} — decoded at {done.images_per_s:,.0f} images/s{note}; train with "
              f"`tunelab train --dataset {done.name}`")


@app.command("remove")
def data_remove(name: str = typer.Argument(..., help="an imported dataset")) -> None:
    """Delete an imported dataset from the data root (runs and results that used it stay in the store)."""
    from tunelab.data import remove_dataset

    out.print(f"{escape(name)}: removed {remove_dataset(name)} (its runs and leaderboard stay)")


@app.command("preview")
def data_preview(
    dataset: str = typer.Option(..., help=DATASET_HELP),
    augment: str = typer.Option("auto", help="augmentation policy, e.g. crop_flip+cutout, mixup, randaugment, auto"),
    out_path: Path = typer.Option(..., "--out", help="PNG file to write"),
    n: int = typer.Option(32, min=1, max=256, help="how many samples"),
    seed: int = typer.Option(0, help="which samples and which random draws"),
) -> None:
    """Write a labelled grid of training samples before and after augmentation (check a policy by eye)."""
    from tunelab.jobs import data, datasets
    from tunelab.jobs.policies import canonical

    s = load_settings()
    datasets.get(dataset, s.data_dir)
    canonical(augment, dataset)  # bad policy: one line before loading anything
    if out_path.suffix.lower() != ".png":
        raise InputError(f"--out {out_path} must end in .png")
    datasets.require(dataset, s.data_dir)
    from tunelab.jobs.preview import render_preview

    path = render_preview(data.load(dataset, s.data_dir), augment, out_path, n=n, seed=seed)
    out.print(f"wrote {path} ({n} samples, augment={canonical(augment, dataset)})")


@app.command("info")
def data_info(as_json: bool = typer.Option(False, "--json", help="machine-readable output only")) -> None:
    """Every registered dataset — built in, or imported from your folders — whether it is in the data root, and its
    sizes."""
    from tunelab.data import datasets

    s = load_settings()
    recs = datasets()
    if as_json:
        print_json({"data_dir": str(s.data_dir), "datasets": recs})
        return
    out.print(f"data root: {s.data_dir}  (TUNELAB_DATA_DIR)")
    for r in recs:
        state = f"{r['train']:,} train / {r['test']:,} test" if r["present"] else (r.get("error") or "not present")
        kind = "" if r["builtin"] else "  imported"
        out.print(f"  {escape(r['name']):<9} {r['image']:<9} classes {r['classes']}  {state}{kind}")
        if r.get("class_names"):
            names = ", ".join(escape(c) for c in r["class_names"][:10])
            out.print(f"  {'':<9} {escape(str(r['source']['path']))}: {names}{' …' if len(r['class_names']) > 10 else ''}")
