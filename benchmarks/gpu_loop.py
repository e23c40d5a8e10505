"""Bare training-loop speed on synthetic CIFAR-shaped data: images/s and achieved TFLOP/s per model, GPU or CPU.

No Ray and no pydantic: it needs only torch, torchvision, timm and numpy, so it runs on a bare GPU box. The step
is tunelab's own (`jobs.step.train_step`, `jobs.augment.Augmenter`), so the figures are the loop's: uint8 data
generated on the device, crop+flip augmentation there, bf16 autocast, channels-last, fused SGD, optional
`torch.compile`, and no host sync inside a step (the clock reads only after `torch.cuda.synchronize`).

    benchmarks/gpu.sh                          # CUDA when there is one; resnet18 resnet20 wrn28_10 efficientnet_b0 vit_tiny
    benchmarks/gpu.sh --compile                # torch.compile too (a compile per model and mode: minutes in all)
    benchmarks/gpu.sh --device cpu --write     # the CPU run, written to RESULTS.md as section "gpu-cpu"

On CUDA each model runs in its own process with a time limit, so an out-of-memory error, a failed compile or a
poisoned CUDA context costs that model's row and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks._measure import Measurement, device_name, measure_safely, setup_device  # noqa: E402
from tunelab import models  # noqa: E402
from tunelab.jobs.step import StepOptions, native_bf16  # noqa: E402

MODELS = ("resnet18", "resnet20", "wrn28_10", "efficientnet_b0", "vit_tiny")
# Per-device batch sizes: what an H100 trains these at, and what 2 CPU cores get through in a second or two.
BATCH = {
    "cuda": {"wrn28_10": 256, "*": 512},
    "cpu": {"wrn28_10": 8, "resnet50": 16, "resnet18": 32, "wrn16_4": 32, "vit_tiny": 32, "vit_small": 16, "*": 64},
}
# Timing per model: warm-up steps (cuDNN autotuning, compiles) and the train / eval windows in seconds.
WINDOWS = {"cuda": (15, 12.0, 5.0), "cpu": (1, 3.0, 1.5)}
CHILD_MARK = "RESULT "


def default_batch(name: str, device: str) -> int:
    table = BATCH[device]
    return table.get(name, table["*"])


# ------------------------------------------------------------------------------------------ one process per model


def measure_in_child(spec: dict, timeout: float) -> Measurement:
    """`measure_safely(**spec)` in a fresh process, killed (with its compile workers) after `timeout` seconds."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: it and the compile workers it started
        proc.communicate()
        stdout, stderr = "", f"TimeoutError: no result within {timeout:.0f} s (killed)"
    except BaseException:  # Ctrl-C reaches only our process group, not the child's session
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    for line in reversed(stdout.splitlines()):
        if line.startswith(CHILD_MARK):
            m = Measurement(**json.loads(line[len(CHILD_MARK):]))
            if m.error:  # the child's traceback, for whoever reads the log
                sys.stderr.write("\n".join(stderr.splitlines()[-25:]) + "\n")
            return m
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    why = lines[-1][:200] if lines else f"exit status {proc.returncode}, no output"
    opts = StepOptions(**spec["opts"])
    return Measurement(spec["name"], torch.device(spec["device"]).type, opts.describe(), spec["batch"],
                       spec["eval_batch"], error=why)


def run_child(spec_json: str) -> None:
    spec = json.loads(spec_json)
    spec["opts"] = StepOptions(**spec["opts"])
    m = measure_safely(**spec)
    print(CHILD_MARK + json.dumps(asdict(m)), flush=True)


# ------------------------------------------------------------------------------------------------------- report


def describe_row(m: Measurement) -> str:
    """One line per model, printed as soon as it finishes."""
    if m.error:
        return f"{m.model}: FAILED ({m.error})"
    mem = f", peak {m.peak_gib:.1f} GiB" if m.peak_gib is not None else ""
    return (f"{m.model}: train {m.train_ips:,.0f} img/s ({m.rate(m.train_tflops)}), eval {m.eval_ips:,.0f} img/s "
            f"({m.rate(m.eval_tflops)}); batch {m.batch}/{m.eval_batch}, {m.options}, warm-up {m.warmup_s:.1f} s"
            f"{mem}, loss {m.loss:.2f}")


def table(rows: list[Measurement], device: str) -> list[str]:
    unit = "TFLOP/s" if device == "cuda" else "GFLOP/s"
    lines = [
        f"| model | params | GFLOP/img (train) | batch (train / eval) | train img/s | train {unit} | eval img/s | "
        f"eval {unit} | warm-up s | peak GiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in rows:
        if m.error:
            lines.append(f"| {m.model} | | | {m.batch} / {m.eval_batch} | failed: {m.error.replace('|', '/')} "
                         f"| | | | | |")
            continue
        mem = f"{m.peak_gib:.1f}" if m.peak_gib is not None else "–"
        lines.append(f"| {m.model} | {m.params / 1e6:.2f} M | {m.train_flops / 1e9:.2f} | {m.batch} / {m.eval_batch} "
                     f"| **{m.train_ips:,.0f}** | {m.rate(m.train_tflops).split()[0]} | {m.eval_ips:,.0f} "
                     f"| {m.rate(m.eval_tflops).split()[0]} "
                     f"| {m.warmup_s:.0f} | {mem} |")
    return lines


def main() -> None:
    via_sh = "TUNELAB_BENCH_COMMAND" in os.environ
    ap = argparse.ArgumentParser(prog="benchmarks/gpu.sh" if via_sh else None, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda when there is one")
    ap.add_argument("--models", nargs="+", default=list(MODELS), metavar="NAME")
    ap.add_argument("--batch", type=int, default=None, help="training batch for every model (default: per model)")
    ap.add_argument("--eval-batch", type=int, default=None, help="default: twice the training batch")
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                    help="bf16 autocast (default: on where bf16 is native: CUDA cards from Ampere on, CPUs with AVX512-BF16/AMX)")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                    help="channels-last layout (default: on)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                    help="torch.compile the model (default: off; it adds a compile per model and mode)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps, untimed (default: 15 CUDA, 1 CPU)")
    ap.add_argument("--train-seconds", type=float, default=None, help="timed training window per model")
    ap.add_argument("--eval-seconds", type=float, default=None, help="timed evaluation window per model")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for the whole run; models that would start after it are skipped (default: 450)")
    ap.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                    help="each model in its own process with a time limit (default: on for CUDA)")
    ap.add_argument("--write", action="store_true", help='write section "gpu-<device>" of benchmarks/RESULTS.md')
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        run_child(a.child)
        return

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        ap.exit(2, "gpu.sh: --device cuda, but torch sees no CUDA device (try --device cpu)\n")
    dev = torch.device(device)
    unknown = [n for n in a.models if n not in models.list_models() and not n.startswith("timm/")]
    if unknown:
        ap.exit(2, f"gpu.sh: unknown model(s) {', '.join(unknown)}; choose from {', '.join(models.list_models())}\n")
    leaked = [n for n in ("ray", "pydantic") if sys.modules.get(n) is not None]
    if leaked:  # the bare loop must run where neither is installed
        print(f"warning: the bare loop imported {', '.join(leaked)}", file=sys.stderr)
    # bf16 autocast only where the hardware has it: tensor cores, or a CPU with AVX512-BF16/AMX. Without it
    # (AVX2 only) bf16 is 4-8x slower (benchmarks/throughput.py). Channels-last helps cuDNN and oneDNN convolutions.
    opts = StepOptions(amp=native_bf16(dev) if a.amp is None else a.amp,
                       channels_last=True if a.channels_last is None else a.channels_last, compile=a.compile)
    warmup, train_s, eval_s = WINDOWS[device]
    warmup = a.warmup if a.warmup is not None else warmup + (10 if opts.compile else 0)
    train_s = a.train_seconds or train_s
    eval_s = a.eval_seconds or eval_s
    budget = a.budget or 450.0
    isolate = device == "cuda" if a.isolate is None else a.isolate
    setup_device(dev, a.threads)
    name = device_name(dev)
    command = os.environ.get("TUNELAB_BENCH_COMMAND") or " ".join(["python benchmarks/gpu_loop.py", *sys.argv[1:]])
    print(f"{name}: torch {torch.__version__}, {opts.describe()}, fused SGD, crop+flip on the device; "
          f"{warmup} warm-up step{'s' if warmup != 1 else ''}, {train_s:g} s train + {eval_s:g} s eval per model"
          f"{', one process each' if isolate else ''}", flush=True)

    rows: list[Measurement] = []
    t0 = time.perf_counter()
    for model in a.models:
        batch = a.batch or default_batch(model, device)
        eval_batch = a.eval_batch or 2 * batch
        left = budget - (time.perf_counter() - t0)
        if left < 30:
            m = Measurement(model, device, opts.describe(), batch, eval_batch, error=f"skipped: the {budget:.0f} s budget is spent")
        else:
            spec = dict(name=model, device=device, opts=opts, batch=batch, eval_batch=eval_batch, warmup=warmup,
                        train_seconds=train_s, eval_seconds=eval_s, threads=a.threads)
            if isolate:
                spec["opts"] = asdict(opts)
                m = measure_in_child(spec, timeout=min(left, 300 if opts.compile else 150))
            else:
                m = measure_safely(**spec)
        rows.append(m)
        print(describe_row(m), flush=True)
    total = time.perf_counter() - t0

    body = "\n".join([
        f"## Bare training loop on synthetic CIFAR-shaped data: {name} (issue 9)",
        "",
        f"Command: `{command}` ({total / 60:.1f} min in all)",
        "",
        f"tunelab's step without Ray (`jobs.step.train_step`): random uint8 3×32×32 images and 100-class labels "
        f"generated on the {'GPU' if device == 'cuda' else 'CPU'}, gathered and crop+flip-augmented there "
        f"(`jobs.augment.Augmenter`), {opts.describe()}, SGD (fused) with Nesterov momentum, no host sync inside a "
        f"step. Images/s over a {train_s:g} s training window and a {eval_s:g} s evaluation-forward window after "
        f"{warmup} warm-up step{'s' if warmup != 1 else ''} (not timed; warm-up s counts build, FLOP count, warm-up and any compiles). "
        f"{'TFLOP/s' if device == 'cuda' else 'GFLOP/s'} = FLOPs per image (torch's FlopCounterMode: matmuls and convolutions; training = forward + "
        f"backward) × images/s." + (" Peak GiB: `torch.cuda.max_memory_allocated`, the 0.15 GB data set included."
                                    if device == "cuda" else ""),
        "",
        *table(rows, device),
    ])
    print()
    print(body, flush=True)
    if a.write:
        from benchmarks._report import write_section

        write_section(f"gpu-{device}" + ("-compile" if opts.compile else ""), body)


if __name__ == "__main__":
    main()
