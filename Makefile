# enctune: set-up, demo, tests. Every target works on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.enctune-installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast test-fp32 test-bf16 lint clean

setup: $(STAMP)

# torch is pinned first so that pip takes the CPU wheel on disk instead of a CUDA build;
# the package itself then declares a range that this pin satisfies.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/python examples/demo.py

test: setup
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

# the suite with --precision auto forced to one path (the two CPU kinds round bf16 differently)
test-fp32: setup
	ENCTUNE_PRECISION=fp32 $(BIN)/python -m pytest -q

test-bf16: setup
	ENCTUNE_PRECISION=bf16 $(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not integration"

lint: setup
	$(BIN)/ruff check src tests bench examples

clean:
	rm -rf runs .pytest_cache build src/*.egg-info

# Benchmarks against the peer tools (bench/README.md). Pass flags with BENCH_ARGS, e.g.
#   make bench BENCH_ARGS="--rows full,probe,predict --reps 3"
#   make bench BENCH_ARGS="--quick --reps 1"     # harness check, a few minutes
.PHONY: bench
BENCH_STAMP := $(VENV)/.enctune-bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

bench: setup $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
