#!/usr/bin/env bash
# The bare training loop (no Ray) on synthetic CIFAR-shaped data: images/s and TFLOP/s per model.
#   benchmarks/gpu.sh [--device cuda|cpu] [--models NAME ...] [--compile] [--write] ...   (--help for all)
# Python: $PYTHON if set, else the repo's .venv when there is one, else python3. It needs only torch,
# torchvision, timm and numpy.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then
  py="$PYTHON"
elif [[ -x "$root/.venv/bin/python" ]]; then
  py="$root/.venv/bin/python"
else
  py=python3
fi
export TUNELAB_BENCH_COMMAND="benchmarks/gpu.sh${*:+ $*}"
exec "$py" "$root/benchmarks/gpu_loop.py" "$@"
