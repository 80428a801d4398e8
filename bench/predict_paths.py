"""``python -m bench.predict_paths``: enctune's prediction paths side by side on one model.

    python -m bench.predict_paths --run RUN --onnx EXPORT [--data ../shared/data/sst2/test.jsonl]
                                  [--reps 1] [--out bench/results/predict-paths]

Paths: PyTorch fp32 (``enctune.load(RUN)``), PyTorch int8 (``precision="int8"``), and the
ONNX export (``enctune export RUN --quantize int8``) run by onnxruntime in fp32 and int8.
Each path runs in a fresh ``python -m bench.predict_paths --worker`` process (imports and
allocator state never leak between paths), predicts the first 8 texts as a warm-up, then
all texts, timed. Repetitions interleave the paths. Figures: examples/s (median over
repetitions), the ratio to PyTorch fp32, and label agreement with PyTorch fp32.
The ``predict`` row of ``python -m bench`` adds ``transformers.pipeline`` on a Hugging Face
folder; this one needs no such folder, so it works on any enctune run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PATHS = {"pytorch_fp32": ("run", "fp32"), "pytorch_int8": ("run", "int8"),
         "onnx_fp32": ("onnx", "fp32"), "onnx_int8": ("onnx", "int8")}


def worker(folder: str, precision: str, data: str) -> dict:
    import enctune

    texts = [json.loads(line)["text"] for line in Path(data).read_text(encoding="utf-8").splitlines() if line.strip()]
    t0 = time.perf_counter()
    model = enctune.load(folder, precision=precision)
    load_s = time.perf_counter() - t0
    model.predict(texts[:8])
    t0 = time.perf_counter()
    preds = model.predict(texts)
    seconds = time.perf_counter() - t0
    return {"load_seconds": round(load_s, 2), "predict_seconds": round(seconds, 2),
            "examples_per_second": round(len(texts) / seconds, 1), "n": len(texts),
            "labels": [p["label"] for p in preds]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        print(json.dumps(worker(*argv[1:4])))
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.predict_paths")
    p.add_argument("--run", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "sst2" / "test.jsonl"))
    p.add_argument("--paths", default=",".join(PATHS))
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "predict-paths")
    args = p.parse_args(argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    folders = {"run": args.run, "onnx": args.onnx}
    names = args.paths.split(",")
    runs: dict[str, list[dict]] = {n: [] for n in names}
    results = {"command": "python -m bench.predict_paths " + shlex.join(argv),
               "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "load_avg_start": round(os.getloadavg()[0], 2),
               "cpus": os.cpu_count()}
    for rep in range(args.reps):
        for name in names:
            kind, precision = PATHS[name]
            print(f"rep {rep + 1}: {name}", file=sys.stderr, flush=True)
            r = subprocess.run([sys.executable, "-m", "bench.predict_paths", "--worker", folders[kind], precision,
                                args.data], env=env, capture_output=True, text=True, cwd=REPO)
            if r.returncode != 0:
                runs[name].append({"error": r.stderr[-1500:]})
                continue
            runs[name].append(json.loads(r.stdout.strip().splitlines()[-1]))
    ref = next((x for x in runs.get("pytorch_fp32", []) if "labels" in x), None)
    base = None
    rows = []
    for name in names:
        ok = [x for x in runs[name] if "labels" in x]
        if not ok:
            rows.append({"path": name, "error": runs[name][0].get("error") if runs[name] else "not run"})
            continue
        eps = statistics.median(x["examples_per_second"] for x in ok)
        if name == "pytorch_fp32":
            base = eps
        agree = None
        if ref is not None:
            agree = round(statistics.median(
                sum(a == b for a, b in zip(x["labels"], ref["labels"], strict=True)) / len(ref["labels"])
                for x in ok), 4)
        rows.append({"path": name, "examples_per_second": eps, "agreement_with_pytorch_fp32": agree,
                     "load_seconds": statistics.median(x["load_seconds"] for x in ok), "reps": len(ok)})
    for row in rows:
        if base and "examples_per_second" in row:
            row["ratio_to_pytorch_fp32"] = round(row["examples_per_second"] / base, 2)
    results["rows"] = rows
    results["load_avg_end"] = round(os.getloadavg()[0], 2)
    md = ["# enctune prediction paths", "", "```", results["command"], "```", "",
          f"Started {results['started']}; {results['cpus']} CPUs; load average {results['load_avg_start']} at start, "
          f"{results['load_avg_end']} at end; each path in a fresh process, medians over repetitions.", "",
          "| path | ex/s | / pytorch_fp32 | label agreement with pytorch_fp32 | load s |",
          "| --- | --- | --- | --- | --- |"]
    for row in rows:
        if "error" in row:
            md.append(f"| {row['path']} | FAILED | - | - | - |")
        else:
            md.append(f"| {row['path']} | {row['examples_per_second']} | {row.get('ratio_to_pytorch_fp32')} | "
                      f"{row['agreement_with_pytorch_fp32']} | {row['load_seconds']} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
