"""The CLI reference (docs/cli.md), generated from the typer app itself so it cannot drift from the code:
`python -m tunelab.cli.reference > docs/cli.md` (`make docs`); tests/test_docs.py fails when the file differs."""

from __future__ import annotations

from typing import Any

import typer

HEADER = """# CLI reference

Generated from the `tunelab` command itself by `make docs` (`python -m tunelab.cli.reference > docs/cli.md`); a test
fails when this file and the code differ. Every command prints one line on stderr and exits 2 on a user mistake.
"""


# typer carries its own copy of click (typer._click): commands and parameters are read through what they expose,
# `get_help_record` (what `--help` prints for each), not by isinstance


def _command(path: str, cmd: Any) -> list[str]:
    """One command's section: its help, then each argument and option as `--help` prints it, in a table."""
    lines = [f"## `{path}`", "", " ".join((cmd.help or "").split()), ""]
    ctx = cmd.make_context(path, [], resilient_parsing=True)
    rows = [p.get_help_record(ctx) for p in cmd.params if not getattr(p, "hidden", False)]
    rows = [r for r in rows if r and r[0] != "--help"]
    if rows:
        cell = lambda text: " ".join(text.split()).replace("|", "\\|")  # noqa: E731
        lines += ["| argument or option | what it does |", "| --- | --- |"]
        lines += [f"| `{cell(flags)}` | {cell(text)} |" for flags, text in rows]
        lines.append("")
    return lines


def _walk(path: str, cmd: Any) -> list[str]:
    if hasattr(cmd, "commands"):  # a group
        out = _command(path, cmd) if cmd.params and path != "tunelab" else []
        for name in sorted(cmd.commands):
            out += _walk(f"{path} {name}", cmd.commands[name])
        return out
    return _command(path, cmd)


def markdown() -> str:
    """docs/cli.md as the current code writes it."""
    from tunelab.cli import app

    root = typer.main.get_command(app)
    return HEADER + "\n" + "\n".join(_walk("tunelab", root)).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown())
