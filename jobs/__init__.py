"""How a model learns: data, the per-worker loop, the train job, and the callbacks that feed the store.

Importing this package imports neither Ray nor pydantic (`jobs.step` and `jobs.augment` run where only torch,
torchvision and timm are installed, as on a bare GPU box); `jobs.config`, `jobs.train` and `jobs.callbacks` do.
"""

from tunelab.jobs.errors import JobError, TrainingDiverged

__all__ = ["JobError", "TrainConfig", "TrainingDiverged", "make_config"]


def __getattr__(name: str):
    if name in ("TrainConfig", "make_config"):
        from tunelab.jobs import config

        return getattr(config, name)
    raise AttributeError(f"module 'jobs' has no attribute {name!r}")
