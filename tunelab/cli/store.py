"""`tunelab store …` and `tunelab results …`: the result store, and rebuilding it from experiment folders."""

from __future__ import annotations

from pathlib import Path

import typer

from tunelab.cli.common import out, print_json
from tunelab.errors import InputError
from tunelab.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="The result store (embedded Redis by default).")
results_app = typer.Typer(no_args_is_help=True, help="Results kept outside the store: rebuild it from experiment folders.")


@app.command("status")
def store_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Where results go, and whether the embedded server runs."""
    from tunelab.results import embedded, redact

    s = load_settings()
    rec = {"url": redact(s.redis_url)} if s.redis_url else {"embedded": True, **embedded.status(s.data_dir)}
    if as_json:
        print_json(rec)
    else:
        out.print(" ".join(f"{k}={v}" for k, v in rec.items()))


@app.command("replay")
def store_replay(path: Path = typer.Argument(..., help="a tunelab-unwritten-*.jsonl file a sweep left")) -> None:
    """Write the results a sweep could not write while the store was unreachable (idempotent)."""
    from tunelab.api import open_store
    from tunelab.results.buffer import replay

    if not path.is_file():
        raise InputError(f"{path} is not a file; pass the tunelab-unwritten-*.jsonl path the sweep printed")
    n = replay(open_store(), path)
    out.print(f"replayed {n} write(s) from {path}", markup=False)


@app.command("stop")
def store_stop() -> None:
    """Stop the embedded Redis server (it saves first; the next command starts it again)."""
    from tunelab.results import embedded

    out.print("stopped" if embedded.stop(load_settings().data_dir) else "not running")


@results_app.command("import")
def results_import(folder: Path = typer.Argument(..., help="a storage folder runs wrote (their experiment directories)")) -> None:
    """Rebuild the store from experiment directories (Tune's results, checkpoints' epoch history); idempotent."""
    from tunelab.api import open_store
    from tunelab.jobs.importer import import_dir

    runs = import_dir(folder, open_store())
    out.print(f"imported {len(runs)} run(s) from {folder}: {', '.join(runs)}", markup=False)
