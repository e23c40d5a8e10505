"""The one error family. Every room's error type derives from `TunelabError`; its message is the one line the CLI
prints (then exit code 2), naming the problem and the fix.

A leaf module (no imports), so every room can derive from it without importing anything else of the front door.
"""


class TunelabError(Exception):
    """A problem the user can fix; `str(e)` is one line naming it and the fix."""


class InputError(TunelabError, ValueError):
    """A request the front door refuses before anything runs (settings that do not go together, an unknown sweep)."""


def exception_line(e: BaseException, *, last: bool = False, limit: int = 200) -> str:
    """`Type: message` on one line, for a record or an error message: the message's first line, or with `last` its
    last (an error re-raised by Ray arrives wrapped, its own words last), cut at `limit` characters."""
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    text = (lines[-1] if last else lines[0]).strip() if lines else ""
    return f"{type(e).__name__}: {text[:limit]}" if text else type(e).__name__


def validation_line(e, *, name=None, first: bool = False, got: bool = True) -> str:
    """A pydantic ValidationError (duck-typed: this module imports nothing) as one line: each problem as
    `NAME: message (got VALUE)`, joined by '; ' (only the first with `first`). `name(loc)` turns an error's location
    into what the user typed (a recipe key, a flag, a keyword argument); by default the dotted location. A problem
    with no location is its message alone; an unexpected key reads "unknown key"."""
    parts = []
    for err in e.errors()[:1] if first else e.errors():
        loc = tuple(err.get("loc", ()))
        msg = "unknown key" if err.get("type") == "extra_forbidden" else str(err.get("msg", "")).removeprefix(
            "Value error, ")
        label = (name or (lambda parts: ".".join(str(x) for x in parts)))(loc) if loc else ""
        shown = f" (got {err['input']!r})" if got and loc and "input" in err and err.get("type") != "extra_forbidden" \
            else ""
        parts.append(f"{label}: {msg}{shown}" if label else msg)
    return "; ".join(parts)
