"""The web dashboard: server-rendered pages, a JSON API and live updates, all read from the store.

Read-only (GET routes only), escaped (Jinja autoescape; plotly labels escaped in `charts`), offline (plotly.js
from the installed `plotly` package, Swagger UI from `fastapi_offline`), and live through server-sent events fed
by the store's pub/sub channel.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import quote, urlencode

import plotly
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tunelab.dashboards import charts, views
from tunelab.dashboards.schemas import Board, Health, LeaderboardRow, RunDetail, RunRow, TrialDetail
from tunelab.dashboards.terminal import pretrained_label
from tunelab.results import ResultStore, keys, redact

HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# plotly's WebGL traces (parcoords) compile with `new Function`, hence 'unsafe-eval'; no inline script anywhere.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
COLUMNS = [  # leaderboard columns: (sort key or None, header, numeric)
    ("rank", "#", True), ("run_name", "run", False), ("trial", "trial", False), ("model", "model", False),
    ("pretrained", "pretrained", False), ("augment", "augment", False), (None, "hyperparameters", False),
    ("val_acc", "val %", True), ("test_acc", "test %", True), ("epochs", "epochs", True),
    ("train_time_s", "train s", True), ("images_per_s", "img/s", True), ("n_params", "params", True),
    (None, "status", False),
]


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt_pct(v) -> str:
    return f"{100 * v:.2f}" if _is_num(v) else "—"


def _fmt_num(v, fmt: str = "{:,.0f}") -> str:
    return fmt.format(v) if _is_num(v) else "—"


def _fmt_json(v) -> str:
    return json.dumps(v, indent=2, sort_keys=True, default=str)


def _fmt_param(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _fmt_when(ts) -> str:
    return "—" if not _is_num(ts) else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _url_part(v) -> str:
    """`v` as one path segment of a URL: everything reserved encoded, `/` included (Jinja's urlencode keeps it)."""
    return quote(str(v), safe="")


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    env.filters.update(pct=_fmt_pct, num=_fmt_num, param=_fmt_param, when=_fmt_when, pretty=_fmt_json,
                       pretrained=pretrained_label, urlpart=_url_part)
    return Jinja2Templates(env=env)


def create_app(store_factory: Callable[[], ResultStore]) -> FastAPI:
    """The dashboard app over the store that `store_factory` opens (once, at start-up)."""
    store = store_factory()
    templates = _templates()
    app = FastAPIOffline(title="tunelab dashboard", version="1",
                         description="Read-only views of tunelab's result store: leaderboards, sweeps, runs, trials. "
                                     "`/api/events` streams store updates as server-sent events.")
    app.state.store = store
    board_cache = views.BoardCache()

    def get_store() -> ResultStore:
        return app.state.store

    def page(request: Request, template: str, status_code: int = 200, **ctx) -> HTMLResponse:
        ctx.setdefault("live", "all")
        resp = templates.TemplateResponse(request, template, {"boards": views.boards(store), **ctx},
                                          status_code=status_code)
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    def not_found(request: Request, what: str) -> HTMLResponse:
        return page(request, "error.html", 404, title="not found", message=what)

    # ------------------------------------------------------------------------------------------ assets

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400", "X-Plotly-Version": plotly.__version__})

    # routes match in order: plotly.min.js above, then the app's own files
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # --------------------------------------------------------------------------------------------- API

    def _view_error(e: views.ViewError) -> HTTPException:
        return HTTPException(status_code=422, detail=str(e))

    @app.get("/api/health", response_model=Health, tags=["store"])
    def api_health(s: ResultStore = Depends(get_store)) -> Health:
        """The store this dashboard reads (password redacted) and how many runs it holds."""
        s.check()
        return Health(store=redact(s.url), schema_version=keys.SCHEMA_VERSION, runs=s.r.zcard(keys.RUNS))

    @app.get("/api/boards", response_model=list[Board], tags=["leaderboards"])
    def api_boards(s: ResultStore = Depends(get_store)) -> list[Board]:
        """Leaderboards that hold results, with their sizes."""
        return views.boards(s)

    @app.get("/api/leaderboard", response_model=list[LeaderboardRow], tags=["leaderboards"])
    def api_leaderboard(
        dataset: str = Query(..., description="mnist or cifar100"),
        label: str = Query("fine", description="fine, or coarse for cifar100"),
        limit: int = Query(100, ge=1, le=100_000),
        family: Optional[str] = Query(None, description="only this model family (resnet_cifar, vit, …)"),
        augment: Optional[str] = Query(None, description="only this augmentation policy"),
        pretrained: str = Query("any", description="any, yes or no"),
        sort: str = Query("rank", description=f"one of {', '.join(views.SORTS)}"),
        order: str = Query("asc", pattern="^(asc|desc)$"),
        s: ResultStore = Depends(get_store),
    ) -> list[LeaderboardRow]:
        """Ranked by validation accuracy (ties: test accuracy), the order of `tunelab leaderboard --json`."""
        try:
            return views.leaderboard(s, dataset, label, limit=limit, family=family, augment=augment,
                                     pretrained=pretrained, sort=sort, descending=order == "desc", cache=board_cache)
        except views.ViewError as e:
            raise _view_error(e) from None

    @app.get("/api/runs", response_model=list[RunRow], tags=["runs"])
    def api_runs(kind: Optional[str] = Query(None, description="sweep or train"),
                 limit: int = Query(100, ge=1, le=100_000), s: ResultStore = Depends(get_store)) -> list[RunRow]:
        """Runs, newest first."""
        try:
            return views.runs(s, kind=kind, limit=limit)
        except views.ViewError as e:
            raise _view_error(e) from None

    @app.get("/api/sweeps", response_model=list[RunRow], tags=["runs"])
    def api_sweeps(limit: int = Query(100, ge=1, le=100_000), s: ResultStore = Depends(get_store)) -> list[RunRow]:
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
    chart_cache: OrderedDict[tuple, bytes] = OrderedDict()  # (run, what its charts depend on) -> figure JSON
    cache_lock = threading.Lock()  # sync routes run in a thread pool

    @app.get("/api/runs/{run_id:path}/charts", tags=["runs"])
    def api_run_charts(run_id: str, s: ResultStore = Depends(get_store)) -> Response:
        """Plotly figures for a run: best-so-far, parallel coordinates, learning curves, parameter effects."""
        detail = run_or_404(s, run_id)
        # Building figures for a large sweep costs a second of CPU: build once per change of the run's results.
        key = (run_id, detail.run.status, tuple((t.id, t.status, t.epochs_done, t.best_val_acc) for t in detail.trials))
        with cache_lock:
            body = chart_cache.get(key)
            if body is not None:
                chart_cache.move_to_end(key)
        if body is None:
            epochs = s.epochs_of(t.id for t in detail.trials)
            body = json.dumps(charts.run_charts(detail.run.model_dump(), detail.trials, epochs)).encode()
            with cache_lock:
                chart_cache[key] = body
                while len(chart_cache) > 32:
                    chart_cache.popitem(last=False)
        return Response(body, media_type="application/json")

    @app.get("/api/trials/{trial_id:path}/charts", tags=["trials"])
    def api_trial_charts(trial_id: str, s: ResultStore = Depends(get_store)) -> dict:
        """Plotly figures for a trial: loss, accuracy and throughput per epoch."""
        detail = trial_or_404(s, trial_id)
        return charts.trial_charts(detail.trial, detail.epochs)

    @app.get("/api/runs/{run_id:path}", response_model=RunDetail, tags=["runs"])
    def api_run(run_id: str, s: ResultStore = Depends(get_store)) -> RunDetail:
        """A run with its trials, best validation accuracy first (the order of `tunelab sweep show`)."""
        return run_or_404(s, run_id)

    @app.get("/api/trials/{trial_id:path}", response_model=TrialDetail, tags=["trials"])
    def api_trial(trial_id: str, s: ResultStore = Depends(get_store)) -> TrialDetail:
        """A trial, its run and its per-epoch metrics."""
        return trial_or_404(s, trial_id)

    @app.get("/api/events", response_class=EventSourceResponse, tags=["live"])
    async def api_events(request: Request):
        """Store updates as they happen: JSON {type: run|trial|epoch|test, run, trial?, status?, epoch?}."""
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(store.url, decode_responses=True)
        pubsub = client.pubsub()
        await pubsub.subscribe(keys.EVENTS)
        try:
            yield ServerSentEvent(comment="subscribed", retry=3000)
            while not await request.is_disconnected():
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None:
                    yield ServerSentEvent(raw_data=msg["data"])
        finally:
            await pubsub.aclose()
            await client.aclose()

    # ------------------------------------------------------------------------------------------- pages

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        found = views.boards(store)
        target = found[0] if found else Board(dataset="mnist", label="fine", trials=0)
        return RedirectResponse(f"/leaderboard?{urlencode({'dataset': target.dataset, 'label': target.label})}")

    @app.get("/leaderboard", response_class=HTMLResponse, include_in_schema=False)
    def leaderboard_page(request: Request, dataset: str = "mnist", label: str = "fine", family: str = "",
                         augment: str = "", pretrained: str = "any", sort: str = "rank", order: str = "asc",
                         limit: int = Query(200, ge=1, le=100_000)):
        try:
            rows = views.leaderboard(store, dataset, label, limit=limit, family=family or None,
                                     augment=augment or None, pretrained=pretrained, sort=sort,
                                     descending=order == "desc", cache=board_cache)
            choices = views.leaderboard_choices(store, dataset, label)
        except views.ViewError as e:
            return page(request, "error.html", 400, title="bad request", message=str(e))
        base = {"dataset": dataset, "label": label, "family": family, "augment": augment, "pretrained": pretrained}

        def sort_link(key: str) -> str:
            # first click: the direction that puts the best first (rank ascending, numbers descending)
            numeric = next(c[2] for c in COLUMNS if c[0] == key)
            first = "asc" if key == "rank" or not numeric else "desc"
            flip = {"asc": "desc", "desc": "asc"}[order] if key == sort else first
            return "?" + urlencode({**{k: v for k, v in base.items() if v}, "sort": key, "order": flip})

        return page(request, "leaderboard.html", title=f"{dataset} {label} leaderboard", rows=rows,
                    dataset=dataset, label=label, labels=views.LABELS.get(dataset, ()), datasets=views.DATASETS,
                    choices=choices, filters=base, sort=sort, order=order, columns=COLUMNS, sort_link=sort_link,
                    api=f"/api/leaderboard?{urlencode({**base, 'sort': sort, 'order': order, 'limit': limit})}")

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    def runs_page(request: Request, kind: str = ""):
        try:
            rows = views.runs(store, kind=kind or None, limit=500)
        except views.ViewError as e:
            return page(request, "error.html", 400, title="bad request", message=str(e))
        return page(request, "runs.html", title="sweeps" if kind == "sweep" else "runs", runs=rows, kind=kind)

    @app.get("/sweeps", include_in_schema=False)
    def sweeps_page(request: Request):
        return runs_page(request, kind="sweep")

    @app.get("/runs/{run_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(request: Request, run_id: str):
        detail = views.run_detail(store, run_id)
        if detail is None:
            return not_found(request, f"no run {run_id!r} in the store")
        return page(request, "run.html", title=f"{detail.run.kind} {detail.run.name}", d=detail, live=run_id,
                    charts=bool(detail.trials))

    @app.get("/trials/{trial_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def trial_page(request: Request, trial_id: str):
        detail = views.trial_detail(store, trial_id)
        if detail is None:
            return not_found(request, f"no trial {trial_id!r} in the store")
        return page(request, "trial.html", title=f"trial {detail.trial.trial}", d=detail, live=detail.trial.run,
                    charts=True)

    @app.exception_handler(404)
    async def missing(request: Request, exc):
        if request.url.path.startswith("/api/") or request.url.path.startswith("/static/"):
            detail = getattr(exc, "detail", "not found")
            from fastapi.responses import JSONResponse

            return JSONResponse({"detail": detail}, status_code=404)
        return not_found(request, f"nothing at {request.url.path}")

    return app

