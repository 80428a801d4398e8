"""A distilled student against its teacher: test score and prediction speed, as BENCHMARKS.md "Distillation" reports.

    python -m bench.distill --teacher runs/sst2-full --student runs/sst2-3layers --data ../shared/data/sst2 \
        --reps 3 --out bench/results/distill/sst2.json

Both folders are run folders (``enctune train`` wrote the teacher, ``enctune distill`` the student). The harness is
the prediction row's (``python -m bench --rows predict``): ``enctune.load(folder).predict(texts)`` on the test
split's texts, fp32, after predicting the first 8 once; here both models load in one process and are timed
interleaved, best of ``--reps``. Test accuracy is computed from these predictions, not read from the run folders.
The table names the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.machine import cpu_model
from bench.measure import write_json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--data", required=True, help="a folder with test.jsonl (text, label)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import enctune
    from enctune.distillation import prediction_speed

    rows = [json.loads(line) for line in open(Path(args.data) / "test.jsonl", encoding="utf-8")]
    texts, gold = [r["text"] for r in rows], [str(r["label"]) for r in rows]
    models = {"teacher": enctune.load(args.teacher), "student": enctune.load(args.student)}
    speed = prediction_speed(models, texts, None, repeats=args.reps)
    result = {"cpu": cpu_model(), "texts": len(texts), "reps": args.reps, "models": {}}
    for name, m in models.items():
        labels = [p["label"] for p in m.predict(texts)]
        result["models"][name] = {"folder": getattr(args, name), "layers": m.encoder.num_layers,
                                  "params": sum(p.numel() for p in m.fp32_model.parameters()),
                                  "accuracy": round(sum(a == b for a, b in zip(labels, gold, strict=True)) / len(gold), 4),
                                  "examples_per_s": speed[name]}
    t, s = result["models"]["teacher"], result["models"]["student"]
    result["kept_share"] = round(s["accuracy"] / t["accuracy"], 4)
    result["speedup"] = round(s["examples_per_s"] / t["examples_per_s"], 2)
    print(f"CPU: {result['cpu']}; {len(texts)} test texts, fp32, best of {args.reps}, interleaved")
    print(f"{'model':<8} {'layers':>6} {'params':>11} {'accuracy':>8} {'ex/s':>8}")
    for name, r in result["models"].items():
        print(f"{name:<8} {r['layers']:>6} {r['params']:>11,} {r['accuracy']:>8.4f} {r['examples_per_s']:>8.1f}")
    print(f"student keeps {result['kept_share']:.1%} of the teacher's accuracy, {result['speedup']}x as fast")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
