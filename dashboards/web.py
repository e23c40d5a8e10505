"""The web dashboard: server-rendered pages, a JSON API and live updates, all read from the store.

Read-only (GET routes only), escaped (Jinja autoescape; plotly labels escaped in `charts`), offline (plotly.js
from the installed `plotly` package, Swagger UI from `fastapi_offline`), and live through server-sent events fed
by the store's pub/sub channel.

One router per part: `assets` (static files), `api` (the JSON API), `live` (`/api/events`) and `pages` (HTML);
what the routes read comes from `deps` (the store, the caches), kept on `app.state` by `create_app`.
"""

from __future__ import annotations

from typing import Callable

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from tunelab.dashboards import api, assets, live, pages, views
from tunelab.dashboards.deps import ChartCache
from tunelab.results import ResultStore

# kept importable from here
CSP, COLUMNS, PLOTLY_JS = pages.CSP, pages.COLUMNS, assets.PLOTLY_JS


def create_app(store_factory: Callable[[], ResultStore]) -> FastAPI:
    """The dashboard app over the store that `store_factory` opens (once, at start-up)."""
    app = FastAPIOffline(title="tunelab dashboard", version="1",
                         description="Read-only views of tunelab's result store: leaderboards, sweeps, runs, trials. "
                                     "`/api/events` streams store updates as server-sent events.")
    app.state.store = store_factory()
    app.state.board_cache = views.BoardCache()
    app.state.chart_cache = ChartCache()
    assets.mount(app)
    app.include_router(api.router)
    app.include_router(live.router)
    app.include_router(pages.router)
    app.add_exception_handler(404, pages.missing)
    return app
