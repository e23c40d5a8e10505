"""Ray callbacks that hand results to the store: the one writer of every epoch.

`StoreCallback` runs in the Ray Train controller (one process per run, not one per worker). Training never
fails because Redis is unreachable: a write that fails is kept and retried with the next report.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from ray.train import Checkpoint
from ray.train.v2.api.callback import UserCallback

from results import ResultStore, StoreError

log = logging.getLogger(__name__)


class StoreCallback(UserCallback):
    """Writes rank 0's metrics of every report, with the persisted checkpoint's path, to the result store."""

    def __init__(self, redis_url: str, trial_id: str):
        self.redis_url = redis_url
        self.trial_id = trial_id
        self._store: Optional[ResultStore] = None
        self._pending: list[tuple[dict, str]] = []

    def __getstate__(self):  # the live connection does not travel to the controller
        state = dict(self.__dict__)
        state["_store"] = None
        return state

    def _flush(self) -> None:
        import redis

        try:
            if self._store is None:
                self._store = ResultStore.from_url(self.redis_url)
            while self._pending:
                metrics, path = self._pending[0]
                self._store.record_epoch(self.trial_id, metrics, checkpoint=path)
                self._pending.pop(0)
        except (StoreError, redis.RedisError) as e:
            self._store = None
            log.warning("result store unreachable (%s); %d epoch(s) buffered", str(e)[:200], len(self._pending))

    def after_report(self, run_context: Any, metrics: list[dict], checkpoint: Optional[Checkpoint]) -> None:
        self._pending.append((dict(metrics[0]), checkpoint.path if checkpoint else ""))
        self._flush()

    def after_exception(self, run_context: Any, worker_exceptions: dict) -> None:
        self._flush()
