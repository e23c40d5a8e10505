"""`tunelab export|evaluate|predict|ensemble`: a trained model put to use; flags → `tunelab.deploy` → print."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tunelab.cli.common import out, print_json


def _pct(v: Optional[float]) -> str:
    return "—" if v is None else f"{100 * v:.2f}%"


def export(
    trial: str = typer.Argument(..., metavar="TRIAL", help="trial id (see `tunelab leaderboard --json` or `tunelab sweep show NAME`)"),
    fmt: str = typer.Option("onnx", "--format", help="safetensors (weights only), torchscript or onnx (normalisation "
                            "inside: raw [0, 1] images in)"),
    out_path: Optional[Path] = typer.Option(None, "--out", help="file to write [TRIAL.onnx, .pt or .safetensors]; the "
                                            "model card goes beside it as PATH.json"),
) -> None:
    """Write a trial's model with a model card (JSON beside it), checked against its checkpoint."""
    from tunelab.deploy import export as run_export
    from tunelab.jobs.export import card_path

    path = run_export(trial, format=fmt, out=out_path)
    out.print(f"wrote {path} ({fmt}, {path.stat().st_size / 1e6:.2f} MB) and its card {card_path(path)}", markup=False)


def evaluate(
    trial: str = typer.Argument(..., metavar="TRIAL", help="trial id (an ensemble's too)"),
    split: str = typer.Option("test", help="val or test: the split of the data the trial's run trained on"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON only"),
) -> None:
    """Rebuild a trial's model from its checkpoint and measure it again, beside the accuracy the store recorded."""
    from tunelab.deploy import evaluate as run_evaluate

    result = run_evaluate(trial, split=split)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    coarse = f", coarse {_pct(result.acc_coarse)}" if result.acc_coarse is not None else ""
    recorded = (f"; recorded {_pct(result.recorded_acc)}, difference "
                f"{100 * (result.acc - result.recorded_acc):+.2f} points") if result.recorded_acc is not None else \
        "; no recorded figure to compare"
    at = f" at epoch {result.epoch}" if result.epoch else f" (ensemble of {len(result.members)})"
    out.print(f"trial {trial}{at} on {result.split}: {_pct(result.acc)}{coarse} of {result.images:,} images"
              f"{recorded}", markup=False)


def predict(
    trial: str = typer.Argument(..., metavar="TRIAL", help="trial id (an ensemble's too)"),
    images: list[Path] = typer.Argument(..., metavar="IMAGE...", help="PNG or JPEG files"),
    top_k: int = typer.Option(3, "--top-k", help="classes to show per image"),
    as_json: bool = typer.Option(False, "--json", help="print the predictions as JSON only"),
) -> None:
    """The most probable classes of each image by a trial's model."""
    from tunelab.deploy import predict as run_predict

    preds = run_predict(trial, images, top_k=top_k)
    if as_json:
        print_json([p.model_dump(mode="json") for p in preds])
        return
    for p in preds:
        shown = ", ".join(f"{c.name} {100 * c.probability:.1f}%" for c in p.top)
        out.print(f"{p.image}: {shown}", markup=False)


def ensemble(
    run: str = typer.Argument(..., metavar="RUN", help="the sweep's name or run id (see `tunelab sweep list`)"),
    top: int = typer.Option(5, "--top", help="how many of its best trials (by validation accuracy) to average"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON only"),
) -> None:
    """Average the softmax of a sweep's best trials and record the ensemble on the leaderboard (re-running replaces)."""
    from tunelab.deploy import ensemble as run_ensemble

    r = run_ensemble(run, top=top)
    if as_json:
        print_json(r.model_dump(mode="json"))
        return
    coarse = f" (coarse {_pct(r.test_acc_coarse)})" if r.test_acc_coarse is not None else ""
    out.print(f"ensemble {r.name} ({r.trial_id}) of {len(r.members)} trials: val {_pct(r.val_acc)}, test "
              f"{_pct(r.test_acc)}{coarse}; its best trial alone: val {_pct(r.best_member_val_acc)}, test "
              f"{_pct(r.best_member_test_acc)}", markup=False)
