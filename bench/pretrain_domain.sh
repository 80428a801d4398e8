#!/usr/bin/env bash
# Continued pre-training on a domain's unlabelled text, then full fine-tuning on K labelled examples a class, against
# fine-tuning the untouched encoder on the same examples, as BENCHMARKS.md "Continued pre-training" reports:
#     bash bench/pretrain_domain.sh [DATA_ROOT] [DATASET] [SEEDS] [PER_CLASS] [OBJECTIVES]
# e.g. bash bench/pretrain_domain.sh ../shared/data financial_phrasebank "0 1 2" 32 "tsdae mlm"
# The pre-training text is every split's texts (labels dropped); samples are drawn with Python's random.seed(seed)
# per class from train.jsonl; the whole test split is scored; no validation file (the run carves its own).
# Prints one line per pre-training (objective, seconds, held-out loss before -> after), then one per
# seed and encoder: data seed encoder test-accuracy seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-../shared/data}; DS=${2:-financial_phrasebank}; SEEDS=${3:-"0 1 2"}; K=${4:-32}; OBJS=${5:-"tsdae mlm"}
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
    s0=$(date +%s.%N)
    "$PY" -m enctune train --data "$d" --model "$enc" --out "$d/run-$name" --strategy full --seed "$seed" \
      --overwrite --quiet >/dev/null 2>&1
    s1=$(date +%s.%N)
    "$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], sys.argv[4], round(m['test']['accuracy'], 4), round(float(sys.argv[6]) - float(sys.argv[5]), 1))" \
      "$d/run-$name/metrics.json" "$DS" "$seed" "$name" "$s0" "$s1"
  done
done
