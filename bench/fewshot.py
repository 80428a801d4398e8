"""Few-shot suite: enctune against SetFit and sentence-transformers + logistic regression, on
the same labelled samples of several datasets.

    python -m bench.fewshot [--datasets sst2,ag_news,trec,financial_phrasebank,goemotions]
                            [--shots 8,64] [--seeds 0,1,2,3,4] [--tools setfit,st_lr,enctune_fewshot,...]
                            [--test-rows 2000] [--out bench/results/fewshot-suite] [--merge RESULTS.json,...]
                            [--data-root ../shared/data] [--precision auto] [--timeout SECONDS] [--keep-work]

For each (dataset, shots, seed) the same ``shots`` examples per class are drawn from the
dataset's train split (``bench.data.per_class_indices``: ``random.Random(seed).sample`` of
each label's rows, labels in sorted order; a class with fewer rows gives all it has) and
every tool trains on them alone: no validation split is given to any tool (a tool that wants
one carves it from those examples), and the labels are named as they are in the data.
GoEmotions is reduced to its single-label rows. The test split is scored whole up to
``--test-rows`` rows; above that, the same seeded sample of it (``random.Random(42)``
shuffle, then a prefix) for every tool. Each run is a fresh interpreter
(``python -m bench.fewshot --worker TOOL ARGS``, which prints one JSON object as its last
stdout line), so imports, allocator state and caches never carry over:

| tool | what runs |
| --- | --- |
| ``setfit`` | SetFit 1.2 with default ``TrainingArguments`` (contrastive pairs by oversampling, 1 epoch, batch 16, body lr 2e-5, a logistic-regression head), on the default encoder's folder, ``seed`` = the bench seed |
| ``st_lr`` | sentence-transformers ``encode`` of train and test (the checkpoint's pooling and normalisation), then scikit-learn ``LogisticRegression(max_iter=2000)`` |
| ``enctune_S`` | ``enctune.train(strategy=S)`` for S in auto, fewshot, probe, full, lora |
| ``enctune_S+labels`` | the same with ``labels=`` the dataset's descriptions in ``bench/fewshot_labels.json``, written once before any run and never changed after a result (a separate row: the peers get no such input) |
| ``enctune_S@key=value;...`` | the same with those settings (``enctune train``'s flags as keywords), for ablations: ``enctune_fewshot@head_solver=sgd`` |

Measured per run: test accuracy, and wall seconds from before the model loads to after the
test predictions. Imports are not timed for any tool (SetFit's and sentence-transformers'
happen at import, before the clock; enctune's deferred ones are made ahead of it by
``preload_enctune``). Every worker runs with ``HF_HUB_OFFLINE=1``, its own empty
``ENCTUNE_CACHE`` and ``torch.manual_seed(42)``.

``--merge`` adds the runs of earlier ``results.json`` files (their commands are kept in
``merged``), so that a suite cut into parts (seeds, or the slow datasets apart) reports as one;
a run of the same tool, dataset, shots and seed in this invocation replaces the merged one.

Writes ``results.json`` (command, settings, machine, every run) and ``results.md`` (per
dataset and shots: test accuracy mean ± std over the seeds and mean wall seconds per tool,
then the average over the datasets every tool finished) into ``--out``, both rewritten
after every run so an interrupted suite keeps what it finished. A run that fails or times
out is recorded with its error and the suite goes on.
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

from bench.data import per_class_indices, read_jsonl, shuffled, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("sst2", "ag_news", "trec", "financial_phrasebank", "goemotions")
STRATEGIES = ("auto", "fewshot", "probe", "full", "lora")
TOOLS = ("setfit", "st_lr", *(f"enctune_{s}{x}" for s in STRATEGIES for x in ("", "+labels")))
DEFAULT_TOOLS = ("setfit", "st_lr", "enctune_fewshot", "enctune_fewshot+labels")
DESCRIPTIONS = Path(__file__).with_name("fewshot_labels.json")
PACKAGES = ("torch", "transformers", "sentence-transformers", "setfit", "scikit-learn", "enctune")
# The SetFit paper's own figure (mean over 10 random splits, this encoder, 8 examples a class), shown beside the
# AG News 8-shot row; not run here.
PUBLISHED = {("ag_news", 8): ("SetFit paper, all-MiniLM-L6-v2, 10 splits", 0.831)}


# ---- data ----------------------------------------------------------------------------------
def labelled_rows(rows: list[dict]) -> list[dict]:
    """``{"text", "label"}`` rows with string labels; a multi-label set (``labels``) keeps its single-label rows."""
    if rows and "label" not in rows[0] and "labels" in rows[0]:
        return [{"text": r["text"], "label": str(r["labels"][0])} for r in rows if len(r["labels"]) == 1]
    return [{"text": r["text"], "label": str(r["label"])} for r in rows]


def scored_rows(rows: list[dict], limit: int | None) -> list[dict]:
    """All test rows up to ``limit``; above it a ``random.Random(42)`` shuffle's prefix (the same for every tool)."""
    if limit is None or len(rows) <= limit:
        return rows
    return shuffled(rows)[:limit]


def sample_per_class(rows: list[dict], shots: int, seed: int) -> list[dict]:
    """``shots`` rows of every label, drawn with ``random.Random(seed)``, labels in sorted order."""
    return [rows[i] for i in per_class_indices(rows, shots, seed)]


def split_tool(tool: str) -> tuple[str, dict]:
    """``"enctune_fewshot@head_solver=sgd"`` -> ("enctune_fewshot", {"head_solver": "sgd"}); values are read as
    JSON where they parse (numbers, true/false), else kept as text."""
    base, _, spec = tool.partition("@")
    settings = {}
    for item in filter(None, spec.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{tool}: expected key=value after '@', not {item!r}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return base, settings


def descriptions(dataset: str) -> str:
    table = json.loads(DESCRIPTIONS.read_text(encoding="utf-8"))
    if dataset not in table:
        raise KeyError(f"{DESCRIPTIONS.name} has no descriptions for {dataset}")
    return table[dataset]


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


def run_st_lr(args: dict) -> dict:
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    train, test = read_jsonl(Path(args["train"])), read_jsonl(Path(args["test"]))
    t0 = time.perf_counter()
    model = SentenceTransformer(args["encoder"], device="cpu")
    x_train = model.encode([r["text"] for r in train], batch_size=64, show_progress_bar=False)
    clf = LogisticRegression(max_iter=2000).fit(x_train, [r["label"] for r in train])
    t_train = time.perf_counter() - t0
    predicted = [str(p) for p in clf.predict(model.encode([r["text"] for r in test], batch_size=64,
                                                            show_progress_bar=False))]
    wall = time.perf_counter() - t0
    return {"test_accuracy": _accuracy(predicted, [r["label"] for r in test]), "wall_seconds": round(wall, 2),
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
    run = enctune.train(data=args["train"], test=args["test"], out=str(Path(args["work"]) / "run"), model="default",
                        strategy=args["strategy"], precision=args["precision"], seed=args["seed"],
                        labels=args.get("labels"), **args.get("settings", {}))
    wall = time.perf_counter() - t0
    m, costs = run.metrics, run.metrics["costs"]
    return {"test_accuracy": round(m["test"]["accuracy"], 4), "wall_seconds": round(wall, 2),
            "train_seconds": costs.get("train_seconds"), "strategy": m["strategy"],
            "strategy_reason": m.get("strategy_reason"), "precision": costs.get("precision"),
            **{k: costs[k] for k in ("pairs", "pair_seconds", "centroid_accuracy_before", "centroid_accuracy_after",
                                     "pair_tuning_kept") if k in costs}}


def _accuracy(predicted: list[str], gold: list[str]) -> float:
    return round(sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold), 4)


def worker(tool: str, args: dict) -> int:
    """Run one tool in this process; print its figures as the last line of stdout."""
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                       "ENCTUNE_CACHE": str(Path(args["work"]) / "cache")})
    out = {"tool": tool, "status": "ok", "load_avg_start": round(os.getloadavg()[0], 2)}
    stdout = sys.stdout
    sys.stdout = sys.stderr  # whatever the tools print goes to the log, not to the result line
    try:
        import torch

        torch.manual_seed(42)
        if tool == "setfit":
            out.update(run_setfit(args))
        elif tool == "st_lr":
            out.update(run_st_lr(args))
        else:
            base, settings = split_tool(tool)
            strategy, with_labels = base.removeprefix("enctune_").removesuffix("+labels"), base.endswith("+labels")
            out.update(run_enctune({**args, "strategy": strategy, "settings": settings,
                                    "labels": descriptions(args["dataset"]) if with_labels else None}))
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
    result.update(tool=tool, dataset=args["dataset"], shots=args["shots"], seed=args["seed"],
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


def summarize(runs: list[dict], datasets: list[str], shots: list[int], tools: list[str]) -> dict:
    """``{shots: {"datasets": {dataset: {tool: cell}}, "average": {tool: cell}}}``; a cell holds the runs that
    finished, test accuracy mean and std over seeds, mean wall seconds and the strategies run. The average is
    over the datasets where every tool finished every seed that any tool finished, so that each tool's mean
    covers the same samples."""
    out = {}
    for k in shots:
        per_data: dict[str, dict] = {}
        for ds in datasets:
            row = {}
            for tool in tools:
                ok = [r for r in runs if (r["dataset"], r["shots"], r["tool"]) == (ds, k, tool) and r["status"] == "ok"]
                acc, acc_sd = mean_std([r["test_accuracy"] for r in ok])
                wall, _ = mean_std([r["wall_seconds"] for r in ok])
                row[tool] = {"runs": len(ok), "seeds": sorted(r["seed"] for r in ok), "test_accuracy": acc,
                             "test_accuracy_std": acc_sd, "wall_seconds": wall,
                             "strategies": sorted({r["strategy"] for r in ok if "strategy" in r})}
            if any(c["runs"] for c in row.values()):
                per_data[ds] = row
        complete = [ds for ds, row in per_data.items()
                    if len({tuple(c["seeds"]) for c in row.values()}) == 1]
        average = {}
        for tool in tools:
            accs = [per_data[ds][tool]["test_accuracy"] for ds in complete]
            walls = [per_data[ds][tool]["wall_seconds"] for ds in complete]
            average[tool] = {"datasets": complete, "test_accuracy": statistics.fmean(accs) if accs else None,
                             "wall_seconds": statistics.fmean(walls) if walls else None}
        out[str(k)] = {"datasets": per_data, "average": average}
    return out


def _cell(c: dict) -> str:
    if not c.get("runs"):
        return "-"
    spread = f" ± {c['test_accuracy_std']:.3f}" if c["runs"] > 1 else ""
    return f"{c['test_accuracy']:.3f}{spread} ({c['wall_seconds']:.0f} s)"


def render(result: dict) -> str:
    tools = result["tools"]
    lines = [f"`{c}`" + ("" if i == len(result.get("merged", [])) else " (merged)")
             for i, c in enumerate([*result.get("merged", []), result["command"]])] + ["",
             f"Seeds {result['seeds']}; test = the whole test split up to {result['test_rows']} rows (a fixed "
             "seeded sample above that); cell = test accuracy mean ± std over the seeds (mean wall seconds: model "
             "load, training and test prediction). No tool gets a validation split; labels as in the data, except "
             "the `+labels` rows, which get `bench/fewshot_labels.json`.", ""]
    for k, block in result["summary"].items():
        lines += [f"### {k} examples per class", "", "| dataset | " + " | ".join(tools) + " |",
                  "| --- |" + " --- |" * len(tools)]
        for ds, row in block["datasets"].items():
            seeds = sorted({x for c in row.values() for x in c["seeds"]})
            lines.append(f"| {ds} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}) | "
                         + " | ".join(_cell(row[t]) for t in tools) + " |")
            published = PUBLISHED.get((ds, int(k)))
            if published:
                lines.append(f"| {ds}: {published[0]} | {published[1]:.3f} (published, not run here) |"
                             + " |" * (len(tools) - 1))
        avg = block["average"]
        if avg and any(a["test_accuracy"] is not None for a in avg.values()):
            n = len(next(iter(avg.values()))["datasets"])
            lines.append(f"| **average over {n} datasets** | " + " | ".join(
                "-" if avg[t]["test_accuracy"] is None else
                f"**{avg[t]['test_accuracy']:.3f}** ({avg[t]['wall_seconds']:.0f} s)" for t in tools) + " |")
        strategies = {t: sorted({s for row in block["datasets"].values() for s in row[t]["strategies"]})
                      for t in tools if t.startswith("enctune_auto")}
        lines += [""] + [f"{t} ran: {', '.join(s)}." for t, s in strategies.items() if s] + [""]
    failed = [r for r in result.get("all_runs", result["runs"]) if r["status"] != "ok"]
    if failed:
        lines += ["Failed runs:", ""] + [f"- {r['tool']} {r['dataset']} shots {r['shots']} seed {r['seed']}: "
                                          f"{r.get('error')}" for r in failed] + [""]
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


def _csv(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1], json.loads(argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS),
                    help="folders of --data-root, comma-separated ('' with --merge: only merge)")
    ap.add_argument("--shots", default="8,64", help="examples per class, comma-separated")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="sampling (and training) seeds, comma-separated")
    ap.add_argument("--tools", default=",".join(DEFAULT_TOOLS), help=f"comma-separated, of: {', '.join(TOOLS)}")
    ap.add_argument("--test-rows", type=int, default=2000, help="score at most this many test rows (seeded sample)")
    ap.add_argument("--out", default="bench/results/fewshot-suite")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--precision", default="auto", help="enctune's --precision (SetFit trains in fp32)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    ap.add_argument("--keep-work", action="store_true", help="keep the work folder (samples, runs, logs)")
    ap.add_argument("--merge", default="", help="earlier results.json files whose runs join this report")
    a = ap.parse_args(argv)
    datasets, tools = _csv(a.datasets), _csv(a.tools)
    earlier = [json.loads(Path(f).read_text()) for f in _csv(a.merge)]
    shots, seeds = [int(x) for x in _csv(a.shots)], [int(x) for x in _csv(a.seeds)]
    if not datasets:  # only merging: the report covers what the parts ran
        shots, seeds = [], []
    mine = {"datasets": list(datasets), "shots": list(shots), "seeds": list(seeds), "tools": list(tools)}
    unknown = [t for t in tools if split_tool(t)[0] not in TOOLS or (split_tool(t)[1] and t.startswith(("setfit", "st_")))]
    if unknown:
        ap.error(f"--tools: unknown {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    missing = [str(Path(a.data_root) / ds / f"{s}.jsonl") for ds in datasets for s in ("train", "test")
               if not (Path(a.data_root) / ds / f"{s}.jsonl").is_file()]
    if missing:
        sys.exit(f"missing data: {', '.join(missing)}")
    if any(t.endswith("+labels") for t in tools):
        for ds in datasets:
            descriptions(ds)
    from enctune.encoders.resolve import resolve_encoder

    encoder = str(resolve_encoder("default"))
    out = Path(a.out)
    work = Path(tempfile.mkdtemp(prefix="enctune-bench-fewshot-"))
    result = {"command": ("python -m bench.fewshot " + " ".join(argv)).strip(), "datasets": datasets, "shots": shots,
              "seeds": seeds, "tools": tools, "encoder": encoder, "precision": a.precision,
              "test_rows": a.test_rows, "machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "sizes": {}, "runs": [], "merged": [e["command"] for e in earlier]}
    for e in earlier:  # what the report covers: every dataset, shots, seed and tool of every part
        for key in ("datasets", "shots", "seeds", "tools"):
            result[key] = result[key] + [x for x in e[key] if x not in result[key]]
        result["sizes"].update(e.get("sizes", {}))
    merged = [r for e in earlier for r in e.get("all_runs", e["runs"])]

    def record(r=None):
        mine = result["runs"] + ([r] if r else [])
        fresh = {(x["dataset"], x["shots"], x["seed"], x["tool"]) for x in mine}
        kept = [x for x in merged if (x["dataset"], x["shots"], x["seed"], x["tool"]) not in fresh]
        if r:
            result["runs"].append(r)
        result["all_runs"] = kept + result["runs"]
        result["summary"] = summarize(result["all_runs"], result["datasets"], sorted(result["shots"]),
                                      result["tools"])
        write_outputs(out, result)

    record()
    try:
        # seeds outermost, so that a suite cut short still holds every dataset and tool at the first seeds
        for seed in mine["seeds"]:
            for k in mine["shots"]:
                for ds in mine["datasets"]:
                    src = Path(a.data_root) / ds
                    train_rows = labelled_rows(read_jsonl(src / "train.jsonl"))
                    test = scored_rows(labelled_rows(read_jsonl(src / "test.jsonl")), a.test_rows)
                    where = work / f"{ds}-{k}-shot-seed{seed}"
                    write_jsonl(where / "train.jsonl", sample_per_class(train_rows, k, seed))
                    write_jsonl(where / "test.jsonl", test)
                    result["sizes"][f"{ds}/{k}"] = {"train": len(read_jsonl(where / "train.jsonl")),
                                                    "test": len(test), "classes": len({r["label"] for r in train_rows})}
                    for tool in mine["tools"]:  # interleaved per sample, so drift in the machine's speed is shared
                        run_dir = where / "".join(c if c.isalnum() or c in "-_" else "_" for c in tool)
                        run_dir.mkdir(parents=True, exist_ok=True)
                        args = {"dataset": ds, "train": str(where / "train.jsonl"), "test": str(where / "test.jsonl"),
                                "encoder": encoder, "seed": seed, "shots": k, "precision": a.precision,
                                "work": str(run_dir)}
                        print(f"{ds} {k}-shot seed {seed}: {tool} ...", file=sys.stderr, flush=True)
                        r = spawn(tool, args, where / f"{run_dir.name}.log", a.timeout)
                        print(f"  {r['status']}: accuracy {r.get('test_accuracy')}, {r.get('wall_seconds')} s"
                              + (f" ({r.get('error')})" if r["status"] != "ok" else ""), file=sys.stderr, flush=True)
                        record(r)
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
