"""A training state on disk: one `checkpoint.pt` per checkpoint folder, as Ray Train, Tune and the in-process
recorder all persist it (model, optimizer, scheduler, epoch, config and the epoch history).

`jobs.loop` re-exports these names: callers and benchmarks import them from there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch

from tunelab.jobs.errors import JobError

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(state: dict, directory: Path) -> Path:
    """Write `state` to `directory`/checkpoint.pt; the file's path."""
    path = Path(directory) / CHECKPOINT_FILE
    torch.save(state, path)
    return path


def load_checkpoint(directory: Path) -> dict:
    """The training state saved in `directory`; JobError if it is missing, truncated or not ours."""
    path = Path(directory) / CHECKPOINT_FILE
    try:
        # weights_only: a checkpoint is tensors and plain values; never unpickle arbitrary objects.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise JobError(f"checkpoint {path} cannot be read ({type(e).__name__}); delete it or start without "
                       "resuming") from None


def load_checkpoint_or_none(path: Path, what: str = "") -> Optional[dict]:
    """The training state saved in the checkpoint folder `path`; None when it cannot be read, after one warning line
    on the "tunelab" logger naming the file and why: `WHAT: checkpoint FILE cannot be read (Type)`, where `what` says
    what that costs (e.g. "trial X is not evaluated on test")."""
    try:
        return load_checkpoint(Path(path))
    except JobError as e:
        reason = str(e).split("; ")[0]  # "checkpoint FILE cannot be read (Type)", without the fix for a resume
        logging.getLogger("tunelab").warning("%s", f"{what}: {reason}" if what else reason)
        return None
