"""The dashboard's JSON API (`/api/...`): the same views the pages and the terminal tables show, read-only."""

from __future__ import annotations

import json
from typing import Optional

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from tunelab.dashboards import charts, importance, views
from tunelab.dashboards.deps import BoardCacheDep, ChartCacheDep, StoreDep
from tunelab.dashboards.schemas import (
    Board,
    DatasetEntry,
    Health,
    Importance,
    LeaderboardRow,
    RunDetail,
    RunRow,
    TrialDetail,
)
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


@router.get("/datasets", response_model=list[DatasetEntry], tags=["leaderboards"])
def api_datasets(s: StoreDep) -> list[DatasetEntry]:
    """The datasets the store knows (built-in ones first), each with its label sets: the leaderboards that can exist."""
    return [DatasetEntry(name=name, **{k: v for k, v in d.items() if k in DatasetEntry.model_fields})
            for name, d in views.datasets(s).items()]


@router.get("/leaderboard", response_model=list[LeaderboardRow], tags=["leaderboards"])
def api_leaderboard(
    s: StoreDep,
    board_cache: BoardCacheDep,
    dataset: str = Query(..., description="a dataset the store knows (GET /api/datasets lists them)"),
    label: str = Query("fine", description="fine, or coarse where the dataset has coarse labels"),
    limit: int = Query(100, ge=1, le=100_000),
    family: Optional[str] = Query(None, description="only this model family (resnet_cifar, vit, …)"),
    augment: Optional[str] = Query(None, description="only this augmentation policy"),
    pretrained: str = Query("any", description="any, yes or no"),
    sort: str = Query("rank", description=f"one of {', '.join(views.SORTS)}"),
    order: str = Query("asc", pattern="^(asc|desc)$"),
    pareto: bool = Query(False, description="only trials Pareto-optimal on the whole board: no other trial is as "
                                            "accurate with no more parameters and training seconds and no fewer "
                                            "inference images/s"),
) -> list[LeaderboardRow]:
    """Ranked by validation accuracy (ties: test accuracy), the order of `tunelab leaderboard --json`; each row says
    whether its trial is Pareto-optimal on the whole board (validation accuracy against parameters, training seconds
    and inference images/s)."""
    try:
        return views.leaderboard(s, dataset, label, limit=limit, family=family, augment=augment,
                                 pretrained=pretrained, sort=sort, descending=order == "desc", pareto=pareto,
                                 cache=board_cache)
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


def _importance(s: ResultStore, cache, run_id: str, evaluator: str, early_stopped: str) -> Importance:
    """The sweep's parameter importance, computed once per change of its trials; 404 for no run, ViewError else."""
    importance.check_choices(evaluator, early_stopped)
    run = s.get_run(run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r}")
    trials = s.run_trials(run_id)
    key = ("importance", evaluator, early_stopped, importance.cache_key(run, trials))
    body = cache.get(key)
    if body is not None:
        return Importance.model_validate_json(body)
    found = importance.compute(run, trials, evaluator, early_stopped)
    cache.put(key, found.model_dump_json().encode())
    return found


_EVALUATOR_Q = Query("ped-anova", description="ped-anova (Optuna's default) or fanova (a random forest, seed 0)")
_EARLY_STOPPED_Q = Query("reached", description="trials that ended short of the budget: reached (count them at the "
                                                "epoch they reached) or exclude (leave them out)")


@router.get("/runs/{run_id:path}/importance/chart", tags=["runs"])
def api_run_importance_chart(run_id: str, s: StoreDep, chart_cache: ChartCacheDep, evaluator: str = _EVALUATOR_Q,
                             early_stopped: str = _EARLY_STOPPED_Q) -> dict:
    """The sweep page's importance chart: `importance` (a plotly figure) and `note` (what it was computed over). With
    too few trials the figure says why and the note is empty."""
    try:
        found = _importance(s, chart_cache, run_id, evaluator, early_stopped)
    except views.ViewError as e:
        if evaluator not in importance.EVALUATORS or early_stopped not in importance.POLICIES:
            raise _view_error(e) from None
        return {"importance": charts.importance_unavailable(str(e)), "note": ""}
    return {"importance": charts.importance_chart(found), "note": found.note}


@router.get("/runs/{run_id:path}/importance", response_model=Importance, tags=["runs"])
def api_run_importance(run_id: str, s: StoreDep, chart_cache: ChartCacheDep, evaluator: str = _EVALUATOR_Q,
                       early_stopped: str = _EARLY_STOPPED_Q) -> Importance:
    """How much each searched parameter of a sweep mattered for validation accuracy, most important first (Optuna's
    evaluators over the trials in the store); 422 with one line for too few trials or a run that is not a sweep."""
    try:
        return _importance(s, chart_cache, run_id, evaluator, early_stopped)
    except views.ViewError as e:
        raise _view_error(e) from None


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
