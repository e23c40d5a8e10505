"""What came out: the Redis result store and the embedded default server.

Imports redis only (no Ray, no torch), so dashboards and the CLI can read results cheaply.
"""

from pathlib import Path
from typing import Optional

from tunelab.results import embedded, keys
from tunelab.results.errors import StoreError
from tunelab.results.store import ResultStore, redact


def open_store(redis_url: Optional[str], data_dir: Path) -> ResultStore:
    """The store at `redis_url`, or with none the user's embedded server under `data_dir` (started if needed)."""
    if redis_url:
        return ResultStore.from_url(redis_url)
    return ResultStore.from_url(embedded.ensure_running(data_dir))


__all__ = ["ResultStore", "StoreError", "embedded", "keys", "open_store", "redact"]
