"""How a model learns: data, the per-worker loop, the train job, and the callbacks that feed the store.

Importing this package does not import Ray; `jobs.train` and `jobs.callbacks` do.
"""

from jobs.config import TrainConfig, make_config
from jobs.errors import JobError, TrainingDiverged

__all__ = ["JobError", "TrainConfig", "TrainingDiverged", "make_config"]
