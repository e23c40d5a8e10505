"""Images/s of every model family at CIFAR size on this CPU, train step and eval forward, with fp32, bf16
autocast and channels-last side by side in one run: the evidence behind the loop's CPU defaults.

One model per family (`--all`: every registered model), 3x32x32 inputs, 100 classes, measured by the same
function as `benchmarks/gpu.sh` (`_measure.measure`: synthetic uint8 data, crop+flip, fused SGD, tunelab's step).

    python benchmarks/throughput.py              # writes the "throughput" section of benchmarks/RESULTS.md
    python benchmarks/throughput.py --no-write   # prints only
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks._measure import Measurement, device_name, measure_safely, setup_device
from benchmarks._report import write_section
from tunelab import models
from tunelab.jobs.step import StepOptions

# The family's everyday model; a family not named here is represented by its first registered model.
REPRESENTATIVE = {"cnn": "cnn_bn", "resnet_cifar": "resnet20", "resnet_timm": "resnet18", "wrn": "wrn16_4",
                  "efficientnet": "efficientnet_b0", "vit": "vit_tiny"}
OPTIONS = {
    "fp32": StepOptions(),
    "bf16": StepOptions(amp=True),
    "channels-last": StepOptions(channels_last=True),
    "bf16+channels-last": StepOptions(amp=True, channels_last=True),
}


def models_to_measure(every: bool) -> list[tuple[str, str]]:
    """(family, model) pairs: one per family, or every registered model."""
    by_family: dict[str, list[str]] = {}
    for name in models.list_models():
        by_family.setdefault(models.model_info(name).family, []).append(name)
    if every:
        return [(fam, n) for fam, names in by_family.items() for n in names]
    return [(fam, REPRESENTATIVE.get(fam) if REPRESENTATIVE.get(fam) in names else names[0])
            for fam, names in by_family.items()]


def best_of(old: Optional[Measurement], new: Measurement) -> Measurement:
    """The faster train and eval figures of two measurements of the same thing (the first one's FLOPs)."""
    if old is None or old.error:
        return new
    if new.error:
        return old
    return replace(old, train_ips=max(old.train_ips, new.train_ips), eval_ips=max(old.eval_ips, new.eval_ips))


def clear_loser(first_round: dict[str, Measurement], opt: str) -> bool:
    """Whether `opt`, in the first round, trained at under half the speed of every other option: no noise turns
    that around, so it is not measured again (bf16 on a CPU without native bf16 is such a case, and the slowest
    to measure)."""
    mine = first_round.get(opt)
    others = [m.train_ips for o, m in first_round.items() if o != opt and not m.error]
    return mine is not None and not mine.error and bool(others) and mine.train_ips < 0.5 * min(others)


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="every registered model, not one per family")
    ap.add_argument("--models", nargs="+", metavar="NAME", help="these models instead (any registered name)")
    ap.add_argument("--options", nargs="+", choices=list(OPTIONS), default=["fp32", "bf16", "channels-last"])
    ap.add_argument("--batch", type=int, default=32, help="training batch (evaluation: twice this)")
    ap.add_argument("--rounds", type=int, default=2, help="measurements per model and option; the best is kept")
    ap.add_argument("--budget", type=float, default=240.0,
                    help="seconds after which the remaining models get one round only")
    ap.add_argument("--train-seconds", type=float, default=2.0, help="timed training window per measurement")
    ap.add_argument("--eval-seconds", type=float, default=1.0, help="timed evaluation window per measurement")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up steps")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()

    t0 = time.perf_counter()
    setup_device(torch.device("cpu"), a.threads)
    cpu = device_name(torch.device("cpu"))
    print(f"{cpu}: torch {torch.__version__}", flush=True)
    results = []  # (family, model, {option: Measurement})
    todo = ([(models.model_info(n).family, n) for n in a.models] if a.models else models_to_measure(a.all))
    for family, name in todo:
        batch = a.batch
        row: dict[str, Measurement] = {}
        first_round: dict[str, Measurement] = {}
        # Rounds in alternating order (A B C, C B A, ...) and the best of each: other load on the machine only
        # ever slows a measurement down, and drift during a model's rounds hits every option alike.
        for r in range(a.rounds):
            if r and time.perf_counter() - t0 > a.budget:  # late in a slow run: one round for what is left
                break
            for opt in (a.options if r % 2 == 0 else a.options[::-1]):
                if r and clear_loser(first_round, opt):
                    continue
                m = measure_safely(name, "cpu", OPTIONS[opt], batch, 2 * batch, warmup=a.warmup,
                                   train_seconds=a.train_seconds, eval_seconds=a.eval_seconds,
                                   with_flops=r == 0 and opt == a.options[0], threads=a.threads)
                state = f"FAILED ({m.error})" if m.error else f"train {m.train_ips:,.1f} img/s, eval {m.eval_ips:,.1f} img/s"
                print(f"{name} [{opt}, round {r + 1}]: {state}", flush=True)
                row[opt] = best_of(row.get(opt), m)
                if r == 0:
                    first_round[opt] = m
        results.append((family, name, row))
    total = time.perf_counter() - t0

    first = a.options[0]
    lines = [
        "## Throughput of every model family at CIFAR size on this CPU (issue 9)",
        "",
        f"Command: `{' '.join(['python benchmarks/throughput.py', *sys.argv[1:]])}` ({total / 60:.1f} min in all)",
        "",
        f"Images/s of tunelab's training step (crop+flip on the CPU, fused SGD; forward, backward, update) and of "
        f"the evaluation forward, 3×32×32 inputs, 100 classes, {cpu}, per model and option in one run: "
        f"{a.warmup} untimed warm-up step{'s' if a.warmup != 1 else ''}, then {a.train_seconds:g} s of training and "
        f"{a.eval_seconds:g} s of evaluation (at least one step each), batch {a.batch} (eval {2 * a.batch}); best of "
        f"{a.rounds} rounds in alternating option order (an option that trained at under half the speed of every "
        f"other in the first round is measured once, and so is every model after {a.budget:g} s). Measured by "
        f"`benchmarks/_measure.py`'s `measure`, as `benchmarks/gpu.sh --device cpu` does. GFLOP/img: one training step (forward + backward), "
        f"counted by torch's FlopCounterMode. Cells: train / eval images/s.",
        "",
        "| family | model | params | GFLOP/img | " + " | ".join(a.options) + " | fastest (train) |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in a.options) + " | --- |",
    ]
    ratios = {o: {"conv": [], "conv_eval": [], "vit": [], "vit_eval": []} for o in a.options[1:]}
    for family, name, row in results:
        base = row[first]
        cells = []
        for opt in a.options:
            m = row[opt]
            cells.append(f"failed: {m.error.replace('|', '/')[:80]}" if m.error
                         else f"{m.train_ips:,.1f} / {m.eval_ips:,.1f}")
        ok = {o: m for o, m in row.items() if not m.error}
        fastest = max(ok, key=lambda o: ok[o].train_ips) if ok else "–"
        kind = "vit" if family == "vit" else "conv"
        if first in ok:
            for opt in a.options[1:]:
                if opt in ok:
                    ratios[opt][kind].append(ok[opt].train_ips / ok[first].train_ips)
                    ratios[opt][kind + "_eval"].append(ok[opt].eval_ips / ok[first].eval_ips)
        params = f"{base.params / 1e6:.2f} M" if base.params else "–"
        flops = f"{base.train_flops / 1e9:.2f}" if base.train_flops else "–"
        lines.append(f"| {family} | {name} | {params} | {flops} | " + " | ".join(cells) + f" | {fastest} |")
    lines += ["", f"Speed relative to {first} (geometric mean over models; train step / eval forward):", ""]
    for opt, by_kind in ratios.items():
        parts = []
        for kind, label in (("conv", "conv nets"), ("vit", "ViT")):
            if by_kind[kind]:
                parts.append(f"{label} **{geomean(by_kind[kind]):.2f}×** / {geomean(by_kind[kind + '_eval']):.2f}×")
        lines.append(f"- {opt}: " + "; ".join(parts))
    body = "\n".join(lines)
    print()
    print(body)
    if not a.no_write:
        write_section("throughput", body)


if __name__ == "__main__":
    main()
