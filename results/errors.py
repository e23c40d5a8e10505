"""The results room's one error type."""


class StoreError(RuntimeError):
    """The result store cannot be reached or used; the message names the problem and the fix (no password)."""
