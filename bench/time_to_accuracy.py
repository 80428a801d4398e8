"""Time to accuracy: how long until a run's model is as good as the Trainer's finished one.

    python -m bench.time_to_accuracy --datasets sst2:1,trec:1,financial_phrasebank:3 --evals 8 \
        --out bench/results/time-to-accuracy/results.json

For each dataset (``name:epochs``), in fresh processes, interleaved (Trainer, then each enctune variant):

- the Trainer's best recipe (``trainer_runs``: dynamic padding, length-grouped batches, batch 32, lr 1e-4,
  10% warm-up, fp32 unless the CPU has native bf16), with a callback that scores the test split every K
  optimizer steps and at the end;
- ``enctune train --strategy full`` as a user runs it, with the test file as its validation file and
  ``--eval-every K`` (early stopping off), so that its ``metrics.json`` history holds the same test scores at
  the same steps. Variants add options (``--enctune 'defaults=;big=--batch-size 64 --lr 2e-4'``).

Both train on the whole train split (no carved validation) for the same epochs; K is the steps of an epoch at
batch 32 over ``--evals``. Each curve point is (seconds, test accuracy), where seconds = the process's age when
the training loop began (start-up, imports, reading, tokenizing, loading: what a user waits for step 1) + the
loop's own seconds before the point (enctune: ``costs.history_seconds``), the scoring passes excluded. The
target is the Trainer's final test accuracy; each tool's time to target is the first point at or above it. The
table names the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
BATCH = 32


def steps_per_epoch(n_train: int, batch: int = BATCH) -> int:
    return -(-n_train // batch)


def eval_every(n_train: int, evals: int) -> int:
    """Optimizer steps between scoring passes: ``evals`` a batch-32 epoch, at least every step."""
    return max(1, steps_per_epoch(n_train) // max(evals, 1))


def time_to(curve: list[dict], target: float) -> float | None:
    """Seconds of the first point of ``curve`` ([{"seconds", "accuracy"}], in order) at or above ``target``."""
    return next((p["seconds"] for p in curve if p["accuracy"] >= target - 1e-12), None)


# ---------------------------------------------------------------------------------------------------- the Trainer

def trainer_child(data: str, epochs: int, every: int) -> dict:
    """The Trainer's best recipe on ``data`` (train, test), scoring test every ``every`` steps; runs in its own
    process (``--child``)."""
    import torch
    from transformers import TrainerCallback

    from enctune.encoders import default_encoder_path
    from enctune.phases import process_age

    from .measure import scratch_dir
    from .trainer_runs import _build

    with scratch_dir("enctune-bench-tta-") as tmp:
        tok, model, trainer, data_rows, _, note = _build({"encoder": str(default_encoder_path()), "data": data},
                                                          "best", epochs, 1e-4, str(tmp))
        test = sorted(data_rows["test"], key=lambda r: len(r["input_ids"]))
        collate = trainer.data_collator

        def score() -> float:
            model.eval()
            right = 0
            with torch.inference_mode():
                for i in range(0, len(test), 64):
                    batch = collate([{k: v for k, v in r.items() if k != "labels"} for r in test[i:i + 64]])
                    logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits
                    gold = torch.tensor([r["labels"] for r in test[i:i + 64]])
                    right += int((logits.argmax(-1).cpu() == gold).sum())
            model.train()
            return right / len(test)

        class Curve(TrainerCallback):
            def __init__(self):
                self.points, self.scoring, self.t0, self.started_at = [], 0.0, 0.0, None

            def on_train_begin(self, args, state, control, **kw):
                self.t0, self.started_at = time.perf_counter(), process_age()

            def on_step_end(self, args, state, control, **kw):
                if state.global_step % every == 0 or state.global_step == state.max_steps:
                    t = time.perf_counter()
                    acc = score()
                    self.points.append({"step": state.global_step, "loop_seconds": t - self.t0 - self.scoring,
                                        "accuracy": acc})
                    self.scoring += time.perf_counter() - t

        curve = Curve()
        trainer.add_callback(curve)
        trainer.train()
    started = curve.started_at or 0.0
    return {"started_at": round(started, 2), "note": note, "epochs": epochs,
            "train_examples": len(data_rows["train"]), "scoring_seconds": round(curve.scoring, 2),
            "curve": [{"step": p["step"], "seconds": round(started + p["loop_seconds"], 2),
                       "accuracy": round(p["accuracy"], 4)} for p in curve.points]}


def run_trainer(data: Path, epochs: int, every: int) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.time_to_accuracy", "--child", str(data), "--epochs-child",
                           str(epochs), "--every", str(every)], capture_output=True, text=True,
                          env={**os.environ, **ENV}, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"Trainer run failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall"] = round(time.perf_counter() - t0, 2)
    return out


# ------------------------------------------------------------------------------------------------------ enctune

def run_enctune(data: Path, epochs: int, every: int, extra: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "enctune", "train", "--data", str(data / "train.jsonl"), "--validation",
           str(data / "test.jsonl"), "--strategy", "full", "--epochs", str(epochs), "--eval-every", str(every),
           "--patience", "1000000", "--out", str(out), "--overwrite", "--quiet", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ENV})
    if proc.returncode != 0:
        raise RuntimeError(f"enctune run failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    wall = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    started = m["costs"]["loop_started_at"] or 0.0
    return {"started_at": started, "process_wall": round(wall, 2), "command": " ".join(cmd[2:]),
            "epochs": epochs, "train_examples": m["data"]["sizes"]["train"],
            "scoring_seconds": m["costs"]["eval_seconds"],
            "curve": [{"step": h["step"], "seconds": round(started + seconds, 2), "accuracy": round(h["accuracy"], 4)}
                      for h, seconds in zip(m["history"], m["costs"]["history_seconds"], strict=True)]}


# -------------------------------------------------------------------------------------------------------- table

def rows(results: dict) -> list[dict]:
    """One row per dataset and tool: its final accuracy and its time to the Trainer's final accuracy."""
    out = []
    for ds, runs in results.items():
        target = runs["trainer"]["curve"][-1]["accuracy"]
        base = time_to(runs["trainer"]["curve"], target)
        for tool, run in runs.items():
            reach = time_to(run["curve"], target)
            out.append({"dataset": ds, "epochs": run["epochs"], "tool": tool, "target": target,
                        "final": run["curve"][-1]["accuracy"], "start": run["started_at"],
                        "time_to_target": reach, "end": run["curve"][-1]["seconds"],
                        "speedup": None if reach is None or base is None else round(base / reach, 2)})
    return out


def table(results: dict) -> str:
    lines = ["| dataset (epochs) | tool | final test accuracy | start-up to step 1 (s) | time to the Trainer's final "
             "accuracy (s) | end of training (s) | Trainer / tool |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows(results):
        reach = "not reached" if r["time_to_target"] is None else f"{r['time_to_target']:.1f}"
        speed = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(f"| {r['dataset']} ({r['epochs']}) | {r['tool']} | {r['final']:.4f} (target {r['target']:.4f}) "
                     f"| {r['start']:.1f} | {reach} | {r['end']:.1f} | {speed} |")
    return "\n".join(lines)


def prepare(data_root: Path, name: str, into: Path) -> Path:
    """A folder holding only the dataset's train and test splits (both tools train on all of train)."""
    d = into / name
    d.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        shutil.copy(data_root / name / f"{split}.jsonl", d / f"{split}.jsonl")
    return d


def parse_variants(spec: str) -> dict[str, list[str]]:
    """``'defaults=;big=--batch-size 64 --lr 2e-4'`` -> {"defaults": [], "big": ["--batch-size", "64", ...]}."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, _, args = part.partition("=")
        out[f"enctune {name.strip()}"] = args.split()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="sst2:1,trec:1,financial_phrasebank:3", help="name:epochs,...")
    ap.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--evals", type=int, default=8, help="scoring passes an epoch")
    ap.add_argument("--enctune", default="defaults=", help="variants: 'name=options;name=options'")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--epochs-child", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--every", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(trainer_child(args.child, args.epochs_child, args.every)))
        return 0
    from .machine import cpu_kind, cpu_model
    from .measure import write_json

    variants = parse_variants(args.enctune)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="enctune-bench-tta-") as tmp:
        for spec in args.datasets.split(","):
            name, _, epochs = spec.partition(":")
            epochs = int(epochs or 1)
            data = prepare(Path(args.data_root), name, Path(tmp))
            n_train = sum(1 for _ in open(data / "train.jsonl"))
            every = eval_every(n_train, args.evals)
            results[name] = {"trainer": run_trainer(data, epochs, every)}
            print(f"{name}: Trainer done", file=sys.stderr)
            for tool, extra in variants.items():
                results[name][tool] = run_enctune(data, epochs, every, extra, Path(tmp) / f"{name}-{tool}")
                print(f"{name}: {tool} done", file=sys.stderr)
    kind = cpu_kind()
    print(table(results))
    print(f"\n{cpu_model()} ({kind}), {os.cpu_count()} cores; python -m bench.time_to_accuracy "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    if args.out:
        write_json(args.out, {"cpu": cpu_model(), "cpu_kind": kind, "cores": os.cpu_count(), "args": vars(args),
                              "results": results, "rows": rows(results)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
