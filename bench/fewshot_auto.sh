#!/usr/bin/env bash
# auto against probe and fewshot on 8 examples a class, one run each, as BENCHMARKS.md
# "auto on 8 examples a class" reports:
#     bash bench/fewshot_auto.sh [DATA_ROOT] [DATASETS] [SEEDS] [PER_CLASS]
# e.g. bash bench/fewshot_auto.sh ../shared/data "sst2 ag_news" "0 1 2" 8
# Samples are drawn with Python's random.seed(seed) per class from train.jsonl; the first 2,000 test rows are
# scored; no validation file (the tool carves what it needs). Prints: data seed strategy kept accuracy seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-../shared/data}; SETS=${2:-"sst2 ag_news"}; SEEDS=${3:-"0 1 2"}; K=${4:-8}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export HF_HUB_OFFLINE=1
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
for ds in $SETS; do for seed in $SEEDS; do
  d=$WORK/$ds-$seed; mkdir -p "$d"
  "$PY" -m bench.data "$ROOT/$ds" "$d" --per-class "$K" --seed "$seed" --test-rows 2000 >/dev/null
  for st in auto probe fewshot; do
    s0=$(date +%s.%N)
    "$PY" -m enctune train --data "$d" --out "$d/run-$st" --strategy "$st" --quiet --seed "$seed" >/dev/null 2>&1
    s1=$(date +%s.%N)
    "$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], sys.argv[4], m['strategy'], round(m['test']['accuracy'], 4), round(float(sys.argv[6]) - float(sys.argv[5]), 1))" \
      "$d/run-$st/metrics.json" "$ds" "$seed" "$st" "$s0" "$s1"
  done
done; done
