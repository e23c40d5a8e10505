"""Store writes that survive a Redis outage.

Training and sweeps write through a `BufferedWriter`: every write is queued and the queue flushed in order;
when Redis is unreachable the rest waits for the next write (or `drain`), and training goes on. The store's
writes are idempotent (keyed by run, trial and epoch), so one retried after an ambiguous failure changes
nothing. What still cannot be written at the end is spilled to a JSON-lines file that `tunelab store replay`
writes later: results are never lost.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Optional

from tunelab.results.errors import StoreError
from tunelab.results.store import ResultStore

log = logging.getLogger(__name__)
RETRY_AFTER_S = 2.0  # after a failure, queue without trying for this long (a dead server costs a connect each try)
WRITES = ("start_run", "finish_run", "update_run", "start_trial", "record_epoch", "record_test", "set_checkpoint",
          "finish_trial")


class BufferedWriter:
    """Queues `ResultStore` writes to the server at `url` and flushes them in order, surviving outages."""

    def __init__(self, url: str):
        self.url = url
        self.pending: deque[tuple[str, tuple, dict]] = deque()
        self._store: Optional[ResultStore] = None
        self._retry_at = 0.0
        self.outages = 0

    def __getstate__(self):  # callbacks are pickled by Ray; a connection does not travel
        return {**self.__dict__, "_store": None}

    def call(self, method: str, *args: Any, **kwargs: Any) -> bool:
        """Queue one write and flush; whether everything queued is now written."""
        if method not in WRITES:
            raise ValueError(f"{method} is not a store write")
        # a write may land long after it happened: it carries the time it happened
        now = round(time.time(), 3)
        if method in ("start_run", "start_trial"):
            kwargs.setdefault("started", now)
        elif method in ("finish_run", "finish_trial"):
            kwargs.setdefault("ended", now)
        elif method == "record_epoch":
            args = (args[0], {"recorded_at": now, **args[1]}, *args[2:])
        self.pending.append((method, args, kwargs))
        return self.flush()

    def flush(self, force: bool = False) -> bool:
        import redis

        if not self.pending:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        try:
            if self._store is None:
                self._store = ResultStore.from_url(self.url)
            while self.pending:
                method, args, kwargs = self.pending[0]
                getattr(self._store, method)(*args, **kwargs)
                self.pending.popleft()
            return True
        except (StoreError, redis.RedisError, OSError) as e:
            self._store = None
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            self.outages += 1
            log.warning("result store unreachable (%s); %d write(s) kept to retry", str(e)[:160], len(self.pending))
            return False

    def drain(self, timeout_s: float = 60.0, interval_s: float = 1.0) -> bool:
        """Keep flushing until everything is written or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while not self.flush(force=True):
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval_s)
        return True

    def spill(self, path: Path) -> Path:
        """Write what is still queued to `path` (JSON lines) for `tunelab store replay`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            for method, args, kwargs in self.pending:
                f.write(json.dumps({"method": method, "args": list(args), "kwargs": kwargs}, default=str) + "\n")
        return path


def replay(store: ResultStore, path: Path) -> int:
    """Write the spilled writes in `path` to `store`, in order; how many. StoreError for a file not ours."""
    done = 0
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            method, args, kwargs = rec["method"], rec["args"], rec["kwargs"]
        except (ValueError, KeyError, TypeError):
            raise StoreError(f"{path}:{n} is not a spilled tunelab write; nothing after line {n - 1} was replayed") from None
        if method not in WRITES:
            raise StoreError(f"{path}:{n}: {method!r} is not a store write; nothing after line {n - 1} was replayed")
        getattr(store, method)(*args, **kwargs)
        done += 1
    return done
