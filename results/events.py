"""The store's live events for asyncio code: what every write publishes ({type: run|trial|epoch|test, run,
trial?, status?, epoch?}), read on a connection of its own."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, Optional

from tunelab.results import keys


@contextlib.asynccontextmanager
async def subscribe(url: str) -> AsyncIterator["EventSubscription"]:
    """Subscribed to the event channel of the store at `url` while the block runs; the connection closes after."""
    import redis.asyncio as aioredis  # only for those who listen

    client = aioredis.Redis.from_url(url, decode_responses=True)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(keys.EVENTS)
        yield EventSubscription(pubsub)
    finally:
        await pubsub.aclose()
        await client.aclose()


class EventSubscription:
    """A subscription to the store's events, from `ResultStore.subscribe_events`."""

    def __init__(self, pubsub):
        self._pubsub = pubsub

    async def next(self, timeout: float = 1.0) -> Optional[str]:
        """The next event's JSON text, or None when none came within `timeout` seconds."""
        msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        return None if msg is None else msg["data"]
