"""The MNIST recipe on a `--subset`: its full-data batch against the batch and rate scaled to the subset.

    python benchmarks/subset_recipe.py --data .cache/mnist        # writes the "subset-recipe" section

`tunelab train --dataset mnist --subset N` is the smoke-test knob. The recipe's batch (384) is sized for 54,000
training images; on a few thousand it leaves a handful of steps an epoch. `jobs.config.scaled_for_subset` halves
the batch until an epoch has `SUBSET_MIN_STEPS` steps and scales the learning rate with it. This runs, in the bare
loop (`jobs.loop.run_training`, one process, every core), each subset size with the recipe as it was and as it is
now scaled, in fp32 and in bf16 autocast, and reports test accuracy on the subset's test images (N of the 10,000).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import scratch_root, write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a folder with the official MNIST files")
    ap.add_argument("--subsets", default="600,1000,3000,10000", help="comma-separated subset sizes")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    try:
        subsets = [int(s) for s in args.subsets.split(",")]
    except ValueError:
        sys.exit(print(f"--subsets {args.subsets!r} is not a list of numbers; e.g. --subsets 1000,3000", file=sys.stderr) or 2)
    if not any(args.data.rglob("t10k-labels*idx1-ubyte*")):
        sys.exit(print(f"no MNIST files under {args.data}; run `bash .ci/fetch-mnist` and pass --data .cache/mnist",
                       file=sys.stderr) or 2)

    from tunelab.jobs import data
    from tunelab.jobs.config import make_config
    from tunelab.jobs.datasets import BUILTINS
    from tunelab.jobs.loop import run_training

    root = scratch_root("tl-subset-", args.data)
    raw = data.load("mnist", root)
    recipe = BUILTINS["mnist"].recipe
    rows = []
    for n in subsets:
        for precision in ("fp32", "bf16"):
            scaled = make_config(dataset="mnist", subset=n, precision=precision)
            full = make_config(dataset="mnist", subset=n, precision=precision, batch_size=recipe["batch_size"],
                               lr=recipe["lr"])
            prepared = data.prepare(raw, "fine", scaled.val_fraction, scaled.seed, n)
            cells = []
            for cfg in (full, scaled):
                reports: list[dict] = []
                t0 = time.perf_counter()
                run_training(cfg, prepared, report=lambda m, s, out=reports: out.append(m))
                steps = len(prepared.train_y) // cfg.batch_size
                cells.append((cfg.batch_size, cfg.lr, steps, reports[-1]["test_acc"], time.perf_counter() - t0))
            (fb, flr, fs, facc, ft), (sb, slr, ss, sacc, st) = cells
            rows.append(f"| {n:,} | {precision} | {fb} / {flr:g} / {fs} | {100 * facc:.2f} % | "
                        f"{sb} / {slr:g} / {ss} | **{100 * sacc:.2f} %** | {ft:.1f} / {st:.1f} |")
            print(rows[-1], flush=True)
    body = "\n".join([
        "## The MNIST recipe on a subset: full-data batch vs batch scaled to the subset (issue 14)",
        "",
        f"Command: `python benchmarks/subset_recipe.py --data {args.data}`",
        "",
        f"Default MNIST recipe (`{recipe['model']}`, {recipe['epochs']} epochs, SGD one-cycle), bare loop, seed 0, "
        "10 % of the subset carved for validation; test accuracy on the subset's N test images. Batch / peak lr / "
        "steps an epoch, as the recipe was and as `scaled_for_subset` makes it now.",
        "",
        "| subset | precision | recipe as was | test acc | scaled to the subset | test acc | run s (was / now) |",
        "| ---: | --- | --- | ---: | --- | ---: | --- |",
        *rows,
    ])
    if args.no_write:
        print(body)
    else:
        write_section("subset-recipe", body)
        print("wrote the subset-recipe section of benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
