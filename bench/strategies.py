"""Adaptation strategies side by side: zero-shot templates, LoRA against full fine-tuning, and the
``auto --budget`` ladder against every strategy run by hand within the same budget.

    python -m bench.strategies --what zeroshot [--data ../shared/data/sst2] [--out bench/results/strategies]
    python -m bench.strategies --what lora     [--data ../shared/data/sst2]
    python -m bench.strategies --what budget   [--data ../shared/data/financial_phrasebank] [--budget 5m]
                                               [--sizes 300,all]

Every enctune run is ``enctune train ... --json --quiet`` in a fresh process with its own feature
cache (``ENCTUNE_CACHE`` in a temporary folder, except that the zero-shot rows share one, since
only the label phrasings change between them), so timings and memory never leak between runs.

- ``zeroshot``: each (template, phrasings) pair of ``ZEROSHOT`` on the data's validation and test
  splits; the one best on validation is the documented choice (test is reported for all, chosen
  on none).
- ``lora``: ``--strategy full`` and ``--strategy lora`` with their defaults: test accuracy,
  trainable parameters (and their share of the encoder's), wall time.
- ``budget``: for each train size (a stratified, seeded sample, or all), ``--strategy auto
  --budget B`` (the ladder) and ``--strategy X --budget B`` for every strategy X; the
  primary metric (macro-F1 for several classes) on test. The data's validation and test
  splits are used whole.

Writes ``<what>.json`` (every run's command and metrics) and ``<what>.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (template, label phrasings): the phrasings are what a user would write for movie-review sentiment
ZEROSHOT = [
    ("{}", "positive;negative"),
    ("This review is {}.", "positive;negative"),
    ("{}", "positive: a great movie;negative: a terrible movie"),
    ("{}", "positive: a great movie, I loved it;negative: a terrible movie, I hated it"),
    ("{}", "positive: a great movie, I loved it|a great, enjoyable film|an excellent movie;"
           "negative: a terrible movie, I hated it|a bad, boring film|an awful movie"),
    ("A movie review: {}", "positive: a great movie, I loved it|a great, enjoyable film|an excellent movie;"
                           "negative: a terrible movie, I hated it|a bad, boring film|an awful movie"),
]
STRATEGIES = ["zeroshot", "probe", "fewshot", "partial", "lora", "full"]


def run_enctune(args: list[str], cache: str, timeout: float) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "ENCTUNE_CACHE": cache}
    cmd = [sys.executable, "-m", "enctune", "train", *args, "--json", "--quiet"]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"args": args, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"args": args, "error": (p.stderr or p.stdout).strip()[-800:], "wall_seconds": round(wall, 1)}
    m = json.loads(p.stdout.strip().splitlines()[-1])
    primary = m["primary_metric"]
    multi = m["task"] == "classify" and len(m["data"]["labels"]) > 2
    key = "macro_f1" if multi else primary
    return {"args": args, "strategy": m["strategy"], "metric": key,
            "validation": m["validation"][key], "test": m["test"][key],
            "test_accuracy": m["test"].get("accuracy"), "wall_seconds": round(wall, 1),
            "trainable_params": m["costs"]["trainable_params"], "total_params": m["costs"]["total_params"],
            "strategy_table": m.get("strategy_table"), "epochs_run": m["costs"].get("epochs_run"),
            "stopped_early": m["costs"].get("stopped_early")}


def sample(data: Path, n: int, seed: int, work: Path) -> Path:
    """A folder with a stratified sample of n train rows and the data's own validation and test."""
    rows = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines() if x.strip()]
    by: dict[str, list] = {}
    for r in rows:
        by.setdefault(str(r["label"]), []).append(r)
    rng = random.Random(seed)
    picked = []
    for _, rs in sorted(by.items()):
        k = max(1, round(n * len(rs) / len(rows)))
        picked += rng.sample(rs, k)
    rng.shuffle(picked)
    out = work / f"sample-{n}-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in picked))
    for split in ("validation", "test"):
        (out / f"{split}.jsonl").write_text((data / f"{split}.jsonl").read_text())
    return out


def zeroshot(data: Path, work: Path, timeout: float) -> tuple[list[dict], list[str]]:
    cache = str(work / "cache")
    runs = []
    for template, labels in ZEROSHOT:
        r = run_enctune(["--data", str(data), "--strategy", "zeroshot", "--template", template, "--labels", labels,
                         "--out", str(work / f"zs-{len(runs)}")], cache, timeout)
        runs.append({"template": template, "labels": labels, **r})
        print(f"zeroshot {template!r} {labels[:60]!r}: {r.get('validation')} / {r.get('test')}", file=sys.stderr)
    return runs, zeroshot_table(runs)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: the phrasing separator '|' escaped."""
    return text.replace("|", "\\|")


def _num(x) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def zeroshot_table(runs: list[dict]) -> list[str]:
    ok = [r for r in runs if "error" not in r]
    best = max(ok, key=lambda r: r["validation"]) if ok else None
    md = ["| template | label phrasings | validation accuracy | test accuracy |", "| --- | --- | ---: | ---: |"]
    for r in runs:
        mark = " (chosen on validation)" if r is best else ""
        md.append(f"| `{_cell(r['template'])}` | `{_cell(r['labels'])}` | {_num(r.get('validation', 'failed'))} | "
                  f"{_num(r.get('test', r.get('error', '')))}{mark} |")
    return md


def lora(data: Path, work: Path, timeout: float) -> tuple[list[dict], list[str]]:
    runs = []
    for strategy in ("full", "lora"):
        r = run_enctune(["--data", str(data), "--strategy", strategy, "--out", str(work / strategy)],
                        str(work / f"cache-{strategy}"), timeout)
        runs.append(r)
        print(f"{strategy}: {r.get('test')} in {r.get('wall_seconds')} s", file=sys.stderr)
    return runs, lora_table(runs)


def lora_table(runs: list[dict]) -> list[str]:
    md = ["| strategy | test accuracy | trainable parameters | share of the model | wall s |",
          "| --- | ---: | ---: | ---: | ---: |"]
    for r in runs:
        if "error" in r:
            md.append(f"| {r['args'][3]} | failed: {r['error'][:200]} | | | |")
            continue
        md.append(f"| {r['strategy']} | {r['test']:.4f} | {r['trainable_params']:,} | "
                  f"{100 * r['trainable_params'] / r['total_params']:.2f}% | {r['wall_seconds']} |")
    return md


def budget(data: Path, work: Path, timeout: float, budget_text: str, sizes: list[str]) -> tuple[list[dict], list[str]]:
    runs = []
    n_train = sum(1 for x in (data / "train.jsonl").read_text().splitlines() if x.strip())
    for size in sizes:
        folder = data if size == "all" else sample(data, int(size), 0, work)
        n = n_train if size == "all" else int(size)
        for strategy in ["auto", *STRATEGIES]:
            r = run_enctune(["--data", str(folder), "--strategy", strategy, "--budget", budget_text,
                             "--out", str(work / f"{size}-{strategy}")], str(work / f"cache-{size}-{strategy}"),
                            timeout)
            r = {"size": n, "asked": strategy, "budget": budget_text, **r}
            runs.append(r)
            print(f"{size} {strategy}: {r.get('test')} ({r.get('strategy')}) in {r.get('wall_seconds')} s",
                  file=sys.stderr)
    return runs, budget_table(runs)


def budget_table(runs: list[dict]) -> list[str]:
    md = []
    for n in dict.fromkeys(r["size"] for r in runs):
        rows = [r for r in runs if r["size"] == n]
        budget_text = rows[0].get("budget", "")
        ok = [r for r in rows if "error" not in r and r["asked"] != "auto"]
        best = max(ok, key=lambda r: r["test"]) if ok else None
        md += [f"### {n} training examples, budget {budget_text}", "",
               "| run | strategy used | validation | test | wall s | trainable |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in rows:
            if "error" in r:
                md.append(f"| {r['asked']} | failed: {r['error'][:160]} | | | | |")
                continue
            mark = " (best by hand)" if r is best else ""
            md.append(f"| {r['asked']} | {r['strategy']} | {r['validation']:.4f} | {r['test']:.4f}{mark} | "
                      f"{r['wall_seconds']} | {r['trainable_params']:,} |")
        auto = next((r for r in rows if r["asked"] == "auto" and "error" not in r), None)
        if auto and auto.get("strategy_table"):
            md += ["", "The ladder's own table (validation):", "",
                   "| rung | validation | seconds | status |", "| --- | ---: | ---: | --- |"]
            for t in auto["strategy_table"]:
                md.append(f"| {t['strategy']} | {t.get('score', '-')} | {t.get('seconds', '-')} | {t['status']} |")
        if auto and best:
            md += ["", f"auto - best by hand: {auto['test'] - best['test']:+.4f} (test {auto['metric']})"]
        md.append("")
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--what", choices=["zeroshot", "lora", "budget"], required=True)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "strategies"))
    ap.add_argument("--budget", default="5m")
    ap.add_argument("--sizes", default="300,all")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--render", action="store_true", help="rewrite <what>.md from <what>.json (no runs)")
    a = ap.parse_args()
    if a.render:
        saved = json.loads((Path(a.out) / f"{a.what}.json").read_text())
        table = {"zeroshot": zeroshot_table, "lora": lora_table, "budget": budget_table}[a.what](saved["runs"])
        md_path = Path(a.out) / f"{a.what}.md"
        head = md_path.read_text().split("\n| ")[0].rstrip("\n").split("\n")[:6] if md_path.is_file() else []
        md_path.write_text("\n".join(head + [""] + table) + "\n")
        print(md_path.read_text())
        return
    default = "financial_phrasebank" if a.what == "budget" else "sst2"
    data = Path(a.data or ROOT.parent / "shared" / "data" / default)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="enctune-bench-") as tmp:
        work = Path(tmp)
        if a.what == "zeroshot":
            runs, md = zeroshot(data, work, a.timeout)
        elif a.what == "lora":
            runs, md = lora(data, work, a.timeout)
        else:
            runs, md = budget(data, work, a.timeout, a.budget, [s.strip() for s in a.sizes.split(",")])
    command = "python -m bench.strategies " + " ".join(sys.argv[1:])
    header = [f"# strategies: {a.what}", "", f"`{command}`", "",
              f"data: {data.name}; machine: {platform.machine()}, {os.cpu_count()} cores; "
              f"{time.strftime('%Y-%m-%d %H:%M')}", ""]
    (out / f"{a.what}.md").write_text("\n".join(header + md) + "\n")
    (out / f"{a.what}.json").write_text(json.dumps({"command": command, "data": str(data), "runs": runs},
                                                   indent=1) + "\n")
    print("\n".join(header + md))


if __name__ == "__main__":
    main()
