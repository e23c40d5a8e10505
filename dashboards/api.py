"""The dashboard's JSON API (`/api/...`): the same views the pages and the terminal tables show, read-only."""

from __future__ import annotations

import json
from typing import Optional

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from tunelab.dashboards import charts, views
from tunelab.dashboards.deps import BoardCacheDep, ChartCacheDep, StoreDep
from tunelab.dashboards.schemas import Board, Health, LeaderboardRow, RunDetail, RunRow, TrialDetail
from tunelab.results import ResultStore

router = APIRouter(prefix="/api")


def _view_error(e: views.ViewError) -> HTTPException:
    return HTTPException(status_code=422, detail=str(e))


@router.get("/health", response_model=Health, tags=["store"])
def api_health(s: StoreDep) -> Health:
    """The store this dashboard reads (password redacted) and how many runs it holds."""
    return Health(**s.health())


@router.get("/boards", response_model=list[Board], tags=["leaderboards"])
def api_boards(s: StoreDep) -> list[Board]:
    """Leaderboards that hold results, with their sizes."""
    return views.boards(s)


@router.get("/leaderboard", response_model=list[LeaderboardRow], tags=["leaderboards"])
def api_leaderboard(
    s: StoreDep,
    board_cache: BoardCacheDep,
    dataset: str = Query(..., description="mnist or cifar100"),
    label: str = Query("fine", description="fine, or coarse for cifar100"),
    limit: int = Query(100, ge=1, le=100_000),
    family: Optional[str] = Query(None, description="only this model family (resnet_cifar, vit, …)"),
    augment: Optional[str] = Query(None, description="only this augmentation policy"),
    pretrained: str = Query("any", description="any, yes or no"),
    sort: str = Query("rank", description=f"one of {', '.join(views.SORTS)}"),
    order: str = Query("asc", pattern="^(asc|desc)$"),
) -> list[LeaderboardRow]:
    """Ranked by validation accuracy (ties: test accuracy), the order of `tunelab leaderboard --json`."""
    try:
        return views.leaderboard(s, dataset, label, limit=limit, family=family, augment=augment,
                                 pretrained=pretrained, sort=sort, descending=order == "desc", cache=board_cache)
    except views.ViewError as e:
        raise _view_error(e) from None


@router.get("/runs", response_model=list[RunRow], tags=["runs"])
def api_runs(s: StoreDep, kind: Optional[str] = Query(None, description="sweep or train"),
             limit: int = Query(100, ge=1, le=100_000)) -> list[RunRow]:
    """Runs, newest first."""
    try:
        return views.runs(s, kind=kind, limit=limit)
    except views.ViewError as e:
        raise _view_error(e) from None


@router.get("/sweeps", response_model=list[RunRow], tags=["runs"])
def api_sweeps(s: StoreDep, limit: int = Query(100, ge=1, le=100_000)) -> list[RunRow]:
    """Sweeps, newest first."""
    return views.runs(s, kind="sweep", limit=limit)


def run_or_404(s: ResultStore, run_id: str) -> RunDetail:
    detail = views.run_detail(s, run_id)
    if detail is None:
        raise HTTPException(404, f"no run {run_id!r}")
    return detail


def trial_or_404(s: ResultStore, trial_id: str) -> TrialDetail:
    detail = views.trial_detail(s, trial_id)
    if detail is None:
        raise HTTPException(404, f"no trial {trial_id!r}")
    return detail


# Ids are matched as paths: an id may hold '/' (an imported run's), which links send as %2F and the server
# decodes before routing. The charts routes come first: `/api/runs/ID/charts` is not the run "ID/charts".

@router.get("/runs/{run_id:path}/charts", tags=["runs"])
def api_run_charts(run_id: str, s: StoreDep, chart_cache: ChartCacheDep) -> Response:
    """Plotly figures for a run: best-so-far, parallel coordinates, learning curves, parameter effects."""
    detail = run_or_404(s, run_id)
    # Building figures for a large sweep costs a second of CPU: build once per change of the run's results.
    key = (run_id, detail.run.status, tuple((t.id, t.status, t.epochs_done, t.best_val_acc) for t in detail.trials))
    body = chart_cache.get(key)
    if body is None:
        epochs = s.epochs_of(t.id for t in detail.trials)
        body = json.dumps(charts.run_charts(detail.run.model_dump(), detail.trials, epochs)).encode()
        chart_cache.put(key, body)
    return Response(body, media_type="application/json")


@router.get("/trials/{trial_id:path}/charts", tags=["trials"])
def api_trial_charts(trial_id: str, s: StoreDep) -> dict:
    """Plotly figures for a trial: loss, accuracy and throughput per epoch."""
    detail = trial_or_404(s, trial_id)
    return charts.trial_charts(detail.trial, detail.epochs)


@router.get("/runs/{run_id:path}", response_model=RunDetail, tags=["runs"])
def api_run(run_id: str, s: StoreDep) -> RunDetail:
    """A run with its trials, best validation accuracy first (the order of `tunelab sweep show`)."""
    return run_or_404(s, run_id)


@router.get("/trials/{trial_id:path}", response_model=TrialDetail, tags=["trials"])
def api_trial(trial_id: str, s: StoreDep) -> TrialDetail:
    """A trial, its run and its per-epoch metrics."""
    return trial_or_404(s, trial_id)
