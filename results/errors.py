"""The results room's one error type."""

from tunelab.errors import TunelabError


class StoreError(TunelabError, RuntimeError):
    """The result store cannot be reached or used; the message names the problem and the fix (no password)."""
