"""Where a whole run's time goes: ``enctune train`` as a user runs it, phase by phase.

    python -m bench.phases --data ../shared/data/sst2 --strategy full --epochs 1 --reps 2 \
        --out bench/results/phases/sst2-full.json

Each repetition is a fresh process running the command line (``enctune train ... --quiet``), timed from
outside (the wall time a user waits, to the process's exit), and its ``metrics.json``'s ``costs.phases``
(``enctune.phases``): start-up, imports, reading, loading the encoder, tokenizing, choosing, the training
loop, its validation passes, the final evaluation, calibration, the report and the writing of the folder.
The loop's own rate (``train_examples_per_second``) sits beside the end-to-end rate, so the distance between
the two is visible. The table names the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(args, out: Path) -> dict:
    cmd = [sys.executable, "-m", "enctune", "train", "--data", args.data, "--out", str(out), "--overwrite",
           "--strategy", args.strategy, "--quiet"] + (["--epochs", str(args.epochs)] if args.epochs else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    c = m["costs"]
    return {"process_wall": round(wall, 2), "phases": c["phases"], "loop_examples_per_s": c[
        "train_examples_per_second"], "train_examples": m["data"]["sizes"]["train"] * c["epochs_run"],
        "primary_metric": m["primary_metric"], "test": (m.get("test") or {}).get(m["primary_metric"])}


def table(runs: list[dict]) -> str:
    names = list(runs[0]["phases"])
    lines = ["| phase | " + " | ".join(f"run {i + 1} (s)" for i in range(len(runs))) + " | share of total |",
             "| --- |" + " --- |" * (len(runs) + 1)]
    for k in names:
        share = runs[0]["phases"].get(k, 0) / runs[0]["phases"]["total"]
        lines.append(f"| {k} | " + " | ".join(f"{r['phases'].get(k, 0):.2f}" for r in runs) + f" | {share:.1%} |")
    lines.append("| process wall (measured outside) | " + " | ".join(f"{r['process_wall']:.2f}" for r in runs)
                 + " | |")
    lines.append("| loop rate (examples/s) | " + " | ".join(f"{r['loop_examples_per_s']:.1f}" for r in runs) + " | |")
    lines.append("| end-to-end rate (examples/s) | " + " | ".join(
        f"{r['train_examples'] / r['process_wall']:.1f}" for r in runs) + " | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/sst2")
    ap.add_argument("--strategy", default="full")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    from .machine import cpu_kind, cpu_model
    from .measure import write_json

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            runs.append(run_once(args, Path(tmp) / f"run{rep}"))
            print(f"rep {rep}: {runs[-1]['process_wall']:.1f} s", file=sys.stderr)
    kind = cpu_kind()
    print(table(runs))
    print(f"\n{cpu_model()} ({kind}), {os.cpu_count()} cores; enctune train --data {args.data} --strategy "
          f"{args.strategy} --epochs {args.epochs}; test {runs[0]['primary_metric']}: "
          + ", ".join(f"{r['test']:.4f}" for r in runs if r["test"] is not None))
    if args.out:
        write_json(args.out, {"cpu": cpu_model(), "cpu_kind": kind, "cores": os.cpu_count(), "args": vars(args),
                              "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
