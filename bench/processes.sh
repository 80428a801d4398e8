#!/usr/bin/env bash
# Full fine-tuning throughput with 1 and 2 processes on this machine (CPU, gloo):
# 1 process x 1 thread, 1 process x 2 threads, 2 processes x 1 thread (torchrun), REPS times interleaved.
# Usage: bench/processes.sh [SST2_DIR] [ROWS] [REPS]     (run from the repository root)
# Prints one line per run: config, train examples/s (evaluation excluded), train seconds, validation accuracy.
set -euo pipefail
SRC=${1:-../shared/data/sst2}
ROWS=${2:-1024}
REPS=${3:-2}
PY=${PY:-python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
head -n "$ROWS" "$SRC/train.jsonl" > "$WORK/train.jsonl"
head -n 200 "$SRC/validation.jsonl" > "$WORK/validation.jsonl"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ARGS=(train --data "$WORK" --strategy full --epochs 1 --batch-size 32 --seed 0 --json --quiet)
report() {
  $PY -c 'import json,sys; d=json.load(open(sys.argv[2])); c=d["costs"]
print(f"{sys.argv[1]:<22} {c[\"train_examples_per_second\"]:>7.1f} ex/s  {c[\"train_seconds\"]:>7.1f} s  "
      f"val acc {d[\"validation\"][\"accuracy\"]:.4f}")' "$1" "$2"
}
for rep in $(seq "$REPS"); do
  OMP_NUM_THREADS=1 $PY -m enctune "${ARGS[@]}" --out "$WORK/a" > "$WORK/a.json"; report "1 process x 1 thread" "$WORK/a.json"
  OMP_NUM_THREADS=2 $PY -m enctune "${ARGS[@]}" --out "$WORK/b" > "$WORK/b.json"; report "1 process x 2 threads" "$WORK/b.json"
  OMP_NUM_THREADS=1 $PY -m torch.distributed.run --nproc_per_node 2 -m enctune "${ARGS[@]}" --out "$WORK/c" \
    > "$WORK/c.json"; report "2 processes x 1 thread" "$WORK/c.json"
done
