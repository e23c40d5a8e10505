"""`tunelab data …`: datasets in the data root."""

from __future__ import annotations

from pathlib import Path

import typer

from tunelab.cli.common import DatasetName, err, out, print_json
from tunelab.errors import InputError
from tunelab.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Datasets: download, import from a folder, inspect.")


@app.command("download")
def data_download(name: DatasetName = typer.Argument(..., help="mnist or cifar100")) -> None:
    """Download a dataset into the data root with torchvision (MD5-checked)."""
    from tunelab.jobs import data

    s = load_settings()
    err.print(f"downloading {name.value} into {s.data_dir} …")
    data.download(name.value, s.data_dir)
    out.print(f"{name.value}: ready in {s.data_dir}")


@app.command("import")
def data_import(folder: Path = typer.Argument(..., help="folder holding the official dataset files")) -> None:
    """Copy official dataset files from a folder into the data root, verifying their MD5s (the offline path)."""
    from tunelab.jobs import data

    s = load_settings()
    names = data.import_dir(folder, s.data_dir)
    for n in names:
        out.print(f"{n}: imported into {s.data_dir} (MD5s verified)")


@app.command("preview")
def data_preview(
    dataset: DatasetName = typer.Option(..., help="dataset to sample from"),
    augment: str = typer.Option("auto", help="augmentation policy, e.g. crop_flip+cutout, mixup, randaugment, auto"),
    out_path: Path = typer.Option(..., "--out", help="PNG file to write"),
    n: int = typer.Option(32, min=1, max=256, help="how many samples"),
    seed: int = typer.Option(0, help="which samples and which random draws"),
) -> None:
    """Write a labelled grid of training samples before and after augmentation (check a policy by eye)."""
    from tunelab.jobs import data
    from tunelab.jobs.policies import canonical

    s = load_settings()
    canonical(augment, dataset.value)  # bad policy: one line before loading anything
    if out_path.suffix.lower() != ".png":
        raise InputError(f"--out {out_path} must end in .png")
    data.require(dataset.value, s.data_dir)
    from tunelab.jobs.preview import render_preview

    path = render_preview(data.load(dataset.value, s.data_dir), augment, out_path, n=n, seed=seed)
    out.print(f"wrote {path} ({n} samples, augment={canonical(augment, dataset.value)})")


@app.command("info")
def data_info(as_json: bool = typer.Option(False, "--json", help="machine-readable output only")) -> None:
    """Which datasets are in the data root, and their sizes."""
    from tunelab.jobs import data

    s = load_settings()
    recs = data.info(s.data_dir)
    if as_json:
        print_json({"data_dir": str(s.data_dir), "datasets": recs})
        return
    out.print(f"data root: {s.data_dir}  (TUNELAB_DATA_DIR)")
    for r in recs:
        state = f"{r['train']:,} train / {r['test']:,} test" if r["present"] else (r.get("error") or "not present")
        out.print(f"  {r['name']:<9} {r['image']:<9} classes {r['classes']}  {state}")
