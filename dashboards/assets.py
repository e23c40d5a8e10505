"""The dashboard's static files, served locally (it works offline): plotly.js from the installed `plotly`
package, then the app's own scripts and styles."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

router = APIRouter(include_in_schema=False)


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(PLOTLY_JS, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400", "X-Plotly-Version": plotly.__version__})


def mount(app: FastAPI) -> None:
    """The asset routes on `app`. Routes match in order: plotly.min.js first, then the app's own files."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
