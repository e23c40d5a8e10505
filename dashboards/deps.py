"""What the dashboard's routes depend on, as FastAPI dependencies: the store the app reads and its caches.

`create_app` keeps them on `app.state`; a route asks for them by type (`s: StoreDep`), and a test or an embedding
application can swap one with `app.dependency_overrides[get_store] = ...`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Optional

from fastapi import Depends, Request

from tunelab.dashboards import views
from tunelab.results import ResultStore


class ChartCache:
    """Figure JSON by (run, what its charts depend on), the newest `size` kept. Safe across worker threads
    (sync routes run in a thread pool)."""

    def __init__(self, size: int = 32):
        self.size = size
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Optional[bytes]:
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
            return body

    def put(self, key: tuple, body: bytes) -> None:
        with self._lock:
            self._items[key] = body
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def get_store(request: Request) -> ResultStore:
    """The result store the app reads (opened once, when the app was created)."""
    return request.app.state.store


def get_board_cache(request: Request) -> views.BoardCache:
    """Whole-board indexes, kept until the store's version moves."""
    return request.app.state.board_cache


def get_chart_cache(request: Request) -> ChartCache:
    """Run charts, kept until the run's results change."""
    return request.app.state.chart_cache


StoreDep = Annotated[ResultStore, Depends(get_store)]
BoardCacheDep = Annotated[views.BoardCache, Depends(get_board_cache)]
ChartCacheDep = Annotated[ChartCache, Depends(get_chart_cache)]
