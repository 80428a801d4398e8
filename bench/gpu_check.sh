#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py says what it runs): on a CUDA machine with enctune installed
# (`make setup`, or `pip install -e .` beside a CUDA build of torch), from the repository root:
#     bash bench/gpu_check.sh [--out bench/results/gpu/check.json]
# and anywhere, on the CPU, as the test suite runs it:
#     bash bench/gpu_check.sh --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec timeout 600 "$PY" -m bench.gpu_check "$@"
