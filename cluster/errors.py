"""The cluster room's one error type (a leaf: every cluster module imports it)."""

from tunelab.errors import TunelabError


class ClusterError(TunelabError, RuntimeError):
    """Ray cannot be started or reached; the message names the problem and the fix."""
