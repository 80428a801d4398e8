"""The advisor's estimates against the runs they estimate: time and trainable parameters, per strategy.

    python -m bench.estimates [--data ../shared/data/sst2,../shared/data/ag_news,../shared/data/trec]
                              [--train 240] [--eval 100] [--strategies probe,full,...]
                              [--out bench/results/estimates]

For each data set: a seeded random sample of ``--train`` rows of its train split (``--eval`` rows of
its validation split, or of the train rows left over when it has none, and of its test split),
then ``enctune advise --json`` and, for every strategy it estimates, ``enctune train --strategy S
--json --quiet`` in a fresh process with its own feature cache (a warm cache would make probe and
zeroshot look free). Each row compares advise's seconds with the run's ``costs.wall_seconds`` (from
reading the data to writing the run folder; the process's imports are outside both) and advise's
trainable parameters with the run's. Writes ``estimates.json`` and ``estimates.md`` into ``--out``.
Run it on an otherwise idle machine: both figures are timings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from .machine import cpu_flags

ROOT = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample(src: Path, dst: Path, n_train: int, n_eval: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    train = _rows(src / "train.jsonl")
    rng.shuffle(train)
    val = _rows(src / "validation.jsonl") if (src / "validation.jsonl").is_file() else train[n_train:]
    rng.shuffle(val)
    test = _rows(src / "test.jsonl")
    rng.shuffle(test)
    dst.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train[:n_train]), ("validation", val[:n_eval]), ("test", test[:n_eval])):
        (dst / f"{name}.jsonl").write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n"
                                                   for r in rows), encoding="utf-8")


def enctune(args: list[str], cache: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "ENCTUNE_CACHE": str(cache)}
    p = subprocess.run([sys.executable, "-m", "enctune", *args, "--json"], capture_output=True, text=True, env=env,
                       cwd=ROOT, check=False)
    if p.returncode:
        raise SystemExit(f"enctune {' '.join(args)} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/sst2,../shared/data/ag_news,../shared/data/trec")
    ap.add_argument("--train", type=int, default=240)
    ap.add_argument("--eval", type=int, default=100)
    ap.add_argument("--strategies", help="comma-separated: only these of advise's strategies (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "estimates")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="enctune-estimates-") as tmp:
        for src in [Path(d) for d in args.data.split(",")]:
            data = Path(tmp) / src.name
            sample(src, data, args.train, args.eval)
            advice = enctune(["advise", "--data", str(data)], Path(tmp) / "cache-advise")
            for strategy, est in advice["estimates"].items():
                if args.strategies and strategy not in args.strategies.split(","):
                    continue
                run = enctune(["train", "--data", str(data), "--strategy", strategy, "--out",
                               str(Path(tmp) / f"run-{src.name}-{strategy}"), "--quiet"],
                              Path(tmp) / f"cache-{src.name}-{strategy}")
                costs = run["costs"]
                row = {"data": src.name, "strategy": strategy, "estimated_seconds": est["seconds"],
                       "run_seconds": costs["wall_seconds"], "ratio": round(est["seconds"] / costs["wall_seconds"], 2),
                       "estimated_trainable": est["trainable_params"], "run_trainable": costs["trainable_params"],
                       "measured_rate": advice["facts"]["train_tokens_per_second"]}
                results.append(row)
                print(json.dumps(row), flush=True)
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown CPU")
    lines = [f"CPU: {cpu} ({os.cpu_count()} cores; {', '.join(flags)}); `--precision auto`.", "",
             "| data | strategy | advise (s) | run (s) | advise / run | advise trains | run trains |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['data']} | {r['strategy']} | {r['estimated_seconds']:.1f} | {r['run_seconds']:.1f} | "
              f"{r['ratio']:.2f} | {r['estimated_trainable']:,} | {r['run_trainable']:,} |" for r in results]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "estimates.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "estimates.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
