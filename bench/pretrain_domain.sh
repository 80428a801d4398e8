#!/usr/bin/env bash
# Continued pre-training on a domain's unlabelled text, then fine-tuning on K labelled examples a class (each of
# STRATEGIES, full by default), against fine-tuning the untouched encoder on the same examples, as BENCHMARKS.md
# "Continued pre-training" reports:
#     bash bench/pretrain_domain.sh [DATA_ROOT] [DATASET] [SEEDS] [PER_CLASS] [OBJECTIVES] [STRATEGIES]
# e.g. bash bench/pretrain_domain.sh ../shared/data financial_phrasebank "0 1 2" 32 "tsdae mlm" "full fewshot auto"
# The pre-training text is every split's texts (labels dropped); samples are drawn with Python's random.seed(seed)
# per class from train.jsonl; the whole test split is scored; no validation file (the run carves its own).
# Prints one line per pre-training (objective, seconds, held-out loss before -> after), then one per
# seed, encoder and strategy: data seed encoder strategy test-accuracy seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-../shared/data}; DS=${2:-financial_phrasebank}; SEEDS=${3:-"0 1 2"}; K=${4:-32}; OBJS=${5:-"tsdae mlm"}
STRATEGIES=${6:-full}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export HF_HUB_OFFLINE=1
WORK=${WORK:-$(mktemp -d)}
cat "$ROOT/$DS"/{train,validation,test}.jsonl | "$PY" -c "
import json, sys
for line in sys.stdin:
    print(json.loads(line)['text'].replace('\n', ' '))" > "$WORK/texts.txt"
ENCODERS="default"
for obj in $OBJS; do
  "$PY" -m enctune pretrain --data "$WORK/texts.txt" --out "$WORK/pt-$obj" --objective "$obj" --overwrite --quiet \
    --json > "$WORK/pt-$obj.json"
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print('pretrain', r['objective'], r['texts'], 'texts', r['train_seconds'], 's', r['held_out_loss']['before'], '->', r['held_out_loss']['after'])" "$WORK/pt-$obj.json"
  ENCODERS="$ENCODERS $WORK/pt-$obj"
done
for seed in $SEEDS; do
  d=$WORK/$DS-$seed; mkdir -p "$d"
  "$PY" -m bench.data "$ROOT/$DS" "$d" --per-class "$K" --seed "$seed" >/dev/null
  for enc in $ENCODERS; do
    name=$(basename "$enc")
    for strategy in $STRATEGIES; do
      run=$d/run-$name-$strategy
      s0=$(date +%s.%N)
      "$PY" -m enctune train --data "$d" --model "$enc" --out "$run" --strategy "$strategy" --seed "$seed" \
        --overwrite --quiet >/dev/null 2>&1
      s1=$(date +%s.%N)
      "$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(*sys.argv[2:6], m['strategy'], round(m['test']['accuracy'], 4), round(float(sys.argv[7]) - float(sys.argv[6]), 1))" \
        "$run/metrics.json" "$DS" "$seed" "$name" "$strategy" "$s0" "$s1"
    done
  done
done
