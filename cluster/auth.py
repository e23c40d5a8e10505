"""Ray's token authentication from the client side: find the token where Ray keeps it and switch it on.

Ray (this version) starts clusters with `RAY_AUTH_MODE=token` and keeps the token in `~/.ray/auth_token`
(or `RAY_AUTH_TOKEN_PATH`, or the `RAY_AUTH_TOKEN` variable). A client process only sends it when its own
`RAY_AUTH_MODE` is `token`, so tunelab sets that whenever a token is at hand and the user has not chosen.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

TOKEN_HELP = ("copy the head's token here (`ray get-auth-token` on the head prints it) into ~/.ray/auth_token, "
              "or set RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH")


def token_source() -> Optional[str]:
    """Where this process would read Ray's auth token from, or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return path if Path(path).expanduser().is_file() else None
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def enable_token_auth() -> Optional[str]:
    """Send the token with Ray client calls when one is available and RAY_AUTH_MODE is unset; its source."""
    source = token_source()
    if source and "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        if "ray._raylet" in sys.modules:  # Ray caches its config at import: refresh it, as `ray start` does
            from ray._raylet import Config

            Config.initialize("")
    return source


def is_auth_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "AuthenticationError" or "authentication token" in str(exc).lower()


def auth_message(where: str) -> str:
    """The one line for a rejected or missing token."""
    if token_source() is None:
        return f"the Ray cluster at {where} requires an auth token and none was found; {TOKEN_HELP}"
    return f"the Ray cluster at {where} rejected the auth token from {token_source()}; {TOKEN_HELP}"


def auth_headers() -> dict[str, str]:
    """HTTP headers carrying the token, for the dashboard's REST endpoints ({} without a token)."""
    token = os.environ.get("RAY_AUTH_TOKEN")
    source = token_source()
    if not token and source:
        token = Path(source).expanduser().read_text().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}
