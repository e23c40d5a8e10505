"""`tunelab leaderboard` and `tunelab runs`: what came out, as tables (or JSON)."""

from __future__ import annotations

from typing import Optional

import typer

from tunelab.cli.common import DATASET_HELP, LabelKind, out, print_json


def leaderboard(
    dataset: str = typer.Option(..., help=DATASET_HELP),
    label: LabelKind = typer.Option(LabelKind.fine, "--label", "--labels", help="label kind (--labels: the same, as "
                                    "`train` once spelled it)"),
    limit: int = typer.Option(20, min=1, help="rows to show"),
    family: Optional[str] = typer.Option(None, help="only this model family (see `tunelab models list`)"),
    augment: Optional[str] = typer.Option(None, help="only this augmentation policy, as stored (e.g. crop:4+flip)"),
    pretrained: Optional[bool] = typer.Option(None, "--pretrained/--scratch", help="only fine-tuned / only from-scratch trials"),
    pareto: bool = typer.Option(False, "--pareto", help="only Pareto-optimal trials (★ in the table): no other trial "
                                "of the board is as accurate with no more parameters and training seconds and no "
                                "fewer inference images/s"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only (the API's /api/leaderboard)"),
) -> None:
    """Best trials for a dataset, ranked by validation accuracy (ties: test accuracy), as on the web leaderboard."""
    from tunelab.api import leaderboard as board
    from tunelab.dashboards import leaderboard_table

    rows = board(dataset, label.value, limit=limit, family=family, augment=augment, pretrained=pretrained,
                 pareto=pareto)
    filtered = family or augment or pretrained is not None or pareto
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
    elif not rows and filtered:
        out.print(f"no {dataset}/{label.value} results match these filters")
    elif not rows:
        out.print(f"no results for {dataset}/{label.value} yet; run `tunelab train --dataset {dataset}`")
    else:
        out.print(leaderboard_table([r.model_dump() for r in rows], dataset, label.value))


def runs(
    limit: int = typer.Option(50, min=1, help="rows to show"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only"),
) -> None:
    """Runs, newest first."""
    from tunelab.api import runs as list_runs
    from tunelab.dashboards import runs_table

    rs = [r.model_dump(mode="json", exclude_unset=True) for r in list_runs(limit)]
    if as_json:
        print_json(rs)
    elif not rs:
        out.print("no runs yet; start one with `tunelab train`")
    else:
        out.print(runs_table(rs))
