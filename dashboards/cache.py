"""Whole responses of the dashboard's pages and JSON API, kept until the store's version moves.

Every write that changes what a view shows moves the store's version (`ResultStore.version`, one counter), so a
GET's response is fixed by its path and query at a given version. `ResponseCache` is a pure ASGI middleware: per
request it reads the version (one round trip to Redis) and, when it holds a response for that path and query at that
version, answers with the stored bytes without running the route. Responses carry a strong `ETag` (a hash of the
body, so every server process gives the same one) and `Cache-Control: no-cache` (browsers revalidate); a matching
`If-None-Match` is answered 304 with no body. Concurrent misses of one path at one version run the route once.

Only 200 responses of HTML or JSON are kept (errors, redirects, files and event streams pass through), in a bounded
LRU (entries and bytes). `/api/events` (a stream), `/api/health` (live by design) and `/static/` skip it altogether.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from typing import Awaitable, Callable, Optional

SKIP_PREFIXES = ("/api/events", "/api/health", "/static/")
CACHED_TYPES = (b"text/html", b"application/json")
_DROPPED = {b"content-length", b"etag", b"cache-control"}


class _Entry:
    __slots__ = ("version", "etag", "headers", "body")

    def __init__(self, version: int, etag: bytes, headers: list[tuple[bytes, bytes]], body: bytes):
        self.version, self.etag, self.headers, self.body = version, etag, headers, body


def _etag(body: bytes) -> bytes:
    return b'"' + hashlib.blake2b(body, digest_size=12).hexdigest().encode() + b'"'


def _matches(if_none_match: Optional[bytes], etag: bytes) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, as RFC 9110 has it for this header)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(b",")]
    return b"*" in tags or any(t.removeprefix(b"W/") == etag for t in tags)


class ResponseCache:
    """ASGI middleware: GET responses by (path and query, store version), the newest `max_entries` / `max_bytes`."""

    def __init__(self, app, version: Callable[[], Awaitable[int]], max_entries: int = 1024,
                 max_bytes: int = 64 << 20):
        self.app = app
        self.version = version
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.max_entry_bytes = max_bytes // 8
        self._items: OrderedDict[bytes, _Entry] = OrderedDict()
        self._bytes = 0
        self._pending: dict[tuple[bytes, int], asyncio.Future] = {}  # misses being rendered now
        self._newest = 0  # the highest version seen

    def clear(self) -> None:
        """Forget every kept response."""
        self._items.clear()
        self._bytes = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"].startswith(SKIP_PREFIXES):
            return await self.app(scope, receive, send)
        key = (scope.get("raw_path") or scope["path"].encode()) + b"?" + scope["query_string"]
        try:
            version = await self.version()
        except Exception:  # the store is unreachable: nothing to key by; the route answers (or fails) uncached
            return await self.app(scope, receive, send)
        if version < self._newest:  # the store was emptied or replaced: what is kept may belong to the old one
            self.clear()
        self._newest = version
        if_none_match = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
        entry = self._items.get(key)
        if entry is not None and entry.version == version:
            self._items.move_to_end(key)
            return await self._answer(send, entry, if_none_match, b"hit")
        pending = self._pending.get((key, version))
        if pending is not None:  # the same page at the same version is being rendered: wait for it
            entry = await asyncio.shield(pending)
            if entry is not None:
                return await self._answer(send, entry, if_none_match, b"hit")
            return await self.app(scope, receive, send)
        future = asyncio.get_running_loop().create_future()
        self._pending[(key, version)] = future
        entry = None
        try:
            entry = await self._render(scope, receive, send, version)
        finally:  # those waiting get the entry, or None (not one to keep, or the route failed): they run it themselves
            del self._pending[(key, version)]
            future.set_result(entry)
        if entry is not None:
            self._keep(key, entry)
            await self._answer(send, entry, if_none_match, b"miss")

    async def _render(self, scope, receive, send, version: int) -> Optional[_Entry]:
        """Run the route; its response as an entry to keep, or None when it was not one to keep (then it has been sent
        on as it came)."""
        start: Optional[dict] = None
        chunks: list[bytes] = []
        passing = False

        async def capture(message) -> None:
            nonlocal start, passing
            if passing:
                await send(message)
            elif message["type"] == "http.response.start":
                start = message
                headers = message.get("headers", ())
                ctype = next((v for k, v in headers if k == b"content-type"), b"")
                # errors, redirects, files, streams, and anything meant for one client pass through as they come
                passing = (message["status"] != 200 or not ctype.startswith(CACHED_TYPES)
                           or any(k == b"set-cookie" for k, _ in headers))
                if passing:
                    await send(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            else:
                await send(message)

        await self.app(scope, receive, capture)
        if passing or start is None:
            return None
        body = b"".join(chunks)
        etag = _etag(body)
        headers = [(k, v) for k, v in start.get("headers", ()) if k not in _DROPPED]
        return _Entry(version, etag, headers + [(b"etag", etag), (b"cache-control", b"no-cache")], body)

    def _keep(self, key: bytes, entry: _Entry) -> None:
        if len(entry.body) > self.max_entry_bytes:
            return
        old = self._items.get(key)
        if old is not None and old.version > entry.version:  # a slower render of an older version: keep the newer
            return
        if old is not None:
            self._bytes -= len(self._items.pop(key).body)
        self._items[key] = entry
        self._bytes += len(entry.body)
        while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= len(dropped.body)

    @staticmethod
    async def _answer(send, entry: _Entry, if_none_match: Optional[bytes], how: bytes) -> None:
        if _matches(if_none_match, entry.etag):
            headers = [(k, v) for k, v in entry.headers if k in (b"etag", b"cache-control")]
            await send({"type": "http.response.start", "status": 304, "headers": headers + [(b"x-cache", how)]})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = entry.headers + [(b"content-length", str(len(entry.body)).encode()), (b"x-cache", how)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": entry.body})
