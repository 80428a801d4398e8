"""Few-shot SST-2: enctune (``auto`` and ``fewshot``) against SetFit, on the same labelled samples.

    python -m bench.fewshot [--shots 8,64] [--seeds 0,1,2] [--out bench/results/fewshot]
                            [--data-root ../shared/data] [--tools setfit,enctune_auto,enctune_fewshot]
                            [--precision auto] [--timeout SECONDS] [--keep-work]

For each (shots, seed) the same ``shots`` examples per class are drawn from SST-2 train
(``random.Random(seed).sample`` of each label's rows, labels in sorted order) and every tool
trains on them, each in a fresh interpreter (``python -m bench.fewshot --worker TOOL ARGS``,
which prints one JSON object as its last stdout line), so imports, allocator state and
caches never carry over from one run to the next:

| tool | what runs |
| --- | --- |
| ``setfit`` | SetFit 1.2 with default ``TrainingArguments`` (contrastive pairs by oversampling, 1 epoch, batch 16, body lr 2e-5, a logistic-regression head), on the default encoder's folder, ``seed`` = the bench seed; it sees no validation split |
| ``enctune_auto`` | ``enctune.train(strategy="auto", labels=LABELS)``: the advisor's pick, validation = SST-2 validation |
| ``enctune_fewshot`` | ``enctune.train(strategy="fewshot", labels=LABELS)``, validation = SST-2 validation |

``LABELS`` are the label descriptions a user writes once for movie-review sentiment (the
phrasings chosen on validation by ``python -m bench.strategies --what zeroshot``, see
BENCHMARKS.md): enctune's heads start from them (``--init-head auto``). SetFit has no such
input; its model card API takes none.

Measured per run: accuracy on the 1,821 SST-2 test sentences, and wall seconds from before
the model loads to after the test predictions (enctune's ``train`` scores the test split
itself; its time also holds the validation passes SetFit does not make). Imports are not
timed, for either tool: SetFit's happen at ``from setfit import``, enctune's deferred ones
are made ahead of the clock (``preload_enctune``). Every worker runs with ``HF_HUB_OFFLINE=1``, its own ``ENCTUNE_CACHE`` (an empty
folder: no cached features) and ``torch.manual_seed(42)``.

Writes ``results.json`` (command, settings, machine, every run) and ``results.md`` (test
accuracy and wall seconds, mean ± std over the seeds, and the enctune / SetFit time ratio
per shots) into ``--out``, both rewritten after every run so an interrupted bench keeps what
it finished. A run that fails or times out is recorded with its error and the bench goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.data import per_class_indices, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("setfit", "enctune_auto", "enctune_fewshot")
LABELS = ("positive: a great movie, I loved it|a great, enjoyable film|an excellent movie;"
          "negative: a terrible movie, I hated it|a bad, boring film|an awful movie")
PACKAGES = ("torch", "transformers", "sentence-transformers", "setfit", "scikit-learn", "enctune")


# ---- data ----------------------------------------------------------------------------------
def sample_per_class(rows: list[dict], shots: int, seed: int) -> list[dict]:
    """``shots`` rows of every label, drawn with ``random.Random(seed)``, labels in sorted order."""
    return [rows[i] for i in per_class_indices(rows, shots, seed)]


# ---- workers (each in its own process) -----------------------------------------------------
def run_setfit(args: dict) -> dict:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    train, test = read_jsonl(Path(args["train"])), read_jsonl(Path(args["test"]))
    t0 = time.perf_counter()
    model = SetFitModel.from_pretrained(args["encoder"])
    # default settings; only where checkpoints go and that no experiment tracker is called
    targs = TrainingArguments(output_dir=str(Path(args["work"]) / "setfit"), seed=args["seed"], report_to="none")
    trainer = Trainer(model=model, args=targs, train_dataset=Dataset.from_list(train))
    trainer.train()
    t_train = time.perf_counter() - t0
    predicted = [str(p) for p in model.predict([r["text"] for r in test])]
    wall = time.perf_counter() - t0
    return {"test_accuracy": _accuracy(predicted, [str(r["label"]) for r in test]), "wall_seconds": round(wall, 2),
            "train_seconds": round(t_train, 2)}


def preload_enctune() -> None:
    """Import what enctune imports on first use. SetFit's imports (transformers, sentence-transformers,
    datasets, scikit-learn) run at ``from setfit import ...``, before its clock starts; enctune defers its
    own to the first call, which would otherwise put them inside its clock. That import also loads about
    240 transformers modules, among them ``modeling_utils`` and ``activations``, which every model class
    needs, so those are loaded here too. The model's own module (``models.bert.modeling_bert``) is
    loaded inside both clocks, by the model load."""
    import importlib

    for name in ("transformers", "transformers.modeling_utils", "transformers.activations", "accelerate",
                 "scipy.optimize", "scipy.stats", "sklearn.metrics", "safetensors.torch", "enctune.api", "enctune.training.loop",
                 "enctune.analysis.report", "enctune.calibrate"):
        importlib.import_module(name)
    from transformers import AutoModel, AutoTokenizer  # noqa: F401  (resolves the lazy modules)


def run_enctune(args: dict) -> dict:
    import enctune

    preload_enctune()
    t0 = time.perf_counter()
    run = enctune.train(data=args["train"], validation=args["validation"], test=args["test"],
                        out=str(Path(args["work"]) / "run"), model="default", strategy=args["strategy"],
                        precision=args["precision"], seed=args["seed"], labels=LABELS)
    wall = time.perf_counter() - t0
    m, costs = run.metrics, run.metrics["costs"]
    return {"test_accuracy": round(m["test"]["accuracy"], 4), "wall_seconds": round(wall, 2),
            "train_seconds": costs.get("train_seconds"), "strategy": m["strategy"],
            "strategy_reason": m.get("strategy_reason"), "precision": costs.get("precision"),
            "validation_accuracy": round(m["validation"]["accuracy"], 4),
            **{k: costs[k] for k in ("pairs", "pair_seconds", "centroid_accuracy_before", "centroid_accuracy_after",
                                     "pair_tuning_kept") if k in costs}}


def _accuracy(predicted: list[str], gold: list[str]) -> float:
    return round(sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold), 4)


def worker(tool: str, args: dict) -> int:
    """Run one tool in this process; print its figures as the last line of stdout."""
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                       "ENCTUNE_CACHE": str(Path(args["work"]) / "cache")})
    out = {"tool": tool, "shots": args["shots"], "seed": args["seed"], "status": "ok",
           "load_avg_start": round(os.getloadavg()[0], 2)}
    stdout = sys.stdout
    sys.stdout = sys.stderr  # whatever the tools print goes to the log, not to the result line
    try:
        import torch

        torch.manual_seed(42)
        if tool == "setfit":
            out.update(run_setfit(args))
        else:
            out.update(run_enctune({**args, "strategy": tool.removeprefix("enctune_")}))
    except Exception as e:  # a failed run is a result, not a crash of the bench
        import traceback

        traceback.print_exc()
        out.update(status="failed", error=f"{type(e).__name__}: {e}")
    finally:
        sys.stdout = stdout
    print(json.dumps(out), flush=True)
    return 0 if out["status"] == "ok" else 1


# ---- orchestration -------------------------------------------------------------------------
def spawn(tool: str, args: dict, log: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "bench.fewshot", "--worker", tool, json.dumps(args)]
    t0 = time.perf_counter()
    try:
        with open(log, "w") as err:
            proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout)
        lines = proc.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {"status": "failed", "error": f"no result (exit {proc.returncode})"}
    except subprocess.TimeoutExpired:
        result = {"status": "failed", "error": f"timed out after {timeout:.0f} s"}
    except json.JSONDecodeError as e:
        result = {"status": "failed", "error": f"unreadable result line ({e})"}
    result.update(tool=tool, shots=args["shots"], seed=args["seed"],
                  process_seconds=round(time.perf_counter() - t0, 2))
    if result["status"] != "ok":
        result["log_tail"] = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
    return result


def machine() -> dict:
    from importlib import metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else None
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "versions": {p: version(p) for p in PACKAGES}}


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(runs: list[dict], shots: list[int], tools: list[str]) -> dict:
    out = {}
    for k in shots:
        row = {}
        for tool in tools:
            ok = [r for r in runs if r["shots"] == k and r["tool"] == tool and r["status"] == "ok"]
            acc, acc_sd = mean_std([r["test_accuracy"] for r in ok])
            wall, wall_sd = mean_std([r["wall_seconds"] for r in ok])
            row[tool] = {"runs": len(ok), "test_accuracy": acc, "test_accuracy_std": acc_sd,
                         "wall_seconds": wall, "wall_seconds_std": wall_sd,
                         "strategies": sorted({r["strategy"] for r in ok if "strategy" in r})}
        base = row.get("setfit", {}).get("wall_seconds")
        for tool in tools:
            if tool != "setfit":
                w = row[tool]["wall_seconds"]
                row[tool]["time_ratio_vs_setfit"] = round(w / base, 3) if w and base else None
        out[str(k)] = row
    return out


def _pm(m, s, digits: int) -> str:
    return "failed" if m is None else f"{m:.{digits}f} ± {s:.{digits}f}"


def render(result: dict) -> str:
    lines = [f"`{result['command']}`", "",
             f"SST-2, test = {result['test_rows']} sentences; mean ± std over seeds {result['seeds']}; "
             "wall = model load + training + test prediction (enctune's includes its validation passes).", ""]
    for k, row in result["summary"].items():
        lines += [f"### {k} examples per class", "",
                  "| tool | runs | test accuracy | wall s | time / SetFit | strategy |", "| --- | --- | --- | --- | --- | --- |"]
        for tool, s in row.items():
            ratio = s.get("time_ratio_vs_setfit")
            lines.append(f"| {tool} | {s['runs']} | {_pm(s['test_accuracy'], s['test_accuracy_std'], 4)} | "
                         f"{_pm(s['wall_seconds'], s['wall_seconds_std'], 1)} | "
                         f"{'' if tool == 'setfit' else (f'{ratio:.2f}' if ratio else 'n/a')} | "
                         f"{', '.join(s['strategies'])} |")
        lines.append("")
    failed = [r for r in result["runs"] if r["status"] != "ok"]
    if failed:
        lines += ["Failed runs:", ""] + [f"- {r['tool']} shots {r['shots']} seed {r['seed']}: {r.get('error')}"
                                          for r in failed] + [""]
    m = result["machine"]
    lines += [f"Machine: {m['nproc']} cores, {m['cpu']}; python {m['python']}; "
              + ", ".join(f"{p} {v or 'not installed'}" for p, v in m["versions"].items()) + "."]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.json", json.dumps(result, indent=1) + "\n"), ("results.md", render(result))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1], json.loads(argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", default="8,64", help="examples per class, comma-separated")
    ap.add_argument("--seeds", default="0,1,2", help="sampling (and training) seeds, comma-separated")
    ap.add_argument("--out", default="bench/results/fewshot")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--precision", default="auto", help="enctune's --precision (SetFit trains in fp32)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    ap.add_argument("--keep-work", action="store_true", help="keep the work folder (samples, runs, logs)")
    a = ap.parse_args(argv)
    shots = [int(x) for x in a.shots.split(",")]
    seeds = [int(x) for x in a.seeds.split(",")]
    tools = [t for t in a.tools.split(",") if t]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        ap.error(f"--tools: unknown {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    src = Path(a.data_root) / "sst2"
    splits = {s: src / f"{s}.jsonl" for s in ("train", "validation", "test")}
    missing = [str(p) for p in splits.values() if not p.is_file()]
    if missing:
        sys.exit(f"missing data: {', '.join(missing)}")
    from enctune.encoders.resolve import resolve_encoder

    encoder = str(resolve_encoder("default"))
    train_rows = read_jsonl(splits["train"])
    out = Path(a.out)
    work = Path(tempfile.mkdtemp(prefix="enctune-bench-fewshot-"))
    cmd = "python -m bench.fewshot " + " ".join(argv)
    result = {"command": cmd.strip(), "shots": shots, "seeds": seeds, "tools": tools, "encoder": encoder,
              "precision": a.precision, "test_rows": len(read_jsonl(splits["test"])), "machine": machine(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": []}
    try:
        for k in shots:
            for seed in seeds:
                where = work / f"{k}-shot-seed{seed}"
                train = where / "train.jsonl"
                write_jsonl(train, sample_per_class(train_rows, k, seed))
                for tool in tools:  # interleaved per sample, so drift in the machine's speed is shared
                    run_dir = where / tool
                    run_dir.mkdir(parents=True, exist_ok=True)
                    args = {"train": str(train), "validation": str(splits["validation"]), "test": str(splits["test"]),
                            "encoder": encoder, "seed": seed, "shots": k, "precision": a.precision,
                            "work": str(run_dir)}
                    print(f"{k}-shot seed {seed}: {tool} ...", file=sys.stderr, flush=True)
                    r = spawn(tool, args, where / f"{tool}.log", a.timeout)
                    print(f"  {r['status']}: accuracy {r.get('test_accuracy')}, {r.get('wall_seconds')} s"
                          + (f" ({r.get('error')})" if r["status"] != "ok" else ""), file=sys.stderr, flush=True)
                    result["runs"].append(r)
                    result["summary"] = summarize(result["runs"], shots, tools)
                    write_outputs(out, result)
                    if not a.keep_work:
                        shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        if a.keep_work:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
