#!/usr/bin/env bash
# Self-training with auto: K labelled examples a class, the rest of train as the unlabelled pool, as BENCHMARKS.md
# "Self-training" reports:
#     bash bench/self_training.sh [DATA_ROOT] [DATASETS] [SEEDS] [PER_CLASS] [ROUNDS]
# e.g. bash bench/self_training.sh ../shared/data sst2 "0 1 2" 64 1
# Samples are drawn with Python's random.seed(seed) per class from train.jsonl; every other train row's text (its
# label dropped) is the pool; the whole test split is scored; no validation file (the run carves what it needs).
# One run per seed gives both figures: round 0 of metrics.json's self_training is the labelled-only auto run (the
# cross-validated choice on the labelled rows alone), the kept round is what --unlabelled adds.
# Prints: data seed labelled-only-strategy labelled-only-test kept-round student-strategy test pseudo seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-../shared/data}; SETS=${2:-sst2}; SEEDS=${3:-"0 1 2"}; K=${4:-64}; ROUNDS=${5:-1}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export HF_HUB_OFFLINE=1
WORK=${WORK:-$(mktemp -d)}
for ds in $SETS; do for seed in $SEEDS; do
  d=$WORK/$ds-$seed; mkdir -p "$d/data"
  "$PY" -m bench.data "$ROOT/$ds" "$d/data" --per-class "$K" --seed "$seed" --pool "$d/pool.jsonl" --file-order \
    >/dev/null
  s0=$(date +%s.%N)
  "$PY" -m enctune train --data "$d/data" --unlabelled "$d/pool.jsonl" --self-training-rounds "$ROUNDS" \
    --out "$d/run" --overwrite --seed "$seed" --quiet >"$d/log.txt" 2>&1
  s1=$(date +%s.%N)
  "$PY" - "$d/run/metrics.json" "$ds" "$seed" "$s0" "$s1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); st = m["self_training"]; rounds = {r["round"]: r for r in st["rounds"]}
zero, kept = rounds[0], rounds[st["kept_round"]]
print(sys.argv[2], sys.argv[3], zero["strategy"], zero["test"], st["kept_round"], kept["strategy"], kept["test"],
      kept["pseudo_labelled"], round(float(sys.argv[5]) - float(sys.argv[4]), 1))
PY
done; done
