"""`tunelab sweep …`: run a recipe, resume, list, show; flags → `tunelab.sweep`/`tunelab.resume` → a summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from tunelab.cli.common import out, print_json, progress, results_only_on_stdout


class _SweepGroup(typer.core.TyperGroup):
    """`tunelab sweep SPEC.yaml …` runs a recipe; `tunelab sweep resume|show|list …` are subcommands."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=_SweepGroup, no_args_is_help=True,
                  help="Sweeps: `tunelab sweep SPEC.yaml`, then `sweep list`, `sweep show NAME`, `sweep resume NAME`.")


def _print_summary(result, as_json: bool) -> None:
    """The summary of a finished sweep; an interrupted one exits 130 (its line was said while it stopped)."""
    if not result.ok:
        raise typer.Exit(130)
    rec = result.model_dump(mode="json", include={"run_id", "name", "best_trial", "best_val_acc", "test_acc",
                                                  "best_config", "counts", "wall_time_s"})
    if as_json:
        print_json(rec)
        return
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts.items()))
    best = (f"best {result.best_trial}: val {100 * result.best_val_acc:.2f}%"
            + (f", test {100 * result.test_acc:.2f}%" if result.test_acc is not None else "")
            + f" with {json.dumps(result.best_config, sort_keys=True)}") if result.best_trial else "no trial finished an epoch"
    out.print(f"sweep {result.name} ({result.run_id}): {counts} in {result.wall_time_s}s; {best}", markup=False)


@app.command("run", hidden=True)
def sweep_run(
    spec_path: Path = typer.Argument(..., metavar="SPEC.yaml", help="a recipe, e.g. search_spaces/mnist_smoke.yaml"),
    name: Optional[str] = typer.Option(None, help="name of the sweep [the recipe's]"),
    samples: Optional[int] = typer.Option(None, min=1, help="trials to sample [the recipe's]"),
    max_concurrent: Optional[int] = typer.Option(None, min=1, help="trials at once [the recipe's]"),
    address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="Ray cluster address; none: local"),
    storage: Optional[str] = typer.Option(None, envvar="TUNELAB_STORAGE", help="experiment storage path or URI"),
    warm_start: Optional[list[str]] = typer.Option(
        None, "--warm-start", metavar="RUN", help="an earlier sweep (name or run id) whose trials that fit this one "
        "the searcher (optuna, hyperopt) is told with their results; repeatable [the recipe's warm_start]"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON only"),
) -> None:
    """Run a sweep recipe with Ray Tune; every trial and epoch goes to the store."""
    from tunelab.api import sweep, sweep_spec

    spec = sweep_spec(spec_path, name=name, samples=samples, max_concurrent=max_concurrent, flags=True)
    with results_only_on_stdout():
        result = sweep(spec, address=address, storage=storage, progress=progress(), recipe=spec_path,
                       warm_start=warm_start or None)
    _print_summary(result, as_json)


@app.command("resume")
def sweep_resume(
    name: str = typer.Argument(..., help="the sweep's name (see `tunelab sweep list`)"),
    address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="Ray cluster address; none: local"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON only"),
) -> None:
    """Continue an interrupted sweep: finished trials are kept, unfinished and errored ones continue."""
    from tunelab.api import resume

    with results_only_on_stdout():
        result = resume(name, address=address, progress=progress())
    _print_summary(result, as_json)


@app.command("list")
def sweep_list(as_json: bool = typer.Option(False, "--json", help="machine-readable output only")) -> None:
    """Sweeps, newest first."""
    from tunelab.api import runs
    from tunelab.dashboards import runs_table

    sweeps = [r.model_dump(mode="json", exclude_unset=True) for r in runs(10_000, kind="sweep")]
    if as_json:
        print_json(sweeps)
    elif not sweeps:
        out.print("no sweeps yet; run one with `tunelab sweep search_spaces/mnist_smoke.yaml`")
    else:
        out.print(runs_table(sweeps))


@app.command("show")
def sweep_show(
    name: str = typer.Argument(..., help="the sweep's name or run id"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output only (the API's /api/runs/ID)"),
    importance: bool = typer.Option(False, "--importance", help="how much each searched parameter mattered for "
                                    "validation accuracy, instead of the trials (--json: /api/runs/ID/importance)"),
    evaluator: str = typer.Option("ped-anova", help="with --importance: ped-anova or fanova"),
    exclude_early_stopped: bool = typer.Option(False, "--exclude-early-stopped", help="with --importance: leave out "
                                               "trials that ended short of the budget [count them at the epoch they "
                                               "reached]"),
) -> None:
    """A sweep's trials, best validation accuracy first (the web sweep page's order), with its summary; with
    --importance, each searched parameter's importance, most important first."""
    from tunelab.api import find_sweep, open_store
    from tunelab.dashboards import trials_table, views

    if importance or exclude_early_stopped or evaluator != "ped-anova":  # either flag says what is wanted
        from tunelab.api import importance as sweep_importance

        found = sweep_importance(name, evaluator=evaluator,
                                 early_stopped="exclude" if exclude_early_stopped else "reached")
        if as_json:
            print_json(found.model_dump(mode="json"))
            return
        width = max(len(p.param) for p in found.importances)
        for p in found.importances:
            out.print(f"{p.param:<{width}}  {p.importance:.3f}", markup=False)
        out.print(found.note, markup=False)
        return
    store = open_store()
    detail = views.run_detail(store, find_sweep(name, store=store)["id"])
    if as_json:
        print_json(detail.model_dump(mode="json"))
        return
    out.print(trials_table(detail.run.model_dump(), [t.model_dump() for t in detail.trials]))
