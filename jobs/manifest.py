"""What a run leaves in its experiment directory besides Tune's and Train's own files: its manifest
(`tunelab-run.json`, what the run was and how it ended; `jobs.importer` rebuilds the store from it) and, when the
result store stayed unreachable, the file its unwritten writes are spilled to."""

from __future__ import annotations

import json
import os
from pathlib import Path

MANIFEST = "tunelab-run.json"


def write_manifest(exp_dir: str, **fields) -> None:
    """Create or update the run's manifest in `exp_dir` (a local path or a storage URI)."""
    import pyarrow.fs as pafs

    if "://" in exp_dir:
        fs, path = pafs.FileSystem.from_uri(exp_dir)
    else:
        fs, path = pafs.LocalFileSystem(), os.path.abspath(exp_dir)
    fs.create_dir(path, recursive=True)
    target = f"{path}/{MANIFEST}"
    record: dict = {}
    if fs.get_file_info(target).type == pafs.FileType.File:
        with fs.open_input_stream(target) as f:
            record = json.loads(f.read().decode())
    record.update({"schema": 1, **fields})
    with fs.open_output_stream(target + ".tmp") as f:
        f.write(json.dumps(record, indent=1, default=str).encode())
    fs.move(target + ".tmp", target)


def spill_path(exp_dir: str, run_id: str) -> Path:
    """Where the writes of run `run_id` that never reached the result store are saved (`tunelab store replay`):
    beside its manifest in a local `exp_dir`; under ~/.tunelab when `exp_dir` is a storage URI."""
    if "://" in exp_dir:
        return Path.home() / ".tunelab" / f"unwritten-{run_id}.jsonl"
    return Path(exp_dir) / f"tunelab-unwritten-{run_id}.jsonl"
