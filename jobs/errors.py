"""The jobs room's one error type."""

from tunelab.errors import TunelabError


class JobError(TunelabError, ValueError):
    """Bad input to a job (config, data, checkpoint); the message names the problem and the fix."""


class TrainingDiverged(TunelabError, RuntimeError):
    """The loss became NaN or infinite; the trial is failed, the sweep goes on."""
