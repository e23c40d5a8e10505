"""Settings from `TUNELAB_*` environment variables (flags override them per command)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import platformdirs
from pydantic import BaseModel


class Settings(BaseModel):
    data_dir: Path
    redis_url: Optional[str] = None
    storage: Optional[str] = None
    ray_address: Optional[str] = None

    @property
    def storage_path(self) -> str:
        """Where Ray Train/Tune keep experiment directories (checkpoints, results)."""
        return self.storage or str(self.data_dir / "experiments")


def load_settings() -> Settings:
    """Settings from the environment: TUNELAB_DATA_DIR, TUNELAB_REDIS_URL, TUNELAB_STORAGE, RAY_ADDRESS."""
    from tunelab.jobs import datasets

    data_dir = Path(os.environ.get("TUNELAB_DATA_DIR") or platformdirs.user_data_dir("tunelab")).expanduser().resolve()
    datasets.use_root(data_dir)  # the registry knows the datasets imported under the data root in use
    return Settings(
        data_dir=data_dir,
        redis_url=os.environ.get("TUNELAB_REDIS_URL") or None,
        storage=os.environ.get("TUNELAB_STORAGE") or None,
        ray_address=os.environ.get("RAY_ADDRESS") or None,
    )
