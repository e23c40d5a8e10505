"""The dashboard's HTML pages, server-rendered with Jinja (autoescaped) under a strict content security policy."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from tunelab.dashboards import charts, views
from tunelab.dashboards.deps import BoardCacheDep, StoreDep, get_store
from tunelab.dashboards.schemas import Board
from tunelab.dashboards.terminal import pretrained_label
from tunelab.results import ResultStore

HERE = Path(__file__).parent
# plotly's WebGL traces (parcoords) compile with `new Function`, hence 'unsafe-eval'; no inline script anywhere.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
COLUMNS = [  # leaderboard columns: (sort key or None, header, numeric)
    ("rank", "#", True), ("run_name", "run", False), ("trial", "trial", False), ("model", "model", False),
    ("pretrained", "pretrained", False), ("augment", "augment", False), (None, "hyperparameters", False),
    ("val_acc", "val %", True), ("test_acc", "test %", True), ("epochs", "epochs", True),
    ("train_time_s", "train s", True), ("images_per_s", "img/s", True), ("infer_images_per_s", "infer img/s", True),
    ("n_params", "params", True), (None, "★", False), (None, "status", False),
]

router = APIRouter(include_in_schema=False)


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


templates = _templates()


def page(request: Request, store: ResultStore, template: str, status_code: int = 200, **ctx) -> HTMLResponse:
    """`template` rendered with `ctx`, the store's boards (for the navigation) and the security headers."""
    ctx.setdefault("live", "all")
    resp = templates.TemplateResponse(request, template, {"boards": views.boards(store), **ctx},
                                      status_code=status_code)
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def not_found(request: Request, store: ResultStore, what: str) -> HTMLResponse:
    return page(request, store, "error.html", 404, title="not found", message=what)


async def missing(request: Request, exc) -> Response:
    """The app's 404 handler: JSON under /api/ and /static/, the error page elsewhere."""
    if request.url.path.startswith("/api/") or request.url.path.startswith("/static/"):
        detail = getattr(exc, "detail", "not found")
        return JSONResponse({"detail": detail}, status_code=404)
    return not_found(request, get_store(request), f"nothing at {request.url.path}")


@router.get("/")
def index(s: StoreDep) -> RedirectResponse:
    found = views.boards(s)
    known = views.datasets(s)
    if not found and not known:
        return RedirectResponse("/runs")
    target = found[0] if found else Board(dataset=next(iter(known)), label="fine", trials=0)
    return RedirectResponse(f"/leaderboard?{urlencode({'dataset': target.dataset, 'label': target.label})}")


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page(request: Request, s: StoreDep, board_cache: BoardCacheDep, dataset: str = "",
                     label: str = "fine", family: str = "", augment: str = "", pretrained: str = "any",
                     sort: str = "rank", order: str = "asc", limit: int = Query(200, ge=1, le=100_000),
                     pareto: bool = False):
    known = views.datasets(s)
    if not dataset and not known:
        return page(request, s, "error.html", 200, title="no results yet",
                    message="no runs recorded yet: `tunelab train` or `tunelab sweep` fills the leaderboards")
    dataset = dataset or next(iter(known))
    try:
        rows = views.leaderboard(s, dataset, label, limit=limit, family=family or None,
                                 augment=augment or None, pretrained=pretrained, sort=sort,
                                 descending=order == "desc", pareto=pareto, cache=board_cache)
        choices = views.leaderboard_choices(s, dataset, label)
    except views.ViewError as e:
        return page(request, s, "error.html", 400, title="bad request", message=str(e))
    base = {"dataset": dataset, "label": label, "family": family, "augment": augment, "pretrained": pretrained,
            **({"pareto": "true"} if pareto else {})}

    def sort_link(key: str) -> str:
        # first click: the direction that puts the best first (rank ascending, numbers descending)
        numeric = next(c[2] for c in COLUMNS if c[0] == key)
        first = "asc" if key == "rank" or not numeric else "desc"
        flip = {"asc": "desc", "desc": "asc"}[order] if key == sort else first
        return "?" + urlencode({**{k: v for k, v in base.items() if v}, "sort": key, "order": flip})

    return page(request, s, "leaderboard.html", title=f"{dataset} {label} leaderboard", rows=rows,
                dataset=dataset, label=label, labels=known.get(dataset, {}).get("labels", ()), datasets=known,
                choices=choices, filters=base, sort=sort, order=order, columns=COLUMNS, sort_link=sort_link,
                api=f"/api/leaderboard?{urlencode({**base, 'sort': sort, 'order': order, 'limit': limit})}",
                pareto=pareto, charts=True, pareto_chart=charts.pareto_chart(rows) if rows else None)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, s: StoreDep, kind: str = ""):
    try:
        rows = views.runs(s, kind=kind or None, limit=500)
    except views.ViewError as e:
        return page(request, s, "error.html", 400, title="bad request", message=str(e))
    return page(request, s, "runs.html", title="sweeps" if kind == "sweep" else "runs", runs=rows, kind=kind)


@router.get("/sweeps")
def sweeps_page(request: Request, s: StoreDep):
    return runs_page(request, s, kind="sweep")


@router.get("/runs/{run_id:path}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, s: StoreDep):
    detail = views.run_detail(s, run_id)
    if detail is None:
        return not_found(request, s, f"no run {run_id!r} in the store")
    return page(request, s, "run.html", title=f"{detail.run.kind} {detail.run.name}", d=detail, live=run_id,
                charts=bool(detail.trials))


@router.get("/trials/{trial_id:path}", response_class=HTMLResponse)
def trial_page(request: Request, trial_id: str, s: StoreDep):
    detail = views.trial_detail(s, trial_id)
    if detail is None:
        return not_found(request, s, f"no trial {trial_id!r} in the store")
    return page(request, s, "trial.html", title=f"trial {detail.trial.trial}", d=detail, live=detail.trial.run,
                charts=True)
