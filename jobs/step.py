"""How a training step runs fast: the speed options the loop and `benchmarks/gpu.sh` share.

Pure PyTorch (no Ray, pydantic or numpy), so the GPU benchmark runs where only torch, torchvision and timm are
installed. Nothing here reads a tensor back to the host: a step queues its work and returns the loss as a
device tensor, so the CPU runs ahead of a GPU instead of waiting on it every step.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import platform
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn


@dataclass(frozen=True)
class StepOptions:
    """bf16 autocast, channels-last memory layout and `torch.compile`, each on or off."""

    amp: bool = False
    channels_last: bool = False
    compile: bool = False

    def describe(self) -> str:
        on = [n for n, v in (("bf16", self.amp), ("channels-last", self.channels_last), ("compile", self.compile)) if v]
        return "+".join(on) or "fp32"


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively. CPUs without AVX512-BF16 or AMX emulate it, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    flags = _cpuinfo()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags from /proc/cpuinfo (empty where there is none)."""
    name, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not name and line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif not flags and line.startswith("flags"):
                    flags = frozenset(line.split(":", 1)[1].split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags


def cpu_kind() -> str:
    """The CPU's vector kind as far as training speed goes: `amx_bf16`, `avx512_bf16` (bf16 computed natively),
    `avx512`, `avx2` or `other`. Figures from different kinds are not comparable."""
    flags = _cpuinfo()[1]
    for kind in ("amx_bf16", "avx512_bf16", "avx512f", "avx2"):
        if kind in flags:
            return kind.replace("avx512f", "avx512")
    return "other"


def runtime_info(device: torch.device, opts: StepOptions, world_size: int = 1) -> dict:
    """What a run trains on, as recorded with its results: the resolved speed options, the device (CPU model and
    kind, or GPU name), torch and CUDA versions, the number of workers and each one's CPU threads."""
    info = {"precision": "bf16" if opts.amp else "fp32", "channels_last": opts.channels_last, "compile": opts.compile,
            "device": device.type, "torch": torch.__version__.split("+")[0], "workers": world_size,
            "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info.update(device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    bf16_native=torch.cuda.is_bf16_supported())
    else:
        info.update(device_name=_cpuinfo()[0] or platform.processor() or platform.machine(), cpu_kind=cpu_kind(),
                    bf16_native=native_bf16(device))
    return info


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on `device` (CUDA or CPU) when enabled; a no-op context otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def prepare_model(model: nn.Module, device: torch.device, opts: StepOptions) -> nn.Module:
    """`model` on `device`, in channels-last layout when asked (the parameters stay fp32: autocast casts)."""
    model = model.to(device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def compiled(model: nn.Module, opts: StepOptions) -> nn.Module:
    """`torch.compile(model)` when asked. The original module keeps the weights (checkpoints save it)."""
    return torch.compile(model) if opts.compile else model


def as_input(x: torch.Tensor, opts: StepOptions) -> torch.Tensor:
    """An image batch in the layout the model expects."""
    if opts.channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return single_channel_nhwc(x)


def single_channel_nhwc(x: torch.Tensor) -> torch.Tensor:
    """A 1-channel image batch (N, 1, H, W) as a channels-last view of the same memory; other tensors as they are.

    With one channel both layouts are the same bytes and differ only in the channel's stride, which nothing
    computes with, yet torch picks its kernels from it: a channel stride of 1 reads as channels-last (oneDNN's
    NHWC convolutions, channels-last pooling), H*W as NCHW. numpy leaves that stride to chance: MNIST as
    `jobs.data.prepare` returns it has 1, the same array after a trip through Ray's object store (pickle) has
    784, so a Ray worker or sweep trial ran `cnn` NCHW at ~30 % more CPU than the bare loop (benchmarks/RESULTS.md,
    ray-overhead notes of 2026-12-02). Fixing the view makes the layout the same everywhere, and the faster one."""
    if x.ndim != 4 or x.shape[1] != 1 or x.stride(1) == 1:
        return x
    n, _, h, w = x.shape
    if x.stride() != (h * w, h * w, w, 1):  # not a plain dense batch: leave it to torch
        return x
    return x.as_strided((n, 1, h, w), (h * w, 1, w, 1))


# glibc malloc settings for a CPU training process. By default glibc hands a freed block of 128 KiB or more
# back to the OS (and raises that bar only as far as what was freed), so every step's activation tensors come back
# as fresh pages: hundreds of thousands of page faults an epoch for a small CNN. And a thread other than the main
# one (Ray Train runs the training function in one) allocates from its own arena, whose heaps are unmapped as
# they empty. Measured on the 2-core machine (`cnn`, MNIST, benchmarks/RESULTS.md "ray-overhead"): the loop in a
# thread went from 6.3 to 4.6-4.8 s/epoch with the three settings, the main thread from 5.3 to 4.6-4.7, and the
# faults from 0.7-2.2 M to 0.25 M per three epochs. Ray workers get them as environment variables (glibc reads
# them at start-up, before any thread exists); `tune_malloc` sets the two that can still change at run time.
MALLOC_ENV = {
    "MALLOC_ARENA_MAX": "1",  # every thread allocates from the main heap
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),  # blocks under 32 MiB come from the heap, not mmap (glibc's maximum)
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),  # keep up to 1 GiB freed at the top of the heap for the next step
}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters from glibc's malloc.h


def tune_malloc() -> bool:
    """Apply MALLOC_ENV's thresholds to this process at run time (glibc only; elsewhere nothing happens).
    Returns whether they took."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]))
                    and libc.mallopt(_M_TRIM_THRESHOLD, int(MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"])))
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False


def setup_device(device: torch.device) -> None:
    """The process-wide switches a fast loop sets once. On a GPU, cuDNN picks the fastest algorithm per shape and
    whatever stays fp32 under autocast runs on TF32 tensor cores; on a CPU, freed tensor memory stays in the process
    (`tune_malloc`)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        tune_malloc()


def fused_available(device: torch.device) -> bool:
    """Fused (single-kernel) optimizer steps exist for CUDA and, since torch 2.4, the CPU."""
    return device.type in ("cuda", "cpu")


def train_step(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, opts: StepOptions, before_update: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """One forward/backward/update; returns the loss as a detached device tensor (no host sync)."""
    with autocast(x.device, opts.amp):
        loss = criterion(model(as_input(x, opts)), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if before_update is not None:
        before_update()
    optimizer.step()
    return loss.detach().float()


# Inference throughput: forward passes are timed until at least this long was timed (one pass at least). Fast
# models run many passes (a steady figure even on a GPU); a slow one on a CPU costs a warm-up and one pass.
INFER_MIN_SECONDS = 0.5


def synchronize(device: torch.device) -> None:
    """Wait until the work queued on `device` is done (a GPU runs behind the host; a CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def inference_throughput(model: nn.Module, x: torch.Tensor, opts: StepOptions,
                         min_seconds: float = INFER_MIN_SECONDS) -> float:
    """Images per second of `model`'s forward passes over the batch `x` (inputs as the model takes them: normalised,
    on its device), in eval mode, under `opts`' precision and layout — what evaluation runs.

    One untimed warm-up pass (lazy initialisation, cuDNN's algorithm search for this shape), then rounds of passes,
    each as many as all before it and ended by one device sync, until `min_seconds` are timed (one pass at least).
    The model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    xb = as_input(x, opts)

    def passes(n: int) -> float:
        t0 = time.perf_counter()
        with autocast(x.device, opts.amp):
            for _ in range(n):
                model(xb)
        synchronize(x.device)
        return time.perf_counter() - t0

    try:
        passes(1)
        done, spent = 0, 0.0
        while done == 0 or spent < min_seconds:
            n = max(done, 1)
            spent += passes(n)
            done += n
    finally:
        model.train(was_training)
    return done * len(x) / max(spent, 1e-9)


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, groups, output_mask, out_shape, **_) -> int:
    """torch's formula for `convolution_backward`, with a grouped convolution's weight gradient divided by its
    groups: torch counts it as if ungrouped (EfficientNet-B0 at 32 px: 10.4 instead of 0.7 GFLOP per image)."""
    from torch.utils.flop_counter import conv_flop_count

    def t(shape):
        return [shape[1], shape[0], *shape[2:]]

    flops = 0
    if output_mask[0]:  # input gradient: a transposed convolution of the output gradient with the weight
        flops += conv_flop_count(grad_out_shape, w_shape, out_shape[0], not transposed)
    if output_mask[1]:  # weight gradient: a convolution of the input with the output gradient, per group
        a, b = (grad_out_shape, x_shape) if transposed else (x_shape, grad_out_shape)
        flops += conv_flop_count(t(a), t(b), t(out_shape[1]), transposed=False) // groups
    return flops


def flops_per_image(model: nn.Module, x: torch.Tensor, y: torch.Tensor, criterion: nn.Module) -> float:
    """Floating-point operations of one training step (forward + backward) per image, counted by torch's
    FlopCounterMode on `x` (matmuls and convolutions: what dominates, and what TFLOP/s figures count).

    Attention runs on the math backend while counting: FlopCounterMode knows CUDA's fused attention kernels but
    not the CPU's, and as plain matmuls it counts the same on both."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})
    with counter, sdpa_kernel([SDPBackend.MATH]):
        criterion(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(x)
