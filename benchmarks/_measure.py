"""The bare loop's measurement, shared by `benchmarks/gpu_loop.py` (`gpu.sh`) and `benchmarks/throughput.py`:
train-step and eval-forward images/s and FLOPs of one model on synthetic CIFAR-shaped data, by tunelab's own step.

No Ray and no pydantic (`jobs.data` imports neither): it needs only torch, torchvision, timm and numpy, so it runs
on a bare GPU box. Importers put the repository root on sys.path first.
"""

from __future__ import annotations

import functools
import gc
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn

from tunelab import models
from tunelab.jobs.augment import Augmenter
from tunelab.jobs.datasets import get as spec
from tunelab.jobs.step import (
    StepOptions,
    as_input,
    autocast,
    compiled,
    flops_per_image,
    fused_available,
    prepare_model,
    train_step,
)
from tunelab.jobs.step import setup_device as step_setup_device

CIFAR100 = spec("cifar100")
MEAN, STD = CIFAR100.mean, CIFAR100.std
NUM_CLASSES = CIFAR100.num_classes["fine"]


@dataclass
class Measurement:
    """One model's figures; `error` is set (and the figures are zero) when it failed."""

    model: str
    device: str
    options: str
    batch: int
    eval_batch: int
    params: int = 0
    train_flops: float = 0.0  # per image, forward + backward (FlopCounterMode: matmuls and convolutions)
    eval_flops: float = 0.0  # per image, forward
    train_ips: float = 0.0
    eval_ips: float = 0.0
    train_steps: int = 0
    eval_steps: int = 0
    warmup_s: float = 0.0  # build, flop count, warm-up steps and compiles: everything before the timed windows
    peak_gib: Optional[float] = None  # CUDA only: torch.cuda.max_memory_allocated, the data set included
    loss: float = math.nan  # mean training loss over the timed window (a sanity check: finite)
    device_name: str = ""
    error: str = ""

    @property
    def train_tflops(self) -> float:
        return self.train_flops * self.train_ips / 1e12

    @property
    def eval_tflops(self) -> float:
        return self.eval_flops * self.eval_ips / 1e12

    def rate(self, tflops: float) -> str:
        """Achieved FLOP/s in the unit that suits the device: TFLOP/s on a GPU, GFLOP/s on a CPU."""
        return f"{tflops:.1f} TFLOP/s" if self.device == "cuda" else f"{tflops * 1e3:.1f} GFLOP/s"


def device_name(device: torch.device) -> str:
    """The card's name on CUDA; the CPU's model and the threads used otherwise."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = "CPU"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    n = torch.get_num_threads()
    return f"{cpu}, {n} thread{'s' if n != 1 else ''}"


def setup_device(device: torch.device, threads: Optional[int] = None) -> None:
    """The loop's own process-wide switches (`jobs.step.setup_device`: cuDNN autotuning and TF32 on a GPU, malloc
    settings on a CPU) and, on a CPU, `threads` (default: every core)."""
    step_setup_device(device)
    if device.type != "cuda":
        torch.set_num_threads(threads or os.cpu_count() or 1)


@functools.lru_cache(maxsize=1)
def synthetic_cifar(n: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random uint8 3x32x32 images and labels of 100 classes, generated on `device` (nothing crosses PCIe)."""
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, device=device, generator=g)
    y = torch.randint(0, NUM_CLASSES, (n,), device=device, generator=g)
    return x, y


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[int], None], device: torch.device, seconds: float, min_steps: int = 1) -> tuple[int, float]:
    """(steps, seconds) of `run(k)` called in chunks until `seconds` have passed.

    The device is synchronised only between chunks, each sized from the pace so far to a quarter of the window,
    so the host stays ahead of the GPU and the drain at each chunk's end is a negligible share.
    """
    steps, chunk, t0 = 0, 1, time.perf_counter()
    while True:
        run(chunk)
        _sync(device)
        steps += chunk
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and steps >= min_steps:
            return steps, elapsed
        per_step = elapsed / steps
        left = max(seconds - elapsed, per_step)
        chunk = max(1, min(int(left / per_step) + 1, int(seconds / 4 / per_step) + 1, 4 * chunk))


def count_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor, criterion: nn.Module) -> tuple[float, float]:
    """(train, eval) floating-point operations per image, counted once on the eager model: train by
    `jobs.step.flops_per_image` (forward + backward, grouped convolutions and CPU attention counted right),
    eval by torch's FlopCounterMode over one forward on the math attention backend."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    train = flops_per_image(model, x, y, criterion)
    model.eval()
    fwd = FlopCounterMode(display=False)
    with fwd, torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        model(x)
    model.train()
    return train, fwd.get_total_flops() / len(x)


def measure(name: str, device: str, opts: StepOptions, batch: int, eval_batch: int, warmup: int,
            train_seconds: float, eval_seconds: float, images: int = 50_000, seed: int = 0,
            with_flops: bool = True, threads: Optional[int] = None) -> Measurement:
    """Train-step and eval-forward images/s of model `name` on synthetic CIFAR-shaped data (raises on failure)."""
    dev = torch.device(device)
    t_start = time.perf_counter()
    setup_device(dev, threads)
    out = Measurement(name, dev.type, opts.describe(), batch, eval_batch, device_name=device_name(dev))
    x, y = synthetic_cifar(images, device, seed)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(seed)
    model = prepare_model(models.build(name, num_classes=NUM_CLASSES, in_chans=3, img_size=32), dev, opts)
    out.params = models.count_parameters(model)
    aug = Augmenter("crop_flip", "cifar100", MEAN, STD, NUM_CLASSES, dev, seed=seed)
    criterion = nn.CrossEntropyLoss()
    if with_flops:
        xf, yf = aug(x[:4], y[:4])
        out.train_flops, out.eval_flops = count_flops(model, xf, yf, criterion)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4,
                                fused=fused_available(dev))
    net = compiled(model, opts)

    # Training: a random batch gathered on the device, augmented there, one step; the loss stays on the device.
    step = 0
    loss_sum = torch.zeros((), device=dev)

    def run_train(k: int) -> None:
        nonlocal step, loss_sum
        for _ in range(k):
            idx = torch.randint(0, images, (batch,), device=dev)
            xb, yb = aug(x[idx], y[idx], step=step)
            loss_sum += train_step(net, criterion, optimizer, xb, yb, opts)
            step += 1

    model.train()
    run_train(warmup)
    _sync(dev)
    loss_sum.zero_()
    out.warmup_s = time.perf_counter() - t_start
    out.train_steps, secs = timed(run_train, dev, train_seconds)
    out.train_ips = out.train_steps * batch / secs
    out.loss = loss_sum.item() / out.train_steps

    # Evaluation: normalised consecutive slices, no augmentation, argmax compared on the device (as the loop does).
    pos = 0
    correct = torch.zeros((), dtype=torch.int64, device=dev)

    def run_eval(k: int) -> None:
        nonlocal pos, correct
        for _ in range(k):
            i = pos % (images - eval_batch + 1)
            xb = as_input(aug.normalise(x[i : i + eval_batch]), opts)
            with torch.no_grad(), autocast(dev, opts.amp):
                logits = net(xb)
            correct += (logits.argmax(1) == y[i : i + eval_batch]).sum()
            pos += eval_batch

    model.eval()
    t0 = time.perf_counter()
    # cuDNN picks algorithms for the new shape and a compiled model compiles eval mode; oneDNN's first call costs
    # little next to a CPU forward, and a slow model's eval step is the dearest part of a CPU measurement.
    run_eval(max(1, warmup // 3) if dev.type == "cuda" or opts.compile else 0)
    _sync(dev)
    out.warmup_s += time.perf_counter() - t0
    out.eval_steps, secs = timed(run_eval, dev, eval_seconds)
    out.eval_ips = out.eval_steps * eval_batch / secs
    if dev.type == "cuda":
        out.peak_gib = torch.cuda.max_memory_allocated(dev) / 2**30
    return out


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def measure_safely(name: str, device: str, opts: StepOptions, batch: int, eval_batch: int, **kw) -> Measurement:
    """`measure`, with a failure (out of memory, a compile error) turned into a row that names it."""
    try:
        return measure(name, device, opts, batch, eval_batch, **kw)
    except Exception as e:  # one model's failure must not end the run
        traceback.print_exc(file=sys.stderr)
        err = Measurement(name, torch.device(device).type, opts.describe(), batch, eval_batch, error=first_line(e))
    finally:
        cleanup(torch.device(device))
    return err


def cleanup(device: torch.device) -> None:
    """Drop what a finished model left: compiled graphs, cached blocks."""
    if "torch._dynamo" in sys.modules:
        torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
