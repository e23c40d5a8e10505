"""What the CLI's command modules share: the consoles, JSON output, the dataset and label choices."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from enum import Enum

from rich.console import Console

# Wide when piped (no terminal to fit): tables stay readable in logs and files.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# Set by a command that ends with nothing left to shut down (see tunelab.cli.leave_now).
NOTHING_TO_SHUT_DOWN = threading.Event()


DATASET_HELP = "a registered dataset: built in, or imported with `tunelab data import-folder` (`tunelab data info` lists them)"


class LabelKind(str, Enum):
    fine = "fine"
    coarse = "coarse"


def print_json(value) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def results_only_on_stdout():
    """While a run goes on, what libraries print goes to stderr (Ray prints a lost node's raylet log and its workers'
    output on stdout): stdout carries only the command's result, so `--json` parses and a pipe gets the summary."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def progress():
    """The terminal view of a run on stderr, for the API's `progress=`."""
    from tunelab.progress import TerminalProgress

    return TerminalProgress(err)
