"""How the store's hashes read back as records (numbers as numbers, JSON fields decoded), and URLs shown without
their password."""

from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit


def redact(url: str) -> str:
    """`url` with any password replaced by ***, safe to print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def num(v: Optional[str]):
    if v is None or v == "":
        return None
    f = float(v)
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def decode_run(h: dict) -> dict:
    out = dict(h)
    out["config"] = json.loads(h.get("config") or "{}")
    for k in ("summary", "runtime"):
        if k in out:
            out[k] = json.loads(out[k])
    for k in ("started", "ended", "wall_time_s"):
        if k in out:
            out[k] = num(out[k])
    return out


def decode_trial(h: dict) -> dict:
    out: dict[str, Any] = {}
    for k, v in h.items():
        if k in ("params", "boards", "runtime"):
            out[k] = json.loads(v or "{}")
        elif k in ("id", "run", "status", "model", "family", "dataset", "labels", "augment", "pretrained", "error",
                   "checkpoint"):
            out[k] = v
        else:
            try:
                out[k] = num(v)
            except ValueError:
                out[k] = v
    return out
