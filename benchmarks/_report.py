"""Helpers for benchmarks: the machine they ran on, rewriting one section of RESULTS.md, and a scratch data root."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Optional

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_label() -> str:
    """The CPU's model and kind, e.g. `AMD EPYC, avx512_bf16: native bf16`: the model name alone does not tell
    an AVX2-only machine (bf16 emulated, 4-20x slower than fp32) from one that computes bf16 natively."""
    import torch

    from tunelab.jobs.step import StepOptions, runtime_info

    info = runtime_info(torch.device("cpu"), StepOptions())
    return f"{info['device_name']}, {info['cpu_kind']}: {'native' if info['bf16_native'] else 'emulated'} bf16"


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cpu = cpu_label()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPU cores ({cpu}), {mem:.0f} GiB, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between `<!-- name:start -->` and `<!-- name:end -->` in RESULTS.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = body.strip()
    stamp_line = f"_Measured {stamp} on {machine()}._"
    if body.startswith("#"):  # keep the heading first
        heading, _, rest = body.partition("\n")
        body = f"{heading}\n\n{stamp_line}\n{rest}"
    else:
        body = f"{stamp_line}\n\n{body}"
    block = f"{start}\n{body}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nEach section names the command that produced it.\n"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def scratch_root(prefix: str, mnist: Optional[Path] = None) -> Path:
    """A temporary data root, with the official MNIST files in `mnist` imported (MD5-checked) when given.

    Removed when the process exits, also on an error, Ctrl-C or SIGTERM (how run_all.py ends a benchmark past its
    limit), together with an embedded Redis a benchmark may have started in it.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))

    def cleanup() -> None:
        if (root / "redis").exists():  # results.embedded's server for this root; imported only when there is one
            from tunelab.results import embedded

            embedded.stop(root)
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(cleanup)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through atexit
    if mnist is not None:
        from tunelab.jobs import dataset_files

        dataset_files.import_dir(mnist, root)
    return root

