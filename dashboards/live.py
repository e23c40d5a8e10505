"""Live updates: the store's events as server-sent events (`/api/events`), which the pages listen to."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from tunelab.dashboards.deps import StoreDep

router = APIRouter(prefix="/api")


@router.get("/events", response_class=EventSourceResponse, tags=["live"])
async def api_events(request: Request, s: StoreDep):
    """Store updates as they happen: JSON {type: run|trial|epoch|test, run, trial?, status?, epoch?}."""
    async with s.subscribe_events() as events:
        yield ServerSentEvent(comment="subscribed", retry=3000)
        while not await request.is_disconnected():
            data = await events.next(timeout=1.0)
            if data is not None:
                yield ServerSentEvent(raw_data=data)
