"""`tunelab models …`: the model registry."""

from __future__ import annotations

import typer

from tunelab.cli.common import out, print_json

app = typer.Typer(no_args_is_help=True, help="The model registry.")


@app.command("list")
def models_list(
    dataset: str = typer.Option(None, help="count parameters for this registered dataset's inputs and classes "
                                "[the dataset published counts refer to]"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """Registered models: family, parameters for a dataset, native input size, pretrained weights available."""
    from tunelab import models
    from tunelab.jobs import datasets
    from tunelab.settings import load_settings

    dataset = dataset or datasets.PARAMS_REFERENCE
    sp = datasets.get(dataset, load_settings().data_dir)
    recs = models.describe_models(num_classes=sp.num_classes["fine"], in_chans=sp.in_chans, img_size=sp.img_size)
    for r in recs:
        r["dataset"] = dataset
    if as_json:
        print_json(recs)
        return
    from rich.table import Table

    t = Table(title=f"models — parameters for {dataset} ({sp.num_classes['fine']} classes); any timm model "
                    f"also works as timm/<name>", title_justify="left")
    for col in ("name", "family", "params", "native px", "ImageNet weights", "description"):
        t.add_column(col, justify="right" if col in ("params", "native px") else "left")
    for r in recs:
        t.add_row(r["name"], r["family"], f"{r['params']:,}", str(r["native_img_size"]), r["pretrained"], r["description"])
    out.print(t)
