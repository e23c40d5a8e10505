"""The `tunelab` command line: flags → the Python API (tunelab.api) → print. One module per command group; user
mistakes (any `tunelab.TunelabError`) end in their one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from tunelab.cli import boards, cluster, dashboard, data, deploy, models, store, sweep, train
from tunelab.cli.common import NOTHING_TO_SHUT_DOWN, err, out
from tunelab.errors import TunelabError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  no_args_is_help=True, help="Distributed training and hyperparameter search for image classifiers.")
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(store.app, name="store")
app.add_typer(store.results_app, name="results")
app.add_typer(cluster.app, name="cluster")
app.add_typer(cluster.jobs_app, name="jobs")
app.command()(train.train)
app.add_typer(sweep.app, name="sweep")
app.command()(boards.leaderboard)
app.command()(boards.runs)
app.command(context_settings=cluster.SUBMIT_SETTINGS)(cluster.submit)
app.command()(dashboard.dashboard)
app.command()(deploy.export)
app.command()(deploy.evaluate)
app.command()(deploy.predict)
app.command()(deploy.ensemble)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the CLI; one line and exit 2 for usage and user errors."""
    try:
        _main(argv)
    except SystemExit as e:
        if argv is None:  # the `tunelab` command itself, not a caller in Python
            _leave_now(e.code)
            # the command's output is complete: what Ray still prints while it shuts down (a lost node's log) goes
            # to stderr, so `--json` output stays JSON
            sys.stdout.flush()
            sys.stdout = sys.stderr
        raise


def _leave_now(code) -> None:
    """End a finished command at once, output flushed, when it said nothing is left to shut down (a `train` that ran
    in its own process without torch.compile: no Ray instance, no compile workers). What it skips is the interpreter
    tearing down torch's and Ray's extension modules: 1.4-1.6 s after every such `tunelab train` on the 2-core
    machine, for nothing the user sees."""
    ray = sys.modules.get("ray")
    if not NOTHING_TO_SHUT_DOWN.is_set() or (ray is not None and ray.is_initialized()):
        return
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def _main(argv: Optional[list[str]]) -> None:
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="tunelab", standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted", markup=False)
        sys.exit(130)
    except typer.TyperException as e:  # click-style usage errors (typer vendors click)
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            out.print(ctx.get_help(), markup=False)
            sys.exit(0)
        where = ctx.command_path if ctx is not None else "tunelab"
        msg = " ".join(e.format_message().replace("Value error, ", "").split())
        err.print(f"error: {msg} (see `{where} --help`)", markup=False)
        sys.exit(getattr(e, "exit_code", 2) or 2)
    except TunelabError as e:
        err.print(f"error: {e}", markup=False)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)

